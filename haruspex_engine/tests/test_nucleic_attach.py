"""Phosphate and base-score attachment along a path: hand-placed nodes for each rule, and oracle maps of an ideal
RNA strand from end to end."""
from __future__ import annotations

import gemmi
import numpy as np
import pytest
from scipy.spatial import cKDTree

from haruspex_engine.nucleic.building.attach import assign_phosphates, attach_path, base_vectors, linking_density
from haruspex_engine.nucleic.building.ideal import ideal_na_strand
from haruspex_engine.nucleic.building.nodes import cluster_nodes
from haruspex_engine.nucleic.classes import BASE_TYPES, STAGE2_CLASSES
from haruspex_engine.testing.oracle_maps import BASE_TYPE, Corruption, oracle_maps

ORIGIN = (-10.0, -5.0, -25.0)
SHAPE = (31, 11, 41)  # (z, y, x): x from -10 to 30, y from -5 to 5, z from -25 to 5 Å


def _zigzag(count: int) -> tuple[np.ndarray, np.ndarray]:
    """Sugars 6 Å apart along x, zig-zagging 1 Å in y; phosphates P_0 … P_count 3 Å above (z) the midpoints of
    consecutive sugars, the first and last one beyond the chain ends."""
    sugar = np.array([[6.0 * k, float(k % 2), 0.0] for k in range(count)])
    phosphate = np.array([[6.0 * k - 3.0, 0.5, 3.0] for k in range(count + 1)])
    return sugar, phosphate


