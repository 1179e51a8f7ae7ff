"""ProtHaruspexAnnotate: annotate a map into helix, sheet, nucleic-acid and unassigned probability maps."""
from __future__ import annotations

import os

import pyworkflow.protocol.params as params
import pyworkflow.utils as pwutils
from pwem.convert.headers import Ccp4Header
from pwem.objects import SetOfVolumes, Volume
from pyworkflow.constants import BETA

from .. import Plugin
from ..constants import (
    CLASS_LABELS,
    CLASSES,
    DISPLAY_ORDER,
    OUTPUT_NAMES,
    WEIGHTED_OUTPUT,
    WEIGHTED_SUFFIX,
)
from .worker_protocol import HaruspexWorkerProtocol, checked_files, read_json

PRECISIONS = ("fp32", "bf16")


class ProtHaruspexAnnotate(HaruspexWorkerProtocol):
    """Annotates a cryo-EM map with Haruspex (Mostosi et al. 2020): the network predicts, for every voxel, the
    probability of α-helix, β-sheet, nucleic acid or none of these. Outputs the four probability maps and an argmax
    label map (0 unassigned, 1 helix, 2 sheet, 3 nucleic acid), all on the input's grid, sampling and origin.
    """
    _label = "annotate map"
    _devStatus = BETA
    _possibleOutputs = {**{name: Volume for name in OUTPUT_NAMES.values()}, WEIGHTED_OUTPUT: SetOfVolumes}

    # --------------------------- DEFINE param functions ---------------------------------------------------------
    def _defineParams(self, form):
        form.addHidden(params.USE_GPU, params.BooleanParam, default=True,
                       label="Use GPU?",
                       help="Yes: run the network on the first GPU given below when the worker can use it; when "
                            "no GPU is usable the worker runs on the CPU and says so loudly in the log and the "
                            "summary. No: run on the CPU.")
        form.addHidden(params.GPU_LIST, params.StringParam, default="0",
                       label="GPU IDs", help="GPUs made visible to the worker, which runs on the first of them.")
        form.addSection(label=pwutils.Message.LABEL_INPUT)
        form.addParam("inputVolume", params.PointerParam, pointerClass="Volume", important=True,
                      label="Input map",
                      help="Density map to annotate. Haruspex was trained on maps at 1.1 Å/voxel; maps with a "
                           "voxel size outside [1.0, 1.2] Å are resampled to 1.1 Å for the network and the "
                           "predictions are resampled back. Raw intensities are used (no normalisation).")
        form.addParam("densityWeighted", params.BooleanParam, default=False,
                      label="Also write density-weighted maps?",
                      help="Also output each probability map multiplied by the input density (the original "
                           "tool's -d option, which its documentation always uses), as a set of 4 volumes.")
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

    # --------------------------- INSERT steps functions ---------------------------------------------------------
    def _insertAllSteps(self):
        self._insertFunctionStep(self.convertInputStep, self.inputVolume.get().getObjId(), needsGPU=False)
        self._insertFunctionStep(self.annotateStep, needsGPU=True)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    # --------------------------- STEPS functions ----------------------------------------------------------------
    def convertInputStep(self, volumeId):
        """Write the input as a standard MRC file with the Scipion sampling rate and origin in its header.

        *volumeId* is not used: it records the input in the step, so a continued run redoes the step when the
        input changed.
        """
        volume = self.inputVolume.get()
        shifts = volume.getOrigin(force=True).getShifts()
        Ccp4Header.fixFile(volume, self.getInputMapPath(), shifts, sampling=volume.getSamplingRate(),
                           originField=Ccp4Header.ORIGIN)

    def annotateStep(self):
        """Run ``haruspex annotate`` in the worker environment; fail with the worker's own message."""
        pwutils.cleanPath(self.getSummaryPath())
        self.runWorker(self._workerArgs(), gpu=self.useGpu.get())

    def createOutputStep(self):
        """Register the maps listed in the worker's summary, all at once, once every one is known to exist."""
        files = self._checkedOutputFiles(self.getWorkerSummary())
        volume = self.inputVolume.get()
        outputs = {name: _new_volume(files[key], volume) for key, name in OUTPUT_NAMES.items()}
        if self.densityWeighted.get():
            outputs[WEIGHTED_OUTPUT] = self._weightedSet(files, volume)
        self._defineOutputs(**outputs)
        for output in outputs.values():
            self._defineSourceRelation(self.inputVolume, output)

    # --------------------------- INFO functions -----------------------------------------------------------------
    def _validate(self):
        errors = []
        volume = self.inputVolume.get()
        if volume is not None and not (volume.getSamplingRate() or 0) > 0:
            errors.append("The input map has no sampling rate: set it (Å/voxel) when importing the map.")
        if self.useGpu.get() and not self.getGpuList():
            errors.append("Give a GPU ID, or answer No to 'Use GPU?' to run on the CPU.")
        if not Plugin.validateInstallation():  # otherwise Scipion already lists the installation problems
            errors += Plugin.checkInstallation() or Plugin.checkWeights()
        return errors

    def _summary(self):
        summary = self.getWorkerSummary() if os.path.exists(self.getSummaryPath()) else None
        if summary is None:
            return ["Outputs not ready yet."]
        fractions = summary.get("class_fractions", {})
        lines = ["Class fractions (share of map voxels): "
                 + ", ".join(f"{CLASS_LABELS[c]} {100 * fractions.get(c, 0):.1f}%" for c in DISPLAY_ORDER)]
        timing = summary.get("timings_s", {}).get("total")
        lines.append(f"Device: {summary.get('device', '?')}, {summary.get('precision', '?')}, "
                     f"{summary.get('tiles', '?')} tiles of 40³ voxels"
                     + (f", {timing:.1f} s." if isinstance(timing, (int, float)) else "."))
        if summary.get("resampled"):
            working = _format_voxel(summary.get("working_voxel_size_xyz"))
            lines.append(f"The map was resampled to {working} Å/voxel for the network, and the predictions back "
                         "to the input grid.")
        lines += [f"Warning: {warning}" for warning in summary.get("warnings", [])]
        return lines

    def _methods(self):
        if not self.hasAttribute(OUTPUT_NAMES["labels"]):
            return []
        placement = "the original tile placement (compatibility mode)" if self.compat.get() else "corrected tiling"
        return [f"The map {self.getObjectTag('inputVolume')} was annotated with Haruspex [Mostosi2020], which "
                f"predicts for every voxel the probability of α-helix, β-sheet, nucleic acid or none, using "
                f"{placement} and {PRECISIONS[self.precision.get()]} arithmetic. The label map gives the most "
                f"probable class of each voxel."]

    def _citations(self):
        return ["Mostosi2020"]

    # --------------------------- UTILS functions ----------------------------------------------------------------
    def getInputMapPath(self) -> str:
        """The converted input map given to the worker (in the protocol's extra folder)."""
        return self._getExtraPath(f"{self.getPrefix()}.mrc")

    def getSummaryPath(self) -> str:
        """The worker's JSON summary; written last, so its presence means the worker succeeded."""
        return self._getExtraPath(f"{self.getPrefix()}_summary.json")

    def getWorkerSummary(self) -> dict:
        """The worker's JSON summary (see docs/worker-contract.md)."""
        return read_json(self.getSummaryPath())

    def _workerArgs(self) -> list[str]:
        args = ["annotate", os.path.abspath(self.getInputMapPath()),
                "-o", os.path.abspath(self._getExtraPath()),
                "--prefix", self.getPrefix(),
                "--batch-size", str(self.batchSize.get()),
                "--precision", PRECISIONS[self.precision.get()],
                "--device", "auto" if self.useGpu.get() else "cpu"]
        if self.compat.get():
            args.append("--compat")
        if self.densityWeighted.get():
            args.append("--density-weighted")
        return args

    def _checkedOutputFiles(self, summary: dict) -> dict[str, str]:
        """Output key -> project-relative path, after checking every expected and listed file exists."""
        expected = list(OUTPUT_NAMES)
        if self.densityWeighted.get():
            expected += [c + WEIGHTED_SUFFIX for c in CLASSES]
        return checked_files(self.getSummaryPath(), summary.get("outputs", {}), expected)

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


def _format_voxel(voxel: list | None) -> str:
    if not voxel:
        return "?"
    return " × ".join(f"{v:.3g}" for v in voxel)
