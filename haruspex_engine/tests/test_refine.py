"""`haruspex refine-na`: backbone link planning, the monomer library, and servalcat refinement of a perturbed ideal RNA
in a map simulated from the unperturbed one (skipped where servalcat or a monomer library is not installed)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import gemmi
import numpy as np
import pytest

from haruspex_engine import cli
from haruspex_engine.maps import read_map, write_like, write_map
from haruspex_engine.nucleic.building.evaluate import evaluate_model
from haruspex_engine.refine import monomers
from haruspex_engine.refine import refine as refine_module
from haruspex_engine.refine.links import add_bridges, plan_backbone_links, remove_bridges
from haruspex_engine.refine.monomers import MonomerLibraryError, check_dictionaries, locate_monomer_library
from haruspex_engine.refine.refine import servalcat_failure_reason, servalcat_version
from haruspex_engine.simulate import simulate_map
from haruspex_engine.structures import assemble
from haruspex_engine.testing.rna_models import ideal_rna

RESOLUTION_A = 3.5
MAP_ORIGIN = (100.0, -50.0, 20.0)  # Å; a non-zero header origin, which servalcat alone would ignore
REMOVED = 16  # residue taken out of the strand: residues 15 and 16 (after renumbering) are a chain break
PUSHED = 8  # residue moved 1.2 Å away from residue 7 along O3'(7) -> P(8): a near-miss step to bridge


def _tools_missing() -> str | None:
    if servalcat_version() is None:
        return "servalcat is not installed in this environment (pip install servalcat)"
    try:
        locate_monomer_library()
    except MonomerLibraryError as exc:
        return str(exc)
    return None


TOOLS_MISSING = _tools_missing()
needs_servalcat = pytest.mark.skipif(TOOLS_MISSING is not None, reason=str(TOOLS_MISSING))


def _strand_with_break() -> gemmi.Chain:
    """The ideal 30-nt RNA without residue REMOVED, renumbered 1..29: the break is invisible in the numbering."""
    chain = ideal_rna()[0][0].clone()
    del chain[REMOVED - 1]
    for residue in chain:
        if residue.seqid.num > REMOVED:
            residue.seqid = gemmi.SeqId(residue.seqid.num - 1, " ")
    return chain


def _shift(structure: gemmi.Structure, xyz) -> None:
    for cra in structure[0].all():
        cra.atom.pos += gemmi.Position(*xyz)


def _push(chain: gemmi.Chain, index: int, distance_A: float) -> None:
    """Move residue ``index`` (0-based) by ``distance_A`` along O3'(index - 1) -> P(index)."""
    direction = chain[index]["P"][0].pos - chain[index - 1]["O3'"][0].pos
    step = direction * (distance_A / direction.length())
    for atom in chain[index]:
        atom.pos += step


def _o3_p(structure: gemmi.Structure, first: int) -> float:
    """O3'(first)-P(first + 1) distance (Å) in chain A."""
    chain = structure[0]["A"]
    return chain[str(first)][0]["O3'"][0].pos.dist(chain[str(first + 1)][0]["P"][0].pos)


def _perturbed(truth: gemmi.Structure, seed: int = 0) -> gemmi.Structure:
    """Each residue moved rigidly (0.25 Å per axis) and each atom jittered (0.1 Å per axis); residue PUSHED pushed."""
    model = truth.clone()
    rng = np.random.default_rng(seed)
    for residue in model[0]["A"]:
        shift = rng.normal(0.0, 0.25, 3)
        for atom in residue:
            atom.pos += gemmi.Position(*(shift + rng.normal(0.0, 0.1, 3)))
    _push(model[0]["A"], PUSHED - 1, 1.2)
    return model


