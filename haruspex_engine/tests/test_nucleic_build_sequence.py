"""Model building with a sequence, on oracle maps of an ideal 30-nt RNA: register, numbering, odd FASTA files."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from haruspex_engine.nucleic.building.build import build_nucleic_model
from haruspex_engine.nucleic.building.evaluate import evaluate_model
from haruspex_engine.nucleic.building.sequences import parse_fasta
from haruspex_engine.testing.oracle_maps import CLEAN, Corruption, oracle_maps
from haruspex_engine.testing.rna_models import IDEAL_SEQUENCE, ideal_rna

CONFUSED = Corruption(noise_sigma=0.05, confusion_fraction=0.3, seed=4)


@pytest.fixture(scope="module")
def reference():
    return ideal_rna()


@pytest.fixture(scope="module")
def clean_maps(reference):
    return oracle_maps(reference, CLEAN)


def _build(maps, fasta: str):
    return build_nucleic_model(maps.stage2, maps.density, maps.origin, sequences=parse_fasta(fasta),
                               solution_limit=300)


def _residue_count(structure) -> int:
    return sum(len(chain) for chain in structure[0])


def read_structure_back(structure):
    """The model's first model as gemmi reads it back from mmCIF text."""
    import gemmi

    document = structure.make_mmcif_document()
    return gemmi.make_structure_from_block(gemmi.cif.read_string(document.as_string())[0])[0]


def _numbers_match_register(structure, reference, offset: int = 0) -> tuple[int, int]:
    """(residues whose number is the reference number + offset, residues within 3 Å of a reference C4′)."""
    ref = {r.seqid.num: np.array(r["C4'"][0].pos.tolist()) for r in reference[0][0]}
    good = near = 0
    for chain in structure[0]:
        for residue in chain:
            xyz = np.array(residue["C4'"][0].pos.tolist())
            number, distance = min(((n, np.linalg.norm(xyz - p)) for n, p in ref.items()), key=lambda t: t[1])
            if distance < 3.0:
                near += 1
                good += residue.seqid.num == number + offset
    return good, near


def test_the_sequence_fixes_confused_bases_and_numbers_in_register(reference) -> None:
    maps = oracle_maps(reference, CONFUSED)
    result = _build(maps, f">A\n{IDEAL_SEQUENCE}\n")
    with_sequence = evaluate_model(result.structure, reference)
    without = evaluate_model(result.unsequenced, reference)
    assert without["sequence_recall"] <= 0.75  # 30 % of the bases are painted into the wrong map
    assert with_sequence["sequence_recall"] >= without["sequence_recall"] + 0.15
    assert with_sequence["backbone_coverage_3A"] >= max(0.9, without["backbone_coverage_3A"])
    assert with_sequence["register_recall"] >= 0.95
    good, near = _numbers_match_register(result.structure, reference)
    assert near >= 27 and good >= 0.9 * near
    assert [chain.name for chain in result.structure[0]] == ["A"]
    assignment = result.assignment
    assert assignment.selection.stopped_by == "optimal" and assignment.candidates > 0
    assert assignment.placement.placed >= _residue_count(result.unsequenced)


def test_residues_of_both_models_sit_where_the_model_without_sequence_fitted_them(reference) -> None:
    """The sequence changes bases (30 % confused here), not where the fit put a nucleotide: every residue the two
    models share follows the fit of the model without the sequence."""
    maps = oracle_maps(reference, CONFUSED)
    result = _build(maps, f">A\n{IDEAL_SEQUENCE}\n")

    def c4(structure) -> np.ndarray:
        return np.array([r["C4'"][0].pos.tolist() for chain in structure[0] for r in chain])

    with_sequence, without = c4(result.structure), c4(result.unsequenced)
    report = result.residue_fit["model"]
    assert report["followed"] == len(with_sequence) == len(without)
    nearest = np.linalg.norm(with_sequence[:, None] - without[None], axis=2).min(axis=1)
    assert nearest.max() < 0.05, nearest.max()
    assert result.residue_fit["unsequenced"]["score_after"] > result.residue_fit["unsequenced"]["score_before"]


def test_a_reading_at_noise_level_keeps_the_maps_letters(reference, clean_maps) -> None:
    """An unrelated sequence of the same length: whatever the alignment finds agrees with the maps by chance only,
    so every residue keeps its detected base, unplaced, and the model is the sequence-free one."""
    unrelated = "".join(np.random.default_rng(11).choice(list("ACGU"), len(IDEAL_SEQUENCE)))
    result = _build(clean_maps, f">A\n{unrelated}\n")
    assert result.assignment.placement.placed == 0
    assert _residue_count(result.structure) == _residue_count(result.unsequenced)
    with_sequence = evaluate_model(result.structure, reference)
    without = evaluate_model(result.unsequenced, reference)
    for key in ("backbone_coverage_3A", "sequence_recall"):
        assert with_sequence[key] == without[key]
    assert "A" not in [chain.name for chain in result.structure[0]]  # no residue is in chain A's register


