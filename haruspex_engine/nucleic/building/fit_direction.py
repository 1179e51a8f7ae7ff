"""Direction evidence from the fit into the maps: each traced path built both ways, every nucleotide fitted into
the detection maps and density (``residue_fit``), and per node the difference of its residue's fit scores.

A nucleotide built the wrong way round on a sugar node puts its C5′/O5′ where the C3′/O3′ belong, its own phosphate
on the neighbour's and its ring the wrong way round against the base: after the rigid-body fit its atoms sit less
well in the sugar, phosphate and base maps than those of the nucleotide built the right way. Per node
f_k = score(built in path order) − score(built against it): positive says the path order runs 5′→3′ at that node.
It complements the handedness of the nodes (``strand_direction.direction_evidence``), which is 0 where a node lacks
a phosphate or base node. Measured per matched node on oracle maps of the na-corpus (realistic: 1EHZ, 6v5b, 3SIU,
4P5J, 1ASY, 385 nodes; clean: 1EHZ, 6v5b, 3SIU, 4P5J, 1GID, 592 nodes), sign right for: handedness 0.67 / 0.84,
fit 0.77 / 0.89, handedness + FIT_EVIDENCE_WEIGHT × fit 0.83 / 0.89.
"""
from __future__ import annotations

import numpy as np

from haruspex_engine.nucleic.building.atoms import build_model
from haruspex_engine.nucleic.building.attach import PathAttachment
from haruspex_engine.nucleic.building.residue_fit import FitMaps, fit_residues, residue_scores
from haruspex_engine.nucleic.building.sequence_model import MIN_CHAIN_RESIDUES, path_residues

#: Weight of the fit evidence f_k (score units: probability + normalised density) beside the handedness e_k.
FIT_EVIDENCE_WEIGHT = 3.0


def fit_direction_evidence(paths: list[tuple[np.ndarray, PathAttachment]], maps: FitMaps,
                           dna: bool) -> list[np.ndarray]:
    """Per path, (L,) FIT_EVIDENCE_WEIGHT × f_k (module docstring); zeros for a path too short to be a chain or
    with a node that has no base node (such paths are not built).

    paths: (sugar node positions (L, 3) Å in path order, ``attach_path``'s result for them). Every path is built
    both ways with each node's best-scoring base; the paths of one direction are fitted together, as one model.
    """
    long = [k for k, (sugar, attached) in enumerate(paths)
            if len(sugar) >= MIN_CHAIN_RESIDUES and not np.isnan(attached.base_xyz).any()]
    evidence = [np.zeros(len(sugar)) for sugar, _ in paths]
    if not long:
        return evidence
    bounds = np.cumsum([0] + [len(paths[k][0]) for k in long])
    scores = []
    for backwards in (False, True):
        chains = []
        for k in long:
            sugar, attached = paths[k]
            order = np.arange(len(sugar))[::-1] if backwards else np.arange(len(sugar))
            chains.append(path_residues(sugar, attached, order, backwards,
                                        np.argmax(attached.scores[order], axis=1), dna))
        model = build_model(chains)
        fit_residues(model, maps)
        per_residue = residue_scores(model, maps)
        scores.append([per_residue[a:b][::-1] if backwards else per_residue[a:b]
                       for a, b in zip(bounds[:-1], bounds[1:])])
    for k, forward, backward in zip(long, *scores):
        evidence[k] = FIT_EVIDENCE_WEIGHT * (forward - backward)
    return evidence
