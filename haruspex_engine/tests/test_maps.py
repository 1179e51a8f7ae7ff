"""Map reading and writing: axis order, origin and nstart, compression, bad files, resampling."""
import bz2
import gzip
import shutil
import zlib
from dataclasses import replace
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from haruspex_engine.maps import (
    GRID_TOLERANCE_A,
    DensityMap,
    MapError,
    describe_grid,
    read_map,
    same_grid,
    to_standard_axes,
    write_map,
    zoom_by,
    zoom_to_shape,
)


def _write_raw(path, data, voxel=(1.0, 1.0, 1.0), axes=(1, 2, 3), origin=(0.0, 0.0, 0.0), nstart=(0, 0, 0)):
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
        mrc.header.mapc, mrc.header.mapr, mrc.header.maps = axes
        # cella / mx..mz are along x, y, z whatever the storage order
        nxyz = [data.shape[::-1][[a - 1 for a in axes].index(i)] for i in range(3)]
        mrc.header.mx, mrc.header.my, mrc.header.mz = nxyz
        mrc.header.cella = tuple(n * v for n, v in zip(nxyz, voxel))
        mrc.header.origin = origin
        mrc.header.nxstart, mrc.header.nystart, mrc.header.nzstart = nstart


def _zyx_volume():
    z, y, x = np.meshgrid(np.arange(4), np.arange(5), np.arange(6), indexing="ij")
    return (100 * z + 10 * y + x).astype(np.float32)  # value encodes its own (z, y, x)


@pytest.mark.parametrize("axes", [(1, 2, 3), (3, 2, 1), (2, 3, 1), (1, 3, 2), (3, 1, 2), (2, 1, 3)])
def test_any_axis_order_is_put_in_zyx(tmp_path, axes):
    zyx = _zyx_volume()
    # file order (sections, rows, columns) = the axes named maps, mapr, mapc
    file_axes = [3 - a for a in (axes[2], axes[1], axes[0])]  # z->0, y->1, x->2 in zyx indexing
    stored = np.ascontiguousarray(np.transpose(zyx, file_axes))
    _write_raw(tmp_path / "m.mrc", stored, voxel=(1.1, 1.2, 1.3), axes=axes, nstart=(3, 4, 5))
    m = read_map(tmp_path / "m.mrc")
    assert np.array_equal(m.data, zyx)
    assert m.voxel_size == pytest.approx((1.1, 1.2, 1.3), abs=1e-5)
    # nstart is stored per column/row/section: the x value is the one of whichever of them runs along x
    crs = (3, 4, 5)
    assert m.nstart == tuple(crs[axes.index(a)] for a in (1, 2, 3))
    assert np.array_equal(to_standard_axes(stored, axes), zyx)


def test_origin_field_wins_over_nstart_and_round_trips(tmp_path):
    data = np.random.default_rng(0).random((8, 9, 10), dtype=np.float32)
    _write_raw(tmp_path / "o.mrc", data, voxel=(2.0, 2.0, 2.0), origin=(10.5, -3.0, 7.0), nstart=(1, 2, 3))
    m = read_map(tmp_path / "o.mrc")
    assert m.first_voxel_position == pytest.approx((10.5, -3.0, 7.0))
    write_map(tmp_path / "copy.mrc", m.data, m.voxel_size, m.origin, m.nstart)
    again = read_map(tmp_path / "copy.mrc")
    assert again.origin == m.origin and again.nstart == m.nstart and np.array_equal(again.data, m.data)

    _write_raw(tmp_path / "n.mrc", data, voxel=(2.0, 2.0, 2.0), nstart=(1, 2, 3))
    assert read_map(tmp_path / "n.mrc").first_voxel_position == pytest.approx((2.0, 4.0, 6.0))


