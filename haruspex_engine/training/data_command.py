"""The ``haruspex training-data`` subcommand: labelled 70³ training segments from a map and its deposited model."""
from __future__ import annotations

import argparse
import glob
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from haruspex_engine.commands import CommandError, default_prefix
from haruspex_engine.output_prefix import claim_prefix
from haruspex_engine.training import SEGMENT_SIZE, SEGMENT_STRIDE

if TYPE_CHECKING:
    import gemmi
    import numpy as np

    from haruspex_engine.maps import DensityMap

#: Suffix of the JSON report written last in the output directory.
REPORT_SUFFIX = "_training_data.json"
#: A warning when fewer than this fraction of the model's atoms lie inside the map: most of the model then yields
#: no segment, which is expected for a map cut from a larger one and otherwise means model and map are misplaced.
MIN_FRACTION_ON_MAP = 0.5


def add_training_data_parser(commands) -> None:
    """Register ``training-data`` on the CLI's subparsers."""
    p = commands.add_parser(
        "training-data",
        help="label a map from its model (helix / sheet / nucleic acid) and cut 70³ training segments",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=f"""\
Make Haruspex training data from a map and the model built into it, as the Haruspex paper describes:
  1. secondary structure per residue: DSSP-style hydrogen bonds (strand direction ignored) extended by neighbours
     with the same Ramachandran profile; the file's own HELIX/SHEET records first; nucleotides by residue type;
  2. the map is resampled to 1.1 Å when a voxel edge lies outside [1.0, 1.2] Å (as `annotate` does);
  3. each helix / strand / nucleic-acid element whose mean main-chain density exceeds 2 r.m.s.d. labels the voxels
     within 3 Å of its backbone; elements between 1 and 2 r.m.s.d. are masked; voxels of at least 1 r.m.s.d.
     farther than 5 Å from every atom are masked (density nobody modelled); the rest is unassigned;
  4. {SEGMENT_SIZE}³ segments every --stride voxels are kept when they hold ≥ 100 atoms at ≥ 1 r.m.s.d., their
     backbone averages ≥ 3 r.m.s.d. and ≥ 5 % of their voxels are labelled.

Outputs in OUTDIR: PREFIX_NNNNN.npz (density float32 and labels int8 (z, y, x): 0 sheet, 1 helix, 2 nucleic acid,
3 unassigned, -1 masked; what `haruspex train` reads), PREFIX_labels.mrc with --write-labels (the same label values
on the working grid, to check in ChimeraX), and PREFIX{REPORT_SUFFIX} (written last: elements and what was done
with each, segments kept, label fractions, warnings). Several maps can share one OUTDIR under different prefixes.
A model with no atom inside the map's box is refused; one with fewer than {MIN_FRACTION_ON_MAP:.0%} of its atoms
inside draws a warning.""",
    )
    p.add_argument("map", type=Path, help="the density map (MRC/CCP4/.map, optionally .gz)")
    p.add_argument("model", type=Path, help="the model built into it (PDB/mmCIF), in the map's frame")
    p.add_argument("-o", "--output-dir", type=Path, required=True, help="directory for the segments")
    p.add_argument("--prefix", help="file prefix (default: the map's file name without extensions)")
    p.add_argument("--stride", type=int, default=SEGMENT_STRIDE,
                   help=f"voxels between segment corners (default: {SEGMENT_STRIDE})")
    p.add_argument("--jitter", type=int, default=0,
                   help="random shift of each corner by up to this many voxels (default: 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the jitter (default: 0)")
    p.add_argument("--write-labels", action="store_true", help="also write the label map as PREFIX_labels.mrc")
    p.set_defaults(func=run_training_data)


