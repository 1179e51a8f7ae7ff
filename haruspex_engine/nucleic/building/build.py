"""build_nucleic_model: detection maps (and optionally the chain sequences) in, a full-atom DNA/RNA model out.

The steps, each in its own module: node clustering (nodes) → sugar graph (graph) → backbone tracing (trace) →
phosphate and base attachment per path (attach) → paths cut where they hop across a base pair (strand_hops) →
residue choice without sequence (no_sequence) and chain direction by full-atom fit → with sequences: fragment
alignment in that direction and selection (sequence_assign) and chains in sequence register (sequence_model) → full
atoms (atoms). The direction comes from geometry, not from the sequence: with noisy base calls a short path aligns
about as well against the reversed chain, and a chain built the wrong way round misplaces every sugar. Per-residue
confidence (B-factor) is the residue's score for its base divided by the maximum of 3.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import gemmi
import numpy as np

from haruspex_engine.maps import Vec3
from haruspex_engine.nucleic.building import nucleotides
from haruspex_engine.nucleic.building.atoms import ChainResidues, build_model, residue_coordinates
from haruspex_engine.nucleic.building.attach import PathAttachment, attach_path
from haruspex_engine.nucleic.building.fragment_select import DEFAULT_TIME_LIMIT_S
from haruspex_engine.nucleic.building.graph import build_sugar_graph
from haruspex_engine.nucleic.building.no_sequence import choose_residues
from haruspex_engine.nucleic.building.nodes import class_weights, nodes_from_weights
from haruspex_engine.nucleic.building.sequence_assign import (
    PathInput,
    SequenceAssignment,
    assign_sequences,
    group_sequences,
)
from haruspex_engine.nucleic.building.sequence_model import MIN_CHAIN_RESIDUES, chain_names, path_chains, path_residues
from haruspex_engine.nucleic.building.sequences import FastaRecords
from haruspex_engine.nucleic.building.strand_hops import base_pair_hops, split_at
from haruspex_engine.nucleic.building.trace import TraceResult, trace_backbone


@dataclass
class BuildResult:
    """structure: the model (None when nothing was found). unsequenced: with sequences, the model built without
    them (None otherwise). trace: what the routing search did. assignment: what sequence assignment did (None
    without sequences). node_counts: nodes per class. timings_s: seconds per step."""

    structure: gemmi.Structure | None
    unsequenced: gemmi.Structure | None
    trace: TraceResult | None
    assignment: SequenceAssignment | None
    node_counts: dict[str, int]
    timings_s: dict[str, float] = field(default_factory=dict)


def build_nucleic_model(
    stage2: np.ndarray,
    density: np.ndarray,
    origin: Vec3,
    *,
    sequences: FastaRecords | None = None,
    dna: bool = False,
    solution_limit: int = 1000,
    time_limit_s: float = 120.0,
    assignment_time_limit_s: float = DEFAULT_TIME_LIMIT_S,
) -> BuildResult:
    """Model of the nucleic acids in stage-2 maps (8, Z, Y, X) and the working density (Z, Y, X) on a 1 Å grid whose
    voxel (0, 0, 0) is at ``origin`` (x, y, z) Å. sequences: the chains to assign (None: no sequence). dna: name
    residues DA/DC/DG/DT instead of A/C/G/U where no sequence decides."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    weights = class_weights(stage2, density)
    nodes = {name: nodes_from_weights(name, w, origin) for name, w in weights.items()}
    timings["nodes"] = time.perf_counter() - t0
    counts = {name: len(n) for name, n in nodes.items()}

    t0 = time.perf_counter()
    graph = build_sugar_graph(nodes["sugar"], stage2, weights["sugar"], origin)
    timings["graph"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    trace = trace_backbone(graph.xyz, graph.edges, graph.cost, solution_limit=solution_limit,
                           time_limit_s=time_limit_s)
    timings["trace"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    paths = []
    for sugar, attached in _strand_pieces(trace.paths, graph.xyz, nodes, stage2, origin):
        if not np.isnan(attached.base_xyz).any():
            choice = choose_residues(sugar, attached.scores)
            chain, reverse = _oriented_chain(sugar, attached, np.sort(choice.nodes), dna)
            paths.append((sugar, attached, choice, chain, reverse))
    unsequenced = [chain for _, _, _, chain, _ in paths if chain is not None]
    unsequenced_model = build_model(unsequenced) if unsequenced else None
    timings["residues"] = time.perf_counter() - t0
    if sequences is None:
        return BuildResult(unsequenced_model, None, trace, None, counts, timings)

    t0 = time.perf_counter()
    groups = group_sequences(sequences)
    assignment = assign_sequences([PathInput(sugar, attached.scores, reverse)
                                   for sugar, attached, _, _, reverse in paths], groups, assignment_time_limit_s)
    chains = [chain for (sugar, attached, choice, _, reverse), fragments in zip(paths, assignment.fragments)
              for chain in path_chains(sugar, attached, choice, reverse, fragments, groups, dna)]
    structure = (build_model([c.residues for c in chains], chain_names=chain_names(chains, groups))
                 if chains else None)
    timings["sequence"] = time.perf_counter() - t0
    return BuildResult(structure, unsequenced_model, trace, assignment, counts, timings)


def _strand_pieces(paths: list[np.ndarray], sugar_xyz: np.ndarray, nodes: dict, stage2: np.ndarray,
                   origin: Vec3) -> list[tuple[np.ndarray, PathAttachment]]:
    """The traced paths cut where they hop across a base pair (``strand_hops``), each piece with its own
    attachment: (sugar positions (L, 3) Å, attachment), in path order."""
    pieces = []
    for path in paths:
        sugar = sugar_xyz[path]
        attached = attach_path(sugar, nodes["phosphate"].xyz, nodes, stage2, origin)
        hops = base_pair_hops(sugar, attached)
        if not len(hops):
            pieces.append((sugar, attached))
            continue
        for start, stop in split_at(len(sugar), hops):
            piece = sugar[start:stop]
            pieces.append((piece, attach_path(piece, nodes["phosphate"].xyz, nodes, stage2, origin)))
    return pieces


def _oriented_chain(sugar: np.ndarray, attached: PathAttachment, kept: np.ndarray,
                    dna: bool) -> tuple[ChainResidues | None, bool]:
    """The kept residues of a path as a chain, in the direction whose full-atom fit puts C4′ closest to the sugar
    nodes (the residue-choice scores barely depend on direction; nucleotide geometry does), and whether that
    direction runs against the path order. With too few kept residues to fit, the path order."""
    if len(kept) < MIN_CHAIN_RESIDUES:
        return None, False
    candidates = []
    for reverse, order in ((False, kept), (True, kept[::-1])):
        residues = path_residues(sugar, attached, order, reverse, np.argmax(attached.scores[order], axis=1), dna)
        c4 = np.array([xyz[nucleotides.atom_order(name).index("C4'")]
                       for xyz, name in zip(residue_coordinates(residues), residues.residue_names)])
        candidates.append((float(np.linalg.norm(c4 - residues.sugar, axis=1).mean()), residues))
    reverse = candidates[1][0] < candidates[0][0]
    return candidates[int(reverse)][1], bool(reverse)
