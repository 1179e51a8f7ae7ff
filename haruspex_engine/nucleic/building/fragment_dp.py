"""Sequence alignment of windows of a traced backbone path: candidate fragments (node i ↔ residue j).

A traced path is an ordered list of sugar nodes (positions in Å) with base-type scores (A, U/T, C, G; 0..3 each).
Short windows of the path (``window_bounds``) are aligned against a chain sequence (int codes A=0, U/T=1, C=2, G=3)
by a dynamic programme, batched over windows with numpy.

The programme, for one window of n nodes (0..n−1) and a sequence of L residues (0..L−1). Cell (i, j) holds the best
partial alignment in which nodes 0..i are all decided (matched or skipped) and residues up to j are used or skipped,
with its state: ``last`` (the last matched node), ``last_residue`` (the residue it got), ``gaps`` (residues
skipped so far) and the move that made it.
Node 0 is always matched; residues before the first match cost nothing. Moves into (i, j), the highest wins, ties
going to match, then skip node, then skip residue:

1. match node i to residue j — i = 0: 100·score(0, seq[j]), last = 0, gaps = 0; i ≥ 1, j ≥ 1: from (i−1, j−1),
   + 100·score(i, seq[j]) − step_penalty(d(last, i) / (g + 1)), last = i, where g is the number of residues
   skipped since the last match (``no_sequence.step_penalty``: 10·(d − 7)² outside (4, 10) Å). The original
   charges step_penalty(d(last, i)) whatever g is; dividing by the residues spanned makes a skipped residue cost
   nothing extra where the gap is as long as the missing residue would make it (~12 Å for one), and a lot where
   it is not (a 6 Å step cannot hide a residue) — so a wrong register can no longer buy matches with cheap
   residue skips;
2. skip node i (i ≥ 1): from (i−1, j), − skip_penalty(d(last, i), d(i, i+1)) (``no_sequence.skip_penalty``: free when
   node i lies on the way or on top of ``last``, 10·(d − 7)² otherwise);
3. skip residue j (j ≥ 1): from (i, j−1) with c gaps, − 25·(c + 1) when c > cap = int(0.15·n), else − 25; gaps = c + 1.

Unreachable cells are −inf. The state is greedy: ``last`` and ``gaps`` come from the winning predecessor. Every end
cell (n−1, j) not reached by a residue skip and scoring above −1000 is a candidate (so candidates end on different
residues); the best ``top`` per window (ties: smaller j first) are traced back to their matched nodes and residues.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from haruspex_engine.nucleic.building.no_sequence import skip_penalty, step_penalty

WINDOW_SIZE = 20
WINDOW_STEP = 2
WINDOW_TAIL = 5
#: A match scores MATCH_WEIGHT × the node's score for the residue's base.
MATCH_WEIGHT = 100.0
RESIDUE_SKIP_COST = 25.0
#: Residue skips beyond int(GAP_ALLOWANCE × window node count) cost more and more.
GAP_ALLOWANCE = 0.15
MIN_CANDIDATE_SCORE = -1000.0
TOP_CANDIDATES = 20
#: Most move codes (windows × nodes × residues, one byte each) held at once; larger batches run in chunks.
MAX_MOVES = 30_000_000

_MATCH, _SKIP_NODE, _SKIP_RESIDUE = 1, 2, 3


@dataclass(frozen=True)
class Alignment:
    """score: the programme's total; nodes: int (K,) window-relative indices of the matched nodes, increasing, the
    first 0; residues: int (K,) indices into the sequence of the residues those nodes get, increasing."""

    score: float
    nodes: np.ndarray
    residues: np.ndarray


def window_bounds(
    length: int, size: int = WINDOW_SIZE, step: int = WINDOW_STEP, tail: int = WINDOW_TAIL
) -> list[tuple[int, int]]:
    """(start, stop) node ranges of the windows of a path of ``length`` nodes: start = 0, step, 2·step, … while
    start < length − tail; stop = min(start + size, length). A path of 1..tail nodes, which that rule would leave
    without any window, gets the single window (0, length); an empty path gets none."""
    if size < 1 or step < 1:
        raise ValueError(f"window size and step must be positive, got {size} and {step}")
    if length < 1:
        return []
    if length <= tail:
        return [(0, length)]
    return [(start, min(start + size, length)) for start in range(0, length - tail, step)]


def align_windows(
    xyz: list[np.ndarray],
    scores: list[np.ndarray],
    next_step: list[np.ndarray],
    sequence: np.ndarray,
    top: int = TOP_CANDIDATES,
) -> list[list[Alignment]]:
    """The best ``top`` alignments of each window against ``sequence``, best first, each scoring above
    MIN_CANDIDATE_SCORE. Window b: xyz[b] (n_b, 3) node positions, Å; scores[b] (n_b, 4) base-type scores (A, U/T,
    C, G); next_step[b] (n_b,) distance, Å, from each node to the node after it on the path (np.inf where none).
    Windows may differ in length. sequence: int (L,) base codes (A=0, U/T=1, C=2, G=3, N=4: a residue the sequence
    does not know, which a node matches with no gain)."""
    if not len(xyz) == len(scores) == len(next_step):
        raise ValueError(f"need scores and next steps per window, got {len(xyz)}, {len(scores)}, {len(next_step)}")
    xyz = [np.asarray(x, dtype=float).reshape(-1, 3) for x in xyz]
    scores = [np.pad(np.asarray(s, dtype=float).reshape(-1, 4), ((0, 0), (0, 1))) for s in scores]  # N gains 0
    next_step = [np.asarray(d, dtype=float).reshape(-1) for d in next_step]
    if any(not len(x) == len(s) == len(d) for x, s, d in zip(xyz, scores, next_step)):
        raise ValueError("each window needs one position, one score vector and one next step per node")
    sequence = np.asarray(sequence, dtype=int).reshape(-1)
    results: list[list[Alignment]] = [[] for _ in xyz]
    if sequence.size == 0 or top < 1 or not xyz:
        return results
    sizes = np.array([len(x) for x in xyz])
    chunk = max(1, MAX_MOVES // (max(int(sizes.max()), 1) * sequence.size))
    for lo in range(0, len(xyz), chunk):
        batch = slice(lo, lo + chunk)
        n_nodes = int(sizes[batch].max())
        if n_nodes == 0:
            continue
        results[batch] = _align_batch(
            _pad(xyz[batch], n_nodes, 0.0), _pad(scores[batch], n_nodes, 0.0),
            _pad(next_step[batch], n_nodes, np.inf), sizes[batch], sequence, top,
        )
    return results


def _pad(arrays: list[np.ndarray], n_nodes: int, fill: float) -> np.ndarray:
    """(B, n_nodes, …) stack of per-window (n_b, …) arrays, rows beyond n_b set to fill."""
    out = np.full((len(arrays), n_nodes, *arrays[0].shape[1:]), fill)
    for b, a in enumerate(arrays):
        out[b, : len(a)] = a
    return out


def _align_batch(
    xyz: np.ndarray, scores: np.ndarray, next_step: np.ndarray, sizes: np.ndarray, sequence: np.ndarray, top: int
) -> list[list[Alignment]]:
    """The programme over a padded batch: xyz (B, N, 3) Å, scores (B, N, 4), next_step (B, N) Å, sizes (B,) node
    counts, sequence (L,). Row state is kept residue-major, (L, B), so that a residue column is contiguous."""
    n_windows, n_nodes = next_step.shape
    length = sequence.size
    windows = np.arange(n_windows)
    residues = np.arange(length)
    cap = (GAP_ALLOWANCE * sizes).astype(int)
    pair = np.linalg.norm(xyz[:, :, None] - xyz[:, None, :], axis=-1)  # (B, N, N) node distances, Å
    moves = np.zeros((n_windows, n_nodes, length), np.int8)
    end = np.full((length, n_windows), -np.inf)  # candidate scores of each window's last row
    for i in range(n_nodes):
        gain = MATCH_WEIGHT * scores[:, i].T[sequence]  # (L, B)
        if i == 0:
            value = gain
            last = np.zeros((length, n_windows), int)
            last_residue = np.repeat(residues[:, None], n_windows, axis=1)
            gaps = np.zeros((length, n_windows), int)
            move = np.full((length, n_windows), _MATCH, np.int8)
        else:
            dist = pair[windows, last, i]  # (L, B): from each cell's last matched node to node i
            skip = value - skip_penalty(dist, next_step[:, i])
            match = np.full_like(value, -np.inf)
            spanned = residues[1:, None] - last_residue[:-1]  # residues from the last match to j: skipped + 1
            match[1:] = value[:-1] + gain[1:] - step_penalty(dist[:-1] / spanned)
            take_skip = skip > match
            value = np.where(take_skip, skip, match)
            last = np.where(take_skip, last, i)
            last_residue = np.where(take_skip, last_residue, residues[:, None])
            gaps[1:] = np.where(take_skip[1:], gaps[1:], gaps[:-1])
            move = np.where(take_skip, _SKIP_NODE, _MATCH).astype(np.int8)
        _skip_residues(value, last, last_residue, gaps, move, cap)
        moves[:, i] = move.T
        ending = sizes - 1 == i
        end[:, ending] = np.where(move == _SKIP_RESIDUE, -np.inf, value)[:, ending]
    order = np.argsort(-end.T, axis=1, kind="stable")[:, :top]  # (B, top) end residues, best first
    best = np.take_along_axis(end.T, order, axis=1)
    window, rank = np.nonzero(best > MIN_CANDIDATE_SCORE)
    residue_of_node = _trace(moves, window, sizes[window] - 1, order[window, rank])
    results: list[list[Alignment]] = [[] for _ in range(n_windows)]
    for b, score, matched in zip(window, best[window, rank], residue_of_node):
        nodes = np.flatnonzero(matched >= 0)
        results[b].append(Alignment(float(score), nodes, matched[nodes]))
    return results


def _skip_residues(value: np.ndarray, last: np.ndarray, last_residue: np.ndarray, gaps: np.ndarray, move: np.ndarray,
                   cap: np.ndarray) -> None:
    """Move 3 along one row, in place: value, last, last_residue, gaps, move are (L, B), cap (B,)."""
    for j in range(1, len(value)):
        c = gaps[j - 1]
        skipped = value[j - 1] - RESIDUE_SKIP_COST * np.where(c > cap, c + 1, 1)
        better = skipped > value[j]
        if better.any():
            np.copyto(value[j], skipped, where=better)
            np.copyto(last[j], last[j - 1], where=better)
            np.copyto(last_residue[j], last_residue[j - 1], where=better)
            np.copyto(gaps[j], c + 1, where=better)
            move[j][better] = _SKIP_RESIDUE


def _trace(moves: np.ndarray, window: np.ndarray, node: np.ndarray, residue: np.ndarray) -> np.ndarray:
    """Traceback of C end cells (window, node, residue: (C,) each) through moves (B, N, L): (C, N) residue matched
    to each node, −1 where the node is skipped or beyond the window."""
    node, residue = node.copy(), residue.copy()
    matched = np.full((len(window), moves.shape[1]), -1)
    active = np.flatnonzero(node >= 0)
    while active.size:
        step = moves[window[active], node[active], residue[active]]
        hit = active[step == _MATCH]
        matched[hit, node[hit]] = residue[hit]
        node[active] -= step != _SKIP_RESIDUE
        residue[active] -= step != _SKIP_NODE
        active = active[node[active] >= 0]
    return matched
