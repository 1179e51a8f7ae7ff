"""A run owns its output prefix: earlier runs' files removed, one run at a time, and clear answers when interrupted,
out of space or pointed at a file."""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from haruspex_engine import cli
from haruspex_engine.commands import CommandError
from haruspex_engine.maps import write_map
from haruspex_engine.nucleic.classes import STAGE2_CLASSES
from haruspex_engine.output_prefix import claim_prefix, release_prefixes


@pytest.fixture(autouse=True)
def _release():
    yield
    release_prefixes()


def _touch(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).write_text("from an earlier run")


def test_claim_removes_earlier_outputs_and_their_part_files_only(tmp_path):
    _touch(tmp_path, "x_model.cif", "x_build.json.part", "x_notes.txt", "y_model.cif", "x_00001.npz", "x_in.mrc")
    claim_prefix(tmp_path, "x", [tmp_path / "x_model.cif", "x_build.json", "x_in.mrc"], "test",
                 inputs=[tmp_path / "x_in.mrc"], numbered=["x_[0-9][0-9][0-9][0-9][0-9]*.npz"])
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [".x.lock", "x_in.mrc", "x_notes.txt", "y_model.cif"]
    release_prefixes()
    assert not (tmp_path / ".x.lock").exists()


def test_a_second_run_of_the_same_prefix_is_refused_and_named(tmp_path):
    claim_prefix(tmp_path, "x", [], "build-na")
    with pytest.raises(CommandError, match=rf"haruspex build-na \(pid {os.getpid()}.*is writing the files of "
                                           r"prefix 'x'.*choose another"):
        claim_prefix(tmp_path, "x", [], "build-na")
    claim_prefix(tmp_path, "y", [], "build-na")  # another prefix in the same folder is free
    release_prefixes()
    claim_prefix(tmp_path, "x", [], "build-na")


