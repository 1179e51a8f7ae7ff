"""Per-residue secondary structure (DSSP-style hydrogen bonds, torsion extension, nucleotides by residue type)."""

from pathlib import Path

import gemmi
import numpy as np
import pytest
from scipy.optimize import minimize

from haruspex_engine.structures import (
    assemble,
    beta_sheet,
    chain_from_torsions,
    example_scene,
    ideal_alpha_helix,
    ideal_beta_strand,
)
from haruspex_engine.testing.rna_models import ideal_rna
from haruspex_engine.validation.secondary_structure import (
    CHAIN_BREAK_A,
    HBOND_CUTOFF_KCAL,
    HBOND_SEARCH_A,
    HELIX,
    HELIX_REGION,
    NUCLEIC,
    SHEET,
    STRAND_REGION,
    UNASSIGNED,
    backbone_torsions,
    dssp_labels,
    extend_by_torsion,
    hbond_energy,
    hydrogen_bonds,
    label_residues,
    protein_backbone,
)

PROTEIN_3J6B = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "protein-3j6b" / "3J6B_9.pdb"
# Independent DSSP of 3J6B_9.pdb (chain 9, residues 29-223 in file order), one code per residue ("-" = blank):
# mdtraj 1.11.1, mdtraj.compute_dssp(trajectory, simplified=False), run outside the project's environments.
MDTRAJ_DSSP_3J6B = (
    "------SS--SSS---HHHHSB-TT--BTTT-THHHHHHHHHHT-TTTT----HHHHHHHH--TTGGGG-S---HHHHHHHHHHHHHHHHHHHHHTTS-SSSSSHH"
    "HHHHHSHHHHHHHHHHHT-GGG-----SSSSSSGGGTHHHHHHHHHHHHHHHHHHHS-SHHHHHHHHHHT-SSSSHHHHHHHHHHHHH-"
)


def labels_by_chain(structure: gemmi.Structure) -> dict[str, list[int]]:
    chains: dict[str, list[int]] = {}
    for residue in label_residues(structure):
        chains.setdefault(residue.chain, []).append(residue.label)
    return chains


def interior(n: int, label: int) -> list[int]:
    """An element of n residues whose two end residues lack phi (first) or psi (last): unassigned ends."""
    return [UNASSIGNED] + [label] * (n - 2) + [UNASSIGNED]


def test_ideal_helix_hydrogen_bonds_are_i_to_i_plus_4():
    backbone = protein_backbone(assemble([ideal_alpha_helix(12)])[0])
    bonds = {tuple(pair) for pair in hydrogen_bonds(backbone).tolist()}
    assert bonds == {(i, i + 4) for i in range(8)}


def test_amide_hydrogen_is_placed_along_the_previous_carbonyl_unless_modelled():
    chain = ideal_alpha_helix(6)
    modelled = gemmi.Atom()
    modelled.name, modelled.element = "H", gemmi.Element("H")
    modelled.pos = chain[3]["N"][0].pos + gemmi.Position(0.0, 0.0, 1.0)
    chain[3].add_atom(modelled)
    backbone = protein_backbone(assemble([chain])[0])
    assert np.isnan(backbone.h[0]).all()  # no previous residue
    np.testing.assert_allclose(np.linalg.norm(backbone.h[1:] - backbone.n[1:], axis=1), 1.0, atol=1e-9)
    carbonyl = backbone.c[1] - backbone.o[1]
    np.testing.assert_allclose(backbone.h[2] - backbone.n[2], carbonyl / np.linalg.norm(carbonyl), atol=1e-9)
    np.testing.assert_allclose(backbone.h[3] - backbone.n[3], [0.0, 0.0, 1.0], atol=1e-6)


def test_hbond_energy_of_a_linear_bond_and_the_search_radius():
    # Linear C=O···H-N with N-O 2.9 Å: about -3 kcal/mol (Kabsch & Sander's ideal bond).
    o, c = np.array([[0.0, 0.0, 0.0]]), np.array([[-1.23, 0.0, 0.0]])
    n, h = np.array([[2.9, 0.0, 0.0]]), np.array([[1.9, 0.0, 0.0]])
    assert -3.5 < hbond_energy(o, c, n, h)[0] < -2.5

    # No orientation of C=O (1.23 Å) and N-H (1.0 Å) at N-O = HBOND_SEARCH_A reaches the cut-off.
    def energy(angles: np.ndarray) -> float:
        def unit(polar: float, azimuth: float) -> np.ndarray:
            return np.array([np.sin(polar) * np.cos(azimuth), np.sin(polar) * np.sin(azimuth), np.cos(polar)])
        nitrogen = np.array([HBOND_SEARCH_A, 0.0, 0.0])
        return hbond_energy(np.zeros((1, 3)), 1.23 * unit(*angles[:2])[None], nitrogen[None],
                            (nitrogen + unit(*angles[2:]))[None])[0]

    starts = np.random.default_rng(0).uniform(0.0, np.pi, (20, 4))
    lowest = min(minimize(energy, start, method="Nelder-Mead").fun for start in starts)
    assert HBOND_CUTOFF_KCAL < lowest < 0.0


