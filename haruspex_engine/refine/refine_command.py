"""The ``haruspex refine-na`` subcommand: a built model refined into its map with servalcat."""
from __future__ import annotations

import argparse
import math
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from haruspex_engine.commands import CommandError, default_prefix
from haruspex_engine.output_prefix import claim_prefix
from haruspex_engine.refine import DEFAULT_CYCLES, DEFAULT_MASK_RADIUS_A


def add_refine_parser(commands) -> None:
    """Register ``refine-na`` on the CLI's subparsers."""
    p = commands.add_parser(
        "refine-na",
        help="refine a (nucleic-acid) model into its map with servalcat; geometry and map fit before and after",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=f"""\
Refine a model into a cryo-EM map with servalcat (refine_spa_norefmac: coordinates and B-factors against the map
inside a mask around the model, with geometry restraints from the CCP4 monomer library; no REFMAC, no licence).
Give one map, or the two half maps (better: servalcat then weights the map by its own FSC). The map's header
origin is honoured. A model with no atom in the map's box is refused; one with more than 10 % of its atoms outside
is refined with a warning (servalcat sees the map's periodic copy there).

Chain breaks stay open: consecutive nucleotides are bonded only when O3'-P < 2.4 Å, or when their residue numbers
are consecutive and P-P <= 7.5 Å (one nucleotide step; such near-misses of a built chain are closed); other steps
are breaks and get no restraint (build-na puts separate traced fragments in separate chains).

Needs servalcat and a monomer library in the worker environment: $HARUSPEX_MONOMER_LIBRARY, else the one in the
coot-headless-api package (`pip install servalcat coot-headless-api`).

Outputs in OUTDIR:
  PREFIX_refined.cif     the refined model (B-factors refined, Å²; hydrogens not written)
  PREFIX_servalcat.log   servalcat's full log
  PREFIX_refine.json     geometry (bond Å / angle ° r.m.s.d.) and FSCaverage before and after, backbone links
                         and breaks, r.m.s. shift, timings, warnings (written last)
During the run servalcat works in a hidden folder OUTDIR/.PREFIX_refine-XXXXXXXX, removed when the run ends; the
next run of the prefix removes one that a killed run left.
Defaults: {DEFAULT_CYCLES} cycles, mask radius {DEFAULT_MASK_RADIUS_A:g} Å (servalcat's).""",
    )
    p.add_argument("model", type=Path, help="the model to refine (mmCIF or PDB, e.g. build-na's PREFIX_model.cif)")
    p.add_argument("maps", type=Path, nargs="+", metavar="MAP", help="the map (MRC/CCP4), or its two half maps")
    p.add_argument("--resolution", type=float, required=True, help="map resolution, Å")
    p.add_argument("--cycles", type=int, default=DEFAULT_CYCLES,
                   help=f"refinement cycles (default: {DEFAULT_CYCLES})")
    p.add_argument("--mask-radius", type=float, default=DEFAULT_MASK_RADIUS_A,
                   help="radius of the mask around the atoms that the map is cut to, Å "
                   f"(default: {DEFAULT_MASK_RADIUS_A:g})")
    p.add_argument("-o", "--output-dir", type=Path, help="output directory (default: the model's directory)")
    p.add_argument("--prefix", help="output file prefix (default: the model's file name without extensions)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run_refine)


def run_refine(args: argparse.Namespace) -> int:
    """Run a parsed ``refine-na`` command; returns the exit status (errors raise CommandError)."""
    from haruspex_engine.maps import read_map
    from haruspex_engine.model_files import MODEL_SUFFIXES, read_model
    from haruspex_engine.nucleic.building.atoms import write_model
    from haruspex_engine.refine.monomers import MonomerLibraryError, check_dictionaries, locate_monomer_library
    from haruspex_engine.refine.refine import RefinementError, check_model_in_map, refine_structure, servalcat_version
    from haruspex_engine.summary import describe_input, write_summary

    t0 = time.perf_counter()
    if len(args.maps) > 2:
        raise CommandError(f"give one map or two half maps, not {len(args.maps)} files")
    _check_options(args)
    structure = read_model(args.model)
    version = servalcat_version()
    if version is None:
        raise CommandError("servalcat is not installed in the worker environment; install it with "
                           "`pip install servalcat` (and `coot-headless-api` for the monomer library)")
    try:
        library = locate_monomer_library()
        check_dictionaries(library, {residue.name for chain in structure[0] for residue in chain}, str(args.model))
    except MonomerLibraryError as exc:
        raise CommandError(str(exc)) from None
    maps = [read_map(path) for path in args.maps]  # after the cheap checks: two half maps can be large
    try:
        coverage_warnings = check_model_in_map(structure, maps[0], str(args.model))
    except RefinementError as exc:
        raise CommandError(str(exc)) from None
    for message in coverage_warnings:
        _say(message)

    prefix = args.prefix or default_prefix(args.model, MODEL_SUFFIXES)
    outdir = claim_prefix(args.output_dir or args.model.parent, prefix,
                          [f"{prefix}_{suffix}" for suffix in ("refine.json", "servalcat.log", "refined.cif")],
                          "refine-na", inputs=[args.model, *args.maps])
    report_path = outdir / f"{prefix}_refine.json"
    log_path = outdir / f"{prefix}_servalcat.log"
    _say(f"{args.model}: {sum(len(chain) for chain in structure[0])} residues into "
         f"{', '.join(map(str, args.maps))} at {args.resolution:g} Å, {args.cycles} cycles (servalcat {version})")
    for leftover in _remove_leftover_workdirs(outdir, prefix):
        _say(f"removed {leftover}, the working folder of an interrupted run")
    workdir = Path(tempfile.mkdtemp(prefix=_workdir_prefix(prefix), dir=outdir))
    try:
        result = refine_structure(structure, maps, args.resolution, monomer_library=library, workdir=workdir,
                                  log_path=log_path, cycles=args.cycles, mask_radius_A=args.mask_radius,
                                  progress=not args.quiet)
    except RefinementError as exc:
        raise CommandError(str(exc)) from None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    model_path = write_model(result.structure, outdir / f"{prefix}_refined.cif")
    for message in result.warnings:
        _say(message)
    warnings = coverage_warnings + result.warnings
    write_summary(report_path, {
        "model": str(args.model.resolve()),
        "maps": [describe_input(density) for density in maps],
        "half_maps": len(maps) == 2,
        "resolution_A": args.resolution,
        "outputs": {"model": str(model_path), "log": str(log_path)},
        "residues": sum(len(chain) for chain in result.structure[0]),
        "geometry": result.geometry,
        "fsc_average": result.fsc_average,
        "rms_shift_A": result.rms_shift_A,
        "backbone": result.links.report(),
        "servalcat": {"version": version, "cycles": result.cycles, "weight": result.weight,
                      "mask_radius_A": args.mask_radius, "monomer_library": str(library)},
        "warnings": warnings,
        "timings_s": {"servalcat": round(result.seconds, 3), "total": round(time.perf_counter() - t0, 3)},
    })
    before, after = result.geometry["before"], result.geometry["after"]
    _say(f"bond r.m.s.d. {before['bond_rmsd_A']} -> {after['bond_rmsd_A']} Å, angle {before['angle_rmsd_deg']} -> "
         f"{after['angle_rmsd_deg']}°, FSCaverage {result.fsc_average['before']} -> {result.fsc_average['after']}; "
         f"{len(result.links.breaks)} chain breaks kept open; summary {report_path}")
    return 0


def _check_options(args: argparse.Namespace) -> None:
    """Refuse a non-positive (or non-finite) --resolution or --mask-radius, or fewer than 1 --cycles: one message
    per option."""
    for option, value in (("--resolution", args.resolution), ("--mask-radius", args.mask_radius)):
        if not (math.isfinite(value) and value > 0):
            raise CommandError(f"{option} must be a positive number of Å, not {value:g}")
    if args.cycles < 1:
        raise CommandError(f"--cycles must be at least 1, not {args.cycles}")


def _workdir_prefix(prefix: str) -> str:
    """How the name of the hidden temporary working folder of a run with output prefix ``prefix`` starts."""
    return f".{prefix}_refine-"


def _remove_leftover_workdirs(outdir: Path, prefix: str) -> list[Path]:
    """Remove the working folders that killed runs of this prefix left in ``outdir`` and return them. Call it while
    holding the prefix (claim_prefix): no other run of it can be working then. Only the names tempfile.mkdtemp
    gives (the prefix's start and 8 characters) match, never another prefix's folder."""
    pattern = re.compile(re.escape(_workdir_prefix(prefix)) + r"[a-z0-9_]{8}")
    leftovers = [path for path in outdir.iterdir() if pattern.fullmatch(path.name) and path.is_dir()]
    for path in leftovers:
        shutil.rmtree(path)
    return leftovers


def _say(message: str) -> None:
    print(f"refine-na: {message}", file=sys.stderr, flush=True)
