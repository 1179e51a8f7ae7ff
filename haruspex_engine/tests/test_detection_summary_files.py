"""build-na reads the maps beside detect-na's summary (a copied or moved detection folder reads its own), says which
maps it read, and answers a cut-short, corrupt or stranded summary with one `haruspex: error:` line."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from haruspex_engine.cli import main
from haruspex_engine.maps import write_map
from haruspex_engine.nucleic.detection_outputs import LISTED_MAPS, MOVED_MAPS_FIX

SHAPE = (20, 20, 20)


def empty_detection(folder: Path) -> Path:
    """detect-na's files on a 20³ working grid with no nucleic acid (a quick build): eight zero class maps, a
    constant working map and the summary listing them by absolute path, indented as detect-na writes it."""
    folder.mkdir(parents=True)
    outputs = {}
    for name in LISTED_MAPS:
        outputs[name] = str(folder / f"rna_{name}.mrc")
        write_map(outputs[name], np.full(SHAPE, 1.0 if name == "working" else 0.0, np.float32), (1.0,) * 3)
    summary = folder / "rna_summary.json"
    summary.write_text(json.dumps({"outputs": outputs, "output_grid": "working"}, indent=2))
    return summary


def build(capsys, *args) -> tuple[int, str]:
    code = main(["build-na", *map(str, args)])
    return code, capsys.readouterr().err


def cut_short(summary: Path) -> None:
    text = summary.read_text()
    summary.write_text(text[: len(text) // 2])


def test_a_copied_detection_folder_reads_its_own_maps(tmp_path: Path, capsys) -> None:
    original = tmp_path / "original"
    empty_detection(original)
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    write_map(original / "rna_sugar.mrc", np.ones((5, 5, 5), np.float32), (1.0,) * 3)  # changed after the copy
    code, err = build(capsys, copy)
    assert code == 0, err
    assert f"build-na: reading the detection maps in {copy}: rna_sugar.mrc, " in err
    report = json.loads((copy / "rna_build.json").read_text())
    assert report["detection_maps"] == {name: str(copy / f"rna_{name}.mrc") for name in LISTED_MAPS}


def test_a_moved_detection_folder_reads_its_maps_where_they_are_now(tmp_path: Path, capsys) -> None:
    before, after = tmp_path / "before", tmp_path / "after"
    empty_detection(before)
    before.rename(after)
    code, err = build(capsys, after / "rna_summary.json")
    assert code == 0, err
    assert json.loads((after / "rna_build.json").read_text())["detection_maps"]["working"] == \
        str(after / "rna_working.mrc")

    (after / "rna_sugar.mrc").unlink()
    code, err = build(capsys, after)
    assert code == 1
    assert err.splitlines() == [f"haruspex: error: {after / 'rna_summary.json'}: its sugar map rna_sugar.mrc is "
                                f"neither beside it nor at {before / 'rna_sugar.mrc'}; {MOVED_MAPS_FIX}"]


def test_a_summary_cut_short_is_named_with_the_fix(tmp_path: Path, capsys) -> None:
    summary = empty_detection(tmp_path / "detection")
    cut_short(summary)
    code, err = build(capsys, summary)
    assert code == 1 and len(err.splitlines()) == 1
    assert err.startswith(f"haruspex: error: {summary}: the summary is cut short or corrupt (JSON: ")
    assert "run `haruspex detect-na` again" in err


def test_a_folder_whose_only_summary_is_corrupt_says_so(tmp_path: Path, capsys) -> None:
    summary = empty_detection(tmp_path / "detection")
    cut_short(summary)
    code, err = build(capsys, summary.parent)
    assert code == 1 and len(err.splitlines()) == 1
    assert err.startswith(f"haruspex: error: {summary.parent}: no readable detect-na summary in this directory: "
                          f"{summary}: the summary is cut short or corrupt (JSON: ")


def test_a_folder_without_a_detection_summary_says_what_it_looked_for(tmp_path: Path, capsys) -> None:
    (tmp_path / "map_summary.json").write_text(json.dumps({"outputs": {"helix": "map_helix.mrc"}}))
    code, err = build(capsys, tmp_path)
    assert code == 1
    assert err.splitlines() == [f"haruspex: error: {tmp_path}: no detect-na summary (*_summary.json listing the "
                                f"{', '.join(LISTED_MAPS)} maps) in this directory"]
