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
continue each other; an addition to the original). One search
worker and a fixed seed make the result reproducible; the search stops at the time limit with the best set found.
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
DEFAULT_TIME_LIMIT_S = 60.0


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
    objective: the chosen total of round(100 × score); seconds: solver wall time."""

    chosen: tuple[int, ...]
    status: str
    objective: int
    seconds: float


def select_fragments(
    fragments: list[Fragment],
    capacities: list[int],
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    seed: int = 0,
    links: list[tuple[list[int], list[int], float]] = (),
) -> Selection:
    """The best consistent subset of ``fragments``; capacities[g] = number of chains with group g's sequence.
    links: (first, second, bonus) adds ``bonus`` (score units) to the objective when at least one fragment of the
    list ``first`` and one of ``second`` are chosen."""
    if not fragments:
        return Selection((), "OPTIMAL", 0, 0.0)
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
    for first, second, bonus in links:
        both = model.NewBoolVar("")
        model.AddBoolOr([chosen[i] for i in first]).OnlyEnforceIf(both)
        model.AddBoolOr([chosen[j] for j in second]).OnlyEnforceIf(both)
        objective.append(int(round(100 * bonus)) * both)
    model.Maximize(sum(objective))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(time_limit_s)
    solver.parameters.num_workers = 1
    solver.parameters.linearization_level = 2  # tighter relaxation: 1.5 s instead of 40 s on a 78-nt case
    solver.parameters.random_seed = seed
    t0 = time.perf_counter()
    status = solver.Solve(model)
    seconds = time.perf_counter() - t0
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return Selection((), solver.StatusName(status), 0, seconds)
    picked = tuple(i for i, x in enumerate(chosen) if solver.Value(x))
    return Selection(picked, solver.StatusName(status), int(round(solver.ObjectiveValue())), seconds)


def _any_of(model: cp_model.CpModel, chosen: list, members: list[int]):
    """A literal true whenever any fragment in ``members`` is chosen (the fragment's own one when alone)."""
    if len(members) == 1:
        return chosen[members[0]]
    literal = model.NewBoolVar("")
    for member in members:
        model.AddImplication(chosen[member], literal)
    return literal
