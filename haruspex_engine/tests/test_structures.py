"""Ideal structures built in code and maps simulated from them."""

from __future__ import annotations

import itertools
import math

import gemmi
import numpy as np
import pytest

from haruspex_engine import structures
from haruspex_engine.maps import read_map
from haruspex_engine.simulate import simulate_map, write_example_map


def coords(chain: gemmi.Chain, name: str) -> np.ndarray:
    return structures.atom_coordinates(chain, name)


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a - b, axis=-1)


def structure_coords(structure: gemmi.Structure, name: str | None = None) -> np.ndarray:
    return np.array([atom.pos.tolist() for chain in structure[0] for residue in chain for atom in residue
                     if name is None or atom.name == name])


@pytest.fixture(scope="module")
def helix() -> gemmi.Chain:
    return structures.ideal_alpha_helix(18, start=(1.0, 2.0, 3.0), axis=(0.0, 0.0, 1.0))


@pytest.fixture(scope="module")
def scene() -> gemmi.Structure:
    return structures.example_scene()


@pytest.mark.parametrize("chain", [
    structures.ideal_alpha_helix(12),
    structures.ideal_beta_strand(9),
    structures.chain_from_torsions(["ALA", "GLY", "SER", "ALA"], [-70, 80, -120, -60], [140, 10, 120, -40]),
])
def test_backbone_bond_lengths(chain: gemmi.Chain) -> None:
    n, ca, c, o = (coords(chain, name) for name in ("N", "CA", "C", "O"))
    assert len(n) == len(ca) == len(c) == len(o) == len(chain)
    np.testing.assert_allclose(distances(n, ca), 1.46, atol=0.02)
    np.testing.assert_allclose(distances(ca, c), 1.52, atol=0.02)
    np.testing.assert_allclose(distances(c[:-1], n[1:]), 1.33, atol=0.02)
    np.testing.assert_allclose(distances(c, o), 1.23, atol=0.02)
    # Consecutive CAs of a trans peptide are 3.8 Å apart.
    np.testing.assert_allclose(distances(ca[:-1], ca[1:]), 3.8, atol=0.05)


def test_cb_is_l_chirality_and_glycine_has_none() -> None:
    chain = structures.chain_from_torsions(["ALA", "GLY", "ALA"], [-60] * 3, [-45] * 3)
    assert [atom.name for atom in chain[1]] == ["N", "CA", "C", "O"]
    for residue in (chain[0], chain[2]):
        n, ca, c, cb = (np.array(residue[name][0].pos.tolist()) for name in ("N", "CA", "C", "CB"))
        assert np.linalg.norm(cb - ca) == pytest.approx(1.53, abs=0.01)
        # Chiral volume of CA (N, C, CB) is about +2.5 Å^3 for L amino acids.
        assert np.dot(n - ca, np.cross(c - ca, cb - ca)) == pytest.approx(2.5, abs=0.2)


def test_chain_from_torsions_reproduces_torsions() -> None:
    phis, psis = [-75.0, -120.0, 60.0, -65.0], [150.0, 130.0, 40.0, -40.0]
    chain = structures.chain_from_torsions(["ALA"] * 4, phis, psis)
    for i in range(3):
        this, after = chain[i], chain[i + 1]
        n, ca, c = (this[name][0].pos for name in ("N", "CA", "C"))
        n2, ca2, c2 = (after[name][0].pos for name in ("N", "CA", "C"))
        assert math.degrees(gemmi.calculate_dihedral(n, ca, c, n2)) == pytest.approx(psis[i], abs=1e-6)
        assert math.degrees(gemmi.calculate_dihedral(c, n2, ca2, c2)) == pytest.approx(phis[i + 1], abs=1e-6)
        assert abs(math.degrees(gemmi.calculate_omega(this, after))) == pytest.approx(180.0, abs=1e-6)
        assert math.degrees(gemmi.calculate_angle(n2, ca2, c2)) == pytest.approx(111.2, abs=1e-6)


def test_chain_from_torsions_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="one phi, psi and omega per residue"):
        structures.chain_from_torsions(["ALA"] * 3, [-60] * 3, [-45] * 2)


def test_helix_hydrogen_bonds(helix: gemmi.Chain) -> None:
    o, n = coords(helix, "O"), coords(helix, "N")
    hbonds = distances(o[:-4], n[4:])
    assert np.all((hbonds > 2.85) & (hbonds < 3.15))
    # i -> i+4 is the nearest backbone N to each O beyond the residue's own neighbours.
    assert np.all(hbonds < distances(o[:-3], n[3:])[: len(hbonds)])


def test_helix_rise_radius_and_turn(helix: gemmi.Chain) -> None:
    ca = coords(helix, "CA")
    rise = np.diff(ca[:, 2])
    np.testing.assert_allclose(rise, 1.5, atol=0.1)
    radial = ca[:, :2] - np.array([1.0, 2.0])
    np.testing.assert_allclose(np.linalg.norm(radial, axis=1), 2.3, atol=0.1)
    turn = np.degrees(np.diff(np.unwrap(np.arctan2(radial[:, 1], radial[:, 0]))))
    np.testing.assert_allclose(360.0 / turn, 3.6, atol=0.1)  # positive: right-handed about +z
    assert ca[0, 2] == pytest.approx(3.0, abs=1e-6)


