"""Saved results of finished pipeline stages, so a rerun resumes where a failed or killed run stopped.

A stage's result is one array, stored as ``<name>.npy`` with a ``<name>.json`` beside it that records the stage's
*fingerprint*: everything its result depends on (input file identity, options, weights, engine version). A later
run reuses the array only when the fingerprint is identical. The array is written under a temporary name and
renamed, and the JSON is written after it, so a half-written result is never taken for a finished one.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from haruspex_engine.atomic_files import atomic_path, write_text_atomically


class StageCache:
    """Finished-stage results kept in ``directory`` (created on the first save)."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)

    def load(self, name: str, fingerprint: dict[str, Any]) -> np.ndarray | None:
        """The saved result of stage ``name`` if it was made with exactly ``fingerprint``, else ``None``."""
        record, array = self._paths(name)
        try:
            saved = json.loads(record.read_text())
        except (OSError, ValueError):
            return None
        if saved != _canonical(fingerprint) or not array.is_file():
            return None
        try:
            return np.load(array, mmap_mode=None, allow_pickle=False)
        except (OSError, ValueError):
            return None

    def save(self, name: str, fingerprint: dict[str, Any], result: np.ndarray) -> None:
        """Keep ``result`` of stage ``name``; its fingerprint record is written last."""
        self.directory.mkdir(parents=True, exist_ok=True)
        record, array = self._paths(name)
        record.unlink(missing_ok=True)
        with atomic_path(array) as partial, open(partial, "wb") as fh:
            np.save(fh, result, allow_pickle=False)
        write_text_atomically(record, json.dumps(_canonical(fingerprint), indent=1, sort_keys=True) + "\n")

    def clear(self) -> None:
        """Forget every saved stage (after the whole job has finished)."""
        shutil.rmtree(self.directory, ignore_errors=True)

    def _paths(self, name: str) -> tuple[Path, Path]:
        return self.directory / f"{name}.json", self.directory / f"{name}.npy"


def _canonical(fingerprint: dict[str, Any]) -> Any:
    """The fingerprint as it reads back from JSON (tuples become lists), for comparisons."""
    return json.loads(json.dumps(fingerprint, sort_keys=True))
