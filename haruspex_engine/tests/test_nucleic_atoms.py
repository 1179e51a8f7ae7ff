"""Full-atom construction and model writing (haruspex_engine.nucleic.building.atoms) on ideal A-RNA and B-DNA
strands."""

from __future__ import annotations

import csv

import gemmi
import numpy as np
import pytest

from haruspex_engine.nucleic.building import atoms
from haruspex_engine.nucleic.building import nucleotides as nt
from haruspex_engine.nucleic.building.ideal import ideal_na_strand

RNA = "GCAUGGCUAACGUAGCUAGC"
DNA = "GCATGGCTAACGTAGCTAGC"


def _nodes(sequence: str, dna: bool) -> tuple[gemmi.Chain, atoms.ChainResidues]:
    """An ideal strand and its per-residue P, C4' (sugar node), base-atom centroid (base node) and base types."""
    chain = ideal_na_strand(sequence, dna=dna)
    p, sugar, base, bases = [], [], [], []
    for residue in chain:
        p.append(residue["P"][0].pos.tolist())
        sugar.append(residue["C4'"][0].pos.tolist())
        base.append(np.mean([residue[a][0].pos.tolist() for a in nt.BASE_ATOMS[residue.name]], axis=0))
        bases.append("UT" if residue.name[-1] in "UT" else residue.name[-1])
    confidence = np.linspace(0.1, 0.9, len(chain))
    return chain, atoms.ChainResidues(np.array(p), np.array(sugar), np.array(base), tuple(bases), dna, confidence)


def _rmsd(built: gemmi.Chain, reference: gemmi.Chain) -> float:
    squares = [built[i][atom.name][0].pos.dist(atom.pos) ** 2 for i, residue in enumerate(reference)
               for atom in residue]
    return float(np.sqrt(np.mean(squares)))


def _closest_nonbonded(chain: gemmi.Chain) -> float:
    """Shortest distance (Å) between atoms of different residues, the O3'(i)-P(i+1) link excluded."""
    xyz = np.array([atom.pos.tolist() for residue in chain for atom in residue])
    owner = np.array([i for i, residue in enumerate(chain) for _ in residue])
    names = [atom.name for residue in chain for atom in residue]
    distances = np.linalg.norm(xyz[:, None] - xyz[None], axis=-1)
    distances[owner[:, None] == owner[None]] = np.inf
    for a, name_a in enumerate(names):
        for b, name_b in enumerate(names):
            if name_a == "O3'" and name_b == "P" and owner[b] == owner[a] + 1:
                distances[a, b] = distances[b, a] = np.inf
    return float(distances.min())


@pytest.mark.parametrize(("sequence", "dna", "limit"), [(RNA, False, 0.25), (DNA, True, 0.25)])
def test_rebuild_ideal_strand(sequence: str, dna: bool, limit: float) -> None:
    reference, residues = _nodes(sequence, dna)
    built = atoms.build_chain(residues, "A")
    rmsd = _rmsd(built, reference)
    print(f"{'DNA' if dna else 'RNA'} all-atom RMSD (helix far point, default): {rmsd:.3f} A")
    assert rmsd < limit
    # Every residue but the last (synthetic next P) is exact.
    assert max(_rmsd_residue(b, r) for b, r in zip(list(built)[:-1], list(reference)[:-1])) < 1e-3
    for residue, p in zip(built, residues.p):
        assert residue["P"][0].pos.dist(gemmi.Position(*p)) < 0.01
    assert _closest_nonbonded(built) > 2.0
    assert [r.name for r in built] == [r.name for r in reference]
    for residue, number, confidence in zip(built, range(1, len(sequence) + 1), residues.confidence):
        assert residue.seqid.num == number
        assert [a.name for a in residue] == list(nt.atom_order(residue.name))
        assert all(a.occ == 1.0 and a.b_iso == pytest.approx(confidence) for a in residue)
        assert all(a.element.name == a.name[0] for a in residue)


