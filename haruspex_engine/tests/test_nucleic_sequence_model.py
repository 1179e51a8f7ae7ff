"""Chains in sequence register: copies of identical chains, number collisions, one chain gathered from several
pieces (sequence_model, atoms.assemble_model)."""
from __future__ import annotations

import gemmi
import numpy as np
import pytest

from haruspex_engine.nucleic.building import sequence_model
from haruspex_engine.nucleic.building.atoms import ChainResidues, assemble_model, write_model
from haruspex_engine.nucleic.building.fragment_select import Fragment
from haruspex_engine.nucleic.building.ideal import ideal_na_strand
from haruspex_engine.nucleic.building.sequence_assign import SequenceGroup
from haruspex_engine.nucleic.building.sequence_model import TracedPath
from haruspex_engine.nucleic.building.sequence_register import PathRegister


def _group(ids, length=40):
    codes = np.arange(length) % 4
    return SequenceGroup("".join("AUCG"[c] for c in codes), codes.astype(np.int8), tuple(ids), False)


def _residues(sugar: np.ndarray) -> ChainResidues:
    return ChainResidues(np.full_like(sugar, np.nan), sugar, sugar + [0.0, 5.0, 0.0], ("A",) * len(sugar), False,
                         np.zeros(len(sugar)))


def _path(start: np.ndarray, count: int) -> TracedPath:
    sugar = start + 6.0 * np.arange(count)[:, None] * np.array([1.0, 0.0, 0.0])
    return TracedPath(sugar, None, _residues(sugar), False)


def _register(numbers) -> PathRegister:
    index = np.asarray(numbers)
    return PathRegister(np.where(index >= 0, 0, -1), index, 1, 0, 0)


def test_overlapping_pieces_go_to_different_copies_and_neighbours_to_the_same():
    """Copies A and B: piece 0 reads 0..9, piece 1 5..14 (overlap: the other copy), piece 2 16..19 starts 12 Å past
    piece 1's end (its neighbour, two numbers on) and far from piece 0."""
    paths = [_path(np.array([0.0, 0.0, 0.0]), 10), _path(np.array([0.0, 200.0, 0.0]), 10),
             _path(np.array([66.0, 200.0, 0.0]), 4)]
    registers = [_register(range(10)), _register(range(5, 15)), _register(range(16, 20))]
    copies, collisions = sequence_model._distribute(paths, [p.nodes for p in paths], registers, [_group(["A", "B"])])
    assert collisions == 0
    assert [c.tolist() for c in copies] == [[0] * 10, [1] * 10, [1] * 4]


def test_a_number_is_used_once_per_copy():
    paths = [_path(np.zeros(3), 10), _path(np.array([0.0, 50.0, 0.0]), 6)]
    registers = [_register(range(10)), _register(range(8, 14))]  # 8 and 9 twice, one copy
    copies, collisions = sequence_model._distribute(paths, [p.nodes for p in paths], registers, [_group(["A"])])
    assert collisions == 2
    assert registers[1].index.tolist() == [-1, -1, 10, 11, 12, 13] and copies[1].tolist() == [-1, -1, 0, 0, 0, 0]


def test_pieces_placed_in_one_chain_make_one_chain_with_a_numbering_gap(tmp_path):
    """Two pieces of a 12-nt strand (residues 1-5 and 9-12, written in reverse order) become chain A, numbered in
    order with a gap; residues without placement get a chain of their own; mmCIF and PDB read back the same."""
    strand = ideal_na_strand("GGCAUCAGUCCA")
    sugar = np.array([residue["C4'"][0].pos.tolist() for residue in strand])
    first, second = _residues(sugar[:5]), _residues(sugar[8:])
    stray = _residues(sugar[5:8] + [30.0, 0.0, 0.0])
    structure = assemble_model([(second, ["A"] * 4, np.arange(9, 13)), (first, ["A"] * 5, np.arange(1, 6)),
                                (stray, ["B"] * 3, np.arange(1, 4))], ["A", "B"])
    for path in (tmp_path / "m.cif", tmp_path / "m.pdb"):
        model = gemmi.read_structure(str(write_model(structure, path)))[0]
        assert [chain.name for chain in model] == ["A", "B"]
        assert [r.seqid.num for r in model["A"]] == [1, 2, 3, 4, 5, 9, 10, 11, 12]
        assert [r.seqid.num for r in model["B"]] == [1, 2, 3]
    with pytest.raises(ValueError, match="occurs twice"):
        assemble_model([(first, ["A"] * 5, np.arange(1, 6)), (second, ["A"] * 4, np.arange(4, 8))], ["A"])


def test_a_node_the_alignment_matched_is_added_only_where_it_duplicates_no_residue():
    """Residues at nodes 0, 2, 4 (6 Å apart, nodes 1 and 3 between them); the fragments matched nodes 1 (3 Å from
    its neighbours: a duplicate) and 5 (6 Å past the last residue: added)."""
    sugar = np.array([[0.0, 0, 0], [3.0, 0, 0], [6.0, 0, 0], [9.0, 0, 0], [12.0, 0, 0], [18.0, 0, 0]])
    path = TracedPath(sugar, None, _residues(sugar[[0, 2, 4]]), False)
    matched = Fragment(0, (0, 6), 0, False, np.array([0, 1, 5]), np.array([0, 1, 2]), 1.0)
    nodes, added = sequence_model._with_matched_nodes(path, [matched])
    assert nodes.tolist() == [0, 2, 4, 5] and added.tolist() == [False, False, False, True]
    reverse = TracedPath(sugar, None, _residues(sugar[[4, 2, 0]]), True)
    assert sequence_model._with_matched_nodes(reverse, [matched])[0].tolist() == [5, 4, 2, 0]
