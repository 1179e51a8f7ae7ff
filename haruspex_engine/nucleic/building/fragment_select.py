"""Choosing a consistent set of sequence fragments with CP-SAT (OR-Tools).

A fragment is one candidate alignment of a window of a traced path to a stretch of a chain sequence (from
``fragment_dp``). Many overlap or contradict each other; :func:`select_fragments` picks the subset with the
largest total score under two rules, the CryoREAD collision rules re-expressed so that the model grows linearly
with the number of fragments (the original fills a dense N² collision table, > 200 GB beyond ~3,000 nt):

1. **One reading per node.** Every path node that fragments match gets at most one (sequence group, direction,
   residue) label: fragments of overlapping windows of a path can be chosen together only if they put every node
   they both match on the same residue of the same chain in the same direction. (The original asks for ≥ 80 %
   identity of the two readings over the overlap; here the common nodes must agree exactly.)
2. **Residues are used once per copy.** A residue of a sequence group is claimed by at most ``capacity`` paths,
   where the capacity is the number of chains in the FASTA with that exact sequence (identical copies form one
   group, so that an assembly of 40 copies of a chain is aligned once, not 40 times). A fragment claims the
   residues it matches except those within 10 % of its residue span from either end, so two fragments may share
   up to about a fifth of their span, as the original's rule (collide at an overlap ≥ 0.2 × the longer interval)
   allows. Directions do not matter here: residues are counted in the chain's own 5′→3′ numbering.

Both rules become "at most one" constraints over auxiliary literals (one per distinct label or claim), created only
where two readings actually compete. The objective is Σ round(100 × score) over the chosen fragments, plus
round(100 × bonus) for every ``links`` entry with a chosen fragment on both sides (a reward for readings that
continue each other; an addition to the original).

Reproducibility: one search worker, a fixed seed, and a work budget in CP-SAT's deterministic time (a count of
solver operations, scaled to be about a second of one core; the same on every machine and under any load) that
grows with the number of candidates: WORK_MIN + WORK_PER_CANDIDATE × candidates, times ``work_scale``. The search
stops when it proves the best set (``stopped_by`` "optimal") or when the budget is spent ("work limit": the best
set found, the same everywhere). A wall-clock limit is only a safety net ("time limit": then the result depends on
the machine); the original stops on wall time alone. The search starts from a greedy choice (``greedy_selection``),
and a search stopped early returns a set at least as good as that (on a noisy 316-nt case CP-SAT on its own had
found less than half the greedy total after 30 units).
"""
from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from ortools.sat.python import cp_model

#: Fraction of a fragment's residue span, at each end, that it does not claim (rule 2).
CLAIM_TRIM = 0.1
#: Work budget, CP-SAT deterministic time units (≈ s of one core): this much plus so much per candidate fragment.
#: A fifth of the first budget (5 + 0.005 per candidate): on the corpus's larger entries (1GID, 6POM, clean and
#: realistic, seed 0) the same models or better, in 55-80 % of the time; on the 16S rRNA the search spent 265 s
#: of a 329-s build without changing a residue (sequence recall 0.844 with the sequence and without). Since the
#: register is read by posterior (``sequence_register``) the selection only adds the skipped nodes it matches and
#: counts its labels: over 60 corpus builds it added none. A fifth again (0.2 + 0.0002 per candidate; 2026-12-07):
#: every model of the 60 builds and of the 16S rRNA identical, the rRNA build 128 → 78 s (same session, quiet machine;
#: BENCHMARKS.md 2026-12-07).
WORK_MIN = 0.2
WORK_PER_CANDIDATE = 0.0002
#: Safety net on the search, wall-clock seconds (the work budget is what normally stops it).
SAFETY_TIME_LIMIT_S = 600.0
#: From this many candidates CP-SAT's linear relaxation is the lighter one (linearization level 1, else 2). Level 2
#: proves the optimum of a 78-nt case in 1.5 s instead of 40 s, but its relaxation grows with the model: on the 16S
#: rRNA (14,840 candidates, stopped by the work limit either way) level 1 chose the same fragments with a peak of
#: 1.33 GB instead of 1.89 GB, in 16.8 s instead of 24.8 s. The corpus's largest entry has 3,000 candidates.
LIGHT_RELAXATION_CANDIDATES = 10_000


