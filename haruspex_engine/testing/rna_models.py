"""Nucleic-acid reference models for tests: an ideal RNA built in code, and the deposited 78-nt RNA from ../shared."""
from __future__ import annotations

import math
from pathlib import Path

import gemmi
import numpy as np

from haruspex_engine.nucleic.building.atoms import chain_id
from haruspex_engine.nucleic.building.ideal import ideal_na_strand

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


def assembly(structure: gemmi.Structure, copies: int, gap_A: float = 15.0) -> gemmi.Structure:
    """``copies`` translated copies of the first chain of ``structure`` on a cubic lattice in one model, bounding
    boxes ``gap_A`` Å apart; chain k is named ``chain_id(k)`` (A, B, …)."""
    source = structure[0][0]
    xyz = np.array([atom.pos.tolist() for residue in source for atom in residue])
    pitch = xyz.max(axis=0) - xyz.min(axis=0) + gap_A
    side = math.ceil(copies ** (1 / 3) - 1e-9)
    model = gemmi.Model(1)
    for k in range(copies):
        shift = gemmi.Position(*(pitch * np.array([k % side, k // side % side, k // side**2])))
        chain = source.clone()
        chain.name = chain_id(k)
        for residue in chain:
            for atom in residue:
                atom.pos = atom.pos + shift
        model.add_chain(chain)
    out = gemmi.Structure()
    out.cell = gemmi.UnitCell()
    out.add_model(model)
    out.setup_entities()
    return out


def assembly_fasta(sequence: str, copies: int) -> str:
    """A FASTA text with one record per copy of ``sequence``, ids A, B, … as in :func:`assembly`."""
    return "".join(f">{chain_id(k)}\n{sequence}\n" for k in range(copies))
