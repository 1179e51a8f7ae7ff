"""MapFolderWatch: the rules by which *import maps (streaming)* takes map files from a watched folder, poll after
poll (pwem's streaming imports poll the same way, every SCIPION_EM_NEW_FILE_CHECK_SEC seconds).

- A file is taken once it is complete: its size and modification time are the same as at the previous poll (so
  never at the poll that first sees it), it has not been modified for the file timeout, and its header reads as a
  whole map (``read_map_header``: a valid MRC/CCP4 header and every byte of data it announces).
- A file that is stable but not a usable map is skipped, reported once; it is looked at again only if it changes
  (a copy that had stalled and resumes).
- The watch is over when no file is waiting to become stable and either a stop was asked for (stop file) or nothing
  new has been seen for the timeout; a file still being written delays both.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..map_header import MapFileError, MapHeader, read_map_header

STOPPED = "stop asked for"
TIMED_OUT = "no new file for the timeout"


@dataclass(frozen=True)
class FileState:
    """What a poll saw of a file: its size in bytes and its modification time (seconds since the epoch)."""

    size: int
    mtime: float


@dataclass
class PollResult:
    """What one poll found among the files it was given (each in the order given)."""

    ready: list[tuple[str, MapHeader]] = field(default_factory=list)  # complete maps, taken now
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why): stable, not a usable map
    waiting: list[str] = field(default_factory=list)  # new or changed since the previous poll, or too recent


class MapFolderWatch:
    """Which of a folder's files are complete maps, poll after poll (rules in the module docstring)."""

    def __init__(self, fileTimeout_s: float, timeout_s: float, taken: Iterable[str] = (),
                 now: Callable[[], float] = time.time,
                 readHeader: Callable[[str], MapHeader] = read_map_header):
        """*fileTimeout_s*: seconds a file must be left unmodified before it is taken; *timeout_s*: seconds without
        any new file after which the watch is over; *taken*: files already taken (by an earlier run)."""
        self.fileTimeout_s = fileTimeout_s
        self.timeout_s = timeout_s
        self._now = now
        self._readHeader = readHeader
        self._taken = set(taken)
        self._seen: dict[str, FileState] = {}  # files not taken yet, as the previous poll saw them
        self._skipped: dict[str, FileState] = {}  # unusable files, in the state they were found unusable
        self._waiting = False
        self._lastActivity = now()

    def poll(self, paths: Iterable[str]) -> PollResult:
        """Look at the folder's files *paths* (all of them, at each poll): which are complete maps now, which are
        skipped as unusable, which are still waiting."""
        now = self._now()
        result = PollResult()
        present = set()
        for path in paths:
            if path in self._taken:
                continue
            state = _state(path)
            if state is None:  # removed since it was listed
                continue
            present.add(path)
            if self._skipped.get(path) == state:
                continue
            previous, self._seen[path] = self._seen.get(path), state
            if state != previous or now - state.mtime < self.fileTimeout_s:
                result.waiting.append(path)
                continue
            try:
                header = self._readHeader(path)
            except (MapFileError, OSError) as exc:
                self._skipped[path] = state
                result.skipped.append((path, str(exc)))
                continue
            self._taken.add(path)
            del self._seen[path]
            result.ready.append((path, header))
        self._seen = {path: state for path, state in self._seen.items() if path in present}
        self._waiting = bool(result.waiting)
        if result.ready or result.skipped or result.waiting:
            self._lastActivity = now
        return result

    def finished(self, stopRequested: bool) -> str | None:
        """Why the watch is over (STOPPED, TIMED_OUT), or None while it goes on: never while the last poll found
        a file waiting."""
        if self._waiting:
            return None
        if stopRequested:
            return STOPPED
        if self._now() - self._lastActivity >= self.timeout_s:
            return TIMED_OUT
        return None


def _state(path: str) -> FileState | None:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return FileState(size=stat.st_size, mtime=stat.st_mtime)
