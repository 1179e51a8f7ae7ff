"""Nucleic-acid chain sequences from FASTA files, for sequence-guided model building.

Rules (CryoREAD's, with the differences marked *):
- Records start with ``>``. Blank lines and ``;`` comment lines are ignored; sequence text before the first header
  is an error. Sequence lines are upper-cased and whitespace inside them removed; a single ``*`` terminator at the
  end of a record is allowed. Any other character that is not a letter (digit, ``-``, ``.``, ...) is an error: it
  is neither a nucleotide nor an amino-acid code.
- *N and X (unknown residues), and the other IUPAC ambiguity letters (R, Y, ...) of a nucleic record, are kept as N:
  the residues after them keep their FASTA numbers (the original removes them, renumbering every later residue), and
  nothing is built there from the sequence (an N is a gap in the register). How many there were is reported.
- A record whose residues (N and X not counted) are at most 90 % A/C/G/U/T is a protein (``looks_nucleic``): it is
  skipped, with a message in ``warnings``. Only protein records, an empty record or a record of N/X only are errors.
- Kind, *per record (the original decides per file: DNA if no U anywhere in the file). A complex holding a DNA
  chain and an RNA chain gets both right: a record with a U is RNA (any T in it is read as U, with a message); a
  record with a T and no U is DNA; a record of A/C/G only is RNA or DNA as its header says ("RNA" or "DNA" in upper
  case, e.g. "RNA (5'-R(*GP*CP)-3')" or "tRNA"), else by the original's file rule: RNA when another record of the
  file has a U, else DNA. Sequences use U in RNA records and T in DNA records.
- Chain ids. *PDB-style headers (``>7R6N_1|Chains A, B|RNA (387-MER)|...``, as the RCSB serves them) give their
  chain ids in the "Chain(s)" field; "Chains A, B" yields one sequence per chain and "A[auth C]" means chain C (the
  author id, the one PDB/mmCIF model files show). Ids of 1 to 4 letters or digits are accepted. Any other header
  follows the original: its first word, before any "|", after its last "_" (``>A``, ``>chain_B``, ``>21051_3``
  gives "3"), used when it is one letter or digit. Ids a header asks for are *reserved first, so a record without
  one cannot take an id a later record names; a repeated id is replaced (with a message). Records without a usable
  id get the first free id of A-Z, a-z, 0-9, then of two-character ids "AA", "AB", ... (more than 62 chains are
  allowed; multi-character ids fit mmCIF, not the PDB format).
- Bases are encoded A=0, U/T=1, C=2, G=3, N=4 (``encode_sequence``).

API: ``read_fasta(path)`` and ``parse_fasta(text, source)`` return a ``FastaRecords``: a list of
``NucleicSequence`` (file order, one per chain) with a ``warnings`` attribute listing what was skipped or changed,
one message per line naming the file and line. Errors raise ``SequenceError`` naming the file and line.
"""
from __future__ import annotations

import itertools
import os
import re
import string
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

NUCLEOTIDES = frozenset("ACGTU")
UNKNOWN_RESIDUES = frozenset("NX")
#: IUPAC nucleotide codes (bases and ambiguity letters).
NUCLEIC_CODES = frozenset("ACGTURYSWKMBDHVN")
NUCLEIC_MIN_FRACTION = 0.9  # a record is nucleic when more than this fraction of its residues are A/C/G/U/T
BASE_CODES = {"A": 0, "U": 1, "T": 1, "C": 2, "G": 3}
#: The letter and code of a residue the sequence does not know (N, X and the ambiguity letters).
UNKNOWN_LETTER = "N"
UNKNOWN_CODE = 4
CHAIN_ID_ALPHABET = string.ascii_uppercase + string.ascii_lowercase + string.digits

#: The header field naming the chains of a PDB-style record, e.g. 'Chains A, B[auth C]'.
CHAINS_FIELD = re.compile(r"\s*chains?\s+(.+)", re.IGNORECASE)
_AUTH_ID = re.compile(r"(\S+?)\s*\[\s*auth\s+(\S+?)\s*\]", re.IGNORECASE)
_VALID_CHAIN_ID = re.compile(r"[A-Za-z0-9]{1,4}")


class SequenceError(ValueError):
    """A FASTA file that cannot be used; the message names the file (and line) and the problem."""


@dataclass(frozen=True)
class NucleicSequence:
    """One nucleic-acid chain: its id, the FASTA header it came from (without ">"), its sequence (upper case;
    A/C/G/U for RNA, A/C/G/T for DNA) and its kind."""

    chain_id: str
    name: str
    sequence: str
    kind: Literal["RNA", "DNA"]


class FastaRecords(list[NucleicSequence]):
    """The chains of a FASTA file (a list of ``NucleicSequence``) and the messages of reading it (``warnings``)."""

    def __init__(self, sequences: list[NucleicSequence], warnings: list[str]):
        super().__init__(sequences)
        self.warnings = warnings


@dataclass
class FastaRecord:
    """One FASTA record as written: header (without '>'), its 1-based line number, residues (upper case)."""

    header: str
    line: int  # 1-based line number of the header
    residues: str = ""


