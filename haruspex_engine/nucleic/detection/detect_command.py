"""The ``haruspex detect-na`` subcommand: CryoREAD's two-stage nucleic-acid detection of a density map."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from haruspex_engine import __version__, weights
from haruspex_engine.commands import CommandError, default_prefix
from haruspex_engine.nucleic.detection.demo_detector import (
    DEMO_BASE_TYPE_WEIGHTS,
    DEMO_DETECTOR_LABEL,
    DEMO_DETECTOR_WEIGHTS,
    DEMO_RESOLUTION_A,
)
from haruspex_engine.output_prefix import claim_prefix, prepare_output_folder

DEFAULT_STRIDE = 32  # voxels (= Å on the 1 Å working grid)
WEIGHT_SET_CHOICES = {
    "auto": None,
    "default": "cryoread-default",
    "paper": "cryoread-paper",
    "0-3A": "cryoread-0-3A",
    "5-10A": "cryoread-5-10A",
}


def add_detect_parser(commands) -> None:
    """Register ``detect-na`` on the CLI's subparsers."""
    p = commands.add_parser(
        "detect-na",
        help="detect nucleic-acid sugar / phosphate / base / base-type density (CryoREAD's networks)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Detect nucleic acids in a cryo-EM map with the two-stage networks of CryoREAD (Wang, Terashi & Kihara,
Nat. Methods 2023), on the CPU or a GPU.

The map (MRC/CCP4/.map, optionally .gz) is resampled to a 1 Å grid (trilinear), shifted up when --contour is
negative, cropped to its positive region, clipped at its log-histogram 98 % point and scaled to [0, 1], exactly as
the original. 64³ boxes are scanned at --stride; boxes with almost no density above the contour are skipped.
Stage 1 (averaged over overlapping boxes) feeds stage 2 (maximum over overlapping boxes).

