"""Phosphates and base-type scores of the sugar nodes of one traced path.

CryoREAD's attachment step, re-implemented from a description of its behaviour, not from its source. Along a path
of sugar nodes s_0 … s_(L−1) (positions (x, y, z) in Å):

Phosphates. For each consecutive pair (s_k, s_k+1) the phosphate node p minimising d(s_k, p) + d(s_k+1, p) is
taken if that sum is at most 14 Å and the triangle s_k–p–s_k+1 has no obtuse angle at either sugar; it becomes the
"next P" of s_k and the "prev P" of s_k+1. The prev P of s_0 is the nearest phosphate node within 7 Å of s_0
whose angle p–s_0–s_1 is obtuse (it lies beyond the chain end); the next P of s_(L−1) likewise. So the path
has the P sequence P_0 … P_L with prev P(s_k) = P_k and next P(s_k) = P_(k+1). A node without a prev P inherits
the nearest earlier P_j (j < k) that was assigned, if it lies within 7 Å of the node; a node without a next P the
nearest later one (j > k + 1), likewise; else it has none.

Base-type scores (A, UT, C, G), each 0..3, per sugar node: 3 × the probability vector of its base node (over the A,
UT, C, G and all-base node sets), halved if that node is more than 10 Å away. With the working density given, the
base nodes of all the path's sugars are chosen at once: each sugar–base pair within BASE_LINK_REACH_A (7 Å) scores
the mean of the density (smoothed, σ 1 Å) along the straight segment joining them, less LINK_DISTANCE_WEIGHT (0.02)
per Å of its length, and the pairs are matched one-to-one for the largest total score (a base node serves one sugar
of the path); a sugar left over (more sugars than base nodes in reach) takes its best-scoring base node, one with no
base node in reach the nearest. The glycosidic bond keeps the density between a sugar and its own base high, while a
stacked neighbour's base or a paired strand's lies across a gap, and a stacked neighbour's base is usually its own
sugar's best too. On the traced paths of oracle maps (6v5b, 1EHZ, 4P5J, 3SIU, 1GID, 1ASY, seeds 0–1; the 1,360
clean-map and 1,032 realistic-map sugar nodes within 2 Å of a C4′) the base node picked lay on the nucleotide's own
base for 0.92 of the clean-map sugars and 0.69 of the realistic ones; the rule before, each sugar on its own by the
largest minimum of the density along the segment (to 0.01, ties to the nearest), 0.89 and 0.64 (the nearest base
node: 0.79–0.91 and 0.46–0.66 per entry). Without the density the nearest. The probability vector at a base node is
the four stage-2 base-type probabilities (STAGE2_CLASSES A, UT, C, G) at the grid voxel nearest to it (clipped to
the grid).

This departs from CryoREAD, which adds to the nearest base node's vector those of the bases "of" the node's two
flanking phosphates (each P paired with the next along the path, the pair's base the base node of least summed
distance to both). In a stacked helix that base is often the neighbour's or the paired strand's: on clean oracle
maps of six corpus entries (no base-type confusion, seed 0) the built residues' bases were right at 0.80 of the
matched residues with the phosphate terms and 0.91 without (no-sequence sequence recall 1EHZ 0.70 → 0.82, 6v5b 0.81
→ 0.87, 4P5J 0.75 → 0.83, 3SIU 0.63 → 0.80, 1D66 0.76 → 0.84, 1KF1 0.77 → 0.86).

Choices where the description leaves room (the original's exact behaviour could not be checked):

* "no obtuse angle" is tested at the two sugars only (dot products ≥ 0, a right angle passes). The angle at the
  phosphate is not tested: between real consecutive sugar nodes it is close to 90° (78–98° measured on clustered
  nodes of an ideal A-RNA), so testing it would reject about half of the true phosphates. Only the minimiser is
  tested; when it fails, the pair gets no phosphate (no second candidate is tried).
* the "first" end phosphate is read as the nearest qualifying one (node order carries no meaning here).
* inheritance takes the nearest assigned P in the scan direction (P_j directly assigned, never an inherited one).
* a path of a single node gets no end phosphates (there is no direction to be beyond); its scores are (a) only.
* the pair of an inherited P is the same as the P it was inherited from (after collapsing repeats).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from haruspex_engine.maps import Vec3
from haruspex_engine.nucleic.building.grid_points import nearest_values, trilinear_values
from haruspex_engine.nucleic.building.nodes import BASE_NODE_CLASSES, NodeSet
from haruspex_engine.nucleic.classes import BASE_TYPES, STAGE2_CLASSES

#: Å: largest sugar–phosphate distance (end and inherited phosphates); sums up to twice this for a sugar pair.
PHOSPHATE_REACH_A = 7.0
#: Å: a sugar's base-node vector is halved beyond this distance from the sugar.
BASE_NEAR_A = 10.0
#: Å: the base node of a sugar is looked for this far from it (own bases lie 3.2–5.3 Å away, 10–90 %).
BASE_LINK_REACH_A = 7.0
#: Å: σ of the Gaussian smoothing the working density for the sugar–base link.
LINK_SMOOTHING_A = 1.0
#: Points read along a sugar–base segment, ends included.
LINK_SAMPLES = 11
#: Per Å of a sugar–base segment, subtracted from its mean density in the link score.
LINK_DISTANCE_WEIGHT = 0.02
#: Largest base-type score: 3 × a base node's probability vector (the original's scale: three terms of at most 1).
MAX_BASE_SCORE = 3.0
#: Weight of a far base node's vector.
FAR_WEIGHT = 0.5

_BASE_CHANNELS = [STAGE2_CLASSES.index(name) for name in BASE_TYPES]


@dataclass(frozen=True)
class PathAttachment:
    """Attachments of the L sugar nodes of one path, in path order.

    prev_p, next_p: float64 (L, 3) phosphate positions (x, y, z) in Å, NaN rows where a node has none.
    prev_index, next_index: int (L,) the same as indices into the phosphate nodes, -1 where none.
    base_xyz: float64 (L, 3) position (Å) of each node's base node (see the module docstring), NaN rows when there
    are no base nodes.
    scores: float64 (L, 4) base-type scores in BASE_TYPES order (A, UT, C, G), each in [0, 3].
    """

    prev_p: np.ndarray
    next_p: np.ndarray
    prev_index: np.ndarray
    next_index: np.ndarray
    base_xyz: np.ndarray
    scores: np.ndarray

    def part(self, start: int, stop: int) -> PathAttachment:
        """The attachments of nodes start … stop - 1 of the path."""
        return PathAttachment(self.prev_p[start:stop], self.next_p[start:stop], self.prev_index[start:stop],
                              self.next_index[start:stop], self.base_xyz[start:stop], self.scores[start:stop])


def attach_path(
    sugar_xyz: np.ndarray,
    phosphate_xyz: np.ndarray,
    base_nodes: Mapping[str, NodeSet | np.ndarray],
    stage2: np.ndarray,
    origin: Vec3,
    link_density: np.ndarray | None = None,
) -> PathAttachment:
    """Phosphates, base nodes and base-type scores of one path (see the module docstring).

    sugar_xyz: (L, 3) sugar node positions in path order, Å. phosphate_xyz: (M, 3) all phosphate node positions, Å.
    base_nodes: node sets or (N, 3) positions by class name, e.g. the result of ``cluster_nodes``; only the classes
    in BASE_NODE_CLASSES are used, their nodes pooled. stage2: (8, Z, Y, X) probabilities in STAGE2_CLASSES order on
    the 1 Å grid whose voxel (0, 0, 0) lies at ``origin`` (x, y, z) Å. link_density: (Z, Y, X) the working density
    smoothed by a Gaussian of σ 1 Å (``linking_density``) on the same grid, to pick each sugar's base node by the
    density joining them (None: the nearest base node).
    """
    sugar = np.asarray(sugar_xyz, dtype=np.float64).reshape(-1, 3)
    phosphate = np.asarray(phosphate_xyz, dtype=np.float64).reshape(-1, 3)
    stage2 = np.asarray(stage2)
    if stage2.ndim != 4 or stage2.shape[0] != len(STAGE2_CLASSES):
        raise ValueError(f"expected stage-2 maps (8, Z, Y, X), got shape {stage2.shape}")
    bases = np.concatenate([np.zeros((0, 3))] + [
        np.asarray(nodes.xyz if isinstance(nodes, NodeSet) else nodes, dtype=np.float64).reshape(-1, 3)
        for name, nodes in base_nodes.items() if name in BASE_NODE_CLASSES])

    prev_index, next_index = assign_phosphates(sugar, phosphate)
    length = len(sugar)
    scores = np.zeros((length, len(BASE_TYPES)))
    base_xyz = np.full((length, 3), np.nan)
    if len(bases) and length:
        vectors = base_vectors(bases, stage2, origin)
        tree = cKDTree(bases)
        distance, nearest = tree.query(sugar)
        if link_density is not None:
            nearest = _linked_bases(sugar, bases, tree, nearest, link_density, origin)
            distance = np.linalg.norm(bases[nearest] - sugar, axis=1)
        base_xyz = bases[nearest]
        scores = MAX_BASE_SCORE * vectors[nearest] * np.where(distance > BASE_NEAR_A, FAR_WEIGHT, 1.0)[:, None]
    return PathAttachment(
        prev_p=_positions(phosphate, prev_index),
        next_p=_positions(phosphate, next_index),
        prev_index=prev_index,
        next_index=next_index,
        base_xyz=base_xyz,
        scores=scores,
    )


def linking_density(density: np.ndarray) -> np.ndarray:
    """The working density (Z, Y, X) smoothed as ``attach_path`` reads it to link sugars to bases."""
    return gaussian_filter(np.asarray(density, dtype=np.float32), LINK_SMOOTHING_A)


def _linked_bases(sugar: np.ndarray, bases: np.ndarray, tree: cKDTree, nearest: np.ndarray,
                  link_density: np.ndarray, origin: Vec3) -> np.ndarray:
    """Per sugar (L, 3) of a path, the index of its base node by the one-to-one matching of the module docstring;
    ``nearest`` where no base node is in reach."""
    reach = tree.query_ball_point(sugar, BASE_LINK_REACH_A)
    columns = sorted({int(b) for candidates in reach for b in candidates})
    if not columns:
        return nearest.copy()
    column_of = {b: j for j, b in enumerate(columns)}
    score = np.full((len(sugar), len(columns)), -np.inf)
    fractions = np.linspace(0.0, 1.0, LINK_SAMPLES)[None, :, None]
    for k, candidates in enumerate(reach):
        if candidates:
            candidates = np.asarray(candidates, dtype=np.intp)
            segments = sugar[k] * (1.0 - fractions) + bases[candidates][:, None, :] * fractions
            along = trilinear_values(link_density, segments, origin).mean(axis=1)
            length = np.linalg.norm(bases[candidates] - sugar[k], axis=1)
            score[k, [column_of[int(b)] for b in candidates]] = along - LINK_DISTANCE_WEIGHT * length
    columns = np.asarray(columns)
    finite = np.isfinite(score)
    chosen = np.where(finite.any(axis=1), columns[np.argmax(score, axis=1)], nearest)
    rows, cols = linear_sum_assignment(np.where(finite, -score, 1e9))  # out of reach: never chosen when avoidable
    paired = finite[rows, cols]
    chosen[rows[paired]] = columns[cols[paired]]
    return chosen


def assign_phosphates(sugar_xyz: np.ndarray, phosphate_xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(prev_index, next_index): int (L,) phosphate node indices of each sugar node of a path, -1 where none.

    sugar_xyz: (L, 3) in path order, Å; phosphate_xyz: (M, 3), Å. Rules: module docstring.
    """
    sugar = np.asarray(sugar_xyz, dtype=np.float64).reshape(-1, 3)
    phosphate = np.asarray(phosphate_xyz, dtype=np.float64).reshape(-1, 3)
    length = len(sugar)
    chain = np.full(length + 1, -1, dtype=np.intp)  # P_0 … P_L
    if length >= 2 and len(phosphate):
        tree = cKDTree(phosphate)
        first, second = sugar[:-1], sugar[1:]
        best, total = _min_sum_partner(first, second, tree, phosphate, np.full(length - 1, PHOSPHATE_REACH_A))
        p = phosphate[np.maximum(best, 0)]
        acute = (np.einsum("ij,ij->i", second - first, p - first) >= 0) & \
                (np.einsum("ij,ij->i", first - second, p - second) >= 0)
        chain[1:-1] = np.where((best >= 0) & (total <= 2 * PHOSPHATE_REACH_A) & acute, best, -1)
        chain[0] = _end_phosphate(sugar[0], sugar[1], tree, phosphate)
        chain[-1] = _end_phosphate(sugar[-1], sugar[-2], tree, phosphate)
    prev_index = _inherit(chain[:-1], sugar, phosphate)
    next_index = _inherit(chain[1:][::-1], sugar[::-1], phosphate)[::-1]
    return prev_index, next_index


