"""Node clustering: CryoREAD-style mean shift and merge of the stage-2 probability maps into nodes ("LDPs").

Re-implemented from a description of the published behaviour, not from its source. For each clustered class:

1. :func:`class_weights` thresholds the stage-2 probability map of the class (rules in its docstring);
2. :func:`mean_shift` moves a point from every non-zero voxel uphill on the kernel-smoothed map until it stops;
3. :func:`merge_points` drops weak points and merges points closer than 2 Å into denser ones; the roots are the nodes.

The builder then moves the nodes onto the working density (:func:`moved_onto_density`, an addition to the method).

Everything works on the 1 Å working grid, so distances in voxels are distances in Å. Arrays and array indices
are (z, y, x); node coordinates are model coordinates (x, y, z) in Å: origin + (k, j, i) for array index (i, j, k).

Choices where the description leaves room (the original's exact behaviour could not be checked):

* mean shift: the window is centred on the point's position rounded down (coordinates are never negative), it
  is a box (no spherical cut-off), voxels outside the map count as empty, and the point density is the weight sum
  of the last iteration, i.e. taken around the position *before* the last (sub-tolerance) move. A point stops
  after ``max_iterations`` moves at the latest, and at once where its window holds no weight.
* merge: every pair of points that passed the filter and lie closer than the merge distance counts, whether or
  not one of them was already merged (so the order of the scan decides nothing but ties). The nodes are exactly
  the points with no denser point closer than the merge distance; "denser" means a larger density, or an equal
  density and an earlier place in the scan (voxel) order. Each other point is merged into its nearest denser
  point and follows those pointers to a node.
* node densities are min-max normalised over the nodes (not over all points), then 0.01 is added; when all
  nodes have the same density (e.g. a single node) every node gets 1.01.
* base-type argmax ties go to the first type in A, UT, C, G order.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import gemmi
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import gaussian_filter
from scipy.spatial import cKDTree

from haruspex_engine.atomic_files import atomic_path
from haruspex_engine.maps import Vec3
from haruspex_engine.nucleic.classes import BASE_TYPES, STAGE2_CLASSES

#: Classes clustered into nodes, in the order :func:`cluster_nodes` returns them (protein is not clustered).
NODE_CLASSES = ("sugar", "phosphate", "A", "UT", "C", "G", "base")
#: Node classes whose nodes count as base nodes.
BASE_NODE_CLASSES = ("A", "UT", "C", "G", "base")
#: Probability at or below which a voxel is emptied, for the classes with their own threshold.
CLASS_THRESHOLDS = {"sugar": 0.1, "phosphate": 0.1, "base": 0.25}
#: Base types: voxels whose "base" probability is below this are emptied.
BASE_REGION_MIN = 0.25
#: Base types: a voxel where another type wins the argmax keeps type k only with probability at least this.
BASE_TYPE_CONFIDENT = 0.5
#: Every class: probability at or below which a voxel is emptied.
PROBABILITY_FLOOR = 0.01
#: Å: the thresholds are tested on the probabilities smoothed by a Gaussian of this standard deviation.
DENOISE_SIGMA_A = 1.5

BANDWIDTH = 3.0  # Å; kernel exp(-1.5 d² / (bandwidth / 2)²), window ± 2 bandwidth
TOLERANCE = 1e-3  # Å²; mean shift stops when the squared move is below this
MAX_ITERATIONS = 1000
#: Voxels: half-width of the mean-shift window in the build. The original's window, ± 2 bandwidth (± 6), only adds
#: voxels more than 4 Å from the point, where the kernel is below 2.3e-5 of its peak: on realistic oracle maps of
#: 3SIU and clean ones of 6v5b, 99 % of the points end within 0.001 Å of where ± 6 takes them (weight sums within
#: 0.6 %), in 0.55 of the time. ``mean_shift`` itself keeps the original window unless told otherwise.
WINDOW_REACH = 4
MERGE_DISTANCE = 2.0  # Å
#: Å: mean-shift bandwidth of :func:`moved_onto_density` (kernel σ 0.58 Å).
DENSITY_MODE_BANDWIDTH = 2.0
FILTER_FRACTION = 0.05
DENSITY_OFFSET = 0.01
#: Points moved together in one mean-shift step (about 25 kB each, for the default bandwidth).
CHUNK = 256
#: Voxels per axis of the blocks whose heaviest point leads when mean-shift paths are shared.
SHARE_BLOCK = 2

_RESIDUE_NAMES = {"sugar": "SUG", "phosphate": "PHO", "A": "A", "UT": "U", "C": "C", "G": "G", "base": "BAS"}
_ELEMENTS = {"sugar": "C", "phosphate": "P"}  # base classes: N


@dataclass(frozen=True)
class NodeSet:
    """The nodes of one class.

    xyz: float64 (N, 3) node positions (x, y, z) in Å, model coordinates. density: float64 (N,) in [0.01, 1.01]
    (normalised mean-shift density). voxels: int (V, 3) (z, y, x) indices of the voxels the mean shift started
    from (the non-zero voxels of the thresholded map), in C (voxel) order. members: int (V,) the node each voxel
    ended in, -1 where its point was filtered out. shape: (z, y, x) shape of the grid.
    """

    name: str
    xyz: np.ndarray
    density: np.ndarray
    voxels: np.ndarray
    members: np.ndarray
    shape: tuple[int, int, int]

    def __len__(self) -> int:
        return len(self.xyz)

    def labels(self) -> np.ndarray:
        """int32 (Z, Y, X) volume holding each voxel's node index, -1 where a voxel belongs to no node."""
        volume = np.full(self.shape, -1, dtype=np.int32)
        volume[tuple(self.voxels.T)] = self.members
        return volume

    def regrouped(self, owner: np.ndarray) -> NodeSet:
        """The node set after dropping and merging nodes. owner: int (N,), per node: its own index to keep it, the
        index of a kept node to merge it into (its voxels join that node, whose position stays), or -1 to drop it
        (its voxels belong to no node). The kept nodes keep their order; their densities are min-max normalised
        again over the kept nodes, as over all nodes in :func:`nodes_from_weights` (an affine map of the same
        mean-shift densities)."""
        owner = np.asarray(owner, dtype=np.intp)
        if owner.shape != (len(self),):
            raise ValueError(f"expected one owner per node ({len(self)}), got shape {owner.shape}")
        keep = owner == np.arange(len(self))
        if not np.all(keep[owner[owner >= 0]]):
            raise ValueError("a node is merged into a node that is not kept")
        renumber = np.where(keep, np.cumsum(keep) - 1, -1)
        target = np.where(owner >= 0, renumber[np.maximum(owner, 0)], -1)
        members = np.full_like(self.members, -1)
        owned = self.members >= 0
        members[owned] = target[self.members[owned]]
        return NodeSet(self.name, self.xyz[keep], normalised_densities(self.density[keep] - DENSITY_OFFSET),
                       self.voxels, members, self.shape)

    def masses(self, weights: np.ndarray) -> np.ndarray:
        """float64 (N,): each node's mass, the summed ``weights`` (Z, Y, X) over the voxels that ended in it."""
        assigned = self.members >= 0
        values = np.asarray(weights, dtype=np.float64)[tuple(self.voxels[assigned].T)]
        return np.bincount(self.members[assigned], weights=values, minlength=len(self))


