"""Node clustering (mean shift + merge) on self-made probability maps."""
from __future__ import annotations

import dataclasses
import math

import gemmi
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from haruspex_engine.nucleic.building import nodes
from haruspex_engine.nucleic.building.nodes import STAGE2_CLASSES


def blobs(shape, centres_zyx, amplitudes=None, sigma=1.2):
    """Sum of Gaussian blobs exp(-d² / 2σ²) (σ in Å = voxels) at (z, y, x) centres, float32."""
    grid = np.indices(shape, dtype=np.float64)
    total = np.zeros(shape)
    for index, centre in enumerate(centres_zyx):
        amplitude = 1.0 if amplitudes is None else amplitudes[index]
        d2 = sum((grid[axis] - centre[axis]) ** 2 for axis in range(3))
        total += amplitude * np.exp(-d2 / (2 * sigma**2))
    return total.astype(np.float32)


def stage2_with(shape, **maps):
    """(8, Z, Y, X) stage-2 maps, zero except the named classes."""
    stage2 = np.zeros((len(STAGE2_CLASSES),) + tuple(shape), dtype=np.float32)
    for name, values in maps.items():
        stage2[STAGE2_CLASSES.index(name)] = values
    return stage2


def brute_force_mean_shift(weights, bandwidth=3.0, tolerance=1e-3, max_iterations=1000):
    """The mean-shift rule written out voxel by voxel (slow; small maps only)."""
    reach = int(2 * bandwidth)
    sharpness = 1.5 / (bandwidth / 2) ** 2
    points, density = [], []
    for start in np.argwhere(weights > 0):
        p = [float(c) for c in start]
        for _ in range(max_iterations):
            corner = [math.floor(c) for c in p]
            ranges = [range(max(0, c - reach), min(n, c + reach + 1)) for c, n in zip(corner, weights.shape)]
            total, moment = 0.0, [0.0, 0.0, 0.0]
            for z in ranges[0]:
                for y in ranges[1]:
                    for x in ranges[2]:
                        w = float(weights[z, y, x]) * math.exp(
                            -sharpness * ((z - p[0]) ** 2 + (y - p[1]) ** 2 + (x - p[2]) ** 2))
                        total += w
                        moment = [moment[0] + w * z, moment[1] + w * y, moment[2] + w * x]
            new = [m / total for m in moment]
            move = sum((a - b) ** 2 for a, b in zip(new, p))
            p = new
            if move < tolerance:
                break
        points.append(p)
        density.append(total)
    return np.array(points), np.array(density)


def brute_force_merge(points, density, merge_distance=2.0, filter_fraction=0.05):
    """The merge rule written out pair by pair: (roots, assignment) like merge_points."""
    scaled = (density - density.min()) / (density.max() - density.min())
    kept = [i for i in range(len(points)) if scaled[i] >= filter_fraction]

    def denser(i, j):
        return density[i] > density[j] or (density[i] == density[j] and i < j)

    parent = {}
    for i in kept:
        candidates = [(np.linalg.norm(points[i] - points[j]), j) for j in kept
                      if j != i and denser(j, i) and np.linalg.norm(points[i] - points[j]) < merge_distance]
        parent[i] = min(candidates)[1] if candidates else i
    roots = sorted(i for i in kept if parent[i] == i)
    assignment = np.full(len(points), -1)
    for i in kept:
        root = i
        while parent[root] != root:
            root = parent[root]
        assignment[i] = roots.index(root)
    return np.array(roots), assignment


@pytest.mark.parametrize("max_iterations", [1000, 2])
def test_mean_shift_matches_brute_force(monkeypatch, max_iterations):
    monkeypatch.setattr(nodes, "CHUNK", 16)  # several chunks per step
    rng = np.random.default_rng(7)
    weights = rng.random((6, 7, 8))
    weights[weights < 0.55] = 0
    weights = np.pad(weights, ((2, 1), (0, 3), (1, 0)))  # empty margins: the bounding-box crop
    points, density = nodes.mean_shift(weights, max_iterations=max_iterations)
    expected_points, expected_density = brute_force_mean_shift(weights, max_iterations=max_iterations)
    assert len(points) == (weights > 0).sum() > 2 * 16
    np.testing.assert_allclose(points, expected_points, rtol=0, atol=1e-6)
    np.testing.assert_allclose(density, expected_density, rtol=1e-9)


