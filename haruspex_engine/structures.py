"""Ideal macromolecular structures built in code with gemmi (test data and the built-in example).

Backbones are grown from internal coordinates (bond lengths in Å, bond angles and torsions in degrees) by
NeRF-style placement: each new atom is put at a given bond length, bond angle and torsion from the three atoms
before it. Regular secondary structure follows from constant (phi, psi, omega), so hydrogen-bond geometry comes
out of the torsions rather than being imposed. Atoms: N, CA, C, O, and CB for every residue except GLY.

A regular chain is a screw: residue i+1 is residue i moved by one fixed rotation about, and translation along,
an axis. Helices and strands are placed by that screw axis: ``start`` is where the first CA projects onto the
axis, ``axis`` its direction (N- to C-terminus), ``up`` the direction of the middle residue's CA from the axis.
"""

from __future__ import annotations

from collections.abc import Sequence

import gemmi
import numpy as np

from haruspex_engine.geometry import place_atom, screw_axis, superpose

Vec3 = tuple[float, float, float]

# Engh & Huber backbone geometry: bond lengths in Å, bond angles in degrees.
BOND_N_CA = 1.458
BOND_CA_C = 1.525
BOND_C_N = 1.329
BOND_C_O = 1.231
BOND_CA_CB = 1.530
ANGLE_N_CA_C = 111.2
ANGLE_CA_C_N = 116.2
ANGLE_C_N_CA = 121.7
ANGLE_CA_C_O = 120.1
ANGLE_N_CA_CB = 110.5
# Torsion C-N-CA-CB (degrees) that gives L-amino-acid chirality.
TORSION_C_N_CA_CB = -122.8

# Alpha helix (Pauling): 3.6 residues per turn, 1.5 Å rise per residue, CA radius 2.3 Å.
HELIX_PHI = -57.0
HELIX_PSI = -47.0
# Antiparallel beta strand (Pauling & Corey): nearly a two-fold screw, so a sheet can be built flat.
STRAND_PHI = -139.0
STRAND_PSI = 135.0

B_ISO = 20.0  # Å², isotropic B-factor given to every atom


def make_atom(name: str, xyz: np.ndarray, b_iso: float = B_ISO) -> gemmi.Atom:
    """An atom called ``name`` at ``xyz`` (Å), its element the name's first letter, occupancy 1, B ``b_iso`` (Å²)."""
    atom = gemmi.Atom()
    atom.name = name
    atom.element = gemmi.Element(name[0])
    atom.pos = gemmi.Position(*map(float, xyz))
    atom.occ = 1.0
    atom.b_iso = float(b_iso)
    return atom


def chain_from_torsions(
    residues: Sequence[str],
    phis: Sequence[float],
    psis: Sequence[float],
    omegas: Sequence[float] | None = None,
    *,
    chain_id: str = "A",
    first_seqnum: int = 1,
) -> gemmi.Chain:
    """Build a backbone chain (N, CA, C, O, CB except GLY) from backbone torsions.

    residues: three-letter residue names. phis, psis, omegas: one torsion per residue, in degrees
    (omega i is CA(i)-C(i)-N(i+1)-CA(i+1); default 180, trans). The phi of the first residue has no atoms to act
    on, and the psi of the last only places its O. The chain is in its own frame: first N at the origin, first CA
    on +x, first C in the xy plane. Coordinates in Å.
    """
    n = len(residues)
    if n == 0:
        raise ValueError("a chain needs at least one residue")
    if omegas is None:
        omegas = [180.0] * n
    if not len(phis) == len(psis) == len(omegas) == n:
        raise ValueError(f"need one phi, psi and omega per residue: {n} residues, "
                         f"{len(phis)} phis, {len(psis)} psis, {len(omegas)} omegas")
    theta = np.radians(ANGLE_N_CA_C)
    n_xyz = np.zeros(3)
    ca_xyz = np.array([BOND_N_CA, 0.0, 0.0])
    c_xyz = ca_xyz + BOND_CA_C * np.array([-np.cos(theta), np.sin(theta), 0.0])
    chain = gemmi.Chain(chain_id)
    for i, name in enumerate(residues):
        if i > 0:
            next_n = place_atom(n_xyz, ca_xyz, c_xyz, BOND_C_N, ANGLE_CA_C_N, psis[i - 1])
            next_ca = place_atom(ca_xyz, c_xyz, next_n, BOND_N_CA, ANGLE_C_N_CA, omegas[i - 1])
            c_xyz = place_atom(c_xyz, next_n, next_ca, BOND_CA_C, ANGLE_N_CA_C, phis[i])
            n_xyz, ca_xyz = next_n, next_ca
        # O is trans to the next residue's N: torsion N-CA-C-O = psi + 180.
        o_xyz = place_atom(n_xyz, ca_xyz, c_xyz, BOND_C_O, ANGLE_CA_C_O, psis[i] + 180.0)
        residue = gemmi.Residue()
        residue.name = name.upper()
        residue.seqid = gemmi.SeqId(first_seqnum + i, " ")
        residue.entity_type = gemmi.EntityType.Polymer
        residue.het_flag = "A"
        for atom_name, xyz in (("N", n_xyz), ("CA", ca_xyz), ("C", c_xyz), ("O", o_xyz)):
            residue.add_atom(make_atom(atom_name, xyz))
        if residue.name != "GLY":
            cb_xyz = place_atom(c_xyz, n_xyz, ca_xyz, BOND_CA_CB, ANGLE_N_CA_CB, TORSION_C_N_CA_CB)
            residue.add_atom(make_atom("CB", cb_xyz))
        chain.add_residue(residue)
    return chain


