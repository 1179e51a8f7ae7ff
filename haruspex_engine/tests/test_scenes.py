"""Random training scenes of ideal elements (the demo model's data) and the side chains they carry."""
import gemmi
import numpy as np
import pytest
from scipy.spatial import cKDTree

from haruspex_engine.structures import SIDE_CHAIN_ANGLE, SIDE_CHAIN_ATOMS, add_side_chain, chain_from_torsions
from haruspex_engine.training.labels import paint_labels
from haruspex_engine.training.scenes import MIN_CLEARANCE_A, VOXEL_SIZE, SceneSettings, random_scene, scene_map
from haruspex_engine.training.segments import training_segments
from haruspex_engine.validation.secondary_structure import label_residues


@pytest.mark.parametrize("name", sorted(SIDE_CHAIN_ATOMS))
def test_side_chain_has_its_bonds_angles_and_torsions(name):
    residue = chain_from_torsions([name], [-60.0], [-45.0])[0]
    chis = [-65.0, 178.0, 62.0, -170.0]
    add_side_chain(residue, chis)
    names = ["N", "CA", "CB"] + [atom for atom, _ in SIDE_CHAIN_ATOMS[name]]
    pos = [residue[atom][0].pos for atom in names]
    for k, (atom, bond) in enumerate(SIDE_CHAIN_ATOMS[name], start=3):
        assert pos[k].dist(pos[k - 1]) == pytest.approx(bond, abs=1e-6)
        assert np.degrees(gemmi.calculate_angle(*pos[k - 2:k + 1])) == pytest.approx(SIDE_CHAIN_ANGLE, abs=1e-6)
        assert np.degrees(gemmi.calculate_dihedral(*pos[k - 3:k + 1])) == pytest.approx(chis[k - 3], abs=1e-6)
        assert residue[atom][0].element.name == atom[0]


def test_side_chain_leaves_other_residues_alone_and_needs_one_torsion_per_atom():
    residue = chain_from_torsions(["ALA"], [-60.0], [-45.0])[0]
    add_side_chain(residue, [60.0])
    assert [atom.name for atom in residue] == ["N", "CA", "C", "O", "CB"]
    with pytest.raises(ValueError, match="LYS needs 4"):
        add_side_chain(chain_from_torsions(["LYS"], [-60.0], [-45.0])[0], [60.0])


@pytest.fixture(scope="module")
def scene():
    rng = np.random.default_rng(2)
    structure = random_scene(rng)
    return structure, scene_map(structure, rng)


def test_scene_is_reproducible_from_its_seed(scene):
    again = random_scene(np.random.default_rng(2))
    first = [atom.pos.tolist() for chain in scene[0][0] for residue in chain for atom in residue]
    second = [atom.pos.tolist() for chain in again[0] for residue in chain for atom in residue]
    assert np.allclose(first, second)


def test_scene_holds_every_class_and_its_elements_do_not_overlap(scene):
    structure, _ = scene
    counts = np.bincount([label.label for label in label_residues(structure)], minlength=4)
    assert np.all(counts[:4] >= 10), counts  # unassigned, helix, sheet and nucleic residues
    # Elements are placed whole; their chains share one B-factor, so atoms of different B belong to other elements.
    atoms = [(atom.pos.tolist(), atom.b_iso) for chain in structure[0] for residue in chain for atom in residue]
    xyz, b_iso = np.array([a[0] for a in atoms]), np.array([a[1] for a in atoms])
    pairs = cKDTree(xyz).query_pairs(MIN_CLEARANCE_A - 0.01, output_type="ndarray")
    assert np.all(b_iso[pairs[:, 0]] == b_iso[pairs[:, 1]])


def test_scene_map_is_noisy_scaled_and_gives_training_segments(scene):
    structure, density = scene
    assert density.voxel_size == (VOXEL_SIZE,) * 3 and np.all(np.isfinite(density.data))
    assert density.data.min() < 0 < density.data.max()  # noise around an empty background
    labels = paint_labels(density, structure, label_residues(structure))
    assert set(np.unique(labels.labels)) >= {-1, 0, 1, 2, 3}
    assert training_segments(density, labels, structure)


def test_scene_maps_of_one_structure_differ_only_by_their_random_scale(scene):
    fixed = SceneSettings(resolution_A=(4.0, 4.0), noise=(0.0, 0.0))  # only the scale is left to chance
    maps = [scene_map(scene[0], np.random.default_rng(seed), fixed).data for seed in range(4)]
    low, high = fixed.log10_scale
    logs = []
    for data in maps[1:]:
        dense = maps[0] > 0.1 * maps[0].max()
        ratio = data[dense] / maps[0][dense]
        np.testing.assert_allclose(ratio, ratio[0], rtol=1e-4)  # one factor over the whole map
        logs.append(np.log10(ratio[0]))
    assert all(low - high <= value <= high - low for value in logs)
    assert max(map(abs, logs)) > 0.2, logs