@pytest.mark.parametrize(("sequence", "dna", "limit"), [(RNA, False, 1.0), (DNA, True, 1.05)])
def test_o3_vertex_fit(sequence: str, dna: bool, limit: float) -> None:
    """The facts' template triangle [P, O3', base centroid]: within about 1 Å, but O3' lands too close to P(i+1)."""
    reference, residues = _nodes(sequence, dna)
    built = atoms.build_chain(residues, "A", helix_far_point=False)
    rmsd = _rmsd(built, reference)
    link = built[3]["O3'"][0].pos.dist(built[4]["P"][0].pos)
    print(f"{'DNA' if dna else 'RNA'} all-atom RMSD (O3' vertex): {rmsd:.3f} A, O3'-P(i+1) {link:.2f} A")
    assert rmsd < limit
    for residue, p in zip(built, residues.p):
        assert residue["P"][0].pos.dist(gemmi.Position(*p)) < 0.01


def _rmsd_residue(built: gemmi.Residue, reference: gemmi.Residue) -> float:
    return float(np.sqrt(np.mean([built[a.name][0].pos.dist(a.pos) ** 2 for a in reference])))


@pytest.mark.parametrize(("sequence", "dna"), [(RNA, False), (DNA, True)])
def test_no_phosphate_fallback_places_c4(sequence: str, dna: bool) -> None:
    reference, residues = _nodes(sequence, dna)
    no_p = atoms.ChainResidues(np.full_like(residues.p, np.nan), residues.sugar, residues.base, residues.bases, dna,
                               residues.confidence)
    built = atoms.build_chain(no_p, "A")
    worst = max(b["C4'"][0].pos.dist(r["C4'"][0].pos) for b, r in zip(built, reference))
    print(f"{'DNA' if dna else 'RNA'} no-P: worst C4' {worst:.2f} A, RMSD {_rmsd(built, reference):.2f} A")
    assert worst < 1.5


def test_missing_phosphates_mixed_cases() -> None:
    reference, residues = _nodes(RNA, False)
    p = residues.p.copy()
    p[[0, 7, 12, 13]] = np.nan  # 5' end without P; own-P-only / next-P-only neighbours; two in a row
    gapped = atoms.ChainResidues(p, residues.sugar, residues.base, residues.bases, False, residues.confidence)
    built = atoms.build_chain(gapped, "A")
    for residue, row in zip(built, p):
        if np.isfinite(row).all():
            assert residue["P"][0].pos.dist(gemmi.Position(*row)) < 0.01
    rmsd = _rmsd(built, reference)
    print(f"RNA with 4 of 20 P missing: RMSD {rmsd:.2f} A")
    assert rmsd < 1.5
    assert np.isfinite([a.pos.tolist() for r in built for a in r]).all()


def test_residue_names_and_numbers() -> None:
    _, residues = _nodes("ACGU", False)
    dna = atoms.ChainResidues(residues.p, residues.sugar, residues.base, residues.bases, True, residues.confidence,
                              numbers=np.array([5, 6, 9, 10]))
    assert residues.residue_names == ("A", "C", "G", "U")
    chain = atoms.build_chain(dna, "B")
    assert [r.name for r in chain] == ["DA", "DC", "DG", "DT"]
    assert [r.seqid.num for r in chain] == [5, 6, 9, 10]
    assert "O2'" not in [a.name for a in chain[0]]


def test_invalid_input() -> None:
    _, residues = _nodes("ACGU", False)
    with pytest.raises(ValueError, match="base types"):
        atoms.ChainResidues(residues.p, residues.sugar, residues.base, ("A", "T", "C", "G"), False, np.ones(4))
    with pytest.raises(ValueError, match="shape"):
        atoms.ChainResidues(residues.p[:3], residues.sugar, residues.base, residues.bases, False, np.ones(4))
    with pytest.raises(ValueError, match="increasing"):
        atoms.ChainResidues(residues.p, residues.sugar, residues.base, residues.bases, False, np.ones(4),
                            numbers=np.array([1, 3, 2, 4]))
    single = atoms.ChainResidues(residues.p[:1], residues.sugar[:1], residues.base[:1], ("A",), False, np.ones(1))
    with pytest.raises(ValueError, match="at least 2"):
        atoms.build_chain(single, "A")


