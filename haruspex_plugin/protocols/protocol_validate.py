"""ProtHaruspexValidate: check an atomic model residue by residue against a Haruspex annotation of its map."""
from __future__ import annotations

import csv
import os
import re

import pyworkflow.protocol.params as params
import pyworkflow.utils as pwutils
from pwem.objects import AtomStruct, Volume
from pyworkflow.constants import BETA

from .. import Plugin
from ..constants import (
    CLASS_LABELS,
    CLASSES,
    OUTPUT_NAMES,
    VALIDATION_AGREEMENT_ATTRIBUTE,
    VALIDATION_ATTRIBUTES,
    VALIDATION_MODEL_OUTPUT,
)
from ..convert import model_with_volume, read_model_cif, write_residue_attributes, write_worker_map
from .protocol_annotate import PRECISIONS
from .worker_protocol import HaruspexWorkerProtocol, checked_files, read_json

FROM_ANNOTATION, FROM_MAP = 0, 1  # annotationSource choices
SCORED_CLASSES = ("helix", "sheet", "nucleic")
CLASS_COLUMNS = ("model_class", "predicted_class")  # table columns holding class names (attributes: label values)
MAX_LISTED = 12  # disagreeing residues named per chain in the summary


class ProtHaruspexValidate(HaruspexWorkerProtocol):
    """Validates an atomic model against a Haruspex annotation, as the Haruspex paper tested its network (Mostosi et
    al. 2020): for each residue, the secondary structure of the model (hydrogen bonds and torsion angles; nucleotides
    by type) is compared with the class the annotation predicts around its backbone atoms. Recall, precision and F1
    are counted over the residues whose backbone density reaches 1 r.m.s.d. of the map. The annotation is a previous
    *annotate map* run, or is made here from a map. Outputs the model with per-residue attributes to colour it by:
    agreement, predicted and model class, probability of the model's class, backbone density.
    """
    _label = "validate model"
    _devStatus = BETA
    _possibleOutputs = {VALIDATION_MODEL_OUTPUT: AtomStruct}
    # What pwem's ChimeraAttributeViewer colours the model by.
    _OUTNAME = VALIDATION_MODEL_OUTPUT
    _ATTRNAME = VALIDATION_AGREEMENT_ATTRIBUTE

    # --------------------------- DEFINE param functions ---------------------------------------------------------
    def _defineParams(self, form):
        self.addGpuParams(form, "When annotating a map here: Yes runs the network on the first GPU given below when "
                                "the worker can use it (else on the CPU, with a warning); No runs it on the CPU.")
        form.addSection(label=pwutils.Message.LABEL_INPUT)
        form.addParam("inputStructure", params.PointerParam, pointerClass="AtomStruct", important=True,
                      label="Model",
                      help="The atomic model to validate (protein and/or nucleic acid), placed in the map.")
        form.addParam("annotationSource", params.EnumParam, choices=["previous annotation", "annotate a map"],
                      default=FROM_ANNOTATION, display=params.EnumParam.DISPLAY_HLIST,
                      label="Annotation from",
                      help="A finished 'annotate map' run of the model's map, or a map to annotate here first.")
        form.addParam("inputAnnotation", params.PointerParam, pointerClass="ProtHaruspexAnnotate",
                      condition=f"annotationSource == {FROM_ANNOTATION}", allowsNull=True,
                      label="Annotate-map run",
                      help="An 'annotate map' run of one map (not of a set). Its input map gives the backbone "
                           "density.")
        form.addParam("inputVolume", params.PointerParam, pointerClass="Volume",
                      condition=f"annotationSource == {FROM_MAP}", allowsNull=True,
                      label="Map to annotate",
                      help="The density map the model was built into; it is annotated with Haruspex first (as "
                           "'annotate map' does, with corrected tiling).")
        form.addParam("precision", params.EnumParam, choices=list(PRECISIONS), default=0,
                      condition=f"annotationSource == {FROM_MAP}", display=params.EnumParam.DISPLAY_HLIST,
                      expertLevel=params.LEVEL_ADVANCED,
                      label="Precision", help="Of the annotation: fp32 is the published network; bf16 is faster.")
        form.addParam("minBackboneDensity", params.FloatParam, default=1.0,
                      expertLevel=params.LEVEL_ADVANCED,
                      label="Minimum backbone density (r.m.s.d.)",
                      help="Residues count in recall and precision when the mean density at their backbone atoms "
                           "reaches this many r.m.s.d. of the map (1.0 in the Haruspex paper). Every residue is "
                           "in the table and the output model.")

    # --------------------------- INSERT steps functions ---------------------------------------------------------
    def _insertAllSteps(self):
        if self.annotatesMap():
            self._insertFunctionStep(self.convertInputStep, self.inputVolume.get().getObjId(), needsGPU=False)
            self._insertFunctionStep(self.annotateStep, needsGPU=True)
        self._insertFunctionStep(self.validateStep, self.inputStructure.get().getObjId(), needsGPU=False)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    # --------------------------- STEPS functions ----------------------------------------------------------------
    def convertInputStep(self, volumeId):
        """Write the map to annotate as MRC with the Scipion sampling rate and origin. *volumeId* records the input
        in the step, so a continued run redoes it when the input changed."""
        volume = self.inputVolume.get()
        write_worker_map(volume, self.getInputMapPath())

    def annotateStep(self):
        """Run ``haruspex annotate`` on the converted map."""
        pwutils.cleanPath(self.getAnnotationSummaryPath())
        self.runWorker(["annotate", os.path.abspath(self.getInputMapPath()),
                        "-o", os.path.abspath(self._getExtraPath()), "--prefix", self.getMapPrefix(),
                        "--precision", PRECISIONS[self.precision.get()],
                        "--device", "auto" if self.useGpu.get() else "cpu"], gpu=self.useGpu.get(),
                       result=self.getAnnotationSummaryPath())

    def validateStep(self, structureId):
        """Run ``haruspex validate`` on the model and the annotation. *structureId* records the input model."""
        pwutils.cleanPath(self.getReportPath())
        self.runWorker(["validate", os.path.abspath(self.inputStructure.get().getFileName()),
                        os.path.abspath(self.getAnnotationSummaryPath()),
                        "-o", os.path.abspath(self._getExtraPath()), "--prefix", self.getPrefix(),
                        "--min-backbone-density", str(self.minBackboneDensity.get())], gpu=False,
                       result=self.getReportPath())

    def createOutputStep(self):
        """Register the scored model with its per-residue attributes, after checking the worker's files."""
        files = checked_files(self.getReportPath(), self.getReport().get("outputs", {}), ("model", "table"))
        path = self._getExtraPath(f"{self.getPrefix()}_validation_scipion.cif")
        write_residue_attributes(read_model_cif(files["model"]), residue_attributes(files["table"]), path)
        model = model_with_volume(path, self.getMap()) if self.getMap() is not None else AtomStruct(filename=path)
        self._defineOutputs(**{VALIDATION_MODEL_OUTPUT: model})
        self._defineSourceRelation(self.inputStructure, model)
        self._defineSourceRelation(self.inputVolume if self.annotatesMap() else self.getAnnotationLabels(), model)

    # --------------------------- INFO functions -----------------------------------------------------------------
    def _validate(self):
        errors = []
        if self.annotatesMap():
            volume = self.inputVolume.get()
            if volume is None:
                errors.append("Choose the map to annotate.")
            elif not (volume.getSamplingRate() or 0) > 0:
                errors.append("The map has no sampling rate: set it (Å/voxel) when importing the map.")
            errors += self.gpuErrors()
        elif self.inputAnnotation.get() is None:
            errors.append("Choose a finished 'annotate map' run, or annotate a map here.")
        elif self.getAnnotationLabels() is None:
            errors.append("The chosen 'annotate map' run has no label map: it has not finished, or it annotated a "
                          "set of maps (choose a run on one map).")
        return errors + self.installationErrors(lambda: Plugin.checkWeights() if self.annotatesMap() else [])

    def _summary(self):
        if not os.path.exists(self.getReportPath()):
            return ["Outputs not ready yet."]
        return summary_lines(self.getReport())

    def _methods(self):
        if not self.hasAttribute(VALIDATION_MODEL_OUTPUT):
            return []
        report = self.getReport()
        overall = report.get("metrics", {}).get("overall", {})
        return [f"The model {self.getObjectTag('inputStructure')} was validated residue by residue against a Haruspex "
                f"annotation [Mostosi2020] of its map, as that paper tested its network: over the "
                f"{report.get('counts', {}).get('counted', '?')} residues with a mean backbone density of at least "
                f"{report.get('backbone_level_rmsd', '?')} r.m.s.d., the secondary structure predicted from the "
                f"annotation around the backbone reached a recall of {_percent(overall.get('recall'))} and a "
                f"precision of {_percent(overall.get('precision'))} against the model's own."]

    def _citations(self):
        return ["Mostosi2020"]

    # --------------------------- UTILS functions ----------------------------------------------------------------
    def annotatesMap(self) -> bool:
        return self.annotationSource.get() == FROM_MAP

    def getPrefix(self) -> str:
        """Output file prefix: the model's file name without extension, made file-system safe."""
        name = pwutils.removeBaseExt(self.inputStructure.get().getFileName())
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "model"

    def getMapPrefix(self) -> str:
        """Prefix of the annotation made here: the map's file name (as 'annotate map' names it)."""
        return super().getPrefix()

    def getInputMapPath(self) -> str:
        """The converted map annotated here (in the extra folder)."""
        return self._getExtraPath(f"{self.getMapPrefix()}.mrc")

    def getAnnotationLabels(self) -> Volume | None:
        """The label map of the chosen 'annotate map' run, or None."""
        run = self.inputAnnotation.get()
        return getattr(run, OUTPUT_NAMES["labels"], None) if run is not None else None

    def getAnnotationSummaryPath(self) -> str:
        """The annotate summary: ``PREFIX_summary.json`` beside the label map ``PREFIX_labels.mrc``
        (docs/worker-contract.md), of the run made here or of the chosen one."""
        if self.annotatesMap():
            return self._getExtraPath(f"{self.getMapPrefix()}_summary.json")
        labels = self.getAnnotationLabels().getFileName()
        return re.sub(r"_labels\.mrc$", "_summary.json", labels)

    def getMap(self) -> Volume | None:
        """The annotated map, attached to the output model."""
        if self.annotatesMap():
            return self.inputVolume.get()
        given = self.inputAnnotation.get().inputVolume.get()
        return given if isinstance(given, Volume) else None

    def getReportPath(self) -> str:
        """The worker's validation report; written last, so its presence means the validation finished."""
        return self._getExtraPath(f"{self.getPrefix()}_validation.json")

    def getReport(self) -> dict:
        """The worker's validation report (docs/worker-contract.md)."""
        return read_json(self.getReportPath())


