"""Random scenes of ideal structure elements and their simulated maps: the training data of the demo model.

A scene is a P 1 box of non-overlapping elements, each built in code and placed at a random position and
orientation: α-helices, β-sheets (2-5 strands, parallel or antiparallel), irregular coil, A-RNA and B-DNA duplexes
and single RNA strands. Protein residues get side chains of 0-4 atoms beyond CB (Gly, Ala, Ser, Met, Lys) with
random rotamers, so helices and strands carry side-chain density as in real maps. Each element has its own
B-factor, so the local resolution varies across a map. Its map is simulated with gemmi at 1.1 Å voxels, with
correlated (Gaussian-filtered) noise and a random overall scale, since Haruspex reads raw intensities.
Lengths in Å, angles in degrees.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import gemmi
import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from haruspex_engine.maps import DensityMap
from haruspex_engine.nucleic.building.atoms import chain_id
from haruspex_engine.nucleic.building.ideal import ideal_na_duplex, ideal_na_strand
from haruspex_engine.simulate import simulate_map
from haruspex_engine.structures import (
    HELIX_PHI,
    HELIX_PSI,
    add_side_chain,
    assemble,
    atom_coordinates,
    beta_sheet,
    chain_from_torsions,
    transform_chain,
)

VOXEL_SIZE = 1.1  # Å, Haruspex's working grid
#: Residue names of protein elements and their side-chain atoms beyond CB (``structures.add_side_chain``).
SIDE_CHAINS = ("GLY", "ALA", "SER", "MET", "LYS")
#: Relative frequency of each element kind in a scene.
ELEMENT_KINDS = {"helix": 0.32, "sheet": 0.2, "coil": 0.23, "duplex": 0.17, "strand": 0.08}
#: Coil backbone conformations: (phi, psi) centres and relative frequency (polyproline II, β, αR, αL).
COIL_BASINS = (((-75.0, 145.0), 0.35), ((-120.0, 130.0), 0.3), ((-65.0, -40.0), 0.25), ((60.0, 40.0), 0.1))
MIN_CLEARANCE_A = 3.5  # closest allowed approach of two elements' atoms
NA_BASES = "ACGU"


@dataclass(frozen=True)
class SceneSettings:
    """Ranges the scenes are drawn from (uniform unless stated)."""

    edge_A: tuple[float, float] = (50.0, 80.0)  # edge of the cube the element centres are drawn in
    elements: tuple[int, int] = (30, 70)  # elements tried per scene (some may not fit)
    nucleic_fraction: float = 0.5  # fraction of scenes that may hold nucleic acid
    resolution_A: tuple[float, float] = (2.8, 4.8)
    b_iso_A2: tuple[float, float] = (10.0, 70.0)  # per element
    noise: tuple[float, float] = (0.05, 0.5)  # noise s.d. relative to the map's s.d.
    noise_blur_voxels: float = 1.0  # s.d. of the Gaussian that correlates the noise
    log10_scale: tuple[float, float] = (-0.8, 0.6)  # overall intensity factor, as 10**x


def _residue_names(rng: np.random.Generator, n: int) -> list[str]:
    return list(rng.choice(SIDE_CHAINS, size=n, p=(0.08, 0.22, 0.2, 0.2, 0.3)))


def _dress(chain: gemmi.Chain, rng: np.random.Generator) -> gemmi.Chain:
    for residue in chain:
        add_side_chain(residue, rng.choice((-60.0, 180.0, 60.0), size=4) + rng.normal(0.0, 10.0, size=4))
    return chain


def random_helix(rng: np.random.Generator, chain_ids: Iterator[str]) -> list[gemmi.Chain]:
    """One α-helix of 7-26 residues."""
    n = int(rng.integers(7, 27))
    chain = chain_from_torsions(_residue_names(rng, n), [HELIX_PHI] * n, [HELIX_PSI] * n, chain_id=next(chain_ids))
    return [_dress(chain, rng)]


def random_sheet(rng: np.random.Generator, chain_ids: Iterator[str]) -> list[gemmi.Chain]:
    """A flat β-sheet of 2-5 strands of 4-10 residues."""
    n_strands, n_residues = int(rng.integers(2, 6)), int(rng.integers(4, 11))
    chains = beta_sheet(n_strands, n_residues, antiparallel=bool(rng.random() < 0.7),
                        chain_ids=[next(chain_ids) for _ in range(n_strands)])
    for chain in chains:
        for residue, name in zip(chain, _residue_names(rng, n_residues)):
            residue.name = "ALA" if name == "GLY" else name  # keep the CB the strand builder placed
    return [_dress(chain, rng) for chain in chains]


def random_coil(rng: np.random.Generator, chain_ids: Iterator[str], tries: int = 20) -> list[gemmi.Chain]:
    """An irregular chain of 6-20 residues, torsions drawn from coil basins, without CA clashes."""
    n = int(rng.integers(6, 21))
    centres, weights = zip(*COIL_BASINS)
    chain_id = next(chain_ids)
    for _ in range(tries):
        picks = rng.choice(len(centres), size=n, p=np.asarray(weights) / sum(weights))
        torsions = np.asarray(centres)[picks] + rng.normal(0.0, 12.0, size=(n, 2))
        chain = chain_from_torsions(_residue_names(rng, n), torsions[:, 0], torsions[:, 1], chain_id=chain_id)
        ca = atom_coordinates(chain, "CA")
        distances = np.linalg.norm(ca[:, None] - ca[None], axis=-1)
        if np.all(distances[np.triu_indices(n, 3)] > 4.0):
            return [_dress(chain, rng)]
    return []


def random_duplex(rng: np.random.Generator, chain_ids: Iterator[str]) -> list[gemmi.Chain]:
    """A Watson-Crick duplex of 5-16 base pairs, A-RNA (70 %) or B-DNA."""
    sequence = "".join(rng.choice(list(NA_BASES), size=int(rng.integers(5, 17))))
    dna = bool(rng.random() < 0.3)
    return list(ideal_na_duplex(sequence.replace("U", "T") if dna else sequence, (next(chain_ids), next(chain_ids)),
                                dna=dna))


def random_na_strand(rng: np.random.Generator, chain_ids: Iterator[str]) -> list[gemmi.Chain]:
    """A single A-form RNA strand of 4-12 nucleotides."""
    return [ideal_na_strand("".join(rng.choice(list(NA_BASES), size=int(rng.integers(4, 13)))), next(chain_ids))]


BUILDERS = {"helix": random_helix, "sheet": random_sheet, "coil": random_coil, "duplex": random_duplex,
            "strand": random_na_strand}


def random_scene(rng: np.random.Generator, settings: SceneSettings = SceneSettings(),
                 tries: int = 30) -> gemmi.Structure:
    """A scene of randomly placed elements (module docstring), assembled in a P 1 cell with 8 Å padding."""
    edge = rng.uniform(*settings.edge_A)
    kinds, weights = zip(*ELEMENT_KINDS.items())
    weights = np.asarray(weights)
    if rng.random() >= settings.nucleic_fraction:
        weights = np.where([kind in ("duplex", "strand") for kind in kinds], 0.0, weights)
    ids = (chain_id(index) for index in itertools.count())
    placed: list[gemmi.Chain] = []
    placed_xyz: list[np.ndarray] = []
    tree = None
    for _ in range(int(rng.integers(*settings.elements, endpoint=True))):
        element = BUILDERS[kinds[rng.choice(len(kinds), p=weights / weights.sum())]](rng, ids)
        if not element:
            continue
        b_iso = rng.uniform(*settings.b_iso_A2)
        for chain in element:
            for residue in chain:
                for atom in residue:
                    atom.b_iso = b_iso
        xyz = np.array([atom.pos.tolist() for chain in element for residue in chain for atom in residue])
        centre = xyz.mean(axis=0)
        for _ in range(tries):
            rotation = Rotation.random(random_state=rng).as_matrix()
            shift = rng.uniform(0.0, edge, size=3)
            moved = (xyz - centre) @ rotation.T + shift
            if tree is None or np.all(tree.query(moved)[0] >= MIN_CLEARANCE_A):
                for chain in element:
                    transform_chain(chain, rotation, shift - rotation @ centre)
                placed += element
                placed_xyz.append(moved)
                tree = cKDTree(np.concatenate(placed_xyz))
                break
    if not placed:
        raise RuntimeError("no element could be placed")  # the first always fits: unreachable unless tries == 0
    return assemble(placed)


def scene_map(structure: gemmi.Structure, rng: np.random.Generator,
              settings: SceneSettings = SceneSettings()) -> DensityMap:
    """A simulated map of ``structure`` at a random resolution with correlated noise and a random scale."""
    density, origin = simulate_map(structure, voxel_size=VOXEL_SIZE, resolution=rng.uniform(*settings.resolution_A))
    noise = ndimage.gaussian_filter(rng.standard_normal(density.shape), settings.noise_blur_voxels)
    noise *= rng.uniform(*settings.noise) * density.std() / noise.std()
    scale = 10.0 ** rng.uniform(*settings.log10_scale)
    return DensityMap(data=((density + noise) * scale).astype(np.float32), voxel_size=(VOXEL_SIZE,) * 3,
                      origin=origin)
