"""Reading a map file's MRC/CCP4 header on the Scipion side, and telling whether the file holds the whole map.

Only the header is read (with mrcfile, strictly, as the engine reads maps): a file is a usable map when the header
is valid, describes a real-valued 3-D grid and the file holds every byte of data the header announces. The engine
(``haruspex_engine.maps.read_map``) reads the voxels later; reading them here would double the input/output of each
map. Compressed files (gzip, bzip2) are refused: Scipion's image library, through which the protocols convert their
input maps, reads uncompressed maps only.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import mrcfile
from mrcfile.utils import data_dtype_from_header

Vec3 = tuple[float, float, float]

#: Leading bytes of the compressed formats mrcfile would open (and Scipion could not).
COMPRESSED_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bzip2"}
#: Bytes of an MRC header before the extended header.
HEADER_BYTES = 1024


class MapFileError(ValueError):
    """A file that is not a complete, usable map; the message says why (without the path)."""


@dataclass(frozen=True)
class MapHeader:
    """What the header of a map file says: grid size (x, y, z) in voxels, voxel size (x, y, z) in Å, and the
    position in Å (x, y, z) of voxel (0, 0, 0) as the engine places it (see ``first_voxel_position``)."""

    shape_xyz: tuple[int, int, int]
    voxel_size: Vec3
    origin: Vec3
    nstart_xyz: tuple[int, int, int]

    def first_voxel_position(self, sampling: float) -> Vec3:
        """Position in Å of voxel (0, 0, 0) with *sampling* Å/voxel: the header origin when any component of it is
        non-zero, otherwise ``nstart * sampling`` (the engine's rule, after ChimeraX and Scipion)."""
        if any(self.origin):
            return self.origin
        return tuple(float(n * sampling) for n in self.nstart_xyz)


def read_map_header(path: str) -> MapHeader:
    """The header of the map file *path*. MapFileError when the file is compressed, is not a valid MRC/CCP4 file,
    is not a real-valued 3-D map, or is shorter than its header says (still being written, or cut short)."""
    with open(path, "rb") as stream:
        start = stream.read(3)
    for magic, name in COMPRESSED_MAGIC.items():
        if start.startswith(magic):
            raise MapFileError(f"{name}-compressed; Scipion reads uncompressed MRC/CCP4 maps only, decompress it")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.open(path, mode="r", permissive=False, header_only=True) as mrc:
                header = mrc.header.copy()
                voxel = mrc.voxel_size
                voxel_size = (float(voxel.x), float(voxel.y), float(voxel.z))
    except (ValueError, OSError, EOFError) as exc:
        raise MapFileError(f"not a readable MRC/CCP4 map ({exc or type(exc).__name__})") from None
    size_crs = (int(header.nx), int(header.ny), int(header.nz))
    axis_order = (int(header.mapc), int(header.mapr), int(header.maps))
    if sorted(axis_order) != [1, 2, 3]:
        raise MapFileError(f"invalid axis order mapc/mapr/maps = {axis_order}")
    if min(size_crs) < 2:
        raise MapFileError(f"a grid of {'x'.join(map(str, size_crs))} voxels, not a 3-D map")
    try:
        dtype = data_dtype_from_header(header)
    except ValueError as exc:
        raise MapFileError(str(exc)) from None
    if dtype.kind == "c":
        raise MapFileError("complex-valued (Fourier) data, not a density map")
    expected = HEADER_BYTES + int(header.nsymbt) + size_crs[0] * size_crs[1] * size_crs[2] * dtype.itemsize
    actual = os.path.getsize(path)
    if actual < expected:
        raise MapFileError(f"{actual} bytes where the header announces {expected}: incomplete")
    nstart_crs = (int(header.nxstart), int(header.nystart), int(header.nzstart))
    # Sizes and nstart are stored per column / row / section: reorder them to x, y, z.
    shape_xyz = tuple(size_crs[axis_order.index(axis)] for axis in (1, 2, 3))
    nstart_xyz = tuple(nstart_crs[axis_order.index(axis)] for axis in (1, 2, 3))
    origin = (float(header.origin.x), float(header.origin.y), float(header.origin.z))
    return MapHeader(shape_xyz=shape_xyz, voxel_size=voxel_size, origin=origin, nstart_xyz=nstart_xyz)
