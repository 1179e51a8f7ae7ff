"""Real-space refinement of a model into a cryo-EM map (or its two half maps) with servalcat, run as a subprocess.

servalcat ``refine_spa_norefmac`` (Yamashita et al., Acta Cryst. D 2021 and 2023; MPL-2.0, built on gemmi) turns the
map into Fourier coefficients inside a mask around the model (``mask_radius_A`` Å from any atom), then minimises a
likelihood map term plus geometry restraints from the CCP4 monomer library by conjugate gradients, refining
coordinates and isotropic B-factors; riding hydrogens are generated for the restraints and not written out.

servalcat ignores the MRC header origin (it places a map by its nstart only), so the model is moved into the frame of
the map's voxel (0, 0, 0) and the maps are written there with a zero origin; the refined model is moved back. Its
report (``<prefix>_stats.json``: cycle 0 is the input model, the last entry the refined one) gives the geometry
(r.m.s. deviation of non-hydrogen bond lengths, Å, and bond angles, degrees, from the dictionary values) and the
model-map fit (FSCaverage: the map-model Fourier shell correlation averaged over shells to the resolution, weighted
by the number of coefficients per shell).
"""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import gemmi
import numpy as np

from haruspex_engine.maps import DensityMap, same_grid, write_map
from haruspex_engine.progress import Progress
from haruspex_engine.refine import DEFAULT_CYCLES, DEFAULT_MASK_RADIUS_A
from haruspex_engine.refine.links import BackboneLinks, add_bridges, plan_backbone_links, remove_bridges

SERVALCAT = "servalcat"
BOND_KEY = "Bond distances, non H"
ANGLE_KEY = "Bond angles, non H"
CYCLE_DONE = "$TABLE: Data stats in cycle"  # servalcat prints it after each cycle (and for the input, cycle 0)
LOG_CLOSING = "# Abnormally finished"  # servalcat's last line after an uncaught exception (its traceback comes before)
#: An unindented log line naming an error: "numpy.linalg.LinAlgError: Singular matrix", "Error: ...", "...: error: ..."
#: (traceback frames and code lines are indented).
ERROR_LINE = re.compile(r"(?=\S).*(?:Error|Exception|\berror\b)")
#: A model with more than this fraction of its atoms outside the map's box is refined with a warning; fewer (a few
#: terminal atoms poking out of a tightly cropped box) get none, as a warning on every such model would be noise.
MAX_OUTSIDE_FRACTION = 0.1
#: At most this many lines (an error line and what follows it to the end of the log) make the reason for a failure.
MAX_REASON_LINES = 3


class RefinementError(RuntimeError):
    """Refinement could not run or failed; the message names the file or says where servalcat's log is."""


@dataclass
class Refinement:
    """What a refinement produced.

    structure: the refined model, in the input model's frame (Å), B-factors refined (Å²).
    geometry: {"before"|"after": {"bond_rmsd_A", "angle_rmsd_deg"}}; fsc_average: {"before"|"after": FSCaverage}.
    rms_shift_A: r.m.s. displacement of the atoms from the input model (Å). links: the backbone steps as refined.
    """

    structure: gemmi.Structure
    geometry: dict[str, dict[str, float | None]]
    fsc_average: dict[str, float | None]
    weight: float | None
    cycles: int
    rms_shift_A: float
    links: BackboneLinks
    seconds: float
    warnings: list[str] = field(default_factory=list)


def servalcat_version() -> str | None:
    """The installed servalcat version, or None when servalcat is not installed in this environment."""
    try:
        return metadata.version(SERVALCAT)
    except metadata.PackageNotFoundError:
        return None


