"""The ``haruspex build-na`` subcommand: a DNA/RNA model from the maps ``haruspex detect-na`` wrote, optionally in the
register of given chain sequences."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from haruspex_engine.commands import CommandError
from haruspex_engine.nucleic.building import SOLUTION_LIMIT, SUGAR_NODE_SOURCES
from haruspex_engine.output_prefix import claim_prefix


def add_build_parser(commands) -> None:
    """Register ``build-na`` on the CLI's subparsers."""
    p = commands.add_parser(
        "build-na",
        help="build a DNA/RNA model from detect-na's maps, with or without the chain sequences",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Build a full-atom nucleic-acid model from the maps of `haruspex detect-na` (on its default working grid), as
CryoREAD does without a sequence: nodes by mean shift (sugar nodes anchored between phosphate nodes, an addition;
--sugar-nodes mean-shift for CryoREAD's), a sugar graph, backbone tracing by vehicle routing
(OR-Tools), phosphate and base attachment, residue choice, and nucleotides placed on phosphate / base triangles;
then each nucleotide is fitted as a rigid body into the sugar / phosphate / base maps and the density (an
addition to CryoREAD; paths are cut and oriented by the nucleotides' handedness and by that fit). With
--sequence, windows of each traced path are aligned to the chains (dynamic programming), a consistent set
of fragments is chosen (CP-SAT, on a deterministic work budget), and each residue built without the sequence is
placed in its chain's register where that is more likely right than wrong given the map's base calls (every
alignment of its traced path, and of the paths it continues across breaks in the trace; else it keeps the map's
letter): the sequence never removes a residue (it adds those the alignment places where
the sequence-free choice skipped a node), and fragments of one chain are written as that one chain, numbered by
FASTA position with gaps where nothing was built; a residue both models hold sits where the fit of the model
without the sequence put it.

FASTA: one record per chain; PDB-style headers (">1ABC_1|Chains A, B|...") give chain ids and copies; lower
case, N and X are accepted (kept as N: later residues keep their FASTA numbers, nothing is built there from the
sequence); protein records are skipped with a message. A file with a U is
RNA, one without is DNA. Identical chains are aligned once and each residue may be used once per copy.

Outputs in OUTDIR:
  PREFIX_model.cif         the model: without --sequence one chain per traced path; with it one chain per FASTA
                           chain holding every residue placed in it (its id, FASTA numbering, gaps allowed)
                           and a chain of its own for each stretch of unplaced residues (ids no FASTA chain
                           uses); B-factor = per-residue confidence 0..1
  PREFIX_model.pdb         the same in PDB format (with --pdb; at most 62 chains)
  PREFIX_noseq.cif         with --sequence: the model built without it
  PREFIX_confidence.csv    chain, residue number, residue name, confidence
  PREFIX_na_masked.mrc     the working map with protein and non-nucleic-acid density zeroed (CryoREAD's map for
                           refinement: protein probability >= 0.6, sugar + phosphate + base <= 0.1, or density at
                           or below the contour); written even when no model is built
  PREFIX_build.json        chains, residues, how tracing and assignment stopped, node counts, how far the fit
                           into the maps moved the residues, timings (last)
When no nucleic acid is found, no model is written and the summary says so (exit status 0).""",
    )
    p.add_argument("detection", type=Path,
                   help="detect-na's summary JSON (PREFIX_summary.json), or the directory holding exactly one")
    p.add_argument("-s", "--sequence", type=Path, metavar="FASTA",
                   help="the DNA/RNA chain sequences to assign (FASTA); without it the letters come from the maps")
    p.add_argument("--dna", action="store_true",
                   help="name residues DA/DC/DG/DT (default: RNA, A/C/G/U); with --sequence only for traced "
                   "pieces with no residue placed in a chain (the FASTA decides the others)")
    p.add_argument("--trace-solutions", type=int, default=SOLUTION_LIMIT,
                   help="tracing stops after this many routing solutions: deterministic, machine-independent "
                   f"(default: {SOLUTION_LIMIT}; the original stops after 1000)")
    p.add_argument("--trace-time-limit", type=float, default=120.0,
                   help="safety limit on tracing, seconds; when it is what stops the search the result depends on "
                   "the machine's speed and the summary says so (default: 120; the original waits ≥ 3600)")
    p.add_argument("--assign-budget", type=float, default=1.0, metavar="SCALE",
                   help="work budget of the fragment choice (CP-SAT): SCALE x (1 + 0.001 x candidate fragments) "
                   "units of the solver's deterministic time (about a second of one core "
                   "each): deterministic, machine-independent; it stops earlier when it proves the best choice, and "
                   "the console and summary say when it did not (default: 1)")
    p.add_argument("--assign-time-limit", type=float, default=600.0,
                   help="safety limit on the fragment choice, seconds; when it is what stops the search the result "
                   "depends on the machine's speed and the console and summary say so (default: 600)")
    p.add_argument("--sugar-nodes", choices=SUGAR_NODE_SOURCES, default=SUGAR_NODE_SOURCES[0],
                   help="where the sugar nodes come from: anchored (default: one sugar between every two phosphate "
                        "nodes a backbone step apart, where the sugar map is largest; the sugar map's own modes "
                        "where no phosphate pair gives one) or mean-shift (the modes of the sugar map, as CryoREAD)")
    p.add_argument("--pdb", action="store_true", help="also write the model in PDB format")
    p.add_argument("-o", "--output-dir", type=Path, help="output directory (default: the detection's directory)")
    p.add_argument("--prefix", help="output file prefix (default: the detection's prefix)")
    p.set_defaults(func=run_build)


def run_build(args: argparse.Namespace) -> int:
    """Run a parsed ``build-na`` command; returns the exit status."""
    import numpy as np

    from haruspex_engine.maps import read_map, write_like
    from haruspex_engine.nucleic.building.atoms import write_confidence_table, write_model
    from haruspex_engine.nucleic.building.build import build_nucleic_model
    from haruspex_engine.nucleic.building.na_mask import nucleic_acid_masked
    from haruspex_engine.nucleic.building.sequences import SequenceError, read_fasta
    from haruspex_engine.nucleic.classes import STAGE2_CLASSES
    from haruspex_engine.nucleic.detection_outputs import LISTED_MAPS, read_detection_summary
    from haruspex_engine.summary import SUMMARY_SUFFIX, find_summary, write_summary

    t0 = time.perf_counter()
    if (args.trace_solutions < 1 or args.trace_time_limit <= 0 or args.assign_time_limit <= 0
            or args.assign_budget <= 0):
        raise CommandError("--trace-solutions must be at least 1, --trace-time-limit, --assign-budget and "
                           "--assign-time-limit positive")
    warnings: list[str] = []
    sequences = None
    if args.sequence is not None:
        try:
            sequences = read_fasta(args.sequence)
        except OSError as exc:
            raise CommandError(f"{args.sequence}: cannot read the FASTA file ({exc.strerror})") from None
        except SequenceError as exc:
            raise CommandError(str(exc)) from None
        for message in sequences.warnings:
            warnings.append(message)
            _say(message)
    try:
        summary_path = find_summary(args.detection, LISTED_MAPS, "detect-na")
        detection, detection_maps, working = read_detection_summary(summary_path)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    _say(_maps_read_message(detection_maps))
    if detection.get("network") == "demo":  # the label follows the maps into the model's summary
        from haruspex_engine.nucleic.detection.demo_detector import DEMO_DETECTOR_LABEL

        warnings.append(f"built from maps of the {DEMO_DETECTOR_LABEL}")
        _say(f"warning: {warnings[-1]}")
    stage2 = np.stack([read_map(detection_maps[name]).data for name in STAGE2_CLASSES])
    if stage2.shape[1:] != working.data.shape:
        raise CommandError(f"{summary_path}: the listed maps are not all on the working grid")
    prefix = args.prefix or summary_path.name.removesuffix(SUMMARY_SUFFIX)
    paths = output_paths(args.output_dir or summary_path.parent, prefix)
    claim_prefix(args.output_dir or summary_path.parent, prefix, paths.values(), "build-na",
                 inputs=[summary_path, *(p for p in [args.sequence] if p is not None)])
    report_path = paths["summary"]

    result = build_nucleic_model(stage2, working.data, working.first_voxel_position, sequences=sequences,
                                 dna=args.dna, solution_limit=args.trace_solutions,
                                 time_limit_s=args.trace_time_limit, assignment_work_scale=args.assign_budget,
                                 assignment_time_limit_s=args.assign_time_limit, sugar_nodes=args.sugar_nodes)
    stop_message = _assignment_stop_message(result.assignment)
    if stop_message:
        warnings.append(stop_message)
        _say(stop_message)
    masked = paths["na_masked_map"]
    contour = float((detection.get("contour") or {}).get("normalised", 0.0))
    write_like(masked, nucleic_acid_masked(working.data, stage2, contour), working)
    files: dict[str, str] = {"na_masked_map": str(masked)}
    chains: list[dict[str, object]] = []
    if result.structure is None:
        warnings.append("no nucleic acid found: no chain of two or more residues could be traced")
        _say(warnings[-1])
    else:
        files["model"] = str(write_model(result.structure, paths["model"]))
        if args.pdb:
            files["model_pdb"] = str(write_model(result.structure, paths["model_pdb"]))
        if result.unsequenced is not None:
            files["model_without_sequence"] = str(write_model(result.unsequenced, paths["model_without_sequence"]))
        files["confidence"] = str(write_confidence_table(result.structure, paths["confidence"]))
        chains = [{"id": chain.name, "residues": len(chain), "first": chain[0].seqid.num,
                   "last": chain[len(chain) - 1].seqid.num, "sequence": _chain_sequence(chain)}
                  for chain in result.structure[0]]
    trace = result.trace
    residues = sum(int(c["residues"]) for c in chains)
    write_summary(report_path, {
        "detection": str(summary_path.resolve()),
        "detection_maps": {name: str(path) for name, path in detection_maps.items()},
        "outputs": files,
        "chains": chains,
        "residues": residues,
        "sequence": None if args.sequence is None else str(args.sequence.resolve()),
        "assignment": _assignment_report(result.assignment),
        "dna": args.dna,
        "node_counts": result.node_counts,
        "node_filter": result.node_filter,
        "strands": result.strands,
        "residue_fit": result.residue_fit,
        "trace": None if trace is None else {"stopped_by": trace.stopped_by, "solutions": trace.solutions,
                                             "seconds": round(trace.seconds, 3), "paths": len(trace.paths),
                                             "dropped_nodes": trace.dropped},
        "warnings": warnings,
        "timings_s": {**{k: round(v, 3) for k, v in result.timings_s.items()},
                      "total": round(time.perf_counter() - t0, 3)},
    })
    _say(f"{len(chains)} chains, {residues} residues; tracing stopped by "
         f"{trace.stopped_by if trace else 'nothing to trace'}; summary {report_path}")
    return 0


def output_paths(outdir: Path, prefix: str) -> dict[str, Path]:
    """Every file build-na can write (under any options), by the name its summary lists it under; ``summary`` is
    the build JSON."""
    outdir = Path(outdir).resolve()
    names = {"na_masked_map": "na_masked.mrc", "model": "model.cif", "model_pdb": "model.pdb",
             "model_without_sequence": "noseq.cif", "confidence": "confidence.csv", "summary": "build.json"}
    return {name: outdir / f"{prefix}_{suffix}" for name, suffix in names.items()}


def _assignment_report(assignment) -> dict[str, object] | None:
    """What sequence assignment did, for the summary (None without a sequence)."""
    if assignment is None:
        return None
    selection = assignment.selection
    matched = sum(len(f.nodes) for fragments in assignment.fragments for f in fragments)
    placement = assignment.placement
    return {"candidates": assignment.candidates, "chosen": len(selection.chosen), "status": selection.status,
            "stopped_by": selection.stopped_by, "optimal": selection.optimal, "objective": selection.objective,
            "bound": selection.bound, "work": round(selection.work, 3), "work_limit": round(selection.work_limit, 3),
            "seconds": round(selection.seconds, 3), "matched_nodes": matched,
            "placed_residues": placement.placed, "unplaced_residues": placement.unplaced,
            "added_residues": placement.added,
            "confirmed_labels": placement.confirmed_labels, "overruled_labels": placement.overruled_labels,
            "linked_residues": placement.linked, "number_collisions": placement.collisions,
            "call_accuracy": round(placement.call_accuracy, 3)}


def _assignment_stop_message(assignment) -> str | None:
    """A warning when the fragment choice stopped before proving the best choice (None otherwise)."""
    if assignment is None or assignment.selection.optimal:
        return None
    selection = assignment.selection
    found = (f"the best found scores {selection.objective} of at most {selection.bound}" if selection.chosen
             else "no fragment choice was found, so the model keeps the map's letters")
    if selection.stopped_by == "time limit":
        return (f"sequence assignment (CP-SAT) hit the --assign-time-limit safety limit ({selection.seconds:.0f} s) "
                f"before proving the best fragment choice; {found}; this result depends on the machine's speed")
    return (f"sequence assignment (CP-SAT) used its work budget ({selection.work_limit:.1f} units) before proving "
            f"the best fragment choice; {found} (raise --assign-budget to search further)")


def _chain_sequence(chain) -> str:
    """One-letter sequence of a built chain (A/C/G/U or A/C/G/T)."""
    return "".join(residue.name[-1] for residue in chain)


def _maps_read_message(maps: dict[str, Path]) -> str:
    """The console line saying which detection maps were read (name -> absolute path): their folder(s) and names."""
    folders = " and ".join(sorted({str(path.parent) for path in maps.values()}))
    return f"reading the detection maps in {folders}: {', '.join(path.name for path in maps.values())}"


def _say(message: str) -> None:
    print(f"build-na: {message}", file=sys.stderr, flush=True)