Outputs in OUTDIR (float32 MRC with the input's origin; see --output-grid):
  PREFIX_{sugar,phosphate,A,UT,C,G,protein,base}.mrc   stage-2 probabilities (0..1), one class per file
  PREFIX_stage1_{sugar,phosphate,base,protein,A,UT,C,G}.mrc   stage-1 probabilities (with --stage1-maps)
  PREFIX_working.mrc     the normalised 1 Å working map the networks saw (model building starts from it)
  PREFIX_summary.json    weights used and why, boxes, device, timings, warnings (written last)

A rerun with the same inputs and options resumes from the stages that finished (state kept in
OUTDIR/PREFIX_detect-state/ until the summary is written).

Weights: --weights-dir, else $HARUSPEX_CRYOREAD_WEIGHTS, else the cache filled by
`haruspex weights download --set cryoread-...`. By default the set is chosen from --resolution as the original
does: below 3 Å the 0-3 Å model, 3-5 Å the default model, 5-10 Å the 5-10 Å model.""",
    )
    p.add_argument("map", type=Path, help="input density map")
    p.add_argument("--resolution", type=float, required=True, help="map resolution in Å (chooses the weights)")
    p.add_argument("--contour", type=float, default=0.0,
                   help="density threshold in map units; boxes with no density above it are skipped. The "
                   "original suggests half the author's recommended contour level. A negative value shifts the "
                   "whole map up by its magnitude first (default: 0)")
    p.add_argument("--stride", type=int, default=DEFAULT_STRIDE,
                   help=f"step between 64³ boxes in voxels of the 1 Å grid (default: {DEFAULT_STRIDE}, the "
                   "original's code default; every voxel then lies at least 16 Å inside some box. 16 is the "
                   "paper's setting: up to 8x more boxes, slightly smoother maps)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="boxes per forward pass (default: 1 on a CPU, where larger batches are not faster and "
                   "need more memory; 4 on a GPU, halved automatically after an out-of-memory error)")
    p.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto",
                   help="auto: GPU when PyTorch sees one, else CPU with a warning; gpu: fail without a GPU "
                   "(default: auto)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="fp32 computes the published networks exactly; bf16 (bfloat16) is about twice as fast on "
                   "CPUs with AVX512-BF16 and on GPUs, with small differences in the probabilities: see "
                   "BENCHMARKS.md (default: fp32)")
    p.add_argument("--weight-set", choices=tuple(WEIGHT_SET_CHOICES), default="auto",
                   help="which published networks: auto chooses by --resolution like the original; paper is the "
                   "model of the 2023 paper (default: auto)")
    networks = p.add_mutually_exclusive_group()
    networks.add_argument("--weights-dir", type=Path,
                          help="directory holding stage1_network.pth and stage2_network.pth (overrides the weight "
                          "set's location)")
    networks.add_argument(
        "--demo-model", action="store_true",
        help="use the bundled demo detector instead of the published networks: a small U-Net and a base-type network "
        "trained by this project on simulated maps at 2.5-5 Å (nucleic acids among protein), to try nucleic-acid "
        "building offline. Its base types tell purines from pyrimidines only where bases are sharp (not on maps "
        "blurred beyond about 5 Å by high B-factors). "
        "Its outputs are labelled DEMO MODEL; its metrics are in "
        "haruspex_engine/nucleic/detection/demo_detector/demo_detector.json. No stage-1 maps; fp32 only. Expect "
        "fewer and less accurate nucleotides than with the published networks, more so on real maps, whose noise "
        "and artefacts it never saw")
    p.add_argument("--output-grid", choices=("working", "input"), default="working",
                   help="working: the 1 Å grid the networks ran on, cropped to the map's positive region, origin "
                   "shifted so the maps overlay the input (what model building uses; no second interpolation of "
                   "the probabilities). input: resampled back onto the input map's grid (default: working)")
    p.add_argument("--stage1-maps", action="store_true", help="also write the stage-1 probability maps")
    p.add_argument("-o", "--output-dir", type=Path, default=Path("."), help="output directory (default: .)")
    p.add_argument("--prefix", help="output file prefix (default: the map's file name without extensions)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=run_detect)


def run_detect(args: argparse.Namespace) -> int:
    """Run a parsed ``detect-na`` command; returns the exit status."""
    from haruspex_engine.checkpoints import is_test_weights
    from haruspex_engine.devices import loud_warning, select_torch_device
    from haruspex_engine.map_checks import report_map_warnings
    from haruspex_engine.maps import read_map
    from haruspex_engine.nucleic.detection.demo_network import demo_predictor
    from haruspex_engine.nucleic.detection.detect import detect_nucleic_acids, detect_with_one_network
    from haruspex_engine.nucleic.detection.networks import DetectionNetwork
    from haruspex_engine.nucleic.detection.preprocess import prepare_map
    from haruspex_engine.nucleic.detection.stage_cache import StageCache
    from haruspex_engine.nucleic.detection_outputs import output_paths, write_detection

    t0 = time.perf_counter()
    if args.stride < 1 or args.stride > 64:
        raise CommandError(f"--stride must be between 1 and 64 voxels, not {args.stride}")
    if args.batch_size is not None and args.batch_size < 1:
        raise CommandError(f"--batch-size must be at least 1, not {args.batch_size}")
    if args.demo_model:
        _check_demo_options(args)
        key, reason, weight_dir, weight_files = "demo", "--demo-model", DEMO_DETECTOR_WEIGHTS.parent, [
            DEMO_DETECTOR_WEIGHTS, DEMO_BASE_TYPE_WEIGHTS]
    else:
        key, reason = _choose_weights(args)
        weight_dir = args.weights_dir.expanduser() if args.weights_dir else weights.locate_checkpoint(key)
        weight_files = [weight_dir / name for name in weights.CRYOREAD_STAGE_FILES]
    density = read_map(args.map)
    map_notes = report_map_warnings(density, "detect-na")
    working = prepare_map(density, args.contour)
    for warning in working.warnings:
        _say(f"warning: {warning}")
    prefix = args.prefix or default_prefix(args.map)
    prepare_output_folder(args.output_dir)  # fail before a long run, not after it
    device = select_torch_device(args.device)
    batch_size = args.batch_size or (1 if device.name == "cpu" else 4)
    notes = map_notes + list(device.warnings) + list(working.warnings)
    if is_test_weights(weight_dir):
        notes.append("RANDOM TEST WEIGHTS: these maps are meaningless (test run)")
        loud_warning(notes[-1])
    _say(f"{args.map}: {' x '.join(map(str, density.data.shape[::-1]))} voxels of "
         f"{' x '.join(f'{v:.3f}' for v in density.voxel_size)} Å -> working grid "
         f"{' x '.join(map(str, working.data.shape[::-1]))} of 1 Å; weights {key} ({reason}); {device.label}, "
         f"{args.precision}, batch {batch_size}, stride {args.stride}")

    if args.demo_model:
        notes += _demo_notes(args.resolution)
        demo = demo_predictor(device.name)

        def detect(**options):
            return detect_with_one_network(working, demo, **options)
    else:
        # Both files are loaded (strictly) before any work, so a bad stage-2 file fails in seconds, not after stage 1.
        stage1 = DetectionNetwork(_load(weight_files[0], 1), 1, device=device.name, precision=args.precision,
                                  merge_ut=False)  # U and T are merged after averaging overlapping boxes
        stage2 = DetectionNetwork(_load(weight_files[1], 2), 2, device=device.name, precision=args.precision)

        def detect(**options):
            return detect_nucleic_acids(working, stage1, stage2, **options)
    fingerprint = {
        "engine_version": __version__,
        "map": _file_identity(args.map),
        "contour": args.contour,
        "stride": args.stride,
        "precision": args.precision,
        "weights": [_file_identity(path) for path in weight_files],
    }
    claim_prefix(args.output_dir, prefix, output_paths(args.output_dir, prefix, stage1_maps=True).values(),
                 "detect-na", inputs=[args.map])
    cache = StageCache(args.output_dir / f"{prefix}_detect-state")
    args.interrupt_hint = f"finished stages are kept in {cache.directory}; rerun the same command to resume from them"
    detection = detect(stride=args.stride, batch_size=batch_size, cache=cache, fingerprint=fingerprint,
                       progress=not args.quiet)
    detection.warnings[:0] = notes
    report = {
        "weights": {"set": key, "why": reason, "directory": str(weight_dir.resolve())},
        "network": "demo" if args.demo_model else "published",
        "device": device.label,
        "precision": args.precision,
        "stride": args.stride,
        "contour": {"given": args.contour, "normalised": working.contour, "scale": working.scale},
        "output_grid": args.output_grid,
    }
    paths = write_detection(
        detection, working, density, output_paths(args.output_dir, prefix, args.stage1_maps),
        output_grid=args.output_grid, report=report, started_at=t0,
    )
    cache.clear()
    _say(f"done in {time.perf_counter() - t0:.1f} s; outputs in {paths['summary'].parent}")
    return 0


def _load(path: Path, stage: int):
    """The stage network from ``path``. A file whose git blob id is a published CryoREAD file's is trusted (full
    unpickling, in case the published dict holds more than tensors); any other file is read tensors-only. The id
    comes from the weights' verification record when it lists the file unchanged (the published files were
    verified moments before, by ``weights.locate_checkpoint``), else the file is hashed."""
    from haruspex_engine.nucleic.detection.checkpoint import load_stage

    published = {wf.git_blob_sha1 for ws in weights.REGISTRY.values() if ws.upstream_dir for wf in ws.files}
    trusted = path.is_file() and (weights.recorded_blob(path) or weights.git_blob_sha1(path)) in published
    return load_stage(path, stage, trusted=trusted)


def _check_demo_options(args: argparse.Namespace) -> None:
    """CommandError for the options the demo detector cannot honour."""
    if args.stage1_maps:
        raise CommandError("--stage1-maps: the demo detector has one stage, so there are no stage-1 maps")
    if args.precision != "fp32":
        raise CommandError(f"--precision {args.precision} is for the published networks; the demo detector runs "
                           "in fp32")
    if args.weight_set != "auto":
        raise CommandError("--weight-set chooses among the published networks; --demo-model replaces them")


def _demo_notes(resolution: float) -> list[str]:
    """The DEMO MODEL label (loud on the console) and a warning outside the resolutions it was trained on."""
    from haruspex_engine.devices import loud_warning

    notes = [DEMO_DETECTOR_LABEL]
    loud_warning(notes[0])
    low, high = DEMO_RESOLUTION_A
    if not low <= resolution <= high:
        notes.append(f"the demo detector was trained on maps at {low:g}-{high:g} Å; at {resolution:g} Å expect "
                     "fewer and less accurate nucleotides")
        _say(f"warning: {notes[-1]}")
    return notes


def _choose_weights(args: argparse.Namespace) -> tuple[str, str]:
    """(weight set key, why it was chosen)."""
    named = WEIGHT_SET_CHOICES[args.weight_set]
    if named is not None:
        return named, "chosen with --weight-set"
    return weights.choose_cryoread_set(args.resolution)


def _file_identity(path: Path) -> dict[str, object]:
    """What identifies a file's content cheaply: absolute path, size and modification time."""
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _say(message: str) -> None:
    print(f"detect-na: {message}", file=sys.stderr, flush=True)
