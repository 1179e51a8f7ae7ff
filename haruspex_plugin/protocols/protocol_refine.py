"""ProtHaruspexRefineNucleicAcids: refine an atomic model into a map with servalcat, keeping chain breaks open.

Also the pieces the build protocol's optional refinement shares with it: the worker check for servalcat and the
monomer library, the ``refine-na`` arguments, the summary lines, and the AtomStruct with its map attached.
"""
from __future__ import annotations

import os
import re

import pyworkflow.protocol.params as params
import pyworkflow.utils as pwutils
from pwem.objects import AtomStruct, Volume
from pyworkflow.constants import BETA

from .. import Plugin
from ..constants import REFINED_MODEL_OUTPUT
from ..convert import model_with_volume, write_worker_map
from .worker_protocol import HaruspexWorkerProtocol, checked_files, read_json

# Run by the worker's Python at validation: exits with the worker's one-line error when refine-na could not run.
REFINEMENT_TOOLS_CHECK = """\
import sys
from haruspex_engine.refine.monomers import MonomerLibraryError, locate_monomer_library
from haruspex_engine.refine.refine import servalcat_version
if servalcat_version() is None:
    sys.exit("haruspex: error: servalcat is not installed in the worker environment (pip install servalcat)")
try:
    locate_monomer_library()
except MonomerLibraryError as exc:
    sys.exit(f"haruspex: error: {exc}")
"""
SHOWN_BREAKS = 5  # chain breaks listed by name in the summary


