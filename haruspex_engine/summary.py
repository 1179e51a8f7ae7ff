"""The JSON summary every worker command writes last: its presence means every file it lists is complete."""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
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


#: How every summary file's name ends: ``PREFIX_summary.json``.
SUMMARY_SUFFIX = "_summary.json"


class SummaryError(ValueError):
    """A summary that cannot be read or found, or a file it lists that is not there; the message names the file
    and the fix."""


def read_summary(path: Path, producer: str) -> dict[str, Any]:
    """The JSON summary at ``path`` as a dict. SummaryError naming ``path`` when it cannot be read, is cut short or
    corrupt, or is not a JSON object; ``producer`` is the command that writes it (e.g. "detect-na"), for the fix."""
    rerun = f"run `haruspex {producer}` again (or copy its whole output folder again)"
    try:
        value = json.loads(Path(path).read_text())
    except OSError as exc:
        raise SummaryError(f"{path}: cannot read the summary ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise SummaryError(f"{path}: the summary is cut short or corrupt (JSON: {exc}); {rerun}") from None
    if not isinstance(value, dict):
        raise SummaryError(f"{path}: not a {producer} summary (a JSON object is expected); {rerun}")
    return value


def find_summary(path: Path, outputs: Sequence[str], producer: str) -> Path:
    """The summary ``path`` names: the file itself, or the one ``*_summary.json`` in directory ``path`` whose
    "outputs" list every name in ``outputs``. SummaryError naming ``path`` when there is none (naming the
    summaries there that cannot be read and why) or several."""
    if path.is_file():
        return path
    if not path.is_dir():
        raise SummaryError(f"{path}: no such file or directory")
    found, unreadable = [], []
    for candidate in sorted(path.glob(f"*{SUMMARY_SUFFIX}")):
        try:
            listed = read_summary(candidate, producer).get("outputs")
        except SummaryError as exc:
            unreadable.append(str(exc))
            continue
        if isinstance(listed, dict) and all(name in listed for name in outputs):
            found.append(candidate)
    if len(found) > 1:
        raise SummaryError(f"{path}: {len(found)} {producer} summaries ({', '.join(p.name for p in found)}); "
                           "give the one to use")
    if found:
        return found[0]
    if unreadable:
        raise SummaryError(f"{path}: no readable {producer} summary in this directory: {'; '.join(unreadable)}")
    raise SummaryError(f"{path}: no {producer} summary (*{SUMMARY_SUFFIX} listing the {', '.join(outputs)} maps) "
                       "in this directory")


def listed_file(summary_path: Path, what: str, listed: str, fix: str) -> Path:
    """The file a summary lists (``listed``, e.g. its "outputs" entry for ``what``), as an absolute path: the file of
    the same name beside the summary, so a copied or moved output folder reads its own files; else the listed path
    (a relative one taken from the summary's folder) when it exists. SummaryError naming the summary, the file and
    ``fix`` otherwise."""
    folder = Path(summary_path).parent.absolute()
    beside = folder / Path(listed).name
    if beside.is_file():
        return beside
    elsewhere = folder / listed  # an absolute listed path stays as it is
    if elsewhere.is_file():
        return elsewhere
    raise SummaryError(f"{summary_path}: its {what} {Path(listed).name} is neither beside it nor at {elsewhere}; {fix}")
