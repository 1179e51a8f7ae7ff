"""Chains in sequence register: splitting where the register breaks, numbering, chain ids beyond 62 chains."""
from __future__ import annotations

import numpy as np

from haruspex_engine.nucleic.building import sequence_model
from haruspex_engine.nucleic.building.sequence_assign import SequenceGroup
from haruspex_engine.nucleic.building.sequence_model import ModelChain, chain_names


def _group(ids):
    return SequenceGroup("ACGU", np.array([0, 2, 3, 1], np.int8), tuple(ids), False)


def test_register_breaks_split_the_path():
    # nodes 0..7 in chain order; group/residue per node (-1: unmatched)
    group = np.array([0, 0, -1, 0, 0, -1, -1, 0])
    residue = np.array([3, 4, -1, 6, 2, -1, -1, 4])
    pieces = sequence_model._pieces(np.arange(8), group, residue)
    # 3,4,(gap fits 5),6 | 2 goes backwards: new piece; two unmatched then 4: only 1 number between 2 and 4
    assert pieces == [[0, 1, 2, 3], [4, 5, 6], [7]]


def test_numbers_follow_the_register_and_count_around_it():
    residue = np.array([-1, -1, 4, -1, 7, -1])
    matched = residue >= 0
    np.testing.assert_array_equal(sequence_model._numbers(residue, matched), [3, 4, 5, 6, 8, 9])
    np.testing.assert_array_equal(sequence_model._numbers(np.full(3, -1), np.zeros(3, bool)), [1, 2, 3])


def test_chain_ids_stay_unique_beyond_62_chains():
    groups = [_group(["A", "B"]), _group(["x"])]
    chains = [ModelChain(None, 0), ModelChain(None, 0), ModelChain(None, 0), ModelChain(None, 1)]
    chains += [ModelChain(None, None) for _ in range(70)]
    names = chain_names(chains, groups)
    assert names[:4] == ["A", "B", "C", "x"]  # the group's ids first, then the next free ones
    assert len(set(names)) == len(names) == 74 and "AA" in names
