"""Density-map I/O and resampling: the engine's single map reader and writer.

Conventions (shared by every module of the engine):
- arrays are float32 with axes (z, y, x) once the file's mapc/mapr/maps axis order has been undone;
- ``voxel_size`` and ``origin`` are (x, y, z) tuples in Å; ``nstart`` is an (x, y, z) tuple in voxels;
- the position in Å of voxel index (0, 0, 0) is the header origin when any component of it is non-zero,
  otherwise ``nstart * voxel_size`` (the rule ChimeraX and Scipion follow).
Outputs are written with the input's voxel size, origin and nstart, so every viewer places them exactly where it
places the input. Files are written under a temporary name and renamed when complete.
"""
from __future__ import annotations

import bz2
import gzip
import os
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import mrcfile
import numpy as np
from scipy import ndimage

from haruspex_engine.atomic_files import atomic_path

Vec3 = tuple[float, float, float]


class MapError(ValueError):
    """A map file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class DensityMap:
    """A density map in standard axis order.

    data: float32 array, axes (z, y, x). voxel_size, origin: (x, y, z) in Å. nstart: (x, y, z) in voxels.
    """

    data: np.ndarray
    voxel_size: Vec3
    origin: Vec3 = (0.0, 0.0, 0.0)
    nstart: tuple[int, int, int] = (0, 0, 0)
    path: str = ""

    @property
    def first_voxel_position(self) -> Vec3:
        """Position in Å (x, y, z) of the centre of voxel (0, 0, 0)."""
        if any(self.origin):
            return self.origin
        return tuple(float(n * v) for n, v in zip(self.nstart, self.voxel_size))

    def position_of(self, index_zyx: tuple[int, int, int]) -> Vec3:
        """Position in Å (x, y, z) of the centre of the voxel at array index (z, y, x)."""
        return tuple(float(p + i * v) for p, i, v in zip(self.first_voxel_position, reversed(index_zyx),
                                                          self.voxel_size))

    def with_data(self, data: np.ndarray) -> DensityMap:
        """The same grid geometry holding other values (e.g. a probability map of this map)."""
        if data.shape != self.data.shape:
            raise ValueError(f"shape {data.shape} does not match the map grid {self.data.shape}")
        return replace(self, data=data)


#: Å: two grids whose voxel sizes and first-voxel positions agree this closely are the same grid.
GRID_TOLERANCE_A = 1e-3


def same_grid(first: DensityMap, second: DensityMap, tolerance_A: float = GRID_TOLERANCE_A) -> bool:
    """Whether two maps share their shape, voxel size and first-voxel position (the last two within tolerance_A Å)."""
    return (first.data.shape == second.data.shape
            and np.allclose(first.voxel_size, second.voxel_size, rtol=0.0, atol=tolerance_A)
            and np.allclose(first.first_voxel_position, second.first_voxel_position, rtol=0.0, atol=tolerance_A))


def describe_grid(grid: DensityMap) -> str:
    """"NX x NY x NZ voxels of (vx, vy, vz) Å at (x, y, z) Å", for messages."""
    shape = "x".join(str(n) for n in grid.data.shape[::-1])
    voxel = ", ".join(f"{v:.4g}" for v in grid.voxel_size)
    origin = ", ".join(f"{v:.4g}" for v in grid.first_voxel_position)
    return f"{shape} voxels of ({voxel}) Å at ({origin}) Å"


def read_map(path: str | os.PathLike) -> DensityMap:
    """Read an MRC/CCP4/.map file (optionally gzip- or bzip2-compressed) into standard axis order.

    Raises MapError naming the file for anything unusable: missing, truncated or corrupt files (compressed ones
    named as such, with the fix), non-3-D data, a zero voxel size, NaN/inf values, or an image stack.

    Image stacks: a file named ``.mrcs`` (optionally compressed) is refused as the image stack it is by convention
    (RELION, cryoSPARC, Scipion), naming its number of images. The header's own mark, space group (ISPG) 0 with
    more than one section (mrcfile's rule for stacks), is neither refused nor warned about: UCSF Chimera 1.x, IMOD
    and others write it on volumes (the 3j6b map crop in ../shared, saved by Chimera 1.15, has it), so it cannot
    tell a stack saved as .mrc from a volume.
    """
    path = Path(path)
    if not path.is_file():
        raise MapError(f"{path}: no such file")
    if _named_as_image_stack(path):
        header, _, _ = _read_mrc(path, header_only=True)
        raise MapError(f"{path}: an image stack of {int(header.nz)} images, not a volume (.mrcs files hold 2-D "
                       "particle images or movie frames); give a 3-D density map (.mrc/.map)")
    header, voxel_size, raw = _read_mrc(path)
    axis_order = (int(header.mapc), int(header.mapr), int(header.maps))
    nstart_crs = (int(header.nxstart), int(header.nystart), int(header.nzstart))
    origin = (float(header.origin.x), float(header.origin.y), float(header.origin.z))
    if raw is None or raw.ndim != 3:
        dims = "no" if raw is None else f"{raw.ndim}-D"
        raise MapError(f"{path}: {dims} data; a 3-D density map is needed")
    if np.iscomplexobj(raw):
        raise MapError(f"{path}: complex-valued (Fourier) data; a real-space density map is needed")
    if sorted(axis_order) != [1, 2, 3]:
        raise MapError(f"{path}: invalid axis order mapc/mapr/maps = {axis_order}")
    if not all(np.isfinite(v) and v > 0 for v in voxel_size):
        raise MapError(f"{path}: voxel size {voxel_size} Å from the header cell is not positive")
    data = to_standard_axes(raw, axis_order).astype(np.float32)
    bad = int(np.count_nonzero(~np.isfinite(data)))
    if bad:
        raise MapError(f"{path}: {bad} voxels hold NaN or infinite values")
    # nstart is stored per column/row/section; reorder it to x, y, z like the data.
    nstart = tuple(nstart_crs[axis_order.index(axis)] for axis in (1, 2, 3))
    return DensityMap(data=data, voxel_size=voxel_size, origin=origin, nstart=nstart, path=str(path))


def _named_as_image_stack(path: Path) -> bool:
    """Whether the file name ends in .mrcs (before any .gz or .bz2), the extension of MRC image stacks."""
    name = path.name.lower()
    for compressed in (".gz", ".bz2"):
        name = name.removesuffix(compressed)
    return name.endswith(".mrcs")


def _read_mrc(path: Path, header_only: bool = False) -> tuple[np.recarray, Vec3, np.ndarray | None]:
    """(header, voxel size (x, y, z) in Å from the header cell, data in file order (sections, rows, columns) or
    None with header_only) of an MRC file, read strictly with mrcfile. MapError naming the file when it cannot be
    read, saying so when it is compressed data that is truncated or corrupt."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.open(path, mode="r", permissive=False, header_only=header_only) as mrc:
                voxel = mrc.voxel_size
                raw = None if header_only else np.asarray(mrc.data)
                return mrc.header.copy(), (float(voxel.x), float(voxel.y), float(voxel.z)), raw
    except (ValueError, OSError, EOFError, zlib.error) as exc:
        raise _unreadable(path, exc) from None


#: Compressed formats read_map accepts: name -> (leading bytes, file extension, opener). mrcfile recognises them by
#: their leading bytes; the extension also counts here so a damaged first block is still reported as compression.
_COMPRESSIONS: dict[str, tuple[bytes, str, Callable]] = {
    "gzip": (b"\x1f\x8b", ".gz", gzip.open),
    "bzip2": (b"BZh", ".bz2", bz2.open),
}


def _unreadable(path: Path, exc: Exception) -> MapError:
    """The MapError for a file mrcfile could not read: corrupt or truncated compressed data (with the fix) when the
    file is compressed and does not decompress to its end, else not a readable MRC/CCP4 map."""
    compression = _compression_of(path)
    fault = _decompression_fault(path, _COMPRESSIONS[compression][2]) if compression else ""
    if fault:
        return MapError(f"{path}: corrupt or truncated {compression} data ({fault}); download or copy the file "
                        f"again and check it with `{compression} -t {path}`")
    return MapError(f"{path}: not a readable MRC/CCP4 map ({str(exc) or type(exc).__name__})")


def _compression_of(path: Path) -> str | None:
    """"gzip" or "bzip2" when the file's leading bytes or its extension say it is compressed, else None."""
    with open(path, "rb") as stream:
        start = stream.read(3)
    for name, (magic, suffix, _) in _COMPRESSIONS.items():
        if start.startswith(magic) or path.name.lower().endswith(suffix):
            return name
    return None


def _decompression_fault(path: Path, opener: Callable) -> str:
    """Why the compressed file ``path`` does not decompress to its end with ``opener`` (gzip.open, bz2.open):
    the decompressor's complaint about truncated or corrupt data; "" when it decompresses cleanly."""
    if path.stat().st_size == 0:
        return "the file is empty"
    try:
        with opener(path, "rb") as stream:
            while stream.read(1 << 24):
                pass
    except (OSError, EOFError, zlib.error) as exc:
        return str(exc) or type(exc).__name__
    return ""


def to_standard_axes(raw: np.ndarray, axis_order: tuple[int, int, int]) -> np.ndarray:
    """Transpose a file-order array (sections, rows, columns) to (z, y, x).

    axis_order is (mapc, mapr, maps): which of x=1, y=2, z=3 runs along columns, rows and sections.
    """
    file_axis_of = {axis_order[2]: 0, axis_order[1]: 1, axis_order[0]: 2}
    return np.ascontiguousarray(np.transpose(raw, (file_axis_of[3], file_axis_of[2], file_axis_of[1])))


def write_map(
    path: str | os.PathLike,
    data_zyx: np.ndarray,
    voxel_size_xyz: Vec3,
    origin_xyz: Vec3 = (0.0, 0.0, 0.0),
    nstart_xyz: tuple[int, int, int] = (0, 0, 0),
) -> None:
    """Write a float32 MRC in standard axis order (mapc, mapr, maps = 1, 2, 3), atomically.

    The file appears under its final name only once it is complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as partial, mrcfile.new(partial, overwrite=True) as mrc:
        mrc.set_data(np.ascontiguousarray(data_zyx, dtype=np.float32))
        mrc.voxel_size = tuple(float(v) for v in voxel_size_xyz)
        mrc.header.origin = tuple(float(o) for o in origin_xyz)
        mrc.header.nxstart, mrc.header.nystart, mrc.header.nzstart = (int(n) for n in nstart_xyz)
        mrc.update_header_stats()


def write_like(path: str | os.PathLike, data_zyx: np.ndarray, template: DensityMap) -> None:
    """Write data on the grid of ``template`` (same voxel size, origin and nstart)."""
    write_map(path, template.with_data(data_zyx).data, template.voxel_size, template.origin, template.nstart)


def zoom_by(data_zyx: np.ndarray, factors_zyx: tuple[float, float, float]) -> np.ndarray:
    """Cubic-spline zoom (scipy.ndimage.zoom, order 3, prefilter, constant 0 outside).

    The output shape is round(shape * factor) per axis and, as in scipy, the first and last voxels of the two
    grids coincide (corner-aligned mapping).
    """
    return ndimage.zoom(data_zyx, factors_zyx, order=3, mode="constant", cval=0.0, prefilter=True).astype(np.float32)


def zoom_to_shape(data_zyx: np.ndarray, shape_zyx: tuple[int, int, int]) -> np.ndarray:
    """Cubic-spline zoom onto an exact target shape with the corner-aligned mapping of :func:`zoom_by`.

    This is the inverse of :func:`zoom_by`: it takes a resampled grid back onto the grid it came from without
    the off-by-one shapes that zooming by 1/factor can give.
    """
    factors = tuple(t / s for t, s in zip(shape_zyx, data_zyx.shape))
    out = zoom_by(data_zyx, factors)
    if out.shape != tuple(shape_zyx):  # rounding of shape * (target / shape) cannot miss by more than float noise
        raise AssertionError(f"zoom produced {out.shape}, wanted {shape_zyx}")
    return out