def read_fasta(path: str | os.PathLike) -> FastaRecords:
    """The nucleic-acid chains of a FASTA file (rules in the module docstring); raises ``SequenceError``."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SequenceError(f"{path}: not a text FASTA file (byte {exc.start} is not UTF-8)") from None
    return parse_fasta(text, str(path))


def parse_fasta(text: str, source: str = "<string>") -> FastaRecords:
    """The nucleic-acid chains of FASTA ``text``; ``source`` names it in messages. Raises ``SequenceError``."""
    if not text.strip():
        raise SequenceError(f"{source}: the file is empty")
    records = split_records(text, source)
    if not records:
        raise SequenceError(f"{source}: no FASTA records (no line starts with '>')")
    warnings: list[str] = []
    nucleic: list[FastaRecord] = []
    proteins: list[FastaRecord] = []
    for record in records:
        where = _record_place(source, record)
        if _is_protein(record, where, warnings):
            proteins.append(record)
        else:
            record.residues = _mark_unknown(record.residues, where, warnings)
            nucleic.append(record)
    if not nucleic:
        lines = ", ".join(str(r.line) for r in proteins)
        raise SequenceError(f"{source}: only protein sequences (records at lines {lines}); give the DNA/RNA chains")
    file_has_u = any("U" in r.residues for r in nucleic)
    kinds = [nucleic_kind(r, file_has_u) for r in nucleic]
    for record, kind in zip(nucleic, kinds):
        _note_oddities(record, kind, file_has_u, _record_place(source, record), warnings)
    requested = [_requested_chain_ids(r, f"{source}, line {r.line}", warnings) for r in nucleic]
    assigned = _assign_chain_ids(nucleic, requested, source, warnings)
    sequences = []
    for record, kind, ids in zip(nucleic, kinds, assigned):
        residues = record.residues
        if kind == "RNA" and "T" in residues:
            warnings.append(f"{source}, line {record.line}: record '>{record.header}' is RNA (it has U): "
                            f"{residues.count('T')} T read as U")
            residues = residues.replace("T", "U")
        sequences.extend(NucleicSequence(chain_id, record.header, residues, kind) for chain_id in ids)
    return FastaRecords(sequences, warnings)


def encode_sequence(sequence: str) -> np.ndarray:
    """Base codes (int8, one per residue): A=0, U/T=1, C=2, G=3, N (unknown) = UNKNOWN_CODE. Raises ValueError for any
    other letter."""
    table = np.full(128, -1, np.int8)
    for letter, code in {**BASE_CODES, UNKNOWN_LETTER: UNKNOWN_CODE}.items():
        table[ord(letter)] = code
    raw = np.frombuffer(sequence.encode("ascii", errors="replace"), np.uint8)
    codes = table[np.minimum(raw, 127)]
    bad = np.flatnonzero(codes < 0)
    if bad.size:
        raise ValueError(f"position {bad[0] + 1}: {sequence[bad[0]]!r} is not A, C, G, U, T or N")
    return codes


def split_records(text: str, source: str) -> list[FastaRecord]:
    """Records with their residues (upper case, no whitespace); checks the characters."""
    records: list[FastaRecord] = []
    lines: list[list[tuple[int, str]]] = []  # per record: (line number, sequence text)
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(";"):
            continue
        if line.startswith(">"):
            records.append(FastaRecord(line[1:].strip(), number))
            lines.append([])
        elif not records:
            raise SequenceError(f"{source}, line {number}: sequence before the first '>' header")
        else:
            lines[-1].append((number, "".join(line.split()).upper()))
    for record, record_lines in zip(records, lines):
        parts = []
        for i, (number, residues) in enumerate(record_lines):
            if i == len(record_lines) - 1 and residues.endswith("*"):  # a terminator
                residues = residues[:-1]
            bad = next((c for c in residues if c not in string.ascii_uppercase), None)
            if bad is not None:
                raise SequenceError(f"{source}, line {number}: {bad!r} is neither a nucleotide nor an amino-acid "
                                    "code")
            parts.append(residues)
        record.residues = "".join(parts)
        if not record.residues:
            raise SequenceError(f"{source}, line {record.line}: record '>{record.header}' has no sequence")
    return records


def looks_nucleic(residues: str) -> bool:
    """Whether upper-case ``residues`` read as a nucleic acid: more than NUCLEIC_MIN_FRACTION of the letters other
    than N and X are A/C/G/U/T. N only is nucleic, X only (the protein convention) is not."""
    share = nucleotide_share(residues)
    return "X" not in residues if share is None else share > NUCLEIC_MIN_FRACTION


def nucleotide_share(residues: str) -> float | None:
    """Fraction of A/C/G/U/T among the residues other than N and X (None when there are none)."""
    known = sum(c not in UNKNOWN_RESIDUES for c in residues)
    return sum(c in NUCLEOTIDES for c in residues) / known if known else None


def _is_protein(record: FastaRecord, where: str, warnings: list[str]) -> bool:
    """Whether the record is a protein (``looks_nucleic`` says no); a record of N and X only is an error."""
    share = nucleotide_share(record.residues)
    if share is None:
        raise SequenceError(f"{where} has only unknown residues (N/X)")
    if looks_nucleic(record.residues):
        return False
    warnings.append(f"{where} skipped: a protein sequence ({share:.0%} A/C/G/U/T)")
    return True


def _mark_unknown(residues: str, where: str, warnings: list[str]) -> str:
    """``residues`` with every letter other than A/C/G/U/T made N, reporting how many of which."""
    unknown = Counter(c for c in residues if c not in NUCLEOTIDES)
    if not unknown:
        return residues
    letters = ", ".join(f"{letter} x{count}" for letter, count in sorted(unknown.items()))
    warnings.append(f"{where}: {sum(unknown.values())} unknown or ambiguous residues ({letters}) kept as N: the "
                    "residues after them keep their FASTA numbers, and nothing is built there from the sequence")
    return "".join(c if c in NUCLEOTIDES else UNKNOWN_LETTER for c in residues)


def nucleic_kind(record: FastaRecord, file_has_u: bool) -> Literal["RNA", "DNA"]:
    """RNA or DNA for one nucleic record (rules in the module docstring)."""
    if "U" in record.residues:
        return "RNA"
    if "T" in record.residues:
        return "DNA"
    header = _header_kind(record)
    if header is not None:
        return header
    return "RNA" if file_has_u else "DNA"


def _header_kind(record: FastaRecord) -> Literal["RNA", "DNA"] | None:
    """The kind a record's header names ("RNA" or "DNA" in upper case, one of them only), else None."""
    says_rna, says_dna = "RNA" in record.header, "DNA" in record.header
    if says_rna == says_dna:
        return None
    return "RNA" if says_rna else "DNA"