def refine_structure(
    structure: gemmi.Structure,
    maps: Sequence[DensityMap],
    resolution_A: float,
    *,
    monomer_library: Path,
    workdir: Path,
    log_path: Path,
    cycles: int = DEFAULT_CYCLES,
    mask_radius_A: float = DEFAULT_MASK_RADIUS_A,
    progress: bool = True,
) -> Refinement:
    """Refine the first model of ``structure`` into ``maps`` (one map, or two half maps on one grid).

    resolution_A, mask_radius_A: Å. servalcat's inputs and outputs go to ``workdir`` (which must exist), its console
    output to ``log_path``. The input structure is not changed. Check first that the model lies in the map
    (check_model_in_map).
    """
    t0 = time.perf_counter()
    reference = maps[0]
    for other in maps[1:]:
        if not same_grid(other, reference):
            raise RefinementError(f"{other.path}: not on the grid of {reference.path} (shape, voxel size and origin "
                                  "of half maps must match)")
    model = _first_model(structure)
    links = plan_backbone_links(model[0])
    add_bridges(model, links.bridged)
    offset = np.asarray(reference.first_voxel_position, dtype=float)
    warnings: list[str] = []
    _translate(model, -offset)
    command = [sys.executable, "-m", SERVALCAT, "refine_spa_norefmac", *_write_inputs(model, maps, workdir),
               "--resolution", str(resolution_A), "--mask_radius", str(mask_radius_A), "--ncycle", str(cycles),
               "--monlib", str(monomer_library), "--output_prefix", "refined"]
    _run_servalcat(command, workdir, log_path, cycles, progress)

    stats = _read_stats(workdir / "refined_stats.json", log_path)
    geometry = {"before": _geometry(stats[0]), "after": _geometry(stats[-1])}
    fsc = {"before": _fsc_average(stats[0]), "after": _fsc_average(stats[-1])}
    missing = [f"{when} {what}" for when in ("before", "after")
               for what, value in [*geometry[when].items(), ("fsc_average", fsc[when])] if value is None]
    if missing:
        warnings.append(f"servalcat's report lacks {', '.join(missing)} (servalcat {servalcat_version()})")
    refined = _read_refined(workdir / "refined.mmcif", log_path)
    _translate(refined, offset)
    refined.cell, refined.spacegroup_hm = structure.cell, structure.spacegroup_hm
    remove_bridges(refined)
    return Refinement(structure=refined, geometry=geometry, fsc_average=fsc, weight=stats[-1].get("weight"),
                      cycles=int(stats[-1].get("Ncyc", cycles)), rms_shift_A=_rms_shift(structure[0], refined[0]),
                      links=links, seconds=time.perf_counter() - t0, warnings=warnings)


def _first_model(structure: gemmi.Structure) -> gemmi.Structure:
    model = structure.clone()
    while len(model) > 1:
        del model[1]
    return model


def _write_inputs(model: gemmi.Structure, maps: Sequence[DensityMap], workdir: Path) -> list[str]:
    """Write the model (in a P 1 cell that is the map's box) and the maps (zero origin) into ``workdir``; returns
    servalcat's input arguments."""
    box = np.multiply(maps[0].data.shape[::-1], maps[0].voxel_size)
    model.cell = gemmi.UnitCell(*map(float, box), 90.0, 90.0, 90.0)
    model.spacegroup_hm = "P 1"
    model_path = workdir / "input_model.cif"
    model.make_mmcif_document().write_file(str(model_path))
    arguments = ["--model", str(model_path), "--map" if len(maps) == 1 else "--halfmaps"]
    for k, density in enumerate(maps, start=1):
        arguments.append(str(workdir / f"input_map{k}.mrc"))
        write_map(arguments[-1], density.data, density.voxel_size)
    return arguments


def _translate(structure: gemmi.Structure, shift_xyz: np.ndarray) -> None:
    shift = gemmi.Position(*map(float, shift_xyz))
    for cra in structure[0].all():
        cra.atom.pos += shift


def map_box_A(density: DensityMap) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper (x, y, z) corners, Å, of the box the map's voxels fill (voxel centres ± half a voxel)."""
    voxel = np.asarray(density.voxel_size, dtype=float)
    first = np.asarray(density.first_voxel_position, dtype=float)
    return first - voxel / 2, first + (np.array(density.data.shape[::-1]) - 0.5) * voxel


def check_model_in_map(structure: gemmi.Structure, density: DensityMap, model_name: str) -> list[str]:
    """Refuse a model none of whose atoms (first model) lies in the box of ``density``: RefinementError naming both,
    with the model's extent and the map's box in Å. Returns a warning when more than MAX_OUTSIDE_FRACTION of the
    atoms lie outside (servalcat would refine them against the map's periodic copy); else no warning."""
    xyz = np.array([cra.atom.pos.tolist() for cra in structure[0].all()], dtype=float).reshape(-1, 3)
    low, high = map_box_A(density)
    outside = int(np.count_nonzero(((xyz < low) | (xyz > high)).any(axis=1)))
    if outside == len(xyz):
        raise RefinementError(f"{model_name}: no atom lies inside the box of {density.path} (model "
                              f"{_describe_box(xyz.min(axis=0), xyz.max(axis=0))}; map {_describe_box(low, high)}); "
                              "give the map the model was built into, or fit the model into this map first")
    if outside <= MAX_OUTSIDE_FRACTION * len(xyz):
        return []
    return [f"{outside} of {len(xyz)} atoms ({100 * outside / len(xyz):.0f} %) of {model_name} lie outside the box "
            f"of {density.path}; the map does not cover them and they are refined against its periodic copy"]


