"""The `haruspex detect-na` worker end to end (real networks on generated weights) and its refusals."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from haruspex_engine.maps import read_map, write_map
from haruspex_engine.nucleic.classes import STAGE1_CLASSES, STAGE1_RAW_CLASSES, STAGE2_CLASSES
from haruspex_engine.testing.random_cryoread_weights import make_test_weight_set

ENV_KEYS = ("HARUSPEX_CRYOREAD_WEIGHTS", "HARUSPEX_ALLOW_TEST_WEIGHTS", "HARUSPEX_CACHE")


@pytest.fixture(scope="module")
def weight_dir(tmp_path_factory) -> Path:
    return make_test_weight_set(tmp_path_factory.mktemp("cryoread-weights"), seed=5)


def run_cli(*args, env_extra: dict[str, str] | None = None, cache: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    env["HARUSPEX_CACHE"] = str(cache)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "haruspex_engine", "detect-na", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=600)


def _blobs(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape)
    out = np.zeros(shape, np.float32) - 0.05
    for _ in range(15):
        c = rng.uniform(0, shape)
        out += np.exp(-((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) / 6.0)
    return out


def test_detect_na_writes_every_map_with_the_input_origin(tmp_path: Path, weight_dir: Path) -> None:
    voxel, origin = (1.2, 1.1, 0.9), (30.0, -12.0, 7.5)
    write_map(tmp_path / "rna.mrc", _blobs((40, 36, 44)), voxel, origin)
    out = tmp_path / "out"
    result = run_cli(tmp_path / "rna.mrc", "--resolution", "2.8", "--weights-dir", weight_dir, "-o", out,
                     "--stage1-maps", "--output-grid", "input", "--precision", "bf16", "--device", "cpu",
                     env_extra={"HARUSPEX_ALLOW_TEST_WEIGHTS": "1"}, cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    assert "RANDOM TEST WEIGHTS" in result.stderr and "cryoread-0-3A" in result.stderr
    summary = json.loads((out / "rna_summary.json").read_text())
    assert summary["weights"]["set"] == "cryoread-0-3A" and "< 3" in summary["weights"]["why"]
    assert summary["classes"] == list(STAGE2_CLASSES) and summary["stage1_classes"] == list(STAGE1_CLASSES)
    assert set(summary["outputs"]) == set(STAGE2_CLASSES) | {f"stage1_{c}" for c in STAGE1_CLASSES} | {"working"}
    assert summary["stages"]["stage1"]["run"] == 1 and summary["device"] == "cpu"
    assert any("RANDOM TEST WEIGHTS" in w for w in summary["warnings"])
    # 1 Å working grid: floor(n * voxel) per axis, cropped to the positive region, origin shifted by the crop
    work = read_map(summary["outputs"]["working"])
    assert work.voxel_size == pytest.approx((1.0, 1.0, 1.0))
    crop = summary["working_grid"]["crop_start_zyx"]
    assert work.origin == pytest.approx(tuple(o + c for o, c in zip(origin, reversed(crop))))
    assert 0.0 <= work.data.min() and work.data.max() == pytest.approx(1.0)
    for name in list(STAGE2_CLASSES) + [f"stage1_{c}" for c in STAGE1_CLASSES]:
        m = read_map(summary["outputs"][name])
        assert m.data.shape == (40, 36, 44), name
        assert m.voxel_size == pytest.approx(voxel, abs=1e-5) and m.origin == pytest.approx(origin)
        assert 0.0 <= m.data.min() and m.data.max() <= 1.0
    assert not (out / "rna_detect-state").exists()  # the resume state is dropped once the summary exists


def test_missing_weights_exit_3_with_instructions(tmp_path: Path) -> None:
    write_map(tmp_path / "m.mrc", _blobs((20, 20, 20)), (1.0, 1.0, 1.0))
    result = run_cli(tmp_path / "m.mrc", "--resolution", "6.5", "-o", tmp_path / "out", cache=tmp_path / "cache")
    assert result.returncode == 3, result.stderr
    assert "cryoread-5-10A" in result.stderr and "haruspex weights download --set cryoread-5-10A" in result.stderr
    assert not (tmp_path / "out").exists()


def test_resolution_beyond_10_angstrom_is_refused(tmp_path: Path, weight_dir: Path) -> None:
    write_map(tmp_path / "m.mrc", _blobs((20, 20, 20)), (1.0, 1.0, 1.0))
    result = run_cli(tmp_path / "m.mrc", "--resolution", "12", "-o", tmp_path / "out", cache=tmp_path / "cache")
    assert result.returncode == 1 and "beyond the 10 Å" in result.stderr.splitlines()[-1]


def test_a_damaged_stage2_file_fails_before_any_work(tmp_path: Path, weight_dir: Path) -> None:
    damaged = tmp_path / "weights"
    shutil.copytree(weight_dir, damaged)
    data = (damaged / "stage2_network.pth").read_bytes()
    (damaged / "stage2_network.pth").write_bytes(data[: len(data) // 2])
    write_map(tmp_path / "m.mrc", _blobs((20, 20, 20)), (1.0, 1.0, 1.0))
    result = run_cli(tmp_path / "m.mrc", "--resolution", "3.5", "--weights-dir", damaged, "-o", tmp_path / "out",
                     env_extra={"HARUSPEX_ALLOW_TEST_WEIGHTS": "1"}, cache=tmp_path / "cache")
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 1 and last.startswith("haruspex: error:") and "stage2_network.pth" in last
    assert "stage 1" not in result.stderr


def test_test_weights_are_refused_outside_the_test_suite(tmp_path: Path, weight_dir: Path) -> None:
    write_map(tmp_path / "m.mrc", _blobs((20, 20, 20)), (1.0, 1.0, 1.0))
    result = run_cli(tmp_path / "m.mrc", "--resolution", "3.5", "-o", tmp_path / "out",
                     env_extra={"HARUSPEX_CRYOREAD_WEIGHTS": str(weight_dir)}, cache=tmp_path / "cache")
    assert result.returncode == 1 and "random weights generated for tests" in result.stderr


def test_an_empty_map_is_refused_with_its_name(tmp_path: Path, weight_dir: Path) -> None:
    write_map(tmp_path / "empty.mrc", np.full((20, 20, 20), -1.0, np.float32), (1.0, 1.0, 1.0))
    result = run_cli(tmp_path / "empty.mrc", "--resolution", "3.5", "--weights-dir", weight_dir,
                     "-o", tmp_path / "out", env_extra={"HARUSPEX_ALLOW_TEST_WEIGHTS": "1"}, cache=tmp_path / "cache")
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 1 and "empty.mrc" in last


class _ZeroNetwork:
    """Stands in for DetectionNetwork: zero probabilities of the right shape, in no time."""

    def __init__(self, state, stage: int, **options) -> None:
        self.channels = len(STAGE1_RAW_CLASSES) if stage == 1 else len(STAGE2_CLASSES)

    def __call__(self, boxes: np.ndarray) -> np.ndarray:
        return np.zeros((len(boxes), self.channels) + boxes.shape[-3:], np.float32)


def test_every_summary_warning_is_also_printed_on_the_console(tmp_path: Path, weight_dir: Path, monkeypatch,
                                                              capsys) -> None:
    """A contour above the map's maximum and a map scaled far beyond cryo-EM values: both on stderr and in JSON."""
    from haruspex_engine import cli
    from haruspex_engine.nucleic.detection import networks

    monkeypatch.setattr(networks, "DetectionNetwork", _ZeroNetwork)
    monkeypatch.setenv("HARUSPEX_ALLOW_TEST_WEIGHTS", "1")
    write_map(tmp_path / "scaled.mrc", _blobs((24, 24, 24)) * np.float32(1e7), (1.0, 1.0, 1.0))
    out = tmp_path / "out"
    code = cli.main(["detect-na", str(tmp_path / "scaled.mrc"), "--resolution", "3.5", "--weights-dir",
                     str(weight_dir), "-o", str(out), "--contour", "1e9", "--device", "cpu", "-q"])
    stderr = capsys.readouterr().err
    assert code == 0, stderr
    warnings = json.loads((out / "scaled_summary.json").read_text())["warnings"]
    assert any(w.startswith("contour 1e+09 is not below the map maximum") for w in warnings)
    assert any("implausibly large density values" in w for w in warnings)
    for warning in warnings:
        assert warning in stderr, warning
