"""What every benchmark script shares: the machine's description, peak RSS, timing, fresh-process runs and where
results go (benchmarks/results/ JSON and BENCHMARKS.md)."""
from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def machine() -> dict:
    """CPU model, core count, Python version and today's date."""
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "date": datetime.date.today().isoformat()}


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far, GB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes."""
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def run_child(script: str, args: list[str], env: dict[str, str] | None = None) -> dict:
    """Run ``script --child ARGS`` in a fresh interpreter (so its peak RSS is its own); return its last JSON line."""
    cmd = [sys.executable, script, "--child", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


REPO = Path(__file__).resolve().parents[1]


def save_results(name: str, results: dict) -> str:
    """Write ``results`` to benchmarks/results/NAME-<date>-<time>.json; return that path relative to the repository."""
    out_dir = REPO / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M")
    path = out_dir / f"{name}-{stamp}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    return str(path.relative_to(REPO))


def append_to_benchmarks(lines: list[str]) -> None:
    """Append a report section to BENCHMARKS.md and print it."""
    with open(REPO / "BENCHMARKS.md", "a") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))
