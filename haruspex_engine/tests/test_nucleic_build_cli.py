"""`haruspex build-na` end to end on detect-na-style outputs made from oracle maps (no networks involved)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gemmi
import numpy as np

from haruspex_engine.maps import write_map
from haruspex_engine.nucleic.building.evaluate import evaluate_model
from haruspex_engine.nucleic.classes import STAGE2_CLASSES
from haruspex_engine.testing.oracle_maps import CLEAN, oracle_maps
from haruspex_engine.testing.rna_models import IDEAL_SEQUENCE, ideal_rna


def _detection(directory: Path, stage2: np.ndarray, working: np.ndarray, origin) -> Path:
    """The files detect-na writes on its working grid: eight class maps, the working map, the summary."""
    outputs = {}
    for name, values in [*zip(STAGE2_CLASSES, stage2), ("working", working)]:
        outputs[name] = str(directory / f"rna_{name}.mrc")
        write_map(outputs[name], values, (1.0, 1.0, 1.0), origin)
    summary = directory / "rna_summary.json"
    summary.write_text(json.dumps({"outputs": outputs, "output_grid": "working"}))
    return summary


def _run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "haruspex_engine", "build-na", *map(str, args)],
                          capture_output=True, text=True, timeout=600, env=dict(os.environ))


def test_build_na_writes_a_model_of_the_rna(tmp_path: Path) -> None:
    structure = ideal_rna()
    maps = oracle_maps(structure, CLEAN)
    summary = _detection(tmp_path, maps.stage2, maps.density / maps.density.max(), maps.origin)
    result = _run(summary, "--pdb", "--trace-solutions", "300")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "rna_build.json").read_text())
    assert report["residues"] >= 27 and report["trace"]["stopped_by"] == "solution limit"
    assert report["sequence"] is None and report["assignment"] is None
    assert set(report["outputs"]) == {"model", "model_pdb", "confidence", "na_masked_map"}
    model = gemmi.read_structure(report["outputs"]["model"])
    assert evaluate_model(model, structure)["backbone_coverage_3A"] >= 0.9
    assert gemmi.read_structure(report["outputs"]["model_pdb"])[0].count_atom_sites() == model[0].count_atom_sites()
    rows = Path(report["outputs"]["confidence"]).read_text().splitlines()
    assert rows[0] == "chain,residue_number,residue_name,confidence" and len(rows) == report["residues"] + 1


def test_no_nucleic_acid_is_a_result_not_a_crash(tmp_path: Path) -> None:
    shape = (30, 30, 30)
    summary = _detection(tmp_path, np.zeros((8,) + shape, np.float32), np.ones(shape, np.float32), (0.0, 0.0, 0.0))
    result = _run(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "no nucleic acid found" in result.stderr
    report = json.loads((tmp_path / "rna_build.json").read_text())
    assert report["residues"] == 0 and set(report["outputs"]) == {"na_masked_map"}
    assert not (tmp_path / "rna_model.cif").exists()
    assert summary.exists()


def test_maps_on_the_input_grid_are_refused(tmp_path: Path) -> None:
    summary = tmp_path / "x_summary.json"
    summary.write_text(json.dumps({"outputs": {}, "output_grid": "input"}))
    result = _run(summary)
    assert result.returncode == 1 and "--output-grid working" in result.stderr.splitlines()[-1]


def test_build_na_with_a_fasta_numbers_chains_in_register(tmp_path: Path) -> None:
    structure = ideal_rna()
    maps = oracle_maps(structure, CLEAN)
    summary = _detection(tmp_path, maps.stage2, maps.density / maps.density.max(), maps.origin)
    fasta = tmp_path / "rna.fasta"
    fasta.write_text(f">7XYZ_1|Chain R|ideal RNA\n{IDEAL_SEQUENCE.lower()}\n"
                     ">7XYZ_2|Chain P|protein\nMKVLAAGIVGLLLAGCSS\n")
    result = _run(summary, "--sequence", fasta, "--trace-solutions", "300")
    assert result.returncode == 0, result.stderr
    assert "protein" in result.stderr  # the skipped protein record is reported
    report = json.loads((tmp_path / "rna_build.json").read_text())
    assignment = report["assignment"]
    assert assignment["status"] == "OPTIMAL" and assignment["stopped_by"] == "optimal" and assignment["optimal"]
    assert assignment["matched_nodes"] >= 25 and assignment["placed_residues"] >= 27
    assert assignment["work"] <= assignment["work_limit"] and "work budget" not in result.stderr
    assert set(report["outputs"]) == {"model", "model_without_sequence", "confidence", "na_masked_map"}
    assert [c["id"] for c in report["chains"]] == ["R"] and any("protein" in w for w in report["warnings"])
    model = gemmi.read_structure(report["outputs"]["model"])
    assert evaluate_model(model, structure)["sequence_recall"] >= 0.9


def test_build_na_says_when_the_assignment_stops_on_its_work_budget(tmp_path: Path) -> None:
    structure = ideal_rna()
    maps = oracle_maps(structure, CLEAN)
    summary = _detection(tmp_path, maps.stage2, maps.density / maps.density.max(), maps.origin)
    fasta = tmp_path / "rna.fasta"
    fasta.write_text(f">R\n{IDEAL_SEQUENCE}\n")
    result = _run(summary, "--sequence", fasta, "--trace-solutions", "300", "--assign-budget", "1e-6")
    assert result.returncode == 0, result.stderr
    assert "build-na: sequence assignment (CP-SAT) used its work budget" in result.stderr
    report = json.loads((tmp_path / "rna_build.json").read_text())
    assert report["assignment"]["stopped_by"] == "work limit" and not report["assignment"]["optimal"]
    assert any("work budget" in w for w in report["warnings"]) and report["residues"] >= 27


def test_build_na_refuses_a_protein_only_fasta(tmp_path: Path) -> None:
    structure = ideal_rna()
    maps = oracle_maps(structure, CLEAN)
    summary = _detection(tmp_path, maps.stage2, maps.density, maps.origin)
    fasta = tmp_path / "protein.fasta"
    fasta.write_text(">sp|P1|prot\nMKVLAAGIVGLLLAGCSSHHHHHH\n")
    result = _run(summary, "--sequence", fasta)
    assert result.returncode != 0
    assert str(fasta) in result.stderr and "only protein" in result.stderr
    assert not (tmp_path / "rna_model.cif").exists() and not (tmp_path / "rna_build.json").exists()
