"""Console progress with rate and ETA for long loops.

On a terminal a live tqdm bar is drawn. When stderr is a file or a pipe (a Scipion run log, a batch job), the same
tqdm-formatted status is printed as whole lines at most every ``interval_s`` seconds, so logs stay readable.
"""
from __future__ import annotations

import sys
import time

from tqdm import tqdm


class Progress:
    """Counts ``total`` units of work labelled ``label`` (e.g. tiles; bytes with ``unit_scale``: kB, MB, …).

    ``total`` may be ``None`` when it is not known in advance (then no ETA is shown).
    """

    def __init__(self, total: int | None, label: str, unit: str, interval_s: float = 10.0, unit_scale: bool = False):
        self.total = total
        self.label = label
        self.unit = unit
        self.unit_scale = unit_scale
        self.interval_s = interval_s
        self.done = 0
        self._start = time.perf_counter()
        self._last_line = self._start
        self._bar = None
        if sys.stderr.isatty():
            self._bar = tqdm(total=total, desc=label, unit=unit, unit_scale=unit_scale, file=sys.stderr)

    def update(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.perf_counter()
        finished = self.total is not None and self.done >= self.total
        if now - self._last_line >= self.interval_s or finished:
            self._last_line = now
            print(self.status(), file=sys.stderr, flush=True)

    def status(self) -> str:
        """e.g. ``annotate:  16%|███       | 120/729 [00:57<04:50, 2.10tile/s]``."""
        elapsed = time.perf_counter() - self._start
        return tqdm.format_meter(self.done, self.total, elapsed, prefix=self.label, unit=self.unit,
                                 unit_scale=self.unit_scale, ncols=80)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