#: Side-chain atoms beyond CB built by ``add_side_chain``: residue name -> ((atom name, bond to the previous atom Å)).
SIDE_CHAIN_ATOMS = {
    "SER": (("OG", 1.417),),
    "MET": (("CG", 1.520), ("SD", 1.807), ("CE", 1.791)),
    "LYS": (("CG", 1.520), ("CD", 1.520), ("CE", 1.520), ("NZ", 1.489)),
}
SIDE_CHAIN_ANGLE = 112.0  # degrees, every bond angle along the side chain


def add_side_chain(residue: gemmi.Residue, chis: Sequence[float]) -> None:
    """Add the side-chain atoms beyond CB of a Ser, Met or Lys residue (SIDE_CHAIN_ATOMS) with torsions ``chis``.

    chis: degrees, chi1 (N-CA-CB-XG) onwards; one per atom added (extra values are ignored). Other residues, or a
    residue without N, CA and CB, are left unchanged. Bond angles SIDE_CHAIN_ANGLE; elements from the atom names.
    """
    atoms = SIDE_CHAIN_ATOMS.get(residue.name, ())
    if not atoms or not all(residue.find_atom(name, "*") for name in ("N", "CA", "CB")):
        return
    if len(chis) < len(atoms):
        raise ValueError(f"{residue.name} needs {len(atoms)} side-chain torsions, got {len(chis)}")
    chain = [np.array(residue[name][0].pos.tolist()) for name in ("N", "CA", "CB")]
    for (name, bond), chi in zip(atoms, chis):
        chain.append(place_atom(chain[-3], chain[-2], chain[-1], bond, SIDE_CHAIN_ANGLE, float(chi)))
        residue.add_atom(make_atom(name, chain[-1]))


def atom_coordinates(chain: gemmi.Chain, name: str) -> np.ndarray:
    """(n, 3) array of the positions (Å) of the atoms called ``name`` (e.g. "CA"), in residue order."""
    return np.array([residue[name][0].pos.tolist() for residue in chain if residue.find_atom(name, "*")])


def transform_chain(chain: gemmi.Chain, rotation: np.ndarray, translation: np.ndarray) -> None:
    """Move every atom x of ``chain`` to rotation @ x + translation, in place."""
    for residue in chain:
        for atom in residue:
            atom.pos = gemmi.Position(*map(float, rotation @ np.array(atom.pos.tolist()) + translation))


def _screw_axis(chain: gemmi.Chain) -> tuple[np.ndarray, np.ndarray]:
    """Unit direction (N- to C-terminal) and one point of the screw axis taking residue 0's backbone onto
    residue 1's."""
    first = np.array([chain[0][name][0].pos.tolist() for name in ("N", "CA", "C")])
    second = np.array([chain[1][name][0].pos.tolist() for name in ("N", "CA", "C")])
    direction, point, _ = screw_axis(*superpose(first, second))
    return direction, point


