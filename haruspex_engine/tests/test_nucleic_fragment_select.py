"""Choosing consistent sequence fragments with CP-SAT (fragment_select)."""
from __future__ import annotations

import numpy as np
import pytest

from haruspex_engine.nucleic.building.fragment_select import (
    WORK_MIN,
    WORK_PER_CANDIDATE,
    Fragment,
    greedy_selection,
    select_fragments,
    work_budget,
)


def fragment(path, first_node, first_residue, length=10, score=10.0, group=0, reverse=False, window=None):
    """A fragment matching ``length`` consecutive nodes to consecutive residues (decreasing when reverse)."""
    nodes = np.arange(first_node, first_node + length)
    step = -1 if reverse else 1
    residues = first_residue + step * np.arange(length)
    return Fragment(path, window or (first_node, first_node + length), group, reverse, nodes, residues, score)


def test_consistent_overlapping_windows_are_chosen_together():
    a = fragment(0, 0, 5)
    b = fragment(0, 4, 9)  # nodes 4..9 read as residues 9..14 in both
    assert select_fragments([a, b], [1]).chosen == (0, 1)


def test_contradicting_readings_of_a_node_keep_the_better_fragment():
    a = fragment(0, 0, 5, score=10)
    b = fragment(0, 4, 20, score=12)  # node 4 read as residue 9 by a, as 20 by b
    c = fragment(0, 4, 9, score=5, reverse=True)  # same residue, other direction
    selection = select_fragments([a, b, c], [1])
    assert selection.chosen == (1,) and selection.status == "OPTIMAL" and selection.objective == 1200


def test_a_residue_is_used_by_as_many_paths_as_there_are_copies():
    a = fragment(0, 0, 5, score=10)
    b = fragment(1, 0, 5, score=11)
    assert select_fragments([a, b], [1]).chosen == (1,)
    assert select_fragments([a, b], [2]).chosen == (0, 1)
    other_group = fragment(1, 0, 5, score=11, group=1)
    assert select_fragments([a, other_group], [1, 1]).chosen == (0, 1)


def test_opposite_directions_claim_the_same_residues():
    forward = fragment(0, 0, 5, score=10)
    backward = fragment(1, 0, 14, score=9, reverse=True)  # residues 14 down to 5
    assert select_fragments([forward, backward], [1]).chosen == (0,)


@pytest.mark.parametrize("overlap, together", [(1, True), (2, True), (3, False)])
def test_ends_may_overlap_by_a_tenth_of_the_span_each(overlap, together):
    a = fragment(0, 0, 0, length=10)  # claims residues 1..8
    b = fragment(1, 0, 10 - overlap, length=10)
    assert (select_fragments([a, b], [1]).chosen == (0, 1)) == together


def test_same_path_cannot_claim_residues_twice_from_distant_windows_of_other_paths():
    a = fragment(0, 0, 0, score=10)
    b = fragment(0, 30, 40, score=10)
    c = fragment(1, 0, 40, score=15)
    assert select_fragments([a, b, c], [1]).chosen == (0, 2)


def consistent(fragments, subset, capacities):
    """The two rules checked directly, pair by pair (slow)."""
    readings, claims = {}, {}
    for f in (fragments[i] for i in subset):
        for node, residue in zip(f.nodes.tolist(), f.residues.tolist()):
            if readings.setdefault((f.path, node), (f.group, f.reverse, residue)) != (f.group, f.reverse, residue):
                return False
        for residue in f.claims().tolist():
            claims.setdefault((f.group, residue), set()).add(f.path)
    return all(len(paths) <= capacities[group] for (group, _), paths in claims.items())


def random_fragments(rng, count):
    return [fragment(int(rng.integers(3)), int(rng.integers(0, 12)), int(rng.integers(0, 30)),
                     length=int(rng.integers(3, 9)), score=float(rng.uniform(1, 20)), reverse=bool(rng.integers(2)),
                     group=int(rng.integers(2))) for _ in range(count)]


@pytest.mark.parametrize("seed", range(6))
def test_matches_exhaustive_search_on_small_sets(seed):
    rng = np.random.default_rng(seed)
    fragments = random_fragments(rng, 11)
    capacities = [1, 2]
    links = [(rng.choice(11, 2, replace=False).tolist(), rng.choice(11, 2, replace=False).tolist(),
              float(rng.uniform(1, 10))) for _ in range(4)]

    def total(subset):
        chosen = set(subset)
        return (sum(round(100 * fragments[i].score) for i in subset)
                + sum(round(100 * bonus) for first, second, bonus in links
                      if chosen & set(first) and chosen & set(second)))

    best = max(total(subset) for mask in range(1 << len(fragments))
               if consistent(fragments, subset := [i for i in range(len(fragments)) if mask >> i & 1], capacities))
    selection = select_fragments(fragments, capacities, links=links)
    assert consistent(fragments, selection.chosen, capacities)
    assert consistent(fragments, greedy_selection(fragments, capacities), capacities)
    assert selection.status == "OPTIMAL" and selection.objective == best


def test_a_link_decides_between_equally_good_readings():
    left = fragment(0, 0, 0, length=10)  # path 0 reads residues 0..9
    near, far = fragment(1, 0, 11, length=3, score=5.0), fragment(1, 0, 30, length=3, score=5.0)
    for linked, expected in ((2, (0, 2)), (1, (0, 1))):  # path 1 has one node reading: the link decides which
        assert select_fragments([left, far, near], [1], links=[([0], [linked], 1.0)]).chosen == expected


def test_empty_and_reproducible():
    assert select_fragments([], []).chosen == ()
    fragments = random_fragments(np.random.default_rng(3), 300)
    first, second = select_fragments(fragments, [1, 1]), select_fragments(fragments, [1, 1])
    assert first.chosen and first.chosen == second.chosen and first.objective == second.objective
    assert first.stopped_by == "optimal" and first.optimal and first.work == second.work <= first.work_limit


def test_the_work_budget_grows_with_the_candidates():
    assert work_budget(0) == WORK_MIN
    assert work_budget(3000) == pytest.approx(WORK_MIN + 3000 * WORK_PER_CANDIDATE)
    assert work_budget(3000, scale=2.0) == pytest.approx(2 * work_budget(3000))


def test_a_tiny_work_budget_stops_the_search_and_says_so():
    """The same budget stops it at the same point on any machine: the result is reproducible, and reported as not
    proved optimal (stopped by the work limit, not by the wall-clock safety net)."""
    fragments = random_fragments(np.random.default_rng(3), 300)
    first, second = (select_fragments(fragments, [1, 1], work_scale=1e-4) for _ in range(2))
    assert first.stopped_by == "work limit" and not first.optimal and first.status != "OPTIMAL"
    assert first.chosen and first.chosen == second.chosen and first.work >= first.work_limit
