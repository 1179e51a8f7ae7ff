"""Map preprocessing for nucleic-acid detection: 1 Å grid, contour shift, crop, normalisation, mapping back."""
from __future__ import annotations

import math
from fractions import Fraction

import mrcfile
import numpy as np
import pytest

from haruspex_engine.maps import DensityMap, MapError, read_map, write_map
from haruspex_engine.nucleic.detection import preprocess
from haruspex_engine.nucleic.detection.preprocess import prepare_map


def _write_raw(path, data_zyx, voxel, axes=(1, 2, 3), origin=(0.0, 0.0, 0.0), nstart=(0, 0, 0)):
    """Write ``data_zyx`` with columns/rows/sections along the axes ``axes`` (mapc, mapr, maps)."""
    file_axes = [3 - a for a in (axes[2], axes[1], axes[0])]  # x -> 2, y -> 1, z -> 0 of the zyx array
    stored = np.ascontiguousarray(np.transpose(data_zyx, file_axes))
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(stored)
        mrc.header.mapc, mrc.header.mapr, mrc.header.maps = axes
        nxyz = data_zyx.shape[::-1]
        mrc.header.mx, mrc.header.my, mrc.header.mz = nxyz
        mrc.header.cella = tuple(n * v for n, v in zip(nxyz, voxel))
        mrc.header.origin = origin
        crs = [nstart[a - 1] for a in axes]  # nstart is stored per column, row, section
        mrc.header.nxstart, mrc.header.nystart, mrc.header.nzstart = crs


