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


# --- CryoREAD sliding windows: box 64, core = box, overlapping boxes combined by mean or maximum ---------------


@pytest.mark.parametrize(
    "n, stride, starts",
    [
        (64, 32, [0]),
        (100, 32, [0, 32, 36]),
        (40, 32, [0]),
        (1, 16, [0]),
        (160, 16, [0, 16, 32, 48, 64, 80, 96]),
        (161, 16, [0, 16, 32, 48, 64, 80, 96, 97]),
        (128, 32, [0, 32, 64]),
        (129, 64, [0, 64, 65]),
    ],
)
def test_sliding_window_starts(n, stride, starts):
    layout = tiling.sliding_window_layout((n, 64, 70), box=64, stride=stride)
    assert list(layout.in_starts[0]) == starts and layout.out_starts == layout.in_starts
    assert layout.core == layout.box == 64 and layout.pad_before == (0, 0, 0)
    assert layout.padded_shape == (max(n, 64), 64, 70)
    assert layout.in_starts[1] == (0,) and layout.in_starts[2] == (0, 6)


@pytest.mark.parametrize("n", [1, 30, 64, 65, 97, 100, 130, 200])
@pytest.mark.parametrize("stride", [16, 32, 64])
def test_sliding_windows_cover_every_voxel_inside_the_padded_map(n, stride):
    starts = tiling.sliding_starts(n, 64, stride)
    covered = np.zeros(max(n, 64), dtype=int)
    for s in starts:
        covered[s:s + 64] += 1
    assert covered.min() >= 1 and len(covered) == max(n, 64)  # every box lies inside the (padded) axis
    assert len(set(starts)) == len(starts)


def test_sliding_window_rejects_strides_that_leave_gaps():
    with pytest.raises(ValueError, match="stride 65"):
        tiling.sliding_window_layout((100, 100, 100), stride=65)


def _brute_force_counts(volume, layout, threshold):
    padded = layout.pad(volume)
    counts = []
    for iz, iy, ix in np.ndindex(*layout.grid):
        z, y, x = layout.in_starts[0][iz], layout.in_starts[1][iy], layout.in_starts[2][ix]
        b = layout.box
        counts.append(int(np.count_nonzero(padded[..., z:z + b, y:y + b, x:x + b] > threshold)))
    return counts


@pytest.mark.parametrize("shape, box, stride", [((70, 50, 81), 32, 16), ((20, 45, 33), 32, 8), ((9, 7, 40), 16, 16)])
@pytest.mark.parametrize("threshold", [0.0, 0.7, -0.2])
def test_count_above_matches_a_brute_force_count_per_box(shape, box, stride, threshold):
    volume = np.random.default_rng(2).normal(0, 1, shape).astype(np.float32)
    layout = tiling.sliding_window_layout(shape, box=box, stride=stride)
    assert tiling.count_above(volume, layout, threshold).tolist() == _brute_force_counts(volume, layout, threshold)
    channels = np.random.default_rng(3).random((3,) + shape, dtype=np.float32)
    assert tiling.count_above(channels, layout, 0.5).tolist() == _brute_force_counts(channels, layout, 0.5)


def test_count_above_on_a_layout_with_padding_before_the_map():
    volume = np.random.default_rng(4).normal(0, 1, (23, 41, 30)).astype(np.float32)
    layout = tiling.full_coverage_layout(volume.shape)
    for threshold in (0.3, -0.3):
        assert tiling.count_above(volume, layout, threshold).tolist() == _brute_force_counts(volume, layout, threshold)


def test_occupied_tiles_keeps_boxes_above_the_fraction_of_box_volume():
    volume = np.zeros((16, 16, 24), np.float32)
    layout = tiling.sliding_window_layout(volume.shape, box=8, stride=8)  # grid 2 x 2 x 3
    volume[0, 0, 0] = 1.0  # 1 voxel in tile 0
    volume[:2, 8, 16] = 1.0  # 2 voxels in tile (0, 1, 2) = 5
    channels = np.stack([volume, volume])  # the same voxels counted in both channels: 2 and 4 values
    assert tiling.occupied_tiles(volume, layout, 0.5, 1.5 / 512).tolist() == [5]
    assert tiling.occupied_tiles(channels, layout, 0.5, 1.5 / 512).tolist() == [0, 5]
    assert tiling.occupied_tiles(volume, layout, 0.5, 0.0).tolist() == [0, 5]


def test_batches_of_chosen_tiles_single_and_multi_channel():
    volume = np.arange(2 * 20 * 12 * 12, dtype=np.float32).reshape(2, 20, 12, 12)
    layout = tiling.sliding_window_layout((20, 12, 12), box=8, stride=4)  # z starts 0 4 8 12, y/x 0 4
    assert layout.grid == (4, 2, 2)
    tiles = [13, 2, 7]
    batches = list(tiling.iter_tile_batches(layout.pad(volume), layout, 2, tiles=tiles))
    assert [len(p) for p, _ in batches] == [2, 1]
    positions = [p for chunk, _ in batches for p in chunk]
    assert positions == [(3, 0, 1), (0, 1, 0), (1, 1, 1)]
    boxes = np.concatenate([b for _, b in batches])
    assert boxes.shape == (3, 2, 8, 8, 8) and boxes.dtype == np.float32
    assert np.array_equal(boxes[0], volume[:, 12:20, 0:8, 4:12])
    assert np.array_equal(boxes[2], volume[:, 4:12, 4:12, 4:12])
    single = list(tiling.iter_tile_batches(layout.pad(volume[1]), layout, 5, start=1, tiles=tiles))
    assert [p for p, _ in single] == [[(0, 1, 0), (1, 1, 1)]]
    assert single[0][1].shape == (2, 8, 8, 8) and np.array_equal(single[0][1][0], volume[1, 0:8, 4:12, 0:8])


