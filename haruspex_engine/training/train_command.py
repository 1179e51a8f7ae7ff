"""The ``haruspex train`` subcommand: train (or fine-tune) the Haruspex network on saved training segments."""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from haruspex_engine.commands import CommandError
from haruspex_engine.output_prefix import claim_prefix

#: Name of the JSON report written last next to the checkpoints.
REPORT_NAME = "training_summary.json"


def add_train_parser(commands) -> None:
    """Register ``train`` on the CLI's subparsers."""
    p = commands.add_parser(
        "train",
        help="train or fine-tune the Haruspex network on 70³ training segments",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=f"""\
Train the Haruspex network as published: each step takes a batch of 70³ training segments, turns them all by one
random 90° rotation (24 proper rotations), crops the 40³ input at one random offset in [0, 30)³ and its central 20³
as the target, and takes an Adam step (lr 1e-3, β1 0.9, β2 0.999, ε 0.1) on the softmax cross-entropy weighted
16 for sheet / helix / nucleic acid and 1 for unassigned (the larger of the true and the predicted class), with
masked voxels left out.

SEGMENTS_DIR holds the segment files (*.npz) written by the training-data step. Checkpoints are written as
OUTPUT_PREFIX-STEP (.index + .data-00000-of-00001, the published layout including the Adam state and global step)
every --checkpoint-every steps and at the end; the latest --keep are kept. `haruspex annotate --checkpoint
OUTPUT_PREFIX-STEP` uses them directly, and --init-checkpoint continues from one (or from the published weights:
fine-tuning). A JSON report (losses per step, timings, peak memory, checkpoints) is written last as
{REPORT_NAME} next to the checkpoints.

Speed: on a 2-core CPU a step takes about 0.65 s per segment at the published width (batch 100: about 2 min and
11.6 GB of memory), so training like the published network's (40,000 steps of batch 100) needs a GPU; fine-tuning,
small runs and narrow networks (--width 8: about 0.05 s per segment) do not. An interrupted run continues with
--resume.""",
    )
    p.add_argument("segments", type=Path, metavar="SEGMENTS_DIR", help="directory of training segment files (*.npz)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUTPUT_PREFIX",
                   help="checkpoint prefix, e.g. runs/mynet/model.ckpt (writes runs/mynet/model.ckpt-5000, ...)")
    p.add_argument("--steps", type=int, default=30000, help="training steps to run (default: 30000, the original's)")
    p.add_argument("--batch-size", type=int, default=100, help="segments per step (default: 100, as published)")
    p.add_argument("--init-checkpoint", type=Path, metavar="PREFIX",
                   help="start from this checkpoint (e.g. the published model.ckpt-40000 to fine-tune): its "
                   "weights, and its Adam state and step count when it has them (default: fresh weights)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, batches and augmentation (default: 0)")
    p.add_argument("--width", type=int, default=32,
                   help="channels of the first convolution of fresh weights; the others are 2, 4 and 8 times as many "
                   "(default: 32, the published network; 8 trains about 10× faster and is what the bundled demo "
                   "model uses). Ignored with --init-checkpoint, whose width is kept")
    p.add_argument("--learning-rate", type=float, default=1e-3, help="Adam learning rate (default: 1e-3, published)")
    p.add_argument("--epsilon", type=float, default=0.1, help="Adam ε (default: 0.1, published)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run into the same OUTPUT_PREFIX from its latest kept checkpoint "
                   "(the result equals an uninterrupted run's); the settings must be those recorded in "
                   "OUTPUT_PREFIX.run.json, except --steps, which may be raised to extend a run. Without a "
                   "checkpoint to resume, the run starts from the beginning")
    p.add_argument("--checkpoint-every", type=int, default=5000, help="steps between checkpoints (default: 5000)")
    p.add_argument("--keep", type=int, default=10, help="checkpoints to keep (default: 10)")
    p.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto",
                   help="auto: GPU when TensorFlow sees one, else CPU with a warning (default: auto)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    """Run a parsed ``train`` command; returns the exit status (errors raise CommandError)."""
    from haruspex_engine.devices import select_device
    from haruspex_engine.summary import write_summary
    from haruspex_engine.training.segments import load_segments
    from haruspex_engine.training.train import TrainingDataError, TrainingResumeError, train

    for option in ("steps", "batch_size", "checkpoint_every", "keep", "width"):
        if getattr(args, option) < 1:
            raise CommandError(f"--{option.replace('_', '-')} must be at least 1, not {getattr(args, option)}")
    if not (args.learning_rate > 0 and args.epsilon > 0):
        raise CommandError(f"--learning-rate and --epsilon must be positive, not {args.learning_rate} and "
                           f"{args.epsilon}")
    try:
        segments = load_segments(args.segments)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    if not segments:
        raise CommandError(f"{args.segments}: no training segment files (*.npz)")
    device = select_device(args.device)
    output = Path(args.output)
    claim_prefix(output.parent, output.name, [REPORT_NAME], "train")
    print(f"train: {len(segments)} segments from {args.segments}; {args.steps} steps of batch {args.batch_size} "
          f"on {device.label}", file=sys.stderr, flush=True)
    try:
        report = train(segments, steps=args.steps, batch_size=args.batch_size, seed=args.seed, width=args.width,
                       learning_rate=args.learning_rate, epsilon=args.epsilon,
                       initial_checkpoint=args.init_checkpoint, resume=args.resume, output_prefix=args.output,
                       checkpoint_every=args.checkpoint_every, keep=args.keep, device=device.name,
                       progress=not args.quiet)
    except TrainingDataError as exc:
        raise CommandError(f"{args.segments}: {exc}") from exc
    except TrainingResumeError as exc:
        raise CommandError(str(exc)) from exc
    summary = {"segments_dir": str(args.segments.resolve()), "device": device.label, "warnings": device.warnings,
               **dataclasses.asdict(report)}
    write_summary(Path(args.output).parent / REPORT_NAME, summary)
    resumed = "" if report.resumed_from_step is None else f" (resumed from step {report.resumed_from_step})"
    loss = f", final loss {report.losses[-1]:.4f}" if report.losses else ""
    print(f"train: done, {len(report.losses)} steps in {report.seconds:.0f} s{resumed}{loss}, latest checkpoint "
          f"{report.checkpoints[-1]}", file=sys.stderr, flush=True)
    return 0
