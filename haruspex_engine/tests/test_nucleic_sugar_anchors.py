"""Sugar nodes anchored on the phosphates: on a sugar map that is one tube along the backbone (a confident detector
paints C5′ and O3′ as sugar too) they find one node per sugar where the mean-shift modes do not."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import cKDTree

from haruspex_engine.nucleic.building import sugar_anchors
from haruspex_engine.nucleic.building.build import build_nucleic_model
from haruspex_engine.nucleic.building.evaluate import evaluate_model
from haruspex_engine.nucleic.building.node_evidence import filter_nodes
from haruspex_engine.nucleic.building.nodes import NodeSet, cluster_nodes
from haruspex_engine.nucleic.building.nucleotides import SUGAR_ATOMS
from haruspex_engine.nucleic.building.sugar_anchors import MOVED_MERGE_A, anchored_sugars, one_per_sugar
from haruspex_engine.nucleic.classes import STAGE2_CLASSES
from haruspex_engine.testing.oracle_maps import Corruption, oracle_maps
from haruspex_engine.testing.rna_models import ideal_rna

SUGAR = STAGE2_CLASSES.index("sugar")


@pytest.fixture(scope="module")
def tube():
    """Oracle maps of the ideal 30-nt RNA (blobs σ 1.5 Å) with correlated noise, the sugar channel saturated
    (3 × probability, clipped to 1): a plateau along the backbone instead of one blob per sugar."""
    structure = ideal_rna()
    maps = oracle_maps(structure, Corruption(noise_sigma=0.05, noise_correlation_A=1.5, seed=0), blob_sigma_A=1.5)
    maps.stage2[SUGAR] = np.clip(3.0 * maps.stage2[SUGAR], 0.0, 1.0)
    return structure, maps


def _sugar_centroids(structure) -> np.ndarray:
    return np.array([np.mean([a.pos.tolist() for a in residue if a.name in SUGAR_ATOMS], axis=0)
                     for chain in structure[0] for residue in chain])


def _recall_precision(nodes: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Sugars with a node within 2 Å, and nodes within 2 Å of a sugar."""
    distance, nearest = cKDTree(truth).query(nodes)
    near = distance <= 2.0
    return len(set(nearest[near].tolist())) / len(truth), float(near.mean())


def test_anchored_sugars_find_one_node_per_sugar_on_a_backbone_tube(tube):
    structure, maps = tube
    nodes = filter_nodes(cluster_nodes(maps.stage2, maps.density, maps.origin), maps.stage2, maps.density,
                         maps.origin).nodes
    truth = _sugar_centroids(structure)
    mean_shift = _recall_precision(nodes["sugar"].xyz, truth)
    anchored = anchored_sugars(nodes["sugar"], nodes["phosphate"].xyz, maps.stage2[SUGAR], maps.origin)
    assert mean_shift[1] < 0.9  # the scene has the problem: extra modes along the tube
    assert _recall_precision(anchored.xyz, truth) >= (1.0, 0.95)
    # one node per sugar, and one more: the 5′-terminal phosphate has one sugar, so its shells are searched for the
    # other (``_one_sided``), and this saturated tube reaches the threshold 5.3 Å from the first sugar
    assert len(anchored) == len(truth) + 1
    # every voxel of the thresholded map belongs to a node within reach or to none
    assigned = anchored.members >= 0
    voxel_xyz = anchored.voxels[assigned][:, ::-1] + np.asarray(maps.origin)
    assert np.linalg.norm(voxel_xyz - anchored.xyz[anchored.members[assigned]], axis=1).max() <= 3.5


def test_the_sugars_beside_a_phosphate_that_was_not_found_are_looked_for_round_the_phosphates_left(tube, monkeypatch):
    """Three phosphate nodes of the tube removed (a detector missing them): the six sugars beside them have no
    phosphate pair, and on this plateau no mean-shift mode of their own. They are found on the shells round their
    other phosphates (SHELL_RADII_A), as the pairs alone do not."""
    structure, maps = tube
    nodes = filter_nodes(cluster_nodes(maps.stage2, maps.density, maps.origin), maps.stage2, maps.density,
                         maps.origin).nodes
    truth = _sugar_centroids(structure)
    phosphate = nodes["phosphate"].xyz
    atoms = np.array([residue["P"][0].pos.tolist() for chain in structure[0] for residue in chain
                      if residue.find_atom("P", "*")])
    _, missed = cKDTree(phosphate).query(atoms[[8, 15, 22]])
    kept = np.delete(phosphate, missed, axis=0)
    anchored = anchored_sugars(nodes["sugar"], kept, maps.stage2[SUGAR], maps.origin)
    assert _recall_precision(anchored.xyz, truth) >= (1.0, 0.95)
    monkeypatch.setattr(sugar_anchors, "_one_sided", lambda *_: (np.empty((0, 3)), np.empty(0)))
    pairs_only = anchored_sugars(nodes["sugar"], kept, maps.stage2[SUGAR], maps.origin)
    assert _recall_precision(pairs_only.xyz, truth)[0] < 1.0


def test_anchored_sugars_keep_mean_shift_nodes_without_phosphates(tube):
    structure, maps = tube
    nodes = filter_nodes(cluster_nodes(maps.stage2, maps.density, maps.origin), maps.stage2, maps.density,
                         maps.origin).nodes
    alone = anchored_sugars(nodes["sugar"], np.empty((0, 3)), maps.stage2[SUGAR], maps.origin)
    np.testing.assert_array_equal(alone.xyz, nodes["sugar"].xyz)


