"""The `haruspex annotate` worker end to end (real network on generated weights) and its bad-input behaviour."""
import gzip
import json
import os
import subprocess
import sys

import mrcfile
import numpy as np
import pytest

from haruspex_engine.maps import read_map, write_map
from haruspex_engine.testing.random_weights import make_test_checkpoint

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_test_checkpoint(tmp_path_factory.mktemp("weights"), seed=3)


def run_cli(*args, env_extra=None, tmp_path=None):
    env = {k: v for k, v in os.environ.items() if k not in ("HARUSPEX_CHECKPOINT", "HARUSPEX_ALLOW_TEST_WEIGHTS")}
    if tmp_path is not None:
        env["HARUSPEX_CACHE"] = str(tmp_path / "empty-cache")
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "haruspex_engine", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=600)


def _blobs(shape, seed=0):
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape)
    out = np.zeros(shape, np.float32)
    for _ in range(12):
        c = rng.uniform(0, shape)
        out += np.exp(-((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) / 8.0)
    return out


def test_annotate_writes_every_output_on_the_input_grid(tmp_path, checkpoint):
    voxel, origin = (1.0, 1.5, 0.9), (12.5, -7.0, 33.0)
    write_map(tmp_path / "in.mrc", _blobs((26, 30, 35)), voxel, origin)
    out = tmp_path / "out"
    result = run_cli("annotate", tmp_path / "in.mrc", "-o", out, "--density-weighted", "--batch-size", "4",
                     env_extra={"HARUSPEX_CHECKPOINT": str(checkpoint), "HARUSPEX_ALLOW_TEST_WEIGHTS": "1"})
    assert result.returncode == 0, result.stderr
    assert "RANDOM TEST WEIGHTS" in result.stderr and "ETA" not in result.stdout
    summary = json.loads((out / "in_summary.json").read_text())
    names = {"helix", "sheet", "nucleic", "unassigned", "labels"}
    assert set(summary["outputs"]) == names | {f"{n}_weighted" for n in names - {"labels"}}
    assert summary["resampled"] is True  # 1.5 Å and 0.9 Å are outside [1.0, 1.2]
    assert summary["device"] == "cpu" and summary["precision"] == "fp32"
    assert sum(summary["class_fractions"].values()) == pytest.approx(1.0)
    assert any("RANDOM TEST WEIGHTS" in w for w in summary["warnings"])
    assert set(summary["timings_s"]) >= {"read", "resample", "inference", "write", "total"}
    maps = {name: read_map(path) for name, path in summary["outputs"].items()}
    for m in maps.values():
        assert m.data.shape == (26, 30, 35)
        assert m.voxel_size == pytest.approx(voxel, abs=1e-5) and m.origin == pytest.approx(origin)
    total = sum(maps[n].data for n in ("helix", "sheet", "nucleic", "unassigned"))
    assert np.allclose(total, 1.0, atol=1e-4)
    assert set(np.unique(maps["labels"].data)) <= {0.0, 1.0, 2.0, 3.0}
    density = read_map(tmp_path / "in.mrc").data
    assert np.allclose(maps["helix_weighted"].data, maps["helix"].data * density, atol=1e-6)
    assert not list(out.glob("*.part"))


def test_missing_weights_explain_how_to_install_and_exit_non_zero(tmp_path):
    write_map(tmp_path / "in.mrc", _blobs((20, 20, 20)), (1.1, 1.1, 1.1))
    result = run_cli("annotate", tmp_path / "in.mrc", "-o", tmp_path / "out", tmp_path=tmp_path)
    assert result.returncode == 3
    assert "haruspex weights download" in result.stderr and "HARUSPEX_CHECKPOINT" in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_random_weights_are_refused_outside_tests(tmp_path, checkpoint):
    write_map(tmp_path / "in.mrc", _blobs((20, 20, 20)), (1.1, 1.1, 1.1))
    result = run_cli("annotate", tmp_path / "in.mrc", "-o", tmp_path / "out",
                     env_extra={"HARUSPEX_CHECKPOINT": str(checkpoint)})
    assert result.returncode == 1
    assert "random weights generated for tests" in result.stderr


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b"\0" * 100), "not a readable MRC"),
        (lambda p: write_map(p, np.zeros((30, 30, 30), np.float32), (1.1, 1.1, 1.1)), "the map is constant"),
        (lambda p: _write_nan(p), "NaN or infinite"),
    ],
    ids=["corrupt", "all-zero", "nan"],
)
def test_bad_maps_fail_cleanly_and_write_nothing(tmp_path, checkpoint, make, message):
    make(tmp_path / "bad.mrc")
    result = run_cli("annotate", tmp_path / "bad.mrc", "-o", tmp_path / "out",
                     env_extra={"HARUSPEX_CHECKPOINT": str(checkpoint), "HARUSPEX_ALLOW_TEST_WEIGHTS": "1"})
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("haruspex: error: ") and "bad.mrc" in last and message in last
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def _write_nan(path):
    data = _blobs((20, 20, 20))
    data[3, 4, 5] = np.nan
    write_map(path, data, (1.1, 1.1, 1.1))


