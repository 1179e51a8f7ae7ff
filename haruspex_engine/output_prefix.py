"""A run owns its output prefix: one run at a time per (folder, prefix), and nothing an earlier run wrote survives.

Every command writes its files as ``FOLDER/PREFIX_<name>``. Before it writes, ``claim_prefix``

* takes an exclusive lock on the prefix (``FOLDER/.PREFIX.lock``, an ``fcntl.flock`` lock, which the kernel releases
  when the process dies, so a killed run never leaves the prefix locked), and refuses a second run of the same
  folder and prefix with a message naming the run that holds it;
* removes every file of the command's outputs that an earlier run left (each name the command can write, under
  any options, and its ``.part`` temporary), so a folder never mixes two runs' files. Files the caller names as
  inputs are never removed; neither is anything outside the command's own output names (a user's own
  ``PREFIX_notes.txt`` stays).

The lock file is removed when the run ends (``release_prefixes``). Rerun state that a command keeps on purpose
(detect-na's finished stages, train's checkpoints) is not among the names passed here, so resuming still works.
"""
from __future__ import annotations

import fcntl
import glob
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from haruspex_engine.atomic_files import PARTIAL_SUFFIX
from haruspex_engine.commands import CommandError

#: The prefixes this process holds: (lock file, its open handle carrying the lock).
_held: list[tuple[Path, TextIO]] = []


def prepare_output_folder(folder: Path) -> Path:
    """Create ``folder`` (and its parents) if needed; a CommandError when it exists and is not a folder.
    Returns the resolved path."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise CommandError(f"{folder}: exists and is not a folder; give -o/--output-dir a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # a parent is a file
        raise CommandError(f"{folder}: cannot create the output folder (a part of the path is a file); "
                           "give -o/--output-dir a folder") from None
    return folder.resolve()


def claim_prefix(folder: Path, prefix: str, outputs: Iterable[str | os.PathLike], command: str,
                 inputs: Iterable[str | os.PathLike] = (), numbered: Iterable[str] = ()) -> Path:
    """Take ``prefix`` in ``folder`` for this run (see the module docstring) and return the resolved folder. The
    claim holds until ``release_prefixes`` (``cli.main`` calls it when the command ends) or the process ends.
    outputs: every file the command can write there (only the file names count); numbered: glob patterns, relative
    to ``folder``, of numbered outputs (``glob.escape`` the prefix in them); files of either left by an earlier run
    are removed, with their ``.part`` temporaries. inputs: files of this run never removed, even if an output name
    matches one. command: the command's name, for the message a second run gets."""
    folder = prepare_output_folder(folder)
    lock_path = folder / f".{prefix}.lock"
    lock = open(lock_path, "a+")  # noqa: SIM115 (held open until release_prefixes)
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "another haruspex run"
        lock.close()
        raise CommandError(f"{folder}: {holder} is writing the files of prefix '{prefix}' there; wait for it to "
                           "finish, or choose another -o/--output-dir or --prefix") from None
    _held.append((lock_path, lock))
    lock.seek(0)
    lock.truncate()
    lock.write(f"haruspex {command} (pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')})\n")
    lock.flush()
    remove_earlier_outputs(folder, outputs, inputs, numbered)
    return folder


def release_prefixes() -> None:
    """Give up every prefix this process claimed (remove the lock files, then release the locks)."""
    while _held:
        lock_path, lock = _held.pop()
        lock_path.unlink(missing_ok=True)
        lock.close()


def remove_earlier_outputs(folder: Path, outputs: Iterable[str | os.PathLike],
                           inputs: Iterable[str | os.PathLike] = (), numbered: Iterable[str] = ()) -> list[Path]:
    """Remove the files of ``folder`` named as ``outputs`` (only their file names count) and those matching the glob
    patterns ``numbered`` (relative to ``folder``) that exist, with their ``.part`` temporaries, except ``inputs``;
    JSON files (the summaries) first, so a run killed while removing never leaves a summary listing a removed file.
    Returns the removed paths."""
    keep = {Path(p).resolve() for p in inputs}
    candidates = [folder / Path(path).name for path in outputs]
    candidates += [folder / name for pattern in numbered for name in glob.glob(pattern, root_dir=folder)]
    candidates.sort(key=lambda path: path.suffix != ".json")  # summaries first: none outlives a file it lists
    removed = []
    for path in candidates:
        for leftover in (path, path.with_name(path.name + PARTIAL_SUFFIX)):
            if leftover.is_file() and leftover.resolve() not in keep:
                leftover.unlink()
                removed.append(leftover)
    return removed