class ProtHaruspexRefineNucleicAcids(HaruspexWorkerProtocol):
    """Refines an atomic model (e.g. a DNA/RNA model built by *build nucleic acids*) into its cryo-EM map, or
    against the map's two half maps, with servalcat (Yamashita et al., Acta Cryst. D 2021): coordinates and
    B-factors, geometry restraints from the CCP4 monomer library, no licence needed. Consecutive nucleotides are
    bonded only where the model already connects them; chain breaks stay open. Reports geometry (bond and angle
    r.m.s.d.) and the model-map fit (FSCaverage) before and after.
    """
    _label = "refine model (servalcat)"
    _devStatus = BETA
    _possibleOutputs = {REFINED_MODEL_OUTPUT: AtomStruct}

    # --------------------------- DEFINE param functions ---------------------------------------------------------
    def _defineParams(self, form):
        form.addSection(label=pwutils.Message.LABEL_INPUT)
        form.addParam("inputStructure", params.PointerParam, pointerClass="AtomStruct", important=True,
                      label="Atomic model",
                      help="The model to refine (mmCIF or PDB). Every residue needs a restraint dictionary in "
                           "the monomer library (nucleotides, amino acids, common ligands and ions have one).")
        form.addParam("inputVolume", params.PointerParam, pointerClass="Volume", allowsNull=True,
                      label="Map (optional)",
                      help="The map to refine into, with its sampling rate and origin. Empty: the map attached "
                           "to the atomic model.")
        form.addParam("useHalfMaps", params.BooleanParam, default=False,
                      label="Refine against the half maps?",
                      help="Yes: refine against the two half maps attached to the map (servalcat then weights "
                           "the data by the half-map FSC), which is better when they exist. No: the map itself.")
        form.addParam("resolution", params.FloatParam, allowsNull=False, important=True,
                      validators=[params.Positive],
                      label="Resolution (Å)",
                      help="Resolution of the map: the Fourier coefficients are used up to it.")

    # --------------------------- INSERT steps functions ---------------------------------------------------------
    def _insertAllSteps(self):
        self._insertFunctionStep(self.convertInputStep, self.inputStructure.get().getObjId(),
                                 self.getMap().getObjId(), self.useHalfMaps.get(), needsGPU=False)
        self._insertFunctionStep(self.refineStep, self._refineArgs(), needsGPU=False)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    # --------------------------- STEPS functions ----------------------------------------------------------------
    def convertInputStep(self, structureId, volumeId, halfMaps):
        """Write the map, or its two half maps, as MRC with the map's Scipion sampling rate and origin. The
        arguments only record the inputs, so that a continued run redoes the steps when they changed. Returns the
        files written."""
        volume = self.getMap()
        sources = volume.getHalfMaps(asList=True) if self.useHalfMaps.get() else [volume]
        for source, path in zip(sources, self.getMapPaths()):
            write_worker_map(volume, path, voxels=source)
        return self.getMapPaths()

    def refineStep(self, args):
        """Run ``haruspex refine-na``; return its report."""
        pwutils.cleanPath(self.getReportPath())
        self.runWorker(args, gpu=False, result=self.getReportPath())
        return [self.getReportPath()]

    def createOutputStep(self):
        """Register the refined model (mmCIF) with the map attached, once every file the report lists exists."""
        files = checked_files(self.getReportPath(), self.getReport().get("outputs", {}), ("model",))
        model = model_with_volume(files["model"], self.getMap())
        self._defineOutputs(**{REFINED_MODEL_OUTPUT: model})
        self._defineSourceRelation(self.inputStructure, model)
        if self.inputVolume.get() is not None:
            self._defineSourceRelation(self.inputVolume, model)

    # --------------------------- INFO functions -----------------------------------------------------------------
    def _validate(self):
        errors = []
        structure, volume = self.inputStructure.get(), self.getMap()
        if structure is not None and volume is None:
            errors.append("The atomic model has no map attached: choose the map to refine into.")
        if volume is not None and not (volume.getSamplingRate() or 0) > 0:
            errors.append("The map has no sampling rate: set it (Å/voxel) when importing the map.")
        halves = _half_maps(volume) if volume is not None and self.useHalfMaps.get() else None
        if halves is not None and len(halves) != 2:
            errors.append(f"The map has {len(halves)} half maps attached, not 2: answer No to 'Refine against the "
                          "half maps?', or import the map with its half maps.")
        return errors + self.installationErrors(refinement_tool_problems)

    def _summary(self):
        if not os.path.exists(self.getReportPath()):
            return ["Outputs not ready yet."]
        return refinement_lines(self.getReport())

    def _methods(self):
        if not self.hasAttribute(REFINED_MODEL_OUTPUT):
            return []
        source = self.getObjectTag("inputVolume") if self.inputVolume.get() is not None else "its attached map"
        return [f"The model {self.getObjectTag('inputStructure')} was refined into {source} "
                + refinement_method(self.getReport())]

    # --------------------------- UTILS functions ----------------------------------------------------------------
    def getPrefix(self) -> str:
        """Output file prefix: the model's file name without extension, made file-system safe."""
        name = pwutils.removeBaseExt(self.inputStructure.get().getFileName())
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "model"

    def getMap(self) -> Volume | None:
        """The map to refine into: the one chosen, else the one attached to the model (None when neither)."""
        volume = self.inputVolume.get()
        structure = self.inputStructure.get()
        if volume is None and structure is not None and structure.hasVolume():
            volume = structure.getVolume()
        return volume

    def getMapPaths(self) -> list[str]:
        """The converted map (or two half maps) given to the worker, in the extra folder."""
        if self.useHalfMaps.get():
            return [self._getExtraPath(f"{self.getPrefix()}_half{k}.mrc") for k in (1, 2)]
        return [self._getExtraPath(f"{self.getPrefix()}_map.mrc")]

    def getReportPath(self) -> str:
        """refine-na's JSON report; written last, so its presence means the refinement finished."""
        return self._getExtraPath(f"{self.getPrefix()}_refine.json")

    def getReport(self) -> dict:
        """refine-na's report (see docs/worker-contract.md)."""
        return read_json(self.getReportPath())

    def _refineArgs(self) -> list[str]:
        return refine_args(self.inputStructure.get().getFileName(), self.getMapPaths(), self.resolution.get(),
                           self._getExtraPath(), self.getPrefix())


