"""The sugar graph that backbone tracing walks: sugar nodes joined by plausible backbone steps, with costs.

Built as CryoREAD describes (re-implemented from that description):
1. initial edges: two sugar nodes are joined when any of their member voxels are 26-neighbours, and only when the
   nodes are less than ``max_edge_A`` (10 Å) apart;
2. pruning: an edge is dropped when any of 6 points evenly spaced along it (ends included) has base probability
   ≥ 0.5 (a step that would cross a base is not a backbone step) — unless a phosphate node bridges it (step 5's
   rule, over all pairs of nodes closer than 10 Å): the two sugars share a phosphate, and a backbone step runs
   through it, not along the straight line, which can graze a base of the step's own nucleotides or of a
   neighbour. An addition to CryoREAD's method: without it, 15 of the 298 strand steps of 1GID's clean map
   (seed 0; 83 on realistic maps of 1GID 6POM 1EHZ 1ASY) had no edge at all, and the routing detoured round them.
   Oracle maps, 10 corpus entries × seeds 0–2 (``bench_na_corpus.py``), without → with the exemption: clean
   coverage 0.970 → 0.981, register recall 0.839 → 0.866, reversed residues 2.3 → 1.8 %; realistic coverage
   0.848 → 0.859, register recall 0.178 → 0.263, reversed 7.3 → 3.9 %; the 16S rRNA 3JBV_A (clean, seed 0)
   coverage 0.960 → 0.978, register recall 0.733 → 0.801, reversed 4.8 → 3.7 % (BENCHMARKS.md, 2026-12-07);
3. extension: every pair of nodes closer than 10 Å and not yet joined gets an edge when all 6 points have sugar
   probability > 0.1 and base probability < 0.5 (or a phosphate bridges it, as in 2); its length counts three
   times (penalty for not being seen directly);
4. cost: length / MinDens + 1, where MinDens = the smallest smoothed sugar probability at 11 points evenly spaced
   along the edge (its end nodes included), relative to the largest at any node, floored at 0.05. (CryoREAD takes
   min(min-max normalised density of the edge's first node, smoothed sugar along it) floored at 1e-4: the faintest
   node's density is 0.01 by construction, so every edge from it cost about 100 times its length, and the routing
   went round it by swapping neighbours: 4P5J's perfect map traced A8→A10→A9.)
5. phosphate bridge (an addition to CryoREAD's method, applied when the phosphate nodes are given): the cost of an
   edge that no phosphate node bridges is multiplied by UNBRIDGED_PENALTY. Consecutive sugars of a strand share
   the phosphate between them; an edge between sugars of different strands (across a base pair, a groove or a
   tertiary contact: the routing's way onto the paired strand) usually has none. A phosphate p bridges (a, b)
   when d(a, p) + d(p, b) ≤ BRIDGE_SUM_A and the angles p–a–b and p–b–a are not obtuse. Measured on oracle maps
   of 4P5J 1EHZ 6V5B 1BNA 1GID: bridged are 100 % of the strand edges on perfect maps (95 % with noise, shapes
   and density noise) and 26 % (19 %) of the others. The routing otherwise prefers dense cross edges to faint
   strand steps: traced steps between different strands on perfect maps, without → with the penalty, 9 → 4 of
   82 (4P5J), 4 → 0 of 75 (1EHZ), 2 → 0 of 53 (3SIU).
   A phosphate links two sugars only, so it bridges only the edges whose sum lies within BRIDGE_MARGIN_A of the
   smallest sum it has over all edges it could bridge. Without that, the phosphate of a strand step also bridged
   edges from either of its sugars to a sugar beside it (touching chain ends, tertiary contacts), and the routing ran
   through them. Where the nodes themselves are displaced the false edge can still be a phosphate's best one: 1KF1's
   end nodes lie 1.3 and 1.7 Å off, A2's phosphate bridges A1–A22 at 6.8 Å, and the G-quadruplex is still traced as a
   ring through its ends (1GID's A155 → A0 → A1 → A2 → A156 stays too). Oracle maps, 10 corpus entries × seeds 0–2
   (``bench_na_corpus.py``), no exclusivity → margin 1.0 / 0.5 / 0 Å, clean: register recall 0.831 → 0.838 / 0.839 /
   0.846, reversed residues 2.4 → 2.0 / 2.3 / 2.1 %, coverage 0.968 → 0.968 / 0.970 / 0.970; realistic unchanged
   within 0.01 (register 0.170 → 0.178 / 0.178 / 0.170). The 16S rRNA 3JBV_A (clean, seed 0), no exclusivity → margin
   2.0 / 1.0 / 0.5 / 0 Å: register recall 0.567 → 0.650 / 0.686 / 0.733 / 0.661, reversed 10.1 → 7.5 / 5.9 / 4.8 /
   6.2 %, coverage 0.966 → 0.961 / 0.956 / 0.960 / 0.956.
Probabilities at a point are read from the nearest voxel. The smoothed sugar probability is the thresholded sugar
map convolved with the mean-shift kernel exp(−1.5 d² / (g/2)²) (g = 3 Å) over its ±2g window, computed on the grid
(separably) and read by trilinear interpolation; it is a kernel *sum*, as the mean-shift point density is.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from haruspex_engine.maps import Vec3
from haruspex_engine.nucleic.building.grid_points import nearest_values, trilinear_values
from haruspex_engine.nucleic.building.nodes import BANDWIDTH, NodeSet
from haruspex_engine.nucleic.classes import STAGE2_CLASSES

MAX_EDGE_A = 10.0
EXTENSION_PENALTY = 3.0
PRUNE_BASE_PROBABILITY = 0.5
EXTEND_SUGAR_PROBABILITY = 0.1
PRUNE_SAMPLES = 6
#: Å: largest d(a, p) + d(p, b) of a phosphate p bridging sugars a and b (strand steps: 7.6–8.8 Å on perfect maps).
BRIDGE_SUM_A = 10.0
#: Å: a phosphate bridges only the edges whose sum is within this of its smallest sum over all edges it could bridge.
BRIDGE_MARGIN_A = 0.5
#: Cost factor of an edge that no phosphate node bridges (as for an extension edge's length).
UNBRIDGED_PENALTY = 3.0
COST_SAMPLES = 11
#: Floor of an edge's relative density in its cost: a faint step costs at most 1 / this times its length.
MIN_RELATIVE_DENSITY = 0.05


@dataclass(frozen=True)
class SugarGraph:
    """xyz: (N, 3) sugar node positions (x, y, z) Å; density: (N,) their normalised densities. edges: (E, 2) node
    index pairs (i < j); length: (E,) Å (tripled for extension edges); cost: (E,) for tracing; extended: (E,) bool;
    bridged: (E,) bool, a phosphate node bridges the edge (all True when no phosphate nodes were given)."""

    xyz: np.ndarray
    density: np.ndarray
    edges: np.ndarray
    length: np.ndarray
    cost: np.ndarray
    extended: np.ndarray
    bridged: np.ndarray


def build_sugar_graph(
    sugar: NodeSet,
    stage2: np.ndarray,
    sugar_weights: np.ndarray,
    origin: Vec3,
    *,
    max_edge_A: float = MAX_EDGE_A,
    phosphate_xyz: np.ndarray | None = None,
) -> SugarGraph:
    """The sugar graph of ``sugar`` nodes (see module docstring).

    stage2: (8, Z, Y, X) probabilities in STAGE2_CLASSES order on the 1 Å grid whose voxel (0, 0, 0) is at
    ``origin`` (x, y, z) Å; sugar_weights: (Z, Y, X) the thresholded sugar map the nodes were clustered from;
    phosphate_xyz: (M, 3) phosphate node positions, Å, for the bridge penalty (None: no penalty).
    """
    xyz = np.asarray(sugar.xyz, dtype=float)
    base = stage2[STAGE2_CLASSES.index("base")]
    sugar_probability = stage2[STAGE2_CLASSES.index("sugar")]

    near = np.array(sorted(cKDTree(xyz).query_pairs(max_edge_A - 1e-9)), dtype=int).reshape(-1, 2)
    touching = {tuple(pair) for pair in _touching_pairs(sugar.labels()).tolist()}
    direct = np.array([tuple(pair) in touching for pair in near.tolist()], dtype=bool)
    points = _samples(xyz, near, PRUNE_SAMPLES)
    base_ok = (nearest_values(base, points, origin) < PRUNE_BASE_PROBABILITY).all(axis=1)
    sugar_ok = (nearest_values(sugar_probability, points, origin) > EXTEND_SUGAR_PROBABILITY).all(axis=1)
    shares_phosphate = (np.zeros(len(near), bool) if phosphate_xyz is None
                        else bridged_edges(xyz, near, phosphate_xyz))
    keep = (base_ok | shares_phosphate) & (direct | sugar_ok)
    order = np.argsort(~direct[keep], kind="stable")  # the touching edges first
    edges, extended = near[keep][order], ~direct[keep][order]
    length = np.linalg.norm(xyz[edges[:, 0]] - xyz[edges[:, 1]], axis=1) if len(edges) else np.empty(0)
    length = np.where(extended, EXTENSION_PENALTY * length, length)
    smoothed = smoothed_sugar(sugar_weights)
    if len(edges):
        # The samples include both end nodes; everything relative to the densest node, so that the cost does not
        # depend on the map's scale and the faintest node is not singled out.
        along = trilinear_values(smoothed, _samples(xyz, edges, COST_SAMPLES), origin).min(axis=1)
        strongest = trilinear_values(smoothed, xyz[:, None, :], origin).max()
        min_density = np.maximum(along / max(strongest, 1e-12), MIN_RELATIVE_DENSITY)
    else:
        min_density = np.empty(0)
    cost = length / min_density + 1.0
    bridged = np.ones(len(edges), bool) if phosphate_xyz is None else bridged_edges(xyz, edges, phosphate_xyz)
    cost = np.where(bridged, cost, UNBRIDGED_PENALTY * cost)
    return SugarGraph(xyz, np.asarray(sugar.density, float), edges, length, cost, extended, bridged)


def bridged_edges(xyz: np.ndarray, edges: np.ndarray, phosphate_xyz: np.ndarray) -> np.ndarray:
    """(E,) bool: whether a phosphate p (of the (M, 3) ``phosphate_xyz``, Å) bridges each edge (a, b) of the (N, 3)
    sugar positions ``xyz``: d(a, p) + d(p, b) ≤ BRIDGE_SUM_A, neither angle p–a–b nor p–b–a obtuse, and the sum
    within BRIDGE_MARGIN_A of the smallest over the edges p could bridge (the module docstring, step 5)."""
    phosphate = np.asarray(phosphate_xyz, dtype=float).reshape(-1, 3)
    bridged = np.zeros(len(edges), bool)
    if not len(edges) or not len(phosphate):
        return bridged
    a, b = xyz[edges[:, 0]], xyz[edges[:, 1]]
    near = cKDTree(phosphate).query_ball_point((a + b) / 2, BRIDGE_SUM_A / 2)  # a bridge lies within sum / 2
    row = np.repeat(np.arange(len(edges)), [len(n) for n in near])
    which = np.concatenate([np.asarray(n, dtype=int) for n in near]) if len(row) else np.zeros(0, int)
    p = phosphate[which]
    total = np.linalg.norm(p - a[row], axis=1) + np.linalg.norm(p - b[row], axis=1)
    ok = ((total <= BRIDGE_SUM_A)
          & (np.einsum("ij,ij->i", b[row] - a[row], p - a[row]) >= 0)
          & (np.einsum("ij,ij->i", a[row] - b[row], p - b[row]) >= 0))
    best = np.full(len(phosphate), np.inf)
    np.minimum.at(best, which[ok], total[ok])
    ok &= total <= best[which] + BRIDGE_MARGIN_A
    bridged[row[ok]] = True
    return bridged


def smoothed_sugar(weights: np.ndarray, bandwidth: float = BANDWIDTH) -> np.ndarray:
    """Kernel sum Σ w(v) exp(−1.5 d² / (bandwidth/2)²) over the ±2·bandwidth box around each voxel (Z, Y, X)."""
    reach = int(2 * bandwidth)
    offsets = np.arange(-reach, reach + 1, dtype=float)
    kernel = np.exp(-1.5 * offsets**2 / (bandwidth / 2) ** 2)
    out = np.asarray(weights, dtype=np.float64)
    for axis in range(3):
        out = ndimage.correlate1d(out, kernel, axis=axis, mode="constant", cval=0.0)
    return out


def _touching_pairs(labels: np.ndarray) -> np.ndarray:
    """Node index pairs (i < j) with member voxels that are 26-neighbours; labels (Z, Y, X), −1 for no node."""
    pairs = []
    shape = labels.shape
    for dz, dy, dx in [(dz, dy, dx) for dz in (0, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                       if (dz, dy, dx) > (0, 0, 0)]:
        here = labels[_window(shape, (dz, dy, dx), False)]
        there = labels[_window(shape, (dz, dy, dx), True)]
        hit = (here >= 0) & (there >= 0) & (here != there)
        pairs.append(np.stack([here[hit], there[hit]], axis=1))
    found = np.concatenate(pairs) if pairs else np.empty((0, 2), int)
    return np.unique(np.sort(found, axis=1), axis=0).astype(int).reshape(-1, 2)


def _window(shape: tuple[int, ...], offset: tuple[int, int, int], shifted: bool) -> tuple[slice, ...]:
    """Slices of a volume and of its copy moved by ``offset`` voxels that overlap."""
    out = []
    for n, d in zip(shape, offset):
        lo, hi = (max(d, 0), n + min(d, 0)) if shifted else (max(-d, 0), n - max(d, 0))
        out.append(slice(lo, hi))
    return tuple(out)


def _samples(xyz: np.ndarray, edges: np.ndarray, count: int) -> np.ndarray:
    """(E, count, 3) points evenly spaced from each edge's first node to its second (ends included), Å."""
    t = np.linspace(0.0, 1.0, count)[None, :, None]
    start, end = xyz[edges[:, 0]][:, None, :], xyz[edges[:, 1]][:, None, :]
    return start + t * (end - start)
