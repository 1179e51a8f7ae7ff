"""Rigid-body fit of built nucleotides into the maps: residues knocked off their places on a known RNA come back,
residues already in place stay, and the chain's O3′–P links are not torn."""
from __future__ import annotations

import gemmi
import numpy as np

from haruspex_engine.nucleic.building.residue_fit import fit_maps, fit_residues
from haruspex_engine.testing.oracle_maps import CLEAN, oracle_maps
from haruspex_engine.testing.rna_models import ideal_rna


def _c4(structure: gemmi.Structure) -> np.ndarray:
    return np.array([residue["C4'"][0].pos.tolist() for chain in structure[0] for residue in chain])


def _o3_p(structure: gemmi.Structure) -> np.ndarray:
    chain = structure[0][0]
    return np.array([chain[k]["O3'"][0].pos.dist(chain[k + 1]["P"][0].pos) for k in range(len(chain) - 1)])


def _knocked(structure: gemmi.Structure, seed: int, shift_A: float, turn_deg: float) -> gemmi.Structure:
    """A copy with every residue moved rigidly: turned by turn_deg about a random axis through its centroid and
    shifted by shift_A in a random direction."""
    rng = np.random.default_rng(seed)
    moved = structure.clone()
    for residue in moved[0][0]:
        xyz = np.array([atom.pos.tolist() for atom in residue])
        centre = xyz.mean(axis=0)
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        angle = np.radians(turn_deg)
        arm = xyz - centre
        turned = (arm * np.cos(angle) + np.cross(axis, arm) * np.sin(angle)
                  + np.outer(arm @ axis, axis) * (1 - np.cos(angle)))
        direction = rng.normal(size=3)
        new = centre + turned + shift_A * direction / np.linalg.norm(direction)
        for atom, position in zip(residue, new):
            atom.pos = gemmi.Position(*position)
    return moved


def test_knocked_residues_come_back_into_their_density() -> None:
    reference = ideal_rna()
    maps = oracle_maps(reference, CLEAN)
    targets = fit_maps(maps.stage2, maps.density, maps.origin, _c4(reference))
    moved = _knocked(reference, seed=3, shift_A=1.5, turn_deg=15.0)
    before = np.linalg.norm(_c4(moved) - _c4(reference), axis=1)
    report = fit_residues(moved, targets)
    after = np.linalg.norm(_c4(moved) - _c4(reference), axis=1)
    assert report.residues == len(before) and report.score_after > report.score_before
    assert np.median(after) < 0.5 * np.median(before), (np.median(before), np.median(after))
    assert np.median(_o3_p(moved)) < 2.0  # the links close up again (knocked apart: several Å)


def test_residues_in_place_stay_in_place() -> None:
    reference = ideal_rna()
    maps = oracle_maps(reference, CLEAN)
    model = reference.clone()
    report = fit_residues(model, fit_maps(maps.stage2, maps.density, maps.origin, _c4(reference)))
    shift = np.linalg.norm(_c4(model) - _c4(reference), axis=1)
    assert shift.max() < 0.5, shift.max()
    assert abs(report.c4_shift_max_A - shift.max()) < 1e-6
    assert [r.name for r in model[0][0]] == [r.name for r in reference[0][0]]
