"""ProtHaruspexBuildNucleicAcids: detect nucleic acids in a map with CryoREAD's networks and build a DNA/RNA model."""
from __future__ import annotations

import os

import pyworkflow.protocol.params as params
import pyworkflow.utils as pwutils
from pwem.objects import AtomStruct, Sequence, SetOfVolumes, Transform, Volume
from pyworkflow.constants import BETA

from haruspex_engine.nucleic.building.sequences import SequenceError, parse_fasta
from haruspex_engine.nucleic.classes import STAGE2_CLASSES
from haruspex_engine.nucleic.detection.detect_command import DEFAULT_STRIDE, WEIGHT_SET_CHOICES
from haruspex_engine.weights import WeightsError, choose_cryoread_set

from .. import Plugin
from ..constants import (
    ENGINE_MODULE,
    NA_CONFIDENCE_ATTRIBUTE,
    NA_DETECTION_OUTPUT,
    NA_MAP_OUTPUTS,
    NA_MASKED_MAP_OUTPUT,
    NA_MODEL_NO_SEQUENCE_OUTPUT,
    NA_MODEL_OUTPUT,
    NA_MODEL_REFINED_OUTPUT,
)
from ..convert import model_with_volume, write_confidence_attribute, write_worker_map
from .protocol_refine import (
    refine_args,
    refinement_lines,
    refinement_method,
    refinement_tool_problems,
)
from .worker_protocol import HaruspexWorkerProtocol, checked_files, read_json

PRECISIONS = ("fp32", "bf16")
WEIGHT_SETS = tuple(WEIGHT_SET_CHOICES)  # auto, default, paper, 0-3A, 5-10A: the worker's --weight-set values
MAX_RESOLUTION_A = 10.0  # CryoREAD's networks were trained on maps up to 10 Å
# Build-report output key -> protocol output name, for the two models.
MODEL_OUTPUTS = {"model": NA_MODEL_OUTPUT, "model_without_sequence": NA_MODEL_NO_SEQUENCE_OUTPUT}
MASKED_MAP_KEY = "na_masked_map"  # build report output key of the nucleic-acid-masked map


