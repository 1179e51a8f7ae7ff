"""Writing an Annotation: probability maps, label map, optional density-weighted maps and the JSON summary.

Every map is written on the input map's grid (voxel size, origin, nstart). The summary JSON is written last; its
presence means every file it lists is complete (see docs/worker-contract.md).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from haruspex_engine.annotation.annotate import CHANNELS, Annotation
from haruspex_engine.maps import DensityMap, write_like
from haruspex_engine.summary import describe_input, write_summary

#: Output classes in the order files are written and listed.
CLASS_ORDER = ("helix", "sheet", "nucleic", "unassigned")


def output_paths(outdir: Path, prefix: str, density_weighted: bool) -> dict[str, Path]:
    """Output name -> path, e.g. ``helix`` -> ``OUT/<prefix>_helix.mrc``; ``summary`` -> the JSON."""
    names = list(CLASS_ORDER) + ["labels"]
    if density_weighted:
        names += [f"{c}_weighted" for c in CLASS_ORDER]
    paths = {name: outdir / f"{prefix}_{name}.mrc" for name in names}
    paths["summary"] = outdir / f"{prefix}_summary.json"
    return paths


def write_annotation(
    annotation: Annotation,
    density: DensityMap,
    outdir: str | os.PathLike,
    prefix: str,
    *,
    density_weighted: bool = False,
    report: dict | None = None,
    started_at: float | None = None,
) -> dict[str, Path]:
    """Write all outputs of ``annotation`` of ``density``; ``report`` adds entries to the summary JSON.

    started_at: ``time.perf_counter()`` at the start of the whole job, for the summary's total time.

    Density-weighted maps are probability × input density, like the original tool's ``-d`` (values can be
    negative where the density is).
    """
    t_write = time.perf_counter()
    outdir = Path(outdir).resolve()
    paths = output_paths(outdir, prefix, density_weighted)
    stale = paths["summary"]
    stale.unlink(missing_ok=True)  # a summary from an earlier run must not vouch for files being rewritten
    for name in CLASS_ORDER:
        probability = annotation.channel(name)
        write_like(paths[name], probability, density)
        if density_weighted:
            write_like(paths[f"{name}_weighted"], probability * density.data, density)
    write_like(paths["labels"], annotation.labels.astype(np.float32), density)
    timings = {**annotation.timings_s, "write": time.perf_counter() - t_write}
    if started_at is not None:
        timings["total"] = time.perf_counter() - started_at
    summary = {
        "input": describe_input(density),
        "outputs": {name: str(path) for name, path in paths.items() if name != "summary"},
        "label_values": {"unassigned": 0, "helix": 1, "sheet": 2, "nucleic": 3},
        "class_fractions": annotation.class_fractions,
        "network_channels": list(CHANNELS),
        "tiles": annotation.tiles,
        "batch_size": annotation.batch_size,
        "resampled": annotation.resampled,
        "working_voxel_size_xyz": list(annotation.working_voxel_size),
        "warnings": list(annotation.warnings),
        **(report or {}),
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
    }
    write_summary(paths["summary"], summary)
    return paths
