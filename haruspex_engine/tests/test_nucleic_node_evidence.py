"""Node evidence: nodes in solvent density, on protein, on bases, without partners, or split off a sugar go."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from scipy.spatial import cKDTree

from haruspex_engine.nucleic.building import node_evidence
from haruspex_engine.nucleic.building.build import build_nucleic_model, find_nodes
from haruspex_engine.nucleic.building.nodes import BASE_NODE_CLASSES, class_weights, cluster_nodes, moved_onto_density
from haruspex_engine.nucleic.classes import STAGE2_CLASSES
from haruspex_engine.testing.oracle_maps import oracle_maps, preset
from haruspex_engine.testing.rna_models import ideal_rna

SHAPE = (40, 40, 64)  # (z, y, x) Å
ORIGIN = (0.0, 0.0, 0.0)
#: Three nucleotides along x: sugar, phosphate 3.6 Å away, base 4.5 Å away (positions (x, y, z) Å).
SUGARS = np.array([[10.0 + 6 * k, 20.0, 20.0] for k in range(3)])
PHOSPHATES = SUGARS + [3.0, 2.0, 0.0]
BASES = SUGARS + [0.0, 0.0, 4.5]
#: Stage-2 classes that paint no density of their own (their atoms are the base atoms).
BASE_TYPES_ONLY = ("A", "UT", "C", "G")


def _blob(centre_xyz, sigma: float = 1.5, peak: float = 1.0) -> np.ndarray:
    z, y, x = np.indices(SHAPE, dtype=np.float64)
    d2 = (x - centre_xyz[0]) ** 2 + (y - centre_xyz[1]) ** 2 + (z - centre_xyz[2]) ** 2
    return peak * np.exp(-d2 / (2 * sigma**2))


def _noise(rng: np.random.Generator, sd: float, smoothing_A: float = 1.5) -> np.ndarray:
    """Correlated noise: white noise smoothed by a Gaussian of ``smoothing_A`` Å, rescaled to s.d. ``sd``."""
    field = gaussian_filter(rng.standard_normal(SHAPE), smoothing_A)
    return sd * field / field.std()


def _scene(extra: dict[str, list] | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stage-2 maps and density of the three nucleotides, plus ``extra`` blobs by class (a "density" entry adds
    density only), with correlated noise on every map; the solvent density is noise around 0.05, not 0."""
    rng = np.random.default_rng(seed)
    blobs = {"sugar": list(SUGARS), "phosphate": list(PHOSPHATES), "base": list(BASES), "A": list(BASES)}
    for name, points in (extra or {}).items():
        blobs.setdefault(name, []).extend(points)
    stage2 = np.zeros((len(STAGE2_CLASSES),) + SHAPE, np.float32)
    for name, points in blobs.items():
        if name in STAGE2_CLASSES:
            stage2[STAGE2_CLASSES.index(name)] = np.max([_blob(p) for p in points], axis=0)
    stage2 = np.clip(stage2 + np.stack([_noise(rng, 0.05) for _ in STAGE2_CLASSES]), 0, 1).astype(np.float32)
    atoms = [p for name, points in blobs.items() if name not in BASE_TYPES_ONLY for p in points]
    density = np.sum([_blob(p, 1.7) for p in atoms], axis=0)
    density = np.clip(0.05 + density / density.max() + _noise(rng, 0.02), 0, 1).astype(np.float32)
    return stage2, density


def _near(xyz: np.ndarray, point, radius: float) -> int:
    return int((np.linalg.norm(np.asarray(xyz).reshape(-1, 3) - point, axis=1) < radius).sum())


def _filtered(stage2: np.ndarray, density: np.ndarray) -> tuple[dict, node_evidence.FilteredNodes]:
    nodes = cluster_nodes(stage2, density, ORIGIN)
    return nodes, node_evidence.filter_nodes(nodes, stage2, density, ORIGIN)


#: Where ``_scene_with_a_far_sugar_call`` puts its false sugar call, (x, y, z) Å: 20 Å from the molecule.
FAR = np.array([45.0, 20.0, 20.0])


def _scene_with_a_far_sugar_call() -> tuple[np.ndarray, np.ndarray]:
    """``_scene`` plus a smooth false sugar call at FAR, where the density is solvent noise."""
    rng = np.random.default_rng(1)
    stage2, density = _scene()
    sugar = STAGE2_CLASSES.index("sugar")
    stage2[sugar] = np.clip(stage2[sugar] + 0.6 * _blob(FAR, 2.0) * (1 + _noise(rng, 0.3)), 0, 1)
    return stage2, density


