"""Per-residue secondary structure of an atomic model, labelled as the Haruspex paper labels its training data.

The paper ("Training Data Annotation") combines three sources, re-implemented here from that description:

1. the model's own HELIX/SHEET (struct_conf / struct_sheet_range) records, where present;
2. a DSSP-style assignment (Kabsch & Sander 1983) from backbone hydrogen bonds, *omitting strand direction*:
   alpha-helices from two consecutive n=4 turns, strands from ladders of beta-bridges whether the bridges are
   parallel or antiparallel. A ladder is two or more bridges (i, j), (i±1, j±1) in a row, in any direction; a
   single isolated bridge (DSSP's "B") is *not* a strand. 3-10 and pi helices are not labelled;
3. a torsion-angle (STRIDE-inspired) extension: every helix or strand is grown residue by residue into
   neighbouring unassigned residues whose (phi, psi) lie in the same Ramachandran region (HELIX_REGION,
   STRAND_REGION). Extension only grows existing elements: a lone extended chain with no partner stays unassigned.

Nucleotides are labelled from their residue type; everything else (waters, ligands, ions) is unassigned. Chain
breaks (C(i-1)–N(i) > CHAIN_BREAK_A) end helices, bridges and extensions. Distances are in Å, energies in kcal/mol,
angles in degrees; only the first model and the first conformer of each atom are read.
"""

from __future__ import annotations

from dataclasses import dataclass

import gemmi
import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

UNASSIGNED, HELIX, SHEET, NUCLEIC = 0, 1, 2, 3  # the label-map values used by `haruspex annotate`

# Kabsch & Sander electrostatic energy E = q1 q2 f (1/rON + 1/rCH - 1/rOH - 1/rCN): partial charges 0.42 e (C=O) and
# 0.20 e (N-H), f = 332 kcal·Å/(mol·e²).
HBOND_COUPLING = 0.42 * 0.20 * 332.0
HBOND_CUTOFF_KCAL = -0.5  # a hydrogen bond is E below this
HBOND_FLOOR_KCAL = -9.9  # DSSP's lower bound on E (for overlapping atoms)
# N–O distance (Å) searched for hydrogen bonds: no geometry with longer N–O reaches -0.5 kcal/mol (checked in tests).
HBOND_SEARCH_A = 6.0
N_H_BOND_A = 1.0  # length (Å) of the amide N-H placed along C(i-1)=O(i-1)
CHAIN_BREAK_A = 2.0  # C(i-1)–N(i) distance (Å) above which the chain is broken between i-1 and i
HELIX_TURN = 4  # alpha-helix: hydrogen bond C=O(i) ··· H-N(i+4)


@dataclass(frozen=True)
class RamachandranRegion:
    """An ellipse in the (phi, psi) plane: centre and half-axes in degrees; differences wrap at ±180°."""

    phi: float
    psi: float
    phi_half_width: float
    psi_half_width: float

    def contains(self, phi: np.ndarray, psi: np.ndarray) -> np.ndarray:
        """Whether each (phi, psi) (degrees, any shape) lies inside; NaN torsions lie outside."""
        dphi = _wrap_degrees(np.asarray(phi, dtype=float) - self.phi) / self.phi_half_width
        dpsi = _wrap_degrees(np.asarray(psi, dtype=float) - self.psi) / self.psi_half_width
        with np.errstate(invalid="ignore"):
            return dphi**2 + dpsi**2 <= 1.0


#: Right-handed alpha-helix: centred on the mean helical (phi, psi) of protein structures, (-63°, -43°), ±35° in
#: phi and ±30° in psi. Ideal alpha (-57°, -47°) is inside; 3-10 (-49°, -26°) is at the edge; beta is far outside.
HELIX_REGION = RamachandranRegion(phi=-63.0, psi=-43.0, phi_half_width=35.0, psi_half_width=30.0)
#: Beta region: centred on (-120°, +130°), ±50° in phi and ±60° in psi (up to psi -170°, across ±180°). It holds
#: antiparallel (-139°, 135°) and parallel (-119°, 113°) strands, and also polyproline II (-75°, 145°).
STRAND_REGION = RamachandranRegion(phi=-120.0, psi=130.0, phi_half_width=50.0, psi_half_width=60.0)


@dataclass(frozen=True)
class ResidueLabel:
    """The secondary-structure label of one residue of a model."""

    chain: str  # chain name
    index: int  # position of the residue in its chain (0-based, in the model's order)
    seqid: str  # gemmi seqid as text, e.g. "42" or "42A"
    name: str  # residue name, e.g. "ALA", "G"
    label: int  # UNASSIGNED / HELIX / SHEET / NUCLEIC


