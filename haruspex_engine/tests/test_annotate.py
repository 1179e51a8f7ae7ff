"""annotate_map with stand-in networks: placement, resampling, labels, out-of-memory back-off."""
import numpy as np
import pytest

from haruspex_engine.annotation.annotate import CHANNELS, annotate_map, needs_resampling
from haruspex_engine.devices import DeviceOutOfMemory
from haruspex_engine.maps import DensityMap


def _class_probabilities(values: np.ndarray) -> np.ndarray:
    """A made-up voxel-wise classifier: softmax of (v, 2v, -v, 0) over the channels (sheet, helix, nucleic, none)."""
    logits = np.stack([values, 2 * values, -values, np.zeros_like(values)], axis=-1)
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def centre_classifier(boxes: np.ndarray) -> np.ndarray:
    """Stand-in network whose prediction for a voxel depends only on that voxel's value (the box centre)."""
    return _class_probabilities(boxes[:, 10:30, 10:30, 10:30])


def _map(shape, voxel=(1.1, 1.1, 1.1), seed=0) -> DensityMap:
    data = np.random.default_rng(seed).normal(0, 1, shape).astype(np.float32)
    return DensityMap(data=data, voxel_size=voxel, origin=(5.0, -2.0, 3.0))


@pytest.mark.parametrize("shape", [(45, 52, 61), (5, 7, 9), (40, 40, 40)])
def test_default_mode_predicts_every_voxel_at_its_own_place(shape):
    density = _map(shape)
    result = annotate_map(density, centre_classifier, batch_size=3, progress=False)
    assert not result.resampled
    assert result.probabilities.shape == shape + (4,)
    assert np.array_equal(result.probabilities, _class_probabilities(density.data))
    assert result.covered.all()


def test_compat_mode_leaves_the_original_borders_unpredicted():
    density = _map((60, 60, 60))
    result = annotate_map(density, centre_classifier, compat=True, progress=False)
    assert not result.covered[:10].any() and not result.covered[40:].any()
    assert result.covered[10:40, 10:40, 10:40].all()
    labels = result.labels
    assert (labels[~result.covered] == 0).all()


def test_labels_and_fractions_follow_the_argmax():
    density = _map((30, 30, 30))
    result = annotate_map(density, centre_classifier, progress=False)
    v = density.data
    # argmax of (v, 2v, -v, 0): helix (2v) when v > 0, nucleic (-v) when v < 0
    expected = np.where(v > 0, 1, 3)
    assert np.array_equal(result.labels, expected)
    fractions = result.class_fractions
    assert fractions["helix"] == pytest.approx((v > 0).mean())
    assert fractions["nucleic"] == pytest.approx((v < 0).mean())
    assert fractions["sheet"] == 0 and sum(fractions.values()) == pytest.approx(1.0)
    assert result.channel("helix") is not None and CHANNELS[1] == "helix"


@pytest.mark.parametrize(
    "voxel, resampled",
    [((1.0, 1.0, 1.0), False), ((1.2, 1.2, 1.2), False), ((0.99, 1.1, 1.1), True), ((1.1, 1.1, 1.21), True)],
)
def test_resampling_only_outside_the_inclusive_range(voxel, resampled):
    assert needs_resampling(voxel) is resampled


def test_resampled_map_comes_back_on_the_input_grid_as_probabilities():
    z, y, x = np.meshgrid(*(np.linspace(-1, 1, n) for n in (33, 29, 41)), indexing="ij")
    smooth = (np.sin(3 * z) + np.cos(2 * y) * x).astype(np.float32)
    density = DensityMap(data=smooth, voxel_size=(0.8, 1.6, 2.2))
    result = annotate_map(density, centre_classifier, progress=False)
    assert result.resampled
    assert result.probabilities.shape == smooth.shape + (4,)
    # working grid is about 1.1 Å per voxel along each axis
    assert result.working_voxel_size == pytest.approx((1.1, 1.1, 1.1), rel=0.04)
    assert result.probabilities.min() >= 0 and result.probabilities.max() <= 1
    assert np.allclose(result.probabilities.sum(axis=-1), 1.0, atol=1e-5)
    inner = (slice(3, -3),) * 3
    assert np.abs(result.probabilities - _class_probabilities(smooth))[inner].max() < 0.05


def test_out_of_memory_halves_the_batch_and_gives_the_same_result():
    calls = []

    def small_device(boxes):
        calls.append(len(boxes))
        if len(boxes) > 3:
            raise DeviceOutOfMemory(f"{len(boxes)} tiles do not fit")
        return centre_classifier(boxes)

    density = _map((50, 50, 50))
    result = annotate_map(density, small_device, batch_size=16, progress=False)
    assert result.batch_size == 2
    assert calls[:3] == [16, 8, 4] and max(calls[3:]) == 2
    assert any("retrying with batch size 2" in w for w in result.warnings)
    assert np.array_equal(result.probabilities, _class_probabilities(density.data))


def test_out_of_memory_at_batch_one_is_an_error():
    def no_memory(boxes):
        raise DeviceOutOfMemory("nothing fits")

    with pytest.raises(DeviceOutOfMemory):
        annotate_map(_map((20, 20, 20)), no_memory, batch_size=2, progress=False)
