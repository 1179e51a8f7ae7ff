"""The ``haruspex evaluate-na`` subcommand: a nucleic-acid model scored against a reference structure."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from haruspex_engine import __version__
from haruspex_engine.commands import CommandError


def add_evaluate_parser(commands) -> None:
    """Register ``evaluate-na`` on the CLI's subparsers."""
    p = commands.add_parser(
        "evaluate-na",
        help="score a DNA/RNA model against a reference structure (coverage, sequence, register, polarity, RMSD)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Score a nucleic-acid model against a reference structure (PDB or mmCIF, optionally gzipped; first model only;
waters, ions, ligands, protein and hydrogens ignored; C4* read as C4', O1P as OP1). Prints JSON; with -o also
writes it to a file. Fractions are None when their denominator is 0.

Atoms: sugar (C1' C2' O2' C3' O3' C4' O4' C5') and phosphate (P OP1 OP2 O5' OP3) atoms.
  atom_coverage_5A       reference backbone atoms with a model backbone atom (any name) within 5 Å
  atom_precision_5A      model backbone atoms with a reference backbone atom (any name) within 5 Å
Residues (those with a C4' atom) are matched one-to-one: the largest set of reference-model pairs with C4' atoms
at most 3 Å apart, no residue in two pairs, of least total distance (a linear assignment). Two model residues on
one reference residue: only one is matched.
  backbone_coverage_3A   matched reference residues / reference residues
  backbone_precision_3A  matched model residues / model residues
  sequence_recall        pairs of the same base (U = T, DA = A; modified: parent base) / reference residues
  sequence_precision     pairs of the same base / model residues
  sequence_*_matched     pairs of the same base / pairs
  register_recall        reference residues whose partner is numbered at the reference residue's FASTA position
                         (its ordinal among its chain's nucleotides; the reference's own sequence is the FASTA)
                         in the reference chain, or in a reference chain of identical sequence / reference residues
  reversed_residues      model residues in a reversed step: two consecutive residues of one model chain matched
                         to one reference chain with the second's reference position 1 to 3 lower (built 3'->5');
                         a step further back is a backward jump (the trace went on to an earlier part of the
                         chain, each side in its own direction), counted apart
  reversed_fraction      reversed_residues / model residues
  rmsd_c4_A              RMSD (Å) of the C4' atoms of the pairs
  rmsd_all_atoms_A       RMSD (Å) of same-named non-hydrogen atoms (backbone and base) of the pairs
  counts                 residues, backbone atoms, residues without C4', matched_pairs, register_pairs,
                         matched_steps, reversed_steps, backward_jump_steps, rmsd_atom_pairs
These follow CryoREAD's evaluation (Wang, Terashi & Kihara, Nat. Methods 2023), which matches residues by
average atom-pair distance below 5 Å instead of the C4' distance.""",
    )
    p.add_argument("model", type=Path, help="the model to score (PDB/mmCIF)")
    p.add_argument("reference", type=Path, help="the reference structure, e.g. the deposited model (PDB/mmCIF)")
    p.add_argument("-o", "--output", type=Path, help="also write the JSON to this file")
    p.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    """Run a parsed ``evaluate-na`` command; returns the exit status (errors raise CommandError)."""
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
