"""Sugar nodes anchored on the phosphates: one sugar between every two phosphate nodes a backbone step apart.

An addition to CryoREAD's method (issue 13). The sugar map of a detector is not a string of separate blobs: every
sugar atom (C5′ and O3′ included) is labelled sugar, so consecutive sugars touch through C5′ and O3′, and a
network at 3–4 Å paints the whole backbone as one tube. Mean-shift modes of a tube fall anywhere along it: on the
demo detector's map of 6v5b (``make_demo_detector.py``, held out, 3.5 Å) only 25 of 78 sugars have a node within
2 Å, although the sugar probability at the sugars is 0.78 (median). The phosphate group (P, OP1, OP2, O5′) is
compact and consecutive ones lie 5.1–7.0 Å apart (5th–95th percentile over the corpus), so the phosphate nodes
stay one per nucleotide (68 of 78 there).

Geometry of the deposited corpus (2,300 steps; sugar and phosphate centroids of the atom classes above): between
the phosphates of one nucleotide (its own and the next one's) the sugar lies 2.8 Å (median; 5th–95th percentile
1.8–3.1 Å) from the midpoint of the two, perpendicular to them (0.5 Å along); in DNA 2.05 Å (1.4–2.5 Å: its
C2′-endo sugars sit closer to the line of their phosphates), PERPENDICULAR_A. So for every pair of phosphate nodes
STEP_RANGE_A apart, the sugar is looked for on that circle: CIRCLE_POINTS points, the one where the sugar
probability (smoothed by a Gaussian of SMOOTH_SIGMA_A) is largest; it is a candidate when that probability
reaches MIN_PROBABILITY. Pairs that are no backbone step (across a groove, a tertiary contact) mostly
find no sugar on their circle, and the rest go the way of every sugar node: the node evidence rules and the trace.
Candidates closer than MERGE_A are one sugar and keep the most probable: sugar centres of distinct nucleotides lie at
least 4.4 Å apart (``node_evidence``, rule 5), while a pair that is no backbone step but whose circle passes the
edge of a true sugar gives a second candidate 2–3.5 Å from it (with a 2 Å merge: 195 such nodes on the clean 16S
rRNA 3JBV_A, node precision 0.89 against the mean-shift nodes' 0.94). The mean-shift nodes stay where no candidate
lies within ABSORB_A (a nucleotide whose phosphate was not found: chain ends, dropped phosphates).

Sugar nodes within 2 Å of a sugar centroid, recall / precision, mean-shift → with the anchors (seed 0): demo
detector 6v5b 0.32 / 0.41 → 0.83 / 0.88, 3SIU 0.50 / 0.42 → 0.79 / 0.64, 1EHZ 0.74 / 0.89 → 0.91 / 0.87; oracle
maps (``testing.oracle_maps``) clean 6v5b 0.94 / 0.91 → 1.00 / 0.99, clean 3JBV_A 0.98 / 0.94 → 0.98 / 0.96,
realistic 1GID 0.70 / 0.64 → 0.74 / 0.71.

A sugar whose other phosphate was not found has no pair. Every one of the 12 nucleotides of 6v5b that the demo
detector's build missed lacked a phosphate node on at least one side (the network finds 88 % of them there), and
a tube gives no mean-shift mode of its own there. So every phosphate node with fewer than two candidates within
SIDE_REACH_A has its missing sugars looked for on two shells round it (SHELL_RADII_A: the distances from a
phosphate to its own sugar and to the previous nucleotide's), at least DISTINCT_SUGARS_A from every candidate, where
the smoothed probability reaches MIN_PROBABILITY, as between a pair. Demo detector, held-out maps
(``make_demo_detector.py``, with the sequence), backbone coverage / precision before → after: 6v5b 0.846 / 0.943 →
0.897 / 0.972, 1EHZ 0.882 /
0.931 → 0.895 / 0.919, 3SIU 0.821 / 0.807 → 0.875 / 0.790, 1KF1 0.773 / 0.773 → 0.864 / 0.760, 1BNA 0.875 / 1.000
→ 0.917 / 0.846 (two residues at a duplex end on the other strand's bases, two at the 3′ end on a phosphate). Corpus
oracle maps (``bench_na_corpus.py``, 30 builds each, BENCHMARKS.md 2026-12-08): realistic coverage 0.907 → 0.914,
precision 0.953 → 0.947, register recall 0.586 → 0.592; clean unchanged within 0.003. Of the shell candidates, 40–60
% lie within 2 Å of a sugar (realistic and demo maps); the node evidence rules and the trace drop most of the rest.
A 5′-terminal phosphate has one sugar, so its shells are searched too: a tube painted beyond its sugar gives a
false node there. Requiring 0.45 instead of 0.3 kept fewer true ones and lowered realistic register recall to 0.572;
excluding only MERGE_A (3.5 Å) round the candidates built more false residues (realistic precision 0.946, clean
register recall 0.969).

Each voxel of the thresholded sugar map belongs to the nearest node within ABSORB_A (else to none), so node masses
and touching voxels (the sugar graph's first edges) follow the new nodes. Positions (x, y, z) Å; arrays (z, y, x)
on the 1 Å grid whose voxel (0, 0, 0) is at ``origin``.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from haruspex_engine.maps import Vec3
from haruspex_engine.nucleic.building.grid_points import trilinear_values
from haruspex_engine.nucleic.building.node_evidence import DUPLICATE_RADIUS_A, absorb_duplicates
from haruspex_engine.nucleic.building.nodes import NodeSet, normalised_densities

#: Å: distances between two phosphate nodes that can be one backbone step. The phosphate atoms of consecutive
#: nucleotides lie 4.4–7.4 Å apart (corpus 1st–99th percentile); node errors spread that both ways: between the
#: phosphate nodes of consecutive nucleotides (both within 2 Å of their P atoms) 3 % of the distances fell below
#: 4 Å and 4 % above 8 Å on realistic oracle maps (8 corpus entries, seed 1: 1st percentile 3.64 Å, 9 of 766 above
#: 8.5 Å; the demo detector's held-out maps: 2 of 199 above 8 Å). Phosphate nodes closer than DUPLICATE_RADIUS_A are
#: one node (``node_evidence`` rule 6), so that is the lower bound. Was (4, 8); with the sugar graph's bridged
#: steps (``graph``, step 2), (4, 8) → (3.5, 8) → (3.5, 8.5): the demo detector's 6v5b map, backbone coverage
#: 0.833 → 0.846 → 0.859; the corpus's realistic maps 0.859 → 0.859 → 0.866 (clean 0.981 throughout); the 16S rRNA,
#: register recall 0.801 → 0.816 → 0.829 and reversed residues 3.7 → 3.7 → 2.0 % (BENCHMARKS.md, 2026-12-07).
STEP_RANGE_A = (DUPLICATE_RADIUS_A, 8.5)
#: Å: distance of a sugar from the midpoint of its two phosphates, perpendicular to them (medians: RNA entries of
#: the corpus 2.85 Å, 5th–95th percentile 1.9–3.1 Å; the DNA entries 1BNA 1D66 1KF1 2.05 Å, 1.4–2.5 Å: C2′-endo
#: sugars sit closer to the line of their phosphates).
PERPENDICULAR_A = {"RNA": 2.8, "DNA": 2.05}
CIRCLE_POINTS = 24
#: Å: σ of the Gaussian smoothing of the sugar probability read on the circle.
SMOOTH_SIGMA_A = 1.0
#: Least smoothed sugar probability at a candidate.
MIN_PROBABILITY = 0.3
#: Å: candidates closer than this are one sugar (node_evidence.DUPLICATE_RADIUS_A, below the 4.4 Å that separates
#: the sugar centres of distinct nucleotides).
MERGE_A = DUPLICATE_RADIUS_A
#: Å: a candidate with a mean-shift node this close takes the node's position (a mode of a separate blob).
SNAP_A = 1.5
#: Å: moved sugar nodes closer than this are one sugar (``one_per_sugar``). Pairs of sugar nodes after the move,
#: by the reference C4′ nearest to each (realistic oracle maps of 1EHZ, 1GID, 3SIU, 1ASY, 6POM, 6v5b, seeds 0–1):
#: closer than 2.5 Å, 199 of 200 pairs on one nucleotide; 2.5–3.5 Å, 57 of 82 (clean maps of 1GID, 6POM, 1ASY and
#: 3SIU: 25 of 25 and 13 of 15). Merging below MERGE_A instead cost realistic coverage 0.903 → 0.895.
MOVED_MERGE_A = 2.5
#: Å: a mean-shift node this close to a candidate is that candidate's sugar; voxels join nodes this close.
ABSORB_A = 3.5
#: Å: radii of the shells round a phosphate on which a sugar whose other phosphate was not found is looked for.
#: Sugar to phosphate centroid over the corpus (2,596 RNA and 79 DNA nucleotides): the nucleotide's own phosphate
#: 4.46 Å (median; 5th–95th percentile 4.05–4.71; DNA 4.05), the next nucleotide's 3.73 Å (3.61–3.78; DNA 3.78).
SHELL_RADII_A = (3.75, 4.45)
#: Points per shell (a Fibonacci sphere).
SHELL_POINTS = 64
#: Å: a phosphate node with two candidates this near has both its sugars (the 99th percentile of the distance to
#: its own sugar, 4.84 Å, plus a little for node error).
SIDE_REACH_A = 5.0
#: Å: a sugar looked for on the shells lies at least this far from every candidate (the sugar centres of distinct
#: nucleotides, ``node_evidence`` rule 5).
DISTINCT_SUGARS_A = 4.4


def anchored_sugars(sugar: NodeSet, phosphate_xyz: np.ndarray, sugar_probability: np.ndarray,
                    origin: Vec3, dna: bool = False) -> NodeSet:
    """The sugar nodes of the module docstring: the candidates between phosphate nodes ``phosphate_xyz`` (M, 3) Å,
    then the nodes of ``sugar`` (mean-shift nodes) that no candidate lies near. sugar_probability: the stage-2 sugar
    map (Z, Y, X); dna: the circle of DNA's geometry (PERPENDICULAR_A). Densities: the smoothed sugar probability at
    each node, min-max normalised as mean-shift densities are."""
    smooth = ndimage.gaussian_filter(np.asarray(sugar_probability, dtype=np.float32), SMOOTH_SIGMA_A)
    phosphate = np.asarray(phosphate_xyz, dtype=float).reshape(-1, 3)
    xyz, value = _merged(*_candidates(phosphate, smooth, origin, PERPENDICULAR_A["DNA" if dna else "RNA"]))
    lone_xyz, lone_value = _one_sided(phosphate, xyz, smooth, origin)
    xyz, value = _merged(np.concatenate([xyz, lone_xyz]), np.concatenate([value, lone_value]))
    if len(xyz) and len(sugar):
        to_candidate, candidate = cKDTree(xyz).query(sugar.xyz, distance_upper_bound=ABSORB_A)
        snapped = to_candidate <= SNAP_A
        xyz[candidate[snapped]] = sugar.xyz[snapped]
        alone = to_candidate > ABSORB_A
        xyz = np.concatenate([xyz, sugar.xyz[alone]])
        value = np.concatenate([value, trilinear_values(smooth, sugar.xyz[alone], origin)])
    elif len(sugar):
        xyz, value = sugar.xyz, trilinear_values(smooth, sugar.xyz, origin)
    members = np.full(len(sugar.voxels), -1, dtype=np.intp)
    if len(xyz) and len(sugar.voxels):
        distance, nearest = cKDTree(xyz).query(sugar.voxels[:, ::-1] + np.asarray(origin, float),
                                               distance_upper_bound=ABSORB_A)
        members = np.where(distance <= ABSORB_A, nearest, -1)
    return NodeSet(sugar.name, xyz.reshape(-1, 3), normalised_densities(value), sugar.voxels, members, sugar.shape)


def _candidates(phosphate: np.ndarray, smooth: np.ndarray, origin: Vec3,
                radius_A: float) -> tuple[np.ndarray, np.ndarray]:
    """Per phosphate pair STEP_RANGE_A apart, the most probable point of its circle (radius ``radius_A`` Å around
    their midpoint) (K, 3) Å and the smoothed probability there (K,), for the points reaching MIN_PROBABILITY."""
    if len(phosphate) < 2:
        return np.empty((0, 3)), np.empty(0)
    pairs = np.array(sorted(cKDTree(phosphate).query_pairs(STEP_RANGE_A[1])), dtype=int).reshape(-1, 2)
    a, b = phosphate[pairs[:, 0]], phosphate[pairs[:, 1]]
    length = np.linalg.norm(b - a, axis=1)
    keep = length >= STEP_RANGE_A[0]
    a, b, length = a[keep], b[keep], length[keep]
    if not len(a):
        return np.empty((0, 3)), np.empty(0)
    axis = (b - a) / length[:, None]
    helper = np.where(np.abs(axis[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
    first = np.cross(axis, helper)
    first /= np.linalg.norm(first, axis=1, keepdims=True)
    second = np.cross(axis, first)
    angle = np.linspace(0.0, 2.0 * np.pi, CIRCLE_POINTS, endpoint=False)
    circle = ((a + b) / 2)[:, None, :] + radius_A * (np.cos(angle)[None, :, None] * first[:, None, :]
                                                             + np.sin(angle)[None, :, None] * second[:, None, :])
    values = trilinear_values(smooth, circle.reshape(-1, 3), origin).reshape(len(a), CIRCLE_POINTS)
    best = values.argmax(axis=1)
    point, value = circle[np.arange(len(a)), best], values[np.arange(len(a)), best]
    found = value >= MIN_PROBABILITY
    return point[found], value[found]


def _one_sided(phosphate: np.ndarray, found: np.ndarray, smooth: np.ndarray,
               origin: Vec3) -> tuple[np.ndarray, np.ndarray]:
    """Sugars of the phosphate nodes (M, 3) Å that have fewer than two of the ``found`` candidates (K, 3) Å within
    SIDE_REACH_A (a neighbouring phosphate was not found): for each, the most probable points of its shells
    (SHELL_RADII_A) at least DISTINCT_SUGARS_A from every candidate, as many as it lacks, where the smoothed sugar
    probability reaches MIN_PROBABILITY. Returns (J, 3) Å and the probabilities (J,)."""
    if not len(phosphate):
        return np.empty((0, 3)), np.empty(0)
    have = (np.array([len(near) for near in cKDTree(found).query_ball_point(phosphate, SIDE_REACH_A)])
            if len(found) else np.zeros(len(phosphate), dtype=int))
    lacking = np.flatnonzero(have < 2)
    if not len(lacking):
        return np.empty((0, 3)), np.empty(0)
    shell = np.concatenate([radius * _sphere(SHELL_POINTS) for radius in SHELL_RADII_A])
    points = phosphate[lacking][:, None, :] + shell[None, :, :]
    values = trilinear_values(smooth, points.reshape(-1, 3), origin).reshape(points.shape[:2])
    chosen: list[np.ndarray] = []
    chosen_value: list[float] = []
    taken = list(found)
    for row, missing in enumerate((2 - have[lacking]).tolist()):
        candidates, probability = points[row], values[row].copy()
        for _ in range(missing):
            if taken:
                near = np.min(np.linalg.norm(candidates[:, None, :] - np.asarray(taken)[None], axis=2), axis=1)
                probability[near < DISTINCT_SUGARS_A] = -np.inf
            best = int(np.argmax(probability))
            if probability[best] < MIN_PROBABILITY:
                break
            chosen.append(candidates[best])
            chosen_value.append(float(probability[best]))
            taken.append(candidates[best])
    return np.asarray(chosen).reshape(-1, 3), np.asarray(chosen_value)


def _sphere(count: int) -> np.ndarray:
    """(count, 3) unit vectors spread evenly over the sphere (a Fibonacci lattice)."""
    k = np.arange(count) + 0.5
    polar = np.arccos(1 - 2 * k / count)
    azimuth = np.pi * (1 + 5 ** 0.5) * k
    return np.stack([np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar), np.cos(polar)], axis=1)


def one_per_sugar(sugar: NodeSet, weights: np.ndarray) -> NodeSet:
    """The sugar nodes after those closer than MOVED_MERGE_A are merged, the heaviest first (mass: ``weights``
    (Z, Y, X) summed over its voxels; ties: lower index) keeping its place. For the anchored nodes once moved onto
    the density (``nodes.moved_onto_density``): two candidates of one nucleotide, more than MERGE_A apart on their
    circles, can climb to the same mode."""
    owner = absorb_duplicates(sugar.xyz, sugar.masses(weights), np.ones(len(sugar), dtype=bool), MOVED_MERGE_A,
                              np.inf)
    return sugar.regrouped(owner)


def _merged(xyz: np.ndarray, value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidates after merging, most probable first (ties: lower index): each takes every less probable one within
    MERGE_A (``node_evidence.absorb_duplicates`` with no mass ratio)."""
    owner = absorb_duplicates(xyz, value, np.ones(len(xyz), dtype=bool), MERGE_A, np.inf)
    order = np.lexsort((np.arange(len(xyz)), -value))
    kept = order[owner[order] == order]
    return xyz[kept], value[kept]