def class_weights(stage2: np.ndarray, density: np.ndarray,
                  denoise_sigma_A: float = DENOISE_SIGMA_A) -> dict[str, np.ndarray]:
    """Thresholded probability maps (Z, Y, X), one per class of NODE_CLASSES, with the stage-2 dtype.

    stage2: (8, Z, Y, X) probabilities in STAGE2_CLASSES order; density: (Z, Y, X) normalised working density.
    sugar and phosphate: probability <= 0.1 -> 0; base: <= 0.25 -> 0; base type k in A, UT, C, G: 0 where the
    "base" probability is below 0.25, and 0 where another type has the largest of the four base-type
    probabilities while k's is below 0.5. Then, for every class, probability <= 0.01 -> 0 and 0 where the
    density is <= 0.

    denoise_sigma_A: the tests above are made on the probabilities smoothed by a Gaussian of this standard
    deviation (Å), while the voxels that pass keep their own probability as weight. Voxel-level noise then no
    longer seeds thousands of spurious nodes (at noise σ 0.15 a quarter of all voxels pass the 0.1 threshold),
    and the nodes stay where the unsmoothed probability peaks. 0 tests the raw probabilities, as the original.
    An addition to the original method. Noise correlated over 1–2 Å survives it (realistic oracle maps of 6v5b,
    1EHZ and 3SIU: 4,930 sugar nodes for 210 nucleotides); ``node_evidence`` removes those nodes, and after it
    σ 1.0, 1.5 and 2.0 Å keep the same nucleotides (one-to-one sugar node precision 0.72, 0.74, 0.73; C4′ atoms
    with a node 87, 87, 86 %; clean maps 0.93 and 97.5 % for all three) from 7,146, 4,930 and 3,178 nodes.
    """
    stage2 = np.asarray(stage2)
    if stage2.ndim != 4 or stage2.shape[0] != len(STAGE2_CLASSES) or stage2.shape[1:] != np.shape(density):
        raise ValueError(f"expected stage-2 maps (8,) + {np.shape(density)}, got {stage2.shape}")
    raw = {name: stage2[STAGE2_CLASSES.index(name)] for name in NODE_CLASSES}
    tested = raw if denoise_sigma_A <= 0 else {
        name: gaussian_filter(channel, denoise_sigma_A, mode="constant") for name, channel in raw.items()}
    empty = np.asarray(density) <= 0
    winner = np.argmax(np.stack([tested[k] for k in BASE_TYPES]), axis=0)
    outside_base = tested["base"] < BASE_REGION_MIN
    weights = {}
    for name in NODE_CLASSES:
        prob = tested[name]
        if name in CLASS_THRESHOLDS:
            drop = prob <= CLASS_THRESHOLDS[name]
        else:
            drop = outside_base | ((winner != BASE_TYPES.index(name)) & (prob < BASE_TYPE_CONFIDENT))
        drop |= (prob <= PROBABILITY_FLOOR) | empty | (raw[name] <= 0)
        weights[name] = np.where(drop, 0, raw[name]).astype(stage2.dtype, copy=False)
    return weights