def test_plan_links_keeps_breaks_open_and_bridges_near_misses() -> None:
    chain = _strand_with_break()
    _push(chain, PUSHED - 1, 1.4)
    gap = chain.clone()  # residues PUSHED.. renumbered +10: the near-miss step now spans a numbering gap
    for residue in gap:
        if residue.seqid.num >= PUSHED:
            residue.seqid = gemmi.SeqId(residue.seqid.num + 10, " ")
    structure = assemble([chain])

    plan = plan_backbone_links(structure[0])

    assert [(s.first, s.second) for s in plan.bridged] == [(str(PUSHED - 1), str(PUSHED))]
    assert 2.4 < plan.bridged[0].o3_p_A < 3.2 and plan.bridged[0].p_p_A <= 7.5
    assert [(s.first, s.second) for s in plan.breaks] == [(str(REMOVED - 1), str(REMOVED))]
    assert plan.breaks[0].p_p_A > 10 and not plan.breaks[0].numbering_gap
    assert plan.linked == 29 - 1 - 2
    numbered = plan_backbone_links(assemble([gap])[0])
    assert not numbered.bridged and numbered.linked == plan.linked
    assert [(s.first, s.second, s.numbering_gap) for s in numbered.breaks] == [
        (str(PUSHED - 1), str(PUSHED + 10), True), (str(REMOVED + 9), str(REMOVED + 10), False)]


def test_bridges_are_written_as_phosphodiester_links_and_removed_again() -> None:
    chain = _strand_with_break()
    _push(chain, PUSHED - 1, 1.4)
    structure = assemble([chain])
    plan = plan_backbone_links(structure[0])

    add_bridges(structure, plan.bridged)
    written = gemmi.cif.read_string(structure.make_mmcif_document().as_string()).sole_block()
    links = written.find("_struct_conn.", ["ptnr1_auth_seq_id", "ptnr1_label_atom_id", "ptnr2_auth_seq_id",
                                           "ptnr2_label_atom_id", "ccp4_link_id"])
    assert [list(row) for row in links] == [[str(PUSHED - 1), '"O3\'"', str(PUSHED), "P", "p"]]
    remove_bridges(structure)
    assert len(structure.connections) == 0


def _fake_library(root: Path, residues: tuple[str, ...] = ("A", "C", "G", "U")) -> Path:
    (root / "list").mkdir(parents=True)
    (root / "list" / "mon_lib_list.cif").write_text("data_lib\n")
    for name in residues:
        monomers.dictionary_path(root, name).parent.mkdir(exist_ok=True)
        monomers.dictionary_path(root, name).write_text(f"data_comp_{name}\n")
    return root


def test_monomer_library_from_the_environment_variable(tmp_path: Path, monkeypatch) -> None:
    library = _fake_library(tmp_path / "lib")
    monkeypatch.setenv(monomers.MONOMER_LIBRARY_ENV, str(library))
    assert locate_monomer_library() == library
    check_dictionaries(library, {"A", "G"}, "model.cif")
    with pytest.raises(MonomerLibraryError, match=r"model\.cif: no restraint dictionary for residue\(s\) DA, XYZ"):
        check_dictionaries(library, {"A", "DA", "XYZ"}, "model.cif")


@pytest.mark.parametrize("make, problem", [(lambda root: root / "absent", "no such directory"),
                                           (lambda root: root, "not a CCP4 monomer library")])
def test_unusable_monomer_library_is_refused_with_install_advice(tmp_path: Path, monkeypatch, make, problem) -> None:
    monkeypatch.setenv(monomers.MONOMER_LIBRARY_ENV, str(make(tmp_path)))
    with pytest.raises(MonomerLibraryError, match=problem) as error:
        locate_monomer_library()
    assert "pip install coot-headless-api" in str(error.value)


def test_monomer_library_from_the_coot_package(monkeypatch) -> None:
    monkeypatch.delenv(monomers.MONOMER_LIBRARY_ENV, raising=False)
    if monomers.importlib.util.find_spec(monomers.COOT_PACKAGE) is None:
        with pytest.raises(MonomerLibraryError, match="no CCP4 monomer library found"):
            locate_monomer_library()
        return
    library = locate_monomer_library()
    assert library.parts[-5:] == monomers.COOT_MONOMERS.parts
    check_dictionaries(library, {"A", "C", "G", "U", "DA", "DC", "DG", "DT"}, "model.cif")