def test_mean_shift_from_given_starts_moves_those_points_as_from_voxels():
    rng = np.random.default_rng(11)
    weights = rng.random((6, 7, 8))
    weights[weights < 0.55] = 0
    weights = np.pad(weights, ((2, 1), (0, 3), (1, 0)))
    voxels = np.argwhere(weights > 0)
    pick = voxels[::5]
    points, density = nodes.mean_shift(weights, starts=pick)
    all_points, all_density = nodes.mean_shift(weights)
    np.testing.assert_allclose(points, all_points[::5], rtol=0, atol=1e-12)
    np.testing.assert_allclose(density, all_density[::5], rtol=1e-12)
    with pytest.raises(ValueError, match="bounding box"):
        nodes.mean_shift(weights, starts=np.array([[0.0, 0.0, 0.0]]))  # in the empty margin
    with pytest.raises(ValueError, match="share_paths"):
        nodes.mean_shift(weights, share_paths=True, starts=pick)


def test_a_node_moves_to_where_its_class_and_the_density_agree():
    """A phosphate blob at x = 10 and a density peak at x = 12 (same σ): the product peaks half-way, at x = 11; a
    second blob far away keeps its own node, and the node's density, voxels and members do not change."""
    shape = (20, 20, 40)
    weights = blobs(shape, [(10.0, 10.0, 10.0), (10.0, 10.0, 30.0)])
    weights[weights < 0.05] = 0
    density = blobs(shape, [(10.0, 10.0, 12.0), (10.0, 10.0, 30.0)])
    origin = (-3.0, 2.0, 5.0)
    found = nodes.nodes_from_weights("phosphate", weights, origin)
    moved = nodes.moved_onto_density(found, weights, density, origin)
    expected = np.array([[11.0, 10.0, 10.0], [30.0, 10.0, 10.0]]) + origin
    order = np.argsort(found.xyz[:, 0])
    np.testing.assert_allclose(found.xyz[order], expected - [[1.0, 0, 0], [0, 0, 0]], atol=0.05)
    np.testing.assert_allclose(moved.xyz[order], expected, atol=0.1)
    assert moved.density is found.density and moved.members is found.members and moved.voxels is found.voxels
    assert len(nodes.moved_onto_density(found.regrouped(np.full(2, -1)), weights, density, origin)) == 0
    stray = dataclasses.replace(found, xyz=np.concatenate([found.xyz, [origin]]))  # outside the blobs' box
    np.testing.assert_array_equal(nodes.moved_onto_density(stray, weights, density, origin).xyz[-1], origin)


def test_merge_matches_brute_force():
    rng = np.random.default_rng(3)
    centres = rng.uniform(0, 12, (12, 3))
    points = np.concatenate([c + rng.normal(0, 0.4, (15, 3)) for c in centres])
    density = rng.uniform(0, 1, len(points))
    density[[5, 40]] = density[[6, 41]]  # ties: the earlier point is the denser
    roots, assignment = nodes.merge_points(points, density)
    expected_roots, expected_assignment = brute_force_merge(points, density)
    np.testing.assert_array_equal(roots, expected_roots)
    np.testing.assert_array_equal(assignment, expected_assignment)


def test_merge_points_distance_and_filter():
    points = np.array([[0.0, 0, 0], [0, 0, 1.5], [10, 0, 0], [10, 0, 3.5], [20, 0, 0], [30, 0, 0]])
    density = np.array([1.0, 0.9, 0.8, 0.85, 0.04, 0.0])  # (0.04 - 0) / (1 - 0) < 0.05: dropped
    roots, assignment = nodes.merge_points(points, density)
    np.testing.assert_array_equal(roots, [0, 2, 3])
    np.testing.assert_array_equal(assignment, [0, 0, 1, 2, -1, -1])


def test_merge_points_filter_can_scale_from_a_given_low():
    """Three modes of densities 1, 0.9 and 0.6 and no faint point: the min-max filter drops the 0.6 one (it is the
    smallest); scaled from 0 (clustering confined to a region, ``nodes_from_weights``) all three are nodes."""
    points = np.array([[0.0, 0, 0], [6, 0, 0], [12, 0, 0]])
    density = np.array([1.0, 0.9, 0.6])
    np.testing.assert_array_equal(nodes.merge_points(points, density)[0], [0, 1])
    roots, assignment = nodes.merge_points(points, density, low=0.0)
    np.testing.assert_array_equal(roots, [0, 1, 2])
    np.testing.assert_array_equal(assignment, [0, 1, 2])


