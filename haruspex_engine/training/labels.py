"""Training labels painted from a deposited model, following the Haruspex paper ("Training Data Annotation").

Grid: the map as the network sees it (:func:`working_map`): unchanged when every voxel edge lies in [1.0, 1.2] Å,
otherwise resampled to 1.1 Å exactly as ``annotate_map`` does. Labels, voxel size and origin refer to that grid.

Definitions used here (the paper's wording leaves them open; these are the choices):
- r.m.s.d.: the standard deviation of the working-grid density about its mean (the MRC header's ``rms`` field,
  "r.m.s. deviation from the mean density"). "k r.m.s.d." is the absolute density level k × r.m.s.d., the level a
  viewer contours "at k r.m.s.d." (the mean is not subtracted).
- density at an atom: trilinear interpolation of the working grid at the atom's position; atoms off the grid have
  none and are left out of every mean and count.
- backbone (main-chain) atoms: N CA C O of amino-acid residues; P OP1 OP2 O5' C5' C4' C3' O3' of nucleotides
  (old names O1P, O2P accepted). Residue types are recognised by gemmi's residue table.
- secondary-structure element: a maximal run of residues at consecutive positions of one chain that carry the same
  label, helix, sheet or nucleic acid (from ``validation.secondary_structure.label_residues`` or by hand).
- model atoms: every atom of the first model (waters, ligands and hydrogens included).

Rules, applied on voxel centres:
1. an element whose mean backbone density is > 2 r.m.s.d. is *painted*: voxels within 3 Å of any of its backbone
   atoms get its class;
2. an element whose mean is in [1, 2] r.m.s.d. is *masked*: voxels within 3 Å of its backbone atoms are masked;
   an element below 1 r.m.s.d. (or off the grid) changes nothing;
3. voxels with density ≥ 1 r.m.s.d. farther than 5 Å from every model atom are masked (dense but not modelled);
4. every other voxel is unassigned.
Precedence where shells overlap: painted classes beat everything, sheet over helix over nucleic acid (the original
training code's tie rule, "less common classes have preference"); a mask replaces only unassigned voxels, so a voxel
near a well-resolved element keeps that element's class even when it is also near a weak one.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import gemmi
import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from haruspex_engine.annotation.annotate import working_map
from haruspex_engine.annotation.checkpoint import CHANNELS
from haruspex_engine.maps import DensityMap, Vec3
from haruspex_engine.validation.secondary_structure import HELIX, NUCLEIC, SHEET, UNASSIGNED, ResidueLabel

#: Label value of masked voxels (excluded from the training loss).
MASKED = -1
UNASSIGNED_CHANNEL = CHANNELS.index("unassigned")
#: Network channel (CHANNELS index) of each residue label that forms elements.
CHANNEL_OF_LABEL = {SHEET: CHANNELS.index("sheet"), HELIX: CHANNELS.index("helix"), NUCLEIC: CHANNELS.index("nucleic")}
PROTEIN_BACKBONE = frozenset({"N", "CA", "C", "O"})
NUCLEIC_BACKBONE = frozenset({"P", "OP1", "OP2", "O1P", "O2P", "O5'", "C5'", "C4'", "C3'", "O3'"})

PAINT_LEVEL = 2.0  # r.m.s.d.: elements above it are painted
MASK_LEVEL = 1.0  # r.m.s.d.: elements in [MASK_LEVEL, PAINT_LEVEL] are masked; also the unmodelled-density level
PAINT_RADIUS_A = 3.0
UNMODELLED_DISTANCE_A = 5.0


@dataclass(frozen=True)
class Element:
    """One secondary-structure element: residues ``first``..``last`` (positions in ``chain``, inclusive) labelled
    ``label`` (a ``secondary_structure`` constant). backbone_density: mean density at its backbone atoms in units of
    r.m.s.d. (NaN when none is on the grid). outcome: "painted", "masked" or "ignored"."""

    chain: str
    first: int
    last: int
    label: int
    backbone_density: float
    outcome: str


@dataclass(frozen=True)
class LabelVolume:
    """Painted training labels on the working grid.

    labels: int8 (z, y, x), the network channel index (CHANNELS order: 0 sheet, 1 helix, 2 nucleic, 3 unassigned)
    or MASKED (-1). voxel_size, origin: (x, y, z) Å; origin is the position of voxel (0, 0, 0). rmsd: the map's
    r.m.s.d. (density units) that the levels refer to. elements: every element and what was done with it.
    """

    labels: np.ndarray
    voxel_size: Vec3
    origin: Vec3
    rmsd: float
    elements: tuple[Element, ...]


@dataclass(frozen=True)
class ModelAtoms:
    """The atoms of a structure's first model.

    xyz: float64 (N, 3) positions (x, y, z) Å. backbone: bool (N,), main-chain atom (see module docstring).
    residue: int (N,), row of the atom's residue in ``residues``. residues: (chain name, position in chain,
    residue name) per residue, in model order.
    """

    xyz: np.ndarray
    backbone: np.ndarray
    residue: np.ndarray
    residues: tuple[tuple[str, int, str], ...]


def map_rmsd(grid: DensityMap) -> float:
    """The map's r.m.s.d.: standard deviation of its density about the mean (density units)."""
    return float(np.std(grid.data, dtype=np.float64))