def _cli(capsys, *args) -> tuple[int, str]:
    status = cli.main(["refine-na", *map(str, args)])
    return status, capsys.readouterr().err


def test_cli_refuses_bad_inputs_naming_the_file(tmp_path: Path, capsys, monkeypatch) -> None:
    model = tmp_path / "model.cif"
    model.write_text("this is not a model\n")
    density = tmp_path / "map.mrc"
    write_map(density, np.zeros((4, 4, 4), np.float32), (30.0, 30.0, 30.0))  # a box that holds the model
    status, err = _cli(capsys, model, density, "--resolution", 3)
    assert status == 1 and f"haruspex: error: {model}: not a readable PDB/mmCIF file" in err
    status, err = _cli(capsys, model, density, density, density, "--resolution", 3)
    assert status == 1 and "one map or two half maps" in err

    assemble([_strand_with_break()]).make_mmcif_document().write_file(str(model))
    monkeypatch.setattr("haruspex_engine.refine.refine.servalcat_version", lambda: None)
    status, err = _cli(capsys, model, density, "--resolution", 3)
    assert status == 1 and "servalcat is not installed" in err and "pip install servalcat" in err
    monkeypatch.setattr("haruspex_engine.refine.refine.servalcat_version", lambda: "0")
    monkeypatch.setenv(monomers.MONOMER_LIBRARY_ENV, str(_fake_library(tmp_path / "lib", ("A", "C", "G"))))
    status, err = _cli(capsys, model, density, "--resolution", 3)
    assert status == 1 and f"{model}: no restraint dictionary for residue(s) U" in err
    monkeypatch.setenv(monomers.MONOMER_LIBRARY_ENV, str(_fake_library(tmp_path / "full")))
    other = tmp_path / "half2.mrc"
    write_map(other, np.zeros((4, 4, 4), np.float32), (30.0, 30.0, 30.0), (2.0, 0.0, 0.0))
    status, err = _cli(capsys, model, density, other, "--resolution", 3)
    assert status == 1 and f"{other}: not on the grid of {density}" in err


@pytest.mark.parametrize("option, value, message", [
    ("--resolution", "0", "--resolution must be a positive number of Å, not 0"),
    ("--resolution", "nan", "--resolution must be a positive number of Å, not nan"),
    ("--mask-radius", "-1.5", "--mask-radius must be a positive number of Å, not -1.5"),
    ("--cycles", "0", "--cycles must be at least 1, not 0"),
])
def test_each_bad_option_gets_its_own_message(tmp_path: Path, capsys, option, value, message) -> None:
    status, err = _cli(capsys, tmp_path / "model.cif", tmp_path / "map.mrc", "--resolution", 3, option, value)
    assert status == 1 and err.strip() == f"haruspex: error: {message}"


FAILED_LOG = """\
Reading model
Traceback (most recent call last):
  File "/venv/servalcat/utils/hkl.py", line 674, in scale_k_and_b
    x = -numpy.dot(numpy.linalg.inv(H), g)
numpy.linalg.LinAlgError: Singular matrix

# Abnormally finished on 2026-12-06 15:23:49.731265
"""


@pytest.mark.parametrize("log, reason", [
    (FAILED_LOG, "numpy.linalg.LinAlgError: Singular matrix"),
    ("Reading model\nError: unit cell is not defined in the model.\n", "Error: unit cell is not defined in the model."),
    ("usage: servalcat refine_spa_norefmac [-h]\nservalcat refine_spa_norefmac: error: argument --resolution: "
     "expected one argument\n", "servalcat refine_spa_norefmac: error: argument --resolution: expected one argument"),
    ("Traceback (most recent call last):\n  File \"x.py\", line 1\nRuntimeError: Problem with stacking.\n=> plane 3\n",
     "RuntimeError: Problem with stacking. => plane 3"),
    ("Error: an early complaint\ncycle 1\ncycle 2\ncycle 3\n", "Error: an early complaint"),
    ("Reading model\ncycle 1\n\n", "cycle 1"),
    ("\n", "no output"),
])
def test_servalcat_failure_reason_is_the_logs_error_line(log: str, reason: str) -> None:
    assert servalcat_failure_reason(log) == reason


