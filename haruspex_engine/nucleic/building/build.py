"""build_nucleic_model: detection maps (and optionally the chain sequences) in, a full-atom DNA/RNA model out.

The steps, each in its own module: node clustering (nodes) → sugar graph (graph) → backbone tracing (trace) →
phosphate and base attachment per path (attach) → paths cut into stretches that follow one strand one way, at hops
across a base pair and where the nucleotides' handedness shows a fold-back, each stretch's 5′→3′ direction read
from that handedness (strand_direction) → residue choice without sequence (no_sequence) and, where the nodes give
no direction, chain direction by full-atom fit → with sequences: fragment alignment in that direction and selection
(sequence_assign) and chains in sequence register (sequence_model) → full atoms (atoms) → each nucleotide fitted
as a rigid body into the maps (residue_fit). The direction comes from geometry, not from the sequence: with noisy
base calls a short path aligns about as well against the reversed chain, and a chain built the wrong way round
misplaces every sugar. Per-residue confidence (B-factor) is the residue's score for its base divided by the
maximum of 3.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import gemmi
import numpy as np

from haruspex_engine.maps import Vec3
from haruspex_engine.nucleic.building import SOLUTION_LIMIT, SUGAR_NODE_SOURCES, nucleotides
from haruspex_engine.nucleic.building.atoms import ChainResidues, build_model, residue_coordinates
from haruspex_engine.nucleic.building.attach import PathAttachment, attach_path, linking_density
from haruspex_engine.nucleic.building.fit_direction import fit_direction_evidence
from haruspex_engine.nucleic.building.fragment_select import SAFETY_TIME_LIMIT_S
from haruspex_engine.nucleic.building.graph import build_sugar_graph
from haruspex_engine.nucleic.building.no_sequence import choose_residues
from haruspex_engine.nucleic.building.node_evidence import (
    FilteredNodes,
    dense_region,
    evidence_maps,
    filter_nodes,
    node_levels,
)
from haruspex_engine.nucleic.building.nodes import (
    BASE_NODE_CLASSES,
    class_weights,
    moved_onto_density,
    nodes_from_weights,
)
from haruspex_engine.nucleic.building.residue_fit import FitMaps, fit_maps, fit_residues, follow_fit
from haruspex_engine.nucleic.building.sequence_assign import SequenceAssignment, group_sequences
from haruspex_engine.nucleic.building.sequence_model import (
    MIN_CHAIN_RESIDUES,
    TracedPath,
    path_residues,
    sequenced_model,
)
from haruspex_engine.nucleic.building.sequences import FastaRecords
from haruspex_engine.nucleic.building.strand_direction import split_strands
from haruspex_engine.nucleic.building.strand_hops import shared_phosphate
from haruspex_engine.nucleic.building.sugar_anchors import anchored_sugars, one_per_sugar
from haruspex_engine.nucleic.building.trace import TraceResult, trace_backbone
from haruspex_engine.nucleic.classes import STAGE2_CLASSES


@dataclass
class BuildResult:
    """structure: the model (None when nothing was found). unsequenced: with sequences, the model built without
    them (None otherwise). trace: what the routing search did. assignment: what sequence assignment did (None
    without sequences). node_counts: nodes per class. timings_s: seconds per step. strands: how the traced paths
    became one-strand, one-direction stretches: paths, stretches, cut_base_pair (cuts at hops across a base pair),
    cut_direction_flip (cuts where the direction evidence flips: fold-backs), cut_no_step (cuts where residue
    choice found no plausible step between kept nodes), reversed (chains built against the trace order),
    direction_by_fit (chains whose direction came from the full-atom fit, the nodes giving none).
    node_filter: what the node evidence rules kept (``node_evidence.FilteredNodes.report``), plus "sugar_nodes" (the
    source used) and, for anchored sugars, "sugar_mean_shift" (the mean-shift count they replaced). residue_fit:
    per model ("model", and "unsequenced" with sequences), what the rigid-body fit into the maps did
    (``residue_fit.FitReport.as_dict``)."""

    structure: gemmi.Structure | None
    unsequenced: gemmi.Structure | None
    trace: TraceResult | None
    assignment: SequenceAssignment | None
    node_counts: dict[str, int]
    timings_s: dict[str, float] = field(default_factory=dict)
    strands: dict[str, int] = field(default_factory=dict)
    node_filter: dict[str, int | float | str | None] = field(default_factory=dict)
    residue_fit: dict[str, dict[str, float | int]] = field(default_factory=dict)


def build_nucleic_model(
    stage2: np.ndarray,
    density: np.ndarray,
    origin: Vec3,
    *,
    sequences: FastaRecords | None = None,
    dna: bool = False,
    solution_limit: int = SOLUTION_LIMIT,
    time_limit_s: float = 120.0,
    assignment_work_scale: float = 1.0,
    assignment_time_limit_s: float = SAFETY_TIME_LIMIT_S,
    sugar_nodes: str = SUGAR_NODE_SOURCES[0],
) -> BuildResult:
    """Model of the nucleic acids in stage-2 maps (8, Z, Y, X) and the working density (Z, Y, X) on a 1 Å grid whose
    voxel (0, 0, 0) is at ``origin`` (x, y, z) Å. sequences: the chains to assign (None: no sequence). dna: name
    residues DA/DC/DG/DT instead of A/C/G/U where no sequence decides. assignment_work_scale multiplies the
    sequence assignment's deterministic work budget; assignment_time_limit_s is its wall-clock safety net.
    sugar_nodes: where the sugar nodes come from (SUGAR_NODE_SOURCES): "anchored" (default), one sugar between every
    two phosphate nodes a backbone step apart (``sugar_anchors``; DNA geometry with ``dna`` or sequences that are all
    DNA), the mean-shift nodes kept where no phosphate pair gives one; or "mean-shift", the modes of the sugar map
    (CryoREAD's nodes)."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    dna_geometry = dna or bool(sequences) and all(record.kind == "DNA" for record in sequences)
    filtered, weights = find_nodes(stage2, density, origin, sugar_nodes, dna_geometry)
    nodes = filtered.nodes
    timings["nodes"] = time.perf_counter() - t0
    counts = {name: len(n) for name, n in nodes.items()}

    t0 = time.perf_counter()
    graph = build_sugar_graph(nodes["sugar"], stage2, weights["sugar"], origin, phosphate_xyz=nodes["phosphate"].xyz)
    del weights  # seven maps the size of the density: freed before the sequence step, the build's peak of memory
    timings["graph"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    trace = trace_backbone(graph.xyz, graph.edges, graph.cost, solution_limit=solution_limit,
                           time_limit_s=time_limit_s)
    timings["trace"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    fit = _MapFit(fit_maps(stage2, density, origin, graph.xyz) if len(graph.xyz) else None, timings)
    timings["fit"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    paths = []
    pieces, strands = _strand_pieces(trace.paths, graph.xyz, nodes, stage2, origin, linking_density(density),
                                     fit.maps, dna)
    strands.update(cut_no_step=0, reversed=0, direction_by_fit=0)
    for whole_sugar, whole_attached, direction in pieces:
        if np.isnan(whole_attached.base_xyz).any():
            continue
        runs = choose_residues(whole_sugar, whole_attached.scores, shared_phosphate(whole_attached)).runs()
        strands["cut_no_step"] += len(runs) - 1
        for run in runs:
            start, stop = int(run.min()), int(run.max()) + 1
            sugar, attached = whole_sugar[start:stop], whole_attached.part(start, stop)
            chain, reverse = _oriented_chain(sugar, attached, np.sort(run) - start, dna, direction)
            paths.append((sugar, attached, chain, reverse))
            strands["reversed"] += int(chain is not None and reverse)
            strands["direction_by_fit"] += int(chain is not None and direction is None)
    unsequenced = [chain for _, _, chain, _ in paths if chain is not None]
    unsequenced_model = build_model(unsequenced) if unsequenced else None
    timings["residues"] = time.perf_counter() - t0
    if sequences is None:
        fit(unsequenced_model, "model")
        return BuildResult(unsequenced_model, None, trace, None, counts, timings, strands, filtered.report,
                           fit.reports)

    t0 = time.perf_counter()
    sequenced = sequenced_model([TracedPath(sugar, attached, chain, reverse)
                                 for sugar, attached, chain, reverse in paths], group_sequences(sequences), dna,
                                assignment_work_scale, assignment_time_limit_s)
    timings["sequence"] = time.perf_counter() - t0
    fit.with_source(sequenced.structure, "model", unsequenced_model, "unsequenced")
    return BuildResult(sequenced.structure, unsequenced_model, trace, sequenced.assignment, counts, timings, strands,
                       filtered.report, fit.reports)


def find_nodes(stage2: np.ndarray, density: np.ndarray, origin: Vec3, sugar_nodes: str = SUGAR_NODE_SOURCES[0],
               dna: bool = False) -> tuple[FilteredNodes, dict[str, np.ndarray]]:
    """The nodes the builder traces and their class weights (``nodes.class_weights``, (Z, Y, X) per class).

    Mean-shift nodes of every class (``nodes``; sugar and phosphate only in the dense region the base nodes give,
    ``node_evidence.dense_region``), the phosphate and base nodes moved onto the density
    (``nodes.moved_onto_density``), the node evidence rules (``node_evidence``); with sugar_nodes "anchored" the
    sugar nodes are then anchored on the kept phosphates (``sugar_anchors``, DNA geometry when ``dna``), moved onto
    the density, those that met merged (``sugar_anchors.one_per_sugar``), and the rules run again. The mean-shift
    sugar nodes stay where they are: they are modes of a tube (``sugar_anchors``), and moving them as well cost
    realistic register recall 0.564 → 0.509 (BENCHMARKS.md, 2026-12-07). The report gains "sugar_nodes" and,
    anchored, "sugar_mean_shift" (the mean-shift count). stage2: (8, Z, Y, X) in STAGE2_CLASSES order, density (Z,
    Y, X), on the 1 Å grid whose voxel (0, 0, 0) is at ``origin`` (x, y, z) Å.
    """
    if sugar_nodes not in SUGAR_NODE_SOURCES:
        raise ValueError(f"sugar_nodes must be one of {', '.join(SUGAR_NODE_SOURCES)}, not {sugar_nodes!r}")
    weights = class_weights(stage2, density)
    maps = evidence_maps(stage2, density)
    bases = {name: nodes_from_weights(name, weights[name], origin) for name in BASE_NODE_CLASSES}
    region = dense_region(maps, node_levels(bases, maps, origin))
    clustered = {name: bases[name] if name in bases else nodes_from_weights(name, w, origin, region=region)
                 for name, w in weights.items()}
    for name in ("phosphate", *BASE_NODE_CLASSES):
        clustered[name] = moved_onto_density(clustered[name], weights[name], density, origin)
    filtered = filter_nodes(clustered, stage2, density, origin, maps)
    if sugar_nodes == "anchored":
        mean_shift = filtered.report["sugar_clustered"]
        anchored = anchored_sugars(filtered.nodes["sugar"], filtered.nodes["phosphate"].xyz,
                                   stage2[STAGE2_CLASSES.index("sugar")], origin, dna)
        clustered["sugar"] = one_per_sugar(moved_onto_density(anchored, weights["sugar"], density, origin),
                                           weights["sugar"])
        filtered = filter_nodes(clustered, stage2, density, origin, maps)
        filtered.report["sugar_mean_shift"] = mean_shift
    filtered.report["sugar_nodes"] = sugar_nodes
    return filtered, weights


class _MapFit:
    """Fits built models into the maps (``residue_fit``): records each model's report and adds the seconds spent
    to timings["fit"]."""

    def __init__(self, maps: FitMaps | None, timings: dict[str, float]) -> None:
        self.maps = maps
        self._timings = timings
        self.reports: dict[str, dict[str, float | int]] = {}

    def __call__(self, structure: gemmi.Structure | None, label: str) -> None:
        if structure is None or self.maps is None:
            return
        t0 = time.perf_counter()
        self.reports[label] = fit_residues(structure, self.maps).as_dict()
        self._timings["fit"] += time.perf_counter() - t0

    def with_source(self, structure: gemmi.Structure | None, label: str, source: gemmi.Structure | None,
                    source_label: str) -> None:
        """Fits ``source`` and ``structure``; then the residues of ``structure`` that are residues of ``source``
        follow source's fit (``residue_fit.follow_fit``; counted in the report as "followed")."""
        source_before = None if source is None else source.clone()
        before = None if structure is None else structure.clone()
        self(source, source_label)
        self(structure, label)
        if label in self.reports and source_label in self.reports:
            followed = follow_fit(structure, before, source_before, source)
            self.reports[label]["followed"] = followed


def _strand_pieces(paths: list[np.ndarray], sugar_xyz: np.ndarray, nodes: dict, stage2: np.ndarray, origin: Vec3,
                   link_density: np.ndarray, maps: FitMaps,
                   dna: bool) -> tuple[list[tuple[np.ndarray, PathAttachment, bool | None]], dict[str, int]]:
    """The traced paths cut into stretches that follow one strand one way (``strand_direction.split_strands``, the
    handedness of the nodes plus the fit of each path built both ways, ``fit_direction``), each with its own
    attachment and direction: (sugar positions (L, 3) Å, attachment, reverse or None when the nodes give no
    direction), in path order; and the counts of paths, cuts and stretches."""
    pieces = []
    counts = {"paths": len(paths), "stretches": 0, "cut_base_pair": 0, "cut_direction_flip": 0}
    attached_paths = [(sugar_xyz[path], attach_path(sugar_xyz[path], nodes["phosphate"].xyz, nodes, stage2, origin,
                                                    link_density)) for path in paths]
    fitted = fit_direction_evidence(attached_paths, maps, dna)
    for (sugar, attached), fit_evidence in zip(attached_paths, fitted):
        stretches = split_strands(sugar, attached, fit_evidence)
        counts["stretches"] += len(stretches)
        for stretch in stretches:
            if stretch.cut != "path_start":
                counts[f"cut_{stretch.cut}"] += 1
            piece = sugar[stretch.start:stretch.stop]
            own = attached if len(stretches) == 1 else attach_path(piece, nodes["phosphate"].xyz, nodes, stage2,
                                                                   origin, link_density)
            pieces.append((piece, own, stretch.reverse))
    return pieces, counts


def _oriented_chain(sugar: np.ndarray, attached: PathAttachment, kept: np.ndarray, dna: bool,
                    reverse: bool | None) -> tuple[ChainResidues | None, bool]:
    """The kept residues of a path piece as a chain, running against the path order when ``reverse``, and that
    direction. reverse None (the nodes give no direction): the direction whose full-atom fit puts C4′ closest to
    the sugar nodes. With too few kept residues for a chain: None and the path order."""
    if len(kept) < MIN_CHAIN_RESIDUES:
        return None, False

    def chain(backwards: bool) -> ChainResidues:
        order = kept[::-1] if backwards else kept
        return path_residues(sugar, attached, order, backwards, np.argmax(attached.scores[order], axis=1), dna)

    if reverse is not None:
        return chain(reverse), reverse
    candidates = [chain(False), chain(True)]
    backwards = _c4_misfit(candidates[1]) < _c4_misfit(candidates[0])
    return candidates[int(backwards)], bool(backwards)


def _c4_misfit(residues: ChainResidues) -> float:
    """Mean distance (Å) between each residue's full-atom C4′ and its sugar node."""
    c4 = np.array([xyz[nucleotides.atom_order(name).index("C4'")]
                   for xyz, name in zip(residue_coordinates(residues), residues.residue_names)])
    return float(np.linalg.norm(c4 - residues.sugar, axis=1).mean())