def test_merge_points_empty_and_single():
    roots, assignment = nodes.merge_points(np.zeros((0, 3)), np.zeros(0))
    assert roots.shape == (0,) and assignment.shape == (0,)
    roots, assignment = nodes.merge_points(np.ones((1, 3)), np.array([0.3]))
    np.testing.assert_array_equal(roots, [0])
    np.testing.assert_array_equal(assignment, [0])


def test_one_node_per_blob_at_its_centre():
    centres = [(8.0, 8.0, 8.0), (8.3, 20.6, 9.5), (21.5, 9.25, 21.8), (20.0, 21.0, 8.7)]
    weights = blobs((30, 30, 30), centres)
    weights[weights < 0.05] = 0
    # A lone faint voxel holds the lowest density, as in any real map: the 5 % filter is relative to the range
    # of point densities, and with four equal blobs and shared paths that range would be a rounding error.
    weights[27, 27, 27] = 0.06
    result = nodes.nodes_from_weights("sugar", weights, (0.0, 0.0, 0.0))
    assert len(result) == len(centres)
    expected_xyz = np.array(centres)[:, ::-1]
    distance = np.linalg.norm(result.xyz[:, None] - expected_xyz[None], axis=2)
    assert distance.min(axis=0).max() < 0.3
    member_xyz = result.voxels[:, ::-1]
    to_centre = np.linalg.norm(member_xyz[:, None] - expected_xyz[None], axis=2)
    core = to_centre.min(axis=1) < 2.0  # far tails may stop early, at a low density, and be filtered out
    own_node = distance.argmin(axis=0)[to_centre.argmin(axis=1)]  # node nearest each voxel's blob centre
    np.testing.assert_array_equal(result.members[core], own_node[core])
    assert result.density.min() >= 0.01 and result.density.max() == pytest.approx(1.01)


@pytest.mark.parametrize("separation, count", [(1.5, 1), (3.5, 2)])
def test_close_blobs_merge(separation, count):
    # A weak blob far away holds the lowest densities; without it the weaker of two modes would be the minimum
    # and always fall under the 5 % filter.
    centres = [(10.0, 10.0, 10.25), (10.0, 10.0, 10.25 + separation), (10.0, 10.0, 24.0)]
    weights = blobs((20, 20, 30), centres, amplitudes=[1.0, 0.9, 0.2], sigma=0.6)
    weights[weights < 0.02] = 0
    result = nodes.nodes_from_weights("phosphate", weights, (0.0, 0.0, 0.0))
    near_pair = result.xyz[result.xyz[:, 0] < 18.0]
    assert len(near_pair) == count
    expected_x = [10.25, 10.25 + separation] if count == 2 else [10.25 + 0.6]  # one node near the stronger blob
    np.testing.assert_allclose(np.sort(near_pair[:, 0]), expected_x, atol=0.3 if count == 2 else 0.6)
    np.testing.assert_allclose(near_pair[:, 1:], 10.0, atol=0.1)


def test_merge_step_joins_two_modes_closer_than_two_angstrom():
    weights = np.zeros((11, 11, 20))
    weights[5, 5, 4], weights[5, 5, 6] = 1.0, 0.8  # two spikes 2 Å apart: two mean-shift modes ~1.5 Å apart
    weights[5, 5, 16] = 0.1  # the lowest density, filtered out
    points, _ = nodes.mean_shift(weights)
    assert 1.0 < np.linalg.norm(points[0] - points[1]) < 2.0
    result = nodes.nodes_from_weights("sugar", weights, (0.0, 0.0, 0.0))
    assert len(result) == 1
    np.testing.assert_allclose(result.xyz[0], points[0][::-1])  # the denser spike's point
    np.testing.assert_array_equal(result.members, [0, 0, -1])


def test_weak_blob_is_filtered_out():
    centres = [(8.0, 8.0, 8.0), (8.0, 8.0, 20.0), (20.0, 8.0, 8.0)]
    weights = blobs((28, 16, 28), centres, amplitudes=[1.0, 0.03, 0.2])
    weights[weights < 0.001] = 0
    result = nodes.nodes_from_weights("sugar", weights, (0.0, 0.0, 0.0))
    assert len(result) == 2
    np.testing.assert_allclose(sorted(result.xyz[:, 2]), [8.0, 20.0], atol=0.3)  # z of the strong and medium blob
    weak = result.voxels[:, 2] >= 14
    assert (result.members[weak] == -1).all()
    assert (result.labels()[:, :, 14:] == -1).all()


