"""ProtHaruspexTrain: train or fine-tune the Haruspex network on maps and the models built into them."""
from __future__ import annotations

import os

import pyworkflow.protocol.params as params
import pyworkflow.utils as pwutils
from pwem.objects import AtomStruct, EMFile, Volume
from pyworkflow.constants import BETA

from .. import Plugin
from ..constants import ENGINE_MODULE, TRAINED_CHECKPOINT_OUTPUT
from ..convert import write_worker_map
from .worker_protocol import HaruspexWorkerProtocol, checked_files, read_json

FRESH, PUBLISHED, PREVIOUS_RUN = 0, 1, 2  # initialWeights choices
DATA_FOLDER = "data"  # in the extra folder: the training segments of every pair and their reports
CHECKPOINT_FOLDER = "checkpoints"  # in the extra folder: the checkpoints and the training report
CHECKPOINT_NAME = "model.ckpt"  # checkpoints are CHECKPOINT_NAME-<global step>, as published
DATA_REPORT_SUFFIX = "_training_data.json"  # written last by `haruspex training-data` (docs/worker-contract.md)
TRAINING_REPORT = "training_summary.json"  # written last by `haruspex train` beside the checkpoints


class ProtHaruspexTrain(HaruspexWorkerProtocol):
    """Trains the Haruspex network (Mostosi et al. 2020), or fine-tunes it, on maps and the models built into them.

    Each (map, model) pair is labelled as the Haruspex paper made its training data: helix, sheet and nucleic-acid
    elements with main-chain density above 2 r.m.s.d. label the voxels within 3 Å of their backbone, weaker elements
    and unmodelled density are masked, and the 70³ segments passing the paper's rules are kept (one restartable step
    per pair). The network is then trained on all segments with the published loss and optimiser. The output is the
    last checkpoint, in the published layout: choose this run in 'annotate map' (advanced parameter 'Network weights
    from a training run') to annotate with it.
    """
    _label = "train network"
    _devStatus = BETA
    _possibleOutputs = {TRAINED_CHECKPOINT_OUTPUT: EMFile}

    # --------------------------- DEFINE param functions ---------------------------------------------------------
    def _defineParams(self, form):
        self.addGpuParams(form, "Yes: train on the first GPU given below when the worker can use it; when no GPU is "
                                "usable the worker trains on the CPU and says so in the log and the summary. No: "
                                "train on the CPU (about 1 s per segment and step on 2 cores).")
        form.addSection(label=pwutils.Message.LABEL_INPUT)
        form.addParam("inputStructures", params.MultiPointerParam, pointerClass="AtomStruct", important=True,
                      minNumObjects=1, label="Models (with their maps)",
                      help="Atomic models, each placed in the density map it was built into. Each model's map is the "
                           "volume attached to it (import the model with its volume), unless maps are given below. "
                           "Residues are labelled from the model itself (hydrogen bonds and torsion angles; "
                           "nucleotides by type); maps with a voxel size outside [1.0, 1.2] Å are resampled to "
                           "1.1 Å.")
        form.addParam("inputVolumes", params.MultiPointerParam, pointerClass="Volume", allowsNull=True,
                      minNumObjects=0, label="Maps (instead of the attached ones)",
                      help="Optional: one map per model, in the order of the models above, for models imported "
                           "without their volume. When given, these maps are used for every model.")
        form.addSection(label="Training")
        form.addParam("initialWeights", params.EnumParam,
                      choices=["fresh weights", "published weights", "a previous training run"], default=PUBLISHED,
                      label="Start from",
                      help="fresh weights: train from scratch (random weights drawn from the seed), as the paper "
                           "did; it needs tens of thousands of steps. published weights: fine-tune the installed "
                           "published network (hpx_190116). a previous training run: continue from its checkpoint, "
                           "with its optimiser state and step count.")
        form.addParam("previousRun", params.PointerParam, pointerClass="ProtHaruspexTrain", allowsNull=True,
                      condition=f"initialWeights == {PREVIOUS_RUN}", label="Training run",
                      help="A finished 'train network' run whose checkpoint to continue from.")
        form.addParam("steps", params.IntParam, default=30000, validators=[params.Positive], label="Steps",
                      help="Training steps (Adam updates) to run; 30000 is the original's. Fine-tuning usually "
                           "needs far fewer.")
        form.addParam("batchSize", params.IntParam, default=100, validators=[params.Positive],
                      label="Batch size",
                      help="Segments per step (100 as published: about 2 min per step and 12 GB of memory on a "
                           "2-core CPU; a GPU is much faster). Each step turns the batch by one of the 24 proper 90° "
                           "rotations and crops 40³ inputs at one random offset.")
        form.addParam("seed", params.IntParam, default=0, label="Random seed",
                      help="Seed of the fresh weights, the batches and the augmentation: the same seed and inputs "
                           "give the same training on the CPU.")
        form.addParam("checkpointEvery", params.IntParam, default=5000, validators=[params.Positive],
                      expertLevel=params.LEVEL_ADVANCED, label="Checkpoint interval (steps)",
                      help="A checkpoint is written every this many steps and at the end; the last 10 are kept in "
                           "extra/checkpoints. The output is the last one.")

    # --------------------------- INSERT steps functions ---------------------------------------------------------
    def _insertAllSteps(self):
        for index, (volume, structure) in enumerate(self.getPairs(), start=1):
            self._insertFunctionStep(self.convertInputStep, index, volume.getObjId(), structure.getObjId(),
                                     needsGPU=False)
            self._insertFunctionStep(self.trainingDataStep, index, needsGPU=False)
        self._insertFunctionStep(self.trainStep, needsGPU=True)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    # --------------------------- STEPS functions ----------------------------------------------------------------
    def convertInputStep(self, index: int, volumeId: int, structureId: int):
        """Write the map of pair *index* (1-based) as MRC with the Scipion sampling rate and origin. *volumeId* and
        *structureId* record the inputs in the step, so a continued run redoes it when they changed."""
        volume, _ = self.getPairs()[index - 1]
        write_worker_map(volume, self.getPairMapPath(index))

    def trainingDataStep(self, index: int):
        """Run ``haruspex training-data`` on pair *index*: its segments and report go to extra/data under the pair's
        prefix (files of an earlier attempt removed first)."""
        _, structure = self.getPairs()[index - 1]
        pwutils.makePath(self._getExtraPath(DATA_FOLDER))
        pwutils.cleanPattern(self._getExtraPath(DATA_FOLDER, f"{self.getPairPrefix(index)}_*"))
        self.runWorker(["training-data", os.path.abspath(self.getPairMapPath(index)),
                        os.path.abspath(structure.getFileName()),
                        "-o", os.path.abspath(self._getExtraPath(DATA_FOLDER)),
                        "--prefix", self.getPairPrefix(index)], gpu=False, result=self.getDataReportPath(index))

    def trainStep(self):
        """Run ``haruspex train`` on the segments of every pair into extra/checkpoints; a continued run resumes an
        interrupted training from its latest checkpoint (the worker checks that the settings are unchanged)."""
        counts = self.getSegmentCounts()
        if not sum(counts.values()):
            raise RuntimeError("No pair gave a training segment (a 70³ segment needs at least 100 atoms at 1 "
                               "r.m.s.d., a mean backbone density of 3 r.m.s.d. and 5 % of its voxels labelled); "
                               f"see the reports {self._getExtraPath(DATA_FOLDER, '*' + DATA_REPORT_SUFFIX)}")
        args = ["train", os.path.abspath(self._getExtraPath(DATA_FOLDER)), "--resume",
                "-o", os.path.abspath(self._getExtraPath(CHECKPOINT_FOLDER, CHECKPOINT_NAME)),
                "--steps", str(self.steps.get()), "--batch-size", str(self.batchSize.get()),
                "--seed", str(self.seed.get()), "--checkpoint-every", str(self.checkpointEvery.get()),
                "--device", "auto" if self.useGpu.get() else "cpu"]
        initial = self.getInitialCheckpoint()
        if initial is not None:
            self.info(f"Initial weights: {initial}")
            args += ["--init-checkpoint", initial]
        pwutils.cleanPath(self.getTrainingReportPath())
        self.runWorker(args, gpu=self.useGpu.get(), result=self.getTrainingReportPath())

    def createOutputStep(self):
        """Register the last checkpoint (its prefix) once both its files are known to exist."""
        report = self.getTrainingReport()
        prefix = (report.get("checkpoints") or [""])[-1]
        checked_files(self.getTrainingReportPath(),
                      {"index": f"{prefix}.index", "data": f"{prefix}.data-00000-of-00001"}, ("index", "data"))
        checkpoint = EMFile(filename=os.path.relpath(prefix))
        checkpoint.setObjComment(f"Haruspex checkpoint prefix, global step {report.get('final_step')}")
        self._defineOutputs(**{TRAINED_CHECKPOINT_OUTPUT: checkpoint})
        for pointer in [*self.inputStructures, *self.inputVolumes]:
            self._defineSourceRelation(pointer, checkpoint)

    # --------------------------- INFO functions -----------------------------------------------------------------
    def _validate(self):
        errors = []
        structures = [pointer.get() for pointer in self.inputStructures]
        volumes = [pointer.get() for pointer in self.inputVolumes]
        if volumes and len(volumes) != len(structures):
            errors.append(f"Give one map per model, in the models' order: {len(structures)} models but "
                          f"{len(volumes)} maps.")
        else:
            for index, (volume, structure) in enumerate(self.getPairs(), start=1):
                if structure is None:
                    continue  # Scipion already reports empty items
                if volume is None:
                    errors.append(f"Model {index} ({_name(structure)}) has no map attached: import it with its "
                                  "volume, or give the maps (one per model) below it.")
                elif not (volume.getSamplingRate() or 0) > 0:
                    errors.append(f"The map of model {index} ({_name(volume)}) has no sampling rate: set it "
                                  "(Å/voxel) when importing the map.")
        if self.initialWeights.get() == PREVIOUS_RUN:
            run = self.previousRun.get()
            if run is None:
                errors.append("Choose the training run to continue from.")
            elif getattr(run, TRAINED_CHECKPOINT_OUTPUT, None) is None:
                errors.append("The chosen training run has no checkpoint: it has not finished.")
        errors += self.gpuErrors()
        published = self.initialWeights.get() == PUBLISHED
        return errors + self.installationErrors(lambda: Plugin.checkWeights() if published else [])

    def _summary(self):
        lines = []
        for index, (volume, structure) in enumerate(self.getPairs(), start=1):
            path = self.getDataReportPath(index)
            if os.path.exists(path):
                report = read_json(path)
                outcomes = ", ".join(f"{n} {o}" for o, n in report.get("element_outcomes", {}).items())
                lines.append(f"Pair {index} ({_name(structure)} in {_name(volume)}): training segments of 70³ "
                             f"kept: {report.get('segments')}; elements: {outcomes or 'none'}.")
        if not os.path.exists(self.getTrainingReportPath()):
            return lines or ["Outputs not ready yet."]
        return lines + training_lines(self.getTrainingReport())

    def _methods(self):
        if not self.hasAttribute(TRAINED_CHECKPOINT_OUTPUT):
            return []
        report = self.getTrainingReport()
        start = {FRESH: "from fresh weights", PUBLISHED: "from the published weights (fine-tuning)",
                 PREVIOUS_RUN: "from a previous training run"}[self.initialWeights.get()]
        return [f"The Haruspex network [Mostosi2020] was trained {start} on {report.get('segments', '?')} 70³ "
                f"segments labelled from {len(self.inputStructures)} models and their maps as its paper describes, "
                f"for {report.get('steps', '?')} steps of batch {report.get('batch_size', '?')} (Adam, learning "
                "rate 1e-3, ε 0.1, class weights 16 for helix, sheet and nucleic acid, 1 for unassigned)."]

    def _citations(self):
        return ["Mostosi2020"]

    # --------------------------- UTILS functions ----------------------------------------------------------------
    def getPairs(self) -> list[tuple[Volume | None, AtomStruct | None]]:
        """(map, model) of each input model, in the models' order: the map given for it, else the one attached."""
        structures = [pointer.get() for pointer in self.inputStructures]
        volumes = [pointer.get() for pointer in self.inputVolumes]
        if not volumes:
            volumes = [None if s is None or not s.hasVolume() else s.getVolume() for s in structures]
        return list(zip(volumes, structures))

    def getPairPrefix(self, index: int) -> str:
        """File prefix of pair *index* (1-based): ``pairNN_<map name>``."""
        volume, _ = self.getPairs()[index - 1]
        return f"pair{index:02d}_{self.getPrefix(volume)}"

    def getPairMapPath(self, index: int) -> str:
        """The converted map of pair *index* given to the worker (in the extra folder)."""
        return self._getExtraPath(f"{self.getPairPrefix(index)}.mrc")

    def getDataReportPath(self, index: int) -> str:
        """The training-data report of pair *index*; written last, so its presence means the step finished."""
        return self._getExtraPath(DATA_FOLDER, f"{self.getPairPrefix(index)}{DATA_REPORT_SUFFIX}")

    def getSegmentCounts(self) -> dict[int, int]:
        """Pair index -> segments its training-data step kept."""
        return {index: int(read_json(self.getDataReportPath(index)).get("segments", 0))
                for index in range(1, len(self.getPairs()) + 1)}

    def getTrainingReportPath(self) -> str:
        """The worker's training report; written last, so its presence means the training finished."""
        return self._getExtraPath(CHECKPOINT_FOLDER, TRAINING_REPORT)

    def getTrainingReport(self) -> dict:
        """The worker's training report (docs/worker-contract.md, ``haruspex train``)."""
        return read_json(self.getTrainingReportPath())

    def getCheckpointPrefix(self) -> str | None:
        """Project-relative prefix of the trained checkpoint (what ``--checkpoint`` takes), or None before the
        run finished."""
        output = getattr(self, TRAINED_CHECKPOINT_OUTPUT, None)
        return None if output is None else output.getFileName()

    def getInitialCheckpoint(self) -> str | None:
        """Absolute prefix of the checkpoint training starts from, or None for fresh weights."""
        if self.initialWeights.get() == PUBLISHED:
            return installed_checkpoint()
        if self.initialWeights.get() == PREVIOUS_RUN:
            return os.path.abspath(self.previousRun.get().getCheckpointPrefix())
        return None


