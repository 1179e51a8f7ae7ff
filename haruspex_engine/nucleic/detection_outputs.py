"""Writing a Detection: the eight stage-2 maps, optional stage-1 maps, the working map and the JSON summary.

Maps are float32 MRC in standard axis order. On the working grid (the default) they have 1 Å voxels and the
origin of the cropped working map, which places them exactly over the input map in ChimeraX, Coot or Scipion; on
the input grid they have the input's voxel size, origin and nstart. The summary JSON is written last: its presence
means every file it lists is complete (see docs/worker-contract.md).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from haruspex_engine.maps import DensityMap, read_map, write_like
from haruspex_engine.nucleic.classes import STAGE1_CLASSES, STAGE2_CLASSES
from haruspex_engine.nucleic.detection.detect import Detection
from haruspex_engine.nucleic.detection.preprocess import WorkingMap, to_input_grid
from haruspex_engine.summary import describe_input, write_summary

#: Probability above which a voxel counts towards a class's volume in the summary.
VOLUME_THRESHOLD = 0.5


def output_paths(outdir: str | os.PathLike, prefix: str, stage1_maps: bool = False) -> dict[str, Path]:
    """Output name -> path: ``sugar`` -> ``OUT/<prefix>_sugar.mrc`` … ``stage1_sugar`` … ``working``, ``summary``."""
    outdir = Path(outdir).resolve()
    names = list(STAGE2_CLASSES) + ([f"stage1_{c}" for c in STAGE1_CLASSES] if stage1_maps else []) + ["working"]
    paths = {name: outdir / f"{prefix}_{name}.mrc" for name in names}
    paths["summary"] = outdir / f"{prefix}_summary.json"
    return paths


def read_detection_summary(summary_path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, str], DensityMap]:
    """detect-na's summary (as JSON), the output paths it lists and its working map (1 Å voxels), for the steps
    that read the class maps on the working grid (model building, oracle maps).

    ValueError naming the file when the maps were written on the input grid, when it is not a detect-na summary (a
    stage-2 map or the working map not listed) or when the working map is not on a 1 Å grid.
    """
    summary_path = Path(summary_path)
    detection = json.loads(summary_path.read_text())
    if detection.get("output_grid", "working") != "working":
        raise ValueError(f"{summary_path}: the maps were written on the input grid; run detect-na with "
                         "--output-grid working (the default) for model building")
    outputs = detection.get("outputs", {})
    missing = [name for name in (*STAGE2_CLASSES, "working") if name not in outputs]
    if missing:
        raise ValueError(f"{summary_path}: not a detect-na summary (no {', '.join(missing)} maps listed)")
    working = read_map(outputs["working"])
    if not np.allclose(working.voxel_size, 1.0):
        raise ValueError(f"{outputs['working']}: voxel size {working.voxel_size} Å, not the 1 Å working grid")
    return detection, outputs, working


def write_detection(
    detection: Detection,
    working: WorkingMap,
    density: DensityMap,
    paths: dict[str, Path],
    *,
    output_grid: str = "working",
    report: dict[str, Any] | None = None,
    started_at: float | None = None,
) -> dict[str, Path]:
    """Write every map named in ``paths`` (from :func:`output_paths`) and then the summary; return ``paths``.

    output_grid: "working" (1 Å working grid) or "input" (trilinear resampling onto ``density``'s grid; the
    working map itself always stays on its own grid). report: extra summary entries. started_at:
    ``time.perf_counter()`` at the start of the job, for the total time.
    """
    if output_grid not in ("working", "input"):
        raise ValueError(f"unknown output grid {output_grid!r}")
    t_write = time.perf_counter()
    paths["summary"].unlink(missing_ok=True)  # a summary from an earlier run must not vouch for files being rewritten
    grid = working.as_density_map()
    for name, path in paths.items():
        if name == "summary":
            continue
        if name == "working":
            write_like(path, working.data, grid)
            continue
        stage, cls = ("stage1", name[len("stage1_"):]) if name.startswith("stage1_") else ("stage2", name)
        values = (detection.stage1[STAGE1_CLASSES.index(cls)] if stage == "stage1"
                  else detection.stage2[STAGE2_CLASSES.index(cls)])
        if output_grid == "input":
            write_like(path, np.clip(to_input_grid(values, working, density), 0.0, 1.0), density)
        else:
            write_like(path, values, grid)
    timings = {name: stage.seconds for name, stage in detection.stages.items()}
    timings["write"] = time.perf_counter() - t_write
    if started_at is not None:
        timings["total"] = time.perf_counter() - started_at
    summary = {
        "input": describe_input(density),
        "working_grid": {
            "shape_zyx": list(working.data.shape),
            "voxel_size_xyz": [1.0, 1.0, 1.0],
            "origin_xyz": list(working.origin),
            "crop_start_zyx": list(working.crop_start),
        },
        "outputs": {name: str(path) for name, path in paths.items() if name != "summary"},
        "classes": list(STAGE2_CLASSES),
        "stage1_classes": list(STAGE1_CLASSES),
        f"volume_above_{VOLUME_THRESHOLD}_A3": {
            cls: int(np.count_nonzero(detection.stage2[i] > VOLUME_THRESHOLD)) for i, cls in enumerate(STAGE2_CLASSES)
        },
        "stages": {name: stage.as_dict() for name, stage in detection.stages.items()},
        "batch_size": detection.batch_size,
        "warnings": list(detection.warnings),
        **(report or {}),
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
    }
    write_summary(paths["summary"], summary)
    return paths