def _ready_to_refine(tmp_path: Path, monkeypatch, origin_xyz=(0.0, 0.0, 0.0), shape_zyx=(52, 19, 19)) -> tuple:
    """A 29-nt model (atoms 8 to ~94 Å along z) and a 2 Å map of ``shape_zyx`` at ``origin_xyz``, servalcat and the
    monomer library faked present; returns (model path, map path)."""
    model, density = tmp_path / "rna.cif", tmp_path / "map.mrc"
    assemble([_strand_with_break()]).make_mmcif_document().write_file(str(model))
    write_map(density, np.zeros(shape_zyx, np.float32), (2.0, 2.0, 2.0), origin_xyz)
    monkeypatch.setattr("haruspex_engine.refine.refine.servalcat_version", lambda: "0")
    monkeypatch.setenv(monomers.MONOMER_LIBRARY_ENV, str(_fake_library(tmp_path / "lib")))
    return model, density


FAKE_SERVALCAT = """\
import json, shutil
shutil.copy("input_model.cif", "refined.mmcif")
entry = {"geom": {"summary": {"r.m.s.d.": {"Bond distances, non H": 0.01, "Bond angles, non H": 1.0}}},
         "data": {"summary": {"FSCaverage": 0.5}}}
json.dump([entry, entry], open("refined_stats.json", "w"))
print("refined")
"""

RUN_SERVALCAT = refine_module._run_servalcat


def _fake_servalcat(monkeypatch, script: str) -> None:
    """servalcat replaced by a Python ``script`` run the same way (in the working folder, its output to the log)."""
    monkeypatch.setattr(refine_module, "_run_servalcat",
                        lambda command, *rest: RUN_SERVALCAT([sys.executable, "-c", script], *rest))


def _workdirs(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.glob(".rna_refine-*"))


def test_a_model_outside_the_map_is_refused_naming_both(tmp_path: Path, capsys, monkeypatch) -> None:
    model, density = _ready_to_refine(tmp_path, monkeypatch, origin_xyz=(500.0, 500.0, 500.0))
    monkeypatch.setattr(refine_module, "_run_servalcat", lambda *args: pytest.fail("servalcat was run"))

    status, err = _cli(capsys, model, density, "--resolution", 3, "-o", tmp_path / "out")

    assert status == 1
    assert f"haruspex: error: {model}: no atom lies inside the box of {density} (model x 8.0..28.5" in err
    assert "map x 499.0..537.0, y 499.0..537.0, z 499.0..603.0 Å)" in err
    assert not (tmp_path / "out").exists()


def test_a_model_largely_outside_the_map_is_refined_with_a_warning(tmp_path: Path, capsys, monkeypatch) -> None:
    model, density = _ready_to_refine(tmp_path, monkeypatch, shape_zyx=(20, 19, 19))  # z up to 39 Å
    _fake_servalcat(monkeypatch, FAKE_SERVALCAT)

    status, err = _cli(capsys, model, density, "--resolution", 3, "-q")

    assert status == 0, err
    warnings = json.loads((tmp_path / "rna_refine.json").read_text())["warnings"]
    assert len(warnings) == 1 and f"of {model} lie outside the box of {density}" in warnings[0]
    assert f"refine-na: {warnings[0]}" in err


def test_a_model_inside_the_map_gets_no_coverage_warning(tmp_path: Path, capsys, monkeypatch) -> None:
    model, density = _ready_to_refine(tmp_path, monkeypatch)
    _fake_servalcat(monkeypatch, FAKE_SERVALCAT)
    status, err = _cli(capsys, model, density, "--resolution", 3, "-q")
    assert status == 0, err
    assert json.loads((tmp_path / "rna_refine.json").read_text())["warnings"] == []