def test_a_killed_run_leaves_the_prefix_free(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom pathlib import Path\n"
         "from haruspex_engine.output_prefix import claim_prefix\n"
         f"claim_prefix(Path({str(tmp_path)!r}), 'x', [], 'annotate')\nprint('held', flush=True)\ntime.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(CommandError, match=rf"haruspex annotate \(pid {holder.pid}"):
            claim_prefix(tmp_path, "x", [], "annotate")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    assert (tmp_path / ".x.lock").exists()  # the killed run could not remove its lock file, but holds no lock
    claim_prefix(tmp_path, "x", [], "annotate")


def test_an_output_folder_that_is_a_file_is_a_clear_error(tmp_path):
    not_a_folder = tmp_path / "out"
    not_a_folder.write_text("")
    with pytest.raises(CommandError, match="out: exists and is not a folder"):
        claim_prefix(not_a_folder, "x", [], "test")
    with pytest.raises(CommandError, match="a part of the path is a file"):
        claim_prefix(not_a_folder / "sub", "x", [], "test")


def _empty_detection(folder: Path) -> Path:
    """detect-na's files for a map with no nucleic acid (all class maps 0) on a 30³ 1 Å grid."""
    shape, outputs = (30, 30, 30), {}
    for name in [*STAGE2_CLASSES, "working"]:
        outputs[name] = str(folder / f"rna_{name}.mrc")
        write_map(outputs[name], np.ones(shape, np.float32) if name == "working" else np.zeros(shape, np.float32),
                  (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    summary = folder / "rna_summary.json"
    summary.write_text(json.dumps({"outputs": outputs, "output_grid": "working"}))
    return summary


def test_build_na_rerun_leaves_no_file_of_the_earlier_run(tmp_path, capsys):
    summary = _empty_detection(tmp_path)
    _touch(tmp_path, "rna_model.cif", "rna_model.pdb", "rna_noseq.cif", "rna_confidence.csv", "rna_build.json",
           "rna_na_masked.mrc.part", "rna_notes.txt")
    assert cli.main(["build-na", str(summary)]) == 0
    report = json.loads((tmp_path / "rna_build.json").read_text())
    assert report["residues"] == 0 and set(report["outputs"]) == {"na_masked_map"}
    written = {p.name for p in tmp_path.iterdir()} - {Path(p).name for p in [summary, *_listed(summary)]}
    assert written == {"rna_na_masked.mrc", "rna_build.json", "rna_notes.txt"}  # the user's own file stays


def _listed(summary: Path) -> list[str]:
    return list(json.loads(summary.read_text())["outputs"].values())


def test_interrupted_build_says_what_was_kept_in_one_line(tmp_path, capsys, monkeypatch):
    summary = _empty_detection(tmp_path)
    _touch(tmp_path, "rna_model.cif")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("haruspex_engine.nucleic.building.build.build_nucleic_model", interrupted)
    assert cli.main(["build-na", str(summary)]) == 130
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1] == ("haruspex: error: interrupted (Ctrl-C); this run wrote no summary, so none of its files "
                         "count as finished; rerun the same command to start again")
    assert not any(line.startswith("Traceback") for line in lines)
    assert not (tmp_path / "rna_model.cif").exists() and not (tmp_path / ".rna.lock").exists()


def test_interrupt_hints_name_how_to_resume():
    train = cli.build_parser().parse_args(["train", "segments", "-o", "out/model.ckpt"])
    assert "--resume" in cli.interrupt_hint(train)
    detect = cli.build_parser().parse_args(["detect-na", "map.mrc", "--resolution", "4"])
    detect.interrupt_hint = "finished stages are kept in out/map_detect-state; rerun the same command to resume"
    assert cli.interrupt_hint(detect).startswith("finished stages are kept in out/map_detect-state")


def test_a_full_disk_names_the_output_folder(tmp_path, capsys, monkeypatch):
    summary = _empty_detection(tmp_path)
    out = tmp_path / "out"

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("haruspex_engine.maps.write_like", full)
    assert cli.main(["build-na", str(summary), "-o", str(out)]) == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line == (f"haruspex: error: {out}: No space left on device (free space or choose another output folder "
                    "with -o; then rerun)")


def test_build_na_into_a_file_or_a_busy_prefix_is_refused(tmp_path, capsys):
    summary = _empty_detection(tmp_path)
    (tmp_path / "file").write_text("")
    assert cli.main(["build-na", str(summary), "-o", str(tmp_path / "file")]) == 1
    assert capsys.readouterr().err.strip().endswith("file: exists and is not a folder; give -o/--output-dir a folder")
    claim_prefix(tmp_path, "rna", [], "build-na")
    started = time.monotonic()
    assert cli.main(["build-na", str(summary)]) == 1
    assert "is writing the files of prefix 'rna'" in capsys.readouterr().err
    assert time.monotonic() - started < 60  # refused at once, not after building


def test_annotate_rerun_removes_the_earlier_runs_maps(tmp_path):
    from haruspex_engine.testing.random_weights import make_test_checkpoint

    checkpoint = make_test_checkpoint(tmp_path / "weights", seed=3)
    rng = np.random.default_rng(0)
    write_map(tmp_path / "in.mrc", rng.random((24, 24, 24), dtype=np.float32), (1.1, 1.1, 1.1), (0.0, 0.0, 0.0))
    out = tmp_path / "out"
    out.mkdir()
    _touch(out, "in_helix_weighted.mrc", "in_labels.mrc.part", "in_summary.json", "in_helix.mrc")
    env = {k: v for k, v in os.environ.items() if k != "HARUSPEX_CHECKPOINT"}
    env.update(HARUSPEX_CHECKPOINT=str(checkpoint), HARUSPEX_ALLOW_TEST_WEIGHTS="1", TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-m", "haruspex_engine", "annotate", str(tmp_path / "in.mrc"), "-o",
                             str(out), "-q"], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    listed = json.loads((out / "in_summary.json").read_text())["outputs"]
    assert {p.name for p in out.iterdir()} == {Path(p).name for p in listed.values()} | {"in_summary.json"}
    assert "in_helix_weighted.mrc" not in {p.name for p in out.iterdir()}
