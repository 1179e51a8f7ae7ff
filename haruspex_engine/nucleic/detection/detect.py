"""detect_nucleic_acids: CryoREAD's two-stage sliding-window detection on a prepared 1 Å working map.

Stage 1 reads 64³ boxes of the normalised density and predicts 9 channels (chain: sugar, phosphate, base, protein;
raw base types A, U, C, G, T), averaged where boxes overlap; then U and T are merged (UT = max) as the original
does, after the averaging, giving the 8 stage-1 maps. Stage 2 reads the same boxes of those 8 maps and predicts
the final 8 classes (sugar, phosphate, A, U/T, C, G, protein, base), combined by maximum. A box is run only when
it holds enough signal, judged from the map before any box is cut (the original's rules):
  stage 1: more than 0.1 % of its 64³ voxels have normalised density > contour (> 0 when the contour is ≤ 0);
  stage 2: in addition, more than 0.1 % of 64³ of its 8-channel input values exceed 0.5 (counted over channels).
Everything is float32 on the working grid; memory is the maps plus one batch of boxes.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from haruspex_engine import tiling
from haruspex_engine.devices import DeviceOutOfMemory
from haruspex_engine.nucleic.classes import BOX, STAGE1_CLASSES, STAGE1_RAW_CLASSES, STAGE2_CLASSES, merge_ut
from haruspex_engine.nucleic.detection.preprocess import WorkingMap
from haruspex_engine.nucleic.detection.stage_cache import StageCache
from haruspex_engine.progress import Progress

#: A box is kept when more than this fraction of box³ counts as signal (see module docstring).
MIN_SIGNAL_FRACTION = 0.001
#: Stage-2 input values above this count as signal.
STAGE2_SIGNAL_PROBABILITY = 0.5

PredictFn = Callable[[np.ndarray], np.ndarray]


@dataclass
class StageReport:
    """boxes: positions in the layout; run: boxes kept and predicted; reused: taken from a finished earlier run."""

    boxes: int
    run: int
    reused: bool
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {"boxes": self.boxes, "run": self.run, "skipped": self.boxes - self.run, "reused": self.reused,
                "seconds": round(self.seconds, 3)}


@dataclass
class Detection:
    """Result of detect_nucleic_acids, on the working grid.

    stage1: float32 (8, Z, Y, X) probabilities in STAGE1_CLASSES order (None from the one-network demo detector);
    stage2: float32 (8, Z, Y, X) in STAGE2_CLASSES order. batch_size: the batch finally used (smaller than asked
    after an out-of-memory back-off).
    """

    stage1: np.ndarray | None
    stage2: np.ndarray
    stages: dict[str, StageReport]
    batch_size: int
    warnings: list[str] = field(default_factory=list)

    def channel(self, name: str) -> np.ndarray:
        """Stage-2 probability map (Z, Y, X) of class ``name``."""
        return self.stage2[STAGE2_CLASSES.index(name)]


def detect_nucleic_acids(
    working: WorkingMap,
    stage1: PredictFn,
    stage2: PredictFn,
    *,
    stride: int = 32,
    batch_size: int = 1,
    cache: StageCache | None = None,
    fingerprint: dict[str, Any] | None = None,
    progress: bool = True,
) -> Detection:
    """Run both stages over ``working``.

    stage1: boxes (B, 64, 64, 64) -> (B, 9, 64, 64, 64) in STAGE1_RAW_CLASSES order (U and T not merged, e.g.
    DetectionNetwork(..., merge_ut=False)); stage2: (B, 8, 64, 64, 64) ->
    (B, 8, 64, 64, 64) in STAGE2_CLASSES order (e.g. nucleic.networks.DetectionNetwork). stride: voxels between
    box starts. cache + fingerprint: finished stages are saved there and reused by a rerun with the same
    fingerprint (which must describe the map, options and weights). A DeviceOutOfMemory halves the batch.
    """
    layout = tiling.sliding_window_layout(working.data.shape, BOX, stride)
    warnings: list[str] = []
    runner = _StageRunner(layout, batch_size, warnings, progress)
    stages: dict[str, StageReport] = {}

    threshold = max(working.contour, 0.0)
    stage1_keep = tiling.occupied_tiles(working.data, layout, threshold, MIN_SIGNAL_FRACTION)
    probabilities1, stages["stage1"] = _cached_stage(
        "stage1", cache, fingerprint,
        lambda: merge_ut(runner.run("stage 1", working.data, stage1_keep, stage1, "mean", len(STAGE1_RAW_CLASSES)),
                         axis=0),
        layout.n_tiles, len(stage1_keep),
    )
    if probabilities1.shape != (len(STAGE1_CLASSES),) + working.data.shape:
        raise ValueError(f"stage 1 gave shape {probabilities1.shape}, expected (8,) + {working.data.shape}")

    stage2_keep = np.intersect1d(  # "additionally": a stage-2 box must also have passed the stage-1 rule
        stage1_keep, tiling.occupied_tiles(probabilities1, layout, STAGE2_SIGNAL_PROBABILITY, MIN_SIGNAL_FRACTION)
    )
    fingerprint2 = None if fingerprint is None else {**fingerprint, "after": "stage1"}
    probabilities2, stages["stage2"] = _cached_stage(
        "stage2", cache, fingerprint2,
        lambda: runner.run("stage 2", probabilities1, stage2_keep, stage2, "max", len(STAGE2_CLASSES)),
        layout.n_tiles, len(stage2_keep),
    )
    return Detection(probabilities1, probabilities2, stages, runner.batch_size, warnings)


def detect_with_one_network(
    working: WorkingMap,
    predict: PredictFn,
    *,
    stride: int = 32,
    batch_size: int = 1,
    cache: StageCache | None = None,
    fingerprint: dict[str, Any] | None = None,
    progress: bool = True,
) -> Detection:
    """The demo detector's path (``demo_network``): one network from the working map straight to the eight stage-2
    classes. predict: boxes (B, 64, 64, 64) -> (B, 8, 64, 64, 64) in STAGE2_CLASSES order; boxes are kept by the
    stage-1 rule and averaged where they overlap (as stage 1 is). The result's stage1 is None; its one stage is
    reported as "stage2". cache, fingerprint, stride and batch size as for detect_nucleic_acids."""
    layout = tiling.sliding_window_layout(working.data.shape, BOX, stride)
    warnings: list[str] = []
    runner = _StageRunner(layout, batch_size, warnings, progress)
    keep = tiling.occupied_tiles(working.data, layout, max(working.contour, 0.0), MIN_SIGNAL_FRACTION)
    probabilities, report = _cached_stage(
        "stage2", cache, fingerprint,
        lambda: runner.run("detection", working.data, keep, predict, "mean", len(STAGE2_CLASSES)),
        layout.n_tiles, len(keep),
    )
    return Detection(None, probabilities, {"stage2": report}, runner.batch_size, warnings)


def _cached_stage(
    name: str,
    cache: StageCache | None,
    fingerprint: dict[str, Any] | None,
    compute: Callable[[], np.ndarray],
    boxes: int,
    run: int,
) -> tuple[np.ndarray, StageReport]:
    t0 = time.perf_counter()
    if cache is not None and fingerprint is not None:
        saved = cache.load(name, fingerprint)
        if saved is not None:
            print(f"detect-na: {name}: reusing the result of an earlier run ({cache.directory})", file=sys.stderr,
                  flush=True)
            return saved, StageReport(boxes, run, True, time.perf_counter() - t0)
    result = compute()
    if cache is not None and fingerprint is not None:
        cache.save(name, fingerprint, result)
    return result, StageReport(boxes, run, False, time.perf_counter() - t0)


class _StageRunner:
    """Runs one network over the kept boxes of a layout, with progress and out-of-memory back-off."""

    def __init__(self, layout: tiling.TileLayout, batch_size: int, warnings: list[str], progress: bool):
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, not {batch_size}")
        self.layout = layout
        self.batch_size = batch_size
        self.warnings = warnings
        self.progress = progress

    def run(self, label: str, volume: np.ndarray, keep: np.ndarray, predict: PredictFn, mode: str,
            channels: int) -> np.ndarray:
        """volume: (Z, Y, X) or (C, Z, Y, X) on the working grid; returns the combined (channels, Z, Y, X) float32."""
        stitcher = tiling.Stitcher(self.layout, channels, mode)
        padded = self.layout.pad(volume)
        bar = Progress(len(keep), label, "box") if self.progress else None
        done = 0
        while done < len(keep):
            try:
                for positions, boxes in tiling.iter_tile_batches(
                    padded, self.layout, self.batch_size, start=done, tiles=keep
                ):
                    stitcher.add(positions, predict(boxes))
                    done += len(positions)
                    if bar:
                        bar.update(len(positions))
            except DeviceOutOfMemory as exc:
                if self.batch_size == 1:
                    raise
                self.batch_size = max(1, self.batch_size // 2)
                self.warnings.append(f"{label}: {exc}; retrying with batch size {self.batch_size}")
                print(f"detect-na: warning: {self.warnings[-1]}", file=sys.stderr, flush=True)
        if bar:
            bar.close()
        return stitcher.result()