def test_faint_and_atom_sized_blobs_are_nodes_too():
    """Two wide clusters, a faint one (peak 0.5) and an atom-sized blob: four nodes, whatever their mass (which
    nodes the detection supports is node_evidence's call)."""
    weights = blobs((28, 16, 40), [(8.0, 8.0, 8.0), (8.0, 8.0, 30.0), (20.0, 8.0, 32.0), (20.0, 8.0, 2.0)],
                    amplitudes=[1, 1, 0.5, 0.1], sigma=2.0)  # the faintest holds the lowest density: filtered
    weights = np.maximum(weights, blobs((28, 16, 40), [(20.0, 8.0, 16.0)], sigma=1.0))
    weights[weights < 0.05] = 0
    result = nodes.nodes_from_weights("sugar", weights, (0.0, 0.0, 0.0))
    np.testing.assert_allclose(sorted(result.xyz[:, 0]), [8.0, 16.0, 30.0, 32.0], atol=0.3)
    mass = result.masses(weights)
    assert mass[np.argmin(np.abs(result.xyz[:, 0] - 16.0))] < 0.3 * np.median(mass)


def _three_nodes() -> nodes.NodeSet:
    """Nodes 0, 1, 2 at x = 0, 5, 10 Å with densities 0.01, 0.51, 1.01, owning voxels (0, 0, x) for x = 0..5."""
    return nodes.NodeSet("sugar", np.array([[0.0, 0, 0], [5.0, 0, 0], [10.0, 0, 0]]), np.array([0.01, 0.51, 1.01]),
                         np.array([[0, 0, x] for x in range(6)]), np.array([0, 0, 1, 1, 2, -1]), (1, 1, 6))


def test_masses_sum_the_weights_of_each_nodes_voxels():
    weights = np.arange(1.0, 7.0).reshape(1, 1, 6)
    np.testing.assert_allclose(_three_nodes().masses(weights), [3.0, 7.0, 5.0])


def test_regrouped_drops_merges_and_renormalises():
    result = _three_nodes().regrouped(np.array([-1, 2, 2]))  # 0 dropped, 1 merged into 2
    np.testing.assert_allclose(result.xyz, [[10.0, 0, 0]])
    np.testing.assert_allclose(result.density, [1.01])  # a single node: 1.01
    np.testing.assert_array_equal(result.members, [-1, -1, 0, 0, 0, -1])
    kept = _three_nodes().regrouped(np.array([0, -1, 2]))
    np.testing.assert_allclose(kept.density, [0.01, 1.01])
    np.testing.assert_array_equal(kept.members, [0, 0, -1, -1, 1, -1])
    empty = _three_nodes().regrouped(np.full(3, -1))
    assert len(empty) == 0 and (empty.members == -1).all()
    assert len(empty.regrouped(np.zeros(0, dtype=int))) == 0  # no node left: the filter runs again on nothing


@pytest.mark.parametrize("owner", [[0, 0], [1, 2, 2], [0, 0, 1]])
def test_regrouped_rejects_bad_owners(owner):
    with pytest.raises(ValueError):
        _three_nodes().regrouped(np.array(owner))


def test_denoising_keeps_blobs_and_removes_voxel_noise():
    shape = (24, 24, 24)
    rng = np.random.default_rng(1)
    sugar = np.clip(blobs(shape, [(12.0, 12.0, 12.0)]) + rng.normal(0, 0.15, shape), 0, 1).astype(np.float32)
    stage2 = stage2_with(shape, sugar=sugar)
    density = np.ones(shape, np.float32)
    raw = nodes.class_weights(stage2, density, 0)["sugar"]
    denoised = nodes.class_weights(stage2, density)["sugar"]
    assert (raw > 0).mean() > 0.2  # a quarter of the noise voxels pass the raw 0.1 threshold
    far = np.linalg.norm(np.indices(shape) - 12.0, axis=0) > 6
    assert not denoised[far].any()
    assert denoised[12, 12, 12] == sugar[12, 12, 12]  # passing voxels keep their own probability
    assert len(nodes.nodes_from_weights("sugar", denoised, (0.0, 0.0, 0.0))) == 1


