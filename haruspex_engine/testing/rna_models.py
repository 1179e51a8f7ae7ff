"""Nucleic-acid reference models for tests: an ideal RNA built in code, and the deposited 78-nt RNA from ../shared."""
from __future__ import annotations

from pathlib import Path

import gemmi

from haruspex_engine.nucleic.ideal import ideal_na_strand

#: The deposited model of EMD-21051 (PDB 6V5B chain D, 78-nt RNA), read from ../shared when it is beside the project.
DEPOSITED_RNA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cryoread-example" / "6v5b_drna.pdb"
IDEAL_SEQUENCE = "GGCAUCAGUCCAAGUCGGAUCCAGUACGGA"


def ideal_rna(sequence: str = IDEAL_SEQUENCE) -> gemmi.Structure:
    """A one-chain structure holding an ideal A-form single strand of ``sequence``."""
    structure = gemmi.Structure()
    structure.add_model(gemmi.Model(1))
    structure[0].add_chain(ideal_na_strand(sequence))
    return structure


def deposited_rna() -> gemmi.Structure:
    """The deposited 78-nt RNA; skips the calling test when ../shared is not beside the project."""
    if not DEPOSITED_RNA.is_file():
        import pytest

        pytest.skip(f"{DEPOSITED_RNA} is absent (../shared not beside the project)")
    return gemmi.read_structure(str(DEPOSITED_RNA))
