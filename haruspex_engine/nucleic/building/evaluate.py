"""How well a nucleic-acid model matches a reference structure: CryoREAD's evaluation metrics on a one-to-one
residue matching, plus register, polarity and C4′ coverage.

Distances are in Å. Only the first model of each structure is read, and of atoms with alternative conformations
the first one listed. Hydrogens are ignored.

Nucleotides: residues gemmi tabulates as RNA or DNA (A, C, G, U, DA, DC, DG, DT, DU, PSU, 2MG, ...) and residues
gemmi does not know that have C1′, C4′ and P atoms (other modified nucleotides). Waters, ions, amino acids and
ligands (ATP has no atom named P) are ignored. Base letter: the residue's parent base (``parent_bases``: gemmi's
table, else the file's MODRES record), with T read as U (DT = T = U, DA = A); a modified residue without a known
parent has base N, which matches nothing. Atom names are
normalised: * reads as ′ (C4* = C4′) and O1P, O2P, O3P as OP1, OP2, OP3.

Chains and positions: a residue's chain is its chain name; its position is its 1-based ordinal among the nucleotides
of that chain name, in file order (residues without C4′ included). The reference's FASTA is taken to be its own
residue sequence per chain, so a reference residue's position is its FASTA position.

Backbone atoms: sugar C1′ C2′ O2′ C3′ O3′ C4′ O4′ C5′ and phosphate P OP1 OP2 O5′ OP3.
- atom_coverage_5A: fraction of reference backbone atoms with a model backbone atom, of any name, within 5 Å.
- atom_precision_5A: fraction of model backbone atoms with a reference backbone atom, of any name, within 5 Å.

Residues are compared by their C4′ atom; residues without one are left out of every residue metric (counted in
``counts``), so "reference residues" and "model residues" below are those with a C4′. Matching is one-to-one: a
reference and a model residue may be paired when their C4′ atoms are at most 3 Å apart, and the pairs are the
largest such set in which no residue appears twice, of least total C4′ distance among the largest (a linear
assignment). Two model residues on one reference residue: only one is matched.
- backbone_coverage_3A: matched reference residues / reference residues.
- backbone_precision_3A: matched model residues / model residues.
- sequence_recall: pairs of the same (known) base / reference residues.
- sequence_precision: pairs of the same (known) base / model residues.
- sequence_recall_matched, sequence_precision_matched: pairs of the same base / pairs (CryoREAD's "Seq
  Recall(Match)" and "Seq Precision(Match)"; equal, as matching is one-to-one; None when nothing is matched).
- register_recall: reference residues whose matched model residue is numbered (seqid number, insertion code
  ignored) at the reference residue's position and whose model chain name is the reference chain's name, or the
  name of another reference chain of identical base sequence (a palindromic duplex, identical copies) / reference
  residues.
- reversed_residues: model residues in a reversed step. A step is two consecutive nucleotides of one model chain
  (residue i and the next in the file) both matched to residues of one reference chain; it is reversed when the
  reference position of residue i + 1's partner is 1 to POLARITY_SPAN (3) lower than that of residue i's partner
  (a stretch built 3′→5′ passes each residue backwards, two back where it lacks a residue). A step further back is
  a backward jump, not a reversal: the trace went on from one place of the chain to an earlier one (from a 3′ end
  to the 5′ end beside it where a chain closes on itself, or across a junction), each side built in its own
  direction; it is counted apart (backward_jump_steps).
- reversed_fraction: reversed_residues / model residues.
- rmsd_c4_A: root-mean-square C4′-C4′ distance over the pairs; None without pairs.
- rmsd_all_atoms_A: root-mean-square distance between same-named non-hydrogen atoms (backbone and base) of the
  pairs; None when there is no such atom pair.
- counts: residues and backbone atoms of each structure, residues without C4′, matched_pairs, register_pairs
  (pairs in register), matched_steps (steps as defined above), reversed_steps, backward_jump_steps and
  rmsd_atom_pairs (atom pairs of
  rmsd_all_atoms_A).
CryoREAD matches nucleotides by an average atom-pair distance below 5 Å; a single C4′ distance is used here so
that every residue metric rests on one matching that needs no atom names, and 3 Å (half a C4′-C4′ step) cannot
pair a residue with its neighbour. A fraction whose denominator is 0 is None.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gemmi
import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from haruspex_engine.model_files import ModelFileError, read_model
from haruspex_engine.nucleic.building.nucleotides import PHOSPHATE_ATOMS, SUGAR_ATOMS
from haruspex_engine.nucleic.building.parent_bases import UNKNOWN_BASE, modres_parents, parent_base

RESIDUE_CUTOFF_A = 3.0
ATOM_CUTOFF_A = 5.0
#: Reference positions a step may go back and count as reversed (polarity) rather than as a backward jump.
POLARITY_SPAN = 3
BACKBONE_ATOMS = SUGAR_ATOMS + PHOSPHATE_ATOMS
_OLD_ATOM_NAMES = {"O1P": "OP1", "O2P": "OP2", "O3P": "OP3"}


class EvaluationError(ValueError):
    """A structure that cannot be evaluated; the message names the file (or model/reference) and the problem."""


@dataclass(frozen=True)
class _Nucleotides:
    """The nucleotides of a structure, in file order.

    Per residue (residues,): bases one letter A/C/G/U/N; chain the chain name; position the 1-based ordinal among
    the nucleotides of that chain name; number the seqid number. c4: (residues, 3) C4′ position in Å, NaN where
    the residue has none. Per non-hydrogen atom (atoms,): atom_xyz (atoms, 3) Å; atom_residue the residue index;
    atom_name the normalised name; atom_backbone whether it is a backbone atom.
    """

    bases: np.ndarray
    chain: np.ndarray
    position: np.ndarray
    number: np.ndarray
    c4: np.ndarray
    atom_xyz: np.ndarray
    atom_residue: np.ndarray
    atom_name: np.ndarray
    atom_backbone: np.ndarray


@dataclass(frozen=True)
class _Pairs:
    """The one-to-one residue matching: (pairs,) reference and model residue indices, sorted by reference."""

    reference: np.ndarray
    model: np.ndarray


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


def numbered_by_position(structure: gemmi.Structure) -> gemmi.Structure:
    """A copy of ``structure`` whose nucleotides (first model) are numbered by their position: 1, 2, … per chain
    name in file order, no insertion codes; other residues keep their numbers. Scored against ``structure``, such
    a copy is fully in register (register_recall 1)."""
    copy = structure.clone()
    for _, position, _, residue in _nucleotide_residues(copy):
        residue.seqid = gemmi.SeqId(position, " ")
    return copy


def _nucleotide_residues(structure: gemmi.Structure) -> Iterator[tuple[str, int, str, gemmi.Residue]]:
    """(chain name, position, base letter, residue) of each nucleotide of the first model, in file order; position:
    the 1-based ordinal among the nucleotides of that chain name."""
    count: dict[str, int] = {}
    parents = modres_parents(structure)
    for chain in structure[0] if len(structure) else ():
        for residue in chain:
            nucleotide = parent_base(residue, parents.get((chain.name, str(residue.seqid))))
            if nucleotide is not None:
                count[chain.name] = count.get(chain.name, 0) + 1
                yield chain.name, count[chain.name], nucleotide[0].replace("T", "U"), residue


def _nucleotides(structure: gemmi.Structure, label: str) -> _Nucleotides:
    """The nucleotides of the first model; raises EvaluationError when there are none."""
    bases: list[str] = []
    chains: list[str] = []
    positions: list[int] = []
    numbers: list[int] = []
    atoms: list[tuple[int, str, tuple[float, float, float]]] = []  # residue index, name, xyz
    for chain_name, position, base, residue in _nucleotide_residues(structure):
        atoms += [(len(bases), name, xyz) for name, xyz in _heavy_atoms(residue)]
        bases.append(base)
        chains.append(chain_name)
        positions.append(position)
        numbers.append(residue.seqid.num)
    if not bases:
        raise EvaluationError(f"{label}: no nucleotides (DNA/RNA residues) in the first model")
    atom_residue = np.array([a[0] for a in atoms], dtype=np.int64)
    atom_name = np.array([a[1] for a in atoms], dtype=str)
    atom_xyz = np.array([a[2] for a in atoms], dtype=np.float64).reshape(-1, 3)
    c4 = np.full((len(bases), 3), np.nan)
    is_c4 = atom_name == "C4'"
    c4[atom_residue[is_c4]] = atom_xyz[is_c4]
    return _Nucleotides(np.array(bases), np.array(chains), np.array(positions), np.array(numbers), c4, atom_xyz,
                        atom_residue, atom_name, np.isin(atom_name, BACKBONE_ATOMS))


def _heavy_atoms(residue: gemmi.Residue) -> list[tuple[str, tuple[float, float, float]]]:
    """(normalised name, xyz in Å) of the residue's non-hydrogen atoms, the first listed of each name."""
    found: dict[str, tuple[float, float, float]] = {}
    for atom in residue:
        if not atom.is_hydrogen():
            found.setdefault(_OLD_ATOM_NAMES.get(atom.name, atom.name.replace("*", "'")), atom.pos.tolist())
    return list(found.items())