def residue_attributes(table_path: str) -> dict[str, dict[str, object]]:
    """Scipion attribute name -> {``chain:number``: value} from ``haruspex validate``'s table; classes as label
    values (CLASSES order); residues without a value (off the map) are left out."""
    attributes: dict[str, dict[str, object]] = {name: {} for name in VALIDATION_ATTRIBUTES}
    with open(table_path, newline="") as handle:
        for row in csv.DictReader(handle):
            spec = f"{row['chain']}:{row['residue_number']}"
            for name, column in VALIDATION_ATTRIBUTES.items():
                value = row[column]
                if value == "":
                    continue
                attributes[name][spec] = CLASSES.index(value) if column in CLASS_COLUMNS else float(value)
    return attributes


def summary_lines(report: dict) -> list[str]:
    """Summary lines of a validation report: counts, the paper's metrics, per class and per chain, warnings."""
    counts, metrics = report.get("counts", {}), report.get("metrics", {})
    overall = metrics.get("overall", {})
    lines = [f"{counts.get('counted', '?')} of {counts.get('residues', '?')} residues counted (mean backbone density "
             f">= {report.get('backbone_level_rmsd', '?')} r.m.s.d.; {counts.get('below_level', '?')} below, "
             f"{counts.get('off_map', '?')} off the map).",
             f"Recall {_percent(overall.get('recall'))}, precision {_percent(overall.get('precision'))}, F1 "
             f"{_percent(overall.get('f1'))} (tp {overall.get('tp', '?')}, fp {overall.get('fp', '?')}, fn "
             f"{overall.get('fn', '?')}, tn {overall.get('tn', '?')}); agreement {_percent(overall.get('agreement'))}."]
    for name in SCORED_CLASSES:
        scores = metrics.get("per_class", {}).get(name, {})
        if scores.get("residues") or scores.get("fp"):
            lines.append(f"{CLASS_LABELS[name]}: {scores.get('residues')} residues, recall "
                         f"{_percent(scores.get('recall'))}, precision {_percent(scores.get('precision'))}.")
    for chain in report.get("chains", []):
        disagreements = chain.get("disagreements", [])
        listed = ", ".join(disagreements[:MAX_LISTED]) + (" ..." if len(disagreements) > MAX_LISTED else "")
        lines.append(f"Chain {chain.get('id')}: agreement {_percent(chain.get('agreement'))} over "
                     f"{chain.get('counted')} counted residues" + (f"; disagreeing: {listed}." if listed else "."))
    lines += [f"Warning: {warning}" for warning in report.get("warnings", [])]
    return lines


def _percent(value) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, (int, float)) else "n/a"
