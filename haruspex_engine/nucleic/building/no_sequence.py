"""Residues of a traced path without a sequence: which sugar nodes become nucleotides, in which direction.

CryoREAD's "geo" assignment, re-implemented from its description. Along a path of sugar nodes, a 1-D dynamic
programme keeps a subset of nodes as residues:
- keeping node i earns max(score_i) (its best base-type score, 0..3);
- going from kept node j to the next kept node i costs 10·(d − 7)² when their distance d (Å) lies outside
  (4, 10) Å, nothing inside;
- skipping a node k after kept node j is free when d(j, k) + d(k, k+1) < 10 Å or d(j, k) ≤ 4 Å (k lies on the
  way, or on top of j), and costs 10·(d(j, k) − 7)² otherwise.
Where the path gives, for each step, whether its two sugars share a phosphate node (``strand_hops.shared_phosphate``:
consecutive nucleotides of a strand do), a shared-phosphate step between consecutive path nodes BRIDGED_STEP_A
(3–10 Å) apart costs nothing, and its second node is never skipped as lying on top of the first. This departs
from the original: node errors bring the sugar nodes of consecutive nucleotides under 4 Å of each other, and the
4 Å rule dropped one of them. Pairs of sugar nodes 3–4 Å apart on realistic oracle maps (1EHZ 1GID 3SIU 1ASY 6POM
6v5b, seeds 0–1), both within 3 Å of a reference C4′: of 53 on two nucleotides, 40 share a phosphate; of 48 on one
nucleotide, 12 do. Corpus benchmark (30 builds per preset, with the sequence): backbone coverage clean 0.989 →
0.993, realistic 0.901 → 0.907 (precision 0.961 → 0.953), register recall 0.967 → 0.971 and 0.568 → 0.579; the
clean 16S rRNA 0.989 → 0.995 (BENCHMARKS.md, 2026-12-07).
A residue may also start a new chain after any earlier residue, at BREAK_COST (the nodes between are left out):
where no step is plausible the path breaks into several chains instead of being cut down to its best single run
(the original keeps one run per path, so one bad step lost everything on one side of it: half of 4P5J's clean
map). The programme runs on the path and on its reverse; the better total decides the chain direction (the order
the residues are given in, 5′→3′). Each residue's base is the argmax of its scores (A, U/T, C, G).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from haruspex_engine.nucleic.classes import BASE_TYPES

STEP_RANGE_A = (4.0, 10.0)
#: Å: the range of a free step between consecutive path nodes that share a phosphate.
BRIDGED_STEP_A = (3.0, 10.0)
IDEAL_STEP_A = 7.0
STEP_WEIGHT = 10.0
#: How many nodes the programme may skip between two residues (a longer gap is never worth its cost).
MAX_SKIPPED = 6
#: Cost of starting another chain on the same path (one residue's largest reward): a break is taken only where
#: every step is implausible (a step outside (4, 10) Å costs 90 or more).
BREAK_COST = 3.0


@dataclass(frozen=True)
class ResidueChoice:
    """nodes: indices into the path's nodes of the residues, in chain (5′→3′) order; reversed: the chain runs
    against the path's order; bases: one of A, UT, C, G per residue; score: the programme's total; starts: (len(nodes),)
    bool, True where a chain starts (the first residue, then every residue that starts a new chain)."""

    nodes: np.ndarray
    reversed: bool
    bases: tuple[str, ...]
    score: float
    starts: np.ndarray

    def runs(self) -> list[np.ndarray]:
        """The residues (indices into the path's nodes, in chain order) of each chain, in chain order."""
        return np.split(self.nodes, np.flatnonzero(self.starts)[1:]) if len(self.nodes) else []


def choose_residues(xyz: np.ndarray, scores: np.ndarray, bridged: np.ndarray | None = None) -> ResidueChoice:
    """Residues of one path. xyz: (L, 3) sugar node positions in path order, Å; scores: (L, 4) base-type scores
    (A, UT, C, G) of those nodes; bridged: (L − 1,) bool, whether the sugars of each step k → k+1 share a
    phosphate (None: no step does)."""
    xyz = np.asarray(xyz, dtype=float)
    scores = np.asarray(scores, dtype=float)
    if len(xyz) != len(scores) or scores.shape[1:] != (len(BASE_TYPES),):
        raise ValueError(f"need (L, 3) positions and (L, 4) scores, got {xyz.shape} and {scores.shape}")
    if len(xyz) == 0:
        return ResidueChoice(np.empty(0, int), False, (), 0.0, np.empty(0, bool))
    bridged = np.zeros(len(xyz) - 1, bool) if bridged is None else np.asarray(bridged, dtype=bool)
    if bridged.shape != (len(xyz) - 1,):
        raise ValueError(f"need one bridged flag per step ({len(xyz) - 1}), got shape {bridged.shape}")
    forward = _best_residues(xyz, scores, bridged)
    backward = _best_residues(xyz[::-1], scores[::-1], bridged[::-1])
    reverse = backward[1] > forward[1]
    kept, total, starts = backward if reverse else forward
    nodes = (len(xyz) - 1 - kept) if reverse else kept
    bases = tuple(BASE_TYPES[int(i)] for i in np.argmax(scores[nodes], axis=1))
    return ResidueChoice(nodes, bool(reverse), bases, float(total), starts)


def step_penalty(d: np.ndarray | float) -> np.ndarray | float:
    """Cost of a step of d Å between two consecutive residues: 10·(d − 7)² outside (4, 10) Å, 0 inside."""
    low, high = STEP_RANGE_A
    outside = (d <= low) | (d >= high)
    return np.where(outside, STEP_WEIGHT * (d - IDEAL_STEP_A) ** 2, 0.0)


def _best_residues(xyz: np.ndarray, scores: np.ndarray,
                   bridged: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Kept node indices (increasing), total of the best assignment along xyz's order, and (kept,) bool: where a
    chain starts."""
    n = len(xyz)
    reward = scores.max(axis=1)
    next_step = np.append(np.linalg.norm(np.diff(xyz, axis=0), axis=1), np.inf)  # d(k, k+1); none after the last
    # a bridged step k → k+1 in BRIDGED_STEP_A is a plain step (no penalty; k+1 not on top of k)
    plain = np.append(bridged & (next_step[:-1] >= BRIDGED_STEP_A[0]) & (next_step[:-1] < BRIDGED_STEP_A[1]), False)
    best = np.full(n, -np.inf)
    came_from = np.full(n, -1)
    linked = np.zeros(n, bool)  # came_from[i] is the previous residue of the same chain (else: an earlier chain's)
    best_before = 0.0  # best total of residues ending before i (0: none)
    best_end = -1
    for i in range(n):
        best[i], came_from[i] = reward[i] + best_before - BREAK_COST * (best_end >= 0), best_end  # a new chain
        for j in range(max(0, i - MAX_SKIPPED - 1), i):
            skipped = np.arange(j + 1, i)
            d_jk = np.linalg.norm(xyz[skipped] - xyz[j], axis=1)
            on_top_allowed = (skipped != j + 1) | ~plain[j]  # node j+1, a bridged step on, is no duplicate of j
            skip_cost = float(np.sum(skip_penalty(d_jk, next_step[skipped], on_top_allowed)))
            step = 0.0 if i == j + 1 and plain[j] else float(step_penalty(np.linalg.norm(xyz[i] - xyz[j])))
            value = best[j] + reward[i] - step - skip_cost
            if value > best[i]:
                best[i], came_from[i], linked[i] = value, j, True
        if best[i] > best_before:
            best_before, best_end = best[i], i
    kept = [best_end]
    while came_from[kept[-1]] >= 0:
        kept.append(int(came_from[kept[-1]]))
    kept = np.asarray(kept[::-1], dtype=int)
    return kept, float(best_before), ~linked[kept]


def skip_penalty(d_prev_to_k: np.ndarray | float, d_k_to_next: np.ndarray | float,
                 on_top_allowed: np.ndarray | bool = True) -> np.ndarray | float:
    """Cost of skipping node k after the last kept node: d_prev_to_k is their distance, d_k_to_next the distance from
    k to the node after it on the path (np.inf when there is none), both Å. Free (0) when k lies on the way
    (d_prev_to_k + d_k_to_next < 10 Å) or, where ``on_top_allowed``, on top of the kept node (d_prev_to_k ≤ 4 Å);
    10·(d_prev_to_k − 7)² otherwise.
    """
    free = (d_prev_to_k + d_k_to_next < STEP_RANGE_A[1]) | (np.asarray(on_top_allowed)
                                                           & (d_prev_to_k <= STEP_RANGE_A[0]))
    return np.where(free, 0.0, STEP_WEIGHT * (d_prev_to_k - IDEAL_STEP_A) ** 2)