def _compare(model: _Nucleotides, reference: _Nucleotides) -> dict[str, Any]:
    backbone_ref = reference.atom_xyz[reference.atom_backbone]
    backbone_model = model.atom_xyz[model.atom_backbone]
    atom_coverage = _within(backbone_ref, backbone_model, ATOM_CUTOFF_A)
    atom_precision = _within(backbone_model, backbone_ref, ATOM_CUTOFF_A)

    pairs = _match(reference.c4, model.c4)
    n_pairs = len(pairs.reference)
    same_base = int(np.count_nonzero(_same_base(reference.bases[pairs.reference], model.bases[pairs.model])))
    in_register = int(np.count_nonzero(_in_register(model, reference, pairs)))
    reversed_steps, jump_steps, matched_steps = _steps(model, reference, pairs)
    reversed_residues = int(np.count_nonzero(np.pad(reversed_steps, (0, 1)) | np.pad(reversed_steps, (1, 0))))
    rmsd_atoms, atom_pairs = _atom_rmsd(model, reference, pairs)

    n_ref = int(np.count_nonzero(~np.isnan(reference.c4[:, 0])))
    n_model = int(np.count_nonzero(~np.isnan(model.c4[:, 0])))
    return {
        "backbone_coverage_3A": _fraction(n_pairs, n_ref),
        "backbone_precision_3A": _fraction(n_pairs, n_model),
        "atom_coverage_5A": _fraction(int(atom_coverage.sum()), len(atom_coverage)),
        "atom_precision_5A": _fraction(int(atom_precision.sum()), len(atom_precision)),
        "sequence_recall": _fraction(same_base, n_ref),
        "sequence_precision": _fraction(same_base, n_model),
        "sequence_recall_matched": _fraction(same_base, n_pairs),
        "sequence_precision_matched": _fraction(same_base, n_pairs),
        "register_recall": _fraction(in_register, n_ref),
        "reversed_residues": reversed_residues,
        "reversed_fraction": _fraction(reversed_residues, n_model),
        "rmsd_c4_A": _rms(reference.c4[pairs.reference] - model.c4[pairs.model]),
        "rmsd_all_atoms_A": rmsd_atoms,
        "cutoffs_A": {"residue_c4": RESIDUE_CUTOFF_A, "atom": ATOM_CUTOFF_A},
        "counts": {
            "reference_residues": n_ref,
            "model_residues": n_model,
            "reference_residues_without_c4": len(reference.bases) - n_ref,
            "model_residues_without_c4": len(model.bases) - n_model,
            "reference_backbone_atoms": len(backbone_ref),
            "model_backbone_atoms": len(backbone_model),
            "matched_pairs": n_pairs,
            "register_pairs": in_register,
            "matched_steps": int(np.count_nonzero(matched_steps)),
            "reversed_steps": int(np.count_nonzero(reversed_steps)),
            "backward_jump_steps": int(np.count_nonzero(jump_steps)),
            "rmsd_atom_pairs": atom_pairs,
        },
    }


