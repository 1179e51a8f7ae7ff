"""Sliding-window tiles over a 3-D map: placement arithmetic, box selection, batching and stitching.

A network sees a cubic input box of ``box`` voxels per edge and predicts a cubic ``core`` of voxels centred in it.
All indices are voxels along the array axes (z, y, x); nothing here knows about Å. Volumes are (Z, Y, X) or, with
channels, (C, Z, Y, X) for inputs; the three spatial axes are always the last three of an input.

Three placements are provided:
- :func:`full_coverage_layout` (Haruspex default, box 40, core 20): the map is zero-padded by the margin
  ``(box - core) / 2`` before and as much as needed after, cores tile the map without gaps or overlaps, and every
  voxel of the map gets a prediction from a tile whose input is centred on it. Works for maps smaller than one box.
- :func:`compat_layout`: the original Haruspex arithmetic, reproduced exactly: no padding, input starts
  ``min(stride*m, S-box)``, cores written at ``min(stride*m + margin, S-box)`` (which misplaces the last one or two
  cores per axis by up to ``margin`` voxels), later tiles overwrite earlier ones, unwritten voxels stay 0.
- :func:`sliding_window_layout` (CryoREAD, box 64): the whole box is the prediction (core = box); boxes start at
  0, stride, 2*stride ... and the last one is moved back to end at the map edge, so boxes overlap and every
  voxel is covered; predictions are combined by mean or maximum (:class:`Stitcher`).

Tiles are numbered in C order of their (iz, iy, ix) grid position (z slowest). :func:`count_above` measures how
much of each box is occupied without building any box, so that callers can run only the boxes worth running
(``tiles=`` of :func:`iter_tile_batches`).
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

Shape3 = tuple[int, int, int]
PLACE_MODES = ("overwrite", "max", "sum")
STITCH_MODES = {"mean": "sum", "max": "max"}  # Stitcher mode -> place_cores mode


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

    def position(self, tile: int) -> Shape3:
        """Grid index (iz, iy, ix) of tile number ``tile`` (C order)."""
        return tuple(int(i) for i in np.unravel_index(tile, self.grid))

    def pad(self, volume: np.ndarray) -> np.ndarray:
        """The map (Z, Y, X) or (C, Z, Y, X) zero-padded to ``padded_shape`` on its last three axes (a view of
        the input when no padding is needed)."""
        if volume.shape[-3:] != self.map_shape:
            raise ValueError(f"volume shape {volume.shape} does not match the layout's map shape {self.map_shape}")
        after = [p - s - b for p, s, b in zip(self.padded_shape, self.map_shape, self.pad_before)]
        if not any(self.pad_before) and not any(after):
            return volume
        leading = [(0, 0)] * (volume.ndim - 3)
        return np.pad(volume, leading + list(zip(self.pad_before, after)), mode="constant", constant_values=0)


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


def sliding_window_layout(map_shape: Shape3, box: int = 64, stride: int = 32) -> TileLayout:
    """Overlapping boxes whose whole extent is the prediction (core = box), at ``stride`` voxels.

    Per axis of n voxels the starts are 0, stride, 2*stride ... up to n - box, plus n - box itself when it is not
    a multiple of the stride (the box that would pass the edge is moved back to end on it; duplicates removed).
    An axis shorter than ``box`` has the single start 0 and is zero-padded after the map up to ``box``.
    """
    if not 1 <= stride <= box:
        raise ValueError(f"stride {stride} must be between 1 and the box edge {box} (larger strides leave gaps)")
    starts = tuple(sliding_starts(n, box, stride) for n in map_shape)
    return TileLayout(
        box=box,
        core=box,
        map_shape=tuple(map_shape),
        pad_before=(0, 0, 0),
        padded_shape=tuple(max(n, box) for n in map_shape),
        in_starts=starts,
        out_starts=starts,
    )


def sliding_starts(n: int, box: int, stride: int) -> tuple[int, ...]:
    """Box starts along one axis of ``n`` voxels: multiples of ``stride`` below n, each at most max(n - box, 0),
    without duplicates.

    CryoREAD keeps the duplicates: it moves the box of every start in [n - box, n) back to n - box, so it runs that
    last box several times (twice for box 64, stride 32) and counts it as often in its stage-1 average. Here each
    distinct box is run and counted once (a deliberate difference, listed in the README under detect-na).
    """
    last = max(n - box, 0)
    return tuple(sorted({min(s, last) for s in range(0, max(n, 1), stride)}))


def _margin(box: int, core: int) -> int:
    if core > box or (box - core) % 2:
        raise ValueError(f"core {core} must be centred in box {box}")
    return (box - core) // 2


def count_above(volume: np.ndarray, layout: TileLayout, threshold: float) -> np.ndarray:
    """Number of values above ``threshold`` in each tile's input box, by tile number (C order), int64 (n_tiles,).

    volume: the unpadded map (Z, Y, X), or (C, Z, Y, X) to count over all channels together. Zero padding read by
    a box counts like any other value. Uses a summed-area table of the map: O(map) once, then O(1) per box.
    """
    if volume.shape[-3:] != layout.map_shape:
        raise ValueError(f"volume shape {volume.shape} does not match the layout's map shape {layout.map_shape}")
    channels = volume[None] if volume.ndim == 3 else volume
    table = _summed_area_table(channels, threshold)
    # box extent inside the map, per axis: [lo, hi) in map indices
    bounds = []
    for starts, pad, n in zip(layout.in_starts, layout.pad_before, layout.map_shape):
        first = np.asarray(starts) - pad
        bounds.append((np.clip(first, 0, n), np.clip(first + layout.box, 0, n)))
    (z0, z1), (y0, y1), (x0, x1) = bounds
    z0, z1 = z0[:, None, None], z1[:, None, None]
    y0, y1 = y0[None, :, None], y1[None, :, None]
    counts = (
        table[z1, y1, x1] - table[z0, y1, x1] - table[z1, y0, x1] - table[z1, y1, x0]
        + table[z0, y0, x1] + table[z0, y1, x0] + table[z1, y0, x0] - table[z0, y0, x0]
    ).astype(np.int64)
    if threshold < 0:  # padded voxels hold 0, which is above a negative threshold
        inside = (z1 - z0) * (y1 - y0) * (x1 - x0)
        counts += len(channels) * (layout.box ** 3 - inside)
    return counts.reshape(-1)


def _summed_area_table(channels: np.ndarray, threshold: float) -> np.ndarray:
    """T (Z+1, Y+1, X+1) with T[z, y, x] = number of values > threshold in channels[:, :z, :y, :x]."""
    shape = channels.shape[1:]
    dtype = np.int32 if channels.size < np.iinfo(np.int32).max else np.int64
    table = np.zeros(tuple(n + 1 for n in shape), dtype=dtype)
    inner = table[1:, 1:, 1:]
    for channel in channels:
        inner += channel > threshold
    for axis in range(3):
        np.cumsum(table, axis=axis, out=table)
    return table


def occupied_tiles(volume: np.ndarray, layout: TileLayout, threshold: float, min_fraction: float) -> np.ndarray:
    """Tile numbers (ascending) whose count of values above ``threshold`` exceeds ``min_fraction`` of box³.

    volume: (Z, Y, X) or (C, Z, Y, X) as for :func:`count_above`; with channels the count is summed over them
    and still compared with box³.
    """
    counts = count_above(volume, layout, threshold)
    return np.flatnonzero(counts / layout.box ** 3 > min_fraction)


def iter_tile_batches(
    padded: np.ndarray,
    layout: TileLayout,
    batch_size: int,
    start: int = 0,
    tiles: Sequence[int] | None = None,
) -> Iterator[tuple[list[Shape3], np.ndarray]]:
    """Yield (tile positions, input boxes), ``batch_size`` tiles at a time.

    tiles: tile numbers to read, in this order (default: all tiles in C order); the first ``start`` of them are
    skipped (to resume after an interruption). padded: the map after :meth:`TileLayout.pad`, axes (Z, Y, X) or
    (C, Z, Y, X). Boxes: float32 (B, box, box, box) or (B, C, box, box, box).
    """
    numbers = range(layout.n_tiles) if tiles is None else tiles
    positions = [layout.position(t) for t in numbers[start:]]
    b = layout.box
    for first in range(0, len(positions), batch_size):
        chunk = positions[first:first + batch_size]
        boxes = np.empty((len(chunk),) + padded.shape[:-3] + (b, b, b), dtype=np.float32)
        for i, (iz, iy, ix) in enumerate(chunk):
            z, y, x = layout.in_starts[0][iz], layout.in_starts[1][iy], layout.in_starts[2][ix]
            boxes[i] = padded[..., z:z + b, y:y + b, x:x + b]
        yield chunk, boxes


def place_cores(
    out: np.ndarray,
    positions: Sequence[Shape3],
    cores: np.ndarray,
    layout: TileLayout,
    mode: str = "overwrite",
    channels_first: bool = False,
    count: np.ndarray | None = None,
) -> None:
    """Put predicted cores into ``out`` on the map grid; cores reaching past the map edge are clipped.

    Channel-last (default): out (Z, Y, X, ...), cores (B, core, core, core, ...). channels_first: out (..., Z, Y, X),
    cores (B, ..., core, core, core). mode "overwrite": a later tile replaces an earlier one where they overlap;
    "max": element-wise maximum with what is there; "sum": added, and ``count`` (Z, Y, X) incremented where the
    core lands (for averaging).
    """
    if mode not in PLACE_MODES:
        raise ValueError(f"unknown placement mode {mode!r}; use one of {PLACE_MODES}")
    if (mode == "sum") != (count is not None):
        raise ValueError("a count array is needed with mode 'sum', and only with it")
    c = layout.core
    spatial = out.shape[-3:] if channels_first else out.shape[:3]
    for (iz, iy, ix), core in zip(positions, cores):
        start = (layout.out_starts[0][iz], layout.out_starts[1][iy], layout.out_starts[2][ix])
        window = tuple(slice(o, o + min(c, n - o)) for o, n in zip(start, spatial))
        clip = tuple(slice(0, w.stop - w.start) for w in window)
        target = out[(Ellipsis, *window)] if channels_first else out[window]
        value = core[(Ellipsis, *clip)] if channels_first else core[clip]
        if mode == "overwrite":
            target[...] = value
        elif mode == "max":
            np.maximum(target, value, out=target)
        else:
            target += value
            count[window] += 1


class Stitcher:
    """Combines channel-first box predictions (B, C, core, core, core) on the map grid into (C, Z, Y, X) float32.

    mode "mean": sum and count accumulators, sum / count at the end (CryoREAD stage 1); "max": element-wise
    maximum (stage 2). Voxels no tile covered are 0. Memory: one float32 (C, Z, Y, X) array, plus for "mean" a
    (Z, Y, X) count of the smallest unsigned type that holds the largest possible overlap (uint16 for stride >= 2
    with box 64); boxes are added batch by batch and never kept.
    """

    def __init__(self, layout: TileLayout, channels: int, mode: str = "mean"):
        if mode not in STITCH_MODES:
            raise ValueError(f"unknown combination mode {mode!r}; use one of {tuple(STITCH_MODES)}")
        self.layout = layout
        self.mode = mode
        shape = (channels,) + tuple(layout.map_shape)
        self._values = np.zeros(shape, np.float32) if mode == "mean" else np.full(shape, -np.inf, np.float32)
        self._count = np.zeros(layout.map_shape, _overlap_dtype(layout)) if mode == "mean" else None
        self._finished = False

    def add(self, positions: Sequence[Shape3], predictions: np.ndarray) -> None:
        """Add a batch: ``predictions`` (B, C, core, core, core) for the tiles at ``positions``."""
        if self._finished:
            raise RuntimeError("predictions added after the result was taken")
        place_cores(self._values, positions, predictions, self.layout,
                    mode=STITCH_MODES[self.mode], channels_first=True, count=self._count)

    def result(self) -> np.ndarray:
        """The combined (C, Z, Y, X) float32 map (finalised in place on the first call)."""
        if not self._finished:
            if self.mode == "mean":
                np.divide(self._values, self._count, out=self._values, where=self._count > 0)
            else:
                np.copyto(self._values, np.float32(0.0), where=np.isneginf(self._values))
            self._finished = True
        return self._values


def _overlap_dtype(layout: TileLayout) -> np.dtype:
    """Smallest unsigned integer type holding the largest number of cores covering one voxel."""
    most = 1
    for starts, n in zip(layout.out_starts, layout.map_shape):
        cover = np.zeros(n + layout.core, dtype=np.int64)
        for s in starts:
            cover[s:s + layout.core] += 1
        most *= int(cover.max())
    return np.min_scalar_type(most)