@dataclass(frozen=True)
class Backbone:
    """Main-chain atoms of the amino-acid residues of one model, chains concatenated in model order.

    n, ca, c, o, h: (m, 3) positions in Å, NaN where absent. h is the amide hydrogen as modelled or, when the model
    has none, placed N_H_BOND_A from N along C(i-1)=O(i-1) (none on proline or after a break).
    names: (m,) residue names. segment: (m,) id of the unbroken stretch of chain holding each residue.
    residues: (chain position in the model, residue position in the chain) of each residue.
    """

    n: np.ndarray
    ca: np.ndarray
    c: np.ndarray
    o: np.ndarray
    h: np.ndarray
    names: np.ndarray
    segment: np.ndarray
    residues: list[tuple[int, int]]

    def __len__(self) -> int:
        return len(self.names)


def _wrap_degrees(angle: np.ndarray) -> np.ndarray:
    return (angle + 180.0) % 360.0 - 180.0


def _atom_xyz(residue: gemmi.Residue, name: str) -> list[float]:
    atom = residue.find_atom(name, "*")
    return atom.pos.tolist() if atom is not None else [np.nan] * 3


def _is_nucleotide(name: str) -> bool:
    info = gemmi.find_tabulated_residue(name)
    return info is not None and info.is_nucleic_acid()


def _is_amino_acid(residue: gemmi.Residue) -> bool:
    """A residue with main-chain N, CA and C that is not a nucleotide (modified amino acids included)."""
    has_main_chain = all(residue.find_atom(name, "*") is not None for name in ("N", "CA", "C"))
    return has_main_chain and not _is_nucleotide(residue.name)


def protein_backbone(model: gemmi.Model) -> Backbone:
    """The main chain of every amino-acid residue of ``model`` (see :class:`Backbone`)."""
    rows, residues, names, chains = [], [], [], []
    for chain_index, chain in enumerate(model):
        for residue_index, residue in enumerate(chain):
            if _is_amino_acid(residue):
                rows.append([_atom_xyz(residue, name) for name in ("N", "CA", "C", "O", "H")])
                residues.append((chain_index, residue_index))
                names.append(residue.name)
                chains.append(chain_index)
    xyz = np.array(rows, dtype=float).reshape(-1, 5, 3)
    n, ca, c, o, h = (xyz[:, k].copy() for k in range(5))
    chains = np.array(chains, dtype=int)
    connected = np.zeros(len(names), dtype=bool)
    with np.errstate(invalid="ignore"):
        connected[1:] = (chains[1:] == chains[:-1]) & (np.linalg.norm(n[1:] - c[:-1], axis=1) <= CHAIN_BREAK_A)
    names = np.array(names, dtype=str)
    carbonyl = c[:-1] - o[:-1]
    placed = n[1:] + N_H_BOND_A * carbonyl / np.linalg.norm(carbonyl, axis=1, keepdims=True)
    missing = np.isnan(h[1:, 0]) & connected[1:] & (names[1:] != "PRO")
    h[1:][missing] = placed[missing]
    return Backbone(n=n, ca=ca, c=c, o=o, h=h, names=names, segment=np.cumsum(~connected), residues=residues)


