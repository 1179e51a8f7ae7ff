"""ProtHaruspexAnnotate: annotate a map into helix, sheet, nucleic-acid and unassigned probability maps."""
from __future__ import annotations

import os
from functools import partial

import pyworkflow.protocol.params as params
import pyworkflow.utils as pwutils
from pwem.objects import SetOfVolumes, Volume
from pyworkflow.constants import BETA

from .. import Plugin
from ..constants import (
    BATCH_OUTPUT_NAMES,
    BATCH_WEIGHTED_OUTPUT_NAMES,
    CLASS_LABELS,
    CLASSES,
    DISPLAY_ORDER,
    OUTPUT_NAMES,
    WEIGHTED_OUTPUT,
    WEIGHTED_SUFFIX,
)
from ..convert import write_worker_map
from .map_stream import MapStreamProtocol
from .worker_protocol import checked_files, read_json

PRECISIONS = ("fp32", "bf16")


class ProtHaruspexAnnotate(MapStreamProtocol):
    """Annotates a cryo-EM map with Haruspex (Mostosi et al. 2020): the network predicts, for every voxel, the
    probability of α-helix, β-sheet, nucleic acid or none of these. Outputs the four probability maps and an argmax
    label map (0 unassigned, 1 helix, 2 sheet, 3 nucleic acid), all on the input's grid, sampling and origin.

    A set of maps is annotated map by map, one restartable worker run each (files in extra/map_<id>/), and gives one
    set per output kind (helix, sheet, nucleic acid, unassigned, labels): its item of id i is the annotation of the
    input map of id i, with that map's sampling and origin. A fixed set of output names, unlike one output per map,
    can be declared before the run (so workflows connect to them) and hands each class to set-consuming protocols.
    A closed set's outputs are registered all at once, when every map is annotated. A set still open (its producer
    is adding maps: Scipion streaming) is annotated as its maps arrive; each map's annotation is added to the output
    sets as soon as it exists, and the sets are closed once the input set is closed and every map is done (see
    MapStreamProtocol).
    """
    _label = "annotate map"
    _devStatus = BETA
    _possibleOutputs = {
        **{name: Volume for name in OUTPUT_NAMES.values()},
        WEIGHTED_OUTPUT: SetOfVolumes,
        **{name: SetOfVolumes for name in BATCH_OUTPUT_NAMES.values()},
        **{name: SetOfVolumes for name in BATCH_WEIGHTED_OUTPUT_NAMES.values()},
    }

    # --------------------------- DEFINE param functions ---------------------------------------------------------
    def _defineParams(self, form):
        self.addGpuParams(form, "Yes: run the network on the first GPU given below when the worker can use it; when "
                                "no GPU is usable the worker runs on the CPU and says so loudly in the log and the "
                                "summary. No: run on the CPU.")
        form.addSection(label=pwutils.Message.LABEL_INPUT)
        form.addParam("inputVolume", params.PointerParam, pointerClass="Volume,SetOfVolumes", important=True,
                      label="Input map(s)",
                      help="Density map to annotate, or a set of maps to annotate one after the other. Haruspex "
                           "was trained on maps at 1.1 Å/voxel; maps with a voxel size outside [1.0, 1.2] Å are "
                           "resampled to 1.1 Å for the network and the predictions are resampled back. Raw "
                           "intensities are used (no normalisation).")
        form.addParam("densityWeighted", params.BooleanParam, default=False,
                      label="Also write density-weighted maps?",
                      help="Also output each probability map multiplied by the input density (the original "
                           "tool's -d option, which its documentation always uses), as a set of 4 volumes "
                           "(for a set of maps: one set per class).")
        form.addParam("compat", params.BooleanParam, default=False,
                      label="Reproduce the original tiling exactly?",
                      help="The original Haruspex script writes the last one or two 20³ output tiles along each "
                           "axis up to 10 voxels away from where they belong, and leaves a 10-voxel low and a "
                           "20-voxel high border at 0 in all channels. By default tiles are placed correctly and "
                           "the whole map is predicted. Answer Yes only to reproduce published outputs "
                           "voxel for voxel.")
        form.addParam("batchSize", params.IntParam, default=8, validators=[params.Positive],
                      expertLevel=params.LEVEL_ADVANCED,
                      label="Batch size",
                      help="40³ tiles per forward pass. Larger batches are faster but need more memory; on GPU "
                           "out-of-memory the worker retries with a smaller batch.")
        form.addParam("precision", params.EnumParam, choices=list(PRECISIONS), default=0,
                      display=params.EnumParam.DISPLAY_HLIST, expertLevel=params.LEVEL_ADVANCED,
                      label="Precision",
                      help="fp32 reproduces the published network. bf16 is faster on CPUs and GPUs with native "
                           "bfloat16 support, with slightly different probabilities.")
        form.addParam("trainingRun", params.PointerParam, pointerClass="ProtHaruspexTrain", allowsNull=True,
                      expertLevel=params.LEVEL_ADVANCED,
                      label="Network weights from a training run",
                      help="Annotate with the checkpoint a finished 'train network' run wrote instead of the "
                           "installed published weights. Leave empty (and the checkpoint prefix below too) for the "
                           "published weights.")
        form.addParam("checkpointPrefix", params.PathParam, allowsNull=True,
                      expertLevel=params.LEVEL_ADVANCED,
                      label="... or a checkpoint prefix",
                      help="Or annotate with the Haruspex checkpoint at this prefix (…/model.ckpt-5000: the files "
                           "PREFIX.index and PREFIX.data-00000-of-00001), e.g. one written by `haruspex train`.")
        form.addParam("useDemoModel", params.BooleanParam, default=False,
                      expertLevel=params.LEVEL_ADVANCED,
                      label="Use the demo model (not the published network)?",
                      help="Annotate with the small demo network bundled with the plugin instead of the published "
                           "weights: trained by scipion-em-haruspex on simulated maps of ideal helices, sheets, "
                           "coil and RNA/DNA, to try the protocol without installing the published weights. Its "
                           "outputs are labelled DEMO MODEL. Not for real maps.")

    # --------------------------- INSERT steps functions ---------------------------------------------------------
    def _insertAllSteps(self):
        if self.streamsMaps():
            self._insertStreamSteps()
            return
        for volume in self.getInputMaps():
            self._insertFunctionStep(self.convertInputStep, volume.getObjId(), volume.getFileName(), needsGPU=False)
            self._insertFunctionStep(self.annotateStep, volume.getObjId(), needsGPU=True)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    def _insertMapSteps(self, mapId: int) -> int:
        """Streaming: convert, annotate and register the input set's map *mapId*."""
        convert = self._insertFunctionStep(self.convertInputStep, mapId, self.getInputMap(mapId).getFileName(),
                                           prerequisites=[], needsGPU=False)
        annotate = self._insertFunctionStep(self.annotateStep, mapId, prerequisites=[convert], needsGPU=True)
        return self._insertFunctionStep(self.registerMapStep, mapId, prerequisites=[annotate], needsGPU=False)

    # --------------------------- STEPS functions ----------------------------------------------------------------
    def convertInputStep(self, mapId: int, fileName: str):
        """Write input map *mapId* as a standard MRC file with the Scipion sampling rate and origin in its header.

        *fileName* is not used: with *mapId* it records the input in the step, so a continued run redoes the step
        when the input changed.
        """
        volume = self.getSampledInputMap(mapId)
        pwutils.makePath(self.getMapFolder(mapId))
        write_worker_map(volume, self.getInputMapPath(mapId))

    def annotateStep(self, mapId: int | None = None):
        """Run ``haruspex annotate`` on the input map (*mapId*: the map of an input set) in the worker environment;
        fail with the worker's own message."""
        pwutils.cleanPath(self.getSummaryPath(mapId))
        self.runWorker(self._workerArgs(mapId), gpu=self.useGpu.get(), result=self.getSummaryPath(mapId))

    def registerMapStep(self, mapId: int):
        """Streaming: add the annotation of the input set's map *mapId* to every output set, after checking every
        file the worker listed exists."""
        volume, files = self.getInputMap(mapId), self._checkedOutputFiles(mapId)
        names = self._batchOutputNames()
        for key in self._outputKeys():
            item = _new_volume(files[key], volume)
            item.setObjId(mapId)
            self.appendToOutputSet(names[key], item, partial(self._newOutputSet, key))

    def createOutputStep(self):
        """Register the maps listed in the worker's summaries, all at once, once every one is known to exist."""
        outputs = self._batchOutputs() if self.isBatch() else self._singleOutputs()
        self._defineOutputs(**outputs)
        for output in outputs.values():
            self._defineSourceRelation(self.inputVolume, output)

    # --------------------------- INFO functions -----------------------------------------------------------------
    def _validate(self):
        maps = self.getInputMaps() if self.inputVolume.get() is not None else []
        errors = self.mapErrors(maps) + self.gpuErrors() + self._checkpointErrors()
        ownWeights = self.getCheckpoint() or self.useDemoModel.get()
        return errors + self.installationErrors(lambda: [] if ownWeights else Plugin.checkWeights())

    def _checkpointErrors(self) -> list[str]:
        """Problems with the weights chosen in the form (none when the installed weights are used)."""
        run, prefix = self.trainingRun.get(), self.checkpointPrefix.get()
        if run is not None and prefix:
            return ["Choose the network weights from a training run or from a checkpoint prefix, not both."]
        if self.useDemoModel.get() and (run is not None or prefix):
            return ["Choose either the demo model or other network weights, not both."]
        if run is not None and run.getCheckpointPrefix() is None:
            return ["The chosen training run has no checkpoint: it has not finished."]
        if prefix and not os.path.isfile(f"{prefix}.index"):
            return [f"{prefix}.index: missing; give a checkpoint prefix such as …/model.ckpt-5000."]
        return []

    def _summary(self):
        maps = self.getInputMaps() if self.inputVolume.get() is not None else []
        summaries = {volume.getObjId(): self.getWorkerSummary(volume.getObjId()) for volume in maps
                     if os.path.exists(self.getSummaryPath(volume.getObjId()))}
        if not summaries:
            return ["Outputs not ready yet."]
        if self.isBatch():
            lines = [f"{len(summaries)} of {len(maps)} maps annotated. Class fractions (share of each map's voxels):"]
            if self.inputVolume.get().isStreamOpen():
                lines.insert(0, "The input set is still open: its maps are annotated as they arrive.")
            lines += [f"map {mapId} ({self.getPrefix(self.getInputMap(mapId))}): {_fractions(summary)}"
                      for mapId, summary in summaries.items()]
        else:
            lines = [f"Class fractions (share of map voxels): {_fractions(next(iter(summaries.values())))}"]
        lines.append(_device_line(list(summaries.values())))
        if self.getCheckpoint() or self.useDemoModel.get():
            lines.append(f"Network weights: {next(iter(summaries.values())).get('checkpoint', '?')}")
        lines += [_resampled_line(summary, f"Map {mapId}" if self.isBatch() else "The map")
                  for mapId, summary in summaries.items() if summary.get("resampled")]
        warnings = [w for summary in summaries.values() for w in summary.get("warnings", [])]
        lines += [f"Warning: {warning}" for warning in dict.fromkeys(warnings)]  # each once, in order
        return lines

    def _methods(self):
        labels = BATCH_OUTPUT_NAMES["labels"] if self.isBatch() else OUTPUT_NAMES["labels"]
        if not self.hasAttribute(labels):
            return []
        placement = "the original tile placement (compatibility mode)" if self.compat.get() else "corrected tiling"
        if self.isBatch():
            subject = f"Each of the {self.inputVolume.get().getSize()} maps of {self.getObjectTag('inputVolume')} was"
            labelMaps = "The label maps give"
        else:
            subject = f"The map {self.getObjectTag('inputVolume')} was"
            labelMaps = "The label map gives"
        methods = [f"{subject} annotated with Haruspex [Mostosi2020], which predicts for every voxel the probability "
                   f"of α-helix, β-sheet, nucleic acid or none, using {placement} and "
                   f"{PRECISIONS[self.precision.get()]} arithmetic. {labelMaps} the most probable class of each voxel."]
        if self.getCheckpoint():
            source = self.getObjectTag("trainingRun") if self.trainingRun.get() else self.getCheckpoint()
            methods.append(f"The network weights were those of {source}, not the published ones.")
        elif self.useDemoModel.get():
            methods.append("The network was the plugin's demo model (a narrow network trained on simulated maps), "
                           "not the published one.")
        return methods

    def _citations(self):
        return ["Mostosi2020"]

    # --------------------------- UTILS functions ----------------------------------------------------------------
    def getCheckpoint(self) -> str | None:
        """Absolute prefix of the checkpoint chosen in the form (a training run's, or a given prefix), or None for
        the installed published weights."""
        run, prefix = self.trainingRun.get(), self.checkpointPrefix.get()
        if run is not None and run.getCheckpointPrefix():
            return os.path.abspath(run.getCheckpointPrefix())
        return os.path.abspath(prefix) if prefix else None

    def getInputMapPath(self, mapId: int | None = None) -> str:
        """The converted input map given to the worker (*mapId*: the map of an input set)."""
        return os.path.join(self.getMapFolder(mapId), f"{self.getPrefix(self.getInputMap(mapId))}.mrc")

    def getSummaryPath(self, mapId: int | None = None) -> str:
        """The worker's JSON summary (*mapId*: of the map of an input set); written last, so its presence means
        the worker succeeded."""
        return os.path.join(self.getMapFolder(mapId), f"{self.getPrefix(self.getInputMap(mapId))}_summary.json")

    def getWorkerSummary(self, mapId: int | None = None) -> dict:
        """The worker's JSON summary (see docs/worker-contract.md; *mapId*: of the map of an input set)."""
        return read_json(self.getSummaryPath(mapId))

    def _workerArgs(self, mapId: int | None) -> list[str]:
        args = ["annotate", os.path.abspath(self.getInputMapPath(mapId)),
                "-o", os.path.abspath(self.getMapFolder(mapId)),
                "--prefix", self.getPrefix(self.getInputMap(mapId)),
                "--batch-size", str(self.batchSize.get()),
                "--precision", PRECISIONS[self.precision.get()],
                "--device", "auto" if self.useGpu.get() else "cpu"]
        if self.compat.get():
            args.append("--compat")
        if self.densityWeighted.get():
            args.append("--density-weighted")
        if self.getCheckpoint():
            args += ["--checkpoint", self.getCheckpoint()]
        elif self.useDemoModel.get():
            args.append("--demo-model")
        return args

    def _outputKeys(self) -> list[str]:
        """The worker's output keys this run registers."""
        keys = list(OUTPUT_NAMES)
        if self.densityWeighted.get():
            keys += [c + WEIGHTED_SUFFIX for c in CLASSES]
        return keys

    def _checkedOutputFiles(self, mapId: int | None = None) -> dict[str, str]:
        """Output key -> project-relative path of map *mapId*'s outputs, after checking every expected and listed
        file exists."""
        summary = self.getWorkerSummary(mapId)
        return checked_files(self.getSummaryPath(mapId), summary.get("outputs", {}), self._outputKeys())

    def _singleOutputs(self) -> dict:
        """Output name -> object for an input Volume: a Volume per output key, a set for the weighted maps."""
        volume = self.inputVolume.get()
        files = self._checkedOutputFiles()
        outputs = {name: _new_volume(files[key], volume) for key, name in OUTPUT_NAMES.items()}
        if self.densityWeighted.get():
            outputs[WEIGHTED_OUTPUT] = self._weightedSet(files, volume)
        return outputs

    def _batchOutputs(self) -> dict:
        """Output name -> SetOfVolumes for an input set: one set per output key, item id = input map id. Every
        map's files are checked before any set is written."""
        maps = self.getInputMaps()
        files = {volume.getObjId(): self._checkedOutputFiles(volume.getObjId()) for volume in maps}
        names = self._batchOutputNames()
        return {names[key]: self._outputKeySet(key, maps, files) for key in self._outputKeys()}

    @staticmethod
    def _batchOutputNames() -> dict[str, str]:
        """Worker output key -> name of its output set, for a set of maps."""
        return {**BATCH_OUTPUT_NAMES, **{c + WEIGHTED_SUFFIX: BATCH_WEIGHTED_OUTPUT_NAMES[c] for c in CLASSES}}

    def _newOutputSet(self, key: str) -> SetOfVolumes:
        """An empty output set for the worker's output *key* (a set of maps), with the input set's sampling rate."""
        output = self._createSetOfVolumes(suffix=key.title().replace("_", ""))
        output.setSamplingRate(self.inputVolume.get().getSamplingRate())
        return output

    def _outputKeySet(self, key: str, maps: list[Volume], files: dict[int, dict[str, str]]) -> SetOfVolumes:
        """The worker's output *key* of every input map, each item with its map's id, sampling and origin."""
        output = self._newOutputSet(key)
        for volume in maps:
            item = _new_volume(files[volume.getObjId()][key], volume)
            item.setObjId(volume.getObjId())
            output.append(item)
        return output

    def _weightedSet(self, files: dict[str, str], volume: Volume) -> SetOfVolumes:
        weighted = self._createSetOfVolumes(suffix="Weighted")
        weighted.setSamplingRate(volume.getSamplingRate())
        for name in DISPLAY_ORDER:
            item = _new_volume(files[name + WEIGHTED_SUFFIX], volume)
            item.setObjComment(f"{CLASS_LABELS[name]} probability × density")
            weighted.append(item)
        return weighted


