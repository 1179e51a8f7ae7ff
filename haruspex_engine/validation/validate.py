"""Per-residue validation of an atomic model against a Haruspex annotation, scored as the Haruspex paper scores its
network ("Network Performance Test").

Definitions (the paper's wording leaves the details open; these are the choices):
- validated residues: residues of the first model with at least one backbone (main-chain) atom, N CA C O of amino
  acids and P OP1 OP2 O5' C5' C4' C3' O3' of nucleotides (``training.labels.model_atoms``). Waters, ions and
  ligands are not validated.
- model class: the residue's label from ``secondary_structure.label_residues`` (the labelling used for training).
- predicted class: for each class, the mean over the residue's backbone atoms of the class probability map,
  interpolated trilinearly at each atom; the class with the largest mean (ties: helix, sheet, nucleic acid,
  unassigned, in that order). Atoms off the map grid are left out; a residue with none on it gets no prediction.
- backbone density: the mean density at the residue's backbone atoms (trilinear), in units of the map's r.m.s.d.
  (standard deviation about the mean, ``training.labels.map_rmsd``; the header's ``rms``). As in the paper, only
  residues with backbone density >= 1.0 r.m.s.d. are *counted* in the metrics; every residue is in the table.
- metrics over counted residues, as the paper's totals imply (tp + fp + fn + tn = all residues):
  tp: predicted class = model class, not unassigned; fp: a class predicted (not unassigned) that differs from the
  model's; fn: predicted unassigned where the model has a class; tn: both unassigned.
  recall = tp / (tp + fn), precision = tp / (tp + fp), F1 their harmonic mean. Per class c (helix, sheet, nucleic
  acid): tp_c = predicted c and model c, fp_c = predicted c and model not c, fn_c = model c and predicted not c.
  agreement: fraction of counted residues whose predicted class equals the model class (unassigned included).
  A fraction with nothing to count is None.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import gemmi
import numpy as np

from haruspex_engine.maps import DensityMap, describe_grid, same_grid
from haruspex_engine.training.labels import density_at, map_rmsd, model_atoms
from haruspex_engine.validation import BACKBONE_LEVEL, CLASS_ORDER, ValidationError
from haruspex_engine.validation.secondary_structure import HELIX, NUCLEIC, SHEET, UNASSIGNED, label_residues

#: Label value (``secondary_structure`` constants, the annotate label-map values) of each class name.
LABEL_OF_CLASS = {"helix": HELIX, "sheet": SHEET, "nucleic": NUCLEIC, "unassigned": UNASSIGNED}
CLASS_OF_LABEL = {label: name for name, label in LABEL_OF_CLASS.items()}
#: Classes scored one by one (unassigned is the "no prediction" of the paper's fn).
SCORED_CLASSES = ("helix", "sheet", "nucleic")
NO_PREDICTION = -1  # predicted label of a residue with no backbone atom on the map grid


@dataclass(frozen=True)
class ResidueValidation:
    """Per-residue validation of a model, one row per validated residue (model order).

    row: (n,) position of each residue in the first model, counting the residues of all chains in order.
    chain, seqid, name: (n,) residue chain names, seqids as text ("42", "42A") and residue names.
    model_label, predicted_label: (n,) int label values (HELIX ...); predicted NO_PREDICTION off the map.
    probabilities: float64 (n, 4) mean class probabilities, columns CLASS_ORDER; NaN off the map.
    backbone_density: float64 (n,) mean backbone density in r.m.s.d. units; NaN off the map.
    rmsd: the map's r.m.s.d. (density units); level: the r.m.s.d. level residues must reach to be counted.
    """

    row: np.ndarray
    chain: np.ndarray
    seqid: np.ndarray
    name: np.ndarray
    model_label: np.ndarray
    predicted_label: np.ndarray
    probabilities: np.ndarray
    backbone_density: np.ndarray
    rmsd: float
    level: float

    def __len__(self) -> int:
        return len(self.chain)

    @property
    def on_map(self) -> np.ndarray:
        """bool (n,): residues with a backbone atom on the map grid (they have a prediction)."""
        return self.predicted_label != NO_PREDICTION

    @property
    def counted(self) -> np.ndarray:
        """bool (n,): residues the metrics count (backbone density >= level)."""
        with np.errstate(invalid="ignore"):
            return self.on_map & (self.backbone_density >= self.level)

    @property
    def agrees(self) -> np.ndarray:
        """bool (n,): predicted class equals model class (False off the map)."""
        return self.predicted_label == self.model_label


def check_same_grid(maps: Mapping[str, DensityMap]) -> None:
    """ValidationError naming two files when the maps do not share shape, voxel size and origin (``maps.same_grid``)."""
    items = list(maps.items())
    if not items:
        return
    first_name, first = items[0]
    for name, other in items[1:]:
        if not same_grid(other, first):
            raise ValidationError(
                f"{other.path or name}: grid {describe_grid(other)} differs from that of "
                f"{first.path or first_name} ({describe_grid(first)}); the annotation and the map must share one "
                "grid (annotate the map the model is validated against)")


def validate_model(
    structure: gemmi.Structure,
    probabilities: Mapping[str, DensityMap],
    density: DensityMap,
    level: float = BACKBONE_LEVEL,
    model_path: str = "",
) -> ResidueValidation:
    """Validate ``structure`` (first model) against class ``probabilities`` (one map per CLASS_ORDER name) of
    ``density``; rules in the module docstring. level: r.m.s.d. level of counted residues. model_path: names the
    model in messages. ValidationError for a model without protein or nucleotides, a missing class, maps on
    different grids or a constant density map."""
    missing = [name for name in CLASS_ORDER if name not in probabilities]
    if missing:
        raise ValidationError(f"annotation: no {', '.join(missing)} probability map")
    check_same_grid({"density": density, **{name: probabilities[name] for name in CLASS_ORDER}})
    rmsd = map_rmsd(density)
    if rmsd <= 0:
        raise ValidationError(f"{density.path or 'density map'}: constant density; r.m.s.d. levels are undefined")
    atoms = model_atoms(structure)
    labels = label_residues(structure)
    where = model_path or structure.name or "model"
    if len(labels) != len(atoms.residues):  # both walk the first model in order; a mismatch is a bug
        raise AssertionError(f"{where}: {len(labels)} residue labels for {len(atoms.residues)} residues")

    residue = atoms.residue[atoms.backbone]
    xyz = atoms.xyz[atoms.backbone]
    rows = np.unique(residue)
    if len(rows) == 0:
        raise ValidationError(f"{where}: no amino-acid or nucleotide residue with backbone atoms to validate")
    # Column 0: density, then one column per class; mean over each residue's backbone atoms on the grid.
    values = np.column_stack([density_at(density, xyz) / rmsd]
                             + [density_at(probabilities[name], xyz) for name in CLASS_ORDER])
    on_grid = np.isfinite(values[:, 0])
    size = len(atoms.residues)
    counts = np.bincount(residue[on_grid], minlength=size)[rows]
    sums = np.column_stack([np.bincount(residue[on_grid], weights=column[on_grid], minlength=size)[rows]
                            for column in values.T])
    means = np.divide(sums, counts[:, None], out=np.full(sums.shape, np.nan), where=counts[:, None] > 0)
    class_means = means[:, 1:]
    label_of_column = np.array([LABEL_OF_CLASS[name] for name in CLASS_ORDER])
    best = np.argmax(np.nan_to_num(class_means, nan=-1.0), axis=1)  # argmax takes the first column of a tie
    predicted = np.where(counts > 0, label_of_column[best], NO_PREDICTION)
    kept = [labels[row] for row in rows]
    return ResidueValidation(
        row=rows,
        chain=np.array([r.chain for r in kept], dtype=str),
        seqid=np.array([r.seqid for r in kept], dtype=str),
        name=np.array([r.name for r in kept], dtype=str),
        model_label=np.array([r.label for r in kept], dtype=int),
        predicted_label=predicted.astype(int),
        probabilities=class_means,
        backbone_density=means[:, 0],
        rmsd=rmsd,
        level=float(level),
    )


def _fraction(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _scores(tp: int, fp: int, fn: int) -> dict:
    recall, precision = _fraction(tp, tp + fn), _fraction(tp, tp + fp)
    f1 = (2 * recall * precision / (recall + precision)
          if recall is not None and precision is not None and recall + precision > 0 else None)
    return {"tp": tp, "fp": fp, "fn": fn, "recall": recall, "precision": precision, "f1": f1}


def residue_metrics(model_label: np.ndarray, predicted_label: np.ndarray) -> dict:
    """The paper's per-residue metrics (module docstring) of counted residues' model and predicted labels (n,).

    Returns {"residues", "overall": {tp, fp, fn, tn, recall, precision, f1, agreement},
    "per_class": {class: {tp, fp, fn, recall, precision, f1, residues}}, "confusion": {model class: {predicted
    class: count}}}.
    """
    model = np.asarray(model_label, dtype=int)
    predicted = np.asarray(predicted_label, dtype=int)
    if np.any(predicted == NO_PREDICTION):
        raise ValueError("residues without a prediction cannot be scored")
    assigned_model, assigned_predicted = model != UNASSIGNED, predicted != UNASSIGNED
    same = model == predicted
    overall = _scores(tp=int(np.sum(same & assigned_model)),
                      fp=int(np.sum(assigned_predicted & ~same)),
                      fn=int(np.sum(~assigned_predicted & assigned_model)))
    overall["tn"] = int(np.sum(~assigned_predicted & ~assigned_model))
    overall["agreement"] = _fraction(int(np.sum(same)), len(model))
    per_class = {}
    for name in SCORED_CLASSES:
        label = LABEL_OF_CLASS[name]
        is_model, is_predicted = model == label, predicted == label
        per_class[name] = {**_scores(tp=int(np.sum(is_model & is_predicted)), fp=int(np.sum(is_predicted & ~is_model)),
                                     fn=int(np.sum(is_model & ~is_predicted))),
                           "residues": int(np.sum(is_model))}
    confusion = {CLASS_OF_LABEL[m]: {CLASS_OF_LABEL[p]: int(np.sum((model == m) & (predicted == p)))
                                     for p in (LABEL_OF_CLASS[c] for c in CLASS_ORDER)}
                 for m in (LABEL_OF_CLASS[c] for c in CLASS_ORDER)}
    return {"residues": len(model), "overall": overall, "per_class": per_class, "confusion": confusion}


def validation_report(validation: ResidueValidation) -> dict:
    """Counts, metrics (over counted residues) and per-chain agreement of ``validation``, JSON-ready."""
    counted, on_map = validation.counted, validation.on_map
    chains = []
    for chain in dict.fromkeys(validation.chain.tolist()):
        rows = validation.chain == chain
        chain_counted = rows & counted
        disagree = chain_counted & ~validation.agrees
        chains.append({"id": chain, "residues": int(rows.sum()), "counted": int(chain_counted.sum()),
                       "agreement": _fraction(int((chain_counted & validation.agrees).sum()), int(chain_counted.sum())),
                       "disagreements": [str(s) for s in validation.seqid[disagree]]})
    warnings = []
    if not on_map.all():
        warnings.append(f"{int((~on_map).sum())} of {len(validation)} residues have no backbone atom on the map grid "
                        "(model outside the map?); they have no prediction")
    if not counted.any():
        warnings.append(f"no residue has a mean backbone density of at least {validation.level:g} r.m.s.d.: nothing "
                        "to score (does the model fit the map?)")
    return {
        "rmsd": validation.rmsd,
        "backbone_level_rmsd": validation.level,
        "counts": {"residues": len(validation), "on_map": int(on_map.sum()), "counted": int(counted.sum()),
                   "below_level": int((on_map & ~counted).sum()), "off_map": int((~on_map).sum())},
        "metrics": residue_metrics(validation.model_label[counted], validation.predicted_label[counted]),
        "chains": chains,
        "warnings": warnings,
    }
