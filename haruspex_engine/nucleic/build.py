"""build_without_sequence: detection maps in, a full-atom nucleic-acid model out (no sequence information).

The steps, each in its own module: node clustering (nodes) → sugar graph (graph) → backbone tracing (trace) →
phosphate and base attachment per path (attach) → residue choice and chain direction (no_sequence) → full atoms
(atoms). Per-residue confidence (B-factor) is the residue's best base-type score divided by its maximum of 3.
Sequence assignment (windowed DP + CP-SAT) is not part of this function yet.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import gemmi
import numpy as np

from haruspex_engine.maps import Vec3
from haruspex_engine.nucleic import nucleotides
from haruspex_engine.nucleic.atoms import ChainResidues, build_model, residue_coordinates
from haruspex_engine.nucleic.attach import PathAttachment, attach_path
from haruspex_engine.nucleic.classes import BASE_TYPES
from haruspex_engine.nucleic.graph import build_sugar_graph
from haruspex_engine.nucleic.no_sequence import choose_residues
from haruspex_engine.nucleic.nodes import class_weights, nodes_from_weights
from haruspex_engine.nucleic.trace import TraceResult, trace_backbone

MAX_BASE_SCORE = 3.0
MIN_CHAIN_RESIDUES = 2


@dataclass
class BuildResult:
    """structure: the model (one chain per traced path with ≥ 2 residues; None when nothing was found).
    trace: what the routing search did. node_counts: nodes per class. timings_s: seconds per step."""

    structure: gemmi.Structure | None
    trace: TraceResult | None
    node_counts: dict[str, int]
    timings_s: dict[str, float] = field(default_factory=dict)


def build_without_sequence(
    stage2: np.ndarray,
    density: np.ndarray,
    origin: Vec3,
    *,
    dna: bool = False,
    solution_limit: int = 1000,
    time_limit_s: float = 120.0,
) -> BuildResult:
    """Model of the nucleic acids in stage-2 maps (8, Z, Y, X) and the working density (Z, Y, X) on a 1 Å grid whose
    voxel (0, 0, 0) is at ``origin`` (x, y, z) Å. dna: name residues DA/DC/DG/DT instead of A/C/G/U."""
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
    chains = []
    for path in trace.paths:
        sugar = graph.xyz[path]
        attached = attach_path(sugar, nodes["phosphate"].xyz, nodes, stage2, origin)
        choice = choose_residues(sugar, attached.scores)
        if len(choice.nodes) < MIN_CHAIN_RESIDUES or np.isnan(attached.base_xyz).any():
            continue
        chains.append(_oriented_chain(sugar, attached, np.sort(choice.nodes), dna))
    structure = build_model(chains) if chains else None
    timings["residues_and_atoms"] = time.perf_counter() - t0
    return BuildResult(structure, trace, counts, timings)


def _oriented_chain(sugar: np.ndarray, attached: PathAttachment, kept: np.ndarray, dna: bool) -> ChainResidues:
    """The kept residues of a path as a chain, in the direction whose full-atom fit puts C4′ closest to the sugar
    nodes (the residue-choice scores barely depend on direction; nucleotide geometry does)."""
    bases = tuple(BASE_TYPES[int(i)] for i in np.argmax(attached.scores[kept], axis=1))
    candidates = []
    for order, own_p in ((kept, attached.prev_p), (kept[::-1], attached.next_p)):
        residues = ChainResidues(
            p=own_p[order], sugar=sugar[order], base=attached.base_xyz[order],
            bases=bases if order is kept else bases[::-1], dna=dna,
            confidence=attached.scores[order].max(axis=1) / MAX_BASE_SCORE, numbers=None,
        )
        c4 = np.array([xyz[nucleotides.atom_order(name).index("C4'")]
                       for xyz, name in zip(residue_coordinates(residues), residues.residue_names)])
        candidates.append((float(np.linalg.norm(c4 - residues.sugar, axis=1).mean()), residues))
    return min(candidates, key=lambda c: c[0])[1]
