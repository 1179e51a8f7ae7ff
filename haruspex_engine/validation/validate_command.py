"""The ``haruspex validate`` subcommand: an atomic model checked residue by residue against a Haruspex annotation."""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from haruspex_engine.atomic_files import atomic_path
from haruspex_engine.commands import CommandError, default_prefix
from haruspex_engine.output_prefix import claim_prefix
from haruspex_engine.validation import BACKBONE_LEVEL, CLASS_ORDER, ValidationError

if TYPE_CHECKING:  # the command line registers this module: gemmi, numpy and the maps load when it runs
    import gemmi
    import numpy as np

    from haruspex_engine.maps import DensityMap
    from haruspex_engine.validation.validate import ResidueValidation

#: The fix named when a probability map the summary lists is neither beside it nor where it says.
MOVED_MAPS_FIX = "keep the maps beside their summary (copy or move the annotation folder whole) or run annotate again"
TABLE_COLUMNS = ("chain", "residue_number", "residue_name", "model_class", "predicted_class",
                 *(f"p_{name}" for name in CLASS_ORDER), "model_class_probability", "backbone_density_rmsd", "counted",
                 "agreement")


def add_validate_parser(commands) -> None:
    """Register ``validate`` on the CLI's subparsers."""
    p = commands.add_parser(
        "validate",
        help="check a model's per-residue secondary structure against a Haruspex annotation (recall, precision)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=f"""\
Validate an atomic model against the Haruspex annotation of its map, as the Haruspex paper tested its network
("Network Performance Test"): per residue, the class the model says (helix, sheet, nucleic acid, unassigned;
hydrogen bonds and torsions, nucleotides by type) against the class the annotation predicts (largest mean
probability over the residue's backbone atoms, trilinear), counted only where the residue's mean backbone density
is at least {BACKBONE_LEVEL:g} r.m.s.d. of the map.

ANNOTATION is `haruspex annotate`'s PREFIX_summary.json, or the directory holding it. The density map is the one
the summary names as its input, or --map (it must be on the annotation's grid).

Metrics over counted residues: tp (predicted = model class, not unassigned), fp (another class predicted),
fn (predicted unassigned where the model has a class), tn; recall tp/(tp+fn), precision tp/(tp+fp), F1; the same
per class (helix, sheet, nucleic), and the confusion matrix.

Outputs in OUTDIR:
  PREFIX_validation.csv   one row per validated residue: chain, residue number, name, model and predicted class,
                          mean class probabilities (p_helix ...), the one of the model's class, backbone density
                          (r.m.s.d.), counted (1/0), agreement (1/0); values empty off the map
  PREFIX_validation.cif   the model; B-factor of every atom = its residue's probability of the model's class
                          (0..1; 0 for residues not validated: waters, ligands, residues off the map)
  PREFIX_validation.json  counts, metrics, per-chain agreement and disagreeing residues, warnings (written last)""",
    )
    p.add_argument("model", type=Path, help="the model (PDB/mmCIF, optionally gzipped)")
    p.add_argument("annotation", type=Path, help="annotate's PREFIX_summary.json, or its directory")
    p.add_argument("--map", type=Path, help="the density map (default: the annotation's input map)")
    p.add_argument("--min-backbone-density", type=float, default=BACKBONE_LEVEL, metavar="RMSD",
                   help=f"count residues whose mean backbone density reaches this many r.m.s.d. "
                   f"(default: {BACKBONE_LEVEL:g}, the paper's)")
    p.add_argument("-o", "--output-dir", type=Path, default=Path("."), help="output directory (default: .)")
    p.add_argument("--prefix", help="output file prefix (default: the model's file name without extensions)")
    p.set_defaults(func=run_validate)


def run_validate(args: argparse.Namespace) -> int:
    """Run a parsed ``validate`` command; returns the exit status (errors raise CommandError)."""
    from haruspex_engine.model_files import MODEL_SUFFIXES, read_model
    from haruspex_engine.summary import SummaryError, describe_input, find_summary, read_summary, write_summary
    from haruspex_engine.validation.validate import validate_model, validation_report

    t0 = time.perf_counter()
    structure = read_model(args.model)
    try:
        summary_path = find_summary(args.annotation, CLASS_ORDER, "annotate")
        annotation = read_summary(summary_path, "annotate")
        probabilities = read_class_maps(summary_path, annotation)
        density = read_density(summary_path, annotation, args.map)
        validation = validate_model(structure, probabilities, density, level=args.min_backbone_density,
                                    model_path=str(args.model))
    except (ValidationError, SummaryError) as exc:
        raise CommandError(str(exc)) from None
    prefix = args.prefix or default_prefix(args.model, MODEL_SUFFIXES)
    outdir = claim_prefix(args.output_dir, prefix,
                          [f"{prefix}_validation.{suffix}" for suffix in ("json", "csv", "cif")], "validate",
                          inputs=[args.model, args.annotation])
    report_path = outdir / f"{prefix}_validation.json"
    table_path = write_table(validation, outdir / f"{prefix}_validation.csv")
    model_path = write_scored_model(structure, validation, outdir / f"{prefix}_validation.cif")
    report = validation_report(validation)
    report["warnings"] += [f"annotation: {w}" for w in annotation.get("warnings", [])]
    write_summary(report_path, {
        "model": str(args.model.resolve()),
        "annotation": str(summary_path.resolve()),
        "map": describe_input(density),
        "outputs": {"table": str(table_path), "model": str(model_path)},
        **report,
        "timings_s": {"total": round(time.perf_counter() - t0, 3)},
    })
    overall = report["metrics"]["overall"]
    scores = ", ".join(f"{key} {percent(overall[key])}" for key in ("recall", "precision", "f1"))
    _say(f"{report['counts']['counted']} of {len(validation)} residues counted (backbone density >= "
         f"{args.min_backbone_density:g} r.m.s.d.); {scores}; report {report_path}")
    for warning in report["warnings"]:
        _say(f"warning: {warning}")
    return 0


def read_class_maps(summary_path: Path, annotation: dict) -> dict[str, DensityMap]:
    """Class name -> probability map, for every CLASS_ORDER class the summary lists (found by
    :func:`haruspex_engine.summary.listed_file`: beside the summary first). ValidationError naming the summary when a
    class is not listed, SummaryError when its file is missing; MapError for an unreadable map."""
    from haruspex_engine.maps import read_map
    from haruspex_engine.summary import listed_file

    outputs = annotation.get("outputs")
    outputs = outputs if isinstance(outputs, dict) else {}
    missing = [name for name in CLASS_ORDER if not isinstance(outputs.get(name), str)]
    if missing:
        raise ValidationError(f"{summary_path}: lists no {', '.join(missing)} probability map; is it the summary of "
                              "`haruspex annotate`?")
    paths = {name: listed_file(summary_path, f"{name} probability map", outputs[name], MOVED_MAPS_FIX)
             for name in CLASS_ORDER}
    return {name: read_map(path) for name, path in paths.items()}


def read_density(summary_path: Path, annotation: dict, given: Path | None) -> DensityMap:
    """The density map: ``given``, else the annotation's input map (found by
    :func:`haruspex_engine.summary.listed_file`). ValidationError or SummaryError when neither is there."""
    from haruspex_engine.maps import read_map
    from haruspex_engine.summary import listed_file

    if given is not None:
        return read_map(given)
    listed = (annotation.get("input") or {}).get("path") if isinstance(annotation.get("input"), dict) else None
    if not listed:
        raise ValidationError(f"{summary_path}: names no input map; give the density map with --map")
    return read_map(listed_file(summary_path, "input map", listed, "give the density map with --map"))


def table_rows(validation: ResidueValidation) -> list[dict[str, str]]:
    """The per-residue table (TABLE_COLUMNS) as text; probabilities and densities empty off the map."""
    from haruspex_engine.validation.validate import CLASS_OF_LABEL

    rows = []
    counted, on_map, agrees = validation.counted, validation.on_map, validation.agrees
    model_probability = model_class_probability(validation)
    for k in range(len(validation)):
        row = {"chain": validation.chain[k], "residue_number": validation.seqid[k],
               "residue_name": validation.name[k], "model_class": CLASS_OF_LABEL[int(validation.model_label[k])],
               "predicted_class": CLASS_OF_LABEL[int(validation.predicted_label[k])] if on_map[k] else "",
               "model_class_probability": f"{model_probability[k]:.4f}" if on_map[k] else "",
               "backbone_density_rmsd": f"{validation.backbone_density[k]:.3f}" if on_map[k] else "",
               "counted": str(int(counted[k])), "agreement": str(int(agrees[k])) if on_map[k] else ""}
        for name, value in zip(CLASS_ORDER, validation.probabilities[k]):
            row[f"p_{name}"] = f"{value:.4f}" if on_map[k] else ""
        rows.append(row)
    return rows


def write_table(validation: ResidueValidation, path: Path) -> Path:
    """Write the per-residue CSV atomically; returns ``path``."""
    with atomic_path(path) as partial, partial.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=TABLE_COLUMNS)
        writer.writeheader()
        writer.writerows(table_rows(validation))
    return path


def model_class_probability(validation: ResidueValidation) -> np.ndarray:
    """(n,) each residue's mean probability of the class its model says; 0 off the map."""
    import numpy as np

    from haruspex_engine.validation.validate import CLASS_OF_LABEL

    column = np.array([CLASS_ORDER.index(CLASS_OF_LABEL[int(label)]) for label in validation.model_label], dtype=int)
    values = validation.probabilities[np.arange(len(validation)), column] if len(validation) else np.zeros(0)
    return np.where(validation.on_map, values, 0.0)


def write_scored_model(structure: gemmi.Structure, validation: ResidueValidation, path: Path) -> Path:
    """Write a copy of ``structure`` as mmCIF with every atom's B-factor set to its residue's probability of the
    model class (0 for residues not validated; anisotropic B-factors removed); returns ``path``."""
    import gemmi

    from haruspex_engine.nucleic.building.atoms import write_model

    scored = structure.clone()
    value_of_row = dict(zip(validation.row.tolist(), model_class_probability(validation).tolist()))
    row = 0
    for chain in scored[0]:
        for residue in chain:
            for atom in residue:
                atom.b_iso = float(value_of_row.get(row, 0.0))
                atom.aniso = gemmi.SMat33f(0, 0, 0, 0, 0, 0)  # anisotropic B-factors would contradict the scores
            row += 1
    return write_model(scored, path)


def percent(value: float | None) -> str:
    """A fraction as a percentage with one decimal, or "n/a"."""
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _say(message: str) -> None:
    print(f"validate: {message}", file=sys.stderr, flush=True)