def test_coordinates_honour_origin_and_axis_order():
    shape = (20, 24, 28)
    weights = blobs(shape, [(5.0, 9.0, 14.0)])
    weights[weights < 0.05] = 0
    origin = (100.0, -50.0, 7.5)
    result = nodes.nodes_from_weights("G", weights, origin)
    np.testing.assert_allclose(result.xyz, [[114.0, -41.0, 12.5]], atol=1e-6)
    labels = result.labels()
    assert labels.shape == shape and labels[5, 9, 14] == 0 and labels[0, 0, 0] == -1


def test_class_weights_thresholds():
    #            0     1     2     3     4      5      6     7     8
    a = np.array([0.6, 0.55, 0.9, 0.3, 0.012, 0.01, 0.6, 0.3, 0.0])
    ut = np.array([0.3, 0.52, 0.0, 0.1, 0.005, 0.0, 0.0, 0.3, 0.0])
    c = np.array([0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    g = np.zeros(9)
    base = np.array([0.9, 0.9, 0.2, 0.25, 0.5, 0.5, 0.9, 0.9, 0.26])
    sugar = np.array([0.1, 0.11, 0.5, 0.0, 0.0, 0.0, 0.9, 0.0, 0.0])
    phosphate = np.array([0.11, 0.1, 0.0, 0.0, 0.0, 0.0, 0.9, 0.0, 0.0])
    density = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0])
    stage2 = stage2_with((1, 1, 9), A=a, UT=ut, C=c, G=g, base=base, sugar=sugar, phosphate=phosphate,
                         protein=np.ones(9))
    weights = {k: v.ravel() for k, v in nodes.class_weights(stage2, density.reshape(1, 1, 9), 0).items()}
    assert set(weights) == set(nodes.NODE_CLASSES) and "protein" not in weights
    assert weights["A"].dtype == np.float32
    f = np.float32
    np.testing.assert_array_equal(weights["A"], f([0.6, 0.55, 0, 0.3, 0.012, 0, 0, 0.3, 0]))
    np.testing.assert_array_equal(weights["UT"], f([0, 0.52, 0, 0, 0, 0, 0, 0, 0]))  # 7: argmax tie goes to A
    np.testing.assert_array_equal(weights["C"], np.zeros(9, np.float32))
    np.testing.assert_array_equal(weights["G"], np.zeros(9, np.float32))
    np.testing.assert_array_equal(weights["base"], f([0.9, 0.9, 0, 0, 0.5, 0.5, 0, 0.9, 0.26]))
    np.testing.assert_array_equal(weights["sugar"], f([0, 0.11, 0.5, 0, 0, 0, 0, 0, 0]))
    np.testing.assert_array_equal(weights["phosphate"], f([0.11, 0, 0, 0, 0, 0, 0, 0, 0]))


def test_class_weights_rejects_wrong_shapes():
    with pytest.raises(ValueError, match="stage-2"):
        nodes.class_weights(np.zeros((7, 2, 2, 2), np.float32), np.ones((2, 2, 2)))


def test_cluster_nodes_per_class():
    shape = (24, 24, 24)
    sugar = blobs(shape, [(6.0, 6.0, 6.0), (6.0, 6.0, 14.0)])
    phosphate = blobs(shape, [(6.0, 14.0, 10.0)])
    base = blobs(shape, [(16.0, 12.0, 12.0)], sigma=2.0)  # base-sized: still above 0.25 once smoothed
    stage2 = stage2_with(shape, sugar=sugar, phosphate=phosphate, base=base, A=base * 0.8, UT=base * 0.1,
                         protein=np.ones(shape))
    result = nodes.cluster_nodes(stage2, np.ones(shape, np.float32), (1.0, 2.0, 3.0))
    assert list(result) == list(nodes.NODE_CLASSES)
    assert {name: len(n) for name, n in result.items()} == {
        "sugar": 2, "phosphate": 1, "A": 1, "UT": 0, "C": 0, "G": 0, "base": 1}
    np.testing.assert_allclose(result["phosphate"].xyz, [[11.0, 16.0, 9.0]], atol=0.3)
    assert all(n.name == name for name, n in result.items())


