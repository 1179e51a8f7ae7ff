"""The oracle detection maps used to test model building: classes at the right atoms, corruption as asked."""
from __future__ import annotations

from pathlib import Path

import gemmi
import numpy as np
import pytest

from haruspex_engine.nucleic.classes import STAGE2_CLASSES
from haruspex_engine.testing.oracle_maps import REALISTIC, Corruption, oracle_maps

RNA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cryoread-example" / "6v5b_drna.pdb"


def _tiny_rna() -> gemmi.Structure:
    """Two nucleotides (A then U) and one alanine, with a few atoms each at hand-picked positions (Å)."""
    structure = gemmi.Structure()
    model = gemmi.Model(1)
    chain = gemmi.Chain("A")
    layout = {"A": {"P": (0, 0, 0), "C4'": (4, 0, 0), "N9": (8, 0, 0)},
              "U": {"P": (0, 10, 0), "C4'": (4, 10, 0), "N1": (8, 10, 0)},
              "ALA": {"CA": (0, 0, 12)}}
    for number, (name, atoms) in enumerate(layout.items(), start=1):
        residue = gemmi.Residue()
        residue.name, residue.seqid = name, gemmi.SeqId(number, " ")
        for atom_name, xyz in atoms.items():
            atom = gemmi.Atom()
            atom.name, atom.pos = atom_name, gemmi.Position(*xyz)
            atom.element = gemmi.Element(atom_name[0])
            residue.add_atom(atom)
        chain.add_residue(residue)
    model.add_chain(chain)
    structure.add_model(model)
    return structure


def _value(maps, cls: str, xyz) -> float:
    x, y, z = (int(round(c - o)) for c, o in zip(xyz, maps.origin))
    return float(maps.stage2[STAGE2_CLASSES.index(cls)][z, y, x])


def test_each_atom_paints_its_class_only() -> None:
    maps = oracle_maps(_tiny_rna(), Corruption())
    assert maps.stage2.shape[0] == 8 and maps.stage2.shape[1:] == maps.density.shape
    assert _value(maps, "phosphate", (0, 0, 0)) == pytest.approx(1.0)
    assert _value(maps, "sugar", (4, 10, 0)) == pytest.approx(1.0)
    assert _value(maps, "base", (8, 0, 0)) == pytest.approx(1.0) and _value(maps, "A", (8, 0, 0)) == pytest.approx(1.0)
    assert _value(maps, "UT", (8, 10, 0)) == pytest.approx(1.0) and _value(maps, "A", (8, 10, 0)) < 1e-6
    assert _value(maps, "protein", (0, 0, 12)) == pytest.approx(1.0) and _value(maps, "sugar", (0, 0, 12)) < 1e-6
    assert _value(maps, "sugar", (0, 0, 0)) < 1e-6  # 4 Å from the nearest sugar atom: beyond the 3σ blob
    # one voxel off an atom: exp(-1/2)
    assert _value(maps, "phosphate", (1, 0, 0)) == pytest.approx(np.exp(-0.5), rel=1e-5)
    # the simulated density is highest near atoms
    x, y, z = (int(round(-o)) for o in maps.origin)
    assert maps.density[z, y, x] > 10 * maps.density[0, 0, 0]


def test_corruption_is_reproducible_and_as_large_as_asked() -> None:
    if not RNA.is_file():
        pytest.skip(f"{RNA} is absent (../shared not beside the project)")
    structure = gemmi.read_structure(str(RNA))
    first, again = oracle_maps(structure, REALISTIC), oracle_maps(structure, REALISTIC)
    np.testing.assert_array_equal(first.stage2, again.stage2)
    assert len(first.dropped) == round(0.05 * 78) and len(first.confused) == round(0.15 * 78)
    assert not set(first.dropped) & set(first.confused)
    clean = oracle_maps(structure, Corruption())
    noise = first.stage2 - clean.stage2
    assert 0.05 < float(noise[:, ::3, ::3, ::3].std()) < 0.2
    other = oracle_maps(structure, Corruption(**{**REALISTIC.__dict__, "seed": 1}))
    assert other.dropped != first.dropped