def _blob(shape_zyx, voxel_xyz, centre_xyz, sigma=2.0, floor=0.01):
    """A Gaussian (peak 1, ``sigma`` Å) at ``centre_xyz`` Å from the first voxel, minus ``floor`` so that it is
    positive only within about 3 sigma."""
    axes = [np.arange(n) * v for n, v in zip(shape_zyx, reversed(voxel_xyz))]
    z, y, x = np.meshgrid(*axes, indexing="ij")
    cx, cy, cz = centre_xyz
    r2 = (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2
    return (np.exp(-r2 / (2 * sigma**2)) - floor).astype(np.float32)


def _centroid_xyz(working: preprocess.WorkingMap) -> np.ndarray:
    """Density-weighted centroid of the working map in Å (x, y, z)."""
    grids = np.meshgrid(*(np.arange(n) for n in working.data.shape), indexing="ij")
    zyx = np.array([(g * working.data).sum() / working.data.sum() for g in grids])
    return zyx[::-1] + np.array(working.origin)


def _assert_same(a: preprocess.WorkingMap, b: preprocess.WorkingMap):
    assert np.array_equal(a.data, b.data)
    assert (a.origin, a.contour, a.crop_start, a.grid_shape, a.scale, a.warnings) == (
        b.origin, b.contour, b.crop_start, b.grid_shape, b.scale, b.warnings)


def test_axis_order_of_the_file_does_not_change_the_working_map(tmp_path):
    voxel = (1.1, 1.2, 1.3)
    data = _blob((16, 20, 24), voxel, centre_xyz=(12.0, 9.0, 8.0), sigma=2.5)
    results = []
    for axes in [(1, 2, 3), (3, 2, 1), (2, 3, 1), (1, 3, 2), (3, 1, 2), (2, 1, 3)]:
        path = tmp_path / f"m{''.join(map(str, axes))}.mrc"
        _write_raw(path, data, voxel, axes=axes, origin=(4.0, -6.5, 2.25), nstart=(2, 3, 4))
        results.append(prepare_map(read_map(path), contour=0.2))
    for other in results[1:]:
        _assert_same(results[0], other)


@pytest.mark.parametrize("origin, nstart", [((0.0, 0.0, 0.0), (3, -4, 5)), ((10.5, -3.0, 7.0), (1, 2, 3))])
def test_working_origin_is_the_first_voxel_position_plus_the_crop_offset(tmp_path, origin, nstart):
    voxel = (1.25, 1.25, 1.25)
    centre = (21.0, 17.5, 26.0)  # Å from the first voxel
    _write_raw(tmp_path / "m.mrc", _blob((32, 30, 36), voxel, centre), voxel, origin=origin, nstart=nstart)
    density = read_map(tmp_path / "m.mrc")
    working = prepare_map(density)
    first = np.array(density.first_voxel_position)
    assert min(working.crop_start) > 0  # the blob sits away from the edges: a real crop happened
    assert working.origin == pytest.approx(first + np.array(working.crop_start[::-1], dtype=float))
    # the blob is still where it was in Å
    assert _centroid_xyz(working) == pytest.approx(first + np.array(centre), abs=0.05)


def test_anisotropic_voxels_give_floor_shapes_and_reproduce_a_linear_ramp():
    voxel = (1.05, 0.9, 1.3)  # x, y, z
    shape = (10, 17, 23)  # z, y, x
    z, y, x = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")

    def ramp(zi, yi, xi):  # of (fractional) indices of the input grid
        return 5.0 + 0.5 * zi - 0.25 * yi + 0.125 * xi

    density = DensityMap(ramp(z, y, x).astype(np.float32), voxel, origin=(1.0, 2.0, 3.0))
    grid = preprocess.resample_to_angstrom_grid(density)
    expected_shape = tuple(math.floor(n * Fraction(str(v))) for n, v in zip(shape, reversed(voxel)))
    assert grid.data.shape == expected_shape == (13, 15, 24)
    assert grid.voxel_size == (1.0, 1.0, 1.0) and grid.origin == (1.0, 2.0, 3.0) and grid.nstart == (0, 0, 0)
    old = [np.arange(n) / v for n, v in zip(expected_shape, reversed(voxel))]  # old fractional index of each point
    inside = [o <= n - 1 for o, n in zip(old, shape)]
    assert not all(i.all() for i in inside)  # the last z plane (12 / 1.3 = 9.23 > 9) lies past the last voxel
    exact = ramp(*np.meshgrid(*old, indexing="ij"))
    region = np.ix_(*inside)
    assert np.allclose(grid.data[region], exact[region], rtol=0, atol=1e-5)
    # past the last z voxel the map is taken as 0 beyond it: (1 - w) * value of the last plane, w = 9.23 - 9
    w = old[0][-1] - 9
    yi, xi = np.ix_(inside[1], inside[2])
    past = (1 - w) * ramp(9, old[1][yi], old[2][xi])
    assert np.allclose(grid.data[-1][yi, xi], past, rtol=0, atol=1e-5)


def test_float32_voxel_sizes_do_not_lose_the_last_plane(tmp_path):
    _write_raw(tmp_path / "m.mrc", np.ones((10, 10, 20), np.float32), voxel=(1.05, 0.9, 1.3))
    density = read_map(tmp_path / "m.mrc")
    assert density.voxel_size[0] * 20 < 21  # 1.05 stored as float32 is slightly less than 1.05
    assert preprocess.resample_to_angstrom_grid(density).data.shape == (13, 9, 21)


def test_one_angstrom_maps_are_used_as_they_are():
    data = np.random.default_rng(0).random((5, 6, 7), dtype=np.float32)
    density = DensityMap(data, (1.0, 1.0, 1.0), nstart=(2, 3, 4))
    grid = preprocess.resample_to_angstrom_grid(density)
    assert grid.data is data and grid.origin == (2.0, 3.0, 4.0) and grid.nstart == (0, 0, 0)


def test_negative_contour_is_added_to_every_voxel():
    voxel = (1.0, 1.0, 1.0)
    blob = _blob((20, 20, 20), voxel, (10.0, 8.0, 11.0), floor=0.0)
    blob[blob < 0.02] = 0.0
    shifted, contour = preprocess.shift_negative_contour(blob - np.float32(0.3), -0.3)
    assert contour == 0.0 and np.allclose(shifted, blob, atol=1e-7)
    assert preprocess.shift_negative_contour(blob, 0.4) == (blob, 0.4)
    lowered = prepare_map(DensityMap(blob - np.float32(0.3), voxel), contour=-0.3)
    reference = prepare_map(DensityMap(blob, voxel), contour=0.0)
    assert lowered.contour == 0.0 and lowered.crop_start == reference.crop_start
    assert lowered.data.shape == reference.data.shape and lowered.data.shape != blob.shape
    assert np.allclose(lowered.data, reference.data, atol=1e-5)


def test_a_contour_above_the_maximum_is_replaced_by_a_low_percentile():
    rng = np.random.default_rng(1)
    data = np.zeros(16**3, np.float32)
    data[rng.choice(data.size, 2000, replace=False)] = rng.permutation(np.arange(1, 2001, dtype=np.float32))
    data = data.reshape(16, 16, 16)
    positive = np.sort(data[data > 1e-6])
    assert len(positive) == 2000
    working = prepare_map(DensityMap(data, (1.0, 1.0, 1.0), path="high.mrc"), contour=5000.0)
    # index len / 1000 = 2 of the sorted positive densities 1, 2, 3, ... is 3.0
    assert working.contour * working.scale == pytest.approx(3.0)
    assert len(working.warnings) == 1 and "5000" in working.warnings[0] and "using 3" in working.warnings[0]
    assert prepare_map(DensityMap(data, (1.0, 1.0, 1.0)), contour=10.0).warnings == ()


def test_crop_keeps_the_last_positive_plane():
    data = np.zeros((12, 13, 14), np.float32)
    data[3, 5, 7] = 1.0
    data[8, 9, 10] = 2.0
    density = DensityMap(data, (1.0, 1.0, 1.0), origin=(100.0, 200.0, 300.0))
    cropped, start = preprocess.crop_to_positive(density)
    assert start == (3, 5, 7) and cropped.data.shape == (6, 5, 4)
    assert cropped.data[-1, -1, -1] == 2.0 and cropped.data[0, 0, 0] == 1.0
    assert cropped.origin == (107.0, 205.0, 303.0)


def test_log_histogram_point_on_a_hand_built_histogram():
    # 200 bins of width 1 between the smallest positive value 1.0 and the largest 201.0:
    #   bins 0..9 hold 1000 voxels each (weight ln 1000 = 6.9078 each), bin 150 holds 20 (ln 20 = 2.9957),
    #   bin 199 holds the single maximum (ln 1 = 0). Total weight 72.0733; 98 % of it is 70.6318.
    #   Cumulative weight after bin 9: 69.0776 (not above); bins 10..149 add 0; after bin 150: 72.0733 (above).
    #   So p = left edge of bin 150 = 1.0 + 150 = 151.0. (Plain counts would have stopped at bin 9, p = 10.0.)
    values = [np.full(1000, 1.5 + i) for i in range(10)]
    values[0][0] = 1.0
    values += [np.full(20, 151.5), [201.0], np.zeros(500), np.full(300, -4.0)]
    data = np.concatenate(values).astype(np.float32)
    assert preprocess.log_histogram_point(data) == pytest.approx(151.0)
    # every bin holds at most one voxel: all weights are 0, nothing exceeds 98 % of 0, the maximum is kept
    assert preprocess.log_histogram_point(np.array([0.0, 1.0, 2.0, 3.0, 4.0], np.float32)) == 4.0


def test_normalise_clips_at_the_log_histogram_point_and_scales_to_one():
    data = np.concatenate([np.full(1000, 1.0), np.full(30, 3.02), [11.0], [0.0, -2.0]]).astype(np.float32)
    # bins of width 0.05 from 1 to 11: 1000 voxels in bin 0 (ln 1000 = 6.9078), 30 in bin 40 (ln 30 = 3.4012),
    # 1 in bin 199 (ln 1 = 0); 98 % of the total 10.3090 is 10.1028, first exceeded at bin 40: p = 1 + 40 * 0.05
    p = 3.0
    out, contour, scale = preprocess.normalise(data, contour=1.2)
    assert scale == pytest.approx(p) and contour == pytest.approx(1.2 / p)
    assert out.dtype == np.float32
    assert np.allclose(out, np.clip(data, 0, p) / p, atol=1e-6)
    with pytest.raises(ValueError, match="constant"):
        preprocess.normalise(np.ones((3, 3, 3), np.float32), 0.0)


@pytest.mark.parametrize("fill", [0.0, -1.0])
def test_maps_without_positive_density_are_refused_with_the_file_name(fill):
    density = DensityMap(np.full((8, 8, 8), fill, np.float32), (1.2, 1.2, 1.2), path="/data/empty.mrc")
    with pytest.raises(MapError, match=r"/data/empty\.mrc: no density above"):
        prepare_map(density, contour=0.1)


def test_constant_maps_are_refused_with_the_file_name():
    density = DensityMap(np.full((8, 8, 8), 2.0, np.float32), (1.0, 1.0, 1.0), path="flat.mrc")
    with pytest.raises(MapError, match=r"flat\.mrc: the density is constant"):
        prepare_map(density)


def test_working_map_writes_on_its_own_grid(tmp_path):
    voxel = (1.3, 1.3, 1.3)
    working = prepare_map(DensityMap(_blob((20, 22, 24), voxel, (15.0, 14.0, 13.0)), voxel, origin=(5.0, 6.0, 7.0)))
    grid = working.as_density_map()
    write_map(tmp_path / "w.mrc", grid.data, grid.voxel_size, grid.origin, grid.nstart)
    again = read_map(tmp_path / "w.mrc")
    assert again.voxel_size == (1.0, 1.0, 1.0) and again.first_voxel_position == pytest.approx(working.origin)
    assert np.array_equal(again.data, working.data)
    assert working.as_density_map(np.zeros_like(working.data)).origin == working.origin
    with pytest.raises(ValueError, match="shape"):
        working.as_density_map(np.zeros((2, 2, 2)))


def test_to_input_grid_is_exact_for_linear_values_inside_the_crop():
    voxel = (1.05, 0.9, 1.3)
    density = DensityMap(_blob((24, 30, 28), voxel, (14.0, 13.0, 15.0), sigma=3.0), voxel, origin=(-3.0, 4.0, 9.5))
    working = prepare_map(density)

    def linear(x, y, z):
        return 2.0 + 0.1 * x - 0.05 * y + 0.02 * z

    zw, yw, xw = np.meshgrid(*(np.arange(n, dtype=float) for n in working.data.shape), indexing="ij")
    ox, oy, oz = working.origin
    values = linear(ox + xw, oy + yw, oz + zw).astype(np.float32)
    back = preprocess.to_input_grid(values, working, density)
    assert back.shape == density.data.shape and back.dtype == np.float32
    zi, yi, xi = np.meshgrid(*(np.arange(n, dtype=float) for n in density.data.shape), indexing="ij")
    fx, fy, fz = density.first_voxel_position
    x, y, z = fx + xi * voxel[0], fy + yi * voxel[1], fz + zi * voxel[2]
    lo, hi = np.array(working.origin), np.array(working.origin) + np.array(working.data.shape[::-1]) - 1
    inside = (x >= lo[0]) & (x <= hi[0]) & (y >= lo[1]) & (y <= hi[1]) & (z >= lo[2]) & (z <= hi[2])
    assert inside.sum() > 1000 and (~inside).sum() > 1000
    assert np.allclose(back[inside], linear(x, y, z)[inside], rtol=0, atol=1e-5)
    far = (x < lo[0] - 1) | (x > hi[0] + 1) | (y < lo[1] - 1) | (y > hi[1] + 1) | (z < lo[2] - 1) | (z > hi[2] + 1)
    assert far.any() and (back[far] == 0).all()


def test_to_input_grid_round_trip_on_a_smooth_map():
    voxel = (1.3, 1.2, 1.1)
    density = DensityMap(_blob((36, 38, 40), voxel, (22.0, 23.0, 20.0), sigma=5.0), voxel, origin=(1.0, 2.0, 3.0))
    working = prepare_map(density)
    grid = preprocess.resample_to_angstrom_grid(density)
    crop = tuple(slice(s, s + n) for s, n in zip(working.crop_start, working.data.shape))
    back = preprocess.to_input_grid(grid.data[crop], working, density)
    # two trilinear passes over a Gaussian of peak 1 and sigma 5 A (|second derivative| <= 1 / sigma^2 per axis):
    # error <= (1.3^2 + 1.2^2 + 1.1^2) / 8 / 25 (input grid to 1 A) + 3 / 8 / 25 (back) = 0.037
    positive = density.data > 0
    error = np.abs(back - density.data)[positive]
    assert error.max() < 0.037 and error.mean() < 0.005
    assert (back[~positive] <= 0.01).all()
    with pytest.raises(ValueError, match="working grid"):
        preprocess.to_input_grid(np.zeros((3, 3, 3), np.float32), working, density)
