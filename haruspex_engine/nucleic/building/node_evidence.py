"""Node evidence: drop the clustered nodes that the rest of the detection output does not support.

An addition to the original method (issue 13, over-building). The detector's errors are smooth blobs, not voxel
noise: they survive the smoothed thresholds of ``nodes.class_weights`` and become nodes, and every sugar node the
tracer reaches becomes a residue. A node is kept only where the working density, the other stage-2 channels and
the other node classes agree that a nucleotide is there. Maps are on the 1 Å working grid (arrays (z, y, x), node
positions (x, y, z) Å); every value read at a node is the map smoothed by a Gaussian of σ EVIDENCE_SIGMA_A (1.5 Å),
interpolated trilinearly.

The rules, in order. Numbers: oracle maps (``testing.oracle_maps``, presets "realistic" and "clean", seeds 0–2) of
6v5b, 1EHZ, 4P5J and the protein complexes 3SIU and 1D66, 996 nucleotides per preset; a sugar node counts as true
within 3 Å of a reference C4′ atom. Realistic: 1,153 true and 18,403 false sugar nodes before the rules.

1. density (every class): the node's density must exceed solvent + 0.4 (molecule − solvent), the levels of
   :func:`density_levels`. The solvent level comes from the map itself (median 0.015 on realistic maps, robust
   s.d. 0.014; the working map's solvent is noise, not 0), the molecule level is the median at the base nodes
   (0.41–0.62). True sugar nodes lie 0.37–1.35 of the way from solvent to molecule (1 % below 0.55; clean maps
   0.58–1.11), false ones mostly at the solvent (median 0.03). Removes 17,278 false sugar nodes and 1 true one.
   A noise-only threshold (solvent + 8 s.d., about 0.13) ends with some 40 % more false nodes, at the molecule's
   edge; 0.5 instead of 0.4 costs 7 true nodes. The build (``build.find_nodes``) clusters sugar and phosphate only
   within DENSE_REGION_REACH_A of the voxels above this threshold (:func:`dense_region`, the molecule level read at
   the base nodes, which are clustered first), so most of those false nodes are never made.
2. protein (every class): the smoothed protein probability must not exceed the node's own class probability
   (sugar, phosphate, or base for the base classes). True sugar nodes see 0–0.43 protein (99 % below 0.27).
   Removes 743 of the 1,125 false sugar nodes left, most of them protein called nucleic in the complexes, and 4
   true ones.
3. base (sugar nodes): the smoothed base probability must not exceed the sugar probability by more than
   BASE_MARGIN (0.1): a sugar bump on a base is part of the base. Removes 101 false, 8 true sugar nodes.
4. partners (sugar nodes): a base node (any base class) within BASE_REACH_A (9 Å) and a phosphate node within
   PHOSPHATE_REACH_A (7 Å), among the nodes that passed rules 1–2. On perfect oracle maps of seven entries (378
   nucleotides) a sugar node's nearest base node lies 3.5–7.5 Å away (99 % below 5.8 Å) and its nearest phosphate
   node 3.1–5.1 Å; on clean maps 2.7–8.7 Å (99 % below 7.3 Å) and 1.6–5.9 Å. A chain-end sugar whose own
   phosphate is missing usually has its neighbour's within 7 Å. Removes 69 false, 4 true sugar nodes.
5. split sugars (sugar nodes): a sugar node closer than DUPLICATE_RADIUS_A (3.5 Å) to one more than 1 / 0.3
   times as heavy (summed sugar probability of its voxels) is part of it: the heavier absorbs it, voxels included.
   Sugar centres of distinct nucleotides lie at least 4.4 Å apart (1 % below 4.7 Å over 1,074 nucleotides of ten
   corpus entries), but blobs 1.2–1.8 Å wide split into several mean-shift modes: the clean maps give 1,206 sugar
   nodes for 996 nucleotides, 186 of them a second node on a sugar. After the rule: 1,026 nodes, 34 second
   nodes, and 98.2 % of the C4′ atoms keep a node within 3 Å (98.9 % before). Without the mass ratio the rule
   leaves 28 second nodes but 96.8 %; at 4 Å 8 second nodes and 97.4 %, but an ideal 30-nt strand (seed 0) loses
   two nucleotides: real neighbours differ up to 7-fold in mass (peaks 0.5–1, widths 1.2–1.8 Å). Realistic maps:
   one-to-one node precision 0.66 → 0.75, C4′ atoms with a node 89.5 % → 87.1 %. The rule replaces the old
   relative-mass filter (nodes under 0.55 of the median node mass), which dropped faint but real nucleotides:
   17 % of the sugar nodes of a clean 78-nt map.

6. split phosphates (phosphate nodes): a phosphate node closer than DUPLICATE_RADIUS_A to a heavier one (summed
   phosphate probability) is part of it, whatever the mass ratio. The phosphate centroids of distinct nucleotides
   lie at least 3.64 Å apart (eight corpus entries; 1st percentile 3.84–5.22 Å per entry), but a phosphate blob
   can split into two modes: the clean map of the 16S rRNA 3JBV_A gives 1,634 phosphate nodes for 1,530
   nucleotides, 98 of the 107 false ones (none within 2 Å of a phosphate centroid) within 3.5 Å of another node.
   Phosphate node precision / recall (2 Å) before → after: that map 0.935 / 0.993 → 0.994 / 0.990, the demo
   detector's 6v5b map 0.77 / 0.87 → 0.94 / 0.87, realistic 1GID (seed 0) 0.67 / 0.87 → 0.74 / 0.84. False
   phosphates make false phosphate pairs for ``sugar_anchors``.

7. phosphate on a base (phosphate nodes): the smoothed base probability must not exceed the phosphate probability by
   more than PHOSPHATE_BASE_MARGIN (0.25): a phosphate bump on a base is part of the base, and a false phosphate
   makes false phosphate pairs, so false anchored sugars (``sugar_anchors``). Phosphate nodes left by rules 1–2, true
   within 2 Å of a P atom, false 3 Å or more from every P (base − phosphate probability): oracle maps of 6POM, 1EHZ,
   1GID, 3SIU, 6v5b and 1D66 (seeds 0–1), realistic 1,352 true (99th percentile −0.01, largest 0.15) and 499 false
   (median 0.10; on 6POM seed 0, 56 of its 308 kept phosphate nodes lay on sugar or base atoms, 4 Å or more from
   every P), clean 1,570 true (largest −0.04) and 7 false; the demo detector's maps of its five held-out entries
   (3.5 Å, noise 0.25) 223 true (largest 0.19) and 50 false (median −0.13: its false phosphates are not on bases), and
   nodes 2–3.5 Å off a P up to 0.22 (1KF1, 6v5b). At 0.25 the rule drops no node within 3.5 Å of a P on the demo
   maps, no true node on the oracle maps and 119 false realistic ones; at 0.2 it drops 153, but also a node 2.7 Å off
   a P of the demo detector's 1KF1 (a nucleotide lost); at 0.1, 253 and 3 true. The sugar probability is no test: a
   confident detector paints C5′ and O3′ as sugar, so a true phosphate often sits in sugar probability above its own
   (the larger of sugar and base at 0.2 drops 8 true realistic nodes, and true ones on such a saturated sugar map).
   Built models (``bench_na_corpus.py``, ten entries × seeds 0–2, realistic, coverage / precision / sequence recall /
   register recall): 0.866 / 0.875 / 0.665 / 0.319 → 0.868 / 0.884 / 0.669 / 0.329; the clean maps and the demo
   detector's held-out maps give the same models as without the rule.

Phosphate nodes go by rules 1, 2, 7 and 6 (in that order), base nodes by rules 1–2 only: also dropping those with
no kept sugar node within reach changed no built residue (6v5b, 1EHZ, 3SIU, 1D66, realistic seed 0), and neither did
a rule against sugar fragments (nodes under 5 % of the median sugar node mass) help: it removed real nucleotides
whose blob fell mostly into their neighbours' nodes (built coverage on clean maps 0.87 → 0.81).

Realistic maps end with 981 true and 174 false sugar nodes (from 18,403 false), clean ones with 1,011 and 15.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from haruspex_engine.maps import Vec3
from haruspex_engine.nucleic.building.grid_points import trilinear_values
from haruspex_engine.nucleic.building.nodes import BASE_NODE_CLASSES, NodeSet
from haruspex_engine.nucleic.classes import STAGE2_CLASSES

#: Å: σ of the Gaussian that smooths the density and the probabilities read at a node.
EVIDENCE_SIGMA_A = 1.5
#: Smoothed probability (any stage-2 class) from which a voxel counts as detector signal.
SIGNAL_PROBABILITY = 0.5
#: Å: voxels farther than this from every signal voxel are the solvent sample.
SOLVENT_MARGIN_A = 4.0
#: With fewer solvent-sample voxels than this fraction of the map, all voxels of positive density are the sample.
MIN_SOLVENT_FRACTION = 0.05
#: Base nodes whose density exceeds the solvent level by this many robust standard deviations define the molecule.
SOLVENT_NOISE_FACTOR = 8.0
#: A node's density must lie at least this fraction of the way from the solvent to the molecule level.
MOLECULE_FRACTION = 0.4
#: A sugar node is dropped where the base probability exceeds the sugar probability by more than this.
BASE_MARGIN = 0.1
#: A phosphate node is dropped where the base probability exceeds the phosphate probability by more than this.
PHOSPHATE_BASE_MARGIN = 0.25
#: Å: a sugar node needs a base node and a phosphate node within these distances.
BASE_REACH_A = 9.0
PHOSPHATE_REACH_A = 7.0
#: Å and mass ratio: a sugar node closer than this to a sugar node at least 1 / ratio times heavier is part of it.
DUPLICATE_RADIUS_A = 3.5
DUPLICATE_MASS_RATIO = 0.3
#: Å: sugar and phosphate nodes are clustered only this near the voxels above the node threshold (``dense_region``).
#: A node that rule 1 keeps has a voxel above the threshold within √3 Å (its density is interpolated from the eight
#: voxels round it), and its mean-shift window reaches ``nodes.WINDOW_REACH`` (4) voxels further; beyond 4 Å of the
#: point the kernel is below 2.3e-5 of its peak. Far from the molecule the smooth blobs of detector noise are
#: clustered for nothing: on a realistic map of 3SIU (a protein–DNA complex) 2,612 sugar nodes came out of 194,535
#: voxels and rule 1 kept 309 of them.
DENSE_REGION_REACH_A = 6.0
#: Rules 3 and 7: how far the base probability may exceed the own probability of a sugar or phosphate node.
_BASE_MARGINS = {"sugar": BASE_MARGIN, "phosphate": PHOSPHATE_BASE_MARGIN}
#: The stage-2 channel that is each node class's own probability.
_OWN_CHANNEL = {"sugar": "sugar", "phosphate": "phosphate", **{name: "base" for name in BASE_NODE_CLASSES}}


@dataclass(frozen=True)
class DensityLevels:
    """Smoothed working density, in the map's normalised units: the solvent level (median of the solvent sample)
    and noise (1.4826 × its median absolute deviation), the molecule level (median at the base nodes more than
    SOLVENT_NOISE_FACTOR noise above the solvent; NaN when there is none) and the threshold a node must exceed."""

    solvent: float
    noise: float
    molecule: float
    threshold: float


@dataclass(frozen=True)
class FilteredNodes:
    """nodes: the kept node sets by class. report: sugar node counts before and after each rule, phosphate node counts
    before, after rule 7 and at the end, base node counts (all base classes together) before and after, and the
    density levels (rounded; molecule_level None without one)."""

    nodes: dict[str, NodeSet]
    report: dict[str, int | float | None]


def smoothed(volume: np.ndarray) -> np.ndarray:
    """``volume`` (Z, Y, X) smoothed by a Gaussian of σ EVIDENCE_SIGMA_A Å (1 Å grid), float32, zero outside."""
    return ndimage.gaussian_filter(np.asarray(volume, dtype=np.float32), EVIDENCE_SIGMA_A, mode="constant")


def solvent_sample(density_smoothed: np.ndarray, stage2: np.ndarray) -> np.ndarray:
    """bool (Z, Y, X): the voxels taken as solvent.

    Voxels farther than SOLVENT_MARGIN_A from every voxel where the smoothed maximum of the stage-2 probabilities
    (8, Z, Y, X) reaches SIGNAL_PROBABILITY, and whose smoothed density is positive (a masked map's zeros are not
    solvent noise). Where that leaves less than MIN_SOLVENT_FRACTION of the map (a map that is mostly molecule),
    every voxel of positive density; the median then still falls in the solvent while it fills half the map.
    On realistic oracle maps of 6v5b and 3SIU the sample is 89–90 % of the map, 93 % of it farther than 6 Å from
    every atom, and its median is that of the true solvent within 0.001.
    """
    signal = smoothed(np.max(stage2, axis=0)) >= SIGNAL_PROBABILITY
    positive = density_smoothed > 0
    if not signal.any():
        return positive
    sample = positive & (ndimage.distance_transform_edt(~signal) > SOLVENT_MARGIN_A)
    return sample if sample.sum() >= MIN_SOLVENT_FRACTION * sample.size else positive


def density_levels(density_smoothed: np.ndarray, solvent: np.ndarray, base_values: np.ndarray) -> DensityLevels:
    """Solvent and molecule levels of a smoothed working density (Z, Y, X) and the node threshold.

    solvent: bool (Z, Y, X) solvent sample (:func:`solvent_sample`); base_values: smoothed density at the base
    nodes. Threshold: solvent + MOLECULE_FRACTION × (molecule − solvent); without a molecule level, solvent +
    SOLVENT_NOISE_FACTOR × noise.
    """
    values = density_smoothed[solvent]
    level = float(np.median(values)) if values.size else 0.0
    noise = float(1.4826 * np.median(np.abs(values - level))) if values.size else 0.0
    floor = level + SOLVENT_NOISE_FACTOR * noise
    above = np.asarray(base_values)[np.asarray(base_values) > floor]
    if not above.size:
        return DensityLevels(level, noise, float("nan"), floor)
    molecule = float(np.median(above))
    return DensityLevels(level, noise, molecule, level + MOLECULE_FRACTION * (molecule - level))


def node_levels(nodes: Mapping[str, NodeSet], maps: EvidenceMaps, origin: Vec3) -> DensityLevels:
    """The density levels of rule 1, the molecule level read at the base nodes (every class of BASE_NODE_CLASSES
    in ``nodes``); maps: ``evidence_maps``, on the grid whose voxel (0, 0, 0) is at ``origin`` (x, y, z) Å."""
    base_xyz = np.concatenate([nodes[name].xyz for name in BASE_NODE_CLASSES if name in nodes]).reshape(-1, 3)
    return density_levels(maps.density, maps.solvent, trilinear_values(maps.density, base_xyz, origin))


def dense_region(maps: EvidenceMaps, levels: DensityLevels, reach_A: float = DENSE_REGION_REACH_A) -> np.ndarray:
    """bool (Z, Y, X): the voxels within ``reach_A`` Å of a voxel whose smoothed density exceeds the node threshold
    (rule 1). A node that rule 1 keeps sees the same voxels there, up to the kernel's far tail
    (DENSE_REGION_REACH_A); none is outside."""
    dense = maps.density > levels.threshold
    if not dense.any():
        return dense
    return ndimage.distance_transform_edt(~dense) <= reach_A


def within(xyz: np.ndarray, partners: np.ndarray, reach_A: float) -> np.ndarray:
    """bool (N,): which points (N, 3) have one of the partner points (M, 3) within ``reach_A`` Å."""
    if len(xyz) == 0 or len(partners) == 0:
        return np.zeros(len(xyz), dtype=bool)
    return cKDTree(partners).query(xyz, distance_upper_bound=reach_A)[0] <= reach_A


def absorb_duplicates(xyz: np.ndarray, mass: np.ndarray, candidates: np.ndarray,
                      radius_A: float = DUPLICATE_RADIUS_A, ratio: float = DUPLICATE_MASS_RATIO) -> np.ndarray:
    """Owners (int (N,), as ``NodeSet.regrouped`` takes them) after merging split-off nodes into their sugar.

    Among the candidate nodes (bool (N,)), heaviest first (ties: lower index first), each node not yet absorbed
    absorbs every other candidate not yet absorbed that lies closer than ``radius_A`` Å and weighs less than
    ``ratio`` times its mass. Non-candidates get -1.
    """
    owner = np.where(candidates, np.arange(len(xyz)), -1)
    index = np.flatnonzero(candidates)
    if len(index) < 2:
        return owner
    tree = cKDTree(xyz[index])
    absorbed = np.zeros(len(index), dtype=bool)
    for a in np.lexsort((index, -mass[index])):
        if absorbed[a]:
            continue
        absorbed[a] = True
        near = [b for b in tree.query_ball_point(xyz[index[a]], radius_A)
                if not absorbed[b] and mass[index[b]] < ratio * mass[index[a]]]
        absorbed[near] = True
        owner[index[near]] = index[a]
    return owner


@dataclass(frozen=True)
class EvidenceMaps:
    """What the rules read, on the working grid (Z, Y, X): the smoothed (``smoothed``) sugar, phosphate, base and
    protein probabilities by name, the smoothed density, and its solvent sample (``solvent_sample``)."""

    channel: dict[str, np.ndarray]
    density: np.ndarray
    solvent: np.ndarray


def evidence_maps(stage2: np.ndarray, density: np.ndarray) -> EvidenceMaps:
    """The maps ``filter_nodes`` reads, from stage2 (8, Z, Y, X) and the working density (Z, Y, X); computed once
    per map when the rules run more than once (``build.find_nodes``)."""
    dens = smoothed(density)
    return EvidenceMaps({name: smoothed(stage2[STAGE2_CLASSES.index(name)])
                         for name in ("sugar", "phosphate", "base", "protein")}, dens, solvent_sample(dens, stage2))


def filter_nodes(nodes: Mapping[str, NodeSet], stage2: np.ndarray, density: np.ndarray, origin: Vec3,
                 maps: EvidenceMaps | None = None) -> FilteredNodes:
    """The nodes (by class: sugar, phosphate and the base classes) that the rules of the module docstring keep.

    stage2: (8, Z, Y, X) probabilities in STAGE2_CLASSES order and density: (Z, Y, X) normalised working density,
    on the 1 Å grid whose voxel (0, 0, 0) is at ``origin`` (x, y, z) Å; maps: ``evidence_maps`` of those two (None:
    computed here).
    """
    maps = evidence_maps(stage2, density) if maps is None else maps
    channel, dens = maps.channel, maps.density
    bases = [name for name in BASE_NODE_CLASSES if name in nodes]
    levels = node_levels(nodes, maps, origin)
    report: dict[str, int | float | None] = {"sugar_clustered": len(nodes["sugar"])}

    keep = {}
    for name, node_set in nodes.items():
        own = trilinear_values(channel[_OWN_CHANNEL[name]], node_set.xyz, origin)
        dense = trilinear_values(dens, node_set.xyz, origin) > levels.threshold
        keep[name] = dense & (trilinear_values(channel["protein"], node_set.xyz, origin) <= own)
        if name == "sugar":
            report["sugar_after_density"] = int(dense.sum())
            report["sugar_after_protein"] = int(keep[name].sum())
        if name in _BASE_MARGINS:  # rules 3 and 7
            keep[name] &= trilinear_values(channel["base"], node_set.xyz, origin) <= own + _BASE_MARGINS[name]
            report[f"{name}_after_base"] = int(keep[name].sum())

    sugar = nodes["sugar"]
    kept_bases = np.concatenate([nodes[name].xyz[keep[name]] for name in bases]).reshape(-1, 3)
    keep["sugar"] &= within(sugar.xyz, kept_bases, BASE_REACH_A)
    keep["sugar"] &= within(sugar.xyz, nodes["phosphate"].xyz[keep["phosphate"]], PHOSPHATE_REACH_A)
    report["sugar_after_partners"] = int(keep["sugar"].sum())
    owner = absorb_duplicates(sugar.xyz, sugar.masses(stage2[STAGE2_CLASSES.index("sugar")]), keep["sugar"])
    kept = {"sugar": sugar.regrouped(owner)}
    report["sugar_after_duplicates"] = len(kept["sugar"])

    phosphate = nodes["phosphate"]
    owner = absorb_duplicates(phosphate.xyz, phosphate.masses(stage2[STAGE2_CLASSES.index("phosphate")]),
                              keep["phosphate"], DUPLICATE_RADIUS_A, np.inf)
    kept["phosphate"] = phosphate.regrouped(owner)
    for name, node_set in nodes.items():
        if name not in ("sugar", "phosphate"):
            kept[name] = node_set.regrouped(np.where(keep[name], np.arange(len(node_set)), -1))
    report.update({
        "phosphate_clustered": len(nodes["phosphate"]), "phosphate_kept": len(kept["phosphate"]),
        "base_clustered": sum(len(nodes[name]) for name in bases),
        "base_kept": sum(len(kept[name]) for name in bases),
        "solvent_level": round(levels.solvent, 4), "density_threshold": round(levels.threshold, 4),
        "molecule_level": None if np.isnan(levels.molecule) else round(levels.molecule, 4)})
    return FilteredNodes(kept, report)
