"""Nucleic-acid model evaluation: coverage, precision, sequence recall and RMSD on structures built in code."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import gemmi
import numpy as np
import pytest

from haruspex_engine.cli import CommandError
from haruspex_engine.nucleic.building.evaluate import EvaluationError, evaluate_files, evaluate_model
from haruspex_engine.nucleic.building.evaluate_command import add_evaluate_parser

EXAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cryoread-example"
RISE_A = 6.0  # residue i is residue 0 moved by (0, i * RISE_A, 0) Å, about the C4'-C4' step of a real strand
# A nucleotide's atoms (x, y, z in Å): phosphate, sugar and two base atoms; geometry only roughly like the real one.
NUCLEOTIDE_ATOMS = {
    "P": (0.0, 0.0, 0.0), "OP1": (1.2, -0.8, 0.3), "OP2": (-1.2, -0.8, 0.3), "O5'": (0.2, 1.4, 0.6),
    "C5'": (0.6, 2.5, 1.2), "C4'": (0.8, 3.6, 2.0), "O4'": (2.1, 3.5, 2.7), "C3'": (0.1, 4.7, 2.6),
    "O3'": (0.3, 5.8, 1.6), "C2'": (0.6, 4.8, 4.0), "O2'": (-0.4, 5.4, 4.8), "C1'": (1.9, 4.1, 3.9),
    "N9": (3.0, 4.3, 5.0), "C4": (4.1, 4.6, 6.0),
}
BACKBONE_PER_RESIDUE = 12  # NUCLEOTIDE_ATOMS without the two base atoms


def strand(names: list[str], chain_id: str = "A", shift: tuple[float, float, float] = (0, 0, 0),
           numbers: list[int] | None = None) -> gemmi.Structure:
    """A one-chain structure: residue i named names[i], its atoms NUCLEOTIDE_ATOMS moved by i * RISE_A along y and
    by ``shift`` (Å). O2' is dropped from DNA residues."""
    chain = gemmi.Chain(chain_id)
    for i, name in enumerate(names):
        residue = gemmi.Residue()
        residue.name = name
        residue.seqid = gemmi.SeqId(numbers[i] if numbers else i + 1, " ")
        for atom_name, xyz in NUCLEOTIDE_ATOMS.items():
            if atom_name == "O2'" and name.startswith("D"):
                continue
            residue.add_atom(_atom(atom_name, np.add(xyz, (0, i * RISE_A, 0)) + shift))
        chain.add_residue(residue)
    return _structure([chain])


def _atom(name: str, xyz, element: str | None = None) -> gemmi.Atom:
    atom = gemmi.Atom()
    atom.name = name
    atom.element = gemmi.Element(element or name[0])
    atom.pos = gemmi.Position(*map(float, xyz))
    atom.occ = 1.0
    atom.b_iso = 30.0
    return atom


def _structure(chains: list[gemmi.Chain]) -> gemmi.Structure:
    model = gemmi.Model("1")
    for chain in chains:
        model.add_chain(chain)
    structure = gemmi.Structure()
    structure.add_model(model)
    structure.setup_entities()
    return structure


def _residue(name: str, atoms: dict[str, tuple[float, float, float]], number: int) -> gemmi.Residue:
    residue = gemmi.Residue()
    residue.name = name
    residue.seqid = gemmi.SeqId(number, " ")
    for atom_name, xyz in atoms.items():
        residue.add_atom(_atom(atom_name, xyz, "MG" if atom_name == "MG" else None))
    return residue


RNA = ["G", "A", "C", "U", "G", "G", "A", "C", "U", "U"]


# --- residue and atom metrics --------------------------------------------------------------------------------------

def test_identical_model_scores_perfectly():
    result = evaluate_model(strand(RNA), strand(RNA))
    for key in ("backbone_coverage_3A", "backbone_precision_3A", "atom_coverage_5A", "atom_precision_5A",
                "sequence_recall", "sequence_precision", "sequence_recall_matched", "sequence_precision_matched"):
        assert result[key] == 1.0, key
    assert result["rmsd_A"] == 0.0
    counts = result["counts"]
    assert counts["reference_residues"] == counts["model_residues"] == counts["matched_pairs"] == 10
    assert counts["reference_backbone_atoms"] == counts["rmsd_atom_pairs"] == 10 * BACKBONE_PER_RESIDUE
    json.dumps(result)  # JSON-serialisable as it is


def test_copy_shifted_by_2_angstrom_is_covered_with_rmsd_2():
    result = evaluate_model(strand(RNA, shift=(2.0, 0, 0)), strand(RNA))
    assert result["backbone_coverage_3A"] == 1.0 and result["sequence_recall"] == 1.0
    assert result["rmsd_A"] == pytest.approx(2.0)


