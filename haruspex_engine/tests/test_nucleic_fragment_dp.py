"""Window alignment of a traced path against a sequence: the batched programme against a plain scalar version of the
same recurrence, and the cases it exists for (a clean register, a false node, a missing residue)."""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from haruspex_engine.nucleic.building import fragment_dp
from haruspex_engine.nucleic.building.fragment_dp import (
    MIN_CANDIDATE_SCORE,
    TOP_CANDIDATES,
    align_windows,
    window_bounds,
)


def _next_step(xyz: np.ndarray) -> np.ndarray:
    return np.append(np.linalg.norm(np.diff(xyz, axis=0), axis=1), np.inf)


def _reference(xyz: np.ndarray, scores: np.ndarray, next_step: np.ndarray, seq: np.ndarray, top: int) -> list:
    """The module docstring's programme for one window, cell by cell: [(score, nodes, residues)], best first."""
    n, length = len(xyz), len(seq)
    cap = int(0.15 * n)

    def dist(a: int, b: int) -> float:
        return math.sqrt(sum((float(xyz[a, k]) - float(xyz[b, k])) ** 2 for k in range(3)))

    def step(d: float) -> float:
        return 10 * (d - 7) ** 2 if d <= 4 or d >= 10 else 0.0

    cell: dict[tuple[int, int], tuple[float, int, int, int, str]] = {}  # (score, last, last residue, gaps, move)
    for i in range(n):
        for j in range(length):
            options = []  # in tie-break order
            if i == 0:
                options.append((100 * float(scores[0, seq[j]]), 0, j, 0, "match"))
            elif j >= 1 and (i - 1, j - 1) in cell:
                s, last, last_residue, gaps, _ = cell[i - 1, j - 1]
                penalty = step(dist(last, i) / (j - last_residue))
                options.append((s + 100 * float(scores[i, seq[j]]) - penalty, i, j, gaps, "match"))
            if i >= 1 and (i - 1, j) in cell:
                s, last, last_residue, gaps, _ = cell[i - 1, j]
                d = dist(last, i)
                free = d + float(next_step[i]) < 10 or d <= 4
                options.append((s - (0.0 if free else 10 * (d - 7) ** 2), last, last_residue, gaps, "skip node"))
            if j >= 1 and (i, j - 1) in cell:
                s, last, last_residue, gaps, _ = cell[i, j - 1]
                options.append((s - (25 * (gaps + 1) if gaps > cap else 25), last, last_residue, gaps + 1,
                                "skip residue"))
            if options:
                best = options[0]
                for option in options[1:]:
                    if option[0] > best[0]:
                        best = option
                cell[i, j] = best
    ends = [(cell[n - 1, j][0], j) for j in range(length)
            if (n - 1, j) in cell and cell[n - 1, j][4] != "skip residue" and cell[n - 1, j][0] > -1000]
    ends.sort(key=lambda e: (-e[0], e[1]))
    out = []
    for score, j in ends[:top]:
        i, pairs = n - 1, []
        while i >= 0:
            move = cell[i, j][4]
            if move == "match":
                pairs.append((i, j))
            i -= move != "skip residue"
            j -= move != "skip node"
        out.append((score, [p[0] for p in pairs[::-1]], [p[1] for p in pairs[::-1]]))
    return out


def _zigzag(n: int) -> np.ndarray:
    """Nodes 6.5 Å apart along x, alternating in y; every other node 11 Å apart."""
    return np.array([[5.5 * k, math.sqrt(6.5**2 - 5.5**2) * (k % 2), 0.0] for k in range(n)])


def _encoding(bases: np.ndarray) -> np.ndarray:
    """Scores 3 for the given base of each node, 0 for the others."""
    return 3.0 * np.eye(4)[bases]


@pytest.mark.parametrize(
    ("length", "expected"),
    [
        (0, []),
        (1, [(0, 1)]),
        (5, [(0, 5)]),
        (6, [(0, 6)]),
        (21, [(0, 20)] + [(s, 21) for s in range(2, 16, 2)]),
        (40, [(s, s + 20) for s in range(0, 21, 2)] + [(s, 40) for s in range(22, 35, 2)]),
    ],
)
def test_window_bounds(length: int, expected: list[tuple[int, int]]) -> None:
    assert window_bounds(length) == expected