def model_atoms(structure: gemmi.Structure) -> ModelAtoms:
    """Positions, backbone flags and residues of the atoms of ``structure``'s first model."""
    if len(structure) == 0:
        raise ValueError(f"structure {structure.name!r}: no model")
    xyz, backbone, residue, residues = [], [], [], []
    for chain in structure[0]:
        for position, res in enumerate(chain):
            names = _backbone_names(res.name)
            for atom in res:
                xyz.append(atom.pos.tolist())
                backbone.append(atom.name in names)
                residue.append(len(residues))
            residues.append((chain.name, position, res.name))
    if not xyz:
        raise ValueError(f"structure {structure.name!r}: its first model has no atoms")
    return ModelAtoms(np.asarray(xyz, dtype=np.float64), np.asarray(backbone, dtype=bool),
                      np.asarray(residue, dtype=np.intp), tuple(residues))


def _backbone_names(residue_name: str) -> frozenset[str]:
    info = gemmi.find_tabulated_residue(residue_name)
    if info is None:
        return frozenset()
    if info.is_amino_acid():
        return PROTEIN_BACKBONE
    if info.is_nucleic_acid():
        return NUCLEIC_BACKBONE
    return frozenset()


def voxel_indices(grid: DensityMap, xyz: np.ndarray) -> np.ndarray:
    """Fractional voxel indices (z, y, x), float64 (N, 3), of positions ``xyz`` (N, 3) (x, y, z) Å on ``grid``."""
    relative = np.asarray(xyz, dtype=np.float64) - np.asarray(grid.first_voxel_position, dtype=np.float64)
    return (relative / np.asarray(grid.voxel_size, dtype=np.float64))[:, ::-1]


def on_grid(grid: DensityMap, xyz: np.ndarray) -> np.ndarray:
    """bool (N,): positions ``xyz`` (N, 3) (x, y, z) Å inside the box spanned by ``grid``'s voxel centres (edges
    included), where the density is defined."""
    index = voxel_indices(grid, xyz)
    return np.all((index >= 0) & (index <= np.asarray(grid.data.shape) - 1), axis=1)


def density_at(grid: DensityMap, xyz: np.ndarray) -> np.ndarray:
    """Trilinear density of ``grid`` at positions ``xyz`` (N, 3) (x, y, z) Å → float64 (N,); NaN off the grid."""
    index = voxel_indices(grid, xyz)
    inside = on_grid(grid, xyz)
    values = np.full(len(index), np.nan)
    values[inside] = ndimage.map_coordinates(grid.data, index[inside].T, order=1, mode="nearest")
    return values