def test_copy_shifted_by_4_angstrom_covers_no_c4_but_every_atom_at_5_angstrom():
    result = evaluate_model(strand(RNA, shift=(0, 0, 4.0)), strand(RNA))
    assert result["backbone_coverage_3A"] == 0.0 and result["backbone_precision_3A"] == 0.0
    assert result["sequence_recall"] == 0.0 and result["sequence_recall_matched"] is None
    assert result["atom_coverage_5A"] == 1.0 and result["atom_precision_5A"] == 1.0
    assert result["rmsd_A"] is None and result["counts"]["matched_pairs"] == 0


def test_atoms_farther_than_5_angstrom_are_not_covered():
    result = evaluate_model(strand(RNA, shift=(0, 0, 30.0)), strand(RNA))
    assert result["atom_coverage_5A"] == 0.0 and result["atom_precision_5A"] == 0.0


def test_half_the_residues_deleted_gives_coverage_half_and_precision_one():
    reference = strand(RNA)
    model = strand(RNA)
    for i in range(9, -1, -2):  # keep residues 0, 2, 4, 6, 8
        del model[0][0][i]
    result = evaluate_model(model, reference)
    assert result["backbone_coverage_3A"] == 0.5 and result["backbone_precision_3A"] == 1.0
    assert result["sequence_recall"] == 0.5 and result["sequence_precision"] == 1.0
    assert result["atom_precision_5A"] == 1.0
    assert result["rmsd_A"] == 0.0 and result["counts"]["matched_pairs"] == 5


def test_changed_bases_lower_sequence_recall_and_precision():
    changed = list(RNA)
    changed[0], changed[3], changed[7] = "A", "C", "G"  # three of ten wrong
    result = evaluate_model(strand(changed), strand(RNA))
    assert result["backbone_coverage_3A"] == 1.0
    assert result["sequence_recall"] == pytest.approx(0.7) and result["sequence_precision"] == pytest.approx(0.7)
    assert result["sequence_recall_matched"] == pytest.approx(0.7)


def test_dna_names_match_rna_bases_and_u_equals_t():
    dna = ["D" + ("T" if n == "U" else n) for n in RNA]  # DG DA DC DT ...
    result = evaluate_model(strand(dna), strand(RNA))
    assert result["sequence_recall"] == 1.0 and result["sequence_precision"] == 1.0
    assert result["counts"]["model_backbone_atoms"] == 10 * (BACKBONE_PER_RESIDUE - 1)  # DNA has no O2'
    assert result["rmsd_A"] == 0.0 and result["counts"]["rmsd_atom_pairs"] == 10 * (BACKBONE_PER_RESIDUE - 1)


def test_modified_nucleotides_count_with_their_parent_base_or_never_match():
    model_names = ["G", "A", "C", "PSU", "G", "G", "A", "C", "U", "U"]  # pseudouridine is a U
    assert evaluate_model(strand(model_names), strand(RNA))["sequence_recall"] == 1.0
    model_names[0] = "XYZ"  # unknown to gemmi, but has C1', C4' and P: a nucleotide of unknown base
    result = evaluate_model(strand(model_names), strand(RNA))
    assert result["counts"]["model_residues"] == 10 and result["backbone_coverage_3A"] == 1.0
    assert result["sequence_recall"] == pytest.approx(0.9)


def test_waters_ions_protein_and_ligands_are_ignored():
    model = strand(RNA)
    far = (100.0, 100.0, 100.0)
    other = gemmi.Chain("B")
    other.add_residue(_residue("ALA", {"N": far, "CA": far, "C": far, "O": far, "CB": far}, 1))
    other.add_residue(_residue("HOH", {"O": far}, 2))
    other.add_residue(_residue("MG", {"MG": far}, 3))
    other.add_residue(_residue("ATP", {"PA": far, "O5'": far, "C5'": far, "C4'": far, "C1'": far}, 4))
    model[0].add_chain(other)
    result = evaluate_model(model, strand(RNA))
    assert result["counts"]["model_residues"] == 10 and result["atom_precision_5A"] == 1.0


def test_old_atom_names_and_alternative_conformations():
    model = strand(RNA)
    for residue in model[0][0]:
        for atom in residue:
            atom.name = {"C4'": "C4*", "OP1": "O1P"}.get(atom.name, atom.name)
    first = model[0][0][0]
    moved = _atom("C3'", (50.0, 50.0, 50.0))
    moved.altloc = "B"
    first.add_atom(moved)  # a second conformer of C3', listed after the first: ignored
    result = evaluate_model(model, strand(RNA))
    assert result["backbone_coverage_3A"] == 1.0 and result["atom_precision_5A"] == 1.0
    assert result["rmsd_A"] == 0.0 and result["counts"]["rmsd_atom_pairs"] == 10 * BACKBONE_PER_RESIDUE


def test_residues_without_c4_are_left_out_of_residue_metrics():
    model = strand(RNA)
    model[0][0][2].remove_atom("C4'", "\0")
    result = evaluate_model(model, strand(RNA))
    assert result["counts"]["model_residues"] == 9 and result["counts"]["model_residues_without_c4"] == 1
    assert result["backbone_coverage_3A"] == pytest.approx(0.9) and result["backbone_precision_3A"] == 1.0


