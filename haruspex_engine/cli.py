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
    haruspex example [--nucleic] OUT.mrc   write a built-in example map (ideal helices and a sheet; --nucleic: an RNA
                                           duplex, with its FASTA and model)
"""
from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path

from haruspex_engine import __version__, weights
from haruspex_engine.annotation.annotate_command import add_annotate_parser
from haruspex_engine.commands import EXIT_FAILED, EXIT_INTERRUPTED, CommandError
from haruspex_engine.nucleic.building.build_command import add_build_parser
from haruspex_engine.nucleic.building.evaluate_command import add_evaluate_parser
from haruspex_engine.nucleic.detection.detect_command import add_detect_parser
from haruspex_engine.refine.refine_command import add_refine_parser
from haruspex_engine.training.data_command import add_training_data_parser
from haruspex_engine.training.train_command import add_train_parser
from haruspex_engine.validation.validate_command import add_validate_parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="haruspex",
        description="Cryo-EM map annotation with the published Haruspex network (Mostosi et al., Angew. Chem. 2020) "
        "and nucleic-acid detection with the published CryoREAD networks (Wang et al., Nat. Methods 2023).",
        epilog="Run `haruspex COMMAND --help` for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_annotate_parser(commands)
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
        "4 Å resolution on a 1.1 Å grid (about 40 Å across). Annotating it should mark the helices and the sheet. "
        "With --nucleic: an ideal 16-bp RNA duplex simulated at 3.5 Å with correlated noise on a 1 Å grid, with its "
        "FASTA (OUT.fasta) and the model it was made from (OUT_reference.cif), for detect-na, build-na and "
        "evaluate-na.",
    )
    example.add_argument("output", type=Path, help="MRC file to write")
    example.add_argument("--nucleic", action="store_true",
                         help="the nucleic-acid example (map, FASTA and reference model) instead")
    example.set_defaults(func=_run_example)
    return parser


def _run_example(args: argparse.Namespace) -> int:
    if args.nucleic:
        from haruspex_engine.nucleic.example import write_nucleic_example

        for path in write_nucleic_example(args.output).values():
            print(path)
        return 0
    from haruspex_engine.simulate import write_example_map

    print(write_example_map(args.output))
    return 0


def main(argv: list[str] | None = None) -> int:
    from haruspex_engine.checkpoints import CheckpointError
    from haruspex_engine.devices import DeviceError
    from haruspex_engine.maps import MapError
    from haruspex_engine.model_files import ModelFileError
    from haruspex_engine.output_prefix import release_prefixes

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except weights.WeightsMissingError as exc:
        print(f"haruspex: error: {exc}", file=sys.stderr)
        return weights.EXIT_NO_WEIGHTS
    except (CommandError, MapError, ModelFileError, CheckpointError, DeviceError, weights.WeightsError) as exc:
        print(f"haruspex: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"haruspex: error: interrupted (Ctrl-C); {interrupt_hint(args)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:  # e.g. an output directory that cannot be created or written
        print(f"haruspex: error: {os_error_message(exc, getattr(args, 'output_dir', None))}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        release_prefixes()


#: What an interrupted command kept and how to go on, by command (``interrupt_hint``).
INTERRUPT_HINTS = {
    "train": "the checkpoints written so far are kept; rerun the same command with --resume to continue",
    "refine-na": "no refined model was written and the temporary folder was removed; rerun the same command to start "
                 "again",
}


def interrupt_hint(args: argparse.Namespace) -> str:
    """What an interrupted command left and how to go on (one clause): the command's own ``args.interrupt_hint``
    when it set one (it knows its paths), else the command's entry in INTERRUPT_HINTS."""
    default = "this run wrote no summary, so none of its files count as finished; rerun the same command to start again"
    return getattr(args, "interrupt_hint", None) or INTERRUPT_HINTS.get(args.command, default)


def os_error_message(exc: OSError, output_dir: Path | None) -> str:
    """One line for an operating-system error: the file it names, else the output folder (a full disk or a file
    over the file-size limit often names no file), and what to do when the disk or a limit is the cause."""
    where = exc.filename or (str(output_dir) if output_dir is not None else "")
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        reason += " (free space or choose another output folder with -o; then rerun)"
    elif exc.errno == errno.EFBIG:
        reason += " (a file exceeded the size limit of this file system or of `ulimit -f`; raise it or write " \
                  "elsewhere with -o; then rerun)"
    return f"{where}: {reason}" if where else reason


if __name__ == "__main__":
    sys.exit(main())