def test_ideal_alpha_helix_interior_is_helix():
    assert labels_by_chain(assemble([ideal_alpha_helix(18)])) == {"A": interior(18, HELIX)}


@pytest.mark.parametrize("antiparallel", [True, False])
def test_ideal_beta_sheet_interior_is_strand_whatever_the_direction(antiparallel):
    labels = labels_by_chain(assemble(beta_sheet(3, 9, antiparallel=antiparallel)))
    assert labels == {name: interior(9, SHEET) for name in "ABC"}


def test_isolated_bridge_is_not_a_strand():
    # Two antiparallel 3-residue strands: O(0)···N(5) and O(3)···N(2) make one bridge between residues 1 and 4
    # (DSSP's "B"); with no neighbouring bridge there is no ladder, so no strand.
    structure = assemble(beta_sheet(2, 3))
    backbone = protein_backbone(structure[0])
    assert sorted(map(tuple, hydrogen_bonds(backbone).tolist())) == [(0, 5), (3, 2)]
    assert labels_by_chain(structure) == {"A": [UNASSIGNED] * 3, "B": [UNASSIGNED] * 3}
    # One more residue per strand makes three bridges in a row: a ladder.
    assert labels_by_chain(assemble(beta_sheet(2, 5))) == {"A": interior(5, SHEET), "B": interior(5, SHEET)}


def test_example_scene_helices_and_sheet():
    labels = labels_by_chain(example_scene())
    assert {name: labels[name] for name in "ABC"} == {name: interior(18, HELIX) for name in "ABC"}
    assert {name: labels[name] for name in "DEFG"} == {name: interior(7, SHEET) for name in "DEFG"}


def test_chain_break_ends_helices_and_extensions():
    chain = ideal_alpha_helix(21)
    bond = np.subtract(chain[11]["N"][0].pos.tolist(), chain[10]["C"][0].pos.tolist())
    shift = gemmi.Position(*(bond / np.linalg.norm(bond)))
    for residue in list(chain)[11:]:  # pull the second half 1 Å away along the C(10)-N(11) bond: C-N 2.3 Å
        for atom in residue:
            atom.pos = atom.pos + shift
    structure = assemble([chain])
    backbone = protein_backbone(structure[0])
    assert np.linalg.norm(backbone.n[11] - backbone.c[10]) > CHAIN_BREAK_A
    assert list(backbone.segment) == [1] * 11 + [2] * 10
    # Bonds still span the break (O(7)···N(11) etc.) but may not make turns across it.
    assert any(acceptor <= 10 < donor for acceptor, donor in hydrogen_bonds(backbone).tolist())
    phi, psi = backbone_torsions(backbone)
    assert np.isnan(psi[10]) and np.isnan(phi[11])
    assert labels_by_chain(structure)["A"] == interior(11, HELIX) + interior(10, HELIX)


def test_lone_extended_strands_are_not_sheet():
    # Extension only grows elements found by hydrogen bonds, so strands with no partner stay unassigned even though
    # every interior residue lies in STRAND_REGION (polyproline II included).
    polyproline = chain_from_torsions(["PRO"] * 10, [-75.0] * 10, [145.0] * 10, chain_id="P")
    strand = ideal_beta_strand(9, chain_id="S", start=(0.0, 30.0, 0.0))
    structure = assemble([polyproline, strand])
    backbone = protein_backbone(structure[0])
    phi, psi = backbone_torsions(backbone)
    chain_ends = np.isnan(phi) | np.isnan(psi)
    assert chain_ends.sum() == 4 and STRAND_REGION.contains(phi, psi)[~chain_ends].all()
    assert np.isnan(backbone.h[:10]).all()  # proline has no amide hydrogen
    assert len(hydrogen_bonds(backbone)) == 0
    assert labels_by_chain(structure) == {"P": [UNASSIGNED] * 10, "S": [UNASSIGNED] * 9}


def test_strand_overhanging_its_partner_is_extended_by_torsion():
    chain_a, chain_b = beta_sheet(2, 11)
    for _ in range(4):  # B runs antiparallel: its last 4 residues faced A's first 4
        del chain_b[len(chain_b) - 1]
    backbone = protein_backbone(assemble([chain_a, chain_b])[0])
    by_hbonds = dssp_labels(backbone)
    assert list(by_hbonds[:11]) == [UNASSIGNED] * 5 + [SHEET] * 5 + [UNASSIGNED]
    extended = extend_by_torsion(by_hbonds, *backbone_torsions(backbone), backbone.segment)
    assert list(extended[:11]) == interior(11, SHEET)
    assert list(extended[11:]) == interior(7, SHEET)