def test_the_build_with_anchored_sugars_covers_the_tube_and_builds_no_extra_residues(tube):
    structure, maps = tube
    scores = {}
    for source in ("mean-shift", "anchored"):
        result = build_nucleic_model(maps.stage2, maps.density, maps.origin, sugar_nodes=source)
        assert result.node_filter["sugar_nodes"] == source
        scores[source] = evaluate_model(result.structure, structure)
    anchored = scores["anchored"]
    assert anchored["backbone_coverage_3A"] >= 0.9 and anchored["backbone_precision_3A"] >= 0.95
    assert anchored["backbone_precision_3A"] > scores["mean-shift"]["backbone_precision_3A"]
    with pytest.raises(ValueError, match="sugar_nodes"):
        build_nucleic_model(maps.stage2, maps.density, maps.origin, sugar_nodes="modes")


def test_a_phosphate_pair_that_is_no_step_adds_no_second_sugar_beside_a_true_one():
    """One sugar (σ 2 Å) between its two phosphates, and a third phosphate 5 Å from the second: that pair is no
    backbone step, but its circle passes 2–3.5 Å from the sugar, where the probability still reaches
    MIN_PROBABILITY. One node, on the sugar (sugar centres of distinct nucleotides lie ≥ 4.4 Å apart)."""
    shape = (24, 24, 24)
    sugar = np.array([12.0, 12.0, 10.0])  # (x, y, z) Å
    phosphates = sugar + np.array([[-3.0, -2.8, 0.0], [3.0, -2.8, 0.0], [3.0, -2.8, 5.0]])
    z, y, x = np.indices(shape, dtype=float)
    probability = np.exp(-((x - sugar[0]) ** 2 + (y - sugar[1]) ** 2 + (z - sugar[2]) ** 2) / (2 * 2.0**2))
    candidates, _ = sugar_anchors._candidates(phosphates, ndimage.gaussian_filter(probability, 1.0), (0, 0, 0),
                                              sugar_anchors.PERPENDICULAR_A["RNA"])
    off = np.linalg.norm(candidates - sugar, axis=1)
    assert off.min() < 1.0 and ((off > 2.0) & (off < 3.5)).any()
    no_mean_shift = NodeSet("sugar", np.empty((0, 3)), np.empty(0), np.empty((0, 3), dtype=int),
                            np.empty(0, dtype=int), shape)
    nodes = anchored_sugars(no_mean_shift, phosphates, probability, (0.0, 0.0, 0.0))
    assert len(nodes) == 1 and np.linalg.norm(nodes.xyz[0] - sugar) < 1.0


@pytest.mark.parametrize("separation_A", [3.8, 8.2])
def test_a_step_whose_phosphate_nodes_lie_off_their_atoms_still_anchors_its_sugar(separation_A):
    """Node errors put the phosphate nodes of one step 3.8 or 8.2 Å apart (their atoms: 4.4–7.4 Å); the sugar
    between them (σ 1.5 Å, 2.8 Å off their line) is still found, and only there."""
    shape = (24, 24, 24)
    middle = np.array([12.0, 12.0, 12.0])  # (x, y, z) Å
    phosphates = middle + np.array([[-separation_A / 2, 0.0, 0.0], [separation_A / 2, 0.0, 0.0]])
    sugar = middle + np.array([0.0, sugar_anchors.PERPENDICULAR_A["RNA"], 0.0])
    z, y, x = np.indices(shape, dtype=float)
    probability = np.exp(-((x - sugar[0]) ** 2 + (y - sugar[1]) ** 2 + (z - sugar[2]) ** 2) / (2 * 1.5**2))
    no_mean_shift = NodeSet("sugar", np.empty((0, 3)), np.empty(0), np.empty((0, 3), dtype=int),
                            np.empty(0, dtype=int), shape)
    nodes = anchored_sugars(no_mean_shift, phosphates, probability, (0.0, 0.0, 0.0))
    assert len(nodes) == 1 and np.linalg.norm(nodes.xyz[0] - sugar) < 1.0


def test_moved_sugar_nodes_that_met_are_one_sugar_and_the_heavier_keeps_its_place():
    """Nodes 0 and 1 end 1.5 Å apart (two candidates of one nucleotide that climbed to one mode): one node, where the
    heavier (three voxels against one) stands, holding all four voxels. Node 2, 3 Å from node 0 (farther than
    MOVED_MERGE_A), and node 3 stay."""
    xyz = np.array([[10.0, 10.0, 10.0], [11.5, 10.0, 10.0], [10.0, 13.0, 10.0], [20.0, 20.0, 20.0]])
    voxels = np.array([[10, 10, 10], [10, 10, 9], [10, 9, 10], [10, 10, 11], [10, 13, 10], [20, 20, 20]])
    members = np.array([0, 0, 0, 1, 2, 3])
    nodes = NodeSet("sugar", xyz, np.ones(4), voxels, members, (24, 24, 24))
    assert 1.5 < MOVED_MERGE_A < 3.0
    merged = one_per_sugar(nodes, np.ones((24, 24, 24)))
    np.testing.assert_array_equal(merged.xyz, xyz[[0, 2, 3]])
    np.testing.assert_array_equal(merged.members, [0, 0, 0, 0, 1, 2])
