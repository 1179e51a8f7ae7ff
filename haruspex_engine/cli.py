"""The `haruspex` command line: the worker that Scipion protocols launch, usable on its own.

    haruspex annotate MAP -o OUTDIR        helix / sheet / nucleic-acid / unassigned maps of a density map
    haruspex detect-na MAP --resolution R -o OUTDIR
                                           sugar / phosphate / base-type maps (CryoREAD's detection networks)
    haruspex build-na DETECTION_SUMMARY    a DNA/RNA model from detect-na's maps, with or without the sequences
    haruspex evaluate-na MODEL REFERENCE   compare a nucleic-acid model with a reference (coverage, sequence, RMSD)
    haruspex refine-na MODEL MAP --resolution R
                                           refine a model into its map with servalcat (chain breaks kept open)
    haruspex training-data MAP MODEL -o DIR
                                           labelled 70³ training segments (the Haruspex paper's labelling)
    haruspex train SEGMENTS_DIR -o PREFIX  train or fine-tune the Haruspex network (published checkpoint layout)
    haruspex validate MODEL ANNOTATION     per-residue secondary structure of a model against an annotation
    haruspex weights download|verify|path  the published network weights
    haruspex example OUT.mrc               write the built-in example map (simulated from ideal helices and a sheet)
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from haruspex_engine import __version__, weights
from haruspex_engine.nucleic.building.build_command import add_build_parser
from haruspex_engine.nucleic.building.evaluate_command import add_evaluate_parser
from haruspex_engine.nucleic.detection.detect_command import add_detect_parser
from haruspex_engine.refine.refine_command import add_refine_parser
from haruspex_engine.training.data_command import add_training_data_parser
from haruspex_engine.training.train_command import add_train_parser
from haruspex_engine.validation.validate_command import add_validate_parser

EXIT_FAILED = 1


class CommandError(Exception):
    """A failure reported as one `haruspex: error: ...` line."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="haruspex",
        description="Cryo-EM map annotation with the published Haruspex network (Mostosi et al., Angew. Chem. 2020) "
        "and nucleic-acid detection with the published CryoREAD networks (Wang et al., Nat. Methods 2023).",
        epilog="Run `haruspex COMMAND --help` for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_annotate_parser(commands)
    add_detect_parser(commands)
    add_build_parser(commands)
    add_evaluate_parser(commands)
    add_refine_parser(commands)
    add_training_data_parser(commands)
    add_train_parser(commands)
    add_validate_parser(commands)
    weights.add_weights_parser(commands)
    example = commands.add_parser(
        "example",
        help="write the built-in example map",
        description="Write the built-in example map: three ideal α-helices and a 4-stranded β-sheet simulated at "
        "4 Å resolution on a 1.1 Å grid (about 40 Å across). Annotating it should mark the helices and the sheet.",
    )
    example.add_argument("output", type=Path, help="MRC file to write")
    example.set_defaults(func=_run_example)
    return parser