def _one_axis_layout(n, box, stride):
    """A layout that tiles only along x (z and y are one box deep)."""
    return tiling.sliding_window_layout((box, box, n), box=box, stride=stride)


def test_mean_and_max_combine_overlapping_boxes():
    # x axis of 6 voxels, box 4, stride 2: boxes at x = 0..3 and 2..5, overlapping on x = 2, 3
    layout = _one_axis_layout(6, 4, 2)
    assert layout.in_starts[2] == (0, 2)
    first = np.full((1, 2, 4, 4, 4), 1.0, np.float32)
    first[:, 1] = 10.0
    second = np.full((1, 2, 4, 4, 4), 3.0, np.float32)
    second[:, 1] = 4.0
    results = {}
    for mode in ("mean", "max"):
        stitcher = tiling.Stitcher(layout, channels=2, mode=mode)
        stitcher.add([(0, 0, 0)], first)
        stitcher.add([(0, 0, 1)], second)
        results[mode] = stitcher.result()
        assert results[mode].shape == (2, 4, 4, 6) and results[mode].dtype == np.float32
    # channel 0: 1 alone, (1 + 3) / 2 = 2 on the overlap, 3 alone; channel 1: 10, 7, 4
    assert results["mean"][0, 0, 0].tolist() == [1, 1, 2, 2, 3, 3]
    assert results["mean"][1, 0, 0].tolist() == [10, 10, 7, 7, 4, 4]
    assert results["max"][0, 0, 0].tolist() == [1, 1, 3, 3, 3, 3]
    assert results["max"][1, 0, 0].tolist() == [10, 10, 10, 10, 4, 4]


def test_uncovered_voxels_are_zero_and_max_keeps_negative_predictions():
    layout = _one_axis_layout(12, 4, 4)  # boxes at x = 0, 4, 8; only the first and last are predicted
    for mode in ("mean", "max"):
        stitcher = tiling.Stitcher(layout, channels=1, mode=mode)
        stitcher.add([(0, 0, 0), (0, 0, 2)], np.full((2, 1, 4, 4, 4), -2.0, np.float32))
        assert stitcher.result()[0, 1, 2].tolist() == [-2] * 4 + [0] * 4 + [-2] * 4
        assert stitcher.result() is stitcher.result()
        with pytest.raises(RuntimeError):
            stitcher.add([(0, 0, 1)], np.zeros((1, 1, 4, 4, 4), np.float32))


def test_small_maps_are_padded_for_reading_and_clipped_when_stitching():
    volume = np.random.default_rng(5).random((2, 10, 30, 5), dtype=np.float32)
    layout = tiling.sliding_window_layout(volume.shape[1:], box=16, stride=8)
    assert layout.padded_shape == (16, 30, 16) and layout.in_starts == ((0,), (0, 8, 14), (0,))
    assert layout.pad(volume).shape == (2, 16, 30, 16)
    for mode in ("mean", "max"):
        stitcher = tiling.Stitcher(layout, channels=2, mode=mode)
        for positions, boxes in tiling.iter_tile_batches(layout.pad(volume), layout, 2):
            assert boxes.shape[1:] == (2, 16, 16, 16)
            stitcher.add(positions, boxes)  # identity "network": each box predicts its own input
        assert np.allclose(stitcher.result(), volume, atol=1e-6)


def test_count_accumulator_is_a_small_integer_type():
    assert tiling.Stitcher(tiling.sliding_window_layout((300,) * 3, 64, 4), 1)._count.dtype == np.uint16
    assert tiling.Stitcher(tiling.sliding_window_layout((100,) * 3, 64, 32), 1)._count.dtype == np.uint8


def test_place_cores_modes_share_one_placement():
    layout = _one_axis_layout(6, 4, 2)
    cores = np.stack([np.full((4, 4, 4), 1.0), np.full((4, 4, 4), 3.0)]).astype(np.float32)
    positions = [(0, 0, 0), (0, 0, 1)]
    last = np.zeros((4, 4, 6), np.float32)
    tiling.place_cores(last, positions, cores, layout)
    assert last[0, 0].tolist() == [1, 1, 3, 3, 3, 3]  # later tile wins
    total, count = np.zeros((4, 4, 6), np.float32), np.zeros((4, 4, 6), np.uint8)
    tiling.place_cores(total, positions, cores, layout, mode="sum", count=count)
    assert total[0, 0].tolist() == [1, 1, 4, 4, 3, 3] and count[0, 0].tolist() == [1, 1, 2, 2, 1, 1]
    with pytest.raises(ValueError, match="count"):
        tiling.place_cores(total, positions, cores, layout, mode="sum")
    with pytest.raises(ValueError, match="mode"):
        tiling.place_cores(total, positions, cores, layout, mode="mean")