def test_pieces_of_one_chain_are_written_as_that_chain_with_a_gap(reference) -> None:
    """Residues 14-16 missing from the maps break the trace in two; both pieces are chain A, numbered in its
    register with a gap, and the written file reads back so."""
    broken = reference.clone()
    chain = broken[0][0]
    for k in sorted((n - 1 for n in (14, 15, 16)), reverse=True):
        del chain[k]
    maps = oracle_maps(broken, CLEAN)
    result = _build(maps, f">A\n{IDEAL_SEQUENCE}\n")
    assert len(result.unsequenced[0]) == 2
    model = read_structure_back(result.structure)
    assert [c.name for c in model] == ["A"]
    numbers = [r.seqid.num for r in model["A"]]
    assert numbers == sorted(numbers) and len(numbers) >= 24
    assert not {14, 15, 16} & set(numbers) and {13, 17} <= set(numbers)
    good, near = _numbers_match_register(result.structure, reference)
    assert good == near >= 24


def test_a_longer_sequence_numbers_the_model_in_its_register(reference, clean_maps) -> None:
    rng = np.random.default_rng(0)
    head = "".join(rng.choice(list("ACGU"), 17))
    result = _build(clean_maps, f">B\n{head}{IDEAL_SEQUENCE}GGGAAACCC\n")
    good, near = _numbers_match_register(result.structure, reference, offset=len(head))
    assert near >= 27 and good == near
    assert evaluate_model(result.structure, reference)["sequence_recall"] >= 0.9


def test_unknown_residues_in_the_fasta_keep_every_number_in_register(reference, clean_maps) -> None:
    """Residues 8 and 20 of the FASTA are N and X: every residue keeps its FASTA number (none is shifted), and the
    residues built at the N and the X carry the map's base."""
    fasta = IDEAL_SEQUENCE[:7] + "N" + IDEAL_SEQUENCE[8:19] + "X" + IDEAL_SEQUENCE[20:]
    result = _build(clean_maps, f">A\n{fasta}\n")
    good, near = _numbers_match_register(result.structure, reference)
    assert near >= 27 and good == near
    letters = {r.seqid.num: r.name for r in result.structure[0]["A"]}
    assert (letters[8], letters[20]) == (IDEAL_SEQUENCE[7], IDEAL_SEQUENCE[19])


def test_a_shorter_sequence_assigns_what_it_can(reference, clean_maps) -> None:
    result = _build(clean_maps, f">A\n{IDEAL_SEQUENCE[:15]}\n")
    scores = evaluate_model(result.structure, reference)
    assert scores["backbone_coverage_3A"] >= 0.9  # the rest is still built, from the maps' letters
    numbers = [r.seqid.num for chain in result.structure[0] for r in chain]
    assert len(numbers) >= 27
    for chain in result.structure[0]:
        assert all(b.seqid.num > a.seqid.num for a, b in zip(chain, list(chain)[1:]))


def test_a_single_nucleotide_sequence_does_not_break_the_build(reference, clean_maps) -> None:
    result = _build(clean_maps, ">A\nG\n")
    assert result.structure is not None
    assert evaluate_model(result.structure, reference)["backbone_coverage_3A"] >= 0.9


def test_dna_sequence_names_dna_residues(reference, clean_maps) -> None:
    result = _build(clean_maps, f">A\n{IDEAL_SEQUENCE.replace('U', 'T')}\n")
    names = {r.name for chain in result.structure[0] for r in chain}
    assert names <= {"DA", "DC", "DG", "DT"} and names


def test_identical_chains_share_one_group_and_the_model_uses_their_ids(reference) -> None:
    from haruspex_engine.nucleic.building.sequence_assign import group_sequences

    records = parse_fasta(f">X_1|Chains C, D|rna\n{IDEAL_SEQUENCE}\n>E\nACGUACGU\n")
    groups = group_sequences(records)
    assert [g.chain_ids for g in groups] == [("C", "D"), ("E",)] and [g.dna for g in groups] == [False, False]
    maps = oracle_maps(reference, dataclasses.replace(CLEAN, seed=1))
    result = build_nucleic_model(maps.stage2, maps.density, maps.origin, sequences=records, solution_limit=300)
    assert result.structure[0][0].name == "C"
