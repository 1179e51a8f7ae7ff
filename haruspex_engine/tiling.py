"""Sliding-window tiles over a 3-D map: placement arithmetic, batching and stitching.

A network sees a cubic input box of ``box`` voxels per edge and predicts a cubic ``core`` of voxels centred in it
(Haruspex: box 40, core 20). All indices are voxels along the array axes (z, y, x); nothing here knows about Å.

Two placements are provided:
- :func:`full_coverage_layout` (the engine's default): the map is zero-padded by the margin ``(box - core) / 2``
  before and as much as needed after, cores tile the map without gaps or overlaps, and every voxel of the map gets
  a prediction from a tile whose input is centred on it. Works for maps smaller than one box.
- :func:`compat_layout`: the original Haruspex arithmetic, reproduced exactly: no padding, input starts
  ``min(stride*m, S-box)``, cores written at ``min(stride*m + margin, S-box)`` (which misplaces the last one or two
  cores per axis by up to ``margin`` voxels), later tiles overwrite earlier ones, unwritten voxels stay 0.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

Shape3 = tuple[int, int, int]


@dataclass(frozen=True)
class TileLayout:
    """Where each tile reads its input and writes its core.

    box, core: tile edges in voxels. pad_before / padded_shape: zero padding applied to the map before reading
    (z, y, x). in_starts[a] / out_starts[a]: per axis a, the input start in the padded grid and the core start in
    the map grid of each tile position. Tiles are enumerated in C order (z slowest).
    """

    box: int
    core: int
    map_shape: Shape3
    pad_before: Shape3
    padded_shape: Shape3
    in_starts: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]
    out_starts: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]

    @property
    def grid(self) -> Shape3:
        """Number of tile positions along z, y, x."""
        return tuple(len(s) for s in self.in_starts)

    @property
    def n_tiles(self) -> int:
        return math.prod(self.grid)

    def tile_positions(self) -> Iterator[Shape3]:
        """Tile grid indices (iz, iy, ix) in C order."""
        return iter(np.ndindex(*self.grid))

    def pad(self, volume: np.ndarray) -> np.ndarray:
        """The map zero-padded to ``padded_shape`` (a view of the input when no padding is needed)."""
        if volume.shape != self.map_shape:
            raise ValueError(f"volume shape {volume.shape} does not match the layout's map shape {self.map_shape}")
        after = [p - s - b for p, s, b in zip(self.padded_shape, self.map_shape, self.pad_before)]
        if not any(self.pad_before) and not any(after):
            return volume
        return np.pad(volume, list(zip(self.pad_before, after)), mode="constant", constant_values=0)


def full_coverage_layout(map_shape: Shape3, box: int = 40, core: int = 20) -> TileLayout:
    """Cores of edge ``core`` tiling the whole map at stride ``core``, each centred in its input box."""
    margin = _margin(box, core)
    counts = [max(1, math.ceil(s / core)) for s in map_shape]
    starts = tuple(tuple(core * m for m in range(g)) for g in counts)
    return TileLayout(
        box=box,
        core=core,
        map_shape=tuple(map_shape),
        pad_before=(margin,) * 3,
        padded_shape=tuple(core * g + 2 * margin for g in counts),
        in_starts=starts,
        out_starts=starts,
    )


def compat_layout(map_shape: Shape3, box: int = 40, core: int = 20, stride: int = 20) -> TileLayout:
    """The original tool's placement, bugs included (see module docstring). Needs at least ``box`` voxels per axis."""
    margin = _margin(box, core)
    if min(map_shape) < box:
        raise ValueError(
            f"compatibility mode needs at least {box} voxels along every axis (map is {tuple(map_shape)}); "
            "the original tool fails on such maps. Run without --compat: the default placement pads small maps."
        )
    counts = [math.ceil((s - (box - core)) / stride) for s in map_shape]
    in_starts = tuple(tuple(min(stride * m, s - box) for m in range(g)) for s, g in zip(map_shape, counts))
    out_starts = tuple(tuple(min(stride * m + margin, s - box) for m in range(g)) for s, g in zip(map_shape, counts))
    return TileLayout(
        box=box,
        core=core,
        map_shape=tuple(map_shape),
        pad_before=(0, 0, 0),
        padded_shape=tuple(map_shape),
        in_starts=in_starts,
        out_starts=out_starts,
    )


def _margin(box: int, core: int) -> int:
    if core > box or (box - core) % 2:
        raise ValueError(f"core {core} must be centred in box {box}")
    return (box - core) // 2


def iter_tile_batches(
    padded: np.ndarray, layout: TileLayout, batch_size: int, start: int = 0
) -> Iterator[tuple[list[Shape3], np.ndarray]]:
    """Yield (tile positions, input boxes) in C order, ``batch_size`` tiles at a time, from tile number ``start``.

    padded: the map after :meth:`TileLayout.pad`, axes (z, y, x). Boxes: float32 array (B, box, box, box).
    """
    positions = list(layout.tile_positions())[start:]
    b = layout.box
    for first in range(0, len(positions), batch_size):
        chunk = positions[first:first + batch_size]
        boxes = np.empty((len(chunk), b, b, b), dtype=np.float32)
        for i, (iz, iy, ix) in enumerate(chunk):
            z, y, x = layout.in_starts[0][iz], layout.in_starts[1][iy], layout.in_starts[2][ix]
            boxes[i] = padded[z:z + b, y:y + b, x:x + b]
        yield chunk, boxes


def place_cores(out: np.ndarray, positions: list[Shape3], cores: np.ndarray, layout: TileLayout) -> None:
    """Write predicted cores into ``out`` in order (a later tile overwrites an earlier one where they overlap).

    out: array (Z, Y, X, ...) on the map grid. cores: (B, core, core, core, ...). Cores reaching past the map
    edge are clipped.
    """
    c = layout.core
    for (iz, iy, ix), core in zip(positions, cores):
        z, y, x = layout.out_starts[0][iz], layout.out_starts[1][iy], layout.out_starts[2][ix]
        dz, dy, dx = (min(c, s - o) for s, o in zip(out.shape[:3], (z, y, x)))
        out[z:z + dz, y:y + dy, x:x + dx] = core[:dz, :dy, :dx]
