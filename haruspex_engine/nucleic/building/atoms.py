"""Full-atom nucleotide chains from traced nodes, and the model / confidence-table writers.

Every residue of a traced chain is a copy of the standard-geometry template (``nucleotides.template``: A, C, G, U
for RNA, DA, DC, DG, DT for DNA; the base type UT is U in RNA and DT in DNA) moved rigidly onto three target points
(Kabsch superposition with reflection correction of a template triangle onto a target triangle):

* anchor: the residue's own P (template P);
* far point: 5/6 of the way from the own P to the next residue's P (template O3', the atom bonded to that P);
* adjusted base point: the point with the template base-atom centroid's projection ratio along anchor -> far point
  and its perpendicular distance from that line, on the side of the observed base point (the observed point gives
  only the direction, so an off-centre base node does not stretch the nucleotide).

The template O3' lies 1.2-1.3 Å off the P(i) -> P(i+1) line in A-RNA and B-DNA, so this fit tilts even a
perfect strand (about 0.8 Å RMSD for A-RNA, 1.0 Å for B-DNA). With ``helix_far_point`` the template vertex is
instead the point 5/6 of the way from the template P to its own next P (placed from O3' with the form's epsilon, as
in ``ideal.helix``); both triangles then correspond and a regular strand is rebuilt almost exactly. That is the
default: the O3' vertex also pulls O3'(i) to 0.7-0.9 Å from P(i+1) (bond 1.61 Å) and 1.0-1.5 Å from OP2(i+1).

After the superposition the residue is translated so that the template anchor lands exactly on the target anchor.
Cases, for residue i of a chain of L >= 2 residues (the step is sugar[i+1] - sugar[i], or sugar[i] - sugar[i-1] for
the last residue, i.e. extrapolated from the previous step):

1. own P and next P: as above.
2. own P, next P missing (a gap or the 3' end): synthetic next P = own P + step.
3. own P missing, next P present: synthetic own P = next P - step; the residue's P is written there.
4. neither: sugar construction. Anchor = the template's sugar-ring centroid (C1', C2', C3', C4', O4') on the sugar
   node; far point = that centroid + the template vector O3' - P, on the next sugar node (sugar[i] + step); the base
   point as above, relative to that axis.

A phosphate node counts as the residue's own (next) P only when it lies PHOSPHATE_SUGAR_A (2.5–6.5 Å) from the
residue's (previous residue's) sugar node, and a residue placed on its phosphates whose C4′ lands more than
MAX_C4_OFF_NODE_A from its sugar node is placed by the sugar construction (case 4) instead: a wrongly attached
phosphate (noise, or the neighbour's) must not pull the nucleotide off the sugar the trace found.

Every residue is written with all its heavy atoms (no OP3). A lone residue has no backbone direction: chains need
at least two residues. Coordinates are (x, y, z) in Å throughout; arrays are (L, 3) with one row per residue,
5' -> 3'.

Output (``build_model``, ``write_model``): one chain per traced path, ids A-Z, a-z, 0-9 and then two-letter ids
(mmCIF only), residues numbered 1..N per chain unless the caller gives the numbers, occupancy 1, B-factor = the
caller's per-residue confidence, element set, atoms in ``nucleotides.atom_order``. ``assemble_model`` instead
sends each residue of several traced pieces to a named chain with a given number (a chain in sequence register
gathers the pieces placed in it, with gaps in its numbering).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import gemmi
import numpy as np

from haruspex_engine.atomic_files import atomic_path
from haruspex_engine.geometry import place_atom, superpose
from haruspex_engine.nucleic.building import nucleotides as nt
from haruspex_engine.nucleic.building.sequences import CHAIN_ID_ALPHABET
from haruspex_engine.nucleic.classes import BASE_TYPES
from haruspex_engine.structures import make_atom

#: Single-character chain ids in the order they are given out.
#: Fraction of the P(i) -> P(i+1) vector at which the template O3' is placed.
O3_FRACTION = 5.0 / 6.0
_RING_ATOMS = ("C1'", "C2'", "C3'", "C4'", "O4'")


@dataclass(frozen=True)
class ChainResidues:
    """Node positions and labels of one traced chain of L residues, 5' -> 3'.

    p: (L, 3) phosphate positions, Å (a NaN row: the residue has no P). sugar: (L, 3) sugar node positions (≈ C4'),
    Å. base: (L, 3) base node positions, Å. bases: L base types from ``classes.BASE_TYPES`` (A, UT, C, G).
    dna: DNA residue names (DA, DC, DG, DT) instead of RNA (A, C, G, U). confidence: (L,) per-residue values
    written as B-factors. numbers: (L,) strictly increasing residue numbers (sequence register), or None for 1..L.
    """

    p: np.ndarray
    sugar: np.ndarray
    base: np.ndarray
    bases: tuple[str, ...]
    dna: bool
    confidence: np.ndarray
    numbers: np.ndarray | None = None

    def __post_init__(self) -> None:
        length = len(self.bases)
        for name in ("p", "sugar", "base"):
            array = np.asarray(getattr(self, name), dtype=float)
            if array.shape != (length, 3):
                raise ValueError(f"{name} must have shape ({length}, 3), got {array.shape}")
            object.__setattr__(self, name, array)
        if not (np.isfinite(self.sugar).all() and np.isfinite(self.base).all()):
            raise ValueError("sugar and base positions must be finite")
        bad = sorted(set(self.bases) - set(BASE_TYPES))
        if bad:
            raise ValueError(f"unknown base types {bad}: expected {BASE_TYPES}")
        object.__setattr__(self, "bases", tuple(self.bases))
        confidence = np.asarray(self.confidence, dtype=float)
        if confidence.shape != (length,):
            raise ValueError(f"confidence must have shape ({length},), got {confidence.shape}")
        object.__setattr__(self, "confidence", confidence)
        if self.numbers is not None:
            numbers = np.asarray(self.numbers, dtype=int)
            if numbers.shape != (length,) or (np.diff(numbers) <= 0).any():
                raise ValueError(f"numbers must be {length} strictly increasing integers")
            object.__setattr__(self, "numbers", numbers)

    @property
    def residue_names(self) -> tuple[str, ...]:
        """Residue names: A, C, G, U (UT -> U) for RNA; DA, DC, DG, DT (UT -> DT) for DNA."""
        return tuple(residue_name(base, self.dna) for base in self.bases)


def residue_name(base: str, dna: bool) -> str:
    """Residue name of a base type (A, UT, C, G) in RNA (A, U, C, G) or DNA (DA, DT, DC, DG)."""
    if base not in BASE_TYPES:
        raise ValueError(f"unknown base type {base!r}: expected {BASE_TYPES}")
    letter = base[-1] if dna else base[0]
    return "D" + letter if dna else letter


def chain_id(index: int) -> str:
    """Chain id of the ``index``-th chain (from 0): A-Z, a-z, 0-9, then two-letter ids AA, AB, ... (mmCIF only)."""
    n = len(CHAIN_ID_ALPHABET)
    if index < 0 or index >= n + n * n:
        raise ValueError(f"chain index {index} out of range [0, {n + n * n})")
    if index < n:
        return CHAIN_ID_ALPHABET[index]
    index -= n
    return CHAIN_ID_ALPHABET[index // n] + CHAIN_ID_ALPHABET[index % n]


def residue_coordinates(residues: ChainResidues, helix_far_point: bool = True) -> list[np.ndarray]:
    """Full-atom coordinates of every residue, each (n_atoms, 3) in Å in ``nucleotides.atom_order`` (cases and
    ``helix_far_point``: see the module docstring)."""
    length = len(residues.bases)
    if length < 2:
        raise ValueError("a chain needs at least 2 residues to define its backbone direction")
    sugar, p = residues.sugar, residues.p
    has_p = np.isfinite(p).all(axis=1)
    reach = np.linalg.norm(p - sugar, axis=1)
    own_ok = has_p & _within(reach, PHOSPHATE_SUGAR_A)
    next_ok = np.append(has_p[1:] & _within(np.linalg.norm(p[1:] - sugar[:-1], axis=1), PHOSPHATE_SUGAR_A), False)
    coords = []
    for i, name in enumerate(residues.residue_names):
        template = nt.template(name)
        step = sugar[i + 1] - sugar[i] if i + 1 < length else sugar[i] - sugar[i - 1]
        own = own_ok[i]
        # a phosphate shared with the next residue (< 0.1 Å apart) cannot be both its 5' and its 3' phosphate
        following = next_ok[i] and not (own and np.linalg.norm(p[i + 1] - p[i]) < SHARED_P_A)
        t_base = template.coords[[template.atom_names.index(a) for a in nt.BASE_ATOMS[name]]].mean(axis=0)
        placed = None
        if own or following:
            anchor = p[i] if own else p[i + 1] - step
            next_p = p[i + 1] if following else anchor + step
            t_anchor = template.xyz("P")
            t_far = t_anchor + O3_FRACTION * (_template_next_p(name) - t_anchor) if helix_far_point \
                else template.xyz("O3'")
            far = anchor + O3_FRACTION * (next_p - anchor)
            placed = _place_template(template.coords, (t_anchor, t_far, t_base), anchor, far, residues.base[i])
            c4 = placed[template.atom_names.index("C4'")]
            if np.linalg.norm(c4 - sugar[i]) > MAX_C4_OFF_NODE_A:  # the phosphates pull the sugar off its node
                placed = None
        if placed is None:
            t_anchor = template.coords[[template.atom_names.index(a) for a in _RING_ATOMS]].mean(axis=0)
            t_far = t_anchor + template.xyz("O3'") - template.xyz("P")
            placed = _place_template(template.coords, (t_anchor, t_far, t_base), sugar[i], sugar[i] + step,
                                     residues.base[i])
        coords.append(placed)
    return coords


def _within(values: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    return (values >= bounds[0]) & (values <= bounds[1])


SHARED_P_A = 0.1
#: Å: a phosphate node is taken as a residue's own or next P only at this distance from its sugar node (deposited
#: RNA and DNA: own P 3.9-5.0 Å, next P 3.5-4.1 Å from the sugar-ring centroid, 4.3-5.3 Å from C4'; node noise on top).
PHOSPHATE_SUGAR_A = (2.5, 6.5)
#: Å: a residue placed on its phosphates whose C4' lands farther than this from the sugar node is placed on the
#: sugar node instead (the node is the ring centroid, 1.25 Å from C4', or C4' itself).
MAX_C4_OFF_NODE_A = 2.5


@cache
def _template_next_p(name: str) -> np.ndarray:
    """Position (Å, template frame) of the P bonded to the template's O3' in a regular strand of its form."""
    template, form = nt.template(name), nt.default_form(name)
    return place_atom(template.xyz("C4'"), template.xyz("C3'"), template.xyz("O3'"), nt.BOND_P_O3, nt.ANGLE_C3_O3_P,
                  form.epsilon)


def _place_template(coords: np.ndarray, template_points: tuple[np.ndarray, np.ndarray, np.ndarray],
                    anchor: np.ndarray, far: np.ndarray, observed_base: np.ndarray) -> np.ndarray:
    """Template coordinates (n, 3), Å, moved so that its (anchor, far point, base centroid) fit (anchor, far,
    adjusted base point) and its anchor lands exactly on ``anchor``."""
    t_anchor, t_far, t_base = template_points
    t_axis, t_rel = t_far - t_anchor, t_base - t_anchor
    ratio = (t_rel @ t_axis) / (t_axis @ t_axis)
    distance = np.linalg.norm(t_rel - ratio * t_axis)
    axis = far - anchor
    rel = observed_base - anchor
    side = rel - (rel @ axis) / (axis @ axis) * axis
    if np.linalg.norm(side) < 1e-6:  # base node on the backbone line: any perpendicular direction
        side = np.cross(axis, np.eye(3)[np.argmin(np.abs(axis))])
    adjusted = anchor + ratio * axis + distance * side / np.linalg.norm(side)
    rotation, translation = superpose(np.array([t_anchor, t_far, t_base]), np.array([anchor, far, adjusted]))
    moved = coords @ rotation.T + translation
    return moved + (anchor - (rotation @ t_anchor + translation))


def build_chain(residues: ChainResidues, chain_name: str, helix_far_point: bool = True) -> gemmi.Chain:
    """gemmi chain ``chain_name`` of full-atom residues (see ``residue_coordinates``); occupancy 1, B-factor = the
    residue's confidence, residue numbers ``residues.numbers`` or 1..L."""
    numbers = residues.numbers if residues.numbers is not None else np.arange(1, len(residues.bases) + 1)
    chain = gemmi.Chain(chain_name)
    coordinates = residue_coordinates(residues, helix_far_point)
    for name, xyz, number, confidence in zip(residues.residue_names, coordinates, numbers, residues.confidence):
        chain.add_residue(_residue(name, xyz, int(number), float(confidence)))
    return chain


def build_model(chains: list[ChainResidues], name: str = "haruspex", helix_far_point: bool = True,
                chain_names: list[str] | None = None) -> gemmi.Structure:
    """One-model structure with chain k (from 0) of ``chains`` named ``chain_names[k]`` (default ``chain_id(k)``;
    see ``build_chain``); entities set up."""
    if not chains:
        raise ValueError("build_model needs at least one chain")
    names = chain_names or [chain_id(k) for k in range(len(chains))]
    if len(names) != len(chains) or len(set(names)) != len(names):
        raise ValueError(f"need {len(chains)} distinct chain names, got {names}")
    model = gemmi.Model(1)
    for residues, chain_name in zip(chains, names):
        model.add_chain(build_chain(residues, chain_name, helix_far_point))
    return _structure(model, name)


def assemble_model(pieces: list[tuple[ChainResidues, list[str], np.ndarray]], chain_order: list[str],
                   name: str = "haruspex", helix_far_point: bool = True) -> gemmi.Structure:
    """One-model structure whose chains gather residues of several traced pieces. Each piece is (residues, chain
    name per residue, residue number per residue); its atoms are placed on the piece as a whole
    (``residue_coordinates``: a residue's neighbours on its piece set its backbone direction), then each residue goes
    to its chain. Chains come in ``chain_order`` (which names every chain used), residues sorted by number; a
    (chain, number) pair may occur once. Occupancy 1, B-factor = confidence."""
    placed: dict[str, list[tuple[int, gemmi.Residue]]] = {chain_name: [] for chain_name in chain_order}
    for residues, names, numbers in pieces:
        coordinates = residue_coordinates(residues, helix_far_point)
        for chain_name, number, residue_name, xyz, confidence in zip(names, numbers, residues.residue_names,
                                                                     coordinates, residues.confidence):
            placed[chain_name].append((int(number), _residue(residue_name, xyz, int(number), float(confidence))))
    model = gemmi.Model(1)
    for chain_name, residues_in_chain in placed.items():
        numbers = sorted(number for number, _ in residues_in_chain)
        if len(set(numbers)) != len(numbers):
            raise ValueError(f"chain {chain_name}: a residue number occurs twice")
        if not residues_in_chain:
            continue
        chain = gemmi.Chain(chain_name)
        for _, residue in sorted(residues_in_chain, key=lambda item: item[0]):
            chain.add_residue(residue)
        model.add_chain(chain)
    if not len(model):
        raise ValueError("assemble_model needs at least one residue")
    return _structure(model, name)


def _residue(name: str, xyz: np.ndarray, number: int, confidence: float) -> gemmi.Residue:
    """A polymer residue ``name`` numbered ``number`` with its atoms at xyz (n_atoms, 3) Å in
    ``nucleotides.atom_order``; B-factor = confidence."""
    residue = gemmi.Residue()
    residue.name = name
    residue.seqid = gemmi.SeqId(number, " ")
    residue.entity_type = gemmi.EntityType.Polymer
    residue.het_flag = "A"
    for atom_name, position in zip(nt.atom_order(name), xyz):
        residue.add_atom(make_atom(atom_name, position, b_iso=confidence))
    return residue


def _structure(model: gemmi.Model, name: str) -> gemmi.Structure:
    structure = gemmi.Structure()
    structure.name = name
    structure.add_model(model)
    structure.setup_entities()
    return structure


def write_model(structure: gemmi.Structure, path: str | os.PathLike[str]) -> Path:
    """Write ``structure`` atomically (temporary name, then rename): PDB when the path ends in .pdb, else mmCIF.

    PDB output needs single-character chain ids (at most 62 chains); ValueError otherwise, before anything is
    written.
    """
    path = Path(path)
    pdb = path.suffix.lower() == ".pdb"
    if pdb:
        names = [chain.name for chain in structure[0]]
        if len(names) > len(CHAIN_ID_ALPHABET) or any(len(name) != 1 for name in names):
            raise ValueError(f"PDB format allows at most {len(CHAIN_ID_ALPHABET)} chains with 1-character ids; "
                             f"this model has {len(names)} chains - write mmCIF (.cif) instead")
    with atomic_path(path) as partial:
        if pdb:
            structure.write_pdb(str(partial))
        else:
            structure.make_mmcif_document().write_file(str(partial))
    return path


def write_confidence_table(structure: gemmi.Structure, path: str | os.PathLike[str]) -> Path:
    """CSV (chain, residue_number, residue_name, confidence) with one row per residue of the first model; the
    confidence is the residue's B-factor as ``build_model`` writes it. Written atomically."""
    path = Path(path)
    with atomic_path(path) as partial, partial.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("chain", "residue_number", "residue_name", "confidence"))
        for chain in structure[0]:
            for residue in chain:
                writer.writerow((chain.name, residue.seqid.num, residue.name, f"{residue[0].b_iso:.4f}"))
    return path