def test_a_correlated_noise_blob_in_solvent_gives_no_node() -> None:
    """A smooth false sugar call 20 Å from the molecule, where the density is solvent noise (0.05 ± 0.02): a node
    before the filter, none after; the density rule is what removes it, and the three nucleotides stay."""
    stage2, density = _scene_with_a_far_sugar_call()
    nodes, result = _filtered(stage2, density)
    assert _near(nodes["sugar"].xyz, FAR, 3.0) == 1
    assert _near(result.nodes["sugar"].xyz, FAR, 6.0) == 0
    assert result.report["sugar_after_density"] == result.report["sugar_clustered"] - 1
    assert all(_near(result.nodes["sugar"].xyz, s, 1.5) == 1 for s in SUGARS)
    assert result.report["solvent_level"] == pytest.approx(0.05, abs=0.02)
    assert result.report["solvent_level"] < result.report["density_threshold"] < result.report["molecule_level"]


def test_sugar_and_phosphate_are_clustered_only_near_dense_density() -> None:
    """The far false sugar call above, with the build's node finding (``find_nodes``): sugar and phosphate are
    clustered only within DENSE_REGION_REACH_A of density above the node threshold, so the call makes no node at
    all, and every class keeps the nodes that clustering every voxel keeps (the phosphate and base nodes moved onto
    the density, as ``find_nodes`` moves them)."""
    stage2, density = _scene_with_a_far_sugar_call()
    weights = class_weights(stage2, density)
    clustered = cluster_nodes(stage2, density, ORIGIN)
    moved = {name: node_set if name == "sugar" else moved_onto_density(node_set, weights[name], density, ORIGIN)
             for name, node_set in clustered.items()}
    everywhere = node_evidence.filter_nodes(moved, stage2, density, ORIGIN)
    near_molecule, _ = find_nodes(stage2, density, ORIGIN, "mean-shift")
    assert near_molecule.report["sugar_clustered"] == everywhere.report["sugar_clustered"] - 1
    for name, kept in everywhere.nodes.items():
        np.testing.assert_allclose(near_molecule.nodes[name].xyz, kept.xyz, atol=1e-6)


def test_the_dense_region_is_everything_within_reach_of_a_voxel_above_the_threshold() -> None:
    density = np.zeros((30, 30, 30), np.float32)
    density[15, 15, 15] = 1.0
    maps = node_evidence.EvidenceMaps({}, density, np.ones(density.shape, bool))
    levels = node_evidence.DensityLevels(0.0, 0.01, 1.0, 0.5)
    region = node_evidence.dense_region(maps, levels, 6.0)
    z, y, x = np.indices(density.shape)
    np.testing.assert_array_equal(region, (z - 15) ** 2 + (y - 15) ** 2 + (x - 15) ** 2 <= 36)
    assert not node_evidence.dense_region(maps, node_evidence.DensityLevels(0.0, 0.01, 1.0, 1.0)).any()


@pytest.mark.parametrize("partners, kept", [(("base", "phosphate"), True), (("base",), False),
                                            (("phosphate",), False), ((), False)])
def test_a_sugar_needs_a_base_and_a_phosphate_within_reach(partners: tuple[str, ...], kept: bool) -> None:
    """A fourth sugar, in molecule-level density 16 Å from the others, with or without its own base (4.5 Å) and
    phosphate (3.6 Å) nodes."""
    lone = np.array([34.0, 20.0, 20.0])
    extra: dict[str, list] = {"sugar": [lone]}
    if "base" in partners:
        extra.update(base=[lone + [0.0, 0.0, 4.5]], A=[lone + [0.0, 0.0, 4.5]])
    if "phosphate" in partners:
        extra["phosphate"] = [lone + [3.0, 2.0, 0.0]]
    if not partners:
        extra["density"] = [lone + [0.0, 0.0, 4.5]]  # molecule-level density around it all the same
    stage2, density = _scene(extra)
    nodes, result = _filtered(stage2, density)
    assert _near(nodes["sugar"].xyz, lone, 1.5) == 1
    assert result.report["sugar_after_base"] == 4
    assert _near(result.nodes["sugar"].xyz, lone, 1.5) == int(kept)
    assert result.report["sugar_after_partners"] == 3 + int(kept)
    assert all(_near(result.nodes["sugar"].xyz, s, 1.5) == 1 for s in SUGARS)