def test_no_signal_gives_empty_node_sets(tmp_path):
    shape = (10, 12, 14)
    result = nodes.cluster_nodes(stage2_with(shape), np.zeros(shape, np.float32), (0.0, 0.0, 0.0))
    for node_set in result.values():
        assert len(node_set) == 0
        assert node_set.xyz.shape == (0, 3) and node_set.density.shape == (0,)
        assert node_set.voxels.shape == (0, 3) and node_set.members.shape == (0,)
        assert (node_set.labels() == -1).all()
    nodes.write_nodes(tmp_path / "empty.cif", list(result.values()))
    assert (tmp_path / "empty.cif").exists()


@pytest.mark.parametrize("suffix", [".cif", ".pdb"])
def test_write_nodes_round_trip(tmp_path, suffix):
    sugar = nodes.NodeSet("sugar", np.array([[1.0, 2.0, 3.0], [4.5, 5.5, 6.5]]), np.array([0.01, 1.01]),
                          np.zeros((0, 3), int), np.zeros(0, int), (1, 1, 1))
    g = nodes.NodeSet("G", np.array([[-7.0, 8.0, 9.25]]), np.array([0.51]), np.zeros((0, 3), int),
                      np.zeros(0, int), (1, 1, 1))
    path = tmp_path / f"nodes{suffix}"
    nodes.write_nodes(path, [sugar, g])
    structure = gemmi.read_structure(str(path))
    chains = list(structure[0])
    assert [ch.name for ch in chains] == ["A", "B"]
    assert [r.name for r in chains[0]] == ["SUG", "SUG"] and [r.name for r in chains[1]] == ["G"]
    atom = chains[0][1][0]
    assert atom.pos.dist(gemmi.Position(4.5, 5.5, 6.5)) < 1e-3 and atom.b_iso == pytest.approx(1.01)
    assert chains[1][0][0].element.name == "N"
    assert not list(tmp_path.glob("*.part"))


def _blobs_in_noise(seed: int, noise_sd: float) -> np.ndarray:
    """(30, 30, 30) weights: twelve blobs (σ 1.5 voxels) of heights 0.3–1 plus noise of s.d. ``noise_sd`` smoothed
    by σ 1 voxel, clipped at 0 and emptied below 0.1."""
    rng = np.random.default_rng(seed)
    shape = (30, 30, 30)
    centres = [tuple(c) for c in rng.uniform(4, 26, (12, 3))]
    weights = blobs(shape, centres, amplitudes=rng.uniform(0.3, 1.0, 12), sigma=1.5)
    weights = np.clip(weights + gaussian_filter(rng.normal(0, noise_sd, shape), 1.0), 0, None)
    weights[weights < 0.1] = 0
    return weights


def test_shared_paths_give_the_nodes_of_every_point_moved() -> None:
    """Twelve blobs of different heights in strong smooth noise (about 180 modes): leaders' paths shared by the other
    points give (almost) the same nodes as moving every point, with far fewer steps."""
    weights = _blobs_in_noise(seed=5, noise_sd=1.0)
    full = nodes.merge_points(*nodes.mean_shift(weights))[0]
    points, density = nodes.mean_shift(weights, share_paths=True)
    shared = nodes.merge_points(points, density)[0]
    full_points = nodes.mean_shift(weights)[0][full]
    nearest = np.linalg.norm(points[shared][:, None] - full_points[None], axis=2).min(axis=1)
    assert abs(len(shared) - len(full)) <= 0.1 * len(full) and np.mean(nearest < 0.5) >= 0.85


def test_the_build_window_gives_the_nodes_of_the_original_window() -> None:
    """Mean shift in a ± WINDOW_REACH window ends where the original ± 2 bandwidth window does, to numerical noise:
    the voxels it leaves out are more than 4 Å away, where the kernel is below 2.3e-5 of its peak."""
    weights = _blobs_in_noise(seed=11, noise_sd=0.3)
    original, original_density = nodes.mean_shift(weights)
    narrow, narrow_density = nodes.mean_shift(weights, window_reach=nodes.WINDOW_REACH)
    assert nodes.WINDOW_REACH < int(2 * nodes.BANDWIDTH)
    moved = np.linalg.norm(narrow - original, axis=1)
    assert np.percentile(moved, 99) < 0.01 and np.median(np.abs(narrow_density / original_density - 1)) < 1e-3
    original_nodes = nodes.merge_points(original, original_density)[0]
    narrow_nodes = nodes.merge_points(narrow, narrow_density)[0]
    assert len(narrow_nodes) == len(original_nodes)
    np.testing.assert_allclose(narrow[narrow_nodes], original[original_nodes], atol=0.05)
