"""The `haruspex annotate` command: helix / sheet / nucleic-acid / unassigned maps of a density map."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from haruspex_engine import weights
from haruspex_engine.commands import CommandError, default_prefix
from haruspex_engine.output_prefix import claim_prefix, prepare_output_folder


def add_annotate_parser(commands) -> None:
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
    p.set_defaults(func=run_annotate)


def run_annotate(args: argparse.Namespace) -> int:
    """Run a parsed ``annotate`` command; returns the exit status."""
    from haruspex_engine.annotation import checkpoint
    from haruspex_engine.annotation.annotate import annotate_map
    from haruspex_engine.annotation.outputs import output_paths, write_annotation
    from haruspex_engine.devices import import_tensorflow, loud_warning, select_device
    from haruspex_engine.map_checks import report_map_warnings
    from haruspex_engine.maps import read_map

    t0 = time.perf_counter()
    import_tensorflow()
    if args.batch_size < 1:
        raise CommandError(f"--batch-size must be at least 1, not {args.batch_size}")
    density = read_map(args.map)
    if float(density.data.max()) == float(density.data.min()):
        raise CommandError(f"{args.map}: the map is constant ({float(density.data.min())}); nothing to annotate")
    map_notes = report_map_warnings(density, "annotate")
    t_read = time.perf_counter() - t0
    prepare_output_folder(args.output_dir)  # fail before a long run, not after it
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
    prefix = args.prefix or default_prefix(args.map)
    claim_prefix(args.output_dir, prefix, output_paths(args.output_dir, prefix, density_weighted=True).values(),
                 "annotate", inputs=[args.map])
    annotation = annotate_map(
        density, network.probabilities, batch_size=args.batch_size, compat=args.compat, progress=not args.quiet
    )
    annotation.warnings[:0] = map_notes + device.warnings + notes
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
        prefix,
        density_weighted=args.density_weighted,
        report=report,
        started_at=t0,
    )
    fractions = ", ".join(f"{k} {v:.1%}" for k, v in annotation.class_fractions.items())
    print(f"annotate: done in {time.perf_counter() - t0:.1f} s; {fractions}; outputs in {paths['summary'].parent}",
          file=sys.stderr, flush=True)
    return 0
