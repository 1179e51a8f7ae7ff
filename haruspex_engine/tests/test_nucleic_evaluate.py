"""Nucleic-acid model evaluation: one-to-one coverage and precision, sequence, register, polarity and RMSD on
structures built in code."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gemmi
import numpy as np
import pytest
from scipy.spatial import cKDTree

from haruspex_engine.commands import CommandError
from haruspex_engine.nucleic.building.evaluate import (
    EvaluationError,
    evaluate_files,
    evaluate_model,
    numbered_by_position,
)
from haruspex_engine.nucleic.building.evaluate_command import add_evaluate_parser
from haruspex_engine.nucleic.building.ideal import ideal_na_duplex
from haruspex_engine.testing.rna_models import ideal_rna

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
EXAMPLES = SHARED_DATA / "cryoread-example"
RISE_A = 6.0  # residue i is residue 0 moved by (0, i * RISE_A, 0) Å, about the C4'-C4' step of a real strand
# A nucleotide's atoms (x, y, z in Å): phosphate, sugar and two base atoms; geometry only roughly like the real one.
NUCLEOTIDE_ATOMS = {
    "P": (0.0, 0.0, 0.0), "OP1": (1.2, -0.8, 0.3), "OP2": (-1.2, -0.8, 0.3), "O5'": (0.2, 1.4, 0.6),
    "C5'": (0.6, 2.5, 1.2), "C4'": (0.8, 3.6, 2.0), "O4'": (2.1, 3.5, 2.7), "C3'": (0.1, 4.7, 2.6),
    "O3'": (0.3, 5.8, 1.6), "C2'": (0.6, 4.8, 4.0), "O2'": (-0.4, 5.4, 4.8), "C1'": (1.9, 4.1, 3.9),
    "N9": (3.0, 4.3, 5.0), "C4": (4.1, 4.6, 6.0),
}
BACKBONE_PER_RESIDUE = 12  # NUCLEOTIDE_ATOMS without the two base atoms
ATOMS_PER_RESIDUE = len(NUCLEOTIDE_ATOMS)


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
    assert result["register_recall"] == 1.0
    assert result["reversed_residues"] == 0 and result["reversed_fraction"] == 0.0
    assert result["rmsd_c4_A"] == 0.0 and result["rmsd_all_atoms_A"] == 0.0
    counts = result["counts"]
    assert counts["reference_residues"] == counts["model_residues"] == counts["matched_pairs"] == 10
    assert counts["register_pairs"] == 10 and counts["matched_steps"] == 9 and counts["reversed_steps"] == 0
    assert counts["reference_backbone_atoms"] == 10 * BACKBONE_PER_RESIDUE
    assert counts["rmsd_atom_pairs"] == 10 * ATOMS_PER_RESIDUE  # base atoms included
    json.dumps(result)  # JSON-serialisable as it is


def test_copy_shifted_by_2_angstrom_is_covered_with_rmsd_2():
    result = evaluate_model(strand(RNA, shift=(2.0, 0, 0)), strand(RNA))
    assert result["backbone_coverage_3A"] == 1.0 and result["sequence_recall"] == 1.0
    assert result["rmsd_c4_A"] == pytest.approx(2.0) and result["rmsd_all_atoms_A"] == pytest.approx(2.0)


def test_copy_shifted_by_4_angstrom_covers_no_c4_but_every_atom_at_5_angstrom():
    result = evaluate_model(strand(RNA, shift=(0, 0, 4.0)), strand(RNA))
    assert result["backbone_coverage_3A"] == 0.0 and result["backbone_precision_3A"] == 0.0
    assert result["sequence_recall"] == 0.0 and result["sequence_recall_matched"] is None
    assert result["atom_coverage_5A"] == 1.0 and result["atom_precision_5A"] == 1.0
    assert result["rmsd_c4_A"] is None and result["rmsd_all_atoms_A"] is None
    assert result["counts"]["matched_pairs"] == 0 and result["register_recall"] == 0.0


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
    assert result["rmsd_c4_A"] == 0.0 and result["counts"]["matched_pairs"] == 5


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
    assert result["rmsd_all_atoms_A"] == 0.0 and result["counts"]["rmsd_atom_pairs"] == 10 * (ATOMS_PER_RESIDUE - 1)


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
    assert result["rmsd_all_atoms_A"] == 0.0 and result["counts"]["rmsd_atom_pairs"] == 10 * ATOMS_PER_RESIDUE


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


# --- one-to-one matching ----------------------------------------------------------------------------------------------

def c4_only(points: list[tuple[float, float, float]], chain_id: str = "A") -> gemmi.Structure:
    """A one-chain structure of adenosines numbered 1, 2, … that have only a C4′ atom, at ``points`` (Å)."""
    chain = gemmi.Chain(chain_id)
    for i, xyz in enumerate(points):
        chain.add_residue(_residue("A", {"C4'": xyz}, i + 1))
    return _structure([chain])


def test_two_model_residues_on_one_reference_residue_count_once():
    model = strand(RNA)
    extra = strand(RNA[:1], chain_id="B", shift=(1.0, 0, 0))  # a second residue 1 Å from reference residue 1
    model[0].add_chain(extra[0][0])
    reference = strand(RNA)
    model_c4 = np.array([r["C4'"][0].pos.tolist() for chain in model[0] for r in chain])
    reference_c4 = np.array([r["C4'"][0].pos.tolist() for r in reference[0][0]])
    nearest, _ = cKDTree(reference_c4).query(model_c4)
    assert (nearest <= 3.0).all()  # the nearest-partner rule would give every model residue a partner
    result = evaluate_model(model, reference)
    assert result["backbone_precision_3A"] == pytest.approx(10 / 11) and result["backbone_coverage_3A"] == 1.0
    assert result["sequence_precision"] == pytest.approx(10 / 11) and result["counts"]["matched_pairs"] == 10
    assert result["rmsd_c4_A"] == 0.0  # of two candidates, the nearer one is matched


def test_assignment_finds_the_largest_matching():
    # Model residue 1 is nearest to reference residue 2 (1.9 Å), but pairing them leaves reference residue 1 and
    # model residue 2 alone; the largest matching pairs 1-1 (2.1 Å) and 2-2 (2.5 Å).
    reference = c4_only([(0.0, 0, 0), (4.0, 0, 0)])
    model = c4_only([(2.1, 0, 0), (6.5, 0, 0)])
    result = evaluate_model(model, reference)
    assert result["counts"]["matched_pairs"] == 2
    assert result["backbone_coverage_3A"] == 1.0 and result["backbone_precision_3A"] == 1.0
    assert result["rmsd_c4_A"] == pytest.approx(np.sqrt((2.1**2 + 2.5**2) / 2))


def test_of_the_largest_matchings_the_closest_is_chosen():
    # Both model residues are within 3 Å of both reference residues: the crossed pairing is 4 Å longer in total.
    reference = c4_only([(0.0, 0, 0), (2.0, 0, 0)])
    model = c4_only([(0.0, 1.0, 0), (2.0, 1.0, 0)])
    result = evaluate_model(model, reference)
    assert result["counts"]["matched_pairs"] == 2 and result["rmsd_c4_A"] == pytest.approx(1.0)
    assert result["register_recall"] == 1.0


def test_rmsd_c4_equals_a_rigid_shift():
    shift = (1.0, 1.5, -0.5)  # 1.87 Å
    assert evaluate_model(ideal_rna(), ideal_rna())["rmsd_c4_A"] == 0.0
    model = ideal_rna()
    for residue in model[0][0]:
        for atom in residue:
            atom.pos += gemmi.Position(*shift)
    result = evaluate_model(model, ideal_rna())
    assert result["rmsd_c4_A"] == pytest.approx(np.linalg.norm(shift))
    assert result["rmsd_all_atoms_A"] == pytest.approx(np.linalg.norm(shift))


# --- register ------------------------------------------------------------------------------------------------------

def test_register_needs_the_fasta_number_and_chain():
    reference = strand(RNA)
    assert evaluate_model(strand(RNA), reference)["register_recall"] == 1.0
    assert evaluate_model(strand(RNA, numbers=[i + 2 for i in range(10)]), reference)["register_recall"] == 0.0
    half = [i + 1 if i < 5 else i + 11 for i in range(10)]
    assert evaluate_model(strand(RNA, numbers=half), reference)["register_recall"] == 0.5
    assert evaluate_model(strand(RNA, chain_id="B"), reference)["register_recall"] == 0.0


def test_register_positions_are_ordinals_not_reference_numbers():
    reference = strand(RNA, numbers=list(range(101, 111)))  # FASTA position 1 is residue 101
    assert evaluate_model(strand(RNA), reference)["register_recall"] == 1.0
    assert evaluate_model(reference, reference)["register_recall"] == 0.0


def test_a_copy_chain_of_identical_sequence_counts_for_register():
    far = (40.0, 0, 0)
    copies = strand(RNA)
    copies[0].add_chain(strand(RNA, chain_id="B", shift=far)[0][0])
    on_b_named_a = strand(RNA, chain_id="A", shift=far)
    result = evaluate_model(on_b_named_a, copies)
    assert result["backbone_coverage_3A"] == 0.5 and result["register_recall"] == 0.5
    different = strand(RNA)
    different[0].add_chain(strand(RNA[::-1], chain_id="B", shift=far)[0][0])  # chain B of another sequence
    assert evaluate_model(on_b_named_a, different)["register_recall"] == 0.0


def test_palindromic_duplex_strands_count_under_either_name():
    sequence = "GGCGCC"  # its own reverse complement: both strands have this sequence
    reference = _structure(list(ideal_na_duplex(sequence)))
    swapped = _structure(list(ideal_na_duplex(sequence, chain_ids=("B", "A"))))
    result = evaluate_model(swapped, reference)
    assert result["backbone_coverage_3A"] == 1.0 and result["register_recall"] == 1.0
    not_palindromic = _structure(list(ideal_na_duplex("GGCGCA")))
    renamed = _structure(list(ideal_na_duplex("GGCGCA", chain_ids=("B", "A"))))
    assert evaluate_model(renamed, not_palindromic)["register_recall"] == 0.0


# --- polarity ------------------------------------------------------------------------------------------------------

def reordered(structure: gemmi.Structure, order: list[int]) -> gemmi.Structure:
    """The first chain with its residues in ``order`` (same coordinates), renumbered 1, 2, …"""
    source = structure[0][0]
    chain = gemmi.Chain(source.name)
    for number, index in enumerate(order, start=1):
        residue = source[index].clone()
        residue.seqid = gemmi.SeqId(number, " ")
        chain.add_residue(residue)
    return _structure([chain])


def test_a_chain_built_backwards_is_reversed_throughout():
    reference = ideal_rna()
    length = len(reference[0][0])
    result = evaluate_model(reordered(reference, list(range(length))[::-1]), reference)
    assert result["backbone_coverage_3A"] == 1.0 and result["sequence_recall"] == 1.0  # blind to the direction
    assert result["reversed_residues"] == length and result["reversed_fraction"] == 1.0
    assert result["counts"]["reversed_steps"] == result["counts"]["matched_steps"] == length - 1
    forward = evaluate_model(reordered(reference, list(range(length))), reference)
    assert forward["reversed_residues"] == 0 and forward["counts"]["reversed_steps"] == 0


def test_a_reversed_stretch_counts_its_residues_and_steps():
    order = [0, 1, 2, 6, 5, 4, 3, 7, 8, 9]
    result = evaluate_model(reordered(strand(RNA), order), strand(RNA))
    assert result["reversed_residues"] == 4 and result["counts"]["reversed_steps"] == 3
    assert result["reversed_fraction"] == pytest.approx(0.4)


def test_a_chain_that_runs_on_from_its_3_end_to_its_5_end_jumps_back_without_reversing():
    """Residues 6-10 then 1-5 in one model chain (a trace round a ring, or across a junction): every step runs
    5′→3′ but the one from 10 to 1, which jumps back nine positions: no residue is reversed."""
    result = evaluate_model(reordered(strand(RNA), [5, 6, 7, 8, 9, 0, 1, 2, 3, 4]), strand(RNA))
    assert result["reversed_residues"] == 0 and result["counts"]["reversed_steps"] == 0
    assert result["counts"]["backward_jump_steps"] == 1 and result["counts"]["matched_steps"] == 9
    back_by_three = evaluate_model(reordered(strand(RNA), [0, 1, 2, 3, 7, 4, 5, 6, 8, 9]), strand(RNA))["counts"]
    assert (back_by_three["reversed_steps"], back_by_three["backward_jump_steps"]) == (1, 0)  # 8 → 5
    back_by_four = evaluate_model(reordered(strand(RNA), [0, 1, 2, 3, 8, 4, 5, 6, 7, 9]), strand(RNA))["counts"]
    assert (back_by_four["reversed_steps"], back_by_four["backward_jump_steps"]) == (0, 1)  # 9 → 5


def test_steps_across_model_chains_or_unmatched_residues_are_not_steps():
    model = strand(RNA[5:], shift=(0, 5 * RISE_A, 0))  # chain A on reference residues 6-10
    model[0].add_chain(strand(RNA[:5], chain_id="B")[0][0])  # then chain B on 1-5: A10 -> B1 is no step
    result = evaluate_model(model, strand(RNA))
    assert result["reversed_residues"] == 0 and result["counts"]["matched_steps"] == 8
    gap = strand(RNA)
    for atom in gap[0][0][4]:
        atom.pos += gemmi.Position(0, 0, 30.0)  # residue 5 matches nothing: steps 4-5 and 5-6 are not counted
    assert evaluate_model(gap, strand(RNA))["counts"]["matched_steps"] == 7


# --- a 1,530-nt rRNA ------------------------------------------------------------------------------------------------

def test_large_structures_are_matched_quickly():
    path = SHARED_DATA / "na-corpus" / "3JBV_A_rpr.pdb"
    if not path.is_file():
        pytest.skip(f"{path} is absent (the NA corpus lives in ../shared, outside the project)")
    reference = gemmi.read_structure(str(path))
    model = numbered_by_position(reference)
    extra = model[0][0].clone()
    extra.name = "Z"
    for residue in extra:
        for atom in residue:
            atom.pos += gemmi.Position(1.0, 0.0, 0.0)
    while len(extra) > 470:  # 1,530 + 470 = 2,000 model residues, 470 of them doubled 1 Å off
        del extra[len(extra) - 1]
    model[0].add_chain(extra)
    start = time.perf_counter()
    result = evaluate_model(model, reference)
    elapsed = time.perf_counter() - start
    assert result["counts"]["reference_residues"] == 1530 and result["counts"]["model_residues"] == 2000
    assert result["backbone_coverage_3A"] == 1.0 and result["backbone_precision_3A"] == pytest.approx(1530 / 2000)
    assert result["rmsd_c4_A"] == 0.0 and result["register_recall"] == 1.0 and result["reversed_residues"] == 0
    assert elapsed < 2.0


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
    assert result["backbone_coverage_3A"] == 1.0 and result["rmsd_c4_A"] == pytest.approx(2.0, abs=1e-3)


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
    assert result["rmsd_all_atoms_A"] == 0.0 and result["reversed_residues"] == 0
    assert result["register_recall"] == 0.0  # deposited numbers are not FASTA positions ...
    model = numbered_by_position(reference)  # ... these are
    assert evaluate_model(model, reference)["register_recall"] == 1.0
    residues = list(model[0]["D"])
    assert "".join(r.name for r in residues) == chain.sequence  # the FASTA is this chain's sequence
    for residue in residues[::10]:  # 8 of 78 bases changed
        residue.name = {"A": "C", "C": "G", "G": "U", "U": "A"}[residue.name]
    for atom in model[0].all():
        atom.atom.pos += gemmi.Position(0.0, 1.0, 0.0)
    result = evaluate_model(model, reference)
    assert result["backbone_coverage_3A"] == 1.0 and result["rmsd_c4_A"] == pytest.approx(1.0)
    assert result["rmsd_all_atoms_A"] == pytest.approx(1.0) and result["register_recall"] == 1.0
    assert result["sequence_recall"] == pytest.approx(70 / 78)