def mean_shift(
    weights: np.ndarray,
    bandwidth: float = BANDWIDTH,
    tolerance: float = TOLERANCE,
    max_iterations: int = MAX_ITERATIONS,
    share_paths: bool = False,
    window_reach: int | None = None,
    starts: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean shift from every non-zero voxel of ``weights`` (Z, Y, X) on a 1 Å grid.

    One point starts at each voxel with weight > 0, in ``np.argwhere`` (C, voxel) order; or, given ``starts``
    (P, 3) (z, y, x) fractional indices inside the bounding box of the non-zero voxels, one at each of those. A step
    moves a point at p to the weighted centroid of the voxels v in the box floor(p) ± floor(2 bandwidth) (per
    axis), each weighing weights[v] * exp(-1.5 |v - p|² / (bandwidth / 2)²); a point stops when its squared move
    falls below ``tolerance`` (Å²); window_reach: a box of ± this many voxels instead (see WINDOW_REACH). Returns
    (points, density): float64 (V, 3) final positions as (z, y, x) fractional
    indices (Å from voxel (0, 0, 0)) and float64 (V,) the weight sum of each point's last step.

    share_paths: first move only the heaviest point of every SHARE_BLOCK³ block of voxels (the leaders), marking
    each voxel their paths cross; every other point then moves until it stands in a marked voxel and ends where
    that voxel's leader ended (with its density), or stops by itself. Points in one voxel follow nearly the same
    path, so the points (and the nodes merged from them) stay the same up to a point's border cases, at a fraction
    of the steps: most points stand in a marked voxel from the start.

    All moving points step together, CHUNK at a time: each gathers its window (13³ for the default bandwidth, 9³
    at WINDOW_REACH) and contracts it with the kernel, which is separable, one axis after the other.
    """
    weights = np.asarray(weights)
    if weights.ndim != 3:
        raise ValueError(f"expected a (Z, Y, X) map, got shape {weights.shape}")
    if starts is not None and share_paths:
        raise ValueError("share_paths starts a point at every non-zero voxel; it cannot take starts")
    nonzero = np.argwhere(weights > 0)
    points = (nonzero if starts is None else np.asarray(starts).reshape(-1, 3)).astype(np.float64)
    density = np.zeros(len(points))
    if len(nonzero) == 0 or len(points) == 0:
        return points, density
    reach = int(2 * bandwidth) if window_reach is None else window_reach
    size = 2 * reach + 1
    # Points never leave the bounding box of the non-zero voxels, so only that box (zero-padded) is kept:
    # windows[c - low] is the window centred on voxel c.
    low, high = nonzero.min(axis=0), nonzero.max(axis=0)
    if starts is not None and (np.any(points < low) or np.any(points >= high + 1)):
        raise ValueError("every start must lie inside the bounding box of the non-zero voxels")
    box = weights[tuple(slice(a, b + 1) for a, b in zip(low, high))]
    windows = sliding_window_view(np.pad(box.astype(np.float64), reach), (size,) * 3)
    offsets = np.arange(-reach, reach + 1, dtype=np.float64)
    sharpness = 1.5 / (bandwidth / 2) ** 2

    def move(moving: np.ndarray, after_step=None) -> None:
        for _ in range(max_iterations):
            if moving.size == 0:
                return
            stopped = [part[_step(points, density, part, windows, low, offsets, sharpness, tolerance)]
                       for part in np.array_split(moving, -(-moving.size // CHUNK))]
            done = np.concatenate(stopped)
            if after_step is not None:
                done = np.union1d(done, after_step(moving))
            moving = np.setdiff1d(moving, done, assume_unique=True)

    if not share_paths:
        move(np.arange(len(points)))
        return points, density
    leaders = _block_leaders(nonzero, box[tuple((nonzero - low).T)])
    leader_of = np.full(box.shape, -1, dtype=np.intp)  # box voxel -> leader whose path crossed it first

    def mark(moving: np.ndarray) -> np.ndarray:
        voxel = tuple((np.floor(points[moving]).astype(np.intp) - low).T)
        fresh = leader_of[voxel] < 0
        leader_of[tuple(v[fresh] for v in voxel)] = moving[fresh]
        return np.zeros(0, dtype=np.intp)

    mark(leaders)
    move(leaders, mark)
    followers = np.setdiff1d(np.arange(len(points)), leaders, assume_unique=True)

    def adopt(moving: np.ndarray) -> np.ndarray:
        leader = leader_of[tuple((np.floor(points[moving]).astype(np.intp) - low).T)]
        arrived = leader >= 0
        points[moving[arrived]] = points[leader[arrived]]
        density[moving[arrived]] = density[leader[arrived]]
        return moving[arrived]

    move(np.setdiff1d(followers, adopt(followers), assume_unique=True), adopt)
    return points, density


def _block_leaders(voxels: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Indices (increasing) of the heaviest of ``voxels`` (V, 3) in every occupied SHARE_BLOCK³ block, the first
    in scan order on ties; ``values`` (V,) their weights."""
    cells = voxels // SHARE_BLOCK
    cell_id = np.ravel_multi_index(tuple(cells.T), tuple(cells.max(axis=0) + 1))
    order = np.lexsort((np.arange(len(voxels)), -values, cell_id))
    first = np.ones(len(order), dtype=bool)
    first[1:] = cell_id[order][1:] != cell_id[order][:-1]
    return np.sort(order[first])


def _step(points: np.ndarray, density: np.ndarray, part: np.ndarray, windows: np.ndarray, low: np.ndarray,
          offsets: np.ndarray, sharpness: float, tolerance: float) -> np.ndarray:
    """One mean-shift step for points[part], in place; returns the mask (over part) of the points that stopped.

    windows[c - low]: the weights in the window centred on voxel c; offsets: window offsets in voxels (= Å).
    """
    position = points[part]
    corner = np.floor(position).astype(np.intp)
    delta = offsets - (position - corner)[:, :, None]  # (n, axis z/y/x, offset): voxel minus point, Å
    kernel = np.exp(-sharpness * delta * delta)
    patch = windows[tuple((corner - low).T)]  # (n, z, y, x) weights
    n, size = patch.shape[:2]
    # Contract x, then y, then z, each with [kernel, kernel * delta] along that axis: sums[:, a, b, c] is the sum of
    # weight * kernel * dx^a * dy^b * dz^c over the window.
    along_z, along_y, along_x = np.stack([kernel, kernel * delta], axis=-1).transpose(1, 0, 2, 3).copy()
    sums = patch.reshape(n, size * size, size) @ along_x  # (n, z·y, a)
    sums = sums.reshape(n, size, size, 2).transpose(0, 1, 3, 2).reshape(n, 2 * size, size) @ along_y
    sums = (sums.reshape(n, size, 4).transpose(0, 2, 1) @ along_z).reshape(n, 2, 2, 2)
    total = sums[:, 0, 0, 0]
    moments = np.stack([sums[:, 0, 0, 1], sums[:, 0, 1, 0], sums[:, 1, 0, 0]], axis=1)  # z, y, x
    empty = total <= 0
    shift = np.divide(moments, total[:, None], out=np.zeros_like(moments), where=~empty[:, None])
    points[part] = position + shift
    density[part] = total
    return empty | (np.einsum("ni,ni->n", shift, shift) < tolerance)


def merge_points(
    points: np.ndarray,
    density: np.ndarray,
    merge_distance: float = MERGE_DISTANCE,
    filter_fraction: float = FILTER_FRACTION,
    low: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Filter and merge mean-shift points (in scan order) into nodes.

    points: (P, 3) positions in Å (any axis order); density: (P,). A point is dropped when
    (density - low) / (max - low) < filter_fraction, low the smallest density (or ``low`` when given; nothing is
    dropped when max ≤ low). Of the
    others, any point with a denser point (see the module docstring) closer than ``merge_distance`` Å is merged
    into the nearest such point; the pointers are followed to the end. Returns (roots, assignment): the indices
    of the points that became nodes, increasing, and int (P,) each point's node (index into roots), -1 for a
    dropped point.
    """
    points = np.asarray(points, dtype=np.float64)
    density = np.asarray(density, dtype=np.float64)
    assignment = np.full(len(points), -1, dtype=np.intp)
    if len(points) == 0:
        return np.zeros(0, dtype=np.intp), assignment
    low, high = density.min() if low is None else low, density.max()
    kept = np.flatnonzero((density - low) / (high - low) >= filter_fraction) if high > low else np.arange(len(points))
    order = np.lexsort((kept, -density[kept]))  # densest first, ties: earlier scan position first
    rank = np.empty(len(kept) + 1, dtype=np.intp)
    rank[order] = np.arange(len(kept))
    rank[-1] = len(kept)  # rank of the "missing neighbour" index returned by cKDTree.query
    parent = _nearest_denser(points[kept], rank, merge_distance)
    while True:
        grand = parent[parent]
        if np.array_equal(grand, parent):
            break
        parent = grand
    is_root = parent == np.arange(len(kept))
    node_of = np.cumsum(is_root) - 1
    assignment[kept] = node_of[parent]
    return kept[is_root], assignment


def _nearest_denser(xyz: np.ndarray, rank: np.ndarray, radius: float) -> np.ndarray:
    """For each point, the index of its nearest point of lower rank closer than ``radius``, else its own index.

    rank: (len(xyz) + 1,) distinct ranks (lower = denser) with a largest last entry for absent neighbours.
    Neighbours come from cKDTree in order of distance, 16 first, and 4 times more for the points whose neighbours
    so far were all within ``radius`` and none denser.
    """
    count = len(xyz)
    tree = cKDTree(xyz)
    parent = np.arange(count)
    todo = parent.copy()
    k = 16
    while todo.size:
        k = min(k, count)
        distance, neighbour = tree.query(xyz[todo], k=k, distance_upper_bound=radius)
        distance, neighbour = distance.reshape(len(todo), k), neighbour.reshape(len(todo), k)
        close = distance < radius
        denser = close & (rank[neighbour] < rank[todo][:, None])
        found = denser.any(axis=1)
        parent[todo[found]] = neighbour[found, denser[found].argmax(axis=1)]
        seen_all = ~close[:, -1] | (k == count)
        todo = todo[~found & ~seen_all]
        k *= 4
    return parent


def nodes_from_weights(
    name: str,
    weights: np.ndarray,
    origin: Vec3,
    bandwidth: float = BANDWIDTH,
    merge_distance: float = MERGE_DISTANCE,
    filter_fraction: float = FILTER_FRACTION,
    region: np.ndarray | None = None,
) -> NodeSet:
    """Nodes of one thresholded map (Z, Y, X) on a 1 Å grid whose voxel (0, 0, 0) lies at ``origin`` (x, y, z) Å.

    Every mode of the map is a node, the faint ones included: which nodes the detection as a whole supports is
    decided afterwards (``node_evidence``). The mean shift shares paths and uses the WINDOW_REACH window.
    region: bool (Z, Y, X), cluster only the voxels there (None: all). The merge filter then scales from 0 rather
    than from the smallest point density: outside the region lie the faint points that bring the smallest density
    near 0, and without them the smallest is often a real node's, which the min-max filter would drop."""
    if region is not None:
        weights = np.where(region, weights, 0)
    voxels = np.argwhere(weights > 0)
    points, point_density = mean_shift(weights, bandwidth, share_paths=True, window_reach=WINDOW_REACH)
    roots, members = merge_points(points, point_density, merge_distance, filter_fraction,
                                  None if region is None else 0.0)
    xyz = points[roots][:, ::-1] + np.asarray(origin, dtype=np.float64)
    return NodeSet(name, xyz.reshape(-1, 3), normalised_densities(point_density[roots]), voxels, members,
                   tuple(weights.shape))


def moved_onto_density(nodes: NodeSet, weights: np.ndarray, density: np.ndarray, origin: Vec3,
                       bandwidth: float = DENSITY_MODE_BANDWIDTH) -> NodeSet:
    """The nodes, each moved by mean shift from where it stands to the nearest mode of weights × density.

    weights: the class's thresholded map (``class_weights``), density: the normalised working density, both
    (Z, Y, X) on the 1 Å grid whose voxel (0, 0, 0) lies at ``origin`` (x, y, z) Å. An addition to the original
    method. The detector's errors are smooth, so a class map's mode sits off its atoms by noise correlated over
    1–2 Å; the density's errors are independent of the detector's, and the product peaks where both agree. Distance
    from each node to its atoms (P atom; sugar-atom and base-atom centroid), median (90th percentile), Å, before →
    after, ``build.find_nodes``'s nodes of seed 0:

    * phosphate: realistic oracle maps 6v5b 1.17 (1.92) → 0.71 (1.81), 1GID 1.06 (2.03) → 0.38 (1.32); clean
      6v5b 0.36 (0.64) → 0.31 (0.60); the demo detector's held-out maps 6v5b 0.81 (1.29) → 0.50 (0.87), 1EHZ 0.65
      (1.00) → 0.30 (0.70);
    * base (every base class): realistic 1GID 1.36 (2.22) → 0.86 (1.53), 6v5b 1.27 (2.20) → 1.04 (1.94); clean
      6v5b 1.01 (1.51) → 0.88 (1.34); demo 6v5b 2.30 (2.95) → 0.90 (2.73);
    * sugar (anchored, ``sugar_anchors``): realistic 1GID 1.15 (2.04) → 0.92 (1.66), 6v5b 1.23 (2.14) → 1.12
      (1.82); clean 6v5b 0.89 (1.26) → 0.88 (1.22); demo 6v5b 0.99 (1.80) → 0.84 (1.35).

    Bandwidth 2.5 or 3 Å moved the realistic and demo phosphates as far, but the clean ones off their P (0.40 and
    0.53 Å). Densities, voxels and members stay the node's; a node outside the box of the non-zero product stays
    where it is.
    """
    product = np.asarray(weights) * np.clip(density, 0, None)
    nonzero = np.argwhere(product > 0)
    start = (nodes.xyz - np.asarray(origin, dtype=np.float64))[:, ::-1]
    if len(nodes) == 0 or len(nonzero) == 0:
        return nodes
    inside = np.all((start >= nonzero.min(axis=0)) & (start < nonzero.max(axis=0) + 1), axis=1)
    points = start.copy()
    points[inside], _ = mean_shift(product, bandwidth, window_reach=WINDOW_REACH, starts=start[inside])
    return dataclasses.replace(nodes, xyz=points[:, ::-1] + np.asarray(origin, dtype=np.float64))


def normalised_densities(values: np.ndarray) -> np.ndarray:
    """Node densities (N,) min-max normalised to [0, 1] plus DENSITY_OFFSET; all 1 + DENSITY_OFFSET when they are
    all equal (e.g. a single node)."""
    spread = np.ptp(values) if len(values) else 0.0
    scaled = (values - values.min()) / spread if spread > 0 else np.ones(len(values))
    return scaled + DENSITY_OFFSET


def cluster_nodes(
    stage2: np.ndarray,
    density: np.ndarray,
    origin: Vec3,
    bandwidth: float = BANDWIDTH,
    merge_distance: float = MERGE_DISTANCE,
    filter_fraction: float = FILTER_FRACTION,
) -> dict[str, NodeSet]:
    """Nodes of every class in NODE_CLASSES from stage-2 maps (8, Z, Y, X) and the working density (Z, Y, X).

    Both lie on the working 1 Å grid, whose voxel (0, 0, 0) is at ``origin`` (x, y, z) Å
    (e.g. ``Detection.stage2``, ``WorkingMap.data`` and ``WorkingMap.origin``).
    """
    return {
        name: nodes_from_weights(name, weights, origin, bandwidth, merge_distance, filter_fraction)
        for name, weights in class_weights(stage2, density).items()
    }


def write_nodes(path: str | os.PathLike, node_sets: list[NodeSet]) -> None:
    """Write nodes as pseudo-atoms for inspection, atomically: mmCIF, or PDB when ``path`` ends in .pdb.

    One chain per class (A, B, ... in the given order), one residue per node (SUG, PHO, A, U, C, G or BAS) with a
    single atom at the node (element C, P or N), whose B-factor is the node density.
    """
    path = Path(path)
    model = gemmi.Model("1")
    for chain_index, nodes in enumerate(node_sets):
        chain = gemmi.Chain(chr(ord("A") + chain_index))
        for number, (xyz, value) in enumerate(zip(nodes.xyz, nodes.density), start=1):
            residue = gemmi.Residue()
            residue.name = _RESIDUE_NAMES[nodes.name]
            residue.seqid = gemmi.SeqId(number, " ")
            atom = gemmi.Atom()
            atom.name = _ELEMENTS.get(nodes.name, "N")
            atom.element = gemmi.Element(atom.name)
            atom.pos = gemmi.Position(*xyz)
            atom.occ = 1.0
            atom.b_iso = float(value)
            residue.add_atom(atom)
            chain.add_residue(residue)
        model.add_chain(chain)
    structure = gemmi.Structure()
    structure.name = path.stem
    structure.add_model(model)
    with atomic_path(path) as partial:
        if path.suffix.lower() == ".pdb":
            structure.write_pdb(str(partial), gemmi.PdbWriteOptions(minimal=True, cryst1_record=False))
        else:
            structure.make_mmcif_document().write_file(str(partial))
