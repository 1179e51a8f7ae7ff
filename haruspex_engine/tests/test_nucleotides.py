"""Standard-geometry nucleotide templates and ideal nucleic-acid helices built from them.

Geometry is checked against the literature values tabulated here (Clowney et al. 1996 bases, Gelbin et al. 1996
sugars, Parkinson et al. 1996 phosphate), written out independently of the module's own tables, and, when the
shared example data is present, against the deposited 78-nt RNA model 6V5B chain D.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import gemmi
import numpy as np
import pytest

from haruspex_engine import structures
from haruspex_engine.nucleic.building import ideal
from haruspex_engine.nucleic.building import nucleotides as nt
from haruspex_engine.simulate import simulate_map

DEPOSITED_RNA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cryoread-example" / "6v5b_drna.pdb"

BOND_TOLERANCE = 0.03  # Å
ANGLE_TOLERANCE = 3.0  # degrees


def _table(text: str) -> dict[tuple[str, ...], float]:
    """'A-B 1.23; A-B-C 109.5; ...' -> {(A, B): 1.23, (A, B, C): 109.5}."""
    entries = (item.split() for item in text.replace("\n", " ").split(";") if item.strip())
    return {tuple(atoms.split("-")): float(value) for atoms, value in entries}


# Literature values: bonds in Å, angles in degrees.
PHOSPHATE = _table("""
P-OP1 1.485; P-OP2 1.485; P-O5' 1.593; OP1-P-OP2 119.6; O5'-P-OP1 108.1; O5'-P-OP2 108.3; P-O5'-C5' 120.9""")
LINK = _table("O3'-P 1.607; C3'-O3'-P 119.7; O3'-P-O5' 104.0; O3'-P-OP1 107.4; O3'-P-OP2 108.3")
RIBOSE = _table("""
C1'-C2' 1.528; C2'-C3' 1.525; C3'-C4' 1.524; C4'-O4' 1.453; O4'-C1' 1.414; C3'-O3' 1.423; C4'-C5' 1.510;
C5'-O5' 1.440; C2'-O2' 1.413; C1'-C2'-C3' 101.5; C2'-C3'-C4' 102.7; C3'-C4'-O4' 105.5; C4'-O4'-C1' 109.6;
O4'-C1'-C2' 106.4; C3'-C4'-C5' 115.2; O4'-C4'-C5' 109.2; C4'-C3'-O3' 110.6; C2'-C3'-O3' 111.0; C1'-C2'-O2' 110.6;
C3'-C2'-O2' 113.3; C4'-C5'-O5' 110.2""")
DEOXYRIBOSE = _table("""
C1'-C2' 1.521; C2'-C3' 1.525; C3'-C4' 1.528; C4'-O4' 1.446; O4'-C1' 1.420; C3'-O3' 1.431; C4'-C5' 1.512;
C5'-O5' 1.440; C1'-C2'-C3' 102.5; C2'-C3'-C4' 103.1; C3'-C4'-O4' 106.0; C4'-O4'-C1' 109.7; O4'-C1'-C2' 105.9;
C3'-C4'-C5' 114.7; O4'-C4'-C5' 109.4; C4'-C3'-O3' 110.3; C2'-C3'-O3' 110.6; C4'-C5'-O5' 110.2""")
PURINE_LINK = "O4'-C1'-N9 108.2; C2'-C1'-N9 113.4"
PYRIMIDINE_LINK = "O4'-C1'-N1 108.2; C2'-C1'-N1 113.4"
BASES = {
    "A": _table(PURINE_LINK + """;
C1'-N9 1.462; N1-C2 1.339; C2-N3 1.331; N3-C4 1.344; C4-C5 1.383; C5-C6 1.406; C6-N1 1.351; C5-N7 1.388;
N7-C8 1.311; C8-N9 1.373; N9-C4 1.374; C6-N6 1.335; C1'-N9-C8 127.7; C1'-N9-C4 126.3; C6-N1-C2 118.6;
N1-C2-N3 129.3; C2-N3-C4 110.6; N3-C4-C5 126.8; C4-C5-C6 117.0; C5-C6-N1 117.7; C4-C5-N7 110.7; C5-N7-C8 103.9;
N7-C8-N9 113.8; C8-N9-C4 105.8; N9-C4-C5 105.8; N3-C4-N9 127.4; C6-C5-N7 132.3; N6-C6-N1 118.6; N6-C6-C5 123.7"""),
    "G": _table(PURINE_LINK + """;
C1'-N9 1.459; N1-C2 1.373; C2-N3 1.323; N3-C4 1.350; C4-C5 1.379; C5-C6 1.419; C6-N1 1.391; C5-N7 1.388;
N7-C8 1.305; C8-N9 1.374; N9-C4 1.375; C2-N2 1.341; C6-O6 1.237; C1'-N9-C8 127.0; C1'-N9-C4 126.5;
C6-N1-C2 125.1; N1-C2-N3 123.9; C2-N3-C4 111.9; N3-C4-C5 128.6; C4-C5-C6 118.8; C5-C6-N1 111.5; C4-C5-N7 110.8;
C5-N7-C8 104.3; N7-C8-N9 113.1; C8-N9-C4 106.4; N9-C4-C5 105.4; N3-C4-N9 126.0; C6-C5-N7 130.4; O6-C6-N1 119.9;
O6-C6-C5 128.6; N2-C2-N1 116.2; N2-C2-N3 119.9"""),
    "C": _table(PYRIMIDINE_LINK + """;
C1'-N1 1.470; N1-C2 1.397; C2-N3 1.353; N3-C4 1.335; C4-C5 1.425; C5-C6 1.339; C6-N1 1.367; C2-O2 1.240;
C4-N4 1.335; C1'-N1-C2 118.8; C1'-N1-C6 120.8; C6-N1-C2 120.3; N1-C2-N3 119.2; C2-N3-C4 119.9; N3-C4-C5 121.9;
C4-C5-C6 117.4; C5-C6-N1 121.0; O2-C2-N1 118.9; O2-C2-N3 121.9; N4-C4-N3 118.0; N4-C4-C5 120.2"""),
    "U": _table(PYRIMIDINE_LINK + """;
C1'-N1 1.469; N1-C2 1.381; C2-N3 1.373; N3-C4 1.380; C4-C5 1.431; C5-C6 1.337; C6-N1 1.375; C2-O2 1.219;
C4-O4 1.232; C1'-N1-C2 117.7; C1'-N1-C6 121.2; C6-N1-C2 121.0; N1-C2-N3 114.9; C2-N3-C4 127.0; N3-C4-C5 114.6;
C4-C5-C6 119.7; C5-C6-N1 122.7; O2-C2-N1 122.8; O2-C2-N3 122.2; O4-C4-N3 119.4; O4-C4-C5 125.9"""),
    "T": _table(PYRIMIDINE_LINK + """;
C1'-N1 1.473; N1-C2 1.376; C2-N3 1.373; N3-C4 1.382; C4-C5 1.445; C5-C6 1.339; C6-N1 1.378; C2-O2 1.220;
C4-O4 1.228; C5-C7 1.496; C1'-N1-C2 118.2; C1'-N1-C6 120.4; C6-N1-C2 121.3; N1-C2-N3 114.6; C2-N3-C4 127.2;
N3-C4-C5 115.2; C4-C5-C6 118.0; C5-C6-N1 123.7; O2-C2-N1 123.1; O2-C2-N3 122.3; O4-C4-N3 119.9; O4-C4-C5 124.9;
C7-C5-C4 119.0; C7-C5-C6 122.9"""),
}
EXPECTED_BASE_ATOMS = {
    "A": "N9 C8 N7 C5 C6 N6 N1 C2 N3 C4", "G": "N9 C8 N7 C5 C6 O6 N1 C2 N2 N3 C4", "C": "N1 C2 O2 N3 C4 N4 C5 C6",
    "U": "N1 C2 O2 N3 C4 O4 C5 C6", "T": "N1 C2 O2 N3 C4 O4 C5 C7 C6",
}
# Watson-Crick hydrogen bonds (strand-1 atom, strand-2 atom) by strand-1 base.
WATSON_CRICK = {"A": [("N1", "N3"), ("N6", "O4")], "G": [("N1", "N3"), ("N2", "O2"), ("O6", "N4")],
                "C": [("N3", "N1"), ("O2", "N2"), ("N4", "O6")], "U": [("N3", "N1"), ("O4", "N6")]}