def _within(points: np.ndarray, others: np.ndarray, cutoff: float) -> np.ndarray:
    """(len(points),) bool: whether some point of ``others`` lies within ``cutoff`` Å."""
    if not len(points) or not len(others):
        return np.zeros(len(points), bool)
    distance, _ = cKDTree(others).query(points, distance_upper_bound=cutoff)
    return np.isfinite(distance)


def _match(reference_c4: np.ndarray, model_c4: np.ndarray) -> _Pairs:
    """One-to-one pairs of residues with C4′ atoms at most RESIDUE_CUTOFF_A apart: the most pairs, then the least
    total distance.

    reference_c4, model_c4: (residues, 3) C4′ positions in Å, NaN rows for residues without one. The assignment is
    solved per connected component of the graph of allowed pairs, so that large structures stay fast.
    """
    ref_rows = np.flatnonzero(~np.isnan(reference_c4[:, 0]))
    model_rows = np.flatnonzero(~np.isnan(model_c4[:, 0]))
    none = _Pairs(np.zeros(0, np.int64), np.zeros(0, np.int64))
    if not len(ref_rows) or not len(model_rows):
        return none
    edges = cKDTree(reference_c4[ref_rows]).sparse_distance_matrix(
        cKDTree(model_c4[model_rows]), RESIDUE_CUTOFF_A, output_type="ndarray")
    if not len(edges):
        return none
    rows, cols = edges["i"].astype(np.int64), edges["j"].astype(np.int64)
    n_nodes = len(ref_rows) + len(model_rows)
    graph = coo_matrix((np.ones(len(rows)), (rows, len(ref_rows) + cols)), shape=(n_nodes, n_nodes))
    component = connected_components(graph, directed=False)[1][rows]
    alone = np.bincount(component)[component] == 1  # the only allowed pair of its component: matched as it is
    shared = np.flatnonzero(~alone)
    order = shared[np.argsort(component[shared], kind="stable")]
    groups = np.split(order, np.flatnonzero(np.diff(component[order])) + 1) if len(order) else []
    matched = [(rows[alone], cols[alone])] + [_assign(rows[g], cols[g], edges["v"][g]) for g in groups]
    ref = ref_rows[np.concatenate([m[0] for m in matched])]
    model = model_rows[np.concatenate([m[1] for m in matched])]
    order = np.argsort(ref)
    return _Pairs(ref[order], model[order])


