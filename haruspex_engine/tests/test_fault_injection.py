"""Faults injected into real worker processes: killed at several points, interrupted, run twice at once, fed a
corrupted compressed map. Each case checks what a user or a facility script sees afterwards: one `haruspex: error:`
line, a folder that never mixes two runs' files, and a rerun that finishes (or resumes).

The other faults of docs/reliability.md are tested where their code lives (weights: test_weights.py; stale build-na
files, full disk, -o on a file: test_output_prefix.py; refine-na: test_refine.py)."""
from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from haruspex_engine.maps import read_map, write_map
from haruspex_engine.testing.random_cryoread_weights import make_test_weight_set
from haruspex_engine.testing.random_weights import make_test_checkpoint

#: Seconds a test waits for a worker to reach the point where the fault is injected.
WAIT_S = 300


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return make_test_checkpoint(tmp_path_factory.mktemp("haruspex-weights"), seed=3)


@pytest.fixture(scope="module")
def cryoread_weights(tmp_path_factory) -> Path:
    return make_test_weight_set(tmp_path_factory.mktemp("cryoread-weights"), seed=5)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARUSPEX_")}
    env.update(HARUSPEX_CACHE=str(tmp_path / "cache"), HARUSPEX_ALLOW_TEST_WEIGHTS="1", TF_CPP_MIN_LOG_LEVEL="2",
               **extra)
    return env


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    """The worker as a user starts it from a terminal: with Ctrl-C's default action, even where the tests run in a
    background job (whose children inherit SIGINT ignored, and Python then installs no KeyboardInterrupt handler)."""
    return subprocess.Popen([sys.executable, "-m", "haruspex_engine", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "haruspex_engine", *args], env=env, capture_output=True, text=True,
                          timeout=600)


def _wait_for(path: Path, process: subprocess.Popen, gone: bool = False) -> None:
    """Poll (every 10 ms) until ``path`` exists (gone: no longer exists); fail if the process ends first."""
    deadline = time.monotonic() + WAIT_S
    while path.exists() == gone:
        assert process.poll() is None, f"the worker ended before {path.name} appeared: {process.communicate()}"
        assert time.monotonic() < deadline, f"{path.name} did not appear"
        time.sleep(0.01)


def _one_error_line(stderr: str) -> str:
    """The worker's last line, checked to be its only error line and the output to hold no traceback."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("haruspex: error:")]
    assert len(errors) == 1 and stderr.strip().splitlines()[-1] == errors[0], stderr
    return errors[0]


def _map(path: Path, size: int, voxel: float, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    write_map(path, rng.random((size, size, size), dtype=np.float32), (voxel,) * 3, (0.0, 0.0, 0.0))
    return path


def _only_this_runs_maps(out: Path, voxel: float, new_map: Path) -> None:
    """Every complete map in ``out`` is on the new run's grid and no earlier-run file is left; a summary, if the
    kill came too late to stop the run, is the new run's."""
    names = {p.name for p in out.iterdir()}
    assert not any("weighted" in n for n in names), names
    if "in_summary.json" in names:
        assert json.loads((out / "in_summary.json").read_text())["input"]["path"] == str(new_map.resolve())
    for name in names:
        if name.endswith(".mrc"):
            assert read_map(out / name).voxel_size == pytest.approx((voxel,) * 3), name