WATSON_CRICK["T"] = WATSON_CRICK["U"]
ALL_RESIDUES = nt.RNA_RESIDUES + nt.DNA_RESIDUES


def residue_table(name: str) -> dict[tuple[str, ...], float]:
    sugar = DEOXYRIBOSE if name.startswith("D") else RIBOSE
    return {**PHOSPHATE, **sugar, **BASES[name[-1]]}


def bonds_of(name: str) -> list[tuple[str, str]]:
    return [key for key in residue_table(name) if len(key) == 2]


def angle(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
    u, v = a - b, c - b
    return float(np.degrees(np.arccos(u @ v / np.linalg.norm(u) / np.linalg.norm(v))))


def torsion(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> float:
    return float(np.degrees(gemmi.calculate_dihedral(*(gemmi.Position(*p) for p in (a, b, c, d)))))


def chiral_volume(centre: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
    """(a - centre) . ((b - centre) x (c - centre)), Å³. With a > b > c the three highest CIP priorities and the
    lowest-priority substituent pointing away, the centre is R when this is negative and S when positive."""
    return float(np.dot(a - centre, np.cross(b - centre, c - centre)))


def phase_of(ring: dict[str, np.ndarray]) -> float:
    """Pseudorotation phase (degrees, 0-360) from the five endocyclic torsions (Altona & Sundaralingam 1972)."""
    c4, c3, c2, c1, o4 = (ring[name] for name in ("C4'", "C3'", "C2'", "C1'", "O4'"))
    nu0, nu1, nu2, nu3, nu4 = (torsion(c4, o4, c1, c2), torsion(o4, c1, c2, c3), torsion(c1, c2, c3, c4),
                               torsion(c2, c3, c4, o4), torsion(c3, c4, o4, c1))
    return float(np.degrees(np.arctan2(nu4 + nu1 - nu3 - nu0, 3.0777 * nu2)) % 360.0)


def atoms_of(residue: gemmi.Residue) -> dict[str, np.ndarray]:
    return {atom.name: np.array(atom.pos.tolist()) for atom in residue}


def chain_atoms(chains: list[gemmi.Chain]) -> tuple[list[tuple[int, int, str]], np.ndarray]:
    keys = [(c, r, atom.name) for c, chain in enumerate(chains) for r, residue in enumerate(chain) for atom in residue]
    xyz = np.array([atom.pos.tolist() for chain in chains for residue in chain for atom in residue])
    return keys, xyz


def close_non_bonded(chains: list[gemmi.Chain], cutoff: float = 2.2) -> list[tuple]:
    """Atom pairs closer than ``cutoff`` Å that are neither bonded nor bonded to a common atom."""
    keys, xyz = chain_atoms(chains)
    index = {key: i for i, key in enumerate(keys)}
    neighbours: list[set[int]] = [set() for _ in keys]

    def link(a: tuple, b: tuple) -> None:
        if a in index and b in index:
            neighbours[index[a]].add(index[b])
            neighbours[index[b]].add(index[a])

    for c, chain in enumerate(chains):
        for r, residue in enumerate(chain):
            for a, b in bonds_of(residue.name):
                link((c, r, a), (c, r, b))
            link((c, r, "O3'"), (c, r + 1, "P"))
    distances = np.linalg.norm(xyz[:, None] - xyz[None], axis=-1)
    found = []
    for i, j in zip(*np.nonzero(distances < cutoff)):
        second_shell = set().union(*(neighbours[k] for k in neighbours[i]))
        if i < j and j not in neighbours[i] and j not in second_shell:
            found.append((keys[i], keys[j], round(float(distances[i, j]), 2)))
    return found


# ---- Templates -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_RESIDUES)
def test_template_atoms_names_and_order(name: str) -> None:
    template = nt.template(name)
    sugar = "P C5' O5' C4' O4' C3' O3' C2'" + ("" if name.startswith("D") else " O2'") + " C1'"
    expected = f"{sugar} {EXPECTED_BASE_ATOMS[name[-1]]} OP1 OP2".split()
    assert list(template.atom_names) == expected == list(nt.atom_order(name))
    assert template.coords.shape == (len(expected), 3)
    assert template.elements == tuple(atom[0] for atom in expected)
    assert ("O2'" in template.atom_names) == (name in nt.RNA_RESIDUES)
    assert set(nt.BASE_ATOMS[name]) == set(EXPECTED_BASE_ATOMS[name[-1]].split())
    assert set(template.atom_names) <= set(nt.SUGAR_ATOMS) | set(nt.PHOSPHATE_ATOMS) | set(nt.BASE_ATOMS[name])


@pytest.mark.parametrize("name", ALL_RESIDUES)
def test_template_bonds_and_angles_match_literature(name: str) -> None:
    xyz = nt.template(name).as_dict()
    checked = 0
    for atoms, value in residue_table(name).items():
        if any(atom not in xyz for atom in atoms):
            continue
        if len(atoms) == 2:
            got = float(np.linalg.norm(xyz[atoms[0]] - xyz[atoms[1]]))
            assert got == pytest.approx(value, abs=BOND_TOLERANCE), f"{name} bond {atoms}: {got:.3f} vs {value}"
        else:
            got = angle(*(xyz[atom] for atom in atoms))
            assert got == pytest.approx(value, abs=ANGLE_TOLERANCE), f"{name} angle {atoms}: {got:.1f} vs {value}"
        checked += 1
    assert checked >= 40
    # No atom is closer than 1.7 Å to another unless the two are bonded.
    bonded = {frozenset(pair) for pair in bonds_of(name)}
    for a, b in itertools.combinations(xyz, 2):
        if frozenset((a, b)) not in bonded:
            assert np.linalg.norm(xyz[a] - xyz[b]) > 1.7, (name, a, b)


@pytest.mark.parametrize("name", ALL_RESIDUES)
def test_base_is_planar(name: str) -> None:
    xyz = nt.template(name).as_dict()
    points = np.array([xyz[atom] for atom in nt.BASE_ATOMS[name]] + [xyz["C1'"]])
    centred = points - points.mean(axis=0)
    normal = np.linalg.svd(centred)[2][-1]
    assert np.sqrt(np.mean((centred @ normal) ** 2)) < 0.05


@pytest.mark.parametrize("name", ALL_RESIDUES)
def test_sugar_chirality_is_beta_d(name: str) -> None:
    """CIP: C4' R (O4' > C3' > C5'), C3' S (O3' > C4' > C2'), C1' R (O4' > N > C2'), ribose C2' R (O2' > C1' > C3')."""
    xyz = nt.template(name).as_dict()
    glycosidic = "N9" if name[-1] in "AG" else "N1"
    assert chiral_volume(xyz["C4'"], xyz["O4'"], xyz["C3'"], xyz["C5'"]) < -2.0
    assert chiral_volume(xyz["C3'"], xyz["O3'"], xyz["C4'"], xyz["C2'"]) > 2.0
    assert chiral_volume(xyz["C1'"], xyz["O4'"], xyz[glycosidic], xyz["C2'"]) < -2.0
    if "O2'" in xyz:
        assert chiral_volume(xyz["C2'"], xyz["O2'"], xyz["C1'"], xyz["C3'"]) < -2.0


@pytest.mark.parametrize("name, low, high, chi", [("A", 0.0, 36.0, -157.0), ("U", 0.0, 36.0, -157.0),
                                                   ("DG", 144.0, 180.0, -101.0), ("DT", 144.0, 180.0, -101.0)])
def test_pucker_and_glycosidic_torsion(name: str, low: float, high: float, chi: float) -> None:
    """RNA C3'-endo, DNA C2'-endo; anti base."""
    xyz = nt.template(name).as_dict()
    assert low <= phase_of(xyz) <= high
    assert nt.pseudorotation(np.array([xyz[a] for a in ("C4'", "C3'", "C2'", "C1'", "O4'")]))[0] == pytest.approx(
        phase_of(xyz), abs=0.5)
    first = ("N9", "C4") if name[-1] in "AG" else ("N1", "C2")
    assert torsion(xyz["O4'"], xyz["C1'"], xyz[first[0]], xyz[first[1]]) == pytest.approx(chi, abs=1.0)


def test_templates_share_the_backbone_and_are_read_only() -> None:
    a, g = nt.template("A"), nt.template("G")
    for atom in ("P", "OP1", "O5'", "C5'", "C4'", "O4'", "C3'", "O3'", "C2'", "O2'", "C1'"):
        np.testing.assert_allclose(a.xyz(atom), g.xyz(atom), atol=1e-9)
    with pytest.raises(ValueError):
        a.coords[0, 0] = 1.0
    with pytest.raises(ValueError, match="unknown nucleotide"):
        nt.template("T")


# ---- Strands and duplexes --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rna() -> gemmi.Chain:
    return ideal.ideal_na_strand("GGACUUCAGCUA", chain_id="R")


@pytest.fixture(scope="module")
def dna() -> gemmi.Chain:
    return ideal.ideal_na_strand("gcatTACGAT", chain_id="D", dna=True)


def test_strand_residues(rna: gemmi.Chain, dna: gemmi.Chain) -> None:
    assert rna.name == "R" and dna.name == "D"
    assert [r.name for r in rna] == list("GGACUUCAGCUA")
    assert [r.name for r in dna] == ["D" + letter for letter in "GCATTACGAT"]
    for chain in (rna, dna):
        assert [r.seqid.num for r in chain] == list(range(1, len(chain) + 1))
        for residue in chain:
            assert [atom.name for atom in residue] == list(nt.atom_order(residue.name))
            assert all(atom.element.name == atom.name[0] for atom in residue)


@pytest.mark.parametrize("dna_form, pp_range, rise, twist", [(False, (5.7, 6.3), 2.81, 32.7),
                                                             (True, (6.3, 7.0), 3.38, 36.0)])
def test_strand_backbone_geometry(rna: gemmi.Chain, dna: gemmi.Chain, dna_form: bool, pp_range: tuple[float, float],
                                  rise: float, twist: float) -> None:
    chain = dna if dna_form else rna
    atoms = [atoms_of(residue) for residue in chain]
    for before, after in zip(atoms, atoms[1:]):
        assert np.linalg.norm(before["O3'"] - after["P"]) == pytest.approx(LINK[("O3'", "P")], abs=0.05)
        assert angle(before["C3'"], before["O3'"], after["P"]) == pytest.approx(LINK[("C3'", "O3'", "P")], abs=3)
        assert angle(before["O3'"], after["P"], after["O5'"]) == pytest.approx(LINK[("O3'", "P", "O5'")], abs=3)
        for op in ("OP1", "OP2"):
            assert angle(before["O3'"], after["P"], after[op]) == pytest.approx(LINK[("O3'", "P", op)], abs=3)
        assert pp_range[0] <= np.linalg.norm(before["P"] - after["P"]) <= pp_range[1]
        assert 5.3 <= np.linalg.norm(before["C4'"] - after["C4'"]) <= 6.6
        # wwPDB/3DNA naming: OP1 -> OP2 -> O5' turns right-handed about the direction of O3'(i-1).
        turn = np.cross(after["OP2"] - after["OP1"], after["O5'"] - after["OP2"])
        assert turn @ (before["O3'"] - after["P"]) > 0
    # Regular helix about the z axis: every P at the same radius, rising by the fibre-model rise per residue.
    p = np.array([a["P"] for a in atoms])
    radius = np.hypot(p[:, 0], p[:, 1])
    np.testing.assert_allclose(radius, radius[0], atol=1e-6)
    np.testing.assert_allclose(np.diff(p[:, 2]), rise, atol=0.05)
    got_rise, got_twist = ideal.helix_parameters(nt.B_DNA if dna_form else nt.A_RNA)
    assert got_rise == pytest.approx(rise, abs=0.05)
    assert got_twist == pytest.approx(twist, abs=0.5)  # positive: right-handed
    steps = np.degrees(np.diff(np.unwrap(np.arctan2(p[:, 1], p[:, 0]))))
    np.testing.assert_allclose(steps, twist, atol=0.5)
    assert close_non_bonded([chain]) == []


def test_strand_options_and_errors() -> None:
    single = ideal.ideal_na_strand("A")
    assert len(single) == 1 and single[0].name == "A"
    no_phosphate = ideal.ideal_na_strand("GC", five_prime_phosphate=False, first_seqnum=5)
    assert [a.name for a in no_phosphate[0]][:2] == ["C5'", "O5'"]
    assert no_phosphate[1].find_atom("P", "*") is not None
    assert [r.seqid.num for r in no_phosphate] == [5, 6]
    for sequence, as_dna in (("ACGT", False), ("ACGU", True), ("", False), ("AXG", False)):
        with pytest.raises(ValueError, match="sequence must be non-empty"):
            ideal.ideal_na_strand(sequence, dna=as_dna)


@pytest.mark.parametrize("sequence, as_dna", [("GGACUUCAGC", False), ("CGCGAATTCGCG", True)])
def test_duplex_is_watson_crick_paired(sequence: str, as_dna: bool) -> None:
    first, second = ideal.ideal_na_duplex(sequence, dna=as_dna)
    n = len(sequence)
    assert (first.name, second.name) == ("A", "B")
    assert [r.seqid.num for r in second] == list(range(1, n + 1))
    for i, residue in enumerate(first):
        partner = second[n - 1 - i]
        assert ideal.COMPLEMENT[residue.name] == partner.name
        one, two = atoms_of(residue), atoms_of(partner)
        for a, b in WATSON_CRICK[residue.name[-1]]:
            assert 2.7 <= np.linalg.norm(one[a] - two[b]) <= 3.1, (residue.name, a, b)
        assert np.linalg.norm(one["C1'"] - two["C1'"]) == pytest.approx(10.7, abs=0.3)
        # Flat pair: the two base planes are parallel (no propeller twist or buckle).
        normals = [np.linalg.svd(np.array([atoms[a] for a in nt.BASE_ATOMS[r.name]]) - atoms["C1'"])[2][-1]
                   for r, atoms in ((residue, one), (partner, two))]
        assert abs(normals[0] @ normals[1]) > np.cos(np.radians(3.0))
    atoms = [atoms_of(r) for r in second]
    for before, after in zip(atoms, atoms[1:]):
        assert np.linalg.norm(before["O3'"] - after["P"]) == pytest.approx(1.607, abs=0.05)
        assert angle(before["C3'"], before["O3'"], after["P"]) == pytest.approx(119.7, abs=3)
    # Antiparallel: strand 2 runs 5' -> 3' down the helix axis.
    assert atoms[0]["C1'"][2] > atoms[-1]["C1'"][2]
    assert close_non_bonded([first, second]) == []
    # Across strands nothing comes closer than the hydrogen-bonded N...N / N...O pairs.
    one, two = chain_atoms([first])[1], chain_atoms([second])[1]
    assert np.linalg.norm(one[:, None] - two[None], axis=-1).min() > 2.6


def test_strand_makes_a_simulated_map() -> None:
    structure = structures.assemble([ideal.ideal_na_strand("GACUGACU")])
    density, origin = simulate_map(structure, voxel_size=1.5, resolution=4.0)
    p = np.array([atom.pos.tolist() for residue in structure[0][0] for atom in residue if atom.name == "P"])
    index = np.round((p - origin) / 1.5).astype(int)
    assert density[index[:, 2], index[:, 1], index[:, 0]].min() > density.mean() + 2 * density.std()


# ---- Against a deposited RNA -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deposited() -> gemmi.Chain:
    if not DEPOSITED_RNA.exists():
        pytest.skip(f"{DEPOSITED_RNA} is absent (the deposited 6V5B RNA lives in ../shared, outside the project)")
    structure = gemmi.read_structure(str(DEPOSITED_RNA))
    structure.remove_hydrogens()
    return structure[0][0]


def test_template_internal_distances_match_deposited_rna(deposited: gemmi.Chain) -> None:
    measured: dict[str, list[float]] = {"P-C4'": [], "C4'-C1'": [], "C1'-N": []}
    expected: dict[str, list[float]] = {key: [] for key in measured}
    for residue in deposited:
        if residue.name not in nt.RNA_RESIDUES:
            continue
        got, ideal_xyz = atoms_of(residue), nt.template(residue.name).as_dict()
        glycosidic = "N9" if residue.name in "AG" else "N1"
        for key, (a, b) in {"P-C4'": ("P", "C4'"), "C4'-C1'": ("C4'", "C1'"), "C1'-N": ("C1'", glycosidic)}.items():
            if a in got and b in got:
                measured[key].append(float(np.linalg.norm(got[a] - got[b])))
                expected[key].append(float(np.linalg.norm(ideal_xyz[a] - ideal_xyz[b])))
    for key in measured:
        assert len(measured[key]) > 50
        assert np.median(measured[key]) == pytest.approx(np.median(expected[key]), abs=0.2), key


def test_template_sugar_superposes_on_deposited_rna(deposited: gemmi.Chain) -> None:
    """Sugar ring, its substituents and the glycosidic N fit the deposited (mostly A-form) nucleotides: same
    chirality and pucker. Also the deposited OP1/OP2 labels follow the convention the templates use."""
    rmsds = []
    for residue in deposited:
        if residue.name not in nt.RNA_RESIDUES:
            continue
        names = ["C1'", "C2'", "C3'", "C4'", "O4'", "O2'", "O3'", "C5'", "N9" if residue.name in "AG" else "N1"]
        got, template = atoms_of(residue), nt.template(residue.name)
        target = np.array([got[name] for name in names])
        moving = np.array([template.xyz(name) for name in names])
        sup = gemmi.superpose_positions([gemmi.Position(*p) for p in target], [gemmi.Position(*p) for p in moving])
        rmsds.append(sup.rmsd)
    assert np.median(rmsds) < 0.2
    labelled = 0
    for before, after in zip(deposited, list(deposited)[1:]):
        one, two = atoms_of(before), atoms_of(after)
        if {"O3'"} <= one.keys() and {"P", "OP1", "OP2", "O5'"} <= two.keys():
            turn = np.cross(two["OP2"] - two["OP1"], two["O5'"] - two["OP2"])
            assert turn @ (one["O3'"] - two["P"]) > 0
            labelled += 1
    assert labelled > 50
