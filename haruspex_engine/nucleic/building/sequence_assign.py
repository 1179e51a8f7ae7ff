"""Sequence assignment: which residue of which chain each sugar node of the traced paths is.

CryoREAD's fragment approach, re-implemented from a description of its behaviour:

1. **Candidates.** Each path is cut into windows (``fragment_dp.window_bounds``: 20 nodes, every 2 nodes); each
   window is aligned by ``fragment_dp.align_windows`` against every sequence group, in the path's direction
   (decided beforehand from geometry; the original tries both). The 20 best alignments of a window, pooled over
   groups, become its candidate fragments.
2. **Selection.** ``fragment_select.select_fragments`` picks a consistent, best-scoring set (CP-SAT). An addition
   to the original: readings of two paths whose end nodes lie close together (a break in the trace) score two
   perfectly matched bases more when they continue each other in sequence (``continuity_links``): a short path,
   which aligns about equally well in many places, then takes the register its neighbours imply.
3. **Merging.** Chosen fragments of a path whose windows overlap form a cluster, merged into one reading (they
   agree on every node they share). The original re-aligns such a cluster as one stretch against its chain; that
   forces one monotonic register over the whole stretch, which fails where a traced path runs from one chain end
   onto the other (measured: a 78-nt path wrapping from residue 1 to 78 lost half its register), so the chosen
   readings are kept as they are.
4. **Gap filling.** Stretches of more than 3 path nodes that no fragment spans are aligned on their own (pieces of
   at most 20 nodes) against every group; the best positive alignment is kept when each residue it
   claims is still used by fewer paths than the group has copies.

Chains with identical sequences form one group (aligned once; a residue may be used once per copy).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from haruspex_engine.nucleic.building.attach import MAX_BASE_SCORE
from haruspex_engine.nucleic.building.fragment_dp import MATCH_WEIGHT, WINDOW_SIZE, align_windows, window_bounds
from haruspex_engine.nucleic.building.fragment_select import (
    SAFETY_TIME_LIMIT_S,
    Fragment,
    Selection,
    select_fragments,
)
from haruspex_engine.nucleic.building.sequences import FastaRecords, encode_sequence

#: Candidates kept per window, pooled over sequence groups and directions.
CANDIDATES_PER_WINDOW = 20
#: Uncovered stretches longer than this many nodes are filled.
MIN_GAP_NODES = 4
#: Å: path ends at most this far apart may continue each other in sequence (a break in the trace).
CONTINUITY_REACH_A = 14.0
#: Alignment score added once per pair of path ends whose chosen readings continue each other across a break: two
#: perfectly matched bases (one gave recall 0.795 instead of 0.821 on the hardest realistic seed; four, as two).
CONTINUITY_BONUS = 2 * MATCH_WEIGHT * MAX_BASE_SCORE


@dataclass(frozen=True)
class SequenceGroup:
    """Chains sharing one sequence: the sequence (upper case), its codes (int8, A=0 U/T=1 C=2 G=3), the chain ids
    from the FASTA (one per copy) and whether it is DNA."""

    sequence: str
    codes: np.ndarray
    chain_ids: tuple[str, ...]
    dna: bool


@dataclass(frozen=True)
class PathInput:
    """One traced path: xyz (L, 3) sugar node positions in path order, Å; scores (L, 4) base-type scores; reverse:
    the chain runs against the path order (only that reading is aligned)."""

    xyz: np.ndarray
    scores: np.ndarray
    reverse: bool

    @cached_property
    def next_step(self) -> np.ndarray:
        """(L,) distance from each node to the next one on the path, Å; inf after the last."""
        return np.append(np.linalg.norm(np.diff(self.xyz, axis=0), axis=1), np.inf)


@dataclass(frozen=True)
class PlacementCounts:
    """What placing the residues in register did (``sequence_register``, ``sequence_model``): residues placed and
    unplaced; residues added where the alignment found one the sequence-free choice skipped; fragment labels the
    placement confirmed and overruled; residues placed only with the evidence of paths across trace breaks;
    residues unplaced because their number was taken; the estimated agreement of the map's base calls with the
    right letters."""

    placed: int
    unplaced: int
    added: int
    confirmed_labels: int
    overruled_labels: int
    linked: int
    collisions: int
    call_accuracy: float


@dataclass(frozen=True)
class SequenceAssignment:
    """fragments: the final fragments (after merging and gap filling), per path in node order; selection: what
    CP-SAT did; candidates: how many candidate fragments it chose from; placement: what placing the residues did
    (None until they are placed)."""

    fragments: list[list[Fragment]]
    selection: Selection
    candidates: int
    placement: PlacementCounts | None = None


def group_sequences(records: FastaRecords) -> list[SequenceGroup]:
    """The FASTA chains grouped by identical sequence, in order of first appearance."""
    chains: dict[tuple[str, str], list[str]] = {}
    for record in records:
        chains.setdefault((record.sequence, record.kind), []).append(record.chain_id)
    return [SequenceGroup(sequence, encode_sequence(sequence), tuple(ids), kind == "DNA")
            for (sequence, kind), ids in chains.items()]


def assign_sequences(paths: list[PathInput], groups: list[SequenceGroup], work_scale: float = 1.0,
                     time_limit_s: float = SAFETY_TIME_LIMIT_S) -> SequenceAssignment:
    """Fragments assigning path nodes to residues of ``groups`` (see the module docstring); work_scale and
    time_limit_s: the CP-SAT work budget and wall-clock safety net (``fragment_select.select_fragments``)."""
    capacities = [len(g.chain_ids) for g in groups]
    candidates = _candidates(paths, groups)
    selection = select_fragments(candidates, capacities, work_scale, time_limit_s,
                                 links=continuity_links(paths, candidates))
    per_path: list[list[Fragment]] = [[] for _ in paths]
    for index in selection.chosen:
        per_path[candidates[index].path].append(candidates[index])
    usage: Counter[tuple[int, int]] = Counter()
    final = []
    for chosen in per_path:
        fragments = [_merge(cluster) for cluster in _clusters(chosen)]
        for fragment in fragments:
            usage.update((fragment.group, int(r)) for r in set(fragment.claims().tolist()))
        final.append(fragments)
    for index, path in enumerate(paths):
        final[index] = sorted(final[index] + _fill_gaps(index, path, final[index], groups, capacities, usage),
                              key=lambda f: int(f.nodes[0]))
    return SequenceAssignment(final, selection, len(candidates))


def continuity_links(paths: list[PathInput],
                     candidates: list[Fragment]) -> list[tuple[list[int], list[int], float]]:
    """Links (first, second, CONTINUITY_BONUS) for readings that continue each other across a break in the trace:
    ``first`` holds the candidates reading the 3′-end node of a path (in chain direction) as residue r, ``second``
    those reading the 5′-end node of another path as residue r + 1 … r + 1 + round(d / 6 Å) of the same group,
    where d ≤ CONTINUITY_REACH_A is the distance between the two end nodes (room for the residues the break lost).
    One link per (pair of ends, r, following residue): the bonus is counted once per continuity."""
    ends = {}  # path -> (3′-end node, 5′-end node)
    for index, path in enumerate(paths):
        last = len(path.xyz) - 1
        ends[index] = (0, last) if path.reverse else (last, 0)
    at_three: dict[int, dict[tuple[int, int], list[int]]] = defaultdict(lambda: defaultdict(list))
    at_five: dict[int, dict[tuple[int, int], list[int]]] = defaultdict(lambda: defaultdict(list))
    for index, fragment in enumerate(candidates):
        three, five = ends[fragment.path]
        reading = dict(zip(fragment.nodes.tolist(), fragment.residues.tolist()))
        if three in reading:
            at_three[fragment.path][fragment.group, reading[three]].append(index)
        if five in reading:
            at_five[fragment.path][fragment.group, reading[five]].append(index)
    links = []
    for a, ending in at_three.items():
        for b, starting in at_five.items():
            distance = float(np.linalg.norm(paths[a].xyz[ends[a][0]] - paths[b].xyz[ends[b][1]]))
            if a == b or distance > CONTINUITY_REACH_A:
                continue
            for (group, residue), first in ending.items():
                for step in range(1, 2 + round(distance / 6.0)):
                    second = starting.get((group, residue + step))
                    if second:
                        links.append((first, second, CONTINUITY_BONUS))
    return links


def _candidates(paths: list[PathInput], groups: list[SequenceGroup]) -> list[Fragment]:
    """The best CANDIDATES_PER_WINDOW fragments of every window of every path."""
    pooled: list[list[Fragment]] = []
    for reverse in (False, True):
        windows = [(p, start, stop) for p, path in enumerate(paths) if path.reverse == reverse
                   for start, stop in window_bounds(len(path.xyz))]
        pools: list[list[Fragment]] = [[] for _ in windows]
        for group_index, group in enumerate(groups):
            found = _align(paths, windows, group, reverse) if windows else []
            for pool, (p, start, stop), alignments in zip(pools, windows, found):
                pool.extend(_fragment(p, (start, stop), group_index, group, reverse, a) for a in alignments)
        pooled.extend(pools)
    fragments = []
    for pool in pooled:
        fragments.extend(sorted(pool, key=lambda f: -f.score)[:CANDIDATES_PER_WINDOW])
    return fragments


def _align(paths: list[PathInput], windows: list[tuple[int, int, int]], group: SequenceGroup, reverse: bool,
           top: int = CANDIDATES_PER_WINDOW):
    """align_windows over node ranges (path, start, stop) against the group's codes, reversed when ``reverse``."""
    xyz = [paths[p].xyz[start:stop] for p, start, stop in windows]
    scores = [paths[p].scores[start:stop] for p, start, stop in windows]
    steps = [paths[p].next_step[start:stop] for p, start, stop in windows]
    return align_windows(xyz, scores, steps, group.codes[::-1] if reverse else group.codes, top)