def _record_place(source: str, record: FastaRecord) -> str:
    """Where a record is, for messages: file, line and header."""
    return f"{source}, line {record.line}: record '>{record.header}'"


def _note_oddities(record: FastaRecord, kind: str, file_has_u: bool, where: str, warnings: list[str]) -> None:
    """Warnings for a record that is used but may not be what the user meant: a single residue (too short for the
    sequence to place anything), no U or T and a header that names neither RNA nor DNA (why it is read as one)."""
    if len(record.residues) == 1:
        warnings.append(f"{where} has a single residue: a residue is placed in register only where its traced path "
                        "reads the sequence decisively, which one residue cannot")
    if "U" not in record.residues and "T" not in record.residues and _header_kind(record) is None:
        why = "another record of the file has a U" if file_has_u else "no record of the file has a U (CryoREAD's rule)"
        other = "DNA" if kind == "RNA" else "RNA"
        warnings.append(f"{where} has no U or T: built as {kind} because {why}; write {other} in its header to "
                        "build it as that")


def _requested_chain_ids(record: FastaRecord, where: str, warnings: list[str]) -> list[str | None]:
    """The chain ids the header asks for (None: no usable id); several for a PDB-style "Chains A, B" field."""
    fields = record.header.split("|")
    chains = CHAINS_FIELD.fullmatch(fields[1]) if len(fields) > 1 else None
    if chains is None:
        words = fields[0].split()
        candidate = words[0].rsplit("_", 1)[-1] if words else ""
        return [candidate if len(candidate) == 1 and candidate in CHAIN_ID_ALPHABET else None]
    requested: list[str | None] = []
    for token in (t.strip() for t in chains.group(1).split(",")):
        if not token:
            continue
        auth = _AUTH_ID.fullmatch(token)
        chain_id = auth.group(2) if auth else token
        if _VALID_CHAIN_ID.fullmatch(chain_id):
            requested.append(chain_id)
        else:
            warnings.append(f"{where}: chain id {chain_id!r} is not 1-4 letters or digits; another id is used")
            requested.append(None)
    return requested or [None]


def _assign_chain_ids(records: list[FastaRecord], requested: list[list[str | None]], source: str,
                      warnings: list[str]) -> list[list[str]]:
    """Unique chain ids for every record: requested ids first (in file order), then free ones for the None."""
    used: set[str] = set()
    assigned: list[list[str | None]] = []
    for record, record_ids in zip(records, requested):
        ids: list[str | None] = []
        for chain_id in record_ids:
            if chain_id is not None and chain_id in used:
                warnings.append(f"{source}, line {record.line}: chain id {chain_id!r} is used by an earlier "
                                "record; another id is used")
                chain_id = None
            if chain_id is not None:
                used.add(chain_id)
            ids.append(chain_id)
        assigned.append(ids)
    free = (c for c in _chain_id_sequence() if c not in used)
    return [[chain_id if chain_id is not None else next(free) for chain_id in ids] for ids in assigned]


def _chain_id_sequence() -> Iterator[str]:
    """A-Z, a-z, 0-9, then AA, AB, ..., 99, then three characters, and so on."""
    for length in itertools.count(1):
        for letters in itertools.product(CHAIN_ID_ALPHABET, repeat=length):
            yield "".join(letters)
