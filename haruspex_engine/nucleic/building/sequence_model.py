"""The model in sequence register: the sequence-free residues of the traced paths, placed in the FASTA chains.

1. **Assignment** (``sequence_assign``): candidate fragments per path and a consistent choice (CP-SAT).
2. **Residues.** Every residue the sequence-free model built on a path is kept. A node the chosen fragments
   matched that the sequence-free choice skipped is added when it lies at least MIN_STEP_A from the residues beside
   it on the path (nearer, it would duplicate one) and it ends up placed: the alignment found a residue there.
3. **Register per path** (``sequence_register``): each residue is placed (a sequence group and residue) where the
   posterior of its most probable sequence residue, given every path's calls and the trace breaks between paths,
   is at least 1/2, or left unplaced.
4. **Copies.** The placed residues of a path form segments (one group, numbers increasing along the chain); each
   segment goes to one copy of its group (one FASTA chain of that sequence), largest segments first: the copy where
   the fewest of its numbers are already used, then the one whose residues with the neighbouring numbers lie
   within reach of its ends (NEIGHBOUR_REACH_A per number apart), then the first. A residue whose number its copy
   already holds becomes unplaced: a number is used once per copy.
5. **Chains.** Each FASTA chain gathers every residue placed in it (from any number of paths), under its FASTA
   chain id, numbered by FASTA position (1-based, gaps where nothing was built), sorted by number. Each stretch of
   unplaced residues of a path is a chain of its own, numbered 1…n, with the first ids of A–Z, a–z, 0–9, AA, …
   that no FASTA chain uses.
6. **Letters and atoms.** A placed residue carries its chain's letter (and its FASTA record's kind, RNA or DNA),
   or at an N of the sequence the best base type of its node; an unplaced one the best base type of its node.
   Atoms are placed on each path as a whole, so a residue's geometry is the same whichever chain it ends up in.
   Confidence (B-factor) = the node's score for the residue's base / 3.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, replace
from functools import cached_property

import gemmi
import numpy as np

from haruspex_engine.nucleic.building.atoms import ChainResidues, assemble_model, chain_id
from haruspex_engine.nucleic.building.attach import MAX_BASE_SCORE, PathAttachment
from haruspex_engine.nucleic.building.fragment_select import SAFETY_TIME_LIMIT_S, Fragment
from haruspex_engine.nucleic.building.no_sequence import STEP_RANGE_A
from haruspex_engine.nucleic.building.sequence_assign import (
    PathInput,
    PlacementCounts,
    SequenceAssignment,
    SequenceGroup,
    assign_sequences,
    true_runs,
)
from haruspex_engine.nucleic.building.sequence_register import PathRegister, fragment_labels, place_paths
from haruspex_engine.nucleic.building.sequences import UNKNOWN_CODE
from haruspex_engine.nucleic.building.strand_hops import shared_phosphate
from haruspex_engine.nucleic.classes import BASE_TYPES

MIN_CHAIN_RESIDUES = 2
#: Å: an alignment-matched node nearer than this to a residue beside it is not added (no step is that short).
MIN_STEP_A = STEP_RANGE_A[0]
#: Å per residue number apart: a residue of a copy this near a segment's end (per number) is its neighbour.
NEIGHBOUR_REACH_A = 7.5


@dataclass(frozen=True)
class TracedPath:
    """One traced path: sugar (L, 3) node positions in path order, Å; attached: its phosphates and base-type
    scores; residues: the sequence-free chain built on it (5′→3′; None when it has fewer than 2 residues); reverse:
    the chain runs against the path order."""

    sugar: np.ndarray
    attached: PathAttachment
    residues: ChainResidues | None
    reverse: bool

    @cached_property
    def nodes(self) -> np.ndarray:
        """(R,) path node index of each residue of ``residues``, in chain order (empty without residues)."""
        if self.residues is None:
            return np.empty(0, int)
        index = {tuple(xyz): k for k, xyz in enumerate(self.sugar.tolist())}
        return np.array([index[tuple(xyz)] for xyz in self.residues.sugar.tolist()], dtype=int)


@dataclass(frozen=True)
class SequencedModel:
    """structure: the model in sequence register (None without residues); assignment: what sequence assignment
    and placement did."""

    structure: gemmi.Structure | None
    assignment: SequenceAssignment


def sequenced_model(paths: list[TracedPath], groups: list[SequenceGroup], dna: bool, work_scale: float = 1.0,
                    time_limit_s: float = SAFETY_TIME_LIMIT_S) -> SequencedModel:
    """The model of ``paths`` in the register of ``groups`` (see the module docstring). dna: DNA residue names for
    the residues of paths with no placed residue (as the sequence-free model names them; a path with placed
    residues follows its records' kind); work_scale, time_limit_s: the CP-SAT budget and safety net
    (``fragment_select``)."""
    assignment = assign_sequences([PathInput(p.sugar, p.attached.scores, p.reverse) for p in paths], groups,
                                  work_scale, time_limit_s)
    codes = [g.codes for g in groups]
    augmented = [_with_matched_nodes(p, f) for p, f in zip(paths, assignment.fragments)]
    nodes, added = [n for n, _ in augmented], [a for _, a in augmented]
    placement = place_paths([p.sugar[n] for p, n in zip(paths, nodes)],
                            [p.attached.scores[n] for p, n in zip(paths, nodes)],
                            [fragment_labels(n, f) for n, f in zip(nodes, assignment.fragments)], codes,
                            [len(g.chain_ids) for g in groups],
                            [_bridged_steps(p.attached, n) for p, n in zip(paths, nodes)])
    registers = placement.paths
    kept = [~a | (r.group >= 0) for a, r in zip(added, registers)]
    nodes = [n[k] for n, k in zip(nodes, kept)]
    registers = [replace(r, group=r.group[k], index=r.index[k]) for r, k in zip(registers, kept)]
    copies, collisions = _distribute(paths, nodes, registers, groups)
    fasta_ids = [chain for g in groups for chain in g.chain_ids]
    taken = set(fasta_ids)
    free_ids = (chain_id(k) for k in range(len(fasta_ids) + sum(len(p.nodes) for p in paths) + 1)
                if chain_id(k) not in taken)
    pieces = []
    for path, path_nodes, register, copy in zip(paths, nodes, registers, copies):
        if len(path_nodes) >= MIN_CHAIN_RESIDUES:
            pieces.append(_piece(path, path_nodes, register, copy, groups, dna, free_ids))
    placed = sum(int(np.count_nonzero(r.group >= 0)) for r, n in zip(registers, nodes) if len(n) >= MIN_CHAIN_RESIDUES)
    built = sum(len(n) for n in nodes if len(n) >= MIN_CHAIN_RESIDUES)
    counts = PlacementCounts(placed=placed, unplaced=built - placed, added=built - sum(len(p.nodes) for p in paths),
                             confirmed_labels=sum(r.confirmed for r in registers),
                             overruled_labels=sum(r.overruled for r in registers),
                             linked=sum(r.linked for r in registers), collisions=collisions,
                             call_accuracy=placement.call_accuracy)
    assignment = replace(assignment, placement=counts)
    if not pieces:
        return SequencedModel(None, assignment)
    used = dict.fromkeys(name for _, names, _ in pieces for name in names)
    order = [c for c in fasta_ids if c in used] + [c for c in used if c not in taken]
    return SequencedModel(assemble_model(pieces, order), assignment)


def path_residues(sugar: np.ndarray, attached: PathAttachment, nodes: np.ndarray, reverse: bool,
                  base_index: np.ndarray, dna: bool, numbers: np.ndarray | None = None) -> ChainResidues:
    """Residues at path ``nodes`` (indices in chain order) as a chain. reverse: the chain runs against the path
    order, so each residue's own (5′) phosphate is its node's next P rather than its previous one. base_index:
    (len(nodes),) index into BASE_TYPES of each residue's base; confidence = the node's score for that base / 3."""
    return ChainResidues(
        p=(attached.next_p if reverse else attached.prev_p)[nodes], sugar=sugar[nodes],
        base=attached.base_xyz[nodes], bases=tuple(BASE_TYPES[int(i)] for i in base_index), dna=dna,
        confidence=attached.scores[nodes, base_index] / MAX_BASE_SCORE, numbers=numbers,
    )


def _with_matched_nodes(path: TracedPath, fragments: list[Fragment]) -> tuple[np.ndarray, np.ndarray]:
    """The residue nodes of a path in chain order, the sequence-free ones and the fragment-matched nodes that lie at
    least MIN_STEP_A from the residues beside them (taken in path order, step 2), and which of them were added."""
    nodes = sorted(path.nodes.tolist())
    own = set(nodes)
    for node in sorted({n for f in fragments for n in f.nodes.tolist()} - own):
        at = bisect.bisect(nodes, node)
        beside = nodes[max(at - 1, 0):at + 1]
        if all(np.linalg.norm(path.sugar[node] - path.sugar[b]) >= MIN_STEP_A for b in beside):
            nodes.insert(at, node)
    order = np.array(nodes[::-1] if path.reverse else nodes, dtype=int)
    return order, np.array([n not in own for n in order.tolist()], dtype=bool)


def _bridged_steps(attached: PathAttachment, nodes: np.ndarray) -> np.ndarray:
    """(R − 1,) bool per step between consecutive residues at path ``nodes`` (chain order): whether every path step
    between their nodes shares a phosphate (``strand_hops.shared_phosphate``)."""
    shared = shared_phosphate(attached)
    low, high = np.minimum(nodes[:-1], nodes[1:]), np.maximum(nodes[:-1], nodes[1:])
    return np.array([bool(shared[a:b].all()) for a, b in zip(low.tolist(), high.tolist())], dtype=bool)


def _distribute(paths: list[TracedPath], nodes: list[np.ndarray], registers: list[PathRegister],
                groups: list[SequenceGroup]) -> tuple[list[np.ndarray], int]:
    """(R,) copy of each residue of each path (index into its group's chain ids; −1: unplaced) and how many residues
    lost their placement to a number their copy already held (step 4; those are unplaced in ``registers``); nodes:
    each path's residue nodes, chain order."""
    segments = []
    for p, register in enumerate(registers):
        current: list[int] = []
        for k in np.flatnonzero(register.group >= 0).tolist():
            if current and (register.group[k] != register.group[current[-1]]
                            or register.index[k] <= register.index[current[-1]]):
                segments.append((p, current))
                current = []
            current.append(k)
        if current:
            segments.append((p, current))
    segments.sort(key=lambda s: (-len(s[1]), s[0], s[1][0]))
    held: list[list[dict[int, np.ndarray]]] = [[{} for _ in g.chain_ids] for g in groups]
    copies = [np.full(len(r.group), -1) for r in registers]
    collisions = 0
    for p, segment in segments:
        register = registers[p]
        group = int(register.group[segment[0]])
        numbers = register.index[segment].tolist()
        xyz = paths[p].sugar[nodes[p][segment]]
        best = min(range(len(held[group])),
                   key=lambda c: (sum(n in held[group][c] for n in numbers), -_neighbours(held[group][c], numbers, xyz),
                                  c))
        for k, number, position in zip(segment, numbers, xyz):
            if number in held[group][best]:
                register.group[k] = register.index[k] = -1
                collisions += 1
            else:
                held[group][best][number] = position
                copies[p][k] = best
    return copies, collisions


def _neighbours(held: dict[int, np.ndarray], numbers: list[int], xyz: np.ndarray) -> int:
    """How many ends of a segment (numbers in order, sugar positions (K, 3) Å) have, in a copy holding ``held``
    (number → sugar position), the residue with the nearest number beyond that end within NEIGHBOUR_REACH_A per
    number apart."""
    found = 0
    for end, position, side in ((numbers[0], xyz[0], -1), (numbers[-1], xyz[-1], 1)):
        beyond = [n for n in held if (n - end) * side > 0]
        if beyond:
            nearest = min(beyond, key=lambda n: abs(n - end))
            found += float(np.linalg.norm(held[nearest] - position)) <= NEIGHBOUR_REACH_A * abs(nearest - end)
    return found


def _piece(path: TracedPath, nodes: np.ndarray, register: PathRegister, copy: np.ndarray,
           groups: list[SequenceGroup], dna: bool, free_ids) -> tuple[ChainResidues, list[str], np.ndarray]:
    """One path's residues (at ``nodes``, chain order) with their letters, chain names and numbers (steps 5 and 6)."""
    placed = register.group >= 0
    scores = path.attached.scores[nodes]
    base_index = np.argmax(scores, axis=1)
    names: list[str] = [""] * len(placed)
    numbers = np.zeros(len(placed), int)
    for k in np.flatnonzero(placed).tolist():
        group = groups[int(register.group[k])]
        if group.codes[register.index[k]] != UNKNOWN_CODE:  # an N keeps the map's base
            base_index[k] = group.codes[register.index[k]]
        names[k] = group.chain_ids[int(copy[k])]
        numbers[k] = register.index[k] + 1
    for start, stop in true_runs(~placed):
        name = next(free_ids)
        names[start:stop] = [name] * (stop - start)
        numbers[start:stop] = np.arange(1, stop - start + 1)
    if placed.any():
        kinds = [groups[int(g)].dna for g in register.group[placed]]
        dna = kinds.count(True) > len(kinds) / 2
    residues = path_residues(path.sugar, path.attached, nodes, path.reverse, base_index, dna)
    return residues, names, numbers
