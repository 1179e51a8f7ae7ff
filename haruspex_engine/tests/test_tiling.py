"""Tile placement arithmetic in both modes, checked against hand-computed cases."""
import numpy as np
import pytest

from haruspex_engine import tiling


def _written_where(layout: tiling.TileLayout, axis: int) -> list[int]:
    return list(layout.out_starts[axis])


@pytest.mark.parametrize(
    "size, misplaced",
    [
        # size: (tile index, written at, true position) for every misplaced tile (facts §5.3 table)
        (100, [(3, 60, 70)]),
        (105, [(3, 65, 70), (4, 65, 75)]),
        (128, [(4, 88, 90), (5, 88, 98)]),
        (256, [(11, 216, 226)]),
    ],
)
def test_compat_layout_reproduces_the_original_misplacement(size, misplaced):
    layout = tiling.compat_layout((size, 60, 60))
    count = -(-(size - 20) // 20)
    assert layout.grid[0] == count
    truth = [min(20 * m, size - 40) + 10 for m in range(count)]
    wrong = [(m, w, t) for m, (w, t) in enumerate(zip(layout.out_starts[0], truth)) if w != t]
    assert wrong == misplaced
    assert layout.in_starts[0] == tuple(min(20 * m, size - 40) for m in range(count))
    assert layout.pad_before == (0, 0, 0) and layout.padded_shape == (size, 60, 60)


def test_compat_layout_rejects_maps_smaller_than_a_box():
    with pytest.raises(ValueError, match="at least 40 voxels"):
        tiling.compat_layout((39, 80, 80))


@pytest.mark.parametrize("size", [1, 19, 20, 21, 39, 40, 41, 100, 128])
def test_full_coverage_layout_covers_every_voxel_once_with_centred_inputs(size):
    layout = tiling.full_coverage_layout((size, 7, 45))
    covered = np.zeros(size, dtype=int)
    for start in layout.out_starts[0]:
        covered[start:start + 20] += 1
    assert covered.tolist() == [1] * size
    for in_start, out_start in zip(layout.in_starts[0], layout.out_starts[0]):
        # padded index in_start + 10 is map index in_start + 10 - pad = out_start: the core is the box centre
        assert in_start + 10 - layout.pad_before[0] == out_start
        assert in_start + 40 <= layout.padded_shape[0]
    assert layout.n_tiles == len(layout.in_starts[0]) * len(layout.in_starts[1]) * len(layout.in_starts[2])


def _centre_predictor(boxes: np.ndarray) -> np.ndarray:
    """A stand-in network: channel 0 of the core is the box's own central 20³."""
    out = np.zeros((len(boxes), 20, 20, 20, 2), dtype=np.float32)
    out[..., 0] = boxes[:, 10:30, 10:30, 10:30]
    return out


def _stitch(volume: np.ndarray, layout: tiling.TileLayout, batch: int) -> np.ndarray:
    out = np.zeros(volume.shape + (2,), dtype=np.float32)
    for positions, boxes in tiling.iter_tile_batches(layout.pad(volume), layout, batch):
        tiling.place_cores(out, positions, _centre_predictor(boxes), layout)
    return out[..., 0]


@pytest.mark.parametrize("shape, batch", [((47, 61, 33), 5), ((12, 40, 81), 64), ((20, 20, 20), 1)])
def test_full_coverage_stitching_puts_each_prediction_on_its_own_voxel(shape, batch):
    volume = np.random.default_rng(0).random(shape, dtype=np.float32) + 1.0
    assert np.array_equal(_stitch(volume, tiling.full_coverage_layout(shape), batch), volume)


def _original_source_index(size: int) -> np.ndarray:
    """For each voxel along one axis, which input voxel the original tool's output there comes from (-1: never
    written), by replaying its per-axis arithmetic: input start a = min(20m, S-40), core written at
    b = min(20m+10, S-40), later tiles overwriting earlier ones."""
    source = np.full(size, -1)
    for m in range(-(-(size - 20) // 20)):
        a, b = min(20 * m, size - 40), min(20 * m + 10, size - 40)
        source[b:b + 20] = np.arange(a + 10, a + 30)
    return source


@pytest.mark.parametrize("shape", [(100, 50, 60), (40, 128, 105)])
def test_compat_stitching_matches_the_original_arithmetic(shape):
    volume = np.random.default_rng(1).random(shape, dtype=np.float32) + 1.0
    got = _stitch(volume, tiling.compat_layout(volume.shape), batch=7)
    sources = [_original_source_index(n) for n in shape]
    written = np.ix_(*(s >= 0 for s in sources))
    expected = np.zeros_like(volume)
    expected[written] = volume[np.ix_(*(s[s >= 0] for s in sources))]
    assert np.array_equal(got, expected)
    # the documented consequences along an axis of 100: borders [0, 10) and [80, 100) never written, the last
    # core (true position 70..90) written at 60..80
    along_100 = _original_source_index(100)
    assert (along_100[:10] == -1).all() and (along_100[80:] == -1).all()
    assert along_100[60:80].tolist() == list(range(70, 90))


def test_batches_resume_from_a_tile_number():
    layout = tiling.full_coverage_layout((60, 60, 60))
    volume = layout.pad(np.zeros((60, 60, 60), np.float32))
    all_positions = [p for positions, _ in tiling.iter_tile_batches(volume, layout, 4) for p in positions]
    later = [p for positions, _ in tiling.iter_tile_batches(volume, layout, 4, start=10) for p in positions]
    assert later == all_positions[10:] and len(all_positions) == 27
