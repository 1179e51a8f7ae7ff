"""How well a nucleic-acid model matches a reference structure: CryoREAD's evaluation metrics plus C4′ coverage.

Distances are in Å. Only the first model of each structure is read, and of atoms with alternative conformations
the first one listed.

Nucleotides: residues gemmi tabulates as RNA or DNA (A, C, G, U, DA, DC, DG, DT, DU, PSU, 2MG, ...) and residues
gemmi does not know that have C1′, C4′ and P atoms (other modified nucleotides). Waters, ions, amino acids and
ligands (ATP has no atom named P) are ignored. Base letter: the residue's (parent) one-letter code, with T read as U
(DT = T = U, DA = A); a modified residue without a known parent has base N, which matches nothing.

Backbone atoms: sugar C1′ C2′ O2′ C3′ O3′ C4′ O4′ C5′ and phosphate P OP1 OP2 O5′ OP3 (old names C4*, O1P, O2P
are read as C4′, OP1, OP2).
- atom_coverage_5A: fraction of reference backbone atoms with a model backbone atom, of any name, within 5 Å.
- atom_precision_5A: fraction of model backbone atoms with a reference backbone atom, of any name, within 5 Å.

Residues are compared by their C4′ atom; residues without one are left out of every residue metric (counted in
``counts``). A residue's partner is the nearest residue of the other structure when their C4′ atoms are at most
3 Å apart. Partners are not one-to-one: one model residue could cover two reference residues whose C4′ atoms are
less than 6 Å apart, which bonded neighbours (about 5.5-7 Å) almost never are.
- backbone_coverage_3A: fraction of reference residues with a partner.
- backbone_precision_3A: fraction of model residues with a partner (built residues that cover a reference residue).
- sequence_recall: fraction of reference residues whose partner has the same base.
- sequence_precision: fraction of model residues whose partner has the same base.
- sequence_recall_matched, sequence_precision_matched: the same, out of reference / model residues with a partner
  (CryoREAD's "Seq Recall(Match)" and "Seq Precision(Match)"; None when nothing is matched).
- rmsd_A: root-mean-square distance between same-named backbone atoms of matched pairs: a reference and a model
  residue that are each other's partner (one-to-one). None when there is no such atom pair.
CryoREAD matches nucleotides by an average atom-pair distance below 5 Å; a single C4′ distance is used here so
that every residue metric rests on one matching that needs no atom names, and 3 Å (half a C4′-C4′ step) cannot
pair a residue with its neighbour. A fraction whose denominator is 0 is None.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gemmi
import numpy as np
from scipy.spatial import cKDTree

from haruspex_engine.model_files import ModelFileError, read_model
from haruspex_engine.nucleic.building.nucleotides import PHOSPHATE_ATOMS, SUGAR_ATOMS

RESIDUE_CUTOFF_A = 3.0
ATOM_CUTOFF_A = 5.0
BACKBONE_ATOMS = SUGAR_ATOMS + PHOSPHATE_ATOMS
_BACKBONE_INDEX = {name: i for i, name in enumerate(BACKBONE_ATOMS)}
_C4 = _BACKBONE_INDEX["C4'"]
_OLD_ATOM_NAMES = {"O1P": "OP1", "O2P": "OP2", "O3P": "OP3"}
_UNKNOWN_BASE = "N"


class EvaluationError(ValueError):
    """A structure that cannot be evaluated; the message names the file (or model/reference) and the problem."""


@dataclass(frozen=True)
class _Nucleotides:
    """Backbone atoms of a structure's nucleotides.

    bases: (residues,) one letter A/C/G/U/N. c4: (residues, 3) C4′ position in Å, NaN where the residue has none.
    atom_xyz: (atoms, 3) Å. atom_residue: (atoms,) residue index. atom_name: (atoms,) index into BACKBONE_ATOMS.
    """

    bases: np.ndarray
    c4: np.ndarray
    atom_xyz: np.ndarray
    atom_residue: np.ndarray
    atom_name: np.ndarray


def evaluate_model(model: gemmi.Structure, reference: gemmi.Structure) -> dict[str, Any]:
    """Metrics of ``model`` against ``reference`` (definitions in the module docstring), JSON-serialisable.

    Raises EvaluationError when either structure has no nucleotides.
    """
    return _compare(_nucleotides(model, "model"), _nucleotides(reference, "reference"))


def evaluate_files(model_path: str | os.PathLike, reference_path: str | os.PathLike) -> dict[str, Any]:
    """``evaluate_model`` on two PDB/mmCIF files (optionally gzipped), with their absolute paths in the result.

    Raises EvaluationError naming the file that is missing, empty, unreadable or without nucleotides.
    """
    model = _nucleotides(_read_structure(model_path), str(model_path))
    reference = _nucleotides(_read_structure(reference_path), str(reference_path))
    return {"model": str(Path(model_path).resolve()), "reference": str(Path(reference_path).resolve()),
            **_compare(model, reference)}


def _read_structure(path: str | os.PathLike) -> gemmi.Structure:
    try:
        return read_model(path)
    except ModelFileError as exc:
        raise EvaluationError(str(exc)) from None


def _nucleotides(structure: gemmi.Structure, label: str) -> _Nucleotides:
    """The backbone atoms of the nucleotides of the first model; raises EvaluationError when there are none."""
    bases: list[str] = []
    xyz: list[tuple[float, float, float]] = []
    residue_index: list[int] = []
    name_index: list[int] = []
    known: dict[str, str | None] = {}  # residue name -> base letter, None: not a nucleotide
    for chain in structure[0] if len(structure) else ():
        for residue in chain:
            base = _base_letter(residue, known)
            if base is None:
                continue
            seen: set[int] = set()
            for atom in residue:
                name = _OLD_ATOM_NAMES.get(atom.name, atom.name.replace("*", "'"))
                index = _BACKBONE_INDEX.get(name)
                if index is None or index in seen:
                    continue
                seen.add(index)
                xyz.append((atom.pos.x, atom.pos.y, atom.pos.z))
                residue_index.append(len(bases))
                name_index.append(index)
            bases.append(base)
    if not bases:
        raise EvaluationError(f"{label}: no nucleotides (DNA/RNA residues) in the first model")
    atom_xyz = np.array(xyz, dtype=np.float64).reshape(-1, 3)
    atom_residue = np.array(residue_index, dtype=np.int64)
    atom_name = np.array(name_index, dtype=np.int64)
    c4 = np.full((len(bases), 3), np.nan)
    is_c4 = atom_name == _C4
    c4[atom_residue[is_c4]] = atom_xyz[is_c4]
    return _Nucleotides(np.array(bases), c4, atom_xyz, atom_residue, atom_name)


def _base_letter(residue: gemmi.Residue, known: dict[str, str | None]) -> str | None:
    """A/C/G/U (T read as U), N for a nucleotide of unknown parent, None for anything that is not a nucleotide."""
    name = residue.name
    if name not in known:
        info = gemmi.find_tabulated_residue(name)
        if info is not None and info.is_nucleic_acid():
            letter = info.one_letter_code.upper().replace("T", "U")
            known[name] = letter if letter in ("A", "C", "G", "U") else _UNKNOWN_BASE
        elif info is not None and info.kind != gemmi.ResidueKind.UNKNOWN:
            known[name] = None
        else:  # a residue gemmi does not know: a nucleotide when it has a sugar and a phosphate
            names = {atom.name.replace("*", "'") for atom in residue}
            return _UNKNOWN_BASE if {"C1'", "C4'", "P"} <= names else None
    return known[name]


def _compare(model: _Nucleotides, reference: _Nucleotides) -> dict[str, Any]:
    atom_coverage = _within(reference.atom_xyz, model.atom_xyz, ATOM_CUTOFF_A)
    atom_precision = _within(model.atom_xyz, reference.atom_xyz, ATOM_CUTOFF_A)

    ref_rows = np.flatnonzero(~np.isnan(reference.c4[:, 0]))
    model_rows = np.flatnonzero(~np.isnan(model.c4[:, 0]))
    ref_partner = _partner(reference.c4[ref_rows], model.c4[model_rows])  # index into model_rows, -1: none
    model_partner = _partner(model.c4[model_rows], reference.c4[ref_rows])  # index into ref_rows, -1: none
    ref_same = _same_base(reference.bases[ref_rows], model.bases[model_rows], ref_partner)
    model_same = _same_base(model.bases[model_rows], reference.bases[ref_rows], model_partner)
    ref_covered = int(np.count_nonzero(ref_partner >= 0))
    model_covering = int(np.count_nonzero(model_partner >= 0))

    mutual = np.flatnonzero(ref_partner >= 0)
    mutual = mutual[model_partner[ref_partner[mutual]] == mutual]
    pair_of_ref = np.full(len(reference.bases), -1)
    pair_of_ref[ref_rows[mutual]] = model_rows[ref_partner[mutual]]
    rmsd, rmsd_atoms = _pair_rmsd(model, reference, pair_of_ref)

    n_ref, n_model = len(ref_rows), len(model_rows)
    return {
        "backbone_coverage_3A": _fraction(ref_covered, n_ref),
        "backbone_precision_3A": _fraction(model_covering, n_model),
        "atom_coverage_5A": _fraction(int(atom_coverage.sum()), len(atom_coverage)),
        "atom_precision_5A": _fraction(int(atom_precision.sum()), len(atom_precision)),
        "sequence_recall": _fraction(int(ref_same.sum()), n_ref),
        "sequence_precision": _fraction(int(model_same.sum()), n_model),
        "sequence_recall_matched": _fraction(int(ref_same.sum()), ref_covered),
        "sequence_precision_matched": _fraction(int(model_same.sum()), model_covering),
        "rmsd_A": rmsd,
        "cutoffs_A": {"residue_c4": RESIDUE_CUTOFF_A, "atom": ATOM_CUTOFF_A},
        "counts": {
            "reference_residues": n_ref,
            "model_residues": n_model,
            "reference_residues_without_c4": len(reference.bases) - n_ref,
            "model_residues_without_c4": len(model.bases) - n_model,
            "reference_backbone_atoms": len(reference.atom_name),
            "model_backbone_atoms": len(model.atom_name),
            "covered_reference_residues": ref_covered,
            "covering_model_residues": model_covering,
            "matched_pairs": len(mutual),
            "rmsd_atom_pairs": rmsd_atoms,
        },
    }


def _within(points: np.ndarray, others: np.ndarray, cutoff: float) -> np.ndarray:
    """(len(points),) bool: whether some point of ``others`` lies within ``cutoff`` Å."""
    if not len(points) or not len(others):
        return np.zeros(len(points), bool)
    distance, _ = cKDTree(others).query(points, distance_upper_bound=cutoff)
    return np.isfinite(distance)


def _partner(c4: np.ndarray, other_c4: np.ndarray) -> np.ndarray:
    """(len(c4),) index of the nearest row of ``other_c4`` within RESIDUE_CUTOFF_A, -1 where there is none."""
    if not len(c4) or not len(other_c4):
        return np.full(len(c4), -1)
    distance, index = cKDTree(other_c4).query(c4, distance_upper_bound=RESIDUE_CUTOFF_A)
    return np.where(np.isfinite(distance), index, -1)


def _same_base(bases: np.ndarray, other_bases: np.ndarray, partner: np.ndarray) -> np.ndarray:
    """(len(bases),) bool: the residue has a partner with the same, known base."""
    same = np.zeros(len(bases), bool)
    has = partner >= 0
    same[has] = (bases[has] == other_bases[partner[has]]) & (bases[has] != _UNKNOWN_BASE)
    return same


def _pair_rmsd(model: _Nucleotides, reference: _Nucleotides, pair_of_ref: np.ndarray) -> tuple[float | None, int]:
    """RMSD (Å) over same-named backbone atoms of matched residues, and how many atom pairs it covers.

    pair_of_ref: (reference residues,) the matched model residue, -1 for none.
    """
    n_names = len(BACKBONE_ATOMS)
    partner = pair_of_ref[reference.atom_residue]
    ref_atoms = np.flatnonzero(partner >= 0)
    ref_keys = partner[ref_atoms] * n_names + reference.atom_name[ref_atoms]
    model_keys = model.atom_residue * n_names + model.atom_name  # unique: one atom per name and residue
    order = np.argsort(model_keys)
    slot = np.minimum(np.searchsorted(model_keys[order], ref_keys), max(len(order) - 1, 0))
    found = model_keys[order][slot] == ref_keys if len(order) else np.zeros(len(ref_keys), bool)
    if not found.any():
        return None, 0
    difference = reference.atom_xyz[ref_atoms[found]] - model.atom_xyz[order[slot[found]]]
    return float(np.sqrt(np.mean(np.sum(difference**2, axis=1)))), int(found.sum())


def _fraction(count: int, total: int) -> float | None:
    return count / total if total else None