@pytest.mark.parametrize("suffix", [".cif", ".pdb"])
def test_model_round_trip(tmp_path, suffix: str) -> None:
    _, rna = _nodes(RNA, False)
    _, dna = _nodes(DNA[:8], True)
    structure = atoms.build_model([rna, dna])
    path = atoms.write_model(structure, tmp_path / f"model{suffix}")
    assert not list(tmp_path.glob("*.part"))
    read = gemmi.read_structure(str(path))
    assert [c.name for c in read[0]] == ["A", "B"]
    for written, original in zip(read[0], structure[0]):
        assert [(r.name, r.seqid.num) for r in written] == [(r.name, r.seqid.num) for r in original]
        for wr, orr in zip(written, original):
            assert [a.name for a in wr] == [a.name for a in orr]
            for wa, oa in zip(wr, orr):
                assert wa.pos.dist(oa.pos) < 2e-3
                assert wa.b_iso == pytest.approx(oa.b_iso, abs=0.01)
                assert wa.occ == 1.0 and wa.element.name == oa.element.name
    if suffix == ".cif":
        read.setup_entities()
        types = sorted(str(e.polymer_type) for e in read.entities if e.entity_type == gemmi.EntityType.Polymer)
        assert types == ["PolymerType.Dna", "PolymerType.Rna"]


def test_many_chains(tmp_path) -> None:
    _, residues = _nodes("GC", False)
    structure = atoms.build_model([residues] * 70)
    names = [chain.name for chain in structure[0]]
    assert len(set(names)) == 70
    assert names[:3] == ["A", "B", "C"] and names[61] == "9" and names[62] == "AA"
    read = gemmi.read_structure(str(atoms.write_model(structure, tmp_path / "many.cif")))
    assert [chain.name for chain in read[0]] == names
    with pytest.raises(ValueError, match="mmCIF"):
        atoms.write_model(structure, tmp_path / "many.pdb")
    assert not list(tmp_path.glob("many.pdb*"))


def test_chain_ids() -> None:
    assert atoms.chain_id(0) == "A" and atoms.chain_id(26) == "a" and atoms.chain_id(61) == "9"
    assert atoms.chain_id(62 + 62 + 1) == "BB"
    with pytest.raises(ValueError):
        atoms.chain_id(62 + 62 * 62)


def test_confidence_table(tmp_path) -> None:
    _, residues = _nodes("ACGU", False)
    structure = atoms.build_model([residues])
    path = atoms.write_confidence_table(structure, tmp_path / "confidence.csv")
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["chain"], int(r["residue_number"]), r["residue_name"]) for r in rows] == \
        [("A", 1, "A"), ("A", 2, "C"), ("A", 3, "G"), ("A", 4, "U")]
    assert [float(r["confidence"]) for r in rows] == pytest.approx(residues.confidence, abs=1e-4)


def test_a_phosphate_node_far_from_the_sugar_does_not_pull_the_residue_off_it() -> None:
    """Residue 7's phosphate node 5 Å off (noise, or the neighbour's P): its own P and residue 6's next P are out of
    bonding reach of the sugar nodes, so both residues are placed on what remains, their C4′ on the sugar node."""
    reference, residues = _nodes(RNA, False)
    p = residues.p.copy()
    p[7] += [0.0, 5.0, 0.0]
    moved = atoms.ChainResidues(p, residues.sugar, residues.base, residues.bases, False, residues.confidence)
    built = atoms.build_chain(moved, "A")
    for i in (6, 7):
        assert built[i]["C4'"][0].pos.dist(reference[i]["C4'"][0].pos) < 1.5
    assert built[7]["P"][0].pos.dist(gemmi.Position(*p[7])) > 2.0  # the stray node is not the residue's P
    trusted = atoms.build_chain(residues, "A")  # at bonding distance the nodes are used exactly
    assert trusted[7]["P"][0].pos.dist(gemmi.Position(*residues.p[7])) < 0.01