@dataclass(frozen=True)
class Fragment:
    """One candidate: path nodes ``nodes`` (int (K,), strictly increasing indices into the path) read as residues
    ``residues`` (int (K,), 0-based indices in the 5′→3′ order of the group's sequence; decreasing when
    ``reverse``, i.e. when the path runs 3′→5′ along the chain). window: the (start, stop) node range of the
    window it was aligned in; group: index of the sequence group; score: the alignment score."""

    path: int
    window: tuple[int, int]
    group: int
    reverse: bool
    nodes: np.ndarray
    residues: np.ndarray
    score: float

    def claims(self) -> np.ndarray:
        """Residues this fragment claims under rule 2 (see the module docstring)."""
        low, high = int(self.residues.min()), int(self.residues.max())
        trim = math.floor(CLAIM_TRIM * (high - low + 1))
        return self.residues[(self.residues >= low + trim) & (self.residues <= high - trim)]


@dataclass(frozen=True)
class Selection:
    """chosen: indices into the fragments, increasing; status: the CP-SAT status name (OPTIMAL, FEASIBLE, …);
    stopped_by: "optimal" (proved best), "work limit" or "time limit" (the best set found when that ran out; none
    when the status is UNKNOWN); objective: the chosen total of round(100 × score); bound: the best
    total the search could not rule out (= objective when optimal); work, work_limit: deterministic time used and
    allowed; seconds: solver wall time."""

    chosen: tuple[int, ...]
    status: str
    stopped_by: str
    objective: int
    bound: int
    work: float
    work_limit: float
    seconds: float

    @property
    def optimal(self) -> bool:
        return self.stopped_by == "optimal"


def work_budget(candidates: int, scale: float = 1.0) -> float:
    """CP-SAT deterministic-time budget for a choice among ``candidates`` fragments (see the module docstring)."""
    return scale * (WORK_MIN + WORK_PER_CANDIDATE * candidates)


