"""Ideal nucleic-acid helices built from the standard nucleotide templates (test structures and example data).

A regular strand repeats one residue-to-residue step: residue i+1's P, O5' and C5' are placed from residue i's
C4', C3', O3' with the backbone torsions epsilon, zeta, alpha of the helix form (bonds and angles of the
phosphate as in ``nucleotides``), and the template is superposed on them. That step is a screw: a rotation by the
twist about the helix axis and a translation by the rise along it. Chains are written in the helix frame: the
axis is the z axis, strand 1 runs 5' -> 3' towards +z, and residue 1's P lies on the +x side of the xz plane, at
z = 0. Coordinates in Å, angles in degrees.

A Watson-Crick duplex adds the antiparallel complementary strand as the image of strand 1 under a two-fold axis
perpendicular to the helix axis (so its backbone is exactly as regular as strand 1's), with each residue's base
swapped for the complementary one. The two-fold's height and direction put the paired residue's C1' where a
Watson-Crick pair puts it: PAIR_C1_DISTANCE from C1', at PAIR_GLYCOSIDIC_ANGLE from the glycosidic bond (towards
the minor-groove edge), within the base plane. With the A_RNA and B_DNA forms that two-fold also maps the whole
base frame onto the partner's, so the pairs are flat and the bases hydrogen-bonded.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import gemmi
import numpy as np

from haruspex_engine.geometry import place_atom, screw_axis, superpose
from haruspex_engine.nucleic.building import nucleotides as nt
from haruspex_engine.structures import make_atom

# Watson-Crick pair geometry: C1'-C1' distance (Å) and the angle (degrees) between each glycosidic bond and the
# C1'-C1' line, the same for both bases (pseudo-two-fold pair). With the Clowney base geometry these give
# N-H...N and N-H...O distances of 2.76-2.92 Å in A-U and G-C pairs.
PAIR_C1_DISTANCE = 10.7
PAIR_GLYCOSIDIC_ANGLE = 54.0

COMPLEMENT = {"A": "U", "U": "A", "G": "C", "C": "G", "DA": "DT", "DT": "DA", "DG": "DC", "DC": "DG"}


@dataclass(frozen=True)
class Helix:
    """A regular helix of one form. x -> rotation @ x + translation takes template coordinates to strand 1's
    first residue in the helix frame; residue i (from 0) is that residue turned by i * twist about z and raised by
    i * rise. rise in Å, twist in degrees (positive: right-handed)."""

    rotation: np.ndarray
    translation: np.ndarray
    rise: float
    twist: float

    def place(self, coords: np.ndarray, index: int) -> np.ndarray:
        """Template coordinates (n, 3), Å, moved to residue ``index`` (0-based) of strand 1."""
        in_frame = self.rotation @ coords.T + self.translation[:, None]
        return _turn(in_frame, index * self.twist).T + [0.0, 0.0, index * self.rise]


@cache
def helix(form: nt.HelixForm) -> Helix:
    """The screw of ``form`` (A_RNA or B_DNA or a custom HelixForm), in the helix frame (see module docstring)."""
    template = nt.template(_purine(form), form)
    c4, c3, o3 = (template.xyz(name) for name in ("C4'", "C3'", "O3'"))
    p = place_atom(c4, c3, o3, nt.BOND_P_O3, nt.ANGLE_C3_O3_P, form.epsilon)
    o5 = place_atom(c3, o3, p, nt.BOND_P_O5, nt.ANGLE_O3_P_O5, form.zeta)
    c5 = place_atom(o3, p, o5, form.sugar.bond("O5'", "C5'"), nt.ANGLE_P_O5_C5, form.alpha)
    backbone = np.array([template.xyz(name) for name in ("P", "O5'", "C5'")])
    rotation, translation = superpose(backbone, np.array([p, o5, c5]))
    axis, point, rise = screw_axis(rotation, translation)  # of the step from one residue to the next
    # Helix frame: z along the axis, residue 1's P in the xz plane (x > 0) at z = 0.
    radial = template.xyz("P") - point
    radial -= (radial @ axis) * axis
    radial /= np.linalg.norm(radial)
    frame = np.array([radial, np.cross(axis, radial), axis])  # rows: helix x, y, z in template coordinates
    along = (template.xyz("P") - point) @ axis
    in_frame = frame @ rotation @ frame.T
    twist = float(np.degrees(np.arctan2(in_frame[1, 0], in_frame[0, 0])))
    shift = -frame @ point - [0.0, 0.0, along]
    frame.flags.writeable = shift.flags.writeable = False
    return Helix(frame, shift, rise, twist)


def helix_parameters(form: nt.HelixForm) -> tuple[float, float]:
    """(rise in Å, twist in degrees) per residue of a regular strand of ``form``."""
    h = helix(form)
    return h.rise, h.twist


def residue_names(sequence: str, dna: bool = False) -> list[str]:
    """Residue names for a one-letter sequence: A, C, G, U for RNA; DA, DC, DG, DT for DNA (case ignored)."""
    letters = sequence.strip().upper()
    allowed = "ACGT" if dna else "ACGU"
    bad = sorted(set(letters) - set(allowed))
    if not letters or bad:
        kind = "DNA" if dna else "RNA"
        raise ValueError(f"{kind} sequence must be non-empty and use only {', '.join(allowed)}; got {sequence!r}")
    return ["D" + letter if dna else letter for letter in letters]


def ideal_na_strand(
    sequence: str,
    chain_id: str = "A",
    dna: bool = False,
    *,
    form: nt.HelixForm | None = None,
    first_seqnum: int = 1,
    five_prime_phosphate: bool = True,
) -> gemmi.Chain:
    """Single strand of ``sequence`` as a regular helix: A-RNA (default) or, with ``dna``, B-DNA.

    form: another backbone conformation (HelixForm). Residues are numbered from ``first_seqnum``; every atom has
    its element, occupancy 1 and B 20 Å². With ``five_prime_phosphate`` False the first residue has no P, OP1,
    OP2. Helix frame and units: see the module docstring.
    """
    names = residue_names(sequence, dna)
    form = nt.default_form(names[0]) if form is None else form
    h = helix(form)
    chain = gemmi.Chain(chain_id)
    for i, name in enumerate(names):
        template = nt.template(name, form)
        chain.add_residue(_residue(template, h.place(template.coords, i), first_seqnum + i,
                                   skip_phosphate=i == 0 and not five_prime_phosphate))
    return chain


def ideal_na_duplex(
    sequence: str,
    chain_ids: tuple[str, str] = ("A", "B"),
    dna: bool = False,
    *,
    form: nt.HelixForm | None = None,
    five_prime_phosphate: bool = True,
) -> tuple[gemmi.Chain, gemmi.Chain]:
    """Watson-Crick double helix: strand 1 is ``ideal_na_strand(sequence)``, strand 2 the reverse complement,
    antiparallel, each numbered 1..N from its 5' end (strand-2 residue k pairs with strand-1 residue N + 1 - k)."""
    names = residue_names(sequence, dna)
    form = nt.default_form(names[0]) if form is None else form
    first = ideal_na_strand(sequence, chain_ids[0], dna, form=form, five_prime_phosphate=five_prime_phosphate)
    h = helix(form)
    dyad_rotation, dyad_translation = _dyad(form)
    second = gemmi.Chain(chain_ids[1])
    for k, i in enumerate(range(len(names) - 1, -1, -1)):
        template = nt.template(COMPLEMENT[names[i]], form)
        moved = h.place(template.coords, 0) @ dyad_rotation.T + dyad_translation
        coords = _turn(moved.T, i * h.twist).T + [0.0, 0.0, i * h.rise]
        second.add_residue(_residue(template, coords, k + 1, skip_phosphate=k == 0 and not five_prime_phosphate))
    return first, second


