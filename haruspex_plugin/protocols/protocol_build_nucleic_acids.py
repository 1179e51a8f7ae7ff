"""ProtHaruspexBuildNucleicAcids: detect nucleic acids in a map with CryoREAD's networks and build a DNA/RNA model."""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial

import pyworkflow.protocol.params as params
import pyworkflow.utils as pwutils
from pwem.objects import AtomStruct, Sequence, SetOfAtomStructs, SetOfVolumes, Transform, Volume
from pyworkflow.constants import BETA

from haruspex_engine.nucleic.building import SOLUTION_LIMIT, SUGAR_NODE_SOURCES
from haruspex_engine.nucleic.building.sequences import SequenceError, parse_fasta
from haruspex_engine.nucleic.classes import STAGE2_CLASSES
from haruspex_engine.nucleic.detection.detect_command import DEFAULT_STRIDE, WEIGHT_SET_CHOICES
from haruspex_engine.weights import WeightsError, choose_cryoread_set

from .. import Plugin
from ..constants import (
    ENGINE_MODULE,
    NA_BATCH_MAP_OUTPUTS,
    NA_BATCH_MASKED_MAP_OUTPUT,
    NA_BATCH_MODEL_NO_SEQUENCE_OUTPUT,
    NA_BATCH_MODEL_OUTPUT,
    NA_BATCH_MODEL_REFINED_OUTPUT,
    NA_CONFIDENCE_ATTRIBUTE,
    NA_DETECTION_OUTPUT,
    NA_MAP_OUTPUTS,
    NA_MASKED_MAP_OUTPUT,
    NA_MODEL_NO_SEQUENCE_OUTPUT,
    NA_MODEL_OUTPUT,
    NA_MODEL_REFINED_OUTPUT,
)
from ..convert import model_with_volume, write_confidence_attribute, write_worker_map
from .map_stream import MapStreamProtocol
from .protocol_refine import (
    refine_args,
    refinement_lines,
    refinement_method,
    refinement_tool_problems,
)
from .worker_protocol import checked_files, read_json

PRECISIONS = ("fp32", "bf16")
WEIGHT_SETS = tuple(WEIGHT_SET_CHOICES)  # auto, default, paper, 0-3A, 5-10A: the worker's --weight-set values
MAX_RESOLUTION_A = 10.0  # CryoREAD's networks were trained on maps up to 10 Å
# Build-report output key -> protocol output name, for the two models.
MODEL_OUTPUTS = {"model": NA_MODEL_OUTPUT, "model_without_sequence": NA_MODEL_NO_SEQUENCE_OUTPUT}
# The same for a set of maps: build-report output key -> name of the set of models.
BATCH_MODEL_OUTPUTS = {"model": NA_BATCH_MODEL_OUTPUT, "model_without_sequence": NA_BATCH_MODEL_NO_SEQUENCE_OUTPUT}
MASKED_MAP_KEY = "na_masked_map"  # build report output key of the nucleic-acid-masked map