class ProtHaruspexBuildNucleicAcids(HaruspexWorkerProtocol):
    """Builds a DNA/RNA model into a cryo-EM map, as CryoREAD does (Wang, Terashi & Kihara 2023): two deep networks
    detect sugar, phosphate, base and base-type (A, U/T, C, G) density and protein, then the backbone is traced
    through the sugar detections, nucleotides are placed, and, when chain sequences are given, the model is put in
    their register. Outputs the eight detection maps (1 Å grid over the input map), the map masked to the nucleic
    acids (CryoREAD's map for refinement), the model with its per-residue confidence, with a sequence the model built
    without it, and optionally the model refined into the map with servalcat.
    """
    _label = "build nucleic acids"
    _devStatus = BETA
    _possibleOutputs = {
        NA_DETECTION_OUTPUT: SetOfVolumes,
        **{name: Volume for name in NA_MAP_OUTPUTS.values()},
        NA_MASKED_MAP_OUTPUT: Volume,
        NA_MODEL_OUTPUT: AtomStruct,
        NA_MODEL_NO_SEQUENCE_OUTPUT: AtomStruct,
        NA_MODEL_REFINED_OUTPUT: AtomStruct,
    }
    # What pwem's ChimeraAttributeViewer colours the model by.
    _OUTNAME = NA_MODEL_OUTPUT
    _ATTRNAME = NA_CONFIDENCE_ATTRIBUTE

    # --------------------------- DEFINE param functions ---------------------------------------------------------
    def _defineParams(self, form):
        self.addGpuParams(form, "Yes: run the detection networks on the first GPU given below when the worker can use "
                                "it; when no GPU is usable the worker runs on the CPU (much slower) and says so in the "
                                "log and the summary. No: run on the CPU.")
        form.addSection(label=pwutils.Message.LABEL_INPUT)
        form.addParam("inputVolume", params.PointerParam, pointerClass="Volume", important=True,
                      label="Input map",
                      help="Density map to build into. It is resampled to a 1 Å grid, cropped to its positive "
                           "region and normalised, as CryoREAD does; the detection maps stay on that 1 Å grid, "
                           "placed exactly over the input map.")
        form.addParam("resolution", params.FloatParam, allowsNull=False, important=True,
                      label="Resolution (Å)",
                      help="Resolution of the map. It chooses the network weights, as CryoREAD does: below 3 Å the "
                           "0-3 Å networks, 3-5 Å the default ones, 5-10 Å the 5-10 Å ones. Maps worse than "
                           f"{MAX_RESOLUTION_A:g} Å are refused.")
        form.addParam("contourLevel", params.FloatParam, allowsNull=True, default=None,
                      label="Contour level (optional)",
                      help="Density threshold in map units: 64³ boxes with almost no density above it are skipped. "
                           "CryoREAD suggests half the author's recommended contour level. A negative value first "
                           "shifts the whole map up by its magnitude. Empty: 0. The wizard proposes half of "
                           "(solvent median + 3 robust standard deviations) of the map.")
        form.addParam("inputSequences", params.PointerParam, pointerClass="SetOfSequences,Sequence",
                      allowsNull=True,
                      label="Chain sequences (optional)",
                      help="DNA/RNA sequences of the chains in the map (one Sequence, or a set of them). The model "
                           "is then built in their register (residue names and numbers, chain ids from PDB-style "
                           "names) and the model built without them is output too. Protein records are skipped.")
        form.addParam("dna", params.BooleanParam, default=False,
                      label="Name unassigned residues as DNA?",
                      help="Residues no sequence was matched to are named as RNA (A, C, G, U) by default; Yes "
                           "names them as DNA (DA, DC, DG, DT). Residues matched to a given chain take its kind.")
        form.addParam("refineModel", params.BooleanParam, default=True,
                      label="Refine the model with servalcat?",
                      help="Yes: refine the built model into the input map at the given resolution with servalcat "
                           "(coordinates and B-factors, CCP4 monomer library restraints; chain breaks between "
                           "traced fragments stay open) and output it as a second model, with its geometry and "
                           "map fit before and after in the summary. The worker environment installs servalcat "
                           "and the monomer library; validation checks they are usable. The same refinement is "
                           "the protocol 'refine model (servalcat)'.")

        form.addSection(label="Detection and building")
        form.addParam("weightSet", params.EnumParam, choices=list(WEIGHT_SETS), default=0,
                      label="Network weights",
                      help="auto: chosen from the resolution like CryoREAD. default, 0-3A and 5-10A: the published "
                           "sets for 3-5 Å, better than 3 Å and 5-10 Å maps; paper: the networks of the 2023 "
                           "paper. Install them with `scipion3 installb haruspex-weights` or `haruspex weights "
                           "download --set cryoread-<name>`.")
        form.addParam("useDemoModel", params.BooleanParam, default=False,
                      expertLevel=params.LEVEL_ADVANCED,
                      label="Use the demo detector (not the published networks)?",
                      help="Detect with the small demo network bundled with the plugin instead of CryoREAD's "
                           "published weights: trained by scipion-em-haruspex on simulated maps at 2.5-5 Å "
                           "(nucleic acids among protein), to try nucleic-acid building without installing the "
                           "weights. Its outputs are labelled DEMO MODEL; it finds fewer and less accurate "
                           "nucleotides than the published networks, more so on real maps. Not for real work.")
        form.addParam("stride", params.IntParam, default=DEFAULT_STRIDE, validators=[params.Range(1, 64)],
                      expertLevel=params.LEVEL_ADVANCED,
                      label="Box stride (Å)",
                      help="Step between the 64³ boxes the networks see, in voxels of the 1 Å grid. 32 (CryoREAD's "
                           "code default) keeps every voxel at least 16 Å inside some box; 16 (the paper's "
                           "setting) needs up to 8 times more boxes for slightly smoother maps.")
        form.addParam("traceSolutions", params.IntParam, default=300, validators=[params.Positive],
                      expertLevel=params.LEVEL_ADVANCED,
                      label="Tracing solutions",
                      help="The backbone tracing (vehicle routing) stops after this many solutions: the result "
                           "does not depend on the machine's speed.")
        form.addParam("traceTimeLimit", params.FloatParam, default=120.0, validators=[params.Positive],
                      expertLevel=params.LEVEL_ADVANCED,
                      label="Tracing time limit (s)",
                      help="Safety limit on tracing; when it is what stops the search, the summary says so.")
        form.addParam("assignTimeLimit", params.FloatParam, default=600.0, validators=[params.Positive],
                      expertLevel=params.LEVEL_ADVANCED,
                      label="Sequence assignment safety limit (s)",
                      help="Wall-clock safety net on the choice of sequence fragments (CP-SAT). The search stops on "
                           "a deterministic work budget that grows with the problem (the same model on any "
                           "machine) or when it proves the best choice; when this limit stops it instead, the "
                           "summary says so.")
        form.addParam("precision", params.EnumParam, choices=list(PRECISIONS), default=0,
                      display=params.EnumParam.DISPLAY_HLIST, expertLevel=params.LEVEL_ADVANCED,
                      label="Precision",
                      help="fp32 computes the published networks exactly; bf16 is faster on CPUs and GPUs with "
                           "native bfloat16 support, with slightly different probabilities.")

    # --------------------------- INSERT steps functions ---------------------------------------------------------
    def _insertAllSteps(self):
        sequences = self.inputSequences.get()
        self._insertFunctionStep(self.convertInputStep, self.inputVolume.get().getObjId(),
                                 None if sequences is None else sequences.getObjId(), needsGPU=False)
        self._insertFunctionStep(self.detectStep, self._detectArgs(), needsGPU=True)
        self._insertFunctionStep(self.buildStep, self._buildArgs(), needsGPU=False)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)
        if self.refineModel.get():  # after the build's outputs are registered: a failed refinement keeps them
            self._insertFunctionStep(self.refineStep, self._refineArgs(), needsGPU=False)
            self._insertFunctionStep(self.createRefinedOutputStep, needsGPU=False)

    # --------------------------- STEPS functions ----------------------------------------------------------------
    def convertInputStep(self, volumeId, sequencesId):
        """Write the input map (MRC with the Scipion sampling rate and origin) and the sequences (FASTA).

        The ids are not used: they record the inputs in the step, so a continued run redoes the step (and the
        steps after it) when an input changed. Returns the files written (checked again on continue).
        """
        volume = self.inputVolume.get()
        write_worker_map(volume, self.getInputMapPath())
        written = [self.getInputMapPath()]
        if self.hasSequences():
            _write_atomically(self.getFastaPath(), self.getFastaText())
            written.append(self.getFastaPath())
        return written

    def detectStep(self, args):
        """Run ``haruspex detect-na`` (resumable: a rerun reuses the stages it finished); return its summary."""
        pwutils.cleanPath(self.getDetectionSummaryPath(), self.getBuildReportPath())
        self.runWorker(args, gpu=self.useGpu.get())
        return [self.getDetectionSummaryPath()]

    def buildStep(self, args):
        """Run ``haruspex build-na`` on the finished detection; return its report."""
        pwutils.cleanPath(self.getBuildReportPath(), self.getRefineReportPath())
        self.runWorker(args, gpu=False)
        return [self.getBuildReportPath()]

    def refineStep(self, args):
        """Run ``haruspex refine-na`` on the built model against the input map; return its report (nothing when no
        model was built)."""
        pwutils.cleanPath(self.getRefineReportPath())
        if self.getBuildReport().get("residues", 0) == 0:
            self.info("No model was built: nothing to refine.")
            return []
        self.runWorker(args, gpu=False)
        return [self.getRefineReportPath()]

    def createOutputStep(self):
        """Register the detection maps and, when a model was built, the models, all at once, after checking every
        file the worker listed exists. Outputs of an earlier run of this protocol are replaced."""
        detection, build = self.getDetectionSummary(), self.getBuildReport()
        maps = checked_files(self.getDetectionSummaryPath(), detection.get("outputs", {}), STAGE2_CLASSES)
        expected = [MASKED_MAP_KEY, *(["model"] if build.get("residues", 0) > 0 else [])]
        built = checked_files(self.getBuildReportPath(), build.get("outputs", {}), expected)

        grid = detection["working_grid"]
        outputs = {NA_DETECTION_OUTPUT: self._detectionSet(maps, grid)}
        for cls, name in NA_MAP_OUTPUTS.items():
            outputs[name] = _probability_volume(maps[cls], grid, cls)
        outputs[NA_MASKED_MAP_OUTPUT] = _grid_volume(
            built[MASKED_MAP_KEY], grid, "nucleic-acid masked map",
            "working density without protein (p >= 0.6) and non-nucleic-acid (sugar + phosphate + base <= 0.1) "
            "voxels: CryoREAD's map for refinement")
        for key in (key for key in MODEL_OUTPUTS if key in built):
            path = os.path.join(os.path.dirname(built[key]), f"{pwutils.removeBaseExt(built[key])}_scipion.cif")
            write_confidence_attribute(built[key], path)
            outputs[MODEL_OUTPUTS[key]] = model_with_volume(path, self.inputVolume.get())

        # A continued run replaces this run's outputs. (Scipion's project keeps any output name a continued run no
        # longer defines, e.g. a model when the new build found none: use Restart for a clean slate.)
        for _, output in list(self.iterOutputAttributes()):
            self.deleteOutput(output)
        self._defineOutputs(**outputs)
        for output in outputs.values():
            self._defineSourceRelation(self.inputVolume, output)
            if self.hasSequences() and isinstance(output, AtomStruct):
                self._defineSourceRelation(self.inputSequences, output)

    def createRefinedOutputStep(self):
        """Register the refined model with the input map attached (nothing when no model was built)."""
        if not os.path.exists(self.getRefineReportPath()):
            return
        files = checked_files(self.getRefineReportPath(), self.getRefineReport().get("outputs", {}), ("model",))
        if self.hasAttribute(NA_MODEL_REFINED_OUTPUT):  # a continued run replaces it
            self.deleteOutput(getattr(self, NA_MODEL_REFINED_OUTPUT))
        model = model_with_volume(files["model"], self.inputVolume.get())
        self._defineOutputs(**{NA_MODEL_REFINED_OUTPUT: model})
        self._defineSourceRelation(self.inputVolume, model)
        if self.hasSequences():
            self._defineSourceRelation(self.inputSequences, model)

    # --------------------------- INFO functions -----------------------------------------------------------------
    def _validate(self):
        errors = []
        volume = self.inputVolume.get()
        if volume is not None and not (volume.getSamplingRate() or 0) > 0:
            errors.append("The input map has no sampling rate: set it (Å/voxel) when importing the map.")
        resolution = self.resolution.get()
        resolutionOk = resolution is not None and 0 < resolution <= MAX_RESOLUTION_A
        if resolution is not None and not resolutionOk:
            errors.append(f"Resolution {resolution:g} Å: CryoREAD's networks work on maps from 0 to "
                          f"{MAX_RESOLUTION_A:g} Å.")
        errors += self.gpuErrors()
        if self.hasSequences():
            errors += self._sequenceProblems()
        return errors + self.installationErrors(
            lambda: [*(self._weightProblems() if resolutionOk and not self.useDemoModel.get() else []),
                     *self._refinementProblems()])

    def _summary(self):
        if not os.path.exists(self.getDetectionSummaryPath()):
            return ["Outputs not ready yet."]
        detection = self.getDetectionSummary()
        weights = detection.get("weights", {})
        lines = [f"Detection: weights {weights.get('set', '?')} ({weights.get('why', '?')}), "
                 f"device {detection.get('device', '?')}, {detection.get('precision', '?')}, "
                 f"stride {detection.get('stride', '?')} Å, {_seconds(detection)}."]
        warnings = list(detection.get("warnings", []))
        if os.path.exists(self.getBuildReportPath()):
            build = self.getBuildReport()
            lines += self._buildLines(build)
            warnings += [w for w in build.get("warnings", []) if w not in warnings]
            if self.refineModel.get() and build.get("residues", 0) == 0:
                lines.append("Refinement: skipped, no model was built.")
        if os.path.exists(self.getRefineReportPath()):
            lines += refinement_lines(self.getRefineReport())
        lines += [f"Warning: {warning}" for warning in warnings]
        return lines

    def _methods(self):
        if not self.hasAttribute(NA_DETECTION_OUTPUT) or not os.path.exists(self.getBuildReportPath()):
            return []
        detection, build = self.getDetectionSummary(), self.getBuildReport()
        weights = detection.get("weights", {}).get("set", "?")
        networks = ("the plugin's demo detection network (a small network trained on simulated maps, not "
                    "CryoREAD's published networks)" if detection.get("network") == "demo"
                    else f"the detection networks of CryoREAD [Wang2023] (weights {weights})")
        text = (f"Nucleic acids were searched for in the map {self.getObjectTag('inputVolume')} with {networks} "
                f"(boxes of 64³ Å every {detection.get('stride', '?')} Å on a 1 Å grid). ")
        if build.get("residues", 0) == 0:
            return [text + "No nucleic-acid chain could be traced."]
        sequence = (f"and assigned to the sequences {self.getObjectTag('inputSequences')}"
                    if self.hasSequences() else "without sequence information")
        text += (f"A model of {build['residues']} nucleotides in {_count(len(build.get('chains', [])), 'chain')} "
                 f"was built by tracing the backbone through the sugar detections {sequence}; each residue's "
                 "confidence (0 to 1) is in its B-factor.")
        if self.hasAttribute(NA_MODEL_REFINED_OUTPUT):
            text += " It was then refined into the map " + refinement_method(self.getRefineReport())
        return [text]

    def _citations(self):
        return ["Wang2023"]

    # --------------------------- UTILS functions ----------------------------------------------------------------
    def getInputMapPath(self) -> str:
        """The converted input map given to the worker (in the protocol's extra folder)."""
        return self._getExtraPath(f"{self.getPrefix()}.mrc")

    def getFastaPath(self) -> str:
        """The chain sequences given to the worker (FASTA, in the extra folder)."""
        return self._getExtraPath(f"{self.getPrefix()}_sequences.fasta")

    def getDetectionSummaryPath(self) -> str:
        """detect-na's JSON summary; written last, so its presence means the detection finished."""
        return self._getExtraPath(f"{self.getPrefix()}_summary.json")

    def getBuildReportPath(self) -> str:
        """build-na's JSON report; written last, so its presence means the build finished."""
        return self._getExtraPath(f"{self.getPrefix()}_build.json")

    def getModelPath(self) -> str:
        """build-na's model (mmCIF, B-factor = confidence), when one was built."""
        return self._getExtraPath(f"{self.getPrefix()}_model.cif")

    def getRefineReportPath(self) -> str:
        """refine-na's JSON report on the built model; written last, so its presence means refinement finished."""
        return self._getExtraPath(f"{self.getPrefix()}_refine.json")

    def getRefineReport(self) -> dict:
        """refine-na's report (see docs/worker-contract.md)."""
        return read_json(self.getRefineReportPath())

    def getDetectionSummary(self) -> dict:
        """detect-na's summary (see docs/worker-contract.md)."""
        return read_json(self.getDetectionSummaryPath())

    def getBuildReport(self) -> dict:
        """build-na's report (see docs/worker-contract.md)."""
        return read_json(self.getBuildReportPath())

    def hasSequences(self) -> bool:
        return self.inputSequences.get() is not None

    def getFastaText(self) -> str:
        """Every record of the sequence input as FASTA text (the worker skips protein records, and says so)."""
        given = self.inputSequences.get()
        records = [given] if isinstance(given, Sequence) else given  # a set reuses one item object: no list()
        return "".join(f">{_fasta_header(record)}\n{record.getSequence() or ''}\n" for record in records)

    def getWeightSetKey(self) -> str:
        """Key of the CryoREAD weight set the worker will use; WeightsError when the resolution allows none."""
        named = WEIGHT_SET_CHOICES[WEIGHT_SETS[self.weightSet.get()]]
        return named or choose_cryoread_set(self.resolution.get())[0]

    def _detectArgs(self) -> list[str]:
        args = ["detect-na", os.path.abspath(self.getInputMapPath()),
                "--resolution", str(self.resolution.get()),
                "-o", os.path.abspath(self._getExtraPath()),
                "--prefix", self.getPrefix(),
                "--stride", str(self.stride.get()),
                "--device", "auto" if self.useGpu.get() else "cpu"]
        if self.useDemoModel.get():
            args.append("--demo-model")  # fp32 and its own network: no weight set, no precision choice
        else:
            args += ["--weight-set", WEIGHT_SETS[self.weightSet.get()],
                     "--precision", PRECISIONS[self.precision.get()]]
        if self.contourLevel.get() is not None:
            args += ["--contour", str(self.contourLevel.get())]
        return args

    def _buildArgs(self) -> list[str]:
        args = ["build-na", os.path.abspath(self.getDetectionSummaryPath()),
                "--trace-solutions", str(self.traceSolutions.get()),
                "--trace-time-limit", str(self.traceTimeLimit.get()),
                "--assign-time-limit", str(self.assignTimeLimit.get())]
        if self.hasSequences():
            args += ["--sequence", os.path.abspath(self.getFastaPath())]
        if self.dna.get():
            args.append("--dna")
        return args

    def _refineArgs(self) -> list[str]:
        """refine-na on build-na's model (``<prefix>_model.cif``) into the converted input map; outputs
        ``<prefix>_refined.cif`` and ``<prefix>_refine.json`` in the extra folder."""
        return refine_args(self.getModelPath(), [self.getInputMapPath()], self.resolution.get(), self._getExtraPath(),
                           self.getPrefix())

    def _refinementProblems(self) -> list[str]:
        """Why the asked-for refinement could not run (the worker's check), with what to do; [] otherwise."""
        if not self.refineModel.get():
            return []
        return [f"{problem}. Install it, or answer No to 'Refine the model with servalcat?'."
                for problem in refinement_tool_problems()]

    def _sequenceProblems(self) -> list[str]:
        """Why the sequence input cannot be used (the worker's own FASTA rules), or []."""
        try:
            parse_fasta(self.getFastaText(), "Chain sequences")
        except SequenceError as exc:
            return [str(exc)]
        return []

    def _weightProblems(self) -> list[str]:
        """Problems locating the CryoREAD weights, as the worker reports them (``haruspex weights path``)."""
        try:
            key = self.getWeightSetKey()
        except WeightsError as exc:
            return [str(exc)]
        code, message = Plugin.runWorkerCheck("-m", ENGINE_MODULE, "weights", "path", "--set", key)
        return [] if code == 0 else [f"CryoREAD weights not usable: {message}"]

    def _detectionSet(self, maps: dict[str, str], grid: dict) -> SetOfVolumes:
        detection = self._createSetOfVolumes(suffix="Detection")
        detection.setSamplingRate(float(grid["voxel_size_xyz"][0]))
        for cls in STAGE2_CLASSES:
            detection.append(_probability_volume(maps[cls], grid, cls))
        return detection

    def _buildLines(self, build: dict) -> list[str]:
        residues = build.get("residues", 0)
        if residues == 0:
            return ["No nucleic acid found: no chain could be traced, so only the detection maps were registered."]
        chains = build.get("chains", [])
        ids = ", ".join(f"{c['id']} ({c['residues']})" for c in chains)
        lines = [f"Model: {_count(len(chains), 'chain')}, {residues} nucleotides; chains (residues): {ids}. "
                 f"Build {_seconds(build)}."]
        assignment = build.get("assignment")
        if assignment is not None:
            lines.append(self._coverageLine(assignment))
        trace = build.get("trace") or {}
        lines.append(f"Tracing stopped by the {trace.get('stopped_by', '?')} after {trace.get('solutions', '?')} "
                     f"solutions.")
        return lines

    def _coverageLine(self, assignment: dict) -> str:
        """How much of the given nucleic-acid sequence the model covers (matched residues / sequence length)."""
        try:
            length = sum(len(chain.sequence) for chain in parse_fasta(_read_text(self.getFastaPath())))
        except (OSError, SequenceError):
            length = 0
        matched = assignment.get("matched_nodes", 0)
        share = f" ({100 * matched / length:.0f}%)" if length else ""
        return (f"Sequence coverage: {matched} of {length or '?'} nucleotides of the given chains{share}; "
                f"fragment choice {assignment.get('status', '?')}.")