@pytest.mark.parametrize("kill_when", ["computing", "writing"])
def test_annotate_killed_over_an_earlier_run_never_leaves_a_mix(tmp_path, checkpoint, kill_when):
    env = _env(tmp_path, HARUSPEX_CHECKPOINT=str(checkpoint))
    out = tmp_path / "out"
    earlier = _run(["annotate", str(_map(tmp_path / "old.mrc", 30, 1.0)), "-o", str(out), "--prefix", "in",
                    "--density-weighted", "-q"], env)
    assert earlier.returncode == 0, earlier.stderr
    new_map = _map(tmp_path / "in.mrc", 64, 1.1, seed=1)
    worker = _start(["annotate", str(new_map), "-o", str(out), "-q"], env)
    _wait_for(out / "in_helix.mrc", worker, gone=True)  # the earlier run's files go once the run holds the prefix
    if kill_when == "writing":
        _wait_for(out / "in_helix.mrc", worker)
    else:  # it computes for seconds before writing
        time.sleep(0.5)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=60)
    _only_this_runs_maps(out, 1.1, new_map)

    rerun = _run(["annotate", str(new_map), "-o", str(out), "-q"], env)
    assert rerun.returncode == 0, rerun.stderr
    listed = {Path(p).name for p in json.loads((out / "in_summary.json").read_text())["outputs"].values()}
    assert {p.name for p in out.iterdir()} == listed | {"in_summary.json"}  # no lock, no .part, no old file


def test_a_second_run_on_the_same_prefix_is_refused_while_the_first_finishes(tmp_path, checkpoint):
    env = _env(tmp_path, HARUSPEX_CHECKPOINT=str(checkpoint))
    out = tmp_path / "out"
    first = _start(["annotate", str(_map(tmp_path / "in.mrc", 96, 1.1)), "-o", str(out), "-q"], env)  # ~1 min
    _wait_for(out / ".in.lock", first)
    second = _run(["annotate", str(tmp_path / "in.mrc"), "-o", str(out), "-q"], env)
    assert second.returncode == 1
    line = _one_error_line(second.stderr)
    assert f"haruspex annotate (pid {first.pid}" in line and "is writing the files of prefix 'in'" in line
    _, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr
    assert (out / "in_summary.json").exists() and not (out / ".in.lock").exists()


def test_detect_na_interrupted_says_where_its_stages_are_and_resumes(tmp_path, cryoread_weights):
    env = _env(tmp_path)
    rng = np.random.default_rng(0)
    z, y, x = np.indices((48, 48, 48))
    density = sum(np.exp(-((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) / 6.0)
                  for c in rng.uniform(4, 44, (20, 3))).astype(np.float32)
    write_map(tmp_path / "rna.mrc", density, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    args = ["detect-na", str(tmp_path / "rna.mrc"), "--resolution", "3.5", "--weights-dir", str(cryoread_weights),
            "-o", str(tmp_path / "out"), "--device", "cpu", "-q"]
    worker = _start(args, env)
    state = tmp_path / "out" / "rna_detect-state"
    _wait_for(state / "stage1.json", worker)
    worker.send_signal(signal.SIGINT)
    _, stderr = worker.communicate(timeout=600)
    assert worker.returncode == 130, stderr
    assert _one_error_line(stderr) == (f"haruspex: error: interrupted (Ctrl-C); finished stages are kept in {state}; "
                                       "rerun the same command to resume from them")
    assert not (tmp_path / "out" / "rna_summary.json").exists()

    rerun = _run(args, env)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads((tmp_path / "out" / "rna_summary.json").read_text())
    assert summary["stages"]["stage1"]["reused"] is True and summary["stages"]["stage2"]["reused"] is False


@pytest.mark.parametrize("command", ["annotate", "detect-na"])
def test_a_corrupted_gz_map_is_one_error_line(tmp_path, checkpoint, cryoread_weights, command):
    raw = _map(tmp_path / "raw.mrc", 40, 1.0).read_bytes()
    packed = gzip.compress(raw)
    damaged = tmp_path / "in.mrc.gz"
    damaged.write_bytes(packed[: len(packed) // 2])
    extra = (["--resolution", "3.5", "--weights-dir", str(cryoread_weights)] if command == "detect-na" else [])
    result = _run([command, str(damaged), "-o", str(tmp_path / "out"), *extra],
                  _env(tmp_path, HARUSPEX_CHECKPOINT=str(checkpoint)))
    assert result.returncode == 1
    assert str(damaged) in _one_error_line(result.stderr)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
