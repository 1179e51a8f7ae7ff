"""Files that appear complete or not at all: written under a temporary name next to the target, then renamed."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PARTIAL_SUFFIX = ".part"


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` to write to; on leaving the block it is renamed to ``path``, or
    removed when the block raised, so ``path`` never holds a half-written file."""
    path = Path(path)
    partial = path.with_name(path.name + PARTIAL_SUFFIX)
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def write_text_atomically(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (``atomic_path``); returns the path."""
    with atomic_path(path) as partial:
        partial.write_text(text)
    return Path(path)
