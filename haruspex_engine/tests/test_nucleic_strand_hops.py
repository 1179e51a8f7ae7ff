"""Hops across a base pair: found at the end of an ideal duplex, not along a strand; paths are cut there."""
from __future__ import annotations

import gemmi
import numpy as np
import pytest

from haruspex_engine.nucleic.building.attach import PathAttachment
from haruspex_engine.nucleic.building.ideal import ideal_na_duplex
from haruspex_engine.nucleic.building.strand_hops import base_pair_hops, split_at

BASE_ATOMS = ("N1", "C2", "N3", "C4", "C5", "C6")  # ring atoms every base has


def _duplex_path(hop_bridged: bool = False) -> tuple[np.ndarray, PathAttachment]:
    """A path down strand 1 of an ideal 8-bp A-RNA duplex (5′→3′) that hops at the 3′ end onto the paired residue
    of strand 2 and runs back up it: C4′ positions as sugar nodes, base-ring centroids as base nodes, the phosphate
    between consecutive residues of a strand shared by them (index = position in the path of the later residue)."""
    first, second = ideal_na_duplex("GACUGCAU")
    residues = list(first) + list(second)  # strand 2 starts with the partner of strand 1's last residue

    def centre(residue: gemmi.Residue, names) -> np.ndarray:
        return np.mean([residue[name][0].pos.tolist() for name in names], axis=0)

    sugar = np.array([centre(r, ["C4'"]) for r in residues])
    base = np.array([centre(r, BASE_ATOMS) for r in residues])
    n = len(residues)
    hop = len(first) - 1
    prev_index = np.arange(n)
    next_index = np.arange(1, n + 1)
    if not hop_bridged:
        next_index[hop] = -1
        prev_index[hop + 1] = -1
    scores = np.zeros((n, 4))
    attachment = PathAttachment(np.zeros((n, 3)), np.zeros((n, 3)), prev_index, next_index, base, scores)
    return sugar, attachment


def test_the_hop_at_a_duplex_end_is_found_and_nothing_else() -> None:
    sugar, attachment = _duplex_path()
    steps = np.linalg.norm(np.diff(sugar, axis=0), axis=1)
    assert steps[7] > 9.0 and steps[:7].max() < 7.0  # the ideal geometry the thresholds rely on
    assert base_pair_hops(sugar, attachment).tolist() == [7]


def test_a_step_bridged_by_a_phosphate_is_never_a_hop() -> None:
    sugar, attachment = _duplex_path(hop_bridged=True)
    assert base_pair_hops(sugar, attachment).tolist() == []


def test_strand_steps_without_a_phosphate_are_not_hops() -> None:
    sugar, attachment = _duplex_path()
    unbridged = PathAttachment(attachment.prev_p, attachment.next_p, np.full(len(sugar), -1),
                               np.full(len(sugar), -1), attachment.base_xyz, attachment.scores)
    assert base_pair_hops(sugar, unbridged).tolist() == [7]  # stacked bases do not face along the strand


def test_nodes_without_bases_make_no_hop() -> None:
    sugar, attachment = _duplex_path()
    no_bases = PathAttachment(attachment.prev_p, attachment.next_p, attachment.prev_index, attachment.next_index,
                              np.full_like(attachment.base_xyz, np.nan), attachment.scores)
    assert base_pair_hops(sugar, no_bases).tolist() == []
    assert base_pair_hops(sugar[:1], attachment).tolist() == []


@pytest.mark.parametrize(("length", "cuts", "expected"), [
    (5, [], [(0, 5)]),
    (5, [1], [(0, 2), (2, 5)]),
    (5, [0, 3], [(0, 1), (1, 4), (4, 5)]),
    (3, [2], [(0, 3)]),
])
def test_split_at(length: int, cuts: list[int], expected: list[tuple[int, int]]) -> None:
    assert split_at(length, np.array(cuts, dtype=int)) == expected