def _unit(vector: Sequence[float], what: str) -> np.ndarray:
    v = np.asarray(vector, dtype=float)
    norm = np.linalg.norm(v)
    if norm == 0:
        raise ValueError(f"{what} must be a non-zero vector")
    return v / norm


def _default_up(axis: np.ndarray) -> np.ndarray:
    """A direction perpendicular to ``axis``, chosen deterministically."""
    helper = np.eye(3)[np.argmin(np.abs(axis))]
    return np.cross(axis, helper)


def _place_on_axis(chain: gemmi.Chain, start: Sequence[float], axis: Sequence[float],
                   up: Sequence[float] | None) -> None:
    """Move a regular chain so its screw axis runs from ``start`` along ``axis``, middle CA towards ``up``."""
    target_axis = _unit(axis, "axis")
    target_up = _default_up(target_axis) if up is None else np.asarray(up, dtype=float)
    target_up = _unit(target_up - (target_up @ target_axis) * target_axis, "up (perpendicular to axis)")
    direction, point = _screw_axis(chain)
    ca = atom_coordinates(chain, "CA")
    radial = ca[len(ca) // 2] - point
    radial = _unit(radial - (radial @ direction) * direction, "radial CA direction")
    local = np.column_stack([direction, radial, np.cross(direction, radial)])
    target = np.column_stack([target_axis, target_up, np.cross(target_axis, target_up)])
    rotation = target @ local.T
    first_on_axis = point + ((ca[0] - point) @ direction) * direction
    transform_chain(chain, rotation, np.asarray(start, dtype=float) - rotation @ first_on_axis)


def ideal_alpha_helix(
    n_residues: int,
    *,
    chain_id: str = "A",
    start: Sequence[float] = (0.0, 0.0, 0.0),
    axis: Sequence[float] = (0.0, 0.0, 1.0),
    up: Sequence[float] | None = None,
    residue: str = "ALA",
    first_seqnum: int = 1,
) -> gemmi.Chain:
    """Right-handed alpha helix (phi -57°, psi -47°: 3.6 residues per turn, ~1.5 Å rise, CA radius ~2.3 Å).

    start: point (Å) on the helix axis level with the first CA; axis: direction N- to C-terminus;
    up: direction from the axis to the middle residue's CA (default: any perpendicular, deterministic).
    """
    if n_residues < 2:
        raise ValueError(f"a helix needs at least 2 residues, got {n_residues}")
    chain = chain_from_torsions([residue] * n_residues, [HELIX_PHI] * n_residues, [HELIX_PSI] * n_residues,
                                chain_id=chain_id, first_seqnum=first_seqnum)
    _place_on_axis(chain, start, axis, up)
    return chain


def ideal_beta_strand(
    n_residues: int,
    *,
    chain_id: str = "A",
    start: Sequence[float] = (0.0, 0.0, 0.0),
    axis: Sequence[float] = (1.0, 0.0, 0.0),
    up: Sequence[float] = (0.0, 0.0, 1.0),
    residue: str = "ALA",
    phi: float = STRAND_PHI,
    psi: float = STRAND_PSI,
    first_seqnum: int = 1,
) -> gemmi.Chain:
    """Extended beta strand, ~3.4 Å rise per residue (default phi -139°, psi 135°; angles in degrees).

    start: point (Å) on the strand axis level with the first CA; axis: direction N- to C-terminus;
    up: the pleat direction, from the axis to the middle residue's CA (and its CB side), i.e. the sheet normal.
    """
    if n_residues < 2:
        raise ValueError(f"a strand needs at least 2 residues, got {n_residues}")
    chain = chain_from_torsions([residue] * n_residues, [phi] * n_residues, [psi] * n_residues,
                                chain_id=chain_id, first_seqnum=first_seqnum)
    _place_on_axis(chain, start, axis, up)
    return chain


def beta_sheet(
    n_strands: int,
    n_residues: int,
    spacing_A: float = 4.8,
    antiparallel: bool = True,
    *,
    chain_ids: Sequence[str] | None = None,
    start: Sequence[float] = (0.0, 0.0, 0.0),
    strand_axis: Sequence[float] = (1.0, 0.0, 0.0),
    stack_axis: Sequence[float] = (0.0, 1.0, 0.0),
    residue: str = "ALA",
) -> list[gemmi.Chain]:
    """Flat beta sheet: ``n_strands`` strands side by side, one chain each, ``spacing_A`` Å apart.

    Strand k's axis is ``start + k * spacing_A * stack_axis``, running along ``strand_axis`` (reversed on odd k when
    ``antiparallel``, with the ends aligned). Residues facing each other across strands have the same pleat, so
    their CBs lie on the same side of the sheet (the normal strand_axis x stack_axis). With an odd number of
    residues per strand, antiparallel neighbours form alternating hydrogen-bonded (N-O ~2.9 Å at 4.8 Å spacing)
    and non-bonded pairs. chain_ids default to consecutive letters from "A".
    """
    if n_strands < 1:
        raise ValueError(f"a sheet needs at least one strand, got {n_strands}")
    ids = list(chain_ids) if chain_ids is not None else [chr(ord("A") + k) for k in range(n_strands)]
    if len(ids) != n_strands:
        raise ValueError(f"{n_strands} strands need {n_strands} chain ids, got {len(ids)}")
    along = _unit(strand_axis, "strand_axis")
    stack = _unit(stack_axis, "stack_axis")
    stack = _unit(stack - (stack @ along) * along, "stack_axis (perpendicular to strand_axis)")
    normal = np.cross(along, stack)
    origin = np.asarray(start, dtype=float)
    first = ideal_beta_strand(n_residues, chain_id=ids[0], start=origin, axis=along, up=normal, residue=residue)
    ca = atom_coordinates(first, "CA")
    length = (ca[-1] - ca[0]) @ along
    chains = [first]
    for k, chain_id in enumerate(ids[1:], start=1):
        reverse = antiparallel and k % 2 == 1
        chains.append(ideal_beta_strand(
            n_residues, chain_id=chain_id, start=origin + k * spacing_A * stack + (length * along if reverse else 0.0),
            axis=-along if reverse else along, up=normal, residue=residue))
    return chains


def assemble(chains: Sequence[gemmi.Chain], cell_padding_A: float = 8.0) -> gemmi.Structure:
    """One-model structure holding copies of ``chains`` in an orthogonal P 1 cell.

    Coordinates are shifted so the atoms' bounding box starts at ``cell_padding_A`` Å on every axis; the cell edges
    are the box size plus twice the padding (Å).
    """
    if not chains:
        raise ValueError("assemble needs at least one chain")
    names = [chain.name for chain in chains]
    if len(set(names)) != len(names):
        raise ValueError(f"chain ids must be unique, got {names}")
    structure = gemmi.Structure()
    structure.name = "ideal"
    model = gemmi.Model(1)
    for chain in chains:
        model.add_chain(chain)
    structure.add_model(model)
    coordinates = np.array([atom.pos.tolist() for chain in structure[0] for residue in chain for atom in residue])
    low = coordinates.min(axis=0)
    size = coordinates.max(axis=0) - low + 2 * cell_padding_A
    for chain in structure[0]:
        transform_chain(chain, np.eye(3), cell_padding_A - low)
    structure.cell = gemmi.UnitCell(*map(float, size), 90.0, 90.0, 90.0)
    structure.spacegroup_hm = "P 1"
    structure.setup_entities()
    return structure


def example_scene() -> gemmi.Structure:
    """The built-in example: an up-down-up bundle of three 18-residue helices beside a 4-stranded antiparallel
    sheet of 7-residue strands, all along z, in a P 1 cell of at most 48 Å per edge. Deterministic."""
    chains = [
        ideal_alpha_helix(18, chain_id=chain_id, start=(x, y, z0), axis=(0.0, 0.0, direction))
        for chain_id, x, y, z0, direction in (
            ("A", 0.0, 0.0, 0.0, 1.0),
            ("B", 10.0, 0.0, 25.5, -1.0),
            ("C", 5.0, 8.7, 0.0, 1.0),
        )
    ]
    chains += beta_sheet(4, 7, chain_ids=["D", "E", "F", "G"], start=(20.0, -3.0, 3.0),
                         strand_axis=(0.0, 0.0, 1.0), stack_axis=(0.0, 1.0, 0.0))
    return assemble(chains)
