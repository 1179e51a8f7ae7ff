"""The nucleic-acid benchmark corpus: deposited structures to build from oracle detection maps and score against.

Eleven entries under the shared-data root (``<repo>/../shared/data`` unless given; never copied into the project):
the ten of ``na-corpus/`` (its README.md describes them: tRNAs with modified nucleotides, DNA duplexes, a
G-quadruplex, protein–RNA/DNA complexes, a cryo-EM riboswitch and a 1,530-nt 16S rRNA) and the 78-nt RNA
``cryoread-example/6v5b_drna.pdb``.

``load_reference`` reads one as the reference model (first model, no waters, no hydrogens, first alternative
conformation). ``nucleic_chains`` gives each nucleic-acid chain's sequence of parent bases and its kind, and
``fasta_from_structure`` writes them as PDB-style FASTA records that ``sequences.parse_fasta`` reads back with the
same chain ids, sequences and kinds (a chain mixing DNA and RNA is written as RNA: parse_fasta reads its T as U).

Parent base of a nucleotide residue: ``nucleic.building.parent_bases`` (gemmi's table, else the file's MODRES record,
else N for a residue with C1′, C4′ and P atoms), the rule evaluate-na scores by.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import gemmi

from haruspex_engine.nucleic.building.parent_bases import modres_parents, parent_base

#: The corpus entries: id and path under the shared-data root, smallest folds first within each group.
CORPUS_ENTRIES: tuple[tuple[str, str], ...] = (
    ("1EHZ", "na-corpus/1EHZ.pdb"),
    ("1GID", "na-corpus/1GID.pdb"),
    ("4P5J", "na-corpus/4P5J.pdb"),
    ("1BNA", "na-corpus/1BNA.pdb"),
    ("1D66", "na-corpus/1D66.pdb"),
    ("1KF1", "na-corpus/1KF1.pdb"),
    ("3SIU", "na-corpus/3SIU.pdb"),
    ("1ASY", "na-corpus/1ASY.pdb"),
    ("6POM", "na-corpus/6POM.cif"),
    ("3JBV_A", "na-corpus/3JBV_A_rpr.pdb"),
    ("6v5b", "cryoread-example/6v5b_drna.pdb"),
)

#: The shared-data root beside the project checkout.
DEFAULT_DATA_ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "data"



@dataclass(frozen=True)
class NucleicChain:
    """sequence: the parent base of each nucleotide, upper case, file order (RNA with U, DNA with T, N: unknown).
    kind: DNA when every nucleotide is a deoxyribonucleotide, else RNA (a chain mixing both is RNA)."""

    sequence: str
    kind: Literal["RNA", "DNA"]


class CorpusMissingError(FileNotFoundError):
    """The shared corpus (or one of its files) is not where it was looked for."""


def corpus_entries(data_root: str | os.PathLike | None = None) -> dict[str, Path]:
    """Entry id → model file for every corpus entry under ``data_root`` (default ``DEFAULT_DATA_ROOT``), in
    ``CORPUS_ENTRIES`` order. Raises CorpusMissingError naming the files that are absent."""
    root = Path(data_root) if data_root is not None else DEFAULT_DATA_ROOT
    entries = {entry: root / relative for entry, relative in CORPUS_ENTRIES}
    missing = [str(path) for path in entries.values() if not path.is_file()]
    if missing:
        raise CorpusMissingError(f"the nucleic-acid corpus is not under {root} (the shared data live outside the "
                                 f"project, in ../shared/data); missing: {', '.join(missing)}")
    return entries


def load_reference(path: str | os.PathLike) -> gemmi.Structure:
    """The reference model in ``path`` (PDB or mmCIF): first model only, waters and hydrogens removed, of atoms with
    alternative conformations the first kept, entities set up. A file without a header (3JBV_A) works as well."""
    structure = gemmi.read_structure(str(path))
    while len(structure) > 1:
        del structure[len(structure) - 1]
    structure.remove_waters()
    structure.remove_hydrogens()
    structure.remove_alternative_conformations()
    structure.remove_empty_chains()
    structure.setup_entities()
    return structure


def nucleic_chains(structure: gemmi.Structure) -> dict[str, NucleicChain]:
    """Chain name → sequence of parent bases (file order) and kind, for every chain of the first model that holds
    nucleotides. Chains without nucleotides (protein) are left out."""
    parents = modres_parents(structure)
    letters: dict[str, list[str]] = {}
    kinds: dict[str, set[gemmi.ResidueKind]] = {}
    for chain in structure[0]:
        for residue in chain:
            nucleotide = parent_base(residue, parents.get((chain.name, str(residue.seqid))))
            if nucleotide is not None:
                letters.setdefault(chain.name, []).append(nucleotide[0])
                kinds.setdefault(chain.name, set()).add(nucleotide[1])
    return {name: NucleicChain("".join(chain_letters), "DNA" if kinds[name] == {gemmi.ResidueKind.DNA} else "RNA")
            for name, chain_letters in letters.items()}


def fasta_from_structure(structure: gemmi.Structure, name: str) -> str:
    """PDB-style FASTA of the nucleic-acid chains of ``structure``: one record per distinct sequence and kind, in
    order of first appearance, identical chains in one record, e.g. ``>1GID_1|Chains A, B|RNA|1GID``. The third
    field is the kind, so that ``parse_fasta`` reads a record of A/C/G only as the right kind. Raises ValueError
    when there is no nucleic-acid chain."""
    records: dict[NucleicChain, list[str]] = {}
    for chain_name, chain in nucleic_chains(structure).items():
        records.setdefault(chain, []).append(chain_name)
    if not records:
        raise ValueError(f"{name}: no nucleic-acid chain in the first model")
    lines = []
    for k, (chain, chain_names) in enumerate(records.items(), start=1):
        label = "Chain" if len(chain_names) == 1 else "Chains"
        lines += [f">{name}_{k}|{label} {', '.join(chain_names)}|{chain.kind}|{name}", chain.sequence]
    return "\n".join(lines) + "\n"