def test_a_sugar_call_on_protein_or_on_a_base_is_dropped() -> None:
    """Sugar calls (peak 0.5) inside protein density called protein (peak 1) and on a base called base: dropped."""
    on_protein = np.array([34.0, 20.0, 20.0])
    stage2, density = _scene({"protein": [on_protein + [0, 0, 4.5], on_protein + [-3, 2, 0]],
                              "density": [on_protein]})
    sugar, protein = STAGE2_CLASSES.index("sugar"), STAGE2_CLASSES.index("protein")
    stage2[protein] = np.maximum(stage2[protein], _blob(on_protein, 2.0))
    stage2[sugar] = np.maximum(stage2[sugar], 0.5 * _blob(on_protein))
    stage2[sugar] = np.maximum(stage2[sugar], 0.5 * _blob(BASES[1] + [0, 0, 1.0]))
    nodes, result = _filtered(stage2, density)
    assert _near(nodes["sugar"].xyz, on_protein, 1.5) == 1
    assert result.report["sugar_after_protein"] == result.report["sugar_after_density"] - 1
    assert result.report["sugar_after_base"] == result.report["sugar_after_protein"] - 1
    assert _near(result.nodes["sugar"].xyz, on_protein, 3.0) == 0
    assert _near(result.nodes["sugar"].xyz, BASES[1], 2.5) == 0
    assert all(_near(result.nodes["sugar"].xyz, s, 1.5) == 1 for s in SUGARS)


def test_a_phosphate_call_on_a_base_is_dropped() -> None:
    """A phosphate call (peak 0.6, σ 1 Å) on the middle base, called base over a σ 2 Å blob (a large base), becomes a
    phosphate node in dense density, away from protein and from every other phosphate; the base probability there
    exceeds its own by more than PHOSPHATE_BASE_MARGIN, so it goes. The true phosphates stay."""
    stage2, density = _scene()
    phosphate, base = STAGE2_CLASSES.index("phosphate"), STAGE2_CLASSES.index("base")
    stage2[phosphate] = np.maximum(stage2[phosphate], 0.6 * _blob(BASES[1], 1.0))
    stage2[base] = np.maximum(stage2[base], _blob(BASES[1], 2.0))
    nodes, result = _filtered(stage2, density)
    assert _near(nodes["phosphate"].xyz, BASES[1], 1.0) == 1
    assert _near(result.nodes["phosphate"].xyz, BASES[1], 3.0) == 0
    assert all(_near(result.nodes["phosphate"].xyz, p, 1.0) == 1 for p in PHOSPHATES)
    assert result.report["phosphate_after_base"] < result.report["phosphate_clustered"]


def test_a_split_sugar_is_one_node_that_keeps_both_sets_of_voxels() -> None:
    """A second, lighter sugar mode 3.1 Å from the middle sugar (one sugar split in two) is absorbed by it, voxels
    included; true neighbours 6 Å apart stay."""
    stage2, density = _scene()
    sugar = STAGE2_CLASSES.index("sugar")
    split = SUGARS[1] + [0.0, -3.1, 0.0]
    stage2[sugar] = np.maximum(stage2[sugar], 0.8 * _blob(SUGARS[1] + [0.0, -3.5, 0.0], 1.0))
    nodes, result = _filtered(stage2, density)
    extra = np.flatnonzero(np.linalg.norm(nodes["sugar"].xyz - split, axis=1) < 1.0)
    middle = np.flatnonzero(np.linalg.norm(nodes["sugar"].xyz - SUGARS[1], axis=1) < 1.0)
    assert len(extra) == len(middle) == 1
    assert result.report["sugar_after_partners"] == 4 and result.report["sugar_after_duplicates"] == 3
    kept = result.nodes["sugar"]
    assert all(_near(kept.xyz, s, 1.5) == 1 for s in SUGARS)
    survivor = np.flatnonzero(np.linalg.norm(kept.xyz - SUGARS[1], axis=1) < 1.0)[0]
    np.testing.assert_array_equal(kept.members[np.isin(nodes["sugar"].members, [extra[0], middle[0]])], survivor)


def test_a_split_phosphate_is_one_node_whatever_the_masses() -> None:
    """A second phosphate mode 3.2 Å from the middle phosphate, nearly as heavy (a split the sugar rule's mass ratio
    would keep): one node, at the heavier mode, voxels included; phosphates 6 Å apart stay."""
    stage2, density = _scene()
    phosphate = STAGE2_CLASSES.index("phosphate")
    split = PHOSPHATES[1] + [0.0, 3.2, 0.0]
    stage2[phosphate] = np.maximum(stage2[phosphate], 0.95 * _blob(split))
    nodes, result = _filtered(stage2, density)
    clustered = nodes["phosphate"]
    pair = [int(np.argmin(np.linalg.norm(clustered.xyz - p, axis=1))) for p in (PHOSPHATES[1], split)]
    assert pair[0] != pair[1]
    assert all(np.linalg.norm(clustered.xyz[i] - p) < 1.0 for i, p in zip(pair, (PHOSPHATES[1], split)))
    masses = clustered.masses(stage2[phosphate])[pair]
    assert masses.min() > node_evidence.DUPLICATE_MASS_RATIO * masses.max()
    kept = result.nodes["phosphate"]
    assert _near(kept.xyz, PHOSPHATES[1], 4.0) == 1
    assert all(_near(kept.xyz, p, 1.0) == 1 for p in PHOSPHATES)
    survivor = int(np.argmin(np.linalg.norm(kept.xyz - clustered.xyz[pair[int(np.argmax(masses))]], axis=1)))
    np.testing.assert_array_equal(kept.members[np.isin(clustered.members, pair)], survivor)