def _add_annotate_parser(commands) -> None:
    p = commands.add_parser(
        "annotate",
        help="annotate a density map into helix / sheet / nucleic-acid / unassigned probability maps",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Annotate a cryo-EM density map with the Haruspex network.

The map (MRC/CCP4/.map, optionally .gz) is used with raw intensities, as the network was trained. Maps whose voxel
size lies outside [1.0, 1.2] Å are resampled to 1.1 Å (cubic spline) and the predictions resampled back. Outputs,
on the input map's grid with its voxel size and origin:
  PREFIX_helix.mrc, PREFIX_sheet.mrc, PREFIX_nucleic.mrc, PREFIX_unassigned.mrc   probabilities (0..1)
  PREFIX_labels.mrc       most likely class: 0 unassigned, 1 helix, 2 sheet, 3 nucleic acid
  PREFIX_*_weighted.mrc   probability x density (with --density-weighted; the original's -d)
  PREFIX_summary.json     class fractions, device, timings, warnings (written last)

Weights: --checkpoint, else $HARUSPEX_CHECKPOINT, else the cache filled by `haruspex weights download`.
Without the published weights, --demo-model runs the small demo network bundled with this package (trained by this
project on simulated maps, not the published network): good enough to try the tool, not for real maps.""",
    )
    p.add_argument("map", type=Path, help="input density map")
    p.add_argument("-o", "--output-dir", type=Path, default=Path("."), help="output directory (default: .)")
    p.add_argument("--prefix", help="output file prefix (default: the map's file name without extensions)")
    p.add_argument("--batch-size", type=int, default=8,
                   help="40³ tiles per forward pass (default: 8; larger batches need more memory and are not faster "
                   "on a CPU)")
    p.add_argument(
        "--compat",
        action="store_true",
        help="reproduce the original tool exactly: its tile placement (the last tiles along each axis land up to "
        "10 voxels off) and its unpredicted borders (10 voxels low, 20 high, left at 0). Default: correct "
        "placement and predictions for every voxel.",
    )
    p.add_argument("--density-weighted", action="store_true", help="also write probability x density maps")
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "gpu"),
        default="auto",
        help="auto: GPU when TensorFlow sees one, else CPU with a warning; gpu: fail without a GPU (default: auto)",
    )
    p.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default="fp32",
        help="fp32 reproduces the published network; bf16 (bfloat16 weights and activations) is faster on CPUs with "
        "AVX512-BF16 and on GPUs, with small differences in the probabilities: see BENCHMARKS.md (default: fp32)",
    )
    p.add_argument(
        "--algorithm",
        choices=("auto", "winograd", "direct"),
        default="auto",
        help="convolution algorithm. winograd: 1.6x faster on CPUs, in fp32 equal to direct within float32 rounding "
        "(max |Δp| ~1e-5); direct: plain convolutions, in fp32 bit-identical to the original graph. auto: winograd "
        "on CPU, direct on GPU (default: auto)",
    )
    weights_choice = p.add_mutually_exclusive_group()
    weights_choice.add_argument("--checkpoint", type=Path,
                                help="checkpoint prefix, e.g. /data/hpx_190116/model.ckpt-40000")
    weights_choice.add_argument(
        "--demo-model", action="store_true",
        help="use the bundled demo model instead of the published network: a network of a quarter of the published "
        "width trained by this project on simulated maps of ideal helices, sheets, coil and RNA/DNA, to try the tool "
        "offline. Its outputs are labelled DEMO MODEL; its recall and precision are in "
        "haruspex_engine/demo_model/demo_model.json. Not for real maps.")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=_run_annotate)


#: Extensions a map file name may end with, removed in this order for default output prefixes (compression first).
MAP_SUFFIXES = (".gz", ".bz2", ".mrc", ".map", ".ccp4", ".mrcs")


def default_prefix(path: Path, suffixes: tuple[str, ...] = MAP_SUFFIXES) -> str:
    """File name without its extension(s) among ``suffixes`` (checked in order): emd_1234.map.gz -> emd_1234;
    with model_files.MODEL_SUFFIXES, 6v5b_model.cif.gz -> 6v5b_model."""
    name = path.name
    for suffix in suffixes:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name or path.stem


def _run_annotate(args: argparse.Namespace) -> int:
    from haruspex_engine.annotation import checkpoint
    from haruspex_engine.annotation.annotate import annotate_map
    from haruspex_engine.annotation.outputs import write_annotation
    from haruspex_engine.devices import import_tensorflow, loud_warning, select_device
    from haruspex_engine.maps import read_map

    t0 = time.perf_counter()
    import_tensorflow()
    if args.batch_size < 1:
        raise CommandError(f"--batch-size must be at least 1, not {args.batch_size}")
    density = read_map(args.map)
    if float(density.data.max()) == float(density.data.min()):
        raise CommandError(f"{args.map}: the map is constant ({float(density.data.min())}); nothing to annotate")
    t_read = time.perf_counter() - t0
    args.output_dir.mkdir(parents=True, exist_ok=True)  # fail before a long run, not after it
    if args.demo_model:
        from haruspex_engine.demo_model import DEMO_LABEL, DEMO_PREFIX

        prefix_path = DEMO_PREFIX
    else:
        prefix_path = args.checkpoint or weights.locate_checkpoint()
    network_weights = checkpoint.read_network_weights(prefix_path)  # refuses test weights outside the test suite
    notes: list[str] = []
    if checkpoint.is_test_weights(prefix_path):
        notes.append("RANDOM TEST WEIGHTS: these maps are meaningless (test run)")
        loud_warning(notes[-1])
    if args.demo_model:
        notes.append(DEMO_LABEL)
        loud_warning(notes[-1])
    device = select_device(args.device)
    from haruspex_engine.annotation.network import HaruspexNetwork

    algorithm = None if args.algorithm == "auto" else args.algorithm
    network = HaruspexNetwork(network_weights, precision=args.precision, device=device.name, algorithm=algorithm)
    grid = " x ".join(str(n) for n in density.data.shape[::-1])
    voxel = " x ".join(f"{v:.3f}" for v in density.voxel_size)
    print(f"annotate: {args.map}: {grid} voxels of {voxel} Å; {device.label}, {args.precision}, "
          f"{network.algorithm} convolutions",
          file=sys.stderr, flush=True)
    annotation = annotate_map(
        density, network.probabilities, batch_size=args.batch_size, compat=args.compat, progress=not args.quiet
    )
    annotation.warnings[:0] = device.warnings + notes
    annotation.timings_s["read"] = t_read
    report = {
        "device": device.label,
        "precision": args.precision,
        "algorithm": network.algorithm,
        "compat": args.compat,
        "checkpoint": str(Path(prefix_path).resolve()),
        "network": "demo" if args.demo_model else "checkpoint",
        "network_width": checkpoint.network_width(network_weights),
    }
    paths = write_annotation(
        annotation,
        density,
        args.output_dir,
        args.prefix or default_prefix(args.map),
        density_weighted=args.density_weighted,
        report=report,
        started_at=t0,
    )
    fractions = ", ".join(f"{k} {v:.1%}" for k, v in annotation.class_fractions.items())
    print(f"annotate: done in {time.perf_counter() - t0:.1f} s; {fractions}; outputs in {paths['summary'].parent}",
          file=sys.stderr, flush=True)
    return 0


def _run_example(args: argparse.Namespace) -> int:
    from haruspex_engine.simulate import write_example_map

    path = write_example_map(args.output)
    print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    from haruspex_engine.checkpoints import CheckpointError
    from haruspex_engine.devices import DeviceError
    from haruspex_engine.maps import MapError
    from haruspex_engine.model_files import ModelFileError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except weights.WeightsMissingError as exc:
        print(f"haruspex: error: {exc}", file=sys.stderr)
        return weights.EXIT_NO_WEIGHTS
    except (CommandError, MapError, ModelFileError, CheckpointError, DeviceError, weights.WeightsError) as exc:
        print(f"haruspex: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:  # e.g. an output directory that cannot be created or written
        where = exc.filename or ""
        print(f"haruspex: error: {where}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