def _fragment(path: int, window: tuple[int, int], group_index: int, group: SequenceGroup, reverse: bool,
              alignment) -> Fragment:
    """A window alignment as a Fragment: nodes made path indices, residues the group's 5′→3′ indices."""
    residues = alignment.residues
    if reverse:
        residues = len(group.codes) - 1 - residues
    return Fragment(path, window, group_index, reverse, alignment.nodes + window[0], residues,
                    float(alignment.score))


def _clusters(fragments: list[Fragment]) -> list[list[Fragment]]:
    """Fragments of one path grouped by overlapping windows, in node order."""
    clusters: list[list[Fragment]] = []
    for fragment in sorted(fragments, key=lambda f: f.window):
        if clusters and fragment.window[0] < max(f.window[1] for f in clusters[-1]):
            clusters[-1].append(fragment)
        else:
            clusters.append([fragment])
    return clusters


def _merge(cluster: list[Fragment]) -> Fragment:
    """One fragment for a cluster: the union of its readings (which agree on every node they share, the selection
    made sure of it), each node read by the best-scoring fragment that matches it."""
    best = max(cluster, key=lambda f: f.score)
    if len(cluster) == 1:
        return best
    reading: dict[int, int] = {}
    for fragment in sorted(cluster, key=lambda f: f.score):
        if fragment.group == best.group:  # one path is read in one direction only
            reading.update(zip(fragment.nodes.tolist(), fragment.residues.tolist()))
    nodes = np.array(sorted(reading))
    window = (min(f.window[0] for f in cluster), max(f.window[1] for f in cluster))
    return Fragment(best.path, window, best.group, best.reverse, nodes, np.array([reading[n] for n in nodes]),
                    best.score)