def _probability_volume(path: str, grid: dict, cls: str) -> Volume:
    """A Volume for the detection map of class *cls* (see _grid_volume)."""
    return _grid_volume(path, grid, cls, f"{cls}: CryoREAD stage-2 probability (0..1)")


def _grid_volume(path: str, grid: dict, label: str, comment: str) -> Volume:
    """A Volume for a map on the worker's working grid (1 Å voxels; origin (x, y, z) Å of voxel 0)."""
    volume = Volume()
    volume.setFileName(path)
    volume.setSamplingRate(float(grid["voxel_size_xyz"][0]))
    origin = Transform()
    origin.setShifts(*(float(v) for v in grid["origin_xyz"]))
    volume.setOrigin(origin)
    volume.setObjLabel(label)
    volume.setObjComment(comment)
    return volume


def _fasta_header(record: Sequence) -> str:
    """FASTA header of a pwem Sequence: its description when that starts with its id (Biopython's way), else
    id (or name) and description."""
    identifier = record.getId() or record.getSeqName() or ""
    description = record.getDescription() or ""
    if identifier and description.startswith(identifier):
        return description
    return " ".join(part for part in (identifier, description) if part) or "sequence"


def _write_atomically(path: str, text: str) -> None:
    partial = path + ".part"
    with open(partial, "w") as handle:
        handle.write(text)
    os.replace(partial, path)


def _read_text(path: str) -> str:
    with open(path) as handle:
        return handle.read()


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _seconds(report: dict) -> str:
    total = report.get("timings_s", {}).get("total")
    return f"{total:.1f} s" if isinstance(total, (int, float)) else "time unknown"
