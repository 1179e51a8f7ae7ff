"""Reading atomic model files (PDB / mmCIF, optionally gzipped) with one clear error per unusable file."""
from __future__ import annotations

import os
import re
from pathlib import Path

import gemmi

#: Extensions a model file name may end with, removed in this order for default output prefixes (compression first).
MODEL_SUFFIXES = (".gz", ".cif", ".mmcif", ".pdb", ".ent")
#: gemmi's message for a PDB record cut short (a file truncated inside a coordinate, say): its line number, then the
#: line itself on a second line.
SHORT_PDB_LINE = re.compile(r"Problem in line (\d+): The line is too short to be correct:\s*(.*)", re.DOTALL)


class ModelFileError(ValueError):
    """A model file that cannot be used; the message names the file and the problem."""


def read_model(path: str | os.PathLike) -> gemmi.Structure:
    """The structure in ``path`` (entities set up); ModelFileError when the file is missing, empty, unreadable or
    has no atoms in its first model."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ModelFileError(f"{path}: the file is empty")
    try:
        structure = gemmi.read_structure(str(path))
    except (RuntimeError, ValueError) as exc:
        raise ModelFileError(f"{path}: {_reading_problem(str(exc))}") from None
    if len(structure) == 0 or not any(len(residue) for chain in structure[0] for residue in chain):
        raise ModelFileError(f"{path}: the model has no atoms")
    structure.setup_entities()
    return structure


def _reading_problem(message: str) -> str:
    """gemmi's reading error ``message`` as one line saying what is wrong (and for a cut-short record, the fix)."""
    short = SHORT_PDB_LINE.match(message)
    if short:
        return (f"line {short[1]} is cut short (\"{' '.join(short[2].split())}\"): the file is truncated or "
                "damaged; write or copy it again")
    return f"not a readable PDB/mmCIF file ({' '.join(message.split())})"
