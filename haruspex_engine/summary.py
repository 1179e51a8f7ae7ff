"""The JSON summary every worker command writes last: its presence means every file it lists is complete."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from haruspex_engine import __version__
from haruspex_engine.atomic_files import write_text_atomically
from haruspex_engine.maps import DensityMap


def describe_input(density: DensityMap) -> dict[str, Any]:
    """The input map as summaries report it: absolute path, shape (z, y, x), voxel size and origin (x, y, z) Å."""
    return {
        "path": str(Path(density.path).resolve()) if density.path else "",
        "shape_zyx": list(density.data.shape),
        "voxel_size_xyz": list(density.voxel_size),
        "origin_xyz": list(density.first_voxel_position),
    }


def write_summary(path: str | os.PathLike, summary: dict[str, Any]) -> None:
    """Write ``summary`` (preceded by the engine version) as indented JSON, atomically."""
    write_text_atomically(path, json.dumps({"engine_version": __version__, **summary}, indent=2) + "\n")
