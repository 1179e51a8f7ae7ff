"""annotate_map: a density map in, helix / sheet / nucleic-acid / unassigned probability maps out.

Follows the published tool: raw intensities (no normalisation), per-axis cubic-spline resampling to 1.1 Å only
when a voxel edge lies outside [1.0, 1.2] Å, 40³ tiles with 20³ cores at stride 20, probabilities resampled back
onto the input grid. By default the tiles are placed correctly and cover the whole map; ``compat=True``
reproduces the original placement and zero borders exactly.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from haruspex_engine import tiling
from haruspex_engine.annotation.checkpoint import BOX, CHANNELS, CORE
from haruspex_engine.devices import DeviceOutOfMemory
from haruspex_engine.maps import DensityMap, zoom_by, zoom_to_shape
from haruspex_engine.progress import Progress

WORKING_VOXEL_SIZE = 1.1  # Å
VOXEL_SIZE_RANGE = (1.0, 1.2)  # Å, inclusive: maps inside it are used as they are
#: Label value given to each network channel in label maps.
LABEL_VALUES = {"unassigned": 0, "helix": 1, "sheet": 2, "nucleic": 3}

PredictFn = Callable[[np.ndarray], np.ndarray]


@dataclass
class Annotation:
    """Result of annotate_map.

    probabilities: float32 (Z, Y, X, 4) on the input grid, channels in CHANNELS order.
    covered: bool (Z, Y, X), False where no tile wrote a prediction (only in compat mode).
    """

    probabilities: np.ndarray
    covered: np.ndarray
    resampled: bool
    working_voxel_size: tuple[float, float, float]
    tiles: int
    batch_size: int
    timings_s: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def channel(self, name: str) -> np.ndarray:
        return self.probabilities[..., CHANNELS.index(name)]

    @cached_property
    def labels(self) -> np.ndarray:
        """int8 (Z, Y, X): 0 unassigned (or not covered), 1 helix, 2 sheet, 3 nucleic acid."""
        lookup = np.array([LABEL_VALUES[c] for c in CHANNELS], dtype=np.int8)
        labels = lookup[np.argmax(self.probabilities, axis=-1)]
        labels[~self.covered] = LABEL_VALUES["unassigned"]
        return labels

    @cached_property
    def class_fractions(self) -> dict[str, float]:
        """Fraction of map voxels whose label is each class."""
        counts = np.bincount(self.labels.ravel(), minlength=4) / self.covered.size
        return {name: float(counts[value]) for name, value in LABEL_VALUES.items()}


def needs_resampling(voxel_size: tuple[float, float, float]) -> bool:
    low, high = VOXEL_SIZE_RANGE
    return max(voxel_size) > high or min(voxel_size) < low


def working_map(density: DensityMap) -> DensityMap:
    """``density`` on the grid Haruspex works on (see ``annotate_map``).

    Unchanged when every voxel edge is in [1.0, 1.2] Å. Otherwise zoomed per axis by voxel / 1.1 with
    ``maps.zoom_by`` (cubic spline, corner-aligned), so voxel (0, 0, 0) keeps its position and the spacing becomes
    voxel · (n_in − 1) / (n_out − 1) ≈ 1.1 Å; the result carries that position as its origin and nstart 0.
    """
    if not needs_resampling(density.voxel_size):
        return density
    factors = tuple(v / WORKING_VOXEL_SIZE for v in reversed(density.voxel_size))  # z, y, x
    data = zoom_by(density.data, factors)
    voxel = tuple(
        float(v * (n_in - 1) / max(n_out - 1, 1))
        for v, n_in, n_out in zip(density.voxel_size, reversed(density.data.shape), reversed(data.shape))
    )
    return DensityMap(data=data, voxel_size=voxel, origin=density.first_voxel_position, path=density.path)


def annotate_map(
    density: DensityMap,
    predict: PredictFn,
    *,
    batch_size: int = 8,
    compat: bool = False,
    progress: bool = True,
) -> Annotation:
    """Annotate ``density`` with ``predict`` (boxes (B, 40, 40, 40) -> probabilities (B, 20, 20, 20, 4)).

    A DeviceOutOfMemory from ``predict`` halves the batch and retries; the smaller batch is kept for the rest.
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, not {batch_size}")
    timings: dict[str, float] = {}
    warnings: list[str] = []
    t0 = time.perf_counter()
    working = working_map(density)
    resampled = working is not density
    work = working.data
    working_voxel = working.voxel_size
    timings["resample"] = time.perf_counter() - t0

    layout = (tiling.compat_layout if compat else tiling.full_coverage_layout)(work.shape, BOX, CORE)
    t1 = time.perf_counter()
    probs, batch_size = _predict_tiles(layout.pad(work), layout, predict, batch_size, warnings, progress)
    timings["inference"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    covered = probs.sum(axis=-1) > 0
    if resampled:
        probs = np.stack([zoom_to_shape(probs[..., c], density.data.shape) for c in range(len(CHANNELS))], axis=-1)
        covered = zoom_to_shape(covered.astype(np.float32), density.data.shape) > 0.5
        if not compat:  # cubic splines overshoot: bring values back to probabilities that sum to 1
            np.clip(probs, 0.0, 1.0, out=probs)
            probs /= np.maximum(probs.sum(axis=-1, keepdims=True), 1e-12)
    timings["resample_back"] = time.perf_counter() - t2
    return Annotation(
        probabilities=probs,
        covered=covered,
        resampled=resampled,
        working_voxel_size=tuple(float(v) for v in working_voxel),
        tiles=layout.n_tiles,
        batch_size=batch_size,
        timings_s=timings,
        warnings=warnings,
    )


def _predict_tiles(
    padded: np.ndarray,
    layout: tiling.TileLayout,
    predict: PredictFn,
    batch_size: int,
    warnings: list[str],
    show_progress: bool,
) -> tuple[np.ndarray, int]:
    """Run every tile through ``predict`` and stitch the cores; returns (probabilities (Z,Y,X,4), batch size used)."""
    probs = np.zeros(layout.map_shape + (len(CHANNELS),), dtype=np.float32)
    progress = Progress(layout.n_tiles, "annotate", "tile") if show_progress else None
    done = 0
    while done < layout.n_tiles:
        try:
            for positions, boxes in tiling.iter_tile_batches(padded, layout, batch_size, start=done):
                tiling.place_cores(probs, positions, predict(boxes), layout)
                done += len(positions)
                if progress:
                    progress.update(len(positions))
        except DeviceOutOfMemory as exc:
            if batch_size == 1:
                raise
            batch_size = max(1, batch_size // 2)
            warnings.append(f"{exc}; retrying with batch size {batch_size}")
            print(f"annotate: warning: {warnings[-1]}", file=sys.stderr, flush=True)
    if progress:
        progress.close()
    return probs, batch_size