def _describe_box(low: np.ndarray, high: np.ndarray) -> str:
    """"x 0.0..40.0, y ..., z ... Å" for a box from ``low`` to ``high`` (x, y, z), Å."""
    return ", ".join(f"{axis} {lo:.1f}..{hi:.1f}" for axis, lo, hi in zip("xyz", low, high)) + " Å"


def _run_servalcat(command: list[str], workdir: Path, log_path: Path, cycles: int, progress: bool) -> None:
    """Run servalcat, its output to ``log_path``; a line on stderr per refinement cycle."""
    meter = Progress(cycles, "refine-na", "cycle", interval_s=0.0) if progress else None
    with open(log_path, "w") as log, subprocess.Popen(command, cwd=workdir, stdout=subprocess.PIPE,
                                                      stderr=subprocess.STDOUT, text=True) as process:
        for line in process.stdout:
            log.write(line)
            if meter is not None and line.startswith(CYCLE_DONE) and not line.startswith(f"{CYCLE_DONE} 0 "):
                meter.update(1)
    if meter is not None:
        meter.close()
    if process.returncode != 0:
        reason = servalcat_failure_reason(log_path.read_text(errors="replace"))
        raise RefinementError(f"servalcat failed ({_exit_description(process.returncode)}): {reason}; "
                              f"full log: {log_path}")


def servalcat_failure_reason(log_text: str) -> str:
    """Why servalcat failed, from its log (``log_text``): the last unindented line that names an error (a Python
    exception's "Type: message", servalcat's "Error: ...", an argument parser's "...: error: ..."), joined by spaces
    with the lines after it when they end the log within MAX_REASON_LINES (the rest of a multi-line message); else
    the log's last line. Blank lines and servalcat's closing "# Abnormally finished on <date>" are skipped."""
    lines = [line.rstrip() for line in log_text.splitlines() if line.strip() and not line.startswith(LOG_CLOSING)]
    if not lines:
        return "no output"
    errors = [k for k, line in enumerate(lines) if ERROR_LINE.match(line)]
    reason = lines[errors[-1]:] if errors else lines[-1:]
    return " ".join(line.strip() for line in (reason if len(reason) <= MAX_REASON_LINES else reason[:1]))


def _exit_description(returncode: int) -> str:
    """"exit status N", or "killed by SIGKILL" for a process ended by a signal (negative return code)."""
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit status {returncode}"


def _read_stats(path: Path, log_path: Path) -> list[dict[str, Any]]:
    try:
        stats = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RefinementError(f"{path}: servalcat's report is missing or unreadable ({exc}); see {log_path}") from None
    if not isinstance(stats, list) or not stats or not all(isinstance(entry, dict) for entry in stats):
        raise RefinementError(f"{path}: not a servalcat refinement report (a list of cycles); see {log_path}")
    return stats


def _geometry(entry: dict[str, Any]) -> dict[str, float | None]:
    rmsd = entry.get("geom", {}).get("summary", {}).get("r.m.s.d.", {})
    return {"bond_rmsd_A": _rounded(rmsd.get(BOND_KEY), 4), "angle_rmsd_deg": _rounded(rmsd.get(ANGLE_KEY), 3)}


def _fsc_average(entry: dict[str, Any]) -> float | None:
    return _rounded(entry.get("data", {}).get("summary", {}).get("FSCaverage"), 4)


def _rounded(value: Any, digits: int) -> float | None:
    return round(float(value), digits) if isinstance(value, (int, float)) else None


def _read_refined(path: Path, log_path: Path) -> gemmi.Structure:
    try:
        return gemmi.read_structure(str(path))
    except (OSError, RuntimeError, ValueError) as exc:
        raise RefinementError(f"{path}: servalcat's refined model is missing or unreadable ({exc}); "
                              f"see {log_path}") from None


def _rms_shift(before: gemmi.Model, after: gemmi.Model) -> float:
    """R.m.s. distance (Å) between same-named atoms (chain, residue, atom, altloc) of two models."""
    positions = {(cra.chain.name, str(cra.residue.seqid), cra.atom.name, cra.atom.altloc): cra.atom.pos
                 for cra in before.all()}
    squares = [cra.atom.pos.dist(positions[key]) ** 2 for cra in after.all()
               if (key := (cra.chain.name, str(cra.residue.seqid), cra.atom.name, cra.atom.altloc)) in positions]
    return round(float(np.sqrt(np.mean(squares))), 3) if squares else 0.0