def test_gzipped_and_map_extensions(tmp_path):
    data = _zyx_volume()
    _write_raw(tmp_path / "a.map", data)
    with open(tmp_path / "a.map", "rb") as src, gzip.open(tmp_path / "a.map.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    assert np.array_equal(read_map(tmp_path / "a.map").data, data)
    assert np.array_equal(read_map(tmp_path / "a.map.gz").data, data)


def test_integer_modes_become_float32(tmp_path):
    data = (np.arange(60).reshape(3, 4, 5) - 30).astype(np.int16)
    _write_raw(tmp_path / "i.mrc", data)
    m = read_map(tmp_path / "i.mrc")
    assert m.data.dtype == np.float32 and np.array_equal(m.data, data.astype(np.float32))


def test_bad_files_name_the_file_and_the_problem(tmp_path):
    with pytest.raises(MapError, match="missing.mrc: no such file"):
        read_map(tmp_path / "missing.mrc")

    (tmp_path / "text.mrc").write_text("this is not a map\n" * 100)
    with pytest.raises(MapError, match="text.mrc: not a readable MRC"):
        read_map(tmp_path / "text.mrc")

    _write_raw(tmp_path / "t.mrc", np.ones((20, 20, 20), np.float32))
    raw = (tmp_path / "t.mrc").read_bytes()
    (tmp_path / "t.mrc").write_bytes(raw[: len(raw) - 5000])
    with pytest.raises(MapError, match="t.mrc: not a readable MRC"):
        read_map(tmp_path / "t.mrc")

    nan = np.ones((6, 6, 6), np.float32)
    nan[1, 2, 3], nan[0, 0, 0] = np.nan, np.inf
    _write_raw(tmp_path / "nan.mrc", nan)
    with pytest.raises(MapError, match="nan.mrc: 2 voxels hold NaN or infinite"):
        read_map(tmp_path / "nan.mrc")

    with mrcfile.new(tmp_path / "zero.mrc", overwrite=True) as mrc:
        mrc.set_data(np.ones((4, 4, 4), np.float32))
        mrc.header.cella = (0.0, 0.0, 0.0)
    with pytest.raises(MapError, match="zero.mrc: voxel size"):
        read_map(tmp_path / "zero.mrc")

    with mrcfile.new(tmp_path / "flat.mrc", overwrite=True) as mrc:
        mrc.set_data(np.ones((4, 4), np.float32))
    with pytest.raises(MapError, match="flat.mrc: 2-D data"):
        read_map(tmp_path / "flat.mrc")


def _damaged(compressed: bytes, how: str) -> bytes:
    """``compressed`` cut in half, or with one byte early in its data stream inverted."""
    if how == "truncated":
        return compressed[: len(compressed) // 2]
    return compressed[:40] + bytes([compressed[40] ^ 0xFF]) + compressed[41:]


@pytest.mark.parametrize("how", ["truncated", "flipped"])
@pytest.mark.parametrize("suffix, compress, decompression_error", [
    (".gz", gzip.compress, zlib.error), (".bz2", bz2.compress, OSError),
])
def test_corrupt_or_truncated_compressed_maps_are_named_with_the_fix(tmp_path, how, suffix, compress,
                                                                     decompression_error):
    write_map(tmp_path / "m.mrc", np.random.default_rng(0).normal(size=(30, 30, 30)), (1.0, 1.0, 1.0))
    damaged = _damaged(compress((tmp_path / "m.mrc").read_bytes()), how)
    if how == "flipped":  # the failure that escaped read_map as a bare zlib.error traceback
        with pytest.raises(decompression_error):
            (gzip if suffix == ".gz" else bz2).decompress(damaged)
    path = tmp_path / f"m.mrc{suffix}"
    path.write_bytes(damaged)
    tool = "gzip" if suffix == ".gz" else "bzip2"
    with pytest.raises(MapError, match=rf"m\.mrc\{suffix}: corrupt or truncated {tool} data .*`{tool} -t "):
        read_map(path)


def test_an_empty_gz_file_is_named_as_such(tmp_path):
    (tmp_path / "empty.map.gz").write_bytes(b"")
    with pytest.raises(MapError, match=r"empty\.map\.gz: corrupt or truncated gzip data \(the file is empty\)"):
        read_map(tmp_path / "empty.map.gz")


def _write_image_stack(path, images: int):
    with mrcfile.new(path, overwrite=True, compression="gzip" if str(path).endswith(".gz") else None) as mrc:
        mrc.set_data(np.random.default_rng(1).random((images, 16, 16), dtype=np.float32))
        mrc.set_image_stack()
        mrc.voxel_size = 1.0


@pytest.mark.parametrize("name", ["particles.mrcs", "particles.MRCS.gz"])
def test_an_mrcs_image_stack_is_refused_with_its_number_of_images(tmp_path, name):
    _write_image_stack(tmp_path / name, 7)
    with pytest.raises(MapError, match=rf"{name}: an image stack of 7 images, not a volume"):
        read_map(tmp_path / name)


def test_a_volume_whose_header_says_stack_is_read_as_a_volume(tmp_path):
    """ISPG 0 alone is not refused: UCSF Chimera 1.x and IMOD write it on volumes."""
    _write_image_stack(tmp_path / "ispg0.mrc", 7)
    assert read_map(tmp_path / "ispg0.mrc").data.shape == (7, 16, 16)


def test_position_of_a_voxel_index_is_in_angstrom_x_y_z():
    m = DensityMap(data=np.zeros((4, 5, 6), np.float32), voxel_size=(1.0, 2.0, 3.0), origin=(10.0, 20.0, 30.0))
    assert m.position_of((1, 2, 3)) == pytest.approx((13.0, 24.0, 33.0))


def test_write_is_atomic_and_leaves_no_partial_file(tmp_path):
    write_map(tmp_path / "w.mrc", np.zeros((3, 4, 5), np.float32), (1.5, 1.5, 1.5), (1.0, 2.0, 3.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.mrc"]
    with mrcfile.open(tmp_path / "w.mrc") as mrc:
        assert (int(mrc.header.mapc), int(mrc.header.mapr), int(mrc.header.maps)) == (1, 2, 3)
        assert mrc.data.shape == (3, 4, 5)


def test_zoom_to_shape_inverts_zoom_by_on_smooth_data():
    z, y, x = np.meshgrid(*(np.linspace(0, 1, n) for n in (31, 37, 29)), indexing="ij")
    smooth = np.sin(3 * z) * np.cos(2 * y) + x**2
    factors = (1.7, 0.8, 1.3)
    zoomed = zoom_by(smooth.astype(np.float32), factors)
    assert zoomed.shape == tuple(round(n * f) for n, f in zip(smooth.shape, factors))
    back = zoom_to_shape(zoomed, smooth.shape)
    assert back.shape == smooth.shape
    assert np.abs(back - smooth)[3:-3, 3:-3, 3:-3].max() < 2e-3


SHARED_3J6B = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "protein-3j6b"


@pytest.mark.skipif(not (SHARED_3J6B / "2566_3J6B_9.mrc").exists(), reason="../shared/data/protein-3j6b not present")
def test_real_map_origin_puts_the_deposited_model_in_its_density():
    """EMD-2566 crop: the header origin (356.44, 155.44, 159.46) Å must be honoured for chain 9 to fit."""
    import gemmi

    m = read_map(SHARED_3J6B / "2566_3J6B_9.mrc")
    model = gemmi.read_structure(str(SHARED_3J6B / "3J6B_9.pdb"))
    xyz = np.array([a.pos.tolist() for res in model[0][0] for a in res])
    index_zyx = np.rint((xyz - np.array(m.first_voxel_position)) / np.array(m.voxel_size))[:, ::-1].astype(int)
    assert ((index_zyx >= 0) & (index_zyx < m.data.shape)).all()
    at_atoms = m.data[tuple(index_zyx.T)]
    z_score = (at_atoms.mean() - m.data.mean()) / m.data.std()
    assert z_score > 1.5


def test_same_grid_compares_shape_voxel_size_and_first_voxel_position():
    grid = DensityMap(data=np.zeros((4, 5, 6), np.float32), voxel_size=(1.1, 1.1, 1.1), origin=(2.0, 3.0, 4.0))
    assert same_grid(grid, grid.with_data(np.ones((4, 5, 6), np.float32)))
    assert same_grid(grid, replace(grid, origin=(2.0, 3.0, 4.0 + GRID_TOLERANCE_A / 2)))
    assert not same_grid(grid, replace(grid, origin=(2.0, 3.0, 4.0 + 2 * GRID_TOLERANCE_A)))
    assert not same_grid(grid, replace(grid, voxel_size=(1.1, 1.1, 1.2)))
    assert not same_grid(grid, replace(grid, data=np.zeros((4, 5, 7), np.float32)))
    nstart = DensityMap(data=grid.data, voxel_size=(1.0, 1.0, 1.0), nstart=(2, 3, 4))  # origin from nstart
    assert same_grid(nstart, replace(nstart, nstart=(0, 0, 0), origin=(2.0, 3.0, 4.0)))
    assert describe_grid(grid) == "6x5x4 voxels of (1.1, 1.1, 1.1) Å at (2, 3, 4) Å"
