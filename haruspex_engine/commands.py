"""Pieces every `haruspex` command shares: the one-line error, the exit status, default output prefixes.

Command modules import these from here, never from ``cli`` (which imports the command modules to register them).
"""
from __future__ import annotations

from pathlib import Path

#: Exit status of a command that failed with a `haruspex: error: ...` line.
EXIT_FAILED = 1
#: Exit status after Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130


class CommandError(Exception):
    """A failure reported as one `haruspex: error: ...` line."""


#: Extensions a map file name may end with, removed in this order for default output prefixes (compression first).
MAP_SUFFIXES = (".gz", ".bz2", ".mrc", ".map", ".ccp4", ".mrcs")


def default_prefix(path: Path, suffixes: tuple[str, ...] = MAP_SUFFIXES) -> str:
    """File name without its extension(s) among ``suffixes`` (checked in order): emd_1234.map.gz -> emd_1234;
    with model_files.MODEL_SUFFIXES, 6v5b_model.cif.gz -> 6v5b_model."""
    name = path.name
    for suffix in suffixes:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name or path.stem