def _fill_gaps(index: int, path: PathInput, fragments: list[Fragment], groups: list[SequenceGroup],
               capacities: list[int], usage: Counter) -> list[Fragment]:
    """Fragments for the stretches of more than 3 nodes that no fragment spans (pieces of ≤ 20 nodes)."""
    covered = np.zeros(len(path.xyz), bool)
    for fragment in fragments:
        covered[fragment.nodes[0]:fragment.nodes[-1] + 1] = True
    pieces = []
    for start, stop in true_runs(~covered):
        if stop - start >= MIN_GAP_NODES:
            count = -(-(stop - start) // WINDOW_SIZE)
            bounds = np.linspace(start, stop, count + 1).round().astype(int)
            pieces.extend((0, a, b) for a, b in zip(bounds[:-1], bounds[1:]))
    if not pieces:
        return []
    options: list[list[Fragment]] = [[] for _ in pieces]
    for group_index, group in enumerate(groups):
        found = _align([path], pieces, group, path.reverse, top=1)
        for option, (_, a, b), alignments in zip(options, pieces, found):
            option.extend(_fragment(index, (a, b), group_index, group, path.reverse, x) for x in alignments)
    filled = []
    for option in options:
        for fragment in sorted(option, key=lambda f: -f.score):
            claims = [(fragment.group, int(r)) for r in set(fragment.claims().tolist())]
            if fragment.score > 0 and all(usage[c] < capacities[fragment.group] for c in claims):
                usage.update(claims)
                filled.append(fragment)
                break
    return filled


def true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of the runs of True in a 1-D boolean array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))