def test_compat_mode_on_a_map_smaller_than_a_tile_is_a_clear_error(tmp_path, checkpoint):
    write_map(tmp_path / "tiny.mrc", _blobs((12, 50, 50)), (1.1, 1.1, 1.1))
    result = run_cli("annotate", tmp_path / "tiny.mrc", "-o", tmp_path / "out", "--compat",
                     env_extra={"HARUSPEX_CHECKPOINT": str(checkpoint), "HARUSPEX_ALLOW_TEST_WEIGHTS": "1"})
    assert result.returncode == 1 and "at least 40 voxels" in result.stderr


def test_unwritable_output_directory_is_a_clear_error(tmp_path, checkpoint):
    write_map(tmp_path / "in.mrc", _blobs((20, 20, 20)), (1.1, 1.1, 1.1))
    (tmp_path / "taken").write_text("a file where the output directory should go\n")
    result = run_cli("annotate", tmp_path / "in.mrc", "-o", tmp_path / "taken" / "out",
                     env_extra={"HARUSPEX_CHECKPOINT": str(checkpoint), "HARUSPEX_ALLOW_TEST_WEIGHTS": "1"})
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("haruspex: error: ") and "taken" in last and "Traceback" not in result.stderr


def test_gpu_requested_without_a_gpu_is_an_error(tmp_path, checkpoint):
    write_map(tmp_path / "in.mrc", _blobs((20, 20, 20)), (1.1, 1.1, 1.1))
    result = run_cli("annotate", tmp_path / "in.mrc", "-o", tmp_path / "out", "--device", "gpu",
                     env_extra={"HARUSPEX_CHECKPOINT": str(checkpoint), "HARUSPEX_ALLOW_TEST_WEIGHTS": "1",
                                "CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode == 1 and "--device gpu was asked for but no GPU is usable" in result.stderr


def test_help_explains_outputs_and_weights():
    result = run_cli("annotate", "--help")
    assert result.returncode == 0
    for words in ("_helix.mrc", "0 unassigned, 1 helix, 2 sheet, 3 nucleic acid", "--compat", "HARUSPEX_CHECKPOINT"):
        assert words in result.stdout


def _write_truncated_gz(path):
    write_map(path.with_suffix(""), _blobs((20, 20, 20)), (1.1, 1.1, 1.1))
    data = gzip.compress(path.with_suffix("").read_bytes())
    path.write_bytes(data[: len(data) // 2])


def _write_flipped_gz(path):  # a bit flip early in the stream: zlib.error, which used to escape as a traceback
    write_map(path.with_suffix(""), _blobs((20, 20, 20)), (1.1, 1.1, 1.1))
    data = gzip.compress(path.with_suffix("").read_bytes())
    path.write_bytes(data[:40] + bytes([data[40] ^ 0xFF]) + data[41:])


def _write_particle_stack(path):
    with mrcfile.new(path) as mrc:
        mrc.set_data(_blobs((12, 20, 20)))
        mrc.set_image_stack()
        mrc.voxel_size = 1.1


@pytest.mark.parametrize(
    "name, make, message",
    [
        ("in.mrc.gz", _write_truncated_gz, "corrupt or truncated gzip data"),
        ("in.mrc.gz", _write_flipped_gz, "corrupt or truncated gzip data"),
        ("in.mrcs", _write_particle_stack, "an image stack of 12 images, not a volume"),
    ],
    ids=["truncated-gz", "corrupt-gz", "mrcs-stack"],
)
def test_damaged_compressed_maps_and_image_stacks_fail_in_one_line(tmp_path, checkpoint, name, make, message):
    make(tmp_path / name)
    result = run_cli("annotate", tmp_path / name, "-o", tmp_path / "out",
                     env_extra={"HARUSPEX_CHECKPOINT": str(checkpoint), "HARUSPEX_ALLOW_TEST_WEIGHTS": "1"})
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"haruspex: error: {tmp_path / name}: {message}")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_huge_voxel_is_warned_about_on_the_console_and_in_the_summary(tmp_path, checkpoint):
    data = _blobs((20, 20, 20))
    data[2, 3, 4] = 1e5
    write_map(tmp_path / "spike.mrc", data, (1.1, 1.1, 1.1), (10.0, 20.0, 30.0))
    result = run_cli("annotate", tmp_path / "spike.mrc", "-o", tmp_path / "out",
                     env_extra={"HARUSPEX_CHECKPOINT": str(checkpoint), "HARUSPEX_ALLOW_TEST_WEIGHTS": "1"})
    assert result.returncode == 0, result.stderr
    expected = "1 voxel lies far beyond the rest of the map: 1e+05 at (14.4, 23.3, 32.2) Å"
    assert f"annotate: warning: {tmp_path / 'spike.mrc'}: {expected}" in result.stderr
    summary = json.loads((tmp_path / "out" / "spike_summary.json").read_text())
    assert any(expected in warning for warning in summary["warnings"])
