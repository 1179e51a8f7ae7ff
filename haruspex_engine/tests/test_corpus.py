"""The nucleic-acid benchmark corpus: reference loading, parent bases and the FASTA written from a model."""
from __future__ import annotations

import gemmi
import pytest

from haruspex_engine.nucleic.building.parent_bases import parent_base
from haruspex_engine.nucleic.building.sequences import parse_fasta
from haruspex_engine.testing.corpus import (
    CORPUS_ENTRIES,
    DEFAULT_DATA_ROOT,
    CorpusMissingError,
    corpus_entries,
    fasta_from_structure,
    load_reference,
    nucleic_chains,
)

#: Nucleotides per entry, as the corpus README (and 6v5b's 78-mer) states them.
README_NUCLEOTIDES = {"1EHZ": 76, "1GID": 316, "4P5J": 84, "1BNA": 24, "1D66": 38, "1KF1": 22, "3SIU": 56,
                      "1ASY": 150, "6POM": 230, "3JBV_A": 1530, "6v5b": 78}


def _residue(name: str, number: int, atoms: tuple[str, ...] = ("P",)) -> gemmi.Residue:
    residue = gemmi.Residue()
    residue.name = name
    residue.seqid = gemmi.SeqId(number, " ")
    for k, atom_name in enumerate(atoms):
        atom = gemmi.Atom()
        atom.name = atom_name
        atom.element = gemmi.Element(atom_name[0])
        atom.pos = gemmi.Position(float(number), float(k), 0.0)
        residue.add_atom(atom)
    return residue


def _chain(name: str, residue_names: list[str]) -> gemmi.Chain:
    chain = gemmi.Chain(name)
    for number, residue_name in enumerate(residue_names, start=1):
        chain.add_residue(_residue(residue_name, number))
    return chain


def _modres(chain: str, number: int, name: str, parent: str) -> gemmi.ModRes:
    record = gemmi.ModRes()
    record.chain_name, record.parent_comp_id, record.mod_id = chain, parent, name
    residue_id = gemmi.ResidueId()
    residue_id.name, residue_id.seqid = name, gemmi.SeqId(number, " ")
    record.res_id = residue_id
    return record


def _complex() -> gemmi.Structure:
    """Two identical RNA chains with a PSU (gemmi knows it) and a 5MC (only the file's MODRES names its parent),
    a DNA chain of A/C/G only, and a protein chain."""
    structure = gemmi.Structure()
    model = gemmi.Model("1")
    rna = ["G", "C", "PSU", "5MC", "A"]
    for chain in (_chain("A", rna), _chain("B", rna), _chain("C", ["DG", "DC", "DA", "DG"]),
                  _chain("D", ["ALA", "GLY", "SER"])):
        model.add_chain(chain)
    structure.add_model(model)
    structure.mod_residues = [_modres(chain, 4, "5MC", "C") for chain in "AB"]  # the property returns a copy
    return structure


def test_fasta_has_one_record_per_distinct_nucleic_chain_with_parent_bases():
    fasta = fasta_from_structure(_complex(), "TEST")
    assert fasta == ">TEST_1|Chains A, B|RNA|TEST\nGCUCA\n>TEST_2|Chain C|DNA|TEST\nGCAG\n"


def test_parse_fasta_gives_back_chain_ids_sequences_and_kinds():
    records = parse_fasta(fasta_from_structure(_complex(), "TEST"))
    assert [(r.chain_id, r.sequence, r.kind) for r in records] == [
        ("A", "GCUCA", "RNA"), ("B", "GCUCA", "RNA"), ("C", "GCAG", "DNA")]
    assert records.warnings == []


def test_parent_base_of_unknown_nucleotide_is_n_and_ligands_are_not_nucleotides():
    assert parent_base(_residue("XYZ", 1, ("P", "C1'", "C4'"))) == ("N", gemmi.ResidueKind.UNKNOWN)
    assert parent_base(_residue("XYZ", 1, ("C1'", "C4'"))) is None
    assert parent_base(_residue("ATP", 1, ("PA", "C1'", "C4'"))) is None
    assert parent_base(_residue("DT", 1)) == ("T", gemmi.ResidueKind.DNA)
    assert parent_base(_residue("5MC", 1), "C") == ("C", gemmi.ResidueKind.RNA)


def test_chain_mixing_dna_and_rna_is_rna():
    structure = gemmi.Structure()
    model = gemmi.Model("1")
    model.add_chain(_chain("A", ["DG", "DT", "U", "A"]))
    structure.add_model(model)
    assert {name: (c.sequence, c.kind) for name, c in nucleic_chains(structure).items()} == {"A": ("GTUA", "RNA")}


def test_a_structure_without_nucleic_acid_has_no_fasta():
    structure = gemmi.Structure()
    model = gemmi.Model("1")
    model.add_chain(_chain("A", ["ALA", "GLY"]))
    structure.add_model(model)
    with pytest.raises(ValueError, match="no nucleic-acid chain"):
        fasta_from_structure(structure, "P")


def test_load_reference_keeps_first_model_without_waters_hydrogens_or_alternates(tmp_path):
    structure = _complex()
    residue = structure[0]["A"][0]
    hydrogen = gemmi.Atom()
    hydrogen.name, hydrogen.element = "H1'", gemmi.Element("H")
    residue.add_atom(hydrogen)
    for altloc in "AB":
        atom = gemmi.Atom()
        atom.name, atom.element, atom.altloc, atom.occ = "C4'", gemmi.Element("C"), altloc, 0.5
        residue.add_atom(atom)
    structure[0]["A"].add_residue(_residue("HOH", 90, ("O",)))
    second = gemmi.Model("2")
    second.add_chain(_chain("Z", ["G"]))
    structure.add_model(second)
    path = tmp_path / "ref.pdb"
    structure.write_pdb(str(path))

    loaded = load_reference(path)
    assert len(loaded) == 1
    first = loaded[0]["A"][0]
    assert [atom.name for atom in first] == ["P", "C4'"] and first[1].altloc in ("\0", "A")
    assert [r.name for r in loaded[0]["A"]] == ["G", "C", "PSU", "5MC", "A"]
    assert fasta_from_structure(loaded, "REF") == fasta_from_structure(_complex(), "REF")


def test_missing_corpus_is_a_clear_error(tmp_path):
    with pytest.raises(CorpusMissingError, match="shared/data"):
        corpus_entries(tmp_path)


@pytest.mark.parametrize("entry", [entry for entry, _ in CORPUS_ENTRIES])
def test_corpus_entry_fasta_parses_to_its_chains_and_readme_count(entry):
    path = DEFAULT_DATA_ROOT / dict(CORPUS_ENTRIES)[entry]
    if not path.is_file():
        pytest.skip(f"{path} is absent (the nucleic-acid corpus lives in ../shared/data, outside the project)")
    structure = load_reference(path)
    records = parse_fasta(fasta_from_structure(structure, entry), entry)
    chains = nucleic_chains(structure)
    assert [(r.chain_id, r.sequence, r.kind) for r in records] == [
        (name, chain.sequence, chain.kind) for name, chain in chains.items()]
    assert records.warnings == []
    assert sum(len(r.sequence) for r in records) == README_NUCLEOTIDES[entry]