def base_vectors(xyz: np.ndarray, stage2: np.ndarray, origin: Vec3) -> np.ndarray:
    """float64 (N, 4) stage-2 base-type probabilities (A, UT, C, G) at the voxel nearest to each of the (N, 3)
    positions (x, y, z) Å; stage2 (8, Z, Y, X) lies on the 1 Å grid with voxel (0, 0, 0) at ``origin``. Positions
    off the grid read the nearest voxel on its border."""
    values = nearest_values(stage2, xyz, origin, off_grid="border")[_BASE_CHANNELS]  # (4, N), no map copied
    return np.asarray(values, dtype=np.float64).T


def _min_sum_partner(a: np.ndarray, b: np.ndarray, tree: cKDTree, points: np.ndarray,
                     radius: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row pair (a_i, b_i) of (n, 3) positions, the point minimising d(a_i, x) + d(b_i, x) among the points
    of ``tree`` within radius_i Å of the midpoint; returns (index (n,), summed distance (n,)), -1 and inf if none.

    A point with summed distance S lies within S / 2 of the midpoint, so a radius of S_max / 2 finds the best
    point whenever its sum is at most S_max.
    """
    index = np.full(len(a), -1, dtype=np.intp)
    total = np.full(len(a), np.inf)
    neighbours = tree.query_ball_point((a + b) / 2, radius)
    counts = np.array([len(n) for n in neighbours], dtype=np.intp)
    if counts.sum() == 0:
        return index, total
    row = np.repeat(np.arange(len(a)), counts)
    candidate = np.concatenate([np.asarray(n, dtype=np.intp) for n in neighbours])
    sums = np.linalg.norm(points[candidate] - a[row], axis=1) + np.linalg.norm(points[candidate] - b[row], axis=1)
    order = np.lexsort((candidate, sums, row))  # per row: smallest sum first, ties to the lower index
    first = order[np.r_[True, row[order][1:] != row[order][:-1]]]
    index[row[first]] = candidate[first]
    total[row[first]] = sums[first]
    return index, total


def _end_phosphate(end: np.ndarray, neighbour: np.ndarray, tree: cKDTree, phosphate: np.ndarray) -> int:
    """The nearest phosphate node within PHOSPHATE_REACH_A of ``end`` with an obtuse angle p–end–neighbour, or -1."""
    candidate = np.asarray(tree.query_ball_point(end, PHOSPHATE_REACH_A), dtype=np.intp)
    beyond = candidate[(phosphate[candidate] - end) @ (neighbour - end) < 0]
    if beyond.size == 0:
        return -1
    distance = np.linalg.norm(phosphate[beyond] - end, axis=1)
    return int(beyond[np.lexsort((beyond, distance))[0]])


def _inherit(assigned: np.ndarray, sugar: np.ndarray, phosphate: np.ndarray) -> np.ndarray:
    """Fill the -1 entries of ``assigned`` (one P index per node, in scan order) with the last earlier assigned
    entry when that phosphate lies within PHOSPHATE_REACH_A of the node."""
    if not (assigned >= 0).any():  # also: no phosphate nodes at all
        return assigned.copy()
    last = np.maximum.accumulate(np.where(assigned >= 0, np.arange(len(assigned)), -1))
    source = np.where(last >= 0, assigned[np.maximum(last, 0)], -1)
    close = np.linalg.norm(phosphate[np.maximum(source, 0)] - sugar, axis=1) <= PHOSPHATE_REACH_A
    return np.where((assigned >= 0) | ((source >= 0) & close), source, -1)


def _positions(phosphate: np.ndarray, index: np.ndarray) -> np.ndarray:
    """(L, 3) positions of the phosphate nodes ``index`` (L,), NaN rows for -1."""
    xyz = np.full((len(index), 3), np.nan)
    xyz[index >= 0] = phosphate[index[index >= 0]]
    return xyz