def run_training_data(args: argparse.Namespace) -> int:
    """Run a parsed ``training-data`` command; returns the exit status (errors raise CommandError)."""
    import numpy as np

    from haruspex_engine.annotation.checkpoint import CHANNELS
    from haruspex_engine.maps import read_map, write_map
    from haruspex_engine.model_files import read_model
    from haruspex_engine.summary import describe_input, write_summary
    from haruspex_engine.training.labels import MASKED, paint_labels
    from haruspex_engine.training.segments import save_segments, training_segments
    from haruspex_engine.validation.secondary_structure import label_residues

    if args.stride < 1 or args.jitter < 0:
        raise CommandError("--stride must be at least 1 and --jitter at least 0")
    density = read_map(args.map)
    structure = read_model(args.model)
    prefix = args.prefix or default_prefix(args.map)
    try:
        warnings = _check_model_on_map(density, structure, args.map, args.model)
        labels = paint_labels(density, structure, label_residues(structure))
    except ValueError as exc:
        raise CommandError(f"{args.model}: {exc}") from None
    for warning in warnings:
        print(f"training-data: warning: {warning}", file=sys.stderr, flush=True)
    segments = training_segments(density, labels, structure, stride=args.stride, jitter=args.jitter, seed=args.seed)
    claim_prefix(args.output_dir, prefix, [f"{prefix}_labels.mrc", f"{prefix}{REPORT_SUFFIX}"], "training-data",
                 inputs=[args.map, args.model], numbered=[f"{glob.escape(prefix)}_[0-9][0-9][0-9][0-9][0-9]*.npz"])
    paths = save_segments(segments, args.output_dir, prefix)
    outputs = {"segments": [str(p.resolve()) for p in paths]}
    if args.write_labels:
        path = args.output_dir / f"{prefix}_labels.mrc"
        write_map(path, labels.labels, labels.voxel_size, labels.origin)
        outputs["labels"] = str(path.resolve())
    counts = np.bincount((labels.labels.ravel() + 1).astype(np.intp), minlength=len(CHANNELS) + 1)
    fractions = {"masked": counts[MASKED + 1] / labels.labels.size,
                 **{name: counts[index + 1] / labels.labels.size for index, name in enumerate(CHANNELS)}}
    report = args.output_dir / f"{prefix}{REPORT_SUFFIX}"
    write_summary(report, {
        "input": describe_input(density),
        "model": str(args.model.resolve()),
        "working_voxel_size_xyz": list(labels.voxel_size),
        "rmsd": labels.rmsd,
        "elements": [{**vars(element), "backbone_density": _finite(element.backbone_density)}
                     for element in labels.elements],
        "element_outcomes": dict(Counter(element.outcome for element in labels.elements)),
        "label_fractions": {name: round(float(value), 5) for name, value in fractions.items()},
        "segments": len(segments),
        "outputs": outputs,
        "warnings": warnings,
    })
    print(f"training-data: {len(labels.elements)} elements ({dict(Counter(e.outcome for e in labels.elements))}), "
          f"{len(segments)} segments of {SEGMENT_SIZE}³ kept; report {report}", file=sys.stderr, flush=True)
    return 0


def _check_model_on_map(density: DensityMap, structure: gemmi.Structure, map_path: Path, model_path: Path) -> list[str]:
    """Warnings about how little of the model lies inside the map; CommandError when none of it does.

    An atom is inside when it lies in the box spanned by the map's voxel centres (labels.on_grid), the only place
    where it can be labelled or counted by a segment. Fewer than MIN_FRACTION_ON_MAP of the atoms inside: a warning.
    """
    import numpy as np

    from haruspex_engine.training.labels import model_atoms, on_grid

    xyz = model_atoms(structure).xyz
    inside = int(np.count_nonzero(on_grid(density, xyz)))
    spans = (f"model atoms span {_span(xyz.min(axis=0), xyz.max(axis=0))}, "
             f"the map's box {_span(*_voxel_centre_box(density))}")
    if inside == 0:
        raise CommandError(f"{model_path}: no atom lies inside the map {map_path} ({spans}): model and map are "
                           "probably from different origins, or this is not the map the model was built into")
    if inside < MIN_FRACTION_ON_MAP * len(xyz):
        return [f"only {inside} of {len(xyz)} atoms of {model_path} lie inside the map {map_path} ({spans}); "
                "segments come from that part only (expected for a map cut from a larger one; otherwise model "
                "and map are probably from different origins)"]
    return []


def _voxel_centre_box(density: DensityMap) -> tuple[np.ndarray, np.ndarray]:
    """(x, y, z) Å of the first and the last voxel centre of ``density``."""
    import numpy as np

    first = np.asarray(density.first_voxel_position, dtype=np.float64)
    return first, first + (np.asarray(density.data.shape[::-1]) - 1) * np.asarray(density.voxel_size)


def _span(low: np.ndarray, high: np.ndarray) -> str:
    """"(x, y, z) to (x, y, z) Å (x, y, z)" for messages."""
    return " to ".join("(" + ", ".join(f"{v:.1f}" for v in corner) + ")" for corner in (low, high)) + " Å (x, y, z)"


def _finite(value: float) -> float | None:
    """A density level for JSON: rounded, or None when it is NaN (no backbone atom on the grid)."""
    return None if value != value else round(float(value), 3)