def test_structure_without_nucleotides_is_refused():
    protein = _structure([gemmi.Chain("P")])
    protein[0][0].add_residue(_residue("ALA", {"N": (0, 0, 0), "CA": (1.5, 0, 0)}, 1))
    with pytest.raises(EvaluationError, match="reference: no nucleotides"):
        evaluate_model(strand(RNA), protein)
    with pytest.raises(EvaluationError, match="model: no nucleotides"):
        evaluate_model(gemmi.Structure(), strand(RNA))


# --- files and the command -----------------------------------------------------------------------------------------

@pytest.fixture()
def model_files(tmp_path: Path) -> tuple[Path, Path]:
    model = tmp_path / "model.cif"
    strand(RNA, shift=(2.0, 0, 0)).make_mmcif_document().write_file(str(model))
    reference = tmp_path / "reference.pdb"
    strand(RNA).write_pdb(str(reference))
    return model, reference


def test_evaluate_files_reads_mmcif_and_pdb(model_files):
    model, reference = model_files
    result = evaluate_files(model, reference)
    assert result["model"] == str(model.resolve()) and result["reference"] == str(reference.resolve())
    assert result["backbone_coverage_3A"] == 1.0 and result["rmsd_A"] == pytest.approx(2.0, abs=1e-3)


def test_bad_files_are_refused_naming_the_file(tmp_path, model_files):
    model, _ = model_files
    empty = tmp_path / "empty.pdb"
    empty.write_text("")
    garbage = tmp_path / "garbage.cif"
    garbage.write_text("data_x\nloop_\n_atom_site.id\n_atom_site.Cartn_x\n1\n")
    protein = tmp_path / "protein.pdb"
    protein.write_text("ATOM      1  CA  ALA A   1       1.000   2.000   3.000  1.00 20.00           C\nEND\n")
    for path, problem in [(tmp_path / "missing.pdb", "no such file"), (empty, "the file is empty"),
                          (garbage, "not a readable PDB/mmCIF file"), (protein, "no nucleotides")]:
        with pytest.raises(EvaluationError, match=f"{path.name}: {problem}"):
            evaluate_files(model, path)


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="haruspex")
    add_evaluate_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_command_prints_json_and_writes_the_output_file(model_files, tmp_path, capsys):
    model, reference = model_files
    out = tmp_path / "scores" / "eval.json"
    assert _run(["evaluate-na", str(model), str(reference), "-o", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    assert printed["backbone_coverage_3A"] == 1.0 and "engine_version" in printed
    assert list(out.parent.iterdir()) == [out]  # nothing half-written left behind


def test_command_errors_are_command_errors(model_files, tmp_path):
    model, _ = model_files
    with pytest.raises(CommandError, match="missing.cif: no such file"):
        _run(["evaluate-na", str(model), str(tmp_path / "missing.cif")])


def test_cli_reports_one_error_line(model_files, tmp_path, capsys):
    from haruspex_engine import cli

    if "evaluate-na" not in cli.build_parser().format_help():
        pytest.skip("evaluate-na is not registered in haruspex_engine/cli.py yet")
    model, reference = model_files
    assert cli.main(["evaluate-na", str(model), str(reference)]) == 0
    assert json.loads(capsys.readouterr().out)["sequence_recall"] == 1.0
    assert cli.main(["evaluate-na", str(model), str(tmp_path / "none.pdb")]) == cli.EXIT_FAILED
    assert capsys.readouterr().err.strip() == f"haruspex: error: {tmp_path / 'none.pdb'}: no such file"


# --- the deposited 78-nt RNA of the CryoREAD example ------------------------------------------------------------------

def _example(name: str) -> Path:
    path = EXAMPLES / name
    if not path.is_file():
        pytest.skip(f"{path} is absent (the CryoREAD example data live in ../shared, outside the project)")
    return path


def test_deposited_model_against_itself_and_a_renamed_copy():
    from haruspex_engine.nucleic.building.sequences import read_fasta

    reference = gemmi.read_structure(str(_example("6v5b_drna.pdb")))
    (chain,) = read_fasta(_example("21051.fasta"))
    result = evaluate_model(reference, reference)
    assert result["counts"]["reference_residues"] == 78 and result["sequence_recall"] == 1.0
    model = reference.clone()
    residues = list(model[0]["D"])
    assert "".join(r.name for r in residues) == chain.sequence  # the FASTA is this chain's sequence
    for residue in residues[::10]:  # 8 of 78 bases changed
        residue.name = {"A": "C", "C": "G", "G": "U", "U": "A"}[residue.name]
    for atom in model[0].all():
        atom.atom.pos += gemmi.Position(0.0, 1.0, 0.0)
    result = evaluate_model(model, reference)
    assert result["backbone_coverage_3A"] == 1.0 and result["rmsd_A"] == pytest.approx(1.0)
    assert result["sequence_recall"] == pytest.approx(70 / 78)
