""""Oracle" detection maps: what a perfect detector would output for a known nucleic-acid model, with controlled
corruption, for testing and benchmarking model building without the networks.

The eight maps follow the stage-2 layout of ``nucleic.networks.STAGE2_CLASSES`` (sugar, phosphate, A, UT, C, G,
protein, base) on a 1 Å grid: each class map is the maximum over that class's atoms of a Gaussian blob
exp(−d² / 2σ²) (σ = ``blob_sigma_A``), so it is 1 at an atom centre and falls to ~0 within 3σ. Atom classes:
sugar = C1′ C2′ O2′ C3′ O3′ C4′ O4′ C5′, phosphate = P OP1 OP2 O5′ OP3, base = every other nucleotide atom, each
base-type map = the base atoms of residues of that type (U and T together), protein = atoms of amino-acid residues.
The matching density map is simulated from the (uncorrupted) model with gemmi on the same grid.

Corruption (all driven by one seed): Gaussian noise on every map (then clipped to [0, 1]); a fraction of residues
dropped from all maps; a fraction of residues whose base is painted into another base-type map; false blobs of a
random class at random points near the molecule (within ``false_blob_shell_A`` of an atom).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import gemmi
import numpy as np

from haruspex_engine.nucleic.building.nucleotides import PHOSPHATE_ATOMS, SUGAR_ATOMS
from haruspex_engine.nucleic.classes import BASE_TYPES, STAGE2_CLASSES
from haruspex_engine.simulate import density_on_grid

#: Base-type channel of each nucleotide residue name.
BASE_TYPE = {"A": "A", "DA": "A", "U": "UT", "DU": "UT", "DT": "UT", "T": "UT", "C": "C", "DC": "C", "G": "G",
             "DG": "G"}


@dataclass(frozen=True)
class Corruption:
    """noise_sigma: std of Gaussian noise added to each map (probability units). drop_fraction: residues left out
    of every map. confusion_fraction: residues whose base goes into a wrong base-type map. false_blobs_per_1000_A3:
    spurious blobs per 1000 Å³ of the shell within ``false_blob_shell_A`` Å of the model. seed: for all of it."""

    noise_sigma: float = 0.0
    drop_fraction: float = 0.0
    confusion_fraction: float = 0.0
    false_blobs_per_1000_A3: float = 0.0
    false_blob_shell_A: float = 6.0
    seed: int = 0


CLEAN = Corruption(noise_sigma=0.05)
REALISTIC = Corruption(noise_sigma=0.15, drop_fraction=0.05, confusion_fraction=0.15, false_blobs_per_1000_A3=2.0)


@dataclass(frozen=True)
class OracleMaps:
    """stage2: float32 (8, Z, Y, X) in STAGE2_CLASSES order; density: float32 (Z, Y, X) simulated map; origin: (x, y,
    z) Å of voxel (0, 0, 0); voxel size 1 Å. dropped / confused: (chain, residue number) of the corrupted residues."""

    stage2: np.ndarray
    density: np.ndarray
    origin: tuple[float, float, float]
    dropped: tuple[tuple[str, int], ...]
    confused: tuple[tuple[str, int], ...]


def oracle_maps(
    structure: gemmi.Structure,
    corruption: Corruption = CLEAN,
    *,
    padding_A: float = 12.0,
    blob_sigma_A: float = 1.0,
    resolution_A: float = 3.5,
) -> OracleMaps:
    """Eight detection maps and a simulated density for the first model of ``structure`` (see module docstring).

    The grid is 1 Å, covering the model's atoms plus ``padding_A`` on every side, origin on whole Å.
    """
    rng = np.random.default_rng(corruption.seed)
    model = structure[0]
    residues = [(chain.name, residue) for chain in model for residue in chain]
    if not residues:
        raise ValueError("the structure has no residues")
    xyz_all = np.array([atom.pos.tolist() for _, residue in residues for atom in residue])
    origin = np.floor(xyz_all.min(axis=0) - padding_A)
    shape_xyz = np.ceil(xyz_all.max(axis=0) + padding_A - origin).astype(int) + 1

    nucleic = [(c, r) for c, r in residues if r.name in BASE_TYPE]
    n_drop = int(round(corruption.drop_fraction * len(nucleic)))
    n_confuse = int(round(corruption.confusion_fraction * len(nucleic)))
    order = rng.permutation(len(nucleic))
    dropped = {id(nucleic[i][1]) for i in order[:n_drop]}
    confused = {id(nucleic[i][1]): BASE_TYPES[(BASE_TYPES.index(BASE_TYPE[nucleic[i][1].name])
                                              + int(rng.integers(1, 4))) % 4]
                for i in order[n_drop:n_drop + n_confuse]}

    points: dict[str, list[list[float]]] = {name: [] for name in STAGE2_CLASSES}
    for _, residue in residues:
        if id(residue) in dropped:
            continue
        for atom in residue:
            for cls in _atom_classes(residue.name, atom.name, confused.get(id(residue))):
                points[cls].append(atom.pos.tolist())
    shell = _false_blob_points(xyz_all, corruption, rng)
    for xyz in shell:
        points[STAGE2_CLASSES[int(rng.integers(len(STAGE2_CLASSES)))]].append(list(xyz))

    shape_zyx = tuple(int(n) for n in shape_xyz[::-1])
    stage2 = np.stack([_blob_map(np.asarray(points[c], float).reshape(-1, 3), origin, shape_zyx, blob_sigma_A)
                       for c in STAGE2_CLASSES])
    if corruption.noise_sigma > 0:
        for channel in stage2:  # one channel at a time: large assemblies stay within memory
            channel += np.float32(corruption.noise_sigma) * rng.standard_normal(channel.shape, dtype=np.float32)
        np.clip(stage2, 0.0, 1.0, out=stage2)
    density = _simulated_density(structure, origin, shape_zyx, resolution_A)
    return OracleMaps(
        stage2=stage2,
        density=density,
        origin=tuple(float(o) for o in origin),
        dropped=tuple((c, r.seqid.num) for c, r in nucleic if id(r) in dropped),
        confused=tuple((c, r.seqid.num) for c, r in nucleic if id(r) in confused),
    )


def _atom_classes(residue_name: str, atom_name: str, confused_type: str | None) -> tuple[str, ...]:
    """Classes an atom paints: sugar, phosphate, or base + its base type; protein atoms paint protein."""
    if residue_name not in BASE_TYPE:
        kind = gemmi.find_tabulated_residue(residue_name)
        return ("protein",) if kind is not None and kind.is_amino_acid() else ()
    if atom_name in SUGAR_ATOMS:
        return ("sugar",)
    if atom_name in PHOSPHATE_ATOMS:
        return ("phosphate",)
    if atom_name.startswith("H"):
        return ()
    return ("base", confused_type or BASE_TYPE[residue_name])


def _false_blob_points(xyz: np.ndarray, corruption: Corruption, rng: np.random.Generator) -> np.ndarray:
    """Random points within the shell of ``false_blob_shell_A`` Å around the atoms (rejection sampling)."""
    if corruption.false_blobs_per_1000_A3 <= 0:
        return np.empty((0, 3))
    from scipy.spatial import cKDTree

    tree = cKDTree(xyz)
    shell = corruption.false_blob_shell_A
    low, high = xyz.min(axis=0) - shell, xyz.max(axis=0) + shell
    trial = rng.uniform(low, high, size=(20000, 3))
    inside = tree.query(trial, distance_upper_bound=shell)[0] < shell
    shell_volume = float(np.prod(high - low)) * float(inside.mean())
    count = rng.poisson(corruption.false_blobs_per_1000_A3 * shell_volume / 1000.0)
    chosen = trial[inside]
    return chosen[rng.choice(len(chosen), size=min(count, len(chosen)), replace=False)]


def _blob_map(points_xyz: np.ndarray, origin: np.ndarray, shape_zyx: tuple[int, int, int],
              sigma: float) -> np.ndarray:
    """Max over points of exp(−d²/2σ²) on the 1 Å grid (z, y, x); float32."""
    out = np.zeros(shape_zyx, np.float32)
    if len(points_xyz) == 0:
        return out
    reach = int(math.ceil(3 * sigma))
    offsets = np.stack(np.meshgrid(*[np.arange(-reach, reach + 1)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    flat = out.reshape(-1)
    size = np.array(shape_zyx[::-1])  # x, y, z
    for chunk in np.array_split(points_xyz, max(1, len(points_xyz) // 2000)):
        local = chunk - origin  # (n, 3) x, y, z in voxels
        nodes = np.rint(local)[:, None, :] + offsets[None]  # (n, m, 3)
        d2 = ((nodes - local[:, None, :]) ** 2).sum(-1)
        value = np.exp(-d2 / (2 * sigma**2)).astype(np.float32)
        idx = nodes.astype(np.int64)
        ok = np.all((idx >= 0) & (idx < size), axis=-1)
        linear = (idx[..., 2] * shape_zyx[1] + idx[..., 1]) * shape_zyx[2] + idx[..., 0]
        np.maximum.at(flat, linear[ok], value[ok])
    return out


def _simulated_density(structure: gemmi.Structure, origin: np.ndarray, shape_zyx: tuple[int, int, int],
                       resolution: float) -> np.ndarray:
    """Simulated density of the model on the oracle grid (z, y, x): atoms moved so the grid origin is at 0."""
    work = structure.clone()
    work.remove_hydrogens()
    shift = gemmi.Position(*(-origin))
    for chain in work[0]:
        for residue in chain:
            for atom in residue:
                atom.pos = atom.pos + shift
    return density_on_grid(work[0], shape_zyx, 1.0, resolution)