def hbond_energy(o: np.ndarray, c: np.ndarray, n: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Kabsch–Sander energy (kcal/mol) of C=O ··· H-N for (k, 3) atom positions (Å), floored at HBOND_FLOOR_KCAL."""

    def inverse(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return 1.0 / np.linalg.norm(a - b, axis=-1)

    energy = HBOND_COUPLING * (inverse(o, n) + inverse(c, h) - inverse(o, h) - inverse(c, n))
    return np.maximum(energy, HBOND_FLOOR_KCAL)


def hydrogen_bonds(backbone: Backbone, cutoff_kcal: float = HBOND_CUTOFF_KCAL) -> np.ndarray:
    """(k, 2) array of backbone hydrogen bonds (acceptor: residue of the C=O, donor: residue of the N-H).

    A pair bonds when its energy is below ``cutoff_kcal``; a residue does not bond to itself or to the next one.
    """
    acceptors = np.flatnonzero(~np.isnan(backbone.o[:, 0]) & ~np.isnan(backbone.c[:, 0]))
    donors = np.flatnonzero(~np.isnan(backbone.h[:, 0]) & ~np.isnan(backbone.n[:, 0]))
    if len(acceptors) == 0 or len(donors) == 0:
        return np.zeros((0, 2), dtype=int)
    near = cKDTree(backbone.o[acceptors]).sparse_distance_matrix(
        cKDTree(backbone.n[donors]), HBOND_SEARCH_A, output_type="ndarray")
    acceptor, donor = acceptors[near["i"]], donors[near["j"]]
    keep = (donor != acceptor) & (donor != acceptor + 1)
    acceptor, donor = acceptor[keep], donor[keep]
    energy = hbond_energy(backbone.o[acceptor], backbone.c[acceptor], backbone.n[donor], backbone.h[donor])
    bonded = energy < cutoff_kcal
    return np.column_stack([acceptor[bonded], donor[bonded]])


class _BondTable:
    """Vectorised look-up of hydrogen bonds C=O(acceptor) ··· H-N(donor) among m residues."""

    def __init__(self, bonds: np.ndarray, m: int):
        self.m = m
        self.keys = np.sort(bonds[:, 0] * m + bonds[:, 1])

    def __call__(self, acceptor: np.ndarray, donor: np.ndarray) -> np.ndarray:
        inside = (acceptor >= 0) & (acceptor < self.m) & (donor >= 0) & (donor < self.m)
        return inside & np.isin(np.where(inside, acceptor * self.m + donor, -1), self.keys)


def _same_segment(segment: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Whether residues i and j (index arrays, possibly out of range) lie in one unbroken stretch of chain."""
    m = len(segment)
    inside = (i >= 0) & (i < m) & (j >= 0) & (j < m)
    return inside & (segment[np.clip(i, 0, m - 1)] == segment[np.clip(j, 0, m - 1)])


def _helix_residues(bonded: _BondTable, segment: np.ndarray) -> np.ndarray:
    """DSSP alpha-helix: n=4 turns at i-1 and i make residues i..i+3 helical."""
    i = np.arange(len(segment))
    turn = bonded(i, i + HELIX_TURN) & _same_segment(segment, i, i + HELIX_TURN)
    start = np.zeros_like(turn)
    start[1:] = turn[1:] & turn[:-1]
    helix = start.copy()
    for k in range(1, HELIX_TURN):
        helix[k:] |= start[:-k]
    return helix


def _bridges(bonded: _BondTable, bonds: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """(b, 2) sorted residue pairs (i < j, j - i ≥ 3) forming a beta-bridge, parallel or antiparallel.

    Parallel: [O(i-1)→N(j) and O(j)→N(i+1)] or [O(j-1)→N(i) and O(i)→N(j+1)]. Antiparallel: [O(i)→N(j) and
    O(j)→N(i)] or [O(i-1)→N(j+1) and O(j-1)→N(i+1)]. Each pattern contains a bond (a, d) with (i, j) one of
    (a, d), (a+1, d), (a+1, d-1), so those are the only candidates.
    """
    a, d = bonds[:, 0], bonds[:, 1]
    pairs = np.concatenate([np.column_stack([a, d]), np.column_stack([a + 1, d]), np.column_stack([a + 1, d - 1])])
    pairs = np.unique(np.sort(pairs, axis=1), axis=0)
    i, j = pairs[:, 0], pairs[:, 1]
    parallel = (bonded(i - 1, j) & bonded(j, i + 1)) | (bonded(j - 1, i) & bonded(i, j + 1))
    antiparallel = (bonded(i, j) & bonded(j, i)) | (bonded(i - 1, j + 1) & bonded(j - 1, i + 1))
    unbroken = _same_segment(segment, i - 1, i + 1) & _same_segment(segment, j - 1, j + 1)
    return pairs[(parallel | antiparallel) & unbroken & (j - i >= 3)]


def _strand_residues(bridges: np.ndarray, m: int) -> np.ndarray:
    """Residues of bridges that have a neighbouring bridge (i±1, j±1) in any direction, i.e. lie in a ladder."""
    keys = np.sort(bridges[:, 0] * m + bridges[:, 1])
    in_ladder = np.zeros(len(bridges), dtype=bool)
    for step_i, step_j in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
        neighbour = np.sort(bridges + [step_i, step_j], axis=1)
        in_ladder |= np.isin(neighbour[:, 0] * m + neighbour[:, 1], keys)
    strand = np.zeros(m, dtype=bool)
    strand[bridges[in_ladder].ravel()] = True
    return strand


def dssp_labels(backbone: Backbone) -> np.ndarray:
    """(m,) labels HELIX / SHEET / UNASSIGNED from backbone hydrogen bonds (helix wins where both apply)."""
    m = len(backbone)
    bonds = hydrogen_bonds(backbone)
    bonded = _BondTable(bonds, m)
    labels = np.full(m, UNASSIGNED, dtype=int)
    labels[_strand_residues(_bridges(bonded, bonds, backbone.segment), m)] = SHEET
    labels[_helix_residues(bonded, backbone.segment)] = HELIX
    return labels


def _dihedral(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Torsion a-b-c-d in degrees for (k, 3) positions."""
    b1, b2, b3 = b - a, c - b, d - c
    n1, n2 = np.cross(b1, b2), np.cross(b2, b3)
    x = np.einsum("ij,ij->i", n1, n2)
    y = np.einsum("ij,ij->i", np.cross(n1, n2), b2 / np.linalg.norm(b2, axis=1, keepdims=True))
    return np.degrees(np.arctan2(y, x))


def backbone_torsions(backbone: Backbone) -> tuple[np.ndarray, np.ndarray]:
    """(phi, psi) per residue in degrees, each (m,); NaN where the neighbour across the peptide bond is missing."""
    m = len(backbone)
    phi, psi = np.full(m, np.nan), np.full(m, np.nan)
    if m > 1:
        linked = backbone.segment[1:] == backbone.segment[:-1]
        phi[1:] = np.where(linked, _dihedral(backbone.c[:-1], backbone.n[1:], backbone.ca[1:], backbone.c[1:]), np.nan)
        psi[:-1] = np.where(linked, _dihedral(backbone.n[:-1], backbone.ca[:-1], backbone.c[:-1], backbone.n[1:]),
                            np.nan)
    return phi, psi


def extend_by_torsion(labels: np.ndarray, phi: np.ndarray, psi: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """Grow helices and strands into neighbouring UNASSIGNED residues in the same Ramachandran region.

    labels, phi, psi (degrees), segment: (m,) per residue in chain order. A run of consecutive unassigned residues
    inside HELIX_REGION (STRAND_REGION) that touches a HELIX (SHEET) residue in the same unbroken segment becomes
    HELIX (SHEET). Returns a new array.
    """
    out = np.array(labels, copy=True)
    for label, region in ((HELIX, HELIX_REGION), (SHEET, STRAND_REGION)):
        element = out == label
        grow = element | ((out == UNASSIGNED) & region.contains(phi, psi))
        runs, _ = ndimage.label(grow)
        run_key = np.where(grow, runs * (int(segment.max(initial=0)) + 1) + segment, -1)
        _, run_index = np.unique(run_key, return_inverse=True)
        holds_element = np.bincount(run_index, weights=element) > 0
        out[grow & holds_element[run_index]] = label
    return out


def annotated_labels(structure: gemmi.Structure, backbone: Backbone) -> np.ndarray:
    """(m,) labels from the structure's own records: alpha (or unclassified) helices → HELIX, sheet strands → SHEET.

    Records naming residues that are not in ``backbone`` are ignored.
    """
    model = structure[0]
    position = {(model[ci].name, str(model[ci][ri].seqid)): k for k, (ci, ri) in enumerate(backbone.residues)}
    labels = np.full(len(backbone), UNASSIGNED, dtype=int)
    helix_classes = (gemmi.Helix.HelixClass.RAlpha, gemmi.Helix.HelixClass.UnknownHelix)
    spans = [(helix.start, helix.end, HELIX) for helix in structure.helices if helix.pdb_helix_class in helix_classes]
    spans += [(strand.start, strand.end, SHEET) for sheet in structure.sheets for strand in sheet.strands]
    for start, end, label in spans:
        first = position.get((start.chain_name, str(start.res_id.seqid)))
        last = position.get((end.chain_name, str(end.res_id.seqid)))
        if first is not None and last is not None and first <= last:
            labels[first:last + 1] = label
    return labels


def label_residues(structure: gemmi.Structure) -> list[ResidueLabel]:
    """Label every residue of every chain of the first model (module docstring); waters and ligands unassigned."""
    if len(structure) == 0:
        raise ValueError(f"{structure.name or 'structure'}: has no model to label")
    model = structure[0]
    backbone = protein_backbone(model)
    labels = annotated_labels(structure, backbone)
    labels = np.where(labels == UNASSIGNED, dssp_labels(backbone), labels)
    labels = extend_by_torsion(labels, *backbone_torsions(backbone), backbone.segment)
    protein = dict(zip(backbone.residues, labels.tolist()))
    result = []
    for ci, chain in enumerate(model):
        for ri, residue in enumerate(chain):
            label = protein.get((ci, ri), NUCLEIC if _is_nucleotide(residue.name) else UNASSIGNED)
            result.append(ResidueLabel(chain=chain.name, index=ri, seqid=str(residue.seqid), name=residue.name,
                                       label=label))
    return result