def test_helix_follows_requested_axis() -> None:
    axis = np.array([1.0, 1.0, 0.0]) / math.sqrt(2)
    ca = coords(structures.ideal_alpha_helix(11, start=(5.0, 0.0, 0.0), axis=axis), "CA")
    along = (ca - [5.0, 0.0, 0.0]) @ axis
    np.testing.assert_allclose(np.diff(along), 1.5, atol=0.1)
    perpendicular = (ca - [5.0, 0.0, 0.0]) - np.outer(along, axis)
    np.testing.assert_allclose(np.linalg.norm(perpendicular, axis=1), 2.3, atol=0.1)


def test_strand_rise_and_pleat() -> None:
    strand = structures.ideal_beta_strand(7, axis=(1.0, 0.0, 0.0), up=(0.0, 0.0, 1.0))
    ca, cb = coords(strand, "CA"), coords(strand, "CB")
    np.testing.assert_allclose(np.diff(ca[:, 0]), 3.4, atol=0.15)
    side = np.sign(cb[:, 2] - ca[:, 2])
    assert side[3] == 1  # the middle residue points "up"
    assert np.all(side[:-1] == -side[1:])  # side chains alternate across the sheet


def sheet_pairs(a: gemmi.Chain, b: gemmi.Chain) -> tuple[np.ndarray, np.ndarray]:
    """For each residue of a, the nearest N(b) to its O and the nearest O(b) to its N."""
    o_to_n = distances(coords(a, "O")[:, None], coords(b, "N")[None]).min(axis=1)
    n_to_o = distances(coords(a, "N")[:, None], coords(b, "O")[None]).min(axis=1)
    return o_to_n, n_to_o


def test_antiparallel_sheet_hydrogen_bonds() -> None:
    sheet = structures.beta_sheet(4, 7, spacing_A=4.8, antiparallel=True)
    assert [chain.name for chain in sheet] == ["A", "B", "C", "D"]
    for k, (a, b) in enumerate(itertools.pairwise(sheet)):
        gap = coords(b, "CA")[:, 1] - coords(a, "CA")[:, 1]
        assert gap.mean() == pytest.approx(4.8, abs=0.01)
        np.testing.assert_allclose(gap, 4.8, atol=0.15)
        direction = np.diff(coords(b, "CA")[:, 0]).mean() * np.diff(coords(a, "CA")[:, 0]).mean()
        assert direction < 0  # neighbours run opposite ways
        o_to_n, n_to_o = sheet_pairs(a, b)
        bonded = o_to_n < 3.5
        # Narrow pairs (two H-bonds, N-O ~2.9 Å) alternate with wide pairs (none).
        assert np.all(bonded[:-1] != bonded[1:])
        assert bonded.sum() == (4 if k % 2 == 0 else 3)
        assert np.all(np.abs(o_to_n[bonded] - 2.9) < 0.15)
        assert np.all(np.abs(n_to_o[bonded] - 2.9) < 0.15)
        assert np.all(o_to_n[~bonded] > 4.0)
        # Facing residues put their CBs on the same side of the sheet.
        side_a = np.sign(coords(a, "CB")[:, 2] - coords(a, "CA")[:, 2])
        side_b = np.sign(coords(b, "CB")[:, 2] - coords(b, "CA")[:, 2])
        np.testing.assert_array_equal(side_a, side_b[::-1])


def test_parallel_sheet_hydrogen_bonds() -> None:
    a, b = structures.beta_sheet(2, 7, antiparallel=False)
    assert np.diff(coords(a, "CA")[:, 0]).mean() * np.diff(coords(b, "CA")[:, 0]).mean() > 0
    o_to_n, n_to_o = sheet_pairs(a, b)
    assert np.sum(np.abs(o_to_n - 3.0) < 0.2) >= 3
    assert np.sum(np.abs(n_to_o - 3.0) < 0.2) >= 3


def test_assemble_cell_and_padding() -> None:
    chains = [structures.ideal_alpha_helix(10, chain_id="H", start=(-30.0, 5.0, -2.0))]
    chains += structures.beta_sheet(2, 5, chain_ids=["S", "T"])
    structure = structures.assemble(chains, cell_padding_A=6.0)
    xyz = structure_coords(structure)
    np.testing.assert_allclose(xyz.min(axis=0), 6.0, atol=1e-3)
    cell = structure.cell
    np.testing.assert_allclose(xyz.max(axis=0) + 6.0, [cell.a, cell.b, cell.c], atol=1e-3)
    assert structure.spacegroup_hm == "P 1"
    assert [chain.name for chain in structure[0]] == ["H", "S", "T"]
    with pytest.raises(ValueError, match="unique"):
        structures.assemble([chains[0], chains[0]])