def near_points(grid: DensityMap, xyz: np.ndarray, radius: float, candidates: np.ndarray | None = None) -> np.ndarray:
    """bool (z, y, x): voxels of ``grid`` whose centre lies within ``radius`` Å of any position ``xyz`` (N, 3) Å.

    Distances are exact (cKDTree on the positions). Only ``candidates`` (bool (z, y, x)) are tested when given;
    otherwise the candidates are the voxels within radius + half a voxel diagonal of the positions rounded onto
    the grid (a Euclidean distance transform, in Å, over the box around the positions), which holds every answer.
    """
    near = np.zeros(grid.data.shape, dtype=bool)
    if len(xyz) == 0:
        return near
    if candidates is None:
        candidates_zyx = _candidate_voxels(grid, xyz, radius)
    else:
        candidates_zyx = np.argwhere(candidates)
    if len(candidates_zyx) == 0:
        return near
    voxel_xyz = np.asarray(grid.voxel_size, dtype=np.float64)
    centres = np.asarray(grid.first_voxel_position, dtype=np.float64) + candidates_zyx[:, ::-1] * voxel_xyz
    distance, _ = cKDTree(xyz).query(centres, distance_upper_bound=radius * (1 + 1e-9) + 1e-9)
    near[tuple(candidates_zyx[distance <= radius].T)] = True
    return near


def _candidate_voxels(grid: DensityMap, xyz: np.ndarray, radius: float) -> np.ndarray:
    """(M, 3) voxel indices (z, y, x) within radius + half a voxel diagonal of the positions' nearest voxels."""
    shape = np.asarray(grid.data.shape)
    voxel_zyx = np.asarray(grid.voxel_size[::-1], dtype=np.float64)
    index = voxel_indices(grid, xyz)
    reach = np.ceil(radius / voxel_zyx) + 1
    low = np.clip(np.floor(index.min(axis=0) - reach), 0, shape).astype(int)
    high = np.clip(np.ceil(index.max(axis=0) + reach) + 1, 0, shape).astype(int)
    if np.any(high <= low):
        return np.empty((0, 3), dtype=int)
    box = high - low
    free = np.ones(tuple(box), dtype=bool)
    # Rounding and clipping into the box moves a seed at most half a diagonal closer to any voxel of the box.
    free[tuple(np.clip(np.rint(index) - low, 0, box - 1).astype(int).T)] = False
    distance = ndimage.distance_transform_edt(free, sampling=voxel_zyx)
    return np.argwhere(distance <= radius + 0.5 * float(np.linalg.norm(voxel_zyx))) + low