def test_absorb_duplicates_takes_light_close_nodes_heaviest_first() -> None:
    """Node 1 (mass 5) absorbs the nodes within 4 Å lighter than 0.3 × 5; node 2 (mass 2) is a neighbour, not a
    fragment; node 4 is no candidate; node 3 is far."""
    xyz = np.array([[0.0, 0, 0], [3.0, 0, 0], [6.0, 0, 0], [20.0, 0, 0], [1.0, 0, 0], [4.5, 0, 0]])
    mass = np.array([1.0, 5.0, 2.0, 1.0, 9.0, 0.5])
    candidates = np.array([True, True, True, True, False, True])
    owner = node_evidence.absorb_duplicates(xyz, mass, candidates)
    np.testing.assert_array_equal(owner, [1, 1, 2, 3, -1, 1])


@pytest.mark.parametrize("solvent", [0.0, 0.3])
def test_density_levels_follow_the_solvent_not_zero(solvent: float) -> None:
    """Solvent noise around ``solvent`` (s.d. 0.02) and bases at 0.9: the threshold lies 40 % of the way up."""
    rng = np.random.default_rng(0)
    values = solvent + 0.02 * rng.standard_normal(100_000)
    levels = node_evidence.density_levels(values, np.ones(values.shape, bool), np.array([0.9, 0.9, solvent]))
    assert levels.solvent == pytest.approx(solvent, abs=0.002)
    assert levels.noise == pytest.approx(0.02, rel=0.05)
    assert levels.molecule == pytest.approx(0.9)
    assert levels.threshold == pytest.approx(solvent + 0.4 * (0.9 - solvent), abs=0.002)
    alone = node_evidence.density_levels(values, np.ones(values.shape, bool), np.array([solvent]))
    assert np.isnan(alone.molecule) and alone.threshold == pytest.approx(solvent + 8 * 0.02, abs=0.005)


@pytest.mark.parametrize("name, noise_nodes", [("clean", True), ("clean-white", False)])
def test_clean_oracle_maps_keep_every_nucleotide(name: str, noise_nodes: bool) -> None:
    """Clean oracle maps of an ideal 30-nt A-RNA strand (seed 0): every C4′ atom keeps a sugar node within 3 Å, and
    every kept sugar node lies on a nucleotide (correlated noise: the nodes it makes are gone)."""
    structure = ideal_rna()
    maps = oracle_maps(structure, preset(name, 0))
    nodes = cluster_nodes(maps.stage2, maps.density, maps.origin)
    result = node_evidence.filter_nodes(nodes, maps.stage2, maps.density, maps.origin)
    c4 = np.array([residue["C4'"][0].pos.tolist() for residue in structure[0][0]])
    assert (cKDTree(result.nodes["sugar"].xyz).query(c4)[0] <= 3.0).all()
    assert (cKDTree(c4).query(result.nodes["sugar"].xyz)[0] <= 3.0).all()
    assert (cKDTree(c4).query(nodes["sugar"].xyz)[0] > 3.0).any() == noise_nodes


def test_the_build_reports_what_the_rules_kept() -> None:
    """build_nucleic_model filters its nodes and reports the counts (clean oracle maps of the ideal strand)."""
    maps = oracle_maps(ideal_rna(), preset("clean", 0))
    result = build_nucleic_model(maps.stage2, maps.density, maps.origin)
    report = result.node_filter
    # the rules ran on the mean-shift nodes first (noise nodes among them), then on the anchored set they led to
    assert report["sugar_nodes"] == "anchored"
    assert report["sugar_mean_shift"] > report["sugar_after_duplicates"] == result.node_counts["sugar"] >= 30
    assert report["phosphate_kept"] == result.node_counts["phosphate"]
    assert report["base_kept"] == sum(result.node_counts[name] for name in BASE_NODE_CLASSES)