def test_example_scene_fits_cell(scene: gemmi.Structure) -> None:
    assert [chain.name for chain in scene[0]] == list("ABCDEFG")
    assert [len(chain) for chain in scene[0]] == [18, 18, 18, 7, 7, 7, 7]
    cell = scene.cell
    edges = np.array([cell.a, cell.b, cell.c])
    assert np.all(edges <= 48.0)
    xyz = structure_coords(scene)
    assert np.all(xyz >= 7.99) and np.all(xyz <= edges - 7.99)
    # No clashes: only the sheet's hydrogen-bonded N-O pairs come closer than 3.5 Å across chains.
    chain_of = np.array([i for i, chain in enumerate(scene[0]) for residue in chain for _ in residue])
    pair = distances(xyz[:, None], xyz[None])
    across = chain_of[:, None] != chain_of[None]
    assert pair[across].min() > 2.7
    helix_atoms = chain_of < 3
    assert pair[across & (helix_atoms[:, None] | helix_atoms[None])].min() > 3.5
    assert structures.example_scene()[0][2][5]["CA"][0].pos.dist(scene[0][2][5]["CA"][0].pos) == 0.0


def test_simulated_map_grid_and_density(scene: gemmi.Structure) -> None:
    voxel = 1.3
    density, origin = simulate_map(scene, voxel_size=voxel, resolution=4.0)
    cell = scene.cell
    assert density.dtype == np.float32
    assert origin == (0.0, 0.0, 0.0)
    expected_zyx = tuple(math.ceil(edge / voxel) for edge in (cell.c, cell.b, cell.a))
    assert density.shape == expected_zyx
    ca = structure_coords(scene, "CA")
    index = np.round((ca - origin) / voxel).astype(int)
    at_ca = density[index[:, 2], index[:, 1], index[:, 0]]
    assert at_ca.mean() > density.mean() + 3 * density.std()
    assert np.all(at_ca > np.percentile(density, 90))
    # The strongest voxel lies within 2 Å of an atom.
    peak_xyz = np.array(np.unravel_index(np.argmax(density), density.shape)[::-1]) * voxel
    assert distances(structure_coords(scene), peak_xyz).min() < 2.0
    # Padding: the faces of the box are (near) empty.
    assert max(abs(density[0]).max(), abs(density[:, :, 0]).max()) < 0.05 * density.max()


def test_voxel_size_is_exact_when_cell_divides() -> None:
    structure = structures.assemble([structures.ideal_alpha_helix(6)])
    structure.cell = gemmi.UnitCell(33.0, 22.0, 44.0, 90, 90, 90)
    density, _ = simulate_map(structure, voxel_size=1.1, resolution=3.0)
    assert density.shape == (40, 20, 30)


def test_resolution_blurs_the_map(scene: gemmi.Structure) -> None:
    sharp, _ = simulate_map(scene, voxel_size=1.0, resolution=2.0)
    blurred, _ = simulate_map(scene, voxel_size=1.0, resolution=6.0)
    assert sharp.sum() == pytest.approx(blurred.sum(), rel=0.02)  # same scattering mass
    assert blurred.max() < 0.5 * sharp.max()


def test_noise_is_seeded(scene: gemmi.Structure) -> None:
    clean, _ = simulate_map(scene, voxel_size=1.5, resolution=4.0)
    first, _ = simulate_map(scene, voxel_size=1.5, resolution=4.0, noise_sigma=0.5, seed=7)
    again, _ = simulate_map(scene, voxel_size=1.5, resolution=4.0, noise_sigma=0.5, seed=7)
    other, _ = simulate_map(scene, voxel_size=1.5, resolution=4.0, noise_sigma=0.5, seed=8)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first.dtype == np.float32
    assert (first - clean).std() == pytest.approx(0.5 * clean.std(), rel=0.05)


def test_simulate_rejects_bad_input(scene: gemmi.Structure) -> None:
    with pytest.raises(ValueError, match="positive"):
        simulate_map(scene, voxel_size=0.0, resolution=4.0)
    with pytest.raises(ValueError, match="noise_sigma"):
        simulate_map(scene, voxel_size=1.0, resolution=4.0, noise_sigma=-1.0)
    no_cell = gemmi.Structure()
    no_cell.add_model(gemmi.Model(1))
    with pytest.raises(ValueError, match="unit cell"):
        simulate_map(no_cell, voxel_size=1.0, resolution=4.0)


def test_write_example_map(tmp_path, scene: gemmi.Structure) -> None:
    path = write_example_map(tmp_path / "example.mrc")
    assert path == tmp_path / "example.mrc"
    written = read_map(path)
    expected, origin = simulate_map(scene, voxel_size=1.1, resolution=4.0)
    np.testing.assert_allclose(written.voxel_size, (1.1, 1.1, 1.1), atol=1e-5)
    np.testing.assert_allclose(written.origin, origin, atol=1e-5)
    np.testing.assert_array_equal(written.data, expected)