def _random_window(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Steps of 1..10 Å in random directions, scores uniform in 0..3."""
    steps = rng.uniform(1.0, 10.0, size=(n, 3)) * rng.choice([-1, 1], size=(n, 3)) / np.sqrt(3)
    return np.cumsum(steps, axis=0), rng.uniform(0, 3, size=(n, 4))


def _tied_window(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Zigzag nodes (no step costs) with some doubled 1 Å away (free skips), scores 0 or 3: many equal moves."""
    xyz = _zigzag(n)
    doubled = rng.random(n) < 0.3
    doubled[0] = False
    xyz[doubled] = xyz[np.flatnonzero(doubled) - 1] + [1.0, 0.0, 0.0]
    return xyz, 3.0 * rng.integers(0, 2, size=(n, 4))


@pytest.mark.parametrize("make", [_random_window, _tied_window])
@pytest.mark.parametrize("seed", range(4))
def test_the_batched_programme_matches_the_scalar_one(seed: int, make: Callable) -> None:
    rng = np.random.default_rng(seed)
    windows = []
    for n in (1, 3, 6, 9):
        xyz, scores = make(rng, n)
        windows.append((xyz, scores, _next_step(xyz)))
    sequence = rng.integers(0, 4, size=12)
    top = 7
    got = align_windows([w[0] for w in windows], [w[1] for w in windows], [w[2] for w in windows], sequence, top)
    assert len(got) == len(windows)
    for (xyz, scores, next_step), alignments in zip(windows, got):
        expected = _reference(xyz, scores, next_step, sequence, top)
        assert expected, "every window should have candidates"
        assert len(alignments) == len(expected)
        for a, (score, nodes, residues) in zip(alignments, expected):
            assert a.score == pytest.approx(score, abs=1e-9)
            assert a.nodes.tolist() == nodes and a.residues.tolist() == residues


def _clean_register(length: int = 30) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random sequence and ten zigzag nodes that encode its residues 5..14."""
    sequence = np.random.default_rng(1).integers(0, 4, size=length)
    return sequence, _zigzag(10), _encoding(sequence[5:15])


def test_a_clean_register_is_found_and_beats_the_reversed_chain() -> None:
    sequence, xyz, scores = _clean_register()
    forward, backward = (align_windows([xyz], [scores], [_next_step(xyz)], s)[0] for s in (sequence, sequence[::-1]))
    best = forward[0]
    assert best.nodes.tolist() == list(range(10)) and best.residues.tolist() == list(range(5, 15))
    assert best.score == pytest.approx(10 * 300.0)
    assert backward[0].score < best.score
    assert len({a.residues[-1] for a in forward}) == len(forward)  # candidates end on different residues


def test_a_false_node_on_the_way_is_skipped_and_the_register_kept() -> None:
    sequence, xyz, scores = _clean_register()
    false = xyz[4] + 1.5 * (xyz[5] - xyz[4]) / np.linalg.norm(xyz[5] - xyz[4])
    xyz = np.insert(xyz, 5, false, axis=0)
    scores = np.insert(scores, 5, 0.0, axis=0)
    best = align_windows([xyz], [scores], [_next_step(xyz)], sequence)[0][0]
    assert best.nodes.tolist() == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10]
    assert best.residues.tolist() == list(range(5, 15))
    assert best.score == pytest.approx(10 * 300.0)  # 1.5 Å from node 4: a free skip


def _straight(residues: list[int], step: float = 6.0) -> np.ndarray:
    """Nodes on the x axis where residues of those indices would be, ``step`` Å per residue."""
    return np.array([[step * r, 0.0, 0.0] for r in residues])


def test_a_residue_without_a_node_is_skipped_where_the_gap_leaves_room_for_it() -> None:
    sequence = np.random.default_rng(1).integers(0, 4, size=30)
    residues = [5, 6, 7, 8, 10, 11, 12, 13, 14]
    assert sequence[9] not in (sequence[8], sequence[10])  # no equally good shifted register
    xyz = _straight(residues)  # a 12 Å gap between the nodes of residues 8 and 10: 6 Å per residue spanned
    best = align_windows([xyz], [_encoding(sequence[residues])], [_next_step(xyz)], sequence)[0][0]
    assert best.nodes.tolist() == list(range(9)) and best.residues.tolist() == residues
    assert best.score == pytest.approx(9 * 300.0 - 25.0)


def test_a_residue_skip_across_a_single_step_pays_for_the_short_distance() -> None:
    sequence = np.random.default_rng(1).integers(0, 4, size=30)
    residues = [5, 6, 7, 8, 10, 11, 12, 13, 14]
    xyz = _straight(range(len(residues)))  # 6 Å everywhere: no room for residue 9 between 8 and 10
    best = align_windows([xyz], [_encoding(sequence[residues])], [_next_step(xyz)], sequence, top=40)[0]
    skip = next(a for a in best if a.residues.tolist() == residues)
    assert skip.score == pytest.approx(9 * 300.0 - 25.0 - 10 * (6.0 / 2 - 7) ** 2)  # 3 Å per residue spanned


def test_residue_skips_beyond_the_allowance_cost_more() -> None:
    sequence = np.array([0, 1, 2, 3, 0, 1, 2, 3, 3, 3, 2, 1, 0, 0])
    residues = [0, 1, 2, 3, 7, 8, 9]  # seven nodes: allowance int(1.05) = 1 skipped residue at 25
    xyz = _straight(residues)
    best = align_windows([xyz], [_encoding(sequence[residues])], [_next_step(xyz)], sequence)[0][0]
    assert best.residues.tolist() == residues
    assert best.score == pytest.approx(7 * 300.0 - 25.0 - 25.0 - 75.0)  # gaps 0, 1 within it; the third 25·3


def test_top_limit_and_score_floor() -> None:
    sequence, xyz, scores = _clean_register(length=60)
    everything = align_windows([xyz], [scores], [_next_step(xyz)], sequence)[0]
    assert len(everything) == TOP_CANDIDATES
    assert [a.score for a in everything] == sorted((a.score for a in everything), reverse=True)
    first = align_windows([xyz], [scores], [_next_step(xyz)], sequence, top=3)[0]
    assert [a.residues.tolist() for a in first] == [a.residues.tolist() for a in everything[:3]]
    far = np.array([[20.0 * k, 0, 0] for k in range(4)])  # every step costs 10·13² = 1690
    results = align_windows([far, xyz], [np.zeros((4, 4)), scores], [_next_step(far), _next_step(xyz)], sequence)
    assert results[0] == [] and all(a.score > MIN_CANDIDATE_SCORE for a in results[1])


def test_large_batches_run_in_chunks_with_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    windows = [_random_window(rng, n) for n in (4, 9, 2, 7, 5)]
    sequence = rng.integers(0, 4, size=10)
    args = ([w[0] for w in windows], [w[1] for w in windows], [_next_step(w[0]) for w in windows], sequence)
    whole = align_windows(*args)
    monkeypatch.setattr(fragment_dp, "MAX_MOVES", 100)  # one window per chunk (9 nodes × 10 residues)
    chunked = align_windows(*args)
    assert [[(a.score, a.nodes.tolist(), a.residues.tolist()) for a in w] for w in chunked] == [
        [(a.score, a.nodes.tolist(), a.residues.tolist()) for a in w] for w in whole
    ]


def test_empty_inputs() -> None:
    xyz = _zigzag(3)
    assert align_windows([xyz], [np.ones((3, 4))], [_next_step(xyz)], np.empty(0, int)) == [[]]
    assert align_windows([], [], [], np.arange(4)) == []
    with pytest.raises(ValueError):
        align_windows([xyz], [np.ones((2, 4))], [_next_step(xyz)], np.arange(4))
