"""Writing a Detection: the eight stage-2 maps, optional stage-1 maps, the working map and the JSON summary.

Maps are float32 MRC in standard axis order. On the working grid (the default) they have 1 Å voxels and the
origin of the cropped working map, which places them exactly over the input map in ChimeraX, Coot or Scipion; on
the input grid they have the input's voxel size, origin and nstart. The summary JSON is written last: its presence
means every file it lists is complete (see docs/worker-contract.md).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from haruspex_engine.maps import DensityMap, read_map, write_like
from haruspex_engine.nucleic.classes import STAGE1_CLASSES, STAGE2_CLASSES
from haruspex_engine.nucleic.detection.detect import Detection
from haruspex_engine.nucleic.detection.preprocess import WorkingMap, to_input_grid
from haruspex_engine.summary import SummaryError, describe_input, listed_file, read_summary, write_summary

#: Probability above which a voxel counts towards a class's volume in the summary.
VOLUME_THRESHOLD = 0.5
#: The maps model building reads from a detection: the eight stage-2 class maps and the working map.
LISTED_MAPS = (*STAGE2_CLASSES, "working")
#: The fix named when a map the summary lists is neither beside it nor where it says.
MOVED_MAPS_FIX = "keep the maps beside their summary (copy or move the detection folder whole) or run detect-na again"


def output_paths(outdir: str | os.PathLike, prefix: str, stage1_maps: bool = False) -> dict[str, Path]:
    """Output name -> path: ``sugar`` -> ``OUT/<prefix>_sugar.mrc`` … ``stage1_sugar`` … ``working``, ``summary``."""
    outdir = Path(outdir).resolve()
    names = list(STAGE2_CLASSES) + ([f"stage1_{c}" for c in STAGE1_CLASSES] if stage1_maps else []) + ["working"]
    paths = {name: outdir / f"{prefix}_{name}.mrc" for name in names}
    paths["summary"] = outdir / f"{prefix}_summary.json"
    return paths


def read_detection_summary(summary_path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Path], DensityMap]:
    """detect-na's summary (as JSON), the files of its LISTED_MAPS (absolute paths, found by
    :func:`haruspex_engine.summary.listed_file`: those beside the summary first, so a copied or moved detection
    folder reads its own maps) and its working map (1 Å voxels), for the steps that read the class maps on the
    working grid (model building, oracle maps).

    SummaryError (a ValueError) naming the summary when it is cut short or corrupt, when the maps were written on the
    input grid, when it is not a detect-na summary (a stage-2 map or the working map not listed) or when a listed map
    is not there; ValueError naming the working map when it is not on a 1 Å grid.
    """
    summary_path = Path(summary_path)
    detection = read_summary(summary_path, "detect-na")
    if detection.get("output_grid", "working") != "working":
        raise SummaryError(f"{summary_path}: the maps were written on the input grid; run detect-na with "
                           "--output-grid working (the default) for model building")
    outputs = detection.get("outputs")
    outputs = outputs if isinstance(outputs, dict) else {}
    missing = [name for name in LISTED_MAPS if not isinstance(outputs.get(name), str)]
    if missing:
        raise SummaryError(f"{summary_path}: not a detect-na summary (no {', '.join(missing)} maps listed)")
    maps = {name: listed_file(summary_path, f"{name} map", outputs[name], MOVED_MAPS_FIX) for name in LISTED_MAPS}
    working = read_map(maps["working"])
    if not np.allclose(working.voxel_size, 1.0):
        raise ValueError(f"{maps['working']}: voxel size {working.voxel_size} Å, not the 1 Å working grid")
    return detection, maps, working


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
        "stage1_classes": list(STAGE1_CLASSES) if detection.stage1 is not None else [],
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