def _new_volume(path: str, like: Volume) -> Volume:
    """A Volume for *path* with the sampling rate and origin of *like*."""
    volume = Volume()
    volume.setFileName(path)
    volume.setSamplingRate(like.getSamplingRate())
    volume.setOrigin(like.getOrigin(force=True).clone())
    return volume


def _fractions(summary: dict) -> str:
    """'α-helix 12.3%, β-sheet ...': a worker summary's class fractions, in display order."""
    fractions = summary.get("class_fractions", {})
    return ", ".join(f"{CLASS_LABELS[c]} {100 * fractions.get(c, 0):.1f}%" for c in DISPLAY_ORDER)


def _device_line(summaries: list[dict]) -> str:
    """Device and precision of the first worker run; tiles and seconds summed over all of them."""
    first = summaries[0]
    tiles = [s.get("tiles") for s in summaries]
    timings = [s.get("timings_s", {}).get("total") for s in summaries]
    tileText = sum(tiles) if all(isinstance(t, int) for t in tiles) else "?"
    timeText = (f", {sum(timings):.1f} s." if all(isinstance(t, (int, float)) for t in timings) else ".")
    return (f"Device: {first.get('device', '?')}, {first.get('precision', '?')}, {tileText} tiles of 40³ voxels"
            + timeText)


def _resampled_line(summary: dict, subject: str) -> str:
    working = _format_voxel(summary.get("working_voxel_size_xyz"))
    return (f"{subject} was resampled to {working} Å/voxel for the network, and the predictions back to the input "
            "grid.")


def _format_voxel(voxel: list | None) -> str:
    if not voxel:
        return "?"
    return " × ".join(f"{v:.3g}" for v in voxel)
