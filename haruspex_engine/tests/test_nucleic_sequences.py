"""FASTA reading for sequence-guided nucleic-acid building: headers, chain ids, kinds, skipped and removed residues."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from haruspex_engine.nucleic.building.sequences import (
    CHAIN_ID_ALPHABET,
    NucleicSequence,
    SequenceError,
    encode_sequence,
    looks_nucleic,
    parse_fasta,
    read_fasta,
)

EXAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cryoread-example"
PROTEIN = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQFEVVHSLAKWKRQTLGQHDFSAGEGLYTHMKALRPDEDRL"


def example(name: str) -> Path:
    path = EXAMPLES / name
    if not path.is_file():
        pytest.skip(f"{path} is absent (the CryoREAD example FASTA files live in ../shared, outside the project)")
    return path


# --- the published example files --------------------------------------------------------------------------------

def test_example_21051_is_one_78_nt_rna_chain_named_by_the_original_rule():
    records = read_fasta(example("21051.fasta"))
    assert [(s.chain_id, s.kind, len(s.sequence)) for s in records] == [("3", "RNA", 78)]
    assert records[0].name == "21051_3"
    assert records[0].sequence.startswith("GACAUACUUG") and records.warnings == []


def test_example_24283_pdb_style_header_gives_chain_a():
    (record,) = read_fasta(example("24283.fasta"))
    assert (record.chain_id, record.kind) == ("A", "RNA")
    assert len(record.sequence) == 393  # what the file holds (the entry calls the molecule a 387-mer)
    assert set(record.sequence) == set("ACGU")


def test_example_20755_is_a_119_mer():
    (record,) = read_fasta(example("20755.fasta"))
    assert (record.chain_id, record.kind, len(record.sequence)) == ("A", "RNA", 119)
    assert record.name.startswith("6UES_1|Chain A|RNA (119-MER)")


# --- sequence text ------------------------------------------------------------------------------------------------

def test_simple_header_lowercase_whitespace_and_several_lines():
    records = parse_fasta(">A\r\nacg u\r\n\r\nGG\tcU\r\n")
    assert list(records) == [NucleicSequence("A", "A", "ACGUGGCU", "RNA")]
    assert records.warnings == []


def test_comment_lines_are_ignored_and_a_final_terminator_is_allowed():
    (record,) = parse_fasta("; a comment\n>B\nACGU\nACG*\n")
    assert record.sequence == "ACGUACG"


def test_n_and_x_keep_their_place_and_are_counted():
    """Unknown residues stay in the sequence as N, so every later residue keeps its FASTA number."""
    records = parse_fasta(">A\nACNGUXNN\n", "s.fasta")
    assert records[0].sequence == "ACNGUNNN"
    np.testing.assert_array_equal(encode_sequence(records[0].sequence), [0, 2, 4, 3, 1, 4, 4, 4])
    (message,) = records.warnings
    assert "s.fasta, line 1" in message and "4 unknown or ambiguous residues (N x3, X x1) kept as N" in message


def test_other_ambiguity_letters_in_a_nucleic_record_are_kept_as_n():
    records = parse_fasta(">A\n" + "ACGU" * 10 + "R\n")
    assert records[0].sequence == "ACGU" * 10 + "N"
    assert "R x1" in records.warnings[0]


# --- protein records ------------------------------------------------------------------------------------------------

def test_protein_records_are_skipped_with_a_message():
    records = parse_fasta(f">prot\n{PROTEIN}\n>rna\nACGUACGU\n", "mixed.fasta")
    assert [s.name for s in records] == ["rna"]
    (message,) = records.warnings
    assert "mixed.fasta, line 1" in message and "'>prot' skipped: a protein sequence" in message


def test_the_protein_threshold_is_above_90_percent_nucleotides():
    nine_in_ten = "ACGUACGUA" + "L"  # 90 % A/C/G/U: protein
    assert len(parse_fasta(f">p\n{nine_in_ten}\n>r\nACGU\n")) == 1
    many = "ACGU" * 5 + "L"  # 95 %: nucleic, the L kept as N
    assert parse_fasta(f">r\n{many}\n")[0].sequence == "ACGU" * 5 + "N"


def test_protein_only_file_is_an_error():
    with pytest.raises(SequenceError, match=r"prot\.fasta: only protein sequences \(records at lines 1, 3\)"):
        parse_fasta(f">a\n{PROTEIN}\n>b\n{PROTEIN}\n", "prot.fasta")


# --- DNA or RNA ---------------------------------------------------------------------------------------------------

def test_kind_is_decided_per_record():
    dna, rna = parse_fasta(">D\nACGTTG\n>R\nACGUUG\n")
    assert (dna.kind, dna.sequence) == ("DNA", "ACGTTG")
    assert (rna.kind, rna.sequence) == ("RNA", "ACGUUG")


def test_t_in_an_rna_record_is_read_as_u():
    records = parse_fasta(">A\nACGUT\n", "t.fasta")
    assert (records[0].kind, records[0].sequence) == ("RNA", "ACGUU")
    assert "t.fasta, line 1" in records.warnings[0] and "1 T read as U" in records.warnings[0]


def test_records_without_u_or_t_follow_their_header_then_the_file():
    records = parse_fasta(">1ABC_2|Chain B|DNA (5'-D(*GP*CP)-3')|x\nGGCC\n>1ABC_3|Chain C|tRNA|x\nGGCC\n")
    assert [s.kind for s in records] == ["DNA", "RNA"]
    assert [s.kind for s in parse_fasta(">A\nGGCC\n>B\nACGU\n")] == ["RNA", "RNA"]  # the file has U
    assert [s.kind for s in parse_fasta(">A\nGGCC\n>B\nACGT\n")] == ["DNA", "DNA"]  # the original's rule: no U


# --- chain ids ----------------------------------------------------------------------------------------------------

def test_pdb_style_chain_field_gives_the_chain_id():
    (record,) = parse_fasta(">1ABC_1|Chain Q|RNA (4-MER)|Homo sapiens (9606)\nACGU\n")
    assert record.chain_id == "Q" and record.name == "1ABC_1|Chain Q|RNA (4-MER)|Homo sapiens (9606)"


def test_pdb_style_chains_field_expands_into_one_sequence_per_chain():
    records = parse_fasta(">7R6N_1|Chains A, B|RNA (387-MER)|x\nACGU\n"
                          ">7R6N_2|Chains C[auth X], D[auth Y]|DNA|x\nACGT\n")
    assert [(s.chain_id, s.sequence, s.kind) for s in records] == [
        ("A", "ACGU", "RNA"), ("B", "ACGU", "RNA"), ("X", "ACGT", "DNA"), ("Y", "ACGT", "DNA")]
    assert records.warnings == []


def test_other_headers_follow_the_original_rule():
    records = parse_fasta(">chain_B some text\nACGU\n>21051_3\nACGU\n>my_rna\nACGU\n>long name\nACGU\n")
    assert [s.chain_id for s in records] == ["B", "3", "A", "C"]  # "rna" and "long" are not single characters


def test_named_ids_are_reserved_before_free_ids_are_given():
    records = parse_fasta(">first\nACGU\n>A\nACGU\n")
    assert [s.chain_id for s in records] == ["B", "A"]


def test_repeated_ids_are_replaced_with_a_message():
    records = parse_fasta(">A\nACGU\n>A\nGGCC\n", "dup.fasta")
    assert [s.chain_id for s in records] == ["A", "B"]
    assert any("dup.fasta, line 3: chain id 'A' is used by an earlier record" in w for w in records.warnings)


def test_unusable_chain_field_ids_are_replaced_with_a_message():
    records = parse_fasta(">1ABC_1|Chains A, TOOLONG|RNA|x\nACGU\n")
    assert [s.chain_id for s in records] == ["A", "B"]
    assert "'TOOLONG' is not 1-4 letters or digits" in records.warnings[0]


def test_more_than_62_chains_get_unique_multi_character_ids():
    records = parse_fasta("".join(f">rna{i}\nACGU\n" for i in range(70)))
    ids = [s.chain_id for s in records]
    assert len(set(ids)) == 70
    assert ids[:62] == list(CHAIN_ID_ALPHABET)
    assert ids[62:65] == ["AA", "AB", "AC"]


# --- errors -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"x\.fasta: the file is empty"),
        ("  \n\n", r"x\.fasta: the file is empty"),
        ("; only a comment\n", r"x\.fasta: no FASTA records"),
        ("ACGU\n>A\nACGU\n", r"x\.fasta, line 1: sequence before the first '>' header"),
        (">A\nACGU\n>B\n\n>C\nACGU\n", r"x\.fasta, line 3: record '>B' has no sequence"),
        (">A\nNNXN\n", r"x\.fasta, line 1: record '>A' has only unknown residues"),
        (">A\nACGU\nAC-GU\n", r"x\.fasta, line 3: '-' is neither a nucleotide nor an amino-acid code"),
        (">A\n1 acgu 60\n", r"x\.fasta, line 2: '1' is neither"),
        (">A\nAC*\nGU\n", r"x\.fasta, line 2: '\*' is neither"),
    ],
)
def test_bad_input_raises_one_clear_error(text, message):
    with pytest.raises(SequenceError, match=message):
        parse_fasta(text, "x.fasta")


def test_sequence_error_is_a_value_error():
    assert issubclass(SequenceError, ValueError)


def test_read_fasta_names_the_file(tmp_path):
    path = tmp_path / "chains.fa"
    path.write_text(">A\nACGU\n>B\nNACGT\n")
    records = read_fasta(path)
    assert [s.chain_id for s in records] == ["A", "B"]
    assert records.warnings[0].startswith(f"{path}, line 3")
    empty = tmp_path / "empty.fasta"
    empty.write_text("")
    with pytest.raises(SequenceError, match="empty.fasta: the file is empty"):
        read_fasta(empty)


def test_binary_file_is_refused(tmp_path):
    path = tmp_path / "map.fasta"
    path.write_bytes(b">A\n\xff\xfe\x00ACGU")
    with pytest.raises(SequenceError, match="map.fasta: not a text FASTA file"):
        read_fasta(path)


# --- encoding -----------------------------------------------------------------------------------------------------

def test_encoding_a0_ut1_c2_g3_n4():
    codes = encode_sequence("AUCGTN")
    assert codes.dtype == np.int8 and codes.tolist() == [0, 1, 2, 3, 1, 4]
    assert encode_sequence("").tolist() == []
    with pytest.raises(ValueError, match="position 3: 'R'"):
        encode_sequence("ACRG")


@pytest.mark.parametrize(("residues", "nucleic"), [
    ("ACGUACGUAC", True),
    ("ACGTACGTACNNNRACGTACGT", True),  # 19 of 20 letters other than N are A/C/G/T
    ("NNNN", True),
    ("XXXX", False),  # X alone is the protein convention
    ("ACGUACGUAL", False),  # 90 %: not more than 90 %
    ("MKVLAAGIVG", False),
])
def test_looks_nucleic(residues: str, nucleic: bool) -> None:
    assert looks_nucleic(residues) is nucleic


def test_a_record_without_u_or_t_says_how_it_is_built_and_why():
    """A/C/G only and a header naming neither RNA nor DNA: the kind comes from the other records (a U anywhere: RNA,
    else DNA), and a warning says so; a header that names the kind needs none."""
    assert not parse_fasta(">A mRNA fragment\nGGCCA\n").warnings
    (warning,) = parse_fasta(">A\nGGCCA\n", "k.fasta").warnings
    assert "k.fasta, line 1" in warning and "no U or T: built as DNA because no record of the file has a U" in warning
    assert "write RNA in its header" in warning
    records = parse_fasta(">A\nGGCCA\n>B\nACGU\n")
    assert [s.kind for s in records] == ["RNA", "RNA"]
    assert "built as RNA because another record of the file has a U" in records.warnings[0]
    assert not parse_fasta(">A\nGGCCU\n").warnings


def test_a_single_residue_record_is_used_with_a_warning():
    records = parse_fasta(">A\nU\n", "one.fasta")
    assert [s.sequence for s in records] == ["U"]
    (warning,) = records.warnings
    assert "one.fasta, line 1" in warning and "has a single residue" in warning
