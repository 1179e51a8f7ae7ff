"""The ``haruspex evaluate-na`` subcommand: a nucleic-acid model scored against a reference structure."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from haruspex_engine import __version__


def add_evaluate_parser(commands) -> None:
    """Register ``evaluate-na`` on the CLI's subparsers."""
    p = commands.add_parser(
        "evaluate-na",
        help="score a DNA/RNA model against a reference structure (coverage, sequence recall, RMSD)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Score a nucleic-acid model against a reference structure (PDB or mmCIF, optionally gzipped; first model only;
waters, ions, ligands and protein ignored). Prints JSON; with -o also writes it to a file.

Atoms: sugar (C1' C2' O2' C3' O3' C4' O4' C5') and phosphate (P OP1 OP2 O5' OP3) atoms.
  atom_coverage_5A       reference atoms with a model atom (any name) within 5 Å
  atom_precision_5A      model atoms with a reference atom (any name) within 5 Å
Residues: a residue's partner is the nearest residue of the other structure with C4' atoms at most 3 Å apart.
  backbone_coverage_3A   reference residues with a partner
  backbone_precision_3A  model residues with a partner
  sequence_recall        reference residues whose partner has the same base (U = T, DA = A)
  sequence_precision     model residues whose partner has the same base
  sequence_*_matched     the same, out of the residues that have a partner
  rmsd_A                 RMSD (Å) of same-named atoms of residues that are each other's partner
These follow CryoREAD's evaluation (Wang, Terashi & Kihara, Nat. Methods 2023), which matches residues by
average atom-pair distance below 5 Å instead of the C4' distance.""",
    )
    p.add_argument("model", type=Path, help="the model to score (PDB/mmCIF)")
    p.add_argument("reference", type=Path, help="the reference structure, e.g. the deposited model (PDB/mmCIF)")
    p.add_argument("-o", "--output", type=Path, help="also write the JSON to this file")
    p.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    """Run a parsed ``evaluate-na`` command; returns the exit status (errors raise CommandError)."""
    from haruspex_engine.cli import CommandError
    from haruspex_engine.nucleic.building.evaluate import EvaluationError, evaluate_files
    from haruspex_engine.summary import write_summary

    try:
        result = evaluate_files(args.model, args.reference)
    except EvaluationError as exc:
        raise CommandError(str(exc)) from exc
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        write_summary(args.output, result)
    print(json.dumps({"engine_version": __version__, **result}, indent=2))
    return 0