def test_a_rerun_removes_the_working_folder_a_killed_run_left(tmp_path: Path, capsys, monkeypatch) -> None:
    model, density = _ready_to_refine(tmp_path, monkeypatch)
    leftover = Path(tempfile.mkdtemp(prefix=".rna_refine-", dir=tmp_path))
    (leftover / "input_map1.mrc").write_bytes(b"a copy of the map")
    others = [tmp_path / ".rna2_refine-abcd1234", tmp_path / ".rna_refine-b_refine-abcd1234"]
    for other in others:
        other.mkdir()
    _fake_servalcat(monkeypatch, FAKE_SERVALCAT)

    status, err = _cli(capsys, model, density, "--resolution", 3, "-q")

    assert status == 0, err
    assert not leftover.exists() and f"removed {leftover}" in err
    assert all(other.is_dir() for other in others)  # other prefixes' folders are not this run's to remove
    assert _workdirs(tmp_path) == [others[1].name]


def test_a_servalcat_failure_says_why_and_removes_the_working_folder(tmp_path: Path, capsys, monkeypatch) -> None:
    model, density = _ready_to_refine(tmp_path, monkeypatch)
    _fake_servalcat(monkeypatch, f"import sys; print({FAILED_LOG!r}); sys.exit(1)")

    status, err = _cli(capsys, model, density, "--resolution", 3, "-q")

    log = tmp_path / "rna_servalcat.log"
    assert status == 1
    assert err.strip().splitlines()[-1] == ("haruspex: error: servalcat failed (exit status 1): "
                                            f"numpy.linalg.LinAlgError: Singular matrix; full log: {log}")
    assert _workdirs(tmp_path) == []
    _fake_servalcat(monkeypatch, "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    status, err = _cli(capsys, model, density, "--resolution", 3, "-q")
    assert status == 1 and "servalcat failed (killed by SIGKILL): no output" in err and _workdirs(tmp_path) == []


def test_an_unexpected_exception_removes_the_working_folder(tmp_path: Path, capsys, monkeypatch) -> None:
    model, density = _ready_to_refine(tmp_path, monkeypatch)

    def crash(*args) -> None:
        raise RuntimeError("unexpected")

    monkeypatch.setattr(refine_module, "_run_servalcat", crash)
    with pytest.raises(RuntimeError, match="unexpected"):
        cli.main(["refine-na", str(model), str(density), "--resolution", "3", "-q"])
    assert _workdirs(tmp_path) == []


def _refine_na(model: Path, *maps_and_options) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "haruspex_engine", "refine-na", str(model),
                           *map(str, maps_and_options)], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ))


@pytest.fixture(scope="module")
def refined(tmp_path_factory) -> dict:
    """One `haruspex refine-na` run (5 cycles) of the perturbed broken strand into the map of the true one."""
    directory = tmp_path_factory.mktemp("refine")
    truth = assemble([_strand_with_break()], cell_padding_A=10.0)
    density, _ = simulate_map(truth, voxel_size=1.0, resolution=RESOLUTION_A)
    write_map(directory / "truth.mrc", density, (1.0, 1.0, 1.0), MAP_ORIGIN)
    _shift(truth, MAP_ORIGIN)
    model = _perturbed(truth)
    model.make_mmcif_document().write_file(str(directory / "rna.cif"))
    result = _refine_na(directory / "rna.cif", directory / "truth.mrc", "--resolution", RESOLUTION_A,
                        "--cycles", 5, "-o", directory / "out")
    assert result.returncode == 0, result.stderr
    summary = json.loads((directory / "out" / "rna_refine.json").read_text())
    return {"truth": truth, "model": model, "summary": summary, "directory": directory / "out",
            "refined": gemmi.read_structure(summary["outputs"]["model"]), "stderr": result.stderr,
            "log": Path(summary["outputs"]["log"]).read_text()}


