"""detect_nucleic_acids with stand-in networks: box selection, stage-1 averaging then U/T merge, stage-2 maximum,
out-of-memory back-off and resuming from a finished stage. The real networks are tested in test_nucleic_networks."""
from __future__ import annotations

import numpy as np
import pytest

from haruspex_engine.devices import DeviceOutOfMemory
from haruspex_engine.nucleic.classes import STAGE1_CLASSES, STAGE2_CLASSES
from haruspex_engine.nucleic.detection.detect import detect_nucleic_acids
from haruspex_engine.nucleic.detection.preprocess import WorkingMap
from haruspex_engine.nucleic.detection.stage_cache import StageCache


def _working(data: np.ndarray, contour: float = 0.0) -> WorkingMap:
    return WorkingMap(data=data.astype(np.float32), origin=(0.0, 0.0, 0.0), contour=contour, crop_start=(0, 0, 0),
                      grid_shape=data.shape, scale=1.0)


class BoxValues:
    """A stand-in network whose every output voxel is the running number of the box (1, 2, …) times a per-channel
    factor; it records the batches it saw."""

    def __init__(self, channels: int, factors: list[float] | None = None):
        self.factors = np.asarray(factors or [1.0] * channels, dtype=np.float32)
        self.calls: list[np.ndarray] = []
        self.boxes = 0

    def __call__(self, boxes: np.ndarray) -> np.ndarray:
        self.calls.append(boxes.copy())
        out = np.empty((len(boxes), len(self.factors)) + boxes.shape[-3:], dtype=np.float32)
        for i in range(len(boxes)):
            self.boxes += 1
            out[i] = (self.boxes * self.factors)[:, None, None, None]
        return out


def test_stage1_averages_then_merges_ut_and_stage2_takes_the_maximum() -> None:
    # 64 x 64 x 96 voxels, stride 32: two boxes along x, at 0 and 32, overlapping on x in [32, 64).
    data = np.ones((64, 64, 96), np.float32)
    # raw channels sugar..protein, A, U, C, G, T: U (index 5) is 0.1 x box number, T (index 8) 0.6 x box number
    stage1 = BoxValues(9, [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.6])
    stage2 = BoxValues(8, [0.1] * 8)
    detection = detect_nucleic_acids(_working(data), stage1, stage2, stride=32, batch_size=2, progress=False)
    s1, s2 = detection.stage1, detection.stage2
    assert s1.shape == (len(STAGE1_CLASSES), 64, 64, 96) and s2.shape == (len(STAGE2_CLASSES), 64, 64, 96)
    sugar = s1[STAGE1_CLASSES.index("sugar")]
    np.testing.assert_allclose(sugar[:, :, :32], 0.1)  # box 1 only
    np.testing.assert_allclose(sugar[:, :, 32:64], 0.15)  # mean of boxes 1 and 2
    np.testing.assert_allclose(sugar[:, :, 64:], 0.2)  # box 2 only
    ut = s1[STAGE1_CLASSES.index("UT")]
    np.testing.assert_allclose(ut[:, :, 32:64], 0.9)  # max(mean U, mean T) = max(0.15, 0.9)
    np.testing.assert_allclose(s2[STAGE2_CLASSES.index("base")][:, :, 32:64], 0.2)  # maximum of 0.1 and 0.2
    np.testing.assert_allclose(s2[0][:, :, :32], 0.1)
    # stage 2 read the merged stage-1 maps (8 channels, STAGE1_CLASSES order) in boxes of the map
    seen = np.concatenate(stage2.calls)
    assert seen.shape == (2, 8, 64, 64, 64)
    np.testing.assert_allclose(seen[1, STAGE1_CLASSES.index("UT"), :, :, :32], 0.9)
    assert {k: v.run for k, v in detection.stages.items()} == {"stage1": 2, "stage2": 2}


def test_boxes_without_signal_are_never_built() -> None:
    data = np.zeros((64, 64, 160), np.float32)
    data[10:20, 10:20, 5:15] = 1.0  # density only in the first box along x (starts 0, 32, 64, 96)
    stage1, stage2 = BoxValues(9, [0.9] * 9), BoxValues(8)
    detection = detect_nucleic_acids(_working(data), stage1, stage2, stride=32, progress=False)
    assert stage1.boxes == 1 and detection.stages["stage1"].as_dict()["skipped"] == 3
    assert np.all(detection.stage1[:, :, :, 64:] == 0)  # uncovered voxels are 0
    # stage 2 only runs boxes that passed stage 1 and whose inputs exceed 0.5 somewhere
    assert stage2.boxes == 1


def test_contour_decides_which_boxes_hold_signal() -> None:
    data = np.full((64, 64, 96), 0.2, np.float32)
    data[:, :, 70:] = 0.8  # only the second box (x 32..96) has density above a contour of 0.5
    stage1 = BoxValues(9, [0.0] * 9)  # outputs 0: no stage-2 box is kept
    detection = detect_nucleic_acids(_working(data, contour=0.5), stage1, BoxValues(8), stride=32, progress=False)
    assert stage1.boxes == 1 and np.all(stage1.calls[0][0, :, :, -1] == 0.8)
    assert detection.stages["stage2"].run == 0 and np.all(detection.stage2 == 0)


