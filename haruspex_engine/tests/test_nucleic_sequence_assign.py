"""Continuity links between candidates of neighbouring paths (sequence_assign.continuity_links)."""
from __future__ import annotations

import numpy as np

from haruspex_engine.nucleic.building.fragment_select import Fragment
from haruspex_engine.nucleic.building.sequence_assign import CONTINUITY_BONUS, PathInput, continuity_links


def _path(xs: list[float], reverse: bool = False) -> PathInput:
    return PathInput(np.array([[x, 0.0, 0.0] for x in xs]), np.zeros((len(xs), 4)), reverse)


def _candidate(path: int, nodes: list[int], residues: list[int], group: int = 0, reverse: bool = False) -> Fragment:
    return Fragment(path, (min(nodes), max(nodes) + 1), group, reverse, np.array(nodes), np.array(residues), 1.0)


def test_candidates_continuing_across_a_break_are_linked():
    paths = [_path([0.0, 6.0, 12.0]), _path([24.0, 30.0])]  # 12 Å between A's 3′ end and B's 5′ end
    candidates = [
        _candidate(0, [0, 1, 2], [5, 6, 7]),   # reads A's 3′ end as residue 7
        _candidate(1, [0, 1], [9, 10]),         # B's 5′ end two residues on (one lost in the break): linked
        _candidate(1, [0, 1], [20, 21]),        # another register of B: not linked
        _candidate(1, [0, 1], [9, 10], group=1),  # the same numbers in another chain: not linked
        _candidate(0, [0, 1], [5, 6]),          # does not read A's end: not linked
        _candidate(1, [0, 1], [11, 12]),        # four residues on: more than a 12 Å break can hide
    ]
    assert continuity_links(paths, candidates) == [([0], [1], CONTINUITY_BONUS)]


def test_far_apart_ends_are_not_linked():
    paths = [_path([0.0, 6.0, 12.0]), _path([40.0, 46.0])]
    candidates = [_candidate(0, [0, 1, 2], [5, 6, 7]), _candidate(1, [0, 1], [8, 9])]
    assert continuity_links(paths, candidates) == []


def test_chain_direction_decides_which_ends_meet():
    """A runs 3′→5′ along the chain in path order (reverse): its 3′ end is its first node, at x = 0, and B's 5′ end
    (its first node) lies 12 Å from it."""
    paths = [_path([0.0, 6.0, 12.0], reverse=True), _path([-12.0, -6.0])]
    candidates = [_candidate(0, [0, 1, 2], [7, 6, 5], reverse=True),
                  _candidate(1, [0, 1], [7, 8]),   # B's 5′ end (node 0) is residue 7: no, it must follow 7
                  _candidate(1, [0, 1], [8, 9])]   # follows residue 7: linked
    assert continuity_links(paths, candidates) == [([0], [2], CONTINUITY_BONUS)]


def test_one_link_per_continuity_whatever_the_number_of_candidates():
    paths = [_path([0.0, 6.0, 12.0]), _path([18.0, 24.0])]
    candidates = [_candidate(0, [0, 1, 2], [5, 6, 7]), _candidate(0, [1, 2], [6, 7]),
                  _candidate(1, [0, 1], [8, 9]), _candidate(1, [0], [8])]
    assert continuity_links(paths, candidates) == [([0, 1], [2, 3], CONTINUITY_BONUS)]
