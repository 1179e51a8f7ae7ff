"""Which nucleotide a residue is: its parent base letter and kind, modified nucleotides included.

One rule for the whole engine (scoring, oracle maps, FASTA from a model): a residue gemmi tabulates as RNA or DNA
takes gemmi's one-letter code, upper-cased (PSU → U, 7MG → G, DT → T); a residue gemmi does not tabulate takes the
parent component named by the file's MODRES record (5MC → C, YYG → G, A23 → A); a residue known to neither that
has C1′, C4′ and P atoms is a nucleotide of unknown parent, letter N; anything else (amino acids, water, ions,
ligands) is not a nucleotide.
"""
from __future__ import annotations

import gemmi

#: Letter of a nucleotide whose parent base is unknown.
UNKNOWN_BASE = "N"
_NUCLEOTIDE_ATOMS = frozenset({"C1'", "C4'", "P"})


def modres_parents(structure: gemmi.Structure) -> dict[tuple[str, str], str]:
    """(chain name, residue seqid as str) → parent component id, from the file's MODRES records."""
    return {(m.chain_name, str(m.res_id.seqid)): m.parent_comp_id for m in structure.mod_residues}


def parent_base(residue: gemmi.Residue, modres_parent: str | None = None) -> tuple[str, gemmi.ResidueKind] | None:
    """(upper-case parent base letter A/C/G/U/T/N, gemmi residue kind) of a nucleotide, None for anything else.

    modres_parent: the parent component the file's MODRES record names (``modres_parents``), used only when gemmi
    does not tabulate the residue itself. A nucleotide of unknown parent is ("N", ResidueKind.UNKNOWN).
    """
    info = _tabulated(residue.name)
    if info is None:
        info = _tabulated(modres_parent)
    if info is not None:
        if not info.is_nucleic_acid():
            return None
        letter = info.one_letter_code.upper()
        return (letter if letter in "ACGUT" else UNKNOWN_BASE), info.kind
    atoms = {atom.name.replace("*", "'") for atom in residue}
    return (UNKNOWN_BASE, gemmi.ResidueKind.UNKNOWN) if _NUCLEOTIDE_ATOMS <= atoms else None


def _tabulated(name: str | None) -> gemmi.ResidueInfo | None:
    """gemmi's table entry for residue ``name``; None when there is no name or gemmi does not know it."""
    info = gemmi.find_tabulated_residue(name) if name else None
    return info if info is not None and info.found() else None