def installed_checkpoint() -> str:
    """The prefix of the installed published weights, as the worker finds them (``haruspex weights path``:
    ``$HARUSPEX_CHECKPOINT``, else the cache); RuntimeError with the worker's message when there are none."""
    code, message, output = Plugin.runWorkerQuery("-m", ENGINE_MODULE, "weights", "path")
    if code != 0:
        raise RuntimeError(f"Haruspex weights not usable: {message}")
    return output.strip().splitlines()[-1]


def training_lines(report: dict) -> list[str]:
    """Summary lines of a training report: steps, final loss, time, memory, device, checkpoint, warnings."""
    losses = report.get("losses") or []
    loss = f"{losses[-1]:.4f}" if losses else "?"
    start = report.get("initial_checkpoint") or "fresh weights"
    memory = report.get("peak_rss_bytes")
    memoryText = f", peak memory {memory / 2**30:.1f} GiB" if isinstance(memory, (int, float)) else ""
    seconds = report.get("seconds")
    timeText = f"{seconds:.0f} s ({report.get('seconds_per_step', 0):.2f} s per step)" if seconds else "? s"
    checkpoints = report.get("checkpoints") or ["?"]
    lines = [f"Trained {report.get('steps', '?')} steps of batch {report.get('batch_size', '?')} on "
             f"{report.get('segments', '?')} segments from {start}: final loss {loss}.",
             f"Time {timeText}{memoryText}; device: {report.get('device', '?')}.",
             f"Checkpoint: {checkpoints[-1]} (global step {report.get('final_step', '?')}); annotate with it in "
             "'annotate map' (advanced: Network weights from a training run)."]
    return lines + [f"Warning: {warning}" for warning in report.get("warnings", [])]


def _name(obj) -> str:
    """A short name of an input object: its file name without extension."""
    return pwutils.removeBaseExt(obj.getFileName().replace(":mrc", ""))
