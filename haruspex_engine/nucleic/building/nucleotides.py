"""Standard-geometry nucleotide templates built in code from internal coordinates (bonds Å, angles degrees).

One template per residue type (RNA A, C, G, U; DNA DA, DC, DG, DT) holds every heavy atom with its PDB/CCD name
(no hydrogens, no OP3) in a fixed frame: C4' at the origin, C3' on +x, C2' in the xy plane (y > 0). Coordinates
are (n_atoms, 3) arrays, (x, y, z) in Å.

Geometry (standard values, as published; no coordinate file is read):
  bases: Clowney et al. (1996) J. Am. Chem. Soc. 118, 509; sugars: Gelbin et al. (1996) J. Am. Chem. Soc. 118,
  519 (C3'-endo ribose, C2'-endo deoxyribose); phosphate: Parkinson et al. (1996) Acta Cryst. D52, 57;
  conformations: the A-RNA and B-DNA fibre-model backbone torsions (Arnott; as tabulated in Saenger, Principles of
  Nucleic Acid Structure, 1984), adjusted by a few degrees to this geometry (see A_RNA, B_DNA).

Construction, all by NeRF placement (``geometry.place_atom``) unless said otherwise:
  sugar ring: C4', C3', C2' fixed by the frame; C1' and O4' placed with the ring torsions nu2, nu1. Those two
    torsions and the ring angles at C3', C2', C1' are solved (least squares) so that the ring closes with the
    standard C4'-O4' bond and ring angles while the pseudorotation phase and amplitude take the form's values.
  ring substituents (C5', O3', O2', N9/N1): bond length, the two bond angles to the ring neighbours, and the
    D-ribose chirality (which side of the ring).
  O5' and P: torsions gamma and beta. OP1 and OP2: two bond angles each, to O5' and to the previous residue's O3'
    (a virtual atom placed with torsion alpha), OP1 on the side the wwPDB naming gives it.
  bases: a Z-matrix hung on C1' with the glycosidic torsion chi; all other base torsions are 0 or 180, so the base
    and C1' are exactly planar. Ring-closing bonds and angles are not imposed; they come out of the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy.optimize import least_squares

from haruspex_engine.geometry import place_atom

RNA_RESIDUES = ("A", "C", "G", "U")
DNA_RESIDUES = ("DA", "DC", "DG", "DT")

#: Sugar and phosphate atom names used by the evaluation metrics (OP3 counts when a model has it).
SUGAR_ATOMS = ("C1'", "C2'", "O2'", "C3'", "O3'", "C4'", "O4'", "C5'")
PHOSPHATE_ATOMS = ("P", "OP1", "OP2", "O5'", "OP3")

_ADENINE = ("N9", "C8", "N7", "C5", "C6", "N6", "N1", "C2", "N3", "C4")
_GUANINE = ("N9", "C8", "N7", "C5", "C6", "O6", "N1", "C2", "N2", "N3", "C4")
_CYTOSINE = ("N1", "C2", "O2", "N3", "C4", "N4", "C5", "C6")
#: Base atoms per residue name, in PDB order.
BASE_ATOMS: dict[str, tuple[str, ...]] = {
    "A": _ADENINE, "DA": _ADENINE, "G": _GUANINE, "DG": _GUANINE, "C": _CYTOSINE, "DC": _CYTOSINE,
    "U": ("N1", "C2", "O2", "N3", "C4", "O4", "C5", "C6"),
    "DT": ("N1", "C2", "O2", "N3", "C4", "O4", "C5", "C7", "C6"),
}

# ---- Phosphate (Parkinson et al. 1996) -------------------------------------------------------------------------
BOND_P_O5 = 1.593
BOND_P_O3 = 1.607
BOND_P_OP = 1.485
ANGLE_O3_P_O5 = 104.0
ANGLE_O5_P_OP = 108.2
ANGLE_O3_P_OP = 107.9
ANGLE_P_O5_C5 = 120.9
ANGLE_C3_O3_P = 119.7


# ---- Sugars (Gelbin et al. 1996) -------------------------------------------------------------------------------
@dataclass(frozen=True)
class SugarGeometry:
    """Standard bond lengths (Å) and bond angles (degrees) of one sugar pucker family; "N" in an angle stands for
    the glycosidic N9 (purines) or N1 (pyrimidines)."""

    name: str
    bonds: tuple[tuple[str, str, float], ...]
    angles: tuple[tuple[str, str, str, float], ...]

    def bond(self, a: str, b: str) -> float:
        """Length (Å) of the bond a-b, either order."""
        for x, y, value in self.bonds:
            if {x, y} == {a, b}:
                return value
        raise KeyError(f"{self.name}: no bond {a}-{b}")

    def angle(self, a: str, centre: str, b: str) -> float:
        """Bond angle a-centre-b (degrees), either order of a and b."""
        for x, y, z, value in self.angles:
            if y == centre and {x, z} == {a, b}:
                return value
        raise KeyError(f"{self.name}: no angle {a}-{centre}-{b}")


RIBOSE_C3_ENDO = SugarGeometry(
    "ribose C3'-endo",
    bonds=(("C1'", "C2'", 1.528), ("C2'", "C3'", 1.525), ("C3'", "C4'", 1.524), ("C4'", "O4'", 1.453),
           ("O4'", "C1'", 1.414), ("C3'", "O3'", 1.423), ("C4'", "C5'", 1.510), ("C5'", "O5'", 1.440),
           ("C2'", "O2'", 1.413)),
    angles=(("C1'", "C2'", "C3'", 101.5), ("C2'", "C3'", "C4'", 102.7), ("C3'", "C4'", "O4'", 105.5),
            ("C4'", "O4'", "C1'", 109.6), ("O4'", "C1'", "C2'", 106.4), ("C3'", "C4'", "C5'", 115.2),
            ("O4'", "C4'", "C5'", 109.2), ("C4'", "C3'", "O3'", 110.6), ("C2'", "C3'", "O3'", 111.0),
            ("C1'", "C2'", "O2'", 110.6), ("C3'", "C2'", "O2'", 113.3), ("O4'", "C1'", "N", 108.2),
            ("C2'", "C1'", "N", 113.4), ("C4'", "C5'", "O5'", 110.2)),
)
DEOXYRIBOSE_C2_ENDO = SugarGeometry(
    "deoxyribose C2'-endo",
    bonds=(("C1'", "C2'", 1.521), ("C2'", "C3'", 1.525), ("C3'", "C4'", 1.528), ("C4'", "O4'", 1.446),
           ("O4'", "C1'", 1.420), ("C3'", "O3'", 1.431), ("C4'", "C5'", 1.512), ("C5'", "O5'", 1.440)),
    angles=(("C1'", "C2'", "C3'", 102.5), ("C2'", "C3'", "C4'", 103.1), ("C3'", "C4'", "O4'", 106.0),
            ("C4'", "O4'", "C1'", 109.7), ("O4'", "C1'", "C2'", 105.9), ("C3'", "C4'", "C5'", 114.7),
            ("O4'", "C4'", "C5'", 109.4), ("C4'", "C3'", "O3'", 110.3), ("C2'", "C3'", "O3'", 110.6),
            ("O4'", "C1'", "N", 108.2), ("C2'", "C1'", "N", 113.4), ("C4'", "C5'", "O5'", 110.2)),
)

_RING = ("C4'", "C3'", "C2'", "C1'", "O4'")


@dataclass(frozen=True)
class HelixForm:
    """Backbone conformation of a regular single strand: torsions and sugar pucker in degrees.

    alpha O3'(i-1)-P-O5'-C5', beta P-O5'-C5'-C4', gamma O5'-C5'-C4'-C3', epsilon C4'-C3'-O3'-P(i+1),
    zeta C3'-O3'-P(i+1)-O5'(i+1), chi O4'-C1'-N9-C4 (purines) or O4'-C1'-N1-C2 (pyrimidines). delta
    (C5'-C4'-C3'-O3') is not free: it follows from the pucker (pseudorotation phase and amplitude).
    """

    name: str
    sugar: SugarGeometry
    alpha: float
    beta: float
    gamma: float
    epsilon: float
    zeta: float
    chi: float
    pucker_phase: float
    pucker_amplitude: float


# The fibre-model torsions (A-RNA: alpha -68, beta 178, gamma 54, epsilon -153, zeta -71, chi -158, C3'-endo;
# B-DNA: alpha -30, beta 136, gamma 31, epsilon -141, zeta -161, chi -98, C2'-endo) moved by at most 6 degrees,
# and the pucker phase by at most 9, so that with the bond lengths and angles above a regular strand has the fibre
# model's rise and twist, and a Watson-Crick partner (see ideal.py) is related to it by a two-fold axis that
# crosses the helix axis at right angles, as an ideal duplex needs. Fitted once by least squares; values in degrees.
#: A-RNA: 2.81 Å rise, 32.7 degrees twist (11 residues per turn); C3'-endo sugar.
A_RNA = HelixForm("A-RNA", RIBOSE_C3_ENDO, alpha=-66.8, beta=176.3, gamma=51.0, epsilon=-158.8, zeta=-72.3,
                  chi=-156.5, pucker_phase=25.3, pucker_amplitude=38.0)
#: B-DNA: 3.38 Å rise, 36 degrees twist (10 residues per turn); C2'-endo sugar.
B_DNA = HelixForm("B-DNA", DEOXYRIBOSE_C2_ENDO, alpha=-24.6, beta=132.0, gamma=27.5, epsilon=-142.8, zeta=-155.0,
                  chi=-100.9, pucker_phase=153.5, pucker_amplitude=38.0)

# ---- Bases (Clowney et al. 1996) -------------------------------------------------------------------------------
# Glycosidic bond C1'-N9 (purines) / C1'-N1 (pyrimidines), Å.
GLYCOSIDIC_BOND = {"A": 1.462, "G": 1.459, "C": 1.470, "U": 1.469, "T": 1.473}

# Z-matrix rows (atom, bonded to, angle to, torsion to, bond Å, angle degrees, torsion degrees): the atom sits at
# the bond length from "bonded to", with the angle "angle to"-"bonded to"-atom and the torsion
# "torsion to"-"angle to"-"bonded to"-atom. A torsion to O4' is an offset from chi (0: the chi atom itself).
_ZRow = tuple[str, str, str, str, float, float, float]
_PURINE_ROWS: dict[str, tuple[_ZRow, ...]] = {
    "A": (("C4", "N9", "C1'", "O4'", 1.374, 126.3, 0.0), ("C8", "N9", "C1'", "O4'", 1.373, 127.7, 180.0),
          ("C5", "C4", "N9", "C8", 1.383, 105.8, 0.0), ("N3", "C4", "N9", "C8", 1.344, 127.4, 180.0),
          ("C2", "N3", "C4", "C5", 1.331, 110.6, 0.0), ("N1", "C2", "N3", "C4", 1.339, 129.3, 0.0),
          ("C6", "N1", "C2", "N3", 1.351, 118.6, 0.0), ("N7", "C5", "C4", "N9", 1.388, 110.7, 0.0),
          ("N6", "C6", "N1", "C2", 1.335, 118.6, 180.0)),
    "G": (("C4", "N9", "C1'", "O4'", 1.375, 126.5, 0.0), ("C8", "N9", "C1'", "O4'", 1.374, 127.0, 180.0),
          ("C5", "C4", "N9", "C8", 1.379, 105.4, 0.0), ("N3", "C4", "N9", "C8", 1.350, 126.0, 180.0),
          ("C2", "N3", "C4", "C5", 1.323, 111.9, 0.0), ("N1", "C2", "N3", "C4", 1.373, 123.9, 0.0),
          ("C6", "N1", "C2", "N3", 1.391, 125.1, 0.0), ("N7", "C5", "C4", "N9", 1.388, 110.8, 0.0),
          ("O6", "C6", "N1", "C2", 1.237, 119.9, 180.0), ("N2", "C2", "N3", "C4", 1.341, 119.9, 180.0)),
}
_PYRIMIDINE_ROWS: dict[str, tuple[_ZRow, ...]] = {
    "C": (("C2", "N1", "C1'", "O4'", 1.397, 118.8, 0.0), ("C6", "N1", "C1'", "O4'", 1.367, 120.8, 180.0),
          ("N3", "C2", "N1", "C6", 1.353, 119.2, 0.0), ("C4", "N3", "C2", "N1", 1.335, 119.9, 0.0),
          ("C5", "C4", "N3", "C2", 1.425, 121.9, 0.0), ("O2", "C2", "N1", "C6", 1.240, 118.9, 180.0),
          ("N4", "C4", "N3", "C2", 1.335, 118.0, 180.0)),
    "U": (("C2", "N1", "C1'", "O4'", 1.381, 117.7, 0.0), ("C6", "N1", "C1'", "O4'", 1.375, 121.2, 180.0),
          ("N3", "C2", "N1", "C6", 1.373, 114.9, 0.0), ("C4", "N3", "C2", "N1", 1.380, 127.0, 0.0),
          ("C5", "C4", "N3", "C2", 1.431, 114.6, 0.0), ("O2", "C2", "N1", "C6", 1.219, 122.8, 180.0),
          ("O4", "C4", "N3", "C2", 1.232, 119.4, 180.0)),
    "T": (("C2", "N1", "C1'", "O4'", 1.376, 118.2, 0.0), ("C6", "N1", "C1'", "O4'", 1.378, 120.4, 180.0),
          ("N3", "C2", "N1", "C6", 1.373, 114.6, 0.0), ("C4", "N3", "C2", "N1", 1.382, 127.2, 0.0),
          ("C5", "C4", "N3", "C2", 1.445, 115.2, 0.0), ("O2", "C2", "N1", "C6", 1.220, 123.1, 180.0),
          ("O4", "C4", "N3", "C2", 1.228, 119.9, 180.0), ("C7", "C5", "C4", "N3", 1.496, 119.0, 180.0)),
}
BASE_ZMATRIX: dict[str, tuple[_ZRow, ...]] = {**_PURINE_ROWS, **_PYRIMIDINE_ROWS}


@dataclass(frozen=True)
class Nucleotide:
    """One nucleotide: residue name, atom names in writing order and their coordinates, (n_atoms, 3) in Å."""

    name: str
    atom_names: tuple[str, ...]
    coords: np.ndarray

    @property
    def elements(self) -> tuple[str, ...]:
        """Element symbols (the first letter of every nucleotide heavy-atom name)."""
        return tuple(name[0] for name in self.atom_names)

    def xyz(self, atom_name: str) -> np.ndarray:
        """Position (Å) of one atom."""
        return self.coords[self.atom_names.index(atom_name)]

    def as_dict(self) -> dict[str, np.ndarray]:
        """Atom name -> position (Å), copies."""
        return {name: xyz.copy() for name, xyz in zip(self.atom_names, self.coords)}


def is_dna(residue_name: str) -> bool:
    """True for DA, DC, DG, DT; False for A, C, G, U; ValueError otherwise."""
    if residue_name in DNA_RESIDUES:
        return True
    if residue_name in RNA_RESIDUES:
        return False
    raise ValueError(f"unknown nucleotide {residue_name!r}: expected one of {RNA_RESIDUES + DNA_RESIDUES}")


def atom_order(residue_name: str) -> tuple[str, ...]:
    """Heavy-atom names of a residue in writing order: P, C5', O5', C4', O4', C3', O3', C2', (O2'), C1', base atoms,
    OP1, OP2."""
    sugar = ("P", "C5'", "O5'", "C4'", "O4'", "C3'", "O3'", "C2'") + (() if is_dna(residue_name) else ("O2'",))
    return sugar + ("C1'",) + BASE_ATOMS[residue_name] + ("OP1", "OP2")


def default_form(residue_name: str) -> HelixForm:
    """A_RNA for RNA residues, B_DNA for DNA residues."""
    return B_DNA if is_dna(residue_name) else A_RNA


@cache
def template(residue_name: str, form: HelixForm | None = None) -> Nucleotide:
    """Standard-geometry nucleotide ``residue_name`` (A, C, G, U, DA, DC, DG, DT) in the template frame.

    form: backbone conformation (default: A_RNA for RNA, B_DNA for DNA). Coordinates in Å, atoms in
    ``atom_order(residue_name)``; the array is read-only (each template is built once and cached).
    """
    form = default_form(residue_name) if form is None else form
    atoms = _build(residue_name, form)
    names = atom_order(residue_name)
    coords = np.array([atoms[name] for name in names])
    coords.flags.writeable = False
    return Nucleotide(residue_name, names, coords)


def _build(residue_name: str, form: HelixForm) -> dict[str, np.ndarray]:
    """Atom name -> position (Å) of one nucleotide in the template frame."""
    dna = is_dna(residue_name)
    sugar = form.sugar
    atoms = _sugar_ring(sugar, form.pucker_phase, form.pucker_amplitude)
    # Substituents of the ring. The side (sign of the triple product of the two neighbour bonds and the new bond)
    # gives the D-ribose configuration: C4' R, C3' S, C2' R (ribose), C1' R with the base beta, cis to C5'.
    atoms["C5'"] = _place_by_angles(atoms, "C4'", "O4'", "C3'", sugar.bond("C4'", "C5'"),
                                    sugar.angle("O4'", "C4'", "C5'"), sugar.angle("C3'", "C4'", "C5'"), -1)
    atoms["O3'"] = _place_by_angles(atoms, "C3'", "C4'", "C2'", sugar.bond("C3'", "O3'"),
                                    sugar.angle("C4'", "C3'", "O3'"), sugar.angle("C2'", "C3'", "O3'"), +1)
    if not dna:
        atoms["O2'"] = _place_by_angles(atoms, "C2'", "C1'", "C3'", sugar.bond("C2'", "O2'"),
                                        sugar.angle("C1'", "C2'", "O2'"), sugar.angle("C3'", "C2'", "O2'"), -1)
    base = residue_name[-1]
    glycosidic = "N9" if base in _PURINE_ROWS else "N1"
    atoms[glycosidic] = _place_by_angles(atoms, "C1'", "O4'", "C2'", GLYCOSIDIC_BOND[base],
                                         sugar.angle("O4'", "C1'", "N"), sugar.angle("C2'", "C1'", "N"), +1)
    for atom, bonded, angle_to, torsion_to, bond, angle, torsion in BASE_ZMATRIX[base]:
        if torsion_to == "O4'":
            torsion += form.chi
        atoms[atom] = place_atom(atoms[torsion_to], atoms[angle_to], atoms[bonded], bond, angle, torsion)
    # Backbone towards the 5' side.
    atoms["O5'"] = place_atom(atoms["C3'"], atoms["C4'"], atoms["C5'"], sugar.bond("C5'", "O5'"),
                          sugar.angle("C4'", "C5'", "O5'"), form.gamma)
    atoms["P"] = place_atom(atoms["C4'"], atoms["C5'"], atoms["O5'"], BOND_P_O5, ANGLE_P_O5_C5, form.beta)
    atoms["O3'-"] = place_atom(atoms["C5'"], atoms["O5'"], atoms["P"], BOND_P_O3, ANGLE_O3_P_O5, form.alpha)
    # OP1 is on the side where (O3'(i-1) - P) x (O5' - P) points: the wwPDB labelling, in which OP1 -> OP2 -> O5'
    # turns right-handed about the direction P -> O3'(i-1) (checked against deposited models).
    atoms["OP1"] = _place_by_angles(atoms, "P", "O3'-", "O5'", BOND_P_OP, ANGLE_O3_P_OP, ANGLE_O5_P_OP, +1)
    atoms["OP2"] = _place_by_angles(atoms, "P", "O3'-", "O5'", BOND_P_OP, ANGLE_O3_P_OP, ANGLE_O5_P_OP, -1)
    del atoms["O3'-"]
    return atoms




def _place_by_angles(atoms: dict[str, np.ndarray], centre: str, a: str, b: str, bond: float, angle_a: float,
                     angle_b: float, side: int) -> np.ndarray:
    """Position of an atom bonded to ``centre`` at ``bond`` Å, with angles a-centre-X = angle_a and
    b-centre-X = angle_b (degrees), on the ``side`` (+1 or -1) given by the sign of ((a - c) x (b - c)) . (X - c)."""
    c = atoms[centre]
    u = (atoms[a] - c) / np.linalg.norm(atoms[a] - c)
    v = (atoms[b] - c) / np.linalg.norm(atoms[b] - c)
    # Unit vector d = p u + q v + r (u x v) with d.u = cos(angle_a) and d.v = cos(angle_b).
    cos_uv = u @ v
    cos_a, cos_b = np.cos(np.radians(angle_a)), np.cos(np.radians(angle_b))
    p, q = np.linalg.solve([[1.0, cos_uv], [cos_uv, 1.0]], [cos_a, cos_b])
    in_plane = p * u + q * v
    normal = np.cross(u, v)
    r = np.sqrt(max(1.0 - in_plane @ in_plane, 0.0) / (normal @ normal))
    return c + bond * (in_plane + side * r * normal)


def pseudorotation(ring: np.ndarray) -> tuple[float, float]:
    """Altona-Sundaralingam pseudorotation phase P in [0, 360) and amplitude (degrees) of a furanose.

    ring: (5, 3) positions (Å) of C4', C3', C2', C1', O4' in that order.
    """
    c4, c3, c2, c1, o4 = ring
    nu = np.radians([_torsion(c4, o4, c1, c2), _torsion(o4, c1, c2, c3), _torsion(c1, c2, c3, c4),
                     _torsion(c2, c3, c4, o4), _torsion(c3, c4, o4, c1)])
    phase = np.arctan2(nu[4] + nu[1] - nu[3] - nu[0], 2.0 * nu[2] * (np.sin(np.radians(36)) + np.sin(np.radians(72))))
    amplitude = nu[2] / np.cos(phase)
    return float(np.degrees(phase) % 360.0), float(np.degrees(amplitude))


def _torsion(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> float:
    """Torsion a-b-c-d in degrees (IUPAC sign)."""
    axis = (c - b) / np.linalg.norm(c - b)
    v = (a - b) - ((a - b) @ axis) * axis
    w = (d - c) - ((d - c) @ axis) * axis
    return float(np.degrees(np.arctan2(np.cross(axis, v) @ w, v @ w)))


def _angle(a: np.ndarray, centre: np.ndarray, b: np.ndarray) -> float:
    u, v = a - centre, b - centre
    return float(np.degrees(np.arccos(np.clip(u @ v / np.linalg.norm(u) / np.linalg.norm(v), -1.0, 1.0))))


def _ring_from(sugar: SugarGeometry, nu1: float, nu2: float, angle_c3: float, angle_c2: float,
               angle_c1: float) -> dict[str, np.ndarray]:
    """C4', C3', C2', C1', O4' in the template frame from ring torsions nu1, nu2 and the angles at C3', C2', C1'."""
    c4 = np.zeros(3)
    c3 = np.array([sugar.bond("C4'", "C3'"), 0.0, 0.0])
    theta = np.radians(angle_c3)
    c2 = c3 + sugar.bond("C3'", "C2'") * np.array([-np.cos(theta), np.sin(theta), 0.0])
    c1 = place_atom(c4, c3, c2, sugar.bond("C2'", "C1'"), angle_c2, nu2)
    o4 = place_atom(c3, c2, c1, sugar.bond("C1'", "O4'"), angle_c1, nu1)
    return {"C4'": c4, "C3'": c3, "C2'": c2, "C1'": c1, "O4'": o4}


def _sugar_ring(sugar: SugarGeometry, phase: float, amplitude: float) -> dict[str, np.ndarray]:
    """The closed furanose ring with the standard bonds and angles and the given pucker (degrees), solved by
    weighted least squares: 1 degree of ring angle weighs as 0.005 Å of the closing C4'-O4' bond and as 2 degrees
    of pucker phase or amplitude."""
    targets = [sugar.angle(a, b, c) for a, b, c in zip(_RING, _RING[1:] + _RING[:1], _RING[2:] + _RING[:2])]
    closing_bond = sugar.bond("C4'", "O4'")
    # Ring torsions of the ideal pucker: nu_j = amplitude * cos(phase + 144 (j - 2)), j = 0..4.
    nu = [amplitude * np.cos(np.radians(phase + 144.0 * (j - 2))) for j in range(5)]

    def residuals(x: np.ndarray) -> list[float]:
        ring = _ring_from(sugar, *x)
        points = [ring[name] for name in _RING]
        angles = [_angle(points[i], points[(i + 1) % 5], points[(i + 2) % 5]) for i in range(5)]
        got_phase, got_amplitude = pseudorotation(np.array(points))
        return [(np.linalg.norm(ring["O4'"] - ring["C4'"]) - closing_bond) / 0.005,
                *(np.array(angles) - targets),
                ((got_phase - phase + 180.0) % 360.0 - 180.0) / 2.0, (got_amplitude - amplitude) / 2.0]

    # Angles at C3', C2', C1' are ring angles 0, 1, 2 (C4'-C3'-C2', C3'-C2'-C1', C2'-C1'-O4').
    start = np.array([nu[1], nu[2], *targets[:3]])
    solution = least_squares(residuals, start, xtol=1e-10, ftol=1e-10).x
    return _ring_from(sugar, *solution)