@needs_servalcat
def test_refinement_moves_the_model_to_the_truth(refined) -> None:
    before = evaluate_model(refined["model"], refined["truth"])["rmsd_all_atoms_A"]
    after = evaluate_model(refined["refined"], refined["truth"])["rmsd_all_atoms_A"]
    assert before > 0.4
    assert after < 0.4 * before
    assert refined["summary"]["rms_shift_A"] > 0.3


@needs_servalcat
def test_geometry_and_map_fit_are_reported_before_and_after(refined) -> None:
    summary = refined["summary"]
    geometry, fsc = summary["geometry"], summary["fsc_average"]
    assert geometry["after"]["bond_rmsd_A"] < 0.03 < geometry["before"]["bond_rmsd_A"]
    assert geometry["after"]["angle_rmsd_deg"] < geometry["before"]["angle_rmsd_deg"]
    assert fsc["before"] < fsc["after"] <= 1.0
    assert summary["servalcat"]["cycles"] == 5 and summary["residues"] == 29
    assert "bond r.m.s.d." in refined["stderr"]


@needs_servalcat
def test_the_chain_break_stays_open(refined) -> None:
    breaks = refined["summary"]["backbone"]["breaks"]
    assert [(s["chain"], s["first"], s["second"]) for s in breaks] == [("A", str(REMOVED - 1), str(REMOVED))]
    assert f"gap between {REMOVED - 1}(" in refined["log"]  # servalcat's own account of the chain
    assert _o3_p(refined["refined"], REMOVED - 1) > 5.0


@needs_servalcat
def test_the_near_miss_step_is_bonded(refined) -> None:
    bridged = refined["summary"]["backbone"]["bridged"]
    assert (str(PUSHED - 1), str(PUSHED)) in [(s["first"], s["second"]) for s in bridged]
    assert f"Link confirmed: id= p atom1= A/{refined['model'][0]['A'][PUSHED - 2].name} {PUSHED - 1}/O3'" \
        in refined["log"]
    assert abs(_o3_p(refined["refined"], PUSHED - 1) - 1.61) < 0.1
    assert len(refined["refined"].connections) == 0


@needs_servalcat
def test_outputs_are_in_the_input_frame_and_complete(refined) -> None:
    structure = refined["refined"]
    assert structure.cell.a == pytest.approx(refined["truth"].cell.a, abs=1e-3)
    assert [chain.name for chain in structure[0]] == ["A"]
    assert not any(cra.atom.is_hydrogen() for cra in structure[0].all())
    assert sorted(path.name for path in refined["directory"].iterdir()) == [
        "rna_refine.json", "rna_refined.cif", "rna_servalcat.log"]
    assert refined["summary"]["maps"][0]["origin_xyz"] == list(MAP_ORIGIN)


@needs_servalcat
def test_half_maps_are_refined_against(refined, tmp_path: Path) -> None:
    directory = refined["directory"].parent
    truth = read_map(directory / "truth.mrc")
    rng = np.random.default_rng(1)
    halves = []
    for k in (1, 2):
        halves.append(tmp_path / f"half{k}.mrc")
        noisy = truth.data + rng.normal(0.0, 0.3 * float(truth.data.std()), truth.data.shape).astype(np.float32)
        write_like(halves[-1], noisy, truth)

    result = _refine_na(directory / "rna.cif", *halves, "--resolution", RESOLUTION_A, "--cycles", 2,
                        "-o", tmp_path, "--prefix", "halves", "-q")

    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "halves_refine.json").read_text())
    assert summary["half_maps"] and "--halfmaps" in Path(summary["outputs"]["log"]).read_text()
    assert summary["fsc_average"]["before"] < summary["fsc_average"]["after"]
    after = evaluate_model(gemmi.read_structure(summary["outputs"]["model"]), refined["truth"])["rmsd_all_atoms_A"]
    assert after < evaluate_model(refined["model"], refined["truth"])["rmsd_all_atoms_A"]
