"""ProtHaruspexImportSequences: every record of a FASTA file as a SetOfSequences, typed RNA, DNA or protein.

pwem's own "import sequence" keeps only the first record of a file and its plain-text nucleotide import drops U's;
nothing in pwem outputs a SetOfSequences. The records are read with the engine's FASTA reader
(``haruspex_engine.nucleic.building.sequences``, standard library and numpy only, no TensorFlow or PyTorch), so
the plugin and the model builder agree on records, errors and RNA/DNA kinds.

Rules:
- Sequences are stored upper-cased, as written (U kept). Whitespace inside sequence lines, blank lines, ``;``
  comments and a final ``*`` are dropped; any other character that is not a letter is an error naming the line.
- Type (automatic, the engine's ``looks_nucleic``): a record with more than 90 % A/C/G/T/U among its letters (N and
  X not counted) is a nucleic acid; any other record is a protein. A nucleic record may hold only IUPAC nucleotide
  codes (A C G T U R Y S W K M B D H V N) and X; any other letter is an error naming the line (the model builder
  would drop it silently).
  A nucleic record with a U is RNA, with a T (and no U) DNA; one of A/C/G only (a short "ACG" too, though it is also
  a valid tripeptide) is RNA or DNA as its header says ("RNA"/"DNA" in upper case), else RNA when another nucleic
  record of the file has a U, else DNA: the engine's rules. The "molecule type" parameter overrides all of this.
- Letters are fitted to the type so that the stored pwem alphabet holds every letter (pwem cleans a sequence with
  its alphabet when exporting it): in RNA T is stored as U, in DNA U as T, and in nucleic acids X (unknown residue)
  as N (unknown nucleotide); each change is noted in the sequence's comment. The alphabet is the unambiguous one of
  the type when it suffices, else the ambiguous (nucleic) or extended (protein) one.
- Names: a PDB-style header (``>6V5B_1|Chain A|RNA (78-MER)|Escherichia coli``, as the RCSB serves them) gives id
  "6V5B_1" and name "Chain A: RNA (78-MER)"; any other header gives its first word as id and name. The description
  is the whole header, so exporting the set writes headers from which the engine reads the same chain ids.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pyworkflow.protocol.params as params
import pyworkflow.utils as pwutils
from pwem.objects import Alphabet, Sequence, SetOfSequences
from pwem.protocols import ProtImport
from pyworkflow.constants import BETA

from haruspex_engine.nucleic.building.sequences import (
    CHAINS_FIELD,
    NUCLEIC_CODES,
    FastaRecord,
    SequenceError,
    looks_nucleic,
    nucleic_kind,
    split_records,
)

AUTO, RNA, DNA, PROTEIN = "auto", "RNA", "DNA", "protein"
MOLECULE_TYPES = (AUTO, RNA, DNA, PROTEIN)  # choices of the "molecule type" parameter, in order
OUTPUT_NAME = "outputSequences"

# pwem alphabets of each type, smallest first: a sequence gets the first that holds all its letters.
ALPHABETS = {
    RNA: (Alphabet.UNAMBIGOUS_RNA_ALPHABET, Alphabet.AMBIGOUS_RNA_ALPHABET),
    DNA: (Alphabet.UNAMBIGOUS_DNA_ALPHABET, Alphabet.AMBIGOUS_DNA_ALPHABET),
    PROTEIN: (Alphabet.PROTEIN_ALPHABET, Alphabet.EXTENDED_PROTEIN_ALPHABET),
}
# Type of a stored sequence, from its pwem alphabet (also those pwem's own import gives).
ALPHABET_TYPES = {
    **{alphabet: kind for kind, alphabets in ALPHABETS.items() for alphabet in alphabets},
    Alphabet.EXTENDED_DNA_ALPHABET: DNA,
    Alphabet.NUCLEOTIDES_ALPHABET: "nucleic acid",
}
# Letters replaced so a sequence of the type fits its alphabet: (letter, stored as).
REPLACEMENTS = {RNA: (("T", "U"), ("X", "N")), DNA: (("U", "T"), ("X", "N")), PROTEIN: ()}
LENGTH_UNITS = {RNA: "nt", DNA: "nt", PROTEIN: "aa"}
SUMMARY_MAX_LENGTHS = 10  # a type with more sequences shows its length range


@dataclass(frozen=True)
class ImportedSequence:
    """One FASTA record ready to register: ids, stored letters, type, pwem alphabet and what was changed."""

    seq_id: str
    name: str
    description: str  # the whole header, without ">"
    sequence: str
    molecule_type: str  # RNA, DNA or protein
    alphabet: int  # a pwem Alphabet constant
    changes: str  # e.g. "2 X stored as N"; "" when stored as written


def read_sequences(path: str, molecule_type: str = AUTO) -> list[ImportedSequence]:
    """Every record of the FASTA file *path*, typed automatically or as *molecule_type* (rules in the module
    docstring). Raises ``SequenceError`` naming the file (and line) for a missing, empty or unreadable file, a file
    without records and a record that cannot be of the type asked for."""
    records = split_records(_read_text(path), path)
    if not records:
        raise SequenceError(f"{path}: no FASTA records (no line starts with '>')")
    nucleic = [looks_nucleic(record.residues) for record in records]
    file_has_u = any("U" in record.residues for record, is_nucleic in zip(records, nucleic) if is_nucleic)
    sequences = []
    for number, (record, is_nucleic) in enumerate(zip(records, nucleic), start=1):
        if molecule_type == AUTO:
            kind = nucleic_kind(record, file_has_u) if is_nucleic else PROTEIN
        else:
            kind = molecule_type
        sequences.append(_imported(record, number, kind, path))
    return sequences


def molecule_type_of(sequence: Sequence) -> str:
    """RNA, DNA, protein, "nucleic acid" (pwem's A/C/G-only alphabet) or "unknown", from a Sequence's alphabet."""
    return ALPHABET_TYPES.get(sequence.getAlphabet(), "unknown")


def _read_text(path: str) -> str:
    if not os.path.isfile(path):
        raise SequenceError(f"{path}: no such file" if not os.path.exists(path) else f"{path}: not a file")
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SequenceError(f"{path}: not a text FASTA file (byte {exc.start} is not UTF-8)") from None
    if not text.strip():
        raise SequenceError(f"{path}: the file is empty")
    return text


def _imported(record: FastaRecord, number: int, kind: str, path: str) -> ImportedSequence:
    residues, changes = record.residues, []
    for letter, stored in REPLACEMENTS[kind]:
        if letter in residues:
            changes.append(f"{residues.count(letter)} {letter} stored as {stored}")
            residues = residues.replace(letter, stored)
    if kind != PROTEIN and not set(residues) <= NUCLEIC_CODES:
        letters = ", ".join(sorted(set(residues) - NUCLEIC_CODES))
        raise SequenceError(f"{path}, line {record.line}: record '>{record.header}' cannot be {kind}: "
                            f"{letters} are not nucleotide codes")
    alphabet = next(a for a in ALPHABETS[kind] if set(residues) <= set(Alphabet.alphabets[a]))
    seq_id, name = _id_and_name(record.header, number)
    return ImportedSequence(seq_id, name, record.header, residues, kind, alphabet, "; ".join(changes))


def _id_and_name(header: str, number: int) -> tuple[str, str]:
    """(id, name) from a header: PDB-style "ENTITY|Chain(s) ...|MOLECULE|..." or the first word."""
    fields = [field.strip() for field in header.split("|")]
    if len(fields) > 1 and CHAINS_FIELD.fullmatch(fields[1]):
        molecule = fields[2] if len(fields) > 2 else ""
        return fields[0] or f"record_{number}", f"{fields[1]}: {molecule}" if molecule else fields[1]
    words = header.split()
    seq_id = words[0] if words else f"record_{number}"
    return seq_id, seq_id


class ProtHaruspexImportSequences(ProtImport):
    """Imports every record of a FASTA file as a set of sequences, each typed RNA, DNA or protein from its letters
    (or as chosen), with U's kept. PDB-style headers (as the RCSB serves them) name each sequence by its chains
    and molecule. Use the set as the sequence input of nucleic-acid model building.
    """
    _label = "import sequences"
    _devStatus = BETA
    _possibleOutputs = {OUTPUT_NAME: SetOfSequences}

    # --------------------------- DEFINE param functions ---------------------------------------------------------
    def _defineParams(self, form):
        form.addSection(label=pwutils.Message.LABEL_INPUT)
        form.addParam("fastaFile", params.PathParam, important=True,
                      label="FASTA file",
                      help="A FASTA file with one or more records (e.g. the sequence file of a PDB entry). Every "
                           "record becomes one sequence; sequences are stored upper-cased, as written.")
        form.addParam("moleculeType", params.EnumParam, choices=list(MOLECULE_TYPES), default=0,
                      display=params.EnumParam.DISPLAY_HLIST,
                      label="Molecule type",
                      help="auto: each record on its own: a nucleic acid when its letters are nucleotide codes, "
                           "mostly A/C/G/T/U; then RNA if it has a U, DNA if it has a T; a record of A/C/G only "
                           "is RNA or DNA as its header says, else RNA when another record has a U, else DNA. "
                           "Any other record is a protein.\n"
                           "RNA / DNA / protein: every record is of that type (in RNA, T is stored as U; in DNA, "
                           "U as T).")

    # --------------------------- INSERT steps functions ---------------------------------------------------------
    def _insertAllSteps(self):
        self._insertFunctionStep(self.importStep, self.fastaFile.get(), self.moleculeType.get(), needsGPU=False)

    # --------------------------- STEPS functions ----------------------------------------------------------------
    def importStep(self, path: str, moleculeType: int):
        """Copy the FASTA file into the project and register its records as ``outputSequences``."""
        copy = self._getExtraPath(os.path.basename(path))
        pwutils.copyFile(path, copy)
        sequences = SetOfSequences.create(outputPath=self._getPath())
        for record in read_sequences(copy, MOLECULE_TYPES[moleculeType]):
            sequence = Sequence(id=record.seq_id, name=record.name, description=record.description,
                                sequence=record.sequence, alphabet=record.alphabet,
                                isAminoacids=record.molecule_type == PROTEIN)
            sequence.setObjComment(record.changes)
            sequences.append(sequence)
        self._defineOutputs(**{OUTPUT_NAME: sequences})

    # --------------------------- INFO functions -----------------------------------------------------------------
    def _validate(self):
        path = self.fastaFile.get()
        if not path:
            return ["Give the FASTA file to import."]
        try:
            read_sequences(path, MOLECULE_TYPES[self.moleculeType.get()])
        except (SequenceError, OSError) as exc:
            return [str(exc)]
        return []

    def _summary(self):
        if not self.hasAttribute(OUTPUT_NAME):
            return ["Output not ready yet."]
        lengths: dict[str, list[int]] = {}
        notes = []
        for sequence in getattr(self, OUTPUT_NAME):
            kind = molecule_type_of(sequence)
            lengths.setdefault(kind, []).append(len(sequence.getSequence()))
            if sequence.getObjComment():
                notes.append(f"{sequence.getId()} ({sequence.getSeqName()}): {sequence.getObjComment()}.")
        total = sum(len(values) for values in lengths.values())
        lines = [f"{_count(total, 'sequence')} from {self.fastaFile.get()}:"]
        for kind, values in lengths.items():
            unit = LENGTH_UNITS.get(kind, "residues")
            shown = (", ".join(map(str, values)) if len(values) <= SUMMARY_MAX_LENGTHS
                     else f"{min(values)} to {max(values)}")
            lines.append(f"{kind}: {len(values)} ({shown} {unit})")
        return lines + notes

    def _methods(self):
        if not self.hasAttribute(OUTPUT_NAME):
            return []
        chosen = MOLECULE_TYPES[self.moleculeType.get()]
        how = "detected per record from its letters" if chosen == AUTO else f"{chosen}, as chosen"
        size = getattr(self, OUTPUT_NAME).getSize()
        return [f"{_count(size, 'sequence')} {'was' if size == 1 else 'were'} imported from the FASTA file "
                f"{os.path.basename(self.fastaFile.get())} (molecule type: {how})."]

def _count(number: int, noun: str) -> str:
    """"1 sequence", "2 sequences"."""
    return f"{number} {noun}" + ("" if number == 1 else "s")