def _stage2(points: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Stage-2 maps (8, Z, Y, X), zero but for the base-type probabilities ``vectors`` (n, 4) at the voxels of
    ``points`` (n, 3) (x, y, z) Å, which lie on whole Å."""
    stage2 = np.zeros((len(STAGE2_CLASSES),) + SHAPE, np.float32)
    for xyz, vector in zip(points, vectors):
        i, j, k = np.rint(np.asarray(xyz) - ORIGIN).astype(int)
        for name, value in zip(BASE_TYPES, vector):
            stage2[STAGE2_CLASSES.index(name), k, j, i] = value
    return stage2


def test_phosphates_between_consecutive_sugars_and_beyond_the_ends() -> None:
    sugar, phosphate = _zigzag(4)
    decoy = [[-5.0, 0.0, 3.0]]  # also beyond the start and within 7 Å of s_0, but farther than P_0
    prev_index, next_index = assign_phosphates(sugar, np.concatenate([phosphate, decoy]))
    np.testing.assert_array_equal(prev_index, [0, 1, 2, 3])
    np.testing.assert_array_equal(next_index, [1, 2, 3, 4])


def test_a_phosphate_with_an_obtuse_angle_at_a_sugar_is_rejected() -> None:
    sugar = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 0.0]])
    # Sum 6.7 + 1.6 Å ≤ 14 Å, but beyond s_1: not the pair's; it is the end phosphate of s_1, and s_0 (6.7 Å away)
    # inherits it as its next P.
    prev_index, next_index = assign_phosphates(sugar, [[6.5, 0.0, 1.5]])
    np.testing.assert_array_equal(prev_index, [-1, -1])
    np.testing.assert_array_equal(next_index, [0, 0])
    # 7.65 Å from s_0: too far to inherit.
    _, next_index = assign_phosphates(sugar, [[7.5, 0.0, 1.5]])
    np.testing.assert_array_equal(next_index, [-1, 0])


@pytest.mark.parametrize(("height", "accepted"), [(6.2, True), (6.5, False)])
def test_a_pair_phosphate_needs_a_summed_distance_of_at_most_14_angstrom(height: float, accepted: bool) -> None:
    sugar = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 0.0]])
    prev_index, next_index = assign_phosphates(sugar, [[3.0, 0.0, height]])  # sum 13.8 or 14.3 Å
    expected = 0 if accepted else -1
    np.testing.assert_array_equal(prev_index, [-1, expected])
    np.testing.assert_array_equal(next_index, [expected, -1])


def test_a_missing_phosphate_is_inherited_within_7_angstrom_or_left_out() -> None:
    sugar = np.array([[0.0, 0.0, 0.0], [4.0, 0.0, 0.0], [8.0, 0.0, 0.0], [14.0, 0.0, 0.0]])
    phosphate = np.array([[2.0, 0.0, 3.0], [11.0, 0.0, 3.0]])  # the P between s_1 and s_2 is missing
    prev_index, next_index = assign_phosphates(sugar, phosphate)
    np.testing.assert_array_equal(prev_index, [-1, 0, 0, 1])  # s_2 inherits P(s_0, s_1), 6.7 Å away
    np.testing.assert_array_equal(next_index, [0, -1, 1, -1])  # P(s_2, s_3) is 7.6 Å from s_1


def test_short_paths() -> None:
    stage2 = np.zeros((8,) + SHAPE, np.float32)
    empty = attach_path(np.zeros((0, 3)), np.zeros((0, 3)), {}, stage2, ORIGIN)
    assert empty.scores.shape == (0, 4) and empty.prev_p.shape == (0, 3)
    single = attach_path([[0.0, 0.0, 0.0]], [[1.0, 0.0, 0.0]], {"base": np.array([[0.0, 0.0, -3.0]])}, stage2,
                         ORIGIN)
    assert np.isnan(single.prev_p).all() and np.isnan(single.next_p).all()
    np.testing.assert_array_equal(single.base_xyz, [[0.0, 0.0, -3.0]])


def test_base_vectors_read_the_nearest_voxel() -> None:
    stage2 = _stage2(np.array([[3.0, -2.0, -7.0]]), np.array([[0.1, 0.2, 0.3, 0.4]]))
    vectors = base_vectors(np.array([[3.3, -1.8, -6.6], [3.0, -2.0, -9.0]]), stage2, ORIGIN)
    np.testing.assert_allclose(vectors, [[0.1, 0.2, 0.3, 0.4], [0.0, 0.0, 0.0, 0.0]], atol=1e-7)


def test_nearest_base_vector_is_halved_beyond_10_angstrom() -> None:
    sugar = np.array([[0.0, 0.0, 0.0], [20.0, 0.0, 0.0]])
    bases = np.array([[0.0, 0.0, -3.0], [20.0, 0.0, -12.0]])
    vectors = np.array([[0.9, 0.1, 0.0, 0.0], [0.0, 0.0, 0.2, 0.8]])
    result = attach_path(sugar, np.zeros((0, 3)), {"A": bases[:1], "G": bases[1:]}, _stage2(bases, vectors), ORIGIN)
    np.testing.assert_allclose(result.scores, 3 * np.array([vectors[0], 0.5 * vectors[1]]), atol=1e-6)
    np.testing.assert_array_equal(result.base_xyz, bases)
    assert np.isnan(result.prev_p).all() and np.isnan(result.next_p).all()


def test_scores_come_from_each_sugars_nearest_base_not_the_phosphates_pairs() -> None:
    """Each sugar's base lies 4 Å below it; the bases the phosphate pairs would point to (nearest the midpoint of
    two flanking phosphates, as CryoREAD adds) carry another type and must not count."""
    sugar, phosphate = _zigzag(3)
    own = sugar + [0.0, 0.0, -4.0]
    decoys = (phosphate[:-1] + phosphate[1:]) / 2 + [0.0, 0.0, 2.0]  # the pairs' least-sum bases, 5 Å above
    bases = np.rint(np.concatenate([own, decoys]))
    vectors = np.array([[0.8, 0.1, 0.0, 0.1], [0.0, 0.7, 0.2, 0.0], [0.1, 0.0, 0.0, 0.6]]
                       + [[0.0, 0.0, 0.9, 0.0]] * len(decoys))
    result = attach_path(sugar, phosphate, {"base": bases}, _stage2(bases, vectors), ORIGIN)
    nearest = cKDTree(bases).query(sugar)[1]
    np.testing.assert_allclose(result.scores, 3 * vectors[nearest], atol=1e-6)
    assert (nearest < len(own)).all() and (np.argmax(result.scores, axis=1) != 2).all()


def test_oracle_rna_gets_its_phosphates_and_bases() -> None:
    """Clean oracle maps of an ideal A-RNA strand, its sugar nodes in sequence order: prev P on the residue's own P,
    argmax of the scores on its base."""
    structure = gemmi.Structure()
    model = gemmi.Model(1)
    model.add_chain(ideal_na_strand("GGCAUCAGUCCAAGUCGGAUCCAGUACGGA"))
    structure.add_model(model)
    maps = oracle_maps(structure, Corruption())
    nodes = cluster_nodes(maps.stage2, maps.density, maps.origin)
    residues = list(structure[0][0])
    c4 = np.array([residue["C4'"][0].pos.tolist() for residue in residues])
    own_p = np.array([residue["P"][0].pos.tolist() for residue in residues])
    sugar = nodes["sugar"].xyz[cKDTree(nodes["sugar"].xyz).query(c4)[1]]
    result = attach_path(sugar, nodes["phosphate"].xyz, nodes, maps.stage2, maps.origin)
    assert np.mean(np.linalg.norm(result.prev_p - own_p, axis=1) < 1.5) >= 0.9
    truth = [BASE_TYPES.index(BASE_TYPE[residue.name]) for residue in residues]
    assert np.mean(np.argmax(result.scores, axis=1) == truth) >= 0.9
    assert ((result.scores >= 0) & (result.scores <= 3)).all()


def test_the_base_joined_to_the_sugar_by_density_is_its_base() -> None:
    """A sugar with two base nodes: a stacked neighbour's 3.5 Å away across empty space, its own 4.5 Å away along a
    line of density (the glycosidic bond). With the working density the own base is read; without, the nearest."""
    sugar = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 0.0]])
    own, neighbour = np.array([0.0, 0.0, -4.5]), np.array([0.0, 3.5, 0.0])
    bases = np.array([own, neighbour])
    vectors = np.array([[0.9, 0.0, 0.0, 0.1], [0.0, 0.0, 0.9, 0.0]])
    density = np.zeros(SHAPE, np.float32)
    z0, y0, x0 = -int(ORIGIN[2]), -int(ORIGIN[1]), -int(ORIGIN[0])  # voxel of (0, 0, 0)
    density[z0 - 5:z0 + 1, y0, x0] = 1.0  # from the sugar down to its own base
    linked = attach_path(sugar, np.zeros((0, 3)), {"base": bases}, _stage2(bases, vectors), ORIGIN,
                         linking_density(density))
    np.testing.assert_allclose(linked.base_xyz[0], own)
    assert np.argmax(linked.scores[0]) == 0
    nearest = attach_path(sugar, np.zeros((0, 3)), {"base": bases}, _stage2(bases, vectors), ORIGIN)
    np.testing.assert_allclose(nearest.base_xyz[0], neighbour)


def _paint_line(density: np.ndarray, start: np.ndarray, end: np.ndarray, value: float) -> None:
    """Sets the voxels along the segment start → end ((x, y, z) Å) of the SHAPE grid to ``value``."""
    for t in np.linspace(0.0, 1.0, 25):
        i, j, k = np.rint(start + t * (end - start) - ORIGIN).astype(int)
        density[k, j, i] = value


def test_a_base_node_serves_one_sugar_of_a_path() -> None:
    """Two stacked nucleotides: sugar 1's line of density to sugar 0's base is denser than to its own (stacking), so
    on its own sugar 1 takes sugar 0's base; along a path both sugars are linked at once and each gets its own."""
    sugar = np.array([[0.0, 0.0, 0.0], [5.0, 0.0, 0.0]])
    bases = np.array([[0.0, 0.0, -4.0], [5.0, 0.0, -4.0]])
    vectors = np.array([[0.9, 0.0, 0.0, 0.1], [0.0, 0.0, 0.9, 0.0]])
    density = np.zeros(SHAPE, np.float32)
    _paint_line(density, sugar[1], bases[1], 0.5)
    _paint_line(density, sugar[1], bases[0], 0.9)
    _paint_line(density, sugar[0], bases[0], 1.0)
    link = linking_density(density)
    alone = attach_path(sugar[1:], np.zeros((0, 3)), {"base": bases}, _stage2(bases, vectors), ORIGIN, link)
    np.testing.assert_allclose(alone.base_xyz[0], bases[0])
    both = attach_path(sugar, np.zeros((0, 3)), {"base": bases}, _stage2(bases, vectors), ORIGIN, link)
    np.testing.assert_allclose(both.base_xyz, bases)
    assert list(np.argmax(both.scores, axis=1)) == [0, 2]