def test_stage1_counts_the_last_box_once_where_the_original_counts_it_twice() -> None:
    """A deliberate difference from CryoREAD (README, detect-na), on 100 voxels along x at stride 32.

    The original visits x = 0, 32, 64, 96; the boxes of 64 and 96 would reach past x = 100 and both move back to
    start at 36, so it runs boxes 0, 32, 36, 36. Ours runs 0, 32, 36 once each. The stand-in network answers
    0.1 x the box's running number: box 0 -> 0.1, box 32 -> 0.2, box 36 -> 0.3 (the same 0.3 on both of the
    original's visits, which read the same input). Sugar, voxel by voxel along x:
      x  0..31  box 0 only                   ours 0.1                      original 0.1
      x 32..35  boxes 0, 32                  (0.1 + 0.2) / 2 = 0.15        the same
      x 36..63  boxes 0, 32, 36              (0.1 + 0.2 + 0.3) / 3 = 0.2   (0.1 + 0.2 + 0.3 + 0.3) / 4 = 0.225
      x 64..95  boxes 32, 36                 (0.2 + 0.3) / 2 = 0.25        (0.2 + 0.3 + 0.3) / 3 = 0.8 / 3
      x 96..99  box 36 only                  0.3                           (0.3 + 0.3) / 2 = 0.3
    """
    stage1 = BoxValues(9, [0.1] * 9)
    detection = detect_nucleic_acids(_working(np.ones((64, 64, 100))), stage1, BoxValues(8), stride=32,
                                     progress=False)
    assert stage1.boxes == 3  # the original runs 4
    lengths = [32, 4, 28, 32, 4]
    ours = np.repeat([0.1, 0.15, 0.2, 0.25, 0.3], lengths)
    original = np.repeat([0.1, 0.15, 0.225, 0.8 / 3, 0.3], lengths)
    sugar = detection.stage1[STAGE1_CLASSES.index("sugar")]
    np.testing.assert_allclose(sugar, np.broadcast_to(ours, sugar.shape), rtol=1e-6)
    differs = ~np.isclose(ours, original)
    assert np.array_equal(np.flatnonzero(differs), np.arange(36, 96))  # where the last box overlaps earlier ones


def test_a_map_smaller_than_a_box_is_padded() -> None:
    data = np.random.default_rng(0).random((20, 30, 70)).astype(np.float32)
    stage1 = BoxValues(9, [0.7] * 9)
    detection = detect_nucleic_acids(_working(data), stage1, BoxValues(8), stride=32, progress=False)
    assert detection.stage1.shape == (8, 20, 30, 70)
    box = stage1.calls[0][0]
    np.testing.assert_array_equal(box[:20, :30, :64], data[:, :, :64])
    assert np.all(box[20:] == 0) and np.all(box[:, 30:] == 0)


def test_out_of_memory_halves_the_batch() -> None:
    inner = BoxValues(9, [0.9] * 9)

    def fussy(boxes: np.ndarray) -> np.ndarray:
        if len(boxes) > 1:
            raise DeviceOutOfMemory(f"{len(boxes)} boxes do not fit")
        return inner(boxes)

    data = np.ones((64, 64, 128), np.float32)  # 3 boxes along x
    detection = detect_nucleic_acids(_working(data), fussy, BoxValues(8), stride=32, batch_size=4, progress=False)
    assert detection.batch_size == 1 and inner.boxes == 3
    assert any("retrying with batch size 2" in w for w in detection.warnings)


def test_a_rerun_resumes_from_the_finished_stage(tmp_path) -> None:
    data = np.ones((64, 64, 64), np.float32)
    cache = StageCache(tmp_path / "state")
    fingerprint = {"map": "a.mrc", "stride": 32}

    def broken(boxes: np.ndarray) -> np.ndarray:
        raise RuntimeError("killed during stage 2")

    first = BoxValues(9, [0.9] * 9)
    with pytest.raises(RuntimeError, match="killed"):
        detect_nucleic_acids(_working(data), first, broken, cache=cache, fingerprint=fingerprint, progress=False)
    assert first.boxes == 1

    again, stage2 = BoxValues(9, [0.9] * 9), BoxValues(8)
    detection = detect_nucleic_acids(_working(data), again, stage2, cache=cache, fingerprint=fingerprint,
                                     progress=False)
    assert again.boxes == 0 and stage2.boxes == 1  # stage 1 reused, stage 2 run
    assert detection.stages["stage1"].reused and not detection.stages["stage2"].reused
    np.testing.assert_allclose(detection.stage1, 0.9)

    other = BoxValues(9, [0.9] * 9)  # another option: nothing is reused
    detect_nucleic_acids(_working(data), other, BoxValues(8), cache=cache, fingerprint={**fingerprint, "stride": 16},
                         progress=False)
    assert other.boxes > 0