def paint_labels(
    density: DensityMap, structure: gemmi.Structure, residue_labels: Sequence[ResidueLabel]
) -> LabelVolume:
    """Paint training labels for ``density`` from ``structure`` (first model) and its per-residue labels.

    residue_labels: one ResidueLabel per residue to label (chain name, position in the chain, residue name and a
    ``secondary_structure`` label); residues without one count as unassigned. Rules and definitions: module
    docstring. Raises ValueError when a label names a residue the structure does not have.
    """
    grid = working_map(density)
    rmsd = map_rmsd(grid)
    if rmsd <= 0:
        raise ValueError(f"{density.path or 'density map'}: constant density; r.m.s.d. levels are undefined")
    atoms = model_atoms(structure)
    elements, element_of_residue = _elements(residue_labels, atoms, structure.name)

    element_of_atom = np.where(atoms.backbone, element_of_residue[atoms.residue], -1)
    level = density_at(grid, atoms.xyz) / rmsd
    counted = (element_of_atom >= 0) & np.isfinite(level)
    sums = np.bincount(element_of_atom[counted], weights=level[counted], minlength=len(elements))
    counts = np.bincount(element_of_atom[counted], minlength=len(elements))
    means = np.divide(sums, counts, out=np.full(len(elements), np.nan), where=counts > 0)
    painted = means > PAINT_LEVEL
    masked = (means >= MASK_LEVEL) & ~painted

    labels = np.full(grid.data.shape, UNASSIGNED_CHANNEL, dtype=np.int8)
    element_label = np.array([label for *_, label in elements], dtype=int)
    # Lower channel index wins (sheet > helix > nucleic), so paint from the highest index down.
    for label in sorted(CHANNEL_OF_LABEL, key=CHANNEL_OF_LABEL.get, reverse=True):
        backbone_xyz = atoms.xyz[np.isin(element_of_atom, np.flatnonzero(painted & (element_label == label)))]
        labels[near_points(grid, backbone_xyz, PAINT_RADIUS_A)] = CHANNEL_OF_LABEL[label]
    unassigned = labels == UNASSIGNED_CHANNEL
    weak = near_points(grid, atoms.xyz[np.isin(element_of_atom, np.flatnonzero(masked))], PAINT_RADIUS_A)
    labels[unassigned & weak] = MASKED
    dense = grid.data >= MASK_LEVEL * rmsd
    modelled = near_points(grid, atoms.xyz, UNMODELLED_DISTANCE_A, candidates=dense)
    labels[unassigned & dense & ~modelled] = MASKED

    outcomes = np.where(painted, "painted", np.where(masked, "masked", "ignored"))
    return LabelVolume(
        labels=labels,
        voxel_size=tuple(float(v) for v in grid.voxel_size),
        origin=tuple(float(o) for o in grid.first_voxel_position),
        rmsd=rmsd,
        elements=tuple(Element(chain, first, last, label, float(mean), str(outcome))
                       for (chain, first, last, label), mean, outcome in zip(elements, means, outcomes)),
    )


def _elements(
    residue_labels: Sequence[ResidueLabel], atoms: ModelAtoms, structure_name: str
) -> tuple[list[tuple[str, int, int, int]], np.ndarray]:
    """Elements as (chain, first, last, label) and the element row of each residue of ``atoms`` (−1: none)."""
    row_of = {(chain, position): row for row, (chain, position, _) in enumerate(atoms.residues)}
    labelled: dict[tuple[str, int], int] = {}
    for residue in residue_labels:
        key = (residue.chain, residue.index)
        if key not in row_of:
            raise ValueError(f"structure {structure_name!r}: no residue at position {residue.index} of chain "
                             f"{residue.chain!r} (residue label {residue.name} {residue.seqid})")
        actual = atoms.residues[row_of[key]][2]
        if actual != residue.name:
            raise ValueError(f"structure {structure_name!r}: chain {residue.chain!r} position {residue.index} is "
                             f"{actual}, but its residue label says {residue.name} {residue.seqid}")
        if residue.label not in (UNASSIGNED, *CHANNEL_OF_LABEL):
            raise ValueError(f"structure {structure_name!r}: unknown label {residue.label} for chain "
                             f"{residue.chain!r} residue {residue.name} {residue.seqid}")
        if key in labelled:
            raise ValueError(f"structure {structure_name!r}: two residue labels for chain {residue.chain!r} "
                             f"position {residue.index}")
        labelled[key] = residue.label
    elements: list[tuple[str, int, int, int]] = []
    element_of_residue = np.full(len(atoms.residues), -1, dtype=np.intp)
    for (chain, position), label in sorted(labelled.items()):
        if label == UNASSIGNED:
            continue
        previous = elements[-1] if elements else None
        if previous is not None and previous[0] == chain and previous[2] == position - 1 and previous[3] == label:
            elements[-1] = (chain, previous[1], position, label)
        else:
            elements.append((chain, position, position, label))
        element_of_residue[row_of[(chain, position)]] = len(elements) - 1
    return elements, element_of_residue
