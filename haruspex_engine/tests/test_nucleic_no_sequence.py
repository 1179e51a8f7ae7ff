"""Residue choice along a traced path without a sequence: the dynamic programme against a brute-force search of the
same rule, and the geometric cases it exists for."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from haruspex_engine.nucleic.building.no_sequence import BREAK_COST, MAX_SKIPPED, choose_residues


def _rule_total(xyz: np.ndarray, reward: np.ndarray, kept: tuple[int, ...]) -> float:
    """The module docstring's rule, written out plainly for one choice of kept nodes."""
    def penalty(d: float, always: bool = False) -> float:
        return 10 * (d - 7) ** 2 if always or d <= 4 or d >= 10 else 0.0

    total = sum(reward[i] for i in kept)
    for j, i in zip(kept, kept[1:]):
        total -= penalty(float(np.linalg.norm(xyz[i] - xyz[j])))
        for k in range(j + 1, i):
            d_jk = float(np.linalg.norm(xyz[k] - xyz[j]))
            d_next = float(np.linalg.norm(xyz[k + 1] - xyz[k]))
            if not (d_jk + d_next < 10 or d_jk <= 4):
                total -= penalty(d_jk, always=True)
    return total


def _brute_force(xyz: np.ndarray, scores: np.ndarray) -> float:
    """Every choice of kept nodes and of the places among them where a new chain starts (a chain's consecutive
    residues at most MAX_SKIPPED + 1 nodes apart; chains anywhere, BREAK_COST each after the first)."""
    reward = scores.max(axis=1)
    best = -np.inf
    for size in range(1, len(xyz) + 1):
        for kept in itertools.combinations(range(len(xyz)), size):
            for cuts in itertools.product((False, True), repeat=size - 1):
                chains, start = [], 0
                for k, cut in enumerate(cuts, start=1):
                    if cut:
                        chains.append(kept[start:k])
                        start = k
                chains.append(kept[start:])
                if all(b - a <= MAX_SKIPPED + 1 for chain in chains for a, b in zip(chain, chain[1:])):
                    total = sum(_rule_total(xyz, reward, chain) for chain in chains)
                    best = max(best, total - BREAK_COST * (len(chains) - 1))
    return best


@pytest.mark.parametrize("seed", range(6))
def test_the_programme_finds_the_best_choice_of_the_rule(seed: int) -> None:
    rng = np.random.default_rng(seed)
    steps = rng.uniform(1.0, 9.0, size=(8, 3)) * rng.choice([-1, 1], size=(8, 3)) / np.sqrt(3)
    xyz = np.cumsum(steps, axis=0)
    scores = rng.uniform(0, 3, size=(8, 4))
    choice = choose_residues(xyz, scores)
    assert choice.score == pytest.approx(max(_brute_force(xyz, scores), _brute_force(xyz[::-1], scores[::-1])))


def test_a_regular_chain_keeps_every_node_with_its_best_base() -> None:
    xyz = np.array([[6.0 * i, 0, 0] for i in range(6)])
    scores = np.eye(4)[[0, 1, 2, 3, 0, 2]] * 2.0
    choice = choose_residues(xyz, scores)
    assert choice.nodes.tolist() == [0, 1, 2, 3, 4, 5] and not choice.reversed
    assert choice.bases == ("A", "UT", "C", "G", "A", "C") and choice.score == pytest.approx(12.0)


def test_a_node_on_top_of_another_and_one_halfway_are_skipped_for_free() -> None:
    xyz = np.array([[0, 0, 0], [6, 0, 0], [7, 0.5, 0], [12, 0, 0], [15, 0, 0], [18, 0, 0]], float)
    scores = np.full((6, 4), 1.0)
    scores[2] = 0.5  # the duplicate of node 1 is weaker
    choice = choose_residues(xyz, scores)
    kept = sorted(choice.nodes.tolist())
    assert kept == [0, 1, 3, 5]  # 2 sits 1.1 Å from 1; 4 lies halfway between 3 and 5


def test_an_implausible_step_breaks_the_path_into_two_chains() -> None:
    """A 14 Å jump in the middle of a regular path: both sides are kept, as two chains (one run only kept the
    better side)."""
    xyz = np.array([[6.0 * i, 0, 0] for i in range(5)] + [[38.0 + 6.0 * i, 0, 0] for i in range(4)])
    choice = choose_residues(xyz, np.full((9, 4), 1.0))
    assert sorted(choice.nodes.tolist()) == list(range(9))
    runs = [sorted(run.tolist()) for run in choice.runs()]
    assert sorted(runs) == [[0, 1, 2, 3, 4], [5, 6, 7, 8]]
    assert choice.score == pytest.approx(9.0 - BREAK_COST)
    regular = choose_residues(xyz[:5], np.full((5, 4), 1.0))
    assert len(regular.runs()) == 1 and regular.starts.tolist() == [True, False, False, False, False]


def test_reversed_chains_are_given_in_chain_order() -> None:
    rng = np.random.default_rng(3)
    xyz = np.cumsum(rng.uniform(3.0, 8.0, size=(10, 3)) / np.sqrt(3), axis=0)
    scores = rng.uniform(0, 3, size=(10, 4))
    for choice in (choose_residues(xyz, scores), choose_residues(xyz[::-1], scores[::-1])):
        step = np.diff(choice.nodes)
        assert np.all(step < 0) if choice.reversed else np.all(step > 0)


def test_empty_and_malformed_paths() -> None:
    assert choose_residues(np.empty((0, 3)), np.empty((0, 4))).nodes.size == 0
    with pytest.raises(ValueError):
        choose_residues(np.zeros((3, 3)), np.zeros((2, 4)))


def test_two_nodes_under_4_A_apart_are_both_residues_only_where_they_share_a_phosphate():
    """Nodes 3.6 Å apart (node errors on two consecutive nucleotides): the second lies on top of the first and is
    left out, unless the two sugars share a phosphate (a bridged step), which makes them two nucleotides. Nodes 2 Å
    apart are one nucleotide either way."""
    scores = np.full((4, 4), 1.0)
    close = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 0.0], [9.6, 0.0, 0.0], [15.6, 0.0, 0.0]])
    assert choose_residues(close, scores).nodes.tolist() == [0, 1, 3]
    assert choose_residues(close, scores, np.array([False, True, False])).nodes.tolist() == [0, 1, 2, 3]
    on_top = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 0.0], [8.0, 0.0, 0.0], [14.0, 0.0, 0.0]])
    assert choose_residues(on_top, scores, np.array([True, True, True])).nodes.tolist() == [0, 1, 3]
    with pytest.raises(ValueError, match="bridged"):
        choose_residues(close, scores, np.array([True]))