class ProtHaruspexBuildNucleicAcids(MapStreamProtocol):
    """Builds a DNA/RNA model into a cryo-EM map, as CryoREAD does (Wang, Terashi & Kihara 2023): two deep networks
    detect sugar, phosphate, base and base-type (A, U/T, C, G) density and protein, then the backbone is traced
    through the sugar detections, nucleotides are placed, and, when chain sequences are given, the model is put in
    their register. Outputs the eight detection maps (1 Å grid over the input map), the map masked to the nucleic
    acids (CryoREAD's map for refinement), the model with its per-residue confidence, with a sequence the model built
    without it, and optionally the model refined into the map with servalcat.

    A set of maps is worked on map by map (files in extra/map_<id>/), also while its producer is still adding maps
    (Scipion streaming, see MapStreamProtocol): each map's results are added to one set per output kind as soon as
    they exist (the sugar, phosphate and protein maps, the masked map, the models), each item with the id of its
    input map; a map where no nucleic acid was found has no item in the sets of models.
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
        **{name: SetOfVolumes for name in NA_BATCH_MAP_OUTPUTS.values()},
        NA_BATCH_MASKED_MAP_OUTPUT: SetOfVolumes,
        NA_BATCH_MODEL_OUTPUT: SetOfAtomStructs,
        NA_BATCH_MODEL_NO_SEQUENCE_OUTPUT: SetOfAtomStructs,
        NA_BATCH_MODEL_REFINED_OUTPUT: SetOfAtomStructs,
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
        form.addParam("inputVolume", params.PointerParam, pointerClass="Volume,SetOfVolumes", important=True,
                      label="Input map(s)",
                      help="Density map to build into, or a set of maps to build into one after the other (also "
                           "while its producer is still adding maps: each map is built as it arrives). Each map is "
                           "resampled to a 1 Å grid, cropped to its positive region and normalised, as CryoREAD "
                           "does; the detection maps stay on that 1 Å grid, placed exactly over the input map.")
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
        form.addParam("sugarNodes", params.EnumParam, choices=list(SUGAR_NODE_SOURCES), default=0,
                      display=params.EnumParam.DISPLAY_HLIST, expertLevel=params.LEVEL_ADVANCED,
                      label="Sugar nodes",
                      help="anchored: one sugar between every two phosphate nodes a backbone step apart, where the "
                           "sugar map is largest (the sugar map's own modes where no phosphate pair gives one); it "
                           "copes with sugar maps that run as one tube along the backbone. mean-shift: the modes of "
                           "the sugar map, as CryoREAD does.")
        form.addParam("traceSolutions", params.IntParam, default=SOLUTION_LIMIT, validators=[params.Positive],
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
        if self.streamsMaps():
            self._insertStreamSteps()
            return
        self._insertFunctionStep(self.convertInputStep, self.inputVolume.get().getObjId(), self._sequencesId(),
                                 needsGPU=False)
        self._insertFunctionStep(self.detectStep, self._detectArgs(), needsGPU=True)
        self._insertFunctionStep(self.buildStep, self._buildArgs(), needsGPU=False)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)
        if self.refineModel.get():  # after the build's outputs are registered: a failed refinement keeps them
            self._insertFunctionStep(self.refineStep, self._refineArgs(), needsGPU=False)
            self._insertFunctionStep(self.createRefinedOutputStep, needsGPU=False)

    def streamsMaps(self) -> bool:
        """A set of maps is always laid out as a streaming run: each map's results are registered as soon as they
        exist; the outputs are closed at the end, at once when the set is already closed."""
        return self.isBatch()

    def _insertMapSteps(self, mapId: int) -> int:
        """Convert, detect, build and register the input set's map *mapId*; then refine it and register the refined
        model when asked to."""
        convert = self._insertFunctionStep(self.convertInputStep, mapId, self._sequencesId(), prerequisites=[],
                                           needsGPU=False)
        detect = self._insertFunctionStep(self.detectStep, self._detectArgs(mapId), mapId, prerequisites=[convert],
                                          needsGPU=True)
        build = self._insertFunctionStep(self.buildStep, self._buildArgs(mapId), mapId, prerequisites=[detect],
                                         needsGPU=False)
        last = self._insertFunctionStep(self.registerMapStep, mapId, prerequisites=[build], needsGPU=False)
        if self.refineModel.get():
            refine = self._insertFunctionStep(self.refineStep, self._refineArgs(mapId), mapId, prerequisites=[last],
                                              needsGPU=False)
            last = self._insertFunctionStep(self.registerRefinedModelStep, mapId, prerequisites=[refine],
                                            needsGPU=False)
        return last

    def _modelSources(self) -> list:
        """The inputs a model derives from besides the map: the sequences, when given."""
        return [self.inputSequences] if self.hasSequences() else []

    def _sequencesId(self) -> int | None:
        sequences = self.inputSequences.get()
        return None if sequences is None else sequences.getObjId()

    # --------------------------- STEPS functions ----------------------------------------------------------------
    def convertInputStep(self, volumeId, sequencesId):
        """Write the input map (MRC with the Scipion sampling rate and origin) and the sequences (FASTA); for a set
        of maps, its map of id *volumeId*, in the map's folder.

        For a single map the ids are not used: they record the inputs in the step, so a continued run redoes the
        step (and the steps after it) when an input changed. Returns the files written (checked again on continue).
        """
        mapId = volumeId if self.isBatch() else None
        pwutils.makePath(self.getMapFolder(mapId))
        write_worker_map(self.getSampledInputMap(mapId), self.getInputMapPath(mapId))
        written = [self.getInputMapPath(mapId)]
        if self.hasSequences():
            _write_atomically(self.getFastaPath(mapId), self.getFastaText())
            written.append(self.getFastaPath(mapId))
        return written

    def detectStep(self, args, mapId: int | None = None):
        """Run ``haruspex detect-na`` (resumable: a rerun reuses the stages it finished) on the input map (*mapId*:
        the map of an input set); return its summary."""
        pwutils.cleanPath(self.getDetectionSummaryPath(mapId), self.getBuildReportPath(mapId))
        self.runWorker(args, gpu=self.useGpu.get(), result=self.getDetectionSummaryPath(mapId))
        return [self.getDetectionSummaryPath(mapId)]

    def buildStep(self, args, mapId: int | None = None):
        """Run ``haruspex build-na`` on the finished detection; return its report."""
        pwutils.cleanPath(self.getBuildReportPath(mapId), self.getRefineReportPath(mapId))
        self.runWorker(args, gpu=False, result=self.getBuildReportPath(mapId))
        return [self.getBuildReportPath(mapId)]

    def refineStep(self, args, mapId: int | None = None):
        """Run ``haruspex refine-na`` on the built model against the input map; return its report (nothing when no
        model was built)."""
        pwutils.cleanPath(self.getRefineReportPath(mapId))
        if self.getBuildReport(mapId).get("residues", 0) == 0:
            self.info("No model was built: nothing to refine.")
            return []
        self.runWorker(args, gpu=False, result=self.getRefineReportPath(mapId))
        return [self.getRefineReportPath(mapId)]

    def registerMapStep(self, mapId: int):
        """Add the results of the input set's map *mapId* to the output sets (its sugar, phosphate and protein
        maps, its masked map and its models when one was built), after checking every file the worker listed."""
        results = self._mapResults(mapId)
        items = {NA_BATCH_MAP_OUTPUTS[cls]: volume for cls, volume in results.maps.items()}
        items[NA_BATCH_MASKED_MAP_OUTPUT] = results.masked
        items.update({BATCH_MODEL_OUTPUTS[key]: model for key, model in results.models.items()})
        for name, item in items.items():
            item.setObjId(mapId)
            if isinstance(item, AtomStruct):
                self.appendToOutputSet(name, item, partial(self._newModelSet, name), self._modelSources())
            else:
                self.appendToOutputSet(name, item, partial(self._newMapSet, name, item.getSamplingRate()))

    def registerRefinedModelStep(self, mapId: int):
        """Add the refined model of the input set's map *mapId* to the set of refined models (nothing when no model
        was built)."""
        model = self._refinedModel(mapId)
        if model is not None:
            model.setObjId(mapId)
            self.appendToOutputSet(NA_BATCH_MODEL_REFINED_OUTPUT, model,
                                   partial(self._newModelSet, NA_BATCH_MODEL_REFINED_OUTPUT), self._modelSources())

    def createOutputStep(self):
        """Register the detection maps and, when a model was built, the models, all at once, after checking every
        file the worker listed exists. Outputs of an earlier run of this protocol are replaced."""
        results = self._mapResults()
        outputs = {NA_DETECTION_OUTPUT: self._detectionSet(results.detection, results.grid)}
        outputs.update({NA_MAP_OUTPUTS[cls]: volume for cls, volume in results.maps.items()})
        outputs[NA_MASKED_MAP_OUTPUT] = results.masked
        outputs.update({MODEL_OUTPUTS[key]: model for key, model in results.models.items()})

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
        model = self._refinedModel()
        if model is None:
            return
        if self.hasAttribute(NA_MODEL_REFINED_OUTPUT):  # a continued run replaces it
            self.deleteOutput(getattr(self, NA_MODEL_REFINED_OUTPUT))
        self._defineOutputs(**{NA_MODEL_REFINED_OUTPUT: model})
        self._defineSourceRelation(self.inputVolume, model)
        if self.hasSequences():
            self._defineSourceRelation(self.inputSequences, model)

    # --------------------------- INFO functions -----------------------------------------------------------------
    def _validate(self):
        errors = self.mapErrors(self.getInputMaps()) if self.inputVolume.get() is not None else []
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
        if self.isBatch():
            return self._batchSummary()
        if not os.path.exists(self.getDetectionSummaryPath()):
            return ["Outputs not ready yet."]
        detection = self.getDetectionSummary()
        lines = [_detection_line(detection)]
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
        if self.isBatch():
            return self._batchMethods()
        if not self.hasAttribute(NA_DETECTION_OUTPUT) or not os.path.exists(self.getBuildReportPath()):
            return []
        detection, build = self.getDetectionSummary(), self.getBuildReport()
        text = (f"Nucleic acids were searched for in the map {self.getObjectTag('inputVolume')} with "
                f"{_networks(detection)}. ")
        if build.get("residues", 0) == 0:
            return [text + "No nucleic-acid chain could be traced."]
        text += (f"A model of {build['residues']} nucleotides in {_count(len(build.get('chains', [])), 'chain')} "
                 f"was built by tracing the backbone through the sugar detections {self._sequenceMethod()}; each "
                 "residue's confidence (0 to 1) is in its B-factor.")
        if self.hasAttribute(NA_MODEL_REFINED_OUTPUT):
            text += " It was then refined into the map " + refinement_method(self.getRefineReport())
        return [text]

    def _batchSummary(self) -> list[str]:
        """Summary of a run on a set of maps: one line per map built so far, the first detection's settings, every
        warning once."""
        maps = self.getInputMaps()
        builds = {volume.getObjId(): self.getBuildReport(volume.getObjId()) for volume in maps
                  if os.path.exists(self.getBuildReportPath(volume.getObjId()))}
        lines = (["The input set is still open: its maps are built as they arrive."]
                 if self.inputVolume.get().isStreamOpen() else [])
        if not builds:
            return lines + ["Outputs not ready yet."]
        detections = {mapId: self.getDetectionSummary(mapId) for mapId in builds}
        lines.append(f"{len(builds)} of {len(maps)} maps built:")
        for mapId, build in builds.items():
            chains = len(build.get("chains", []))
            result = (f"{build['residues']} nucleotides in {_count(chains, 'chain')}" if build.get("residues", 0)
                      else "no nucleic acid found")
            lines.append(f"map {mapId} ({self.getPrefix(self.getInputMap(mapId))}): {result}")
        lines.append(_detection_line(next(iter(detections.values()))))
        refined = [mapId for mapId in builds if os.path.exists(self.getRefineReportPath(mapId))]
        if refined:
            lines.append(f"Refined with servalcat: the models of {_count(len(refined), 'map')}.")
        reports = [*detections.values(), *builds.values()]
        warnings = [warning for report in reports for warning in report.get("warnings", [])]
        return lines + [f"Warning: {warning}" for warning in dict.fromkeys(warnings)]  # each once, in order

    def _batchMethods(self) -> list[str]:
        maps = self.getInputMaps()
        builds = {v.getObjId(): self.getBuildReport(v.getObjId()) for v in maps
                  if os.path.exists(self.getBuildReportPath(v.getObjId()))}
        if not builds:
            return []
        detection = self.getDetectionSummary(next(iter(builds)))
        modelled = [build for build in builds.values() if build.get("residues", 0) > 0]
        text = (f"Nucleic acids were searched for in each of the {_count(len(builds), 'map')} of "
                f"{self.getObjectTag('inputVolume')} with {_networks(detection)}. ")
        if not modelled:
            return [text + "No nucleic-acid chain could be traced in any of them."]
        text += (f"Models were built in {len(modelled)} of them ({sum(b['residues'] for b in modelled)} nucleotides "
                 f"in all) by tracing the backbone through the sugar detections {self._sequenceMethod()}; each "
                 "residue's confidence (0 to 1) is in its B-factor.")
        refined = [v for v in maps if os.path.exists(self.getRefineReportPath(v.getObjId()))]
        if refined:
            text += (f" The models of {_count(len(refined), 'map')} were then refined into their maps at "
                     f"{self.resolution.get():g} Å with servalcat refine_spa_norefmac (Yamashita et al., Acta Cryst. "
                     "D 2021; restraints from the CCP4 monomer library; chain breaks kept open).")
        return [text]

    def _sequenceMethod(self) -> str:
        return (f"and assigned to the sequences {self.getObjectTag('inputSequences')}"
                if self.hasSequences() else "without sequence information")

    def _citations(self):
        return ["Wang2023"]

    # --------------------------- UTILS functions ----------------------------------------------------------------
    def getInputMapPath(self, mapId: int | None = None) -> str:
        """The converted input map given to the worker (*mapId*: the map of an input set), in the map's folder."""
        return self._mapFile(mapId, ".mrc")

    def getFastaPath(self, mapId: int | None = None) -> str:
        """The chain sequences given to the worker (FASTA, in the map's folder)."""
        return self._mapFile(mapId, "_sequences.fasta")

    def getDetectionSummaryPath(self, mapId: int | None = None) -> str:
        """detect-na's JSON summary; written last, so its presence means the detection finished."""
        return self._mapFile(mapId, "_summary.json")

    def getBuildReportPath(self, mapId: int | None = None) -> str:
        """build-na's JSON report; written last, so its presence means the build finished."""
        return self._mapFile(mapId, "_build.json")

    def getModelPath(self, mapId: int | None = None) -> str:
        """build-na's model (mmCIF, B-factor = confidence), when one was built."""
        return self._mapFile(mapId, "_model.cif")

    def getRefineReportPath(self, mapId: int | None = None) -> str:
        """refine-na's JSON report on the built model; written last, so its presence means refinement finished."""
        return self._mapFile(mapId, "_refine.json")

    def getRefineReport(self, mapId: int | None = None) -> dict:
        """refine-na's report (see docs/worker-contract.md)."""
        return read_json(self.getRefineReportPath(mapId))

    def getDetectionSummary(self, mapId: int | None = None) -> dict:
        """detect-na's summary (see docs/worker-contract.md)."""
        return read_json(self.getDetectionSummaryPath(mapId))

    def getBuildReport(self, mapId: int | None = None) -> dict:
        """build-na's report (see docs/worker-contract.md)."""
        return read_json(self.getBuildReportPath(mapId))

    def _mapFile(self, mapId: int | None, suffix: str) -> str:
        """``<map folder>/<map prefix><suffix>`` (*mapId*: the map of an input set)."""
        return os.path.join(self.getMapFolder(mapId), f"{self.getPrefix(self.getInputMap(mapId))}{suffix}")

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

    def _detectArgs(self, mapId: int | None = None) -> list[str]:
        args = ["detect-na", os.path.abspath(self.getInputMapPath(mapId)),
                "--resolution", str(self.resolution.get()),
                "-o", os.path.abspath(self.getMapFolder(mapId)),
                "--prefix", self.getPrefix(self.getInputMap(mapId)),
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

    def _buildArgs(self, mapId: int | None = None) -> list[str]:
        args = ["build-na", os.path.abspath(self.getDetectionSummaryPath(mapId)),
                "--trace-solutions", str(self.traceSolutions.get()),
                "--trace-time-limit", str(self.traceTimeLimit.get()),
                "--assign-time-limit", str(self.assignTimeLimit.get()),
                "--sugar-nodes", SUGAR_NODE_SOURCES[self.sugarNodes.get()]]
        if self.hasSequences():
            args += ["--sequence", os.path.abspath(self.getFastaPath(mapId))]
        if self.dna.get():
            args.append("--dna")
        return args

    def _refineArgs(self, mapId: int | None = None) -> list[str]:
        """refine-na on build-na's model (``<prefix>_model.cif``) into the converted input map; outputs
        ``<prefix>_refined.cif`` and ``<prefix>_refine.json`` in the map's folder."""
        return refine_args(self.getModelPath(mapId), [self.getInputMapPath(mapId)], self.resolution.get(),
                           self.getMapFolder(mapId), self.getPrefix(self.getInputMap(mapId)))

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

    def _mapResults(self, mapId: int | None = None) -> MapResults:
        """What detection and building wrote for the input map (*mapId*: the map of an input set), as Scipion
        objects, after checking every file the worker listed exists."""
        detection, build = self.getDetectionSummary(mapId), self.getBuildReport(mapId)
        maps = checked_files(self.getDetectionSummaryPath(mapId), detection.get("outputs", {}), STAGE2_CLASSES)
        expected = [MASKED_MAP_KEY, *(["model"] if build.get("residues", 0) > 0 else [])]
        built = checked_files(self.getBuildReportPath(mapId), build.get("outputs", {}), expected)
        grid = detection["working_grid"]
        masked = _grid_volume(
            built[MASKED_MAP_KEY], grid, "nucleic-acid masked map",
            "working density without protein (p >= 0.6) and non-nucleic-acid (sugar + phosphate + base <= 0.1) "
            "voxels: CryoREAD's map for refinement")
        models = {}
        for key in (key for key in MODEL_OUTPUTS if key in built):
            path = os.path.join(os.path.dirname(built[key]), f"{pwutils.removeBaseExt(built[key])}_scipion.cif")
            write_confidence_attribute(built[key], path)
            models[key] = model_with_volume(path, self.getInputMap(mapId))
        return MapResults(detection=maps, grid=grid,
                          maps={cls: _probability_volume(maps[cls], grid, cls) for cls in NA_MAP_OUTPUTS},
                          masked=masked, models=models)

    def _refinedModel(self, mapId: int | None = None) -> AtomStruct | None:
        """The refined model of the input map (*mapId*: the map of an input set) with the map attached, or None
        when no model was built (no refinement report)."""
        if not os.path.exists(self.getRefineReportPath(mapId)):
            return None
        report = self.getRefineReport(mapId)
        files = checked_files(self.getRefineReportPath(mapId), report.get("outputs", {}), ("model",))
        return model_with_volume(files["model"], self.getInputMap(mapId))

    def _newMapSet(self, name: str, samplingRate: float) -> SetOfVolumes:
        """An empty set for the output *name* of a set of maps (files ``volumes<name>.sqlite``)."""
        output = self._createSetOfVolumes(suffix=name)
        output.setSamplingRate(samplingRate)
        return output

    def _newModelSet(self, name: str) -> SetOfAtomStructs:
        """An empty set of models for the output *name* of a set of maps (file ``pdbs<name>.sqlite``)."""
        return self._createSetOfPDBs(suffix=name)

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


@dataclass
class MapResults:
    """One map's detection and build as Scipion objects: the eight detection map files (class -> path) and their
    working grid, the sugar, phosphate and protein maps (class -> Volume), the nucleic-acid masked map, and the
    models built (build-report key -> AtomStruct; none when no nucleic acid was found)."""
    detection: dict[str, str]
    grid: dict
    maps: dict[str, Volume]
    masked: Volume
    models: dict[str, AtomStruct]


def _detection_line(detection: dict) -> str:
    """'Detection: weights …, device …': how a detect-na summary's maps were made."""
    weights = detection.get("weights", {})
    return (f"Detection: weights {weights.get('set', '?')} ({weights.get('why', '?')}), "
            f"device {detection.get('device', '?')}, {detection.get('precision', '?')}, "
            f"stride {detection.get('stride', '?')} Å, {_seconds(detection)}.")


def _networks(detection: dict) -> str:
    """The methods' account of the detection networks and boxes of a detect-na summary."""
    weights = detection.get("weights", {}).get("set", "?")
    networks = ("the plugin's demo detection network (a small network trained on simulated maps, not "
                "CryoREAD's published networks)" if detection.get("network") == "demo"
                else f"the detection networks of CryoREAD [Wang2023] (weights {weights})")
    return f"{networks} (boxes of 64³ Å every {detection.get('stride', '?')} Å on a 1 Å grid)"


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
