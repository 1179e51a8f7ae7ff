"""ProtHaruspexImportSequences in a real (headless) Scipion project: FASTA records -> SetOfSequences."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pwem.objects import Alphabet
from pyworkflow.tests import BaseTest, setupTestProject

from haruspex_engine.nucleic.building.sequences import SequenceError, read_fasta
from haruspex_plugin.protocols import ProtHaruspexImportSequences
from haruspex_plugin.protocols.protocol_import_sequences import (
    DNA,
    MOLECULE_TYPES,
    PROTEIN,
    RNA,
    molecule_type_of,
    read_sequences,
)

EXAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cryoread-example"

MIXED_FASTA = """\
>6V5B_1|Chain A|RNA (12-MER)|Escherichia coli (562)
GGACUUCGGUCC
>7ABC_2|Chains B, C[auth D]|DNA (5'-D(*CP*GP*AP*TP*CP*G)-3')|synthetic construct (32630)
cgatcg
atc gat
; a comment line
>7ABC_3|Chain E|Ribosomal protein L7|Escherichia coli (562)
MKTAYIAKQRQISFVKSHFSRQX*
>probe_1 an RNA with unknown bases
ACGUNNACGU

>short
ACG
>dna_x sample
ACGTXACGT
"""
# (id, name, description, stored sequence, type, pwem alphabet, comment) of every MIXED_FASTA record, in order.
MIXED_EXPECTED = [
    ("6V5B_1", "Chain A: RNA (12-MER)", "6V5B_1|Chain A|RNA (12-MER)|Escherichia coli (562)",
     "GGACUUCGGUCC", RNA, Alphabet.UNAMBIGOUS_RNA_ALPHABET, ""),
    ("7ABC_2", "Chains B, C[auth D]: DNA (5'-D(*CP*GP*AP*TP*CP*G)-3')",
     "7ABC_2|Chains B, C[auth D]|DNA (5'-D(*CP*GP*AP*TP*CP*G)-3')|synthetic construct (32630)",
     "CGATCGATCGAT", DNA, Alphabet.UNAMBIGOUS_DNA_ALPHABET, ""),
    ("7ABC_3", "Chain E: Ribosomal protein L7", "7ABC_3|Chain E|Ribosomal protein L7|Escherichia coli (562)",
     "MKTAYIAKQRQISFVKSHFSRQX", PROTEIN, Alphabet.EXTENDED_PROTEIN_ALPHABET, ""),
    ("probe_1", "probe_1", "probe_1 an RNA with unknown bases",
     "ACGUNNACGU", RNA, Alphabet.AMBIGOUS_RNA_ALPHABET, ""),
    ("short", "short", "short", "ACG", RNA, Alphabet.UNAMBIGOUS_RNA_ALPHABET, ""),  # A/C/G only; the file has U's
    ("dna_x", "dna_x", "dna_x sample", "ACGTNACGT", DNA, Alphabet.AMBIGOUS_DNA_ALPHABET, "1 X stored as N"),
]


def stored(sequences) -> list[tuple]:
    """MIXED_EXPECTED-shaped tuples of a SetOfSequences (a set reuses one item object while iterating)."""
    return [(s.getId(), s.getSeqName(), s.getDescription(), s.getSequence(), molecule_type_of(s), s.getAlphabet(),
             s.getObjComment()) for s in sequences]


def nucleic_chains(path) -> list[tuple]:
    """(chain id, sequence, kind) of every nucleic chain the engine reads from a FASTA file."""
    return [(s.chain_id, s.sequence, s.kind) for s in read_fasta(path)]


class TestHaruspexImportSequences(BaseTest):
    """One import of a mixed FASTA file (shared by the checks), overrides, validation, the CryoREAD examples."""

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.mixed = cls.writeFasta("mixed.fasta", MIXED_FASTA)
        cls.prot = cls.importFasta(cls.mixed)

    @classmethod
    def writeFasta(cls, name: str, text: str) -> str:
        path = Path(cls.getOutputPath(name)).resolve()
        path.write_text(text)
        return str(path)

    @classmethod
    def importFasta(cls, path: str, moleculeType: str = "auto") -> ProtHaruspexImportSequences:
        prot = cls.newProtocol(ProtHaruspexImportSequences, fastaFile=path,
                               moleculeType=MOLECULE_TYPES.index(moleculeType))
        cls.launchProtocol(prot)
        return prot

    def validationErrors(self, path: str, moleculeType: str = "auto") -> list[str]:
        prot = self.newProtocol(ProtHaruspexImportSequences, fastaFile=path,
                                moleculeType=MOLECULE_TYPES.index(moleculeType))
        return prot.validate()

    # --- the mixed file -----------------------------------------------------------------------------------------
    def test_every_record_registered_with_its_text_type_and_name(self):
        sequences = self.prot.outputSequences
        self.assertEqual(sequences.getSize(), len(MIXED_EXPECTED))
        for got, expected in zip(stored(sequences), MIXED_EXPECTED):
            with self.subTest(record=expected[0]):
                self.assertEqual(got, expected)
        isAminoacids = [bool(s.getIsAminoacids().get()) for s in sequences]
        self.assertEqual(isAminoacids, [kind == PROTEIN for *_, kind, _, _ in MIXED_EXPECTED])

    def test_the_source_file_is_kept_in_the_project(self):
        copy = self.prot._getExtraPath("mixed.fasta")
        self.assertEqual(Path(copy).read_text(), MIXED_FASTA)

    def test_stored_alphabets_keep_every_letter_on_export(self):
        """pwem cleans a sequence with its alphabet when exporting it: nothing may be lost."""
        for sequence in self.prot.outputSequences:
            with self.subTest(record=sequence.getId()):
                path = self.getOutputPath(f"export_{sequence.getId()}.fasta")
                sequence.exportToFile(path)
                lines = Path(path).read_text().splitlines()
                self.assertEqual("".join(lines[1:]), sequence.getSequence())

    def test_exported_set_gives_the_engine_the_same_chains(self):
        """Exported headers keep the PDB chain fields, so the model builder reads the chains of the original."""
        path = self.getOutputPath("exported_set.fasta")
        self.prot.outputSequences.exportToFile(path)
        expected = nucleic_chains(self.mixed)
        self.assertEqual([c for c, _, _ in expected], ["A", "B", "D", "1", "C", "x"])
        self.assertEqual(nucleic_chains(path), expected)
        kinds = {seq_id: kind for seq_id, _, _, _, kind, _, _ in MIXED_EXPECTED}
        self.assertEqual([kind for _, _, kind in expected], [kinds[i] for i in
                                                             ("6V5B_1", "7ABC_2", "7ABC_2", "probe_1", "short",
                                                              "dna_x")])

    def test_summary_counts_types_and_lengths(self):
        summary = self.prot.summary()
        self.assertIn(f"6 sequences from {self.mixed}:", summary)
        self.assertIn("RNA: 3 (12, 10, 3 nt)", summary)
        self.assertIn("DNA: 2 (12, 9 nt)", summary)
        self.assertIn("protein: 1 (23 aa)", summary)
        self.assertIn("dna_x (dna_x): 1 X stored as N.", summary)
        methods = self.prot.methods()
        expected = "6 sequences were imported from the FASTA file mixed.fasta (molecule type: detected per record"
        self.assertTrue(any(expected in line for line in methods), methods)

    # --- the molecule type chosen by the user -------------------------------------------------------------------
    def test_rna_override_stores_t_as_u(self):
        path = self.writeFasta("as_rna.fasta", ">t1 thymine\nACGTT\n>t2\nacg\n")
        prot = self.importFasta(path, RNA)
        self.assertEqual([(s.getSequence(), molecule_type_of(s), s.getObjComment()) for s in prot.outputSequences],
                         [("ACGUU", RNA, "2 T stored as U"), ("ACG", RNA, "")])
        self.assertTrue(any("(molecule type: RNA, as chosen)" in line for line in prot.methods()), prot.methods())

    def test_protein_override_keeps_nucleotide_letters(self):
        path = self.writeFasta("as_protein.fasta", ">peptide\nACGT\n")
        (record,) = read_sequences(path, PROTEIN)
        self.assertEqual((record.sequence, record.molecule_type, record.alphabet),
                         ("ACGT", PROTEIN, Alphabet.PROTEIN_ALPHABET))
        (auto,) = read_sequences(path)
        self.assertEqual(auto.molecule_type, DNA)

    def test_nucleic_override_of_a_protein_is_refused(self):
        errors = self.validationErrors(self.mixed, DNA)
        self.assertEqual(len(errors), 1, errors)
        self.assertIn(self.mixed, errors[0])
        self.assertIn("line 7: record '>7ABC_3|Chain E|", errors[0])
        self.assertIn("cannot be DNA: F, I, Q are not nucleotide codes", errors[0])

    # --- validation ---------------------------------------------------------------------------------------------
    def test_valid_file_validates(self):
        self.assertEqual(self.validationErrors(self.mixed), [])

    def test_missing_file(self):
        path = str(Path(self.getOutputPath("absent.fasta")).resolve())
        self.assertEqual(self.validationErrors(path), [f"{path}: no such file"])

    def test_empty_file(self):
        path = self.writeFasta("empty.fasta", "\n  \n")
        self.assertEqual(self.validationErrors(path), [f"{path}: the file is empty"])

    def test_file_without_records(self):
        path = self.writeFasta("comments.fasta", "; only a comment\n\n")
        self.assertEqual(self.validationErrors(path), [f"{path}: no FASTA records (no line starts with '>')"])
        path = self.writeFasta("bare.fasta", "ACGU\n")
        self.assertEqual(self.validationErrors(path), [f"{path}, line 1: sequence before the first '>' header"])

    def test_record_without_sequence_or_with_bad_characters(self):
        path = self.writeFasta("no_sequence.fasta", ">a\nACGU\n>b\n")
        self.assertEqual(self.validationErrors(path), [f"{path}, line 3: record '>b' has no sequence"])
        path = self.writeFasta("gapped.fasta", ">a\nAC-GU\n")
        self.assertEqual(self.validationErrors(path),
                         [f"{path}, line 2: '-' is neither a nucleotide nor an amino-acid code"])

    def test_no_file_given(self):
        self.assertEqual(self.validationErrors(""), ["Give the FASTA file to import."])

    # --- the published CryoREAD examples ------------------------------------------------------------------------
    def test_cryoread_example_sequences(self):
        fastas = sorted(EXAMPLES.glob("*.fasta"))
        if not fastas:
            self.skipTest(f"{EXAMPLES} has no FASTA files (the CryoREAD example data live in ../shared, outside "
                          "the project)")
        for fasta in fastas:
            with self.subTest(fasta=fasta.name):
                prot = self.importFasta(str(fasta))
                written = [line.strip() for line in fasta.read_text().splitlines()]
                headers = [line[1:] for line in written if line.startswith(">")]
                got = stored(prot.outputSequences)
                self.assertEqual([description for _, _, description, *_ in got], headers)
                self.assertEqual({kind for *_, kind, _, _ in got}, {RNA})
                self.assertEqual([(s, kind) for _, _, _, s, kind, _, _ in got],
                                 [(s, k) for _, s, k in nucleic_chains(fasta)])
                self.assertEqual("".join(s for _, _, _, s, *_ in got),
                                 "".join(line for line in written if line and not line.startswith(">")).upper())


class TestImportSequencesReader(BaseTest):
    """The reader on its own: errors name the file, and the plugin stays free of the engine's heavy imports."""

    def test_reader_raises_naming_the_file(self):
        with self.assertRaisesRegex(SequenceError, "^/nonexistent/x.fasta: no such file$"):
            read_sequences("/nonexistent/x.fasta")

    def test_directory_is_not_a_file(self):
        directory = os.path.dirname(os.path.abspath(__file__))
        with self.assertRaisesRegex(SequenceError, "not a file$"):
            read_sequences(directory)

    def test_plugin_import_pulls_no_tensorflow_or_torch(self):
        code = ("import sys, haruspex_plugin.protocols.protocol_import_sequences; "
                "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'torch', 'gemmi', 'ortools'}))")
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        self.assertEqual(result.stdout.strip().splitlines()[-1], "[]")