def _assign(rows: np.ndarray, cols: np.ndarray, distance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The largest matching of least total distance among allowed pairs (rows[k], cols[k]) at ``distance`` Å.

    Forbidden pairs cost more than any matching of allowed ones, so the assignment first maximises the number of
    allowed pairs; they are dropped from the result. Returns (pairs,) row and column ids.
    """
    row_ids, r = np.unique(rows, return_inverse=True)
    col_ids, c = np.unique(cols, return_inverse=True)
    forbidden = RESIDUE_CUTOFF_A * (min(len(row_ids), len(col_ids)) + 1)
    cost = np.full((len(row_ids), len(col_ids)), forbidden)
    cost[r, c] = distance
    a, b = linear_sum_assignment(cost)
    keep = cost[a, b] < forbidden
    return row_ids[a[keep]], col_ids[b[keep]]


def _same_base(bases: np.ndarray, other_bases: np.ndarray) -> np.ndarray:
    """(pairs,) bool: the two residues of a pair have the same, known base."""
    return (bases == other_bases) & (bases != UNKNOWN_BASE)


def _in_register(model: _Nucleotides, reference: _Nucleotides, pairs: _Pairs) -> np.ndarray:
    """(pairs,) bool: the model residue is numbered at the reference residue's position, in its chain or in a
    reference chain of identical base sequence."""
    sequence_of = {name: "".join(reference.bases[reference.chain == name]) for name in np.unique(reference.chain)}
    ref_sequence = np.array([sequence_of[name] for name in reference.chain[pairs.reference]], dtype=object)
    model_sequence = np.array([sequence_of.get(name) for name in model.chain[pairs.model]], dtype=object)
    return (model.number[pairs.model] == reference.position[pairs.reference]) & (model_sequence == ref_sequence)


def _steps(model: _Nucleotides, reference: _Nucleotides,
           pairs: _Pairs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(model residues - 1,) bool arrays over model steps i → i + 1: reversed, backward jump and matched (both
    residues of one model chain, consecutive in the file, matched to residues of one reference chain)."""
    partner = np.full(len(model.bases), -1)
    partner[pairs.model] = pairs.reference
    first, second = partner[:-1], partner[1:]
    matched = (model.chain[:-1] == model.chain[1:]) & (first >= 0) & (second >= 0)
    matched[matched] = reference.chain[first[matched]] == reference.chain[second[matched]]
    back = np.zeros(len(matched), dtype=np.int64)
    back[matched] = reference.position[first[matched]] - reference.position[second[matched]]
    return matched & (back > 0) & (back <= POLARITY_SPAN), matched & (back > POLARITY_SPAN), matched


def _atom_rmsd(model: _Nucleotides, reference: _Nucleotides, pairs: _Pairs) -> tuple[float | None, int]:
    """RMSD (Å) over same-named non-hydrogen atoms of the pairs, and how many atom pairs it covers."""
    names, code = np.unique(np.concatenate([reference.atom_name, model.atom_name]), return_inverse=True)
    ref_code, model_code = code[:len(reference.atom_name)], code[len(reference.atom_name):]
    partner = np.full(len(reference.bases), -1)
    partner[pairs.reference] = pairs.model
    ref_atoms = np.flatnonzero(partner[reference.atom_residue] >= 0)
    ref_keys = partner[reference.atom_residue[ref_atoms]] * len(names) + ref_code[ref_atoms]
    model_keys = model.atom_residue * len(names) + model_code  # unique: one atom per name and residue
    _, in_ref, in_model = np.intersect1d(ref_keys, model_keys, assume_unique=True, return_indices=True)
    return _rms(reference.atom_xyz[ref_atoms[in_ref]] - model.atom_xyz[in_model]), len(in_ref)


def _rms(difference: np.ndarray) -> float | None:
    """Root-mean-square length (Å) of (n, 3) difference vectors; None when n is 0."""
    return float(np.sqrt(np.mean(np.sum(difference**2, axis=1)))) if len(difference) else None


def _fraction(count: int, total: int) -> float | None:
    return count / total if total else None