def select_fragments(
    fragments: list[Fragment],
    capacities: list[int],
    work_scale: float = 1.0,
    time_limit_s: float = SAFETY_TIME_LIMIT_S,
    seed: int = 0,
    links: list[tuple[list[int], list[int], float]] = (),
) -> Selection:
    """The best consistent subset of ``fragments``; capacities[g] = number of chains with group g's sequence.
    work_scale multiplies the work budget (``work_budget``); time_limit_s is the wall-clock safety net.
    links: (first, second, bonus) adds ``bonus`` (score units) to the objective when at least one fragment of the
    list ``first`` and one of ``second`` are chosen."""
    work_limit = work_budget(len(fragments), work_scale)
    if not fragments:
        return Selection((), "OPTIMAL", "optimal", 0, 0, 0.0, work_limit, 0.0)
    model = cp_model.CpModel()
    chosen = [model.NewBoolVar(f"f{i}") for i in range(len(fragments))]
    labels: dict[tuple[int, int], dict[tuple[int, bool, int], list[int]]] = defaultdict(lambda: defaultdict(list))
    claims: dict[tuple[int, int], dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for index, fragment in enumerate(fragments):
        for node, residue in zip(fragment.nodes.tolist(), fragment.residues.tolist()):
            labels[fragment.path, node][fragment.group, fragment.reverse, residue].append(index)
        for residue in fragment.claims().tolist():
            claims[fragment.group, residue][fragment.path].append(index)
    for readings in labels.values():
        if len(readings) > 1:
            model.AddAtMostOne(_any_of(model, chosen, members) for members in readings.values())
    for (group, _), paths in claims.items():
        if len(paths) > capacities[group]:
            model.Add(sum(_any_of(model, chosen, members) for members in paths.values()) <= capacities[group])
    objective = [int(round(100 * f.score)) * x for f, x in zip(fragments, chosen)]
    start = set(greedy_selection(fragments, capacities))
    start_total = (sum(int(round(100 * fragments[i].score)) for i in start)
                   + sum(int(round(100 * bonus)) for first, second, bonus in links
                         if start & set(first) and start & set(second)))
    for index, x in enumerate(chosen):
        model.AddHint(x, index in start)
    for first, second, bonus in links:
        both = model.NewBoolVar("")
        model.AddBoolOr([chosen[i] for i in first]).OnlyEnforceIf(both)
        model.AddBoolOr([chosen[j] for j in second]).OnlyEnforceIf(both)
        model.AddHint(both, bool(start & set(first)) and bool(start & set(second)))
        objective.append(int(round(100 * bonus)) * both)
    model.Maximize(sum(objective))
    solver = cp_model.CpSolver()
    solver.parameters.max_deterministic_time = work_limit
    solver.parameters.max_time_in_seconds = float(time_limit_s)
    solver.parameters.num_workers = 1
    solver.parameters.linearization_level = 1 if len(fragments) >= LIGHT_RELAXATION_CANDIDATES else 2
    solver.parameters.cp_model_probing_level = 0  # no probing: the same optima with 20-90 % less work (78-316 nt)
    solver.parameters.random_seed = seed
    t0 = time.perf_counter()
    status = solver.Solve(model)
    seconds = time.perf_counter() - t0
    found = status in (cp_model.OPTIMAL, cp_model.FEASIBLE)
    if status == cp_model.OPTIMAL:
        stopped_by = "optimal"
    else:  # FEASIBLE, or UNKNOWN when no set was found in time
        stopped_by = "work limit" if solver.deterministic_time >= work_limit else "time limit"
    picked = tuple(i for i, x in enumerate(chosen) if solver.Value(x)) if found else ()
    objective_value = int(round(solver.ObjectiveValue())) if found else 0
    if objective_value < start_total:  # stopped before reaching the greedy set: that stands
        picked, objective_value = tuple(sorted(start)), start_total
    return Selection(picked, solver.StatusName(status), stopped_by, objective_value,
                     int(math.floor(solver.BestObjectiveBound() + 1e-6)), float(solver.deterministic_time),
                     work_limit, seconds)


def greedy_selection(fragments: list[Fragment], capacities: list[int]) -> list[int]:
    """A consistent subset taken greedily, best score first (ties: lower index): each fragment joins when it agrees
    with the readings chosen so far on every node and keeps every residue it claims within its group's capacity.
    The search starts from it."""
    readings: dict[tuple[int, int], tuple[int, bool, int]] = {}
    holders: dict[tuple[int, int], set[int]] = defaultdict(set)
    picked = []
    for index in sorted(range(len(fragments)), key=lambda i: (-fragments[i].score, i)):
        fragment = fragments[index]
        pairs = [((fragment.path, n), (fragment.group, fragment.reverse, r))
                 for n, r in zip(fragment.nodes.tolist(), fragment.residues.tolist())]
        claimed = [(fragment.group, r) for r in fragment.claims().tolist()]
        if all(readings.get(key, label) == label for key, label in pairs) and all(
                len(holders[c] | {fragment.path}) <= capacities[fragment.group] for c in claimed):
            readings.update(pairs)
            for c in claimed:
                holders[c].add(fragment.path)
            picked.append(index)
    return sorted(picked)


def _any_of(model: cp_model.CpModel, chosen: list, members: list[int]):
    """A literal true whenever any fragment in ``members`` is chosen (the fragment's own one when alone)."""
    if len(members) == 1:
        return chosen[members[0]]
    literal = model.NewBoolVar("")
    for member in members:
        model.AddImplication(chosen[member], literal)
    return literal