def _residue(template: nt.Nucleotide, coords: np.ndarray, seqnum: int, skip_phosphate: bool) -> gemmi.Residue:
    residue = gemmi.Residue()
    residue.name = template.name
    residue.seqid = gemmi.SeqId(seqnum, " ")
    residue.entity_type = gemmi.EntityType.Polymer
    residue.het_flag = "A"
    for name, xyz in zip(template.atom_names, coords):
        if not (skip_phosphate and name in ("P", "OP1", "OP2")):
            residue.add_atom(make_atom(name, xyz))
    return residue


def _turn(points: np.ndarray, degrees: float) -> np.ndarray:
    """Points (3, n) rotated by ``degrees`` about the z axis (right-handed)."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ points


@cache
def _dyad(form: nt.HelixForm) -> tuple[np.ndarray, np.ndarray]:
    """Two-fold (rotation, translation) in the helix frame taking strand-1 residue 1 onto its Watson-Crick partner
    (every residue of a form has the same glycosidic bond direction and base plane)."""
    h = helix(form)
    template = nt.template(_purine(form), form)
    c1, n9, c4 = h.place(np.array([template.xyz(name) for name in ("C1'", "N9", "C4")]), 0)
    along = (n9 - c1) / np.linalg.norm(n9 - c1)
    side = (c4 - n9) - ((c4 - n9) @ along) * along
    side /= np.linalg.norm(side)
    angle = np.radians(PAIR_GLYCOSIDIC_ANGLE)
    partner = c1 + PAIR_C1_DISTANCE * (np.cos(angle) * along + np.sin(angle) * side)
    # Two-fold about a line perpendicular to z through (0, 0, height), at azimuth halfway between the two C1'.
    azimuth = np.angle(np.exp(1j * np.arctan2(c1[1], c1[0])) + np.exp(1j * np.arctan2(partner[1], partner[0])))
    height = (c1[2] + partner[2]) / 2.0
    u = np.array([np.cos(azimuth), np.sin(azimuth), 0.0])
    rotation = 2.0 * np.outer(u, u) - np.eye(3)
    return rotation, np.array([0.0, 0.0, 2.0 * height])


def _purine(form: nt.HelixForm) -> str:
    """An adenosine of the form's sugar (A or DA); every template of a form shares its sugar-phosphate backbone."""
    return "A" if any("O2'" in bond[:2] for bond in form.sugar.bonds) else "DA"