def test_extend_by_torsion_grows_runs_in_the_same_region_within_a_segment():
    helix, strand, other = (-60.0, -45.0), (-125.0, 135.0), (60.0, 40.0)
    torsions = [helix, helix, helix, other, helix, strand, strand, strand, helix, helix]
    labels = np.array([UNASSIGNED, UNASSIGNED, HELIX, UNASSIGNED, HELIX, UNASSIGNED, SHEET, UNASSIGNED,
                       UNASSIGNED, UNASSIGNED])
    segment = np.array([1, 1, 1, 1, 1, 1, 1, 2, 2, 2])
    phi, psi = np.array(torsions).T
    out = extend_by_torsion(labels, phi, psi, segment)
    assert list(out) == [HELIX, HELIX, HELIX, UNASSIGNED, HELIX, SHEET, SHEET, UNASSIGNED, UNASSIGNED, UNASSIGNED]
    assert list(labels) == [UNASSIGNED, UNASSIGNED, HELIX, UNASSIGNED, HELIX, UNASSIGNED, SHEET] + [UNASSIGNED] * 3


def test_ramachandran_regions():
    assert HELIX_REGION.contains(-57.0, -47.0) and not HELIX_REGION.contains(-139.0, 135.0)
    assert STRAND_REGION.contains(-139.0, 135.0) and STRAND_REGION.contains(-119.0, 113.0)
    assert STRAND_REGION.contains(-120.0, -175.0)  # psi wraps at ±180°
    assert not STRAND_REGION.contains(-57.0, -47.0) and not HELIX_REGION.contains(np.nan, -47.0)


def test_annotated_records_are_used_and_extended():
    pdb = assemble([ideal_beta_strand(9)]).make_pdb_string()
    record = "SHEET    1   A 1 ALA A   4  ALA A   6  0"
    structure = gemmi.read_pdb_string(record + "\n" + pdb)
    assert labels_by_chain(structure) == {"A": interior(9, SHEET)}
    # An alpha-helix record (class 1) is taken as it is (polyproline torsions do not extend it); 3-10 (class 5) is not.
    pdb = assemble([chain_from_torsions(["ALA"] * 9, [-75.0] * 9, [145.0] * 9)]).make_pdb_string()
    records = ["HELIX    1   1 ALA A    2  ALA A    4  1                                   3",
               "HELIX    2   2 ALA A    6  ALA A    8  5                                   3"]
    structure = gemmi.read_pdb_string("\n".join(records) + "\n" + pdb)
    assert labels_by_chain(structure) == {"A": [UNASSIGNED] + [HELIX] * 3 + [UNASSIGNED] * 5}


def test_nucleotides_waters_and_residue_addresses():
    rna = ideal_rna("GGCAU")[0][0]
    rna.name = "R"
    helix = ideal_alpha_helix(8, chain_id="A", first_seqnum=10)
    water = gemmi.Residue()
    water.name, water.seqid = "HOH", gemmi.SeqId(30, "A")
    oxygen = gemmi.Atom()
    oxygen.name, oxygen.element, oxygen.pos = "O", gemmi.Element("O"), gemmi.Position(30.0, 30.0, 30.0)
    water.add_atom(oxygen)
    helix.add_residue(water)
    labels = label_residues(assemble([helix, rna]))
    assert [(r.chain, r.index, r.seqid, r.name) for r in labels[7:10]] == [
        ("A", 7, "17", "ALA"), ("A", 8, "30A", "HOH"), ("R", 0, str(rna[0].seqid), "G")]
    assert [r.label for r in labels] == interior(8, HELIX) + [UNASSIGNED] + [NUCLEIC] * 5


def test_structure_without_model_is_rejected():
    structure = gemmi.Structure()
    structure.name = "empty.cif"
    with pytest.raises(ValueError, match="empty.cif"):
        label_residues(structure)


@pytest.mark.skipif(not PROTEIN_3J6B.is_file(), reason=f"{PROTEIN_3J6B} is absent (../shared not beside the project)")
def test_agrees_with_independent_dssp_on_3j6b():
    labels = label_residues(gemmi.read_structure(str(PROTEIN_3J6B)))
    assert len(labels) == len(MDTRAJ_DSSP_3J6B)
    ours = np.array([residue.label for residue in labels])
    reference = np.array([{"H": HELIX, "E": SHEET}.get(code, UNASSIGNED) for code in MDTRAJ_DSSP_3J6B])
    # Measured 0.979: the only difference is one turn (residues 73-76) where the deposited amide hydrogens give
    # -0.54 kcal/mol bonds and DSSP's placed hydrogens -0.48 (labels are identical with hydrogens removed).
    assert (ours == reference).mean() >= 0.97
    assert (ours[reference == HELIX] == HELIX).all()