def refinement_tool_problems() -> list[str]:
    """Why ``haruspex refine-na`` cannot run in the worker (servalcat or the monomer library missing), as the
    worker itself says it; [] when it can."""
    code, message = Plugin.runWorkerCheck("-c", REFINEMENT_TOOLS_CHECK)
    return [] if code == 0 else [f"Refinement with servalcat not possible: {message}"]


def refine_args(model: str, maps: list[str], resolution: float, outdir: str, prefix: str) -> list[str]:
    """``haruspex refine-na`` arguments: *model* into *maps* (one map or two half maps) at *resolution* Å; outputs
    ``<outdir>/<prefix>_refined.cif`` and ``<prefix>_refine.json``. Paths are made absolute (the worker runs in the
    extra folder)."""
    return ["refine-na", os.path.abspath(model), *map(os.path.abspath, maps), "--resolution", str(resolution),
            "-o", os.path.abspath(outdir), "--prefix", prefix]


def refinement_lines(report: dict) -> list[str]:
    """Summary lines of a refine-na report: geometry and map fit before → after, the backbone, warnings."""
    servalcat = report.get("servalcat", {})
    against = "the two half maps" if report.get("half_maps") else "the map"
    total = report.get("timings_s", {}).get("total")
    lines = [f"Refinement: {report.get('residues', '?')} residues into {against} at {report.get('resolution_A', '?')} "
             f"Å, servalcat {servalcat.get('version', '?')}, {servalcat.get('cycles', '?')} cycles"
             + (f", {total:.1f} s." if isinstance(total, (int, float)) else "."),
             f"Before → after: {_changes(report)}; r.m.s. shift {report.get('rms_shift_A', '?')} Å."]
    backbone = report.get("backbone", {})
    breaks = backbone.get("breaks", [])
    named = ", ".join(f"{b['chain']} {b['first']}–{b['second']}" for b in breaks[:SHOWN_BREAKS])
    more = f" and {len(breaks) - SHOWN_BREAKS} more" if len(breaks) > SHOWN_BREAKS else ""
    lines.append(f"Backbone steps: {backbone.get('linked', '?')} bonded, {len(backbone.get('bridged', []))} near "
                 f"misses closed; chain breaks kept open: {len(breaks)}" + (f" ({named}{more})." if breaks else "."))
    lines += [f"Warning: {warning}" for warning in report.get("warnings", [])]
    return lines


def refinement_method(report: dict) -> str:
    """The methods sentence after "… was refined into <map> " for a refine-na report."""
    cycles = report.get("servalcat", {}).get("cycles", "?")
    return (f"at {report.get('resolution_A', '?')} Å with servalcat refine_spa_norefmac (Yamashita et al., Acta "
            f"Cryst. D 2021; restraints from the CCP4 monomer library; {cycles} cycles; chain breaks kept open): "
            f"{_changes(report)}.")


def _changes(report: dict) -> str:
    """Bond and angle r.m.s.d. and FSCaverage, before → after."""
    geometry, fsc = report.get("geometry", {}), report.get("fsc_average", {})
    before, after = geometry.get("before", {}), geometry.get("after", {})
    return (f"bond r.m.s.d. {_value(before, 'bond_rmsd_A')} → {_value(after, 'bond_rmsd_A')} Å, angle r.m.s.d. "
            f"{_value(before, 'angle_rmsd_deg')} → {_value(after, 'angle_rmsd_deg')}°, FSCaverage "
            f"{_value(fsc, 'before')} → {_value(fsc, 'after')}")


def _half_maps(volume: Volume) -> list[str]:
    return list(volume.getHalfMaps(asList=True) or []) if volume.hasHalfMaps() else []


def _value(values: dict, key: str) -> str:
    value = values.get(key)
    return "?" if value is None else f"{value:g}"
