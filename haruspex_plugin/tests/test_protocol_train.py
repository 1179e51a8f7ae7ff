"""ProtHaruspexTrain in a real (headless) Scipion project, launching the real worker from its own environment, and
'annotate map' with the checkpoint it trained.

The data are two (map, model) pairs of one scene, nine ideal helices beside a 4-stranded sheet (the bundle of
haruspex_engine/tests/test_training_labels.py), simulated at 1.1 Å, once clean and once with noise; each gives one
70³ segment. Training starts from random weights in the published layout (the 'published weights' the worker finds
through HARUSPEX_CHECKPOINT; allowed by the root conftest.py) and runs 2 steps of batch 1, so what is checked is the
pipeline: a training-data step per pair, the training, the registered checkpoint, annotation with it, continuing
from it; not the quality of the network (trained and measured in the engine's tests and benchmarks).
"""
from __future__ import annotations

import os

import pyworkflow.utils as pwutils
from pwem.objects import EMFile, Volume
from pyworkflow.tests import BaseTest, setupTestProject

from haruspex_plugin.constants import HARUSPEX_CHECKPOINT, OUTPUT_NAMES, TRAINED_CHECKPOINT_OUTPUT
from haruspex_plugin.protocols import ProtHaruspexAnnotate, ProtHaruspexTrain
from haruspex_plugin.protocols.protocol_train import (
    DATA_FOLDER,
    PREVIOUS_RUN,
    PUBLISHED,
    installed_checkpoint,
    training_lines,
)
from haruspex_plugin.tests.helpers import environment, import_map, import_model, run_worker, use_test_checkpoint
from haruspex_plugin.tests.test_protocol_annotate import _protocol_paths

VOXEL_SIZE = 1.1
STEPS = 2
# Writes SCENE.mrc (simulated at 4 Å, 1.1 Å voxels, origin 0) and SCENE_model.cif into the folder argv[1] for the
# bundle (clean and noisy) and for a 12-residue glycine helix (48 atoms: too few for a training segment).
WRITE_SCENES = """
import sys
from pathlib import Path
from haruspex_engine import structures
from haruspex_engine.maps import write_map
from haruspex_engine.nucleic.building.atoms import write_model
from haruspex_engine.simulate import simulate_map
helices = [structures.ideal_alpha_helix(24, chain_id="ABCDEFGHI"[k], start=(10.0 * (k % 3), 10.0 * (k // 3), 0.0))
           for k in range(9)]
sheet = structures.beta_sheet(4, 9, chain_ids=list("JKLM"), start=(32.0, 0.0, 5.0), strand_axis=(0, 0, 1))
bundle = structures.assemble(helices + sheet)
small = structures.assemble([structures.ideal_alpha_helix(12, chain_id="A", residue="GLY")])
for name, structure, noise in (("bundle", bundle, 0.0), ("noisy", bundle, 0.2), ("small", small, 0.0)):
    density, origin = simulate_map(structure, voxel_size=1.1, resolution=4.0, noise_sigma=noise, seed=1)
    write_map(Path(sys.argv[1]) / f"{name}.mrc", density, (1.1,) * 3, origin)
    write_model(structure, Path(sys.argv[1]) / f"{name}_model.cif")
"""


class TestHaruspexTrain(BaseTest):
    """Training on two pairs from the 'published' (random test) weights, annotation with the result, a run
    continuing from it with maps given beside the models; a run without segments; validation of the forms."""

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.initialCheckpoint = use_test_checkpoint(cls)
        folder = cls.getOutputPath("scenes")
        os.makedirs(folder, exist_ok=True)
        run_worker("-c", WRITE_SCENES, folder)
        cls.maps = {name: import_map(cls, os.path.join(folder, f"{name}.mrc")) for name in ("bundle", "noisy", "small")}
        cls.models = {name: import_model(cls, os.path.join(folder, f"{name}_model.cif"), cls.maps[name])
                      for name in ("bundle", "noisy", "small")}
        cls.bareModel = import_model(cls, os.path.join(folder, "noisy_model.cif"), None)

        cls.prot = cls.newProtocol(ProtHaruspexTrain, initialWeights=PUBLISHED, steps=STEPS, batchSize=1,
                                   checkpointEvery=1, useGpu=False)
        for name in ("bundle", "noisy"):
            cls.prot.inputStructures.append(cls.models[name])
        cls.launchProtocol(cls.prot)
        cls.annotation = cls.newProtocol(ProtHaruspexAnnotate, inputVolume=cls.maps["bundle"], trainingRun=cls.prot,
                                         useGpu=False)
        cls.launchProtocol(cls.annotation)
        cls.continued = cls.newProtocol(ProtHaruspexTrain, initialWeights=PREVIOUS_RUN, previousRun=cls.prot,
                                        steps=1, batchSize=1, useGpu=False)
        cls.continued.inputStructures.append(cls.bareModel)
        cls.continued.inputVolumes.append(cls.maps["noisy"])
        cls.launchProtocol(cls.continued)

    def newTraining(self, *models, maps=(), **values) -> ProtHaruspexTrain:
        prot = self.newProtocol(ProtHaruspexTrain, useGpu=False, **values)
        for model in models:
            prot.inputStructures.append(model)
        for volume in maps:
            prot.inputVolumes.append(volume)
        return prot

    # --- the training run ---------------------------------------------------------------------------------------
    def test_one_training_data_step_per_pair(self):
        self.assertEqual([(v.getFileName(), s.getFileName()) for v, s in self.prot.getPairs()],
                         [(self.models[n].getVolume().getFileName(), self.models[n].getFileName())
                          for n in ("bundle", "noisy")])
        self.assertEqual(self.prot.getSegmentCounts(), {1: 1, 2: 1})
        data = self.prot._getExtraPath(DATA_FOLDER)
        for index in (1, 2):
            prefix = self.prot.getPairPrefix(index)
            self.assertTrue(prefix.startswith(f"pair{index:02d}_"), prefix)
            self.assertTrue(os.path.isfile(os.path.join(data, f"{prefix}_00000.npz")), prefix)
        steps = [step.funcName.get() for step in self.prot.loadSteps()]
        self.assertEqual(steps, ["convertInputStep", "trainingDataStep"] * 2 + ["trainStep", "createOutputStep"])

    def test_checkpoint_registered(self):
        output = getattr(self.prot, TRAINED_CHECKPOINT_OUTPUT)
        self.assertIsInstance(output, EMFile)
        report = self.prot.getTrainingReport()
        self.assertEqual(os.path.abspath(output.getFileName()), report["checkpoints"][-1])
        self.assertEqual(self.prot.getCheckpointPrefix(), output.getFileName())
        for suffix in (".index", ".data-00000-of-00001"):
            self.assertTrue(os.path.isfile(output.getFileName() + suffix), suffix)
        self.assertTrue(output.getFileName().endswith(f"model.ckpt-{report['final_step']}"))
        parents = {p.getObjId() for p in self.proj.getSourceParents(output)}
        self.assertTrue({self.models["bundle"].getObjId(), self.models["noisy"].getObjId()} <= parents, parents)

    def test_report_and_summary(self):
        report = self.prot.getTrainingReport()
        self.assertEqual(report["initial_checkpoint"], self.initialCheckpoint)  # the installed weights: fine-tuning
        self.assertEqual((report["steps"], report["batch_size"], report["segments"]), (STEPS, 1, 2))
        self.assertEqual(report["final_step"] - report["first_step"], STEPS)
        self.assertEqual(len(report["checkpoints"]), STEPS)  # one per step (interval 1), all kept
        self.assertEqual(report["device"], "cpu")
        summary = self.prot.summary()
        self.assertEqual(summary[2:], training_lines(report))
        for index, name in enumerate(("bundle", "noisy"), start=1):
            mapName = pwutils.removeBaseExt(self.models[name].getVolume().getFileName())
            self.assertTrue(summary[index - 1].startswith(f"Pair {index} ({name}_model in {mapName}): training "
                                                          "segments of 70³ kept: 1;"), summary[index - 1])
        text = "\n".join(summary)
        self.assertIn(f"Trained {STEPS} steps of batch 1 on 2 segments from {self.initialCheckpoint}: final loss "
                      f"{report['losses'][-1]:.4f}.", text)
        self.assertIn("device: cpu", text)
        self.assertIn("[Mostosi2020]", "\n".join(self.prot.methods()))
        self.assertEqual(self.prot._citations(), ["Mostosi2020"])

    def test_annotate_with_the_trained_checkpoint(self):
        prefix = os.path.abspath(self.prot.getCheckpointPrefix())
        self.assertEqual(self.annotation.getCheckpoint(), prefix)
        summary = self.annotation.getWorkerSummary()
        self.assertEqual(summary["checkpoint"], prefix)
        self.assertTrue(os.path.isfile(getattr(self.annotation, OUTPUT_NAMES["labels"]).getFileName()))
        self.assertIn(f"Network weights: {prefix}", self.annotation.summary())
        self.assertIn("RANDOM TEST WEIGHTS", "\n".join(self.annotation.summary()))  # trained from test weights
        self.assertIn("not the published ones", "\n".join(self.annotation.methods()))
        # Without a training run or prefix, annotate keeps using the installed weights.
        default = self.newProtocol(ProtHaruspexAnnotate, inputVolume=self.maps["bundle"], useGpu=False)
        self.assertIsNone(default.getCheckpoint())
        self.assertNotIn("--checkpoint", default._workerArgs(None))
        self.assertEqual(default.validate(), [])
        given = self.newProtocol(ProtHaruspexAnnotate, inputVolume=self.maps["bundle"], useGpu=False,
                                 checkpointPrefix=prefix)
        self.assertEqual(given._workerArgs(None)[-2:], ["--checkpoint", prefix])

    def test_continue_from_a_previous_run_with_maps_given(self):
        self.assertEqual([(v.getObjId(), s.getObjId()) for v, s in self.continued.getPairs()],
                         [(self.maps["noisy"].getObjId(), self.bareModel.getObjId())])
        first, report = self.prot.getTrainingReport(), self.continued.getTrainingReport()
        self.assertEqual(report["initial_checkpoint"], os.path.abspath(self.prot.getCheckpointPrefix()))
        self.assertEqual((report["first_step"], report["final_step"]), (first["final_step"], first["final_step"] + 1))
        self.assertTrue(os.path.isfile(getattr(self.continued, TRAINED_CHECKPOINT_OUTPUT).getFileName() + ".index"))

    def test_installed_weights_are_the_workers(self):
        self.assertEqual(installed_checkpoint(), self.initialCheckpoint)
        missing = self.getOutputPath("no-such-weights", "model.ckpt-40000")
        with environment(**{HARUSPEX_CHECKPOINT: missing}):
            with self.assertRaisesRegex(RuntimeError, "Haruspex weights not usable: .*no-such-weights"):
                installed_checkpoint()

    # --- failing runs and the forms -----------------------------------------------------------------------------
    def test_no_segment_fails_and_registers_nothing(self):
        prot = self.newTraining(self.models["small"], steps=1, batchSize=1)
        self.proj.launchProtocol(prot, wait=True)
        self.assertTrue(prot.isFailed(), prot.getStatus())
        self.assertIn("No pair gave a training segment", prot.getErrorMessage())
        self.assertEqual(prot.getSegmentCounts(), {1: 0})
        self.assertEqual(list(prot.iterOutputAttributes()), [])

    def test_validate_asks_for_maps_and_a_finished_run(self):
        self.assertEqual(self.newTraining(self.models["bundle"]).validate(), [])
        cases = [
            (self.newTraining(self.bareModel), "has no map attached"),
            (self.newTraining(self.models["bundle"], self.bareModel, maps=[self.maps["bundle"]]),
             "one map per model"),
            (self.newTraining(self.models["bundle"], maps=[Volume(location=self.maps["bundle"].getFileName())]),
             "has no sampling rate"),
            (self.newTraining(self.models["bundle"], initialWeights=PREVIOUS_RUN), "Choose the training run"),
        ]
        unfinished = self.newTraining(self.models["bundle"])
        self.proj.saveProtocol(unfinished)
        cases.append((self.newTraining(self.models["bundle"], initialWeights=PREVIOUS_RUN, previousRun=unfinished),
                      "has not finished"))
        for prot, problem in cases:
            errors = prot.validate()
            self.assertTrue(any(problem in e for e in errors), (problem, errors))

    def test_annotate_validates_the_chosen_weights(self):
        unfinished = self.newTraining(self.models["bundle"])
        self.proj.saveProtocol(unfinished)
        prefix = os.path.abspath(self.prot.getCheckpointPrefix())
        for values, problem in (({"trainingRun": self.prot, "checkpointPrefix": prefix}, "not both"),
                                ({"trainingRun": unfinished}, "has not finished"),
                                ({"checkpointPrefix": prefix + "0"}, f"{prefix}0.index: missing")):
            prot = self.newProtocol(ProtHaruspexAnnotate, inputVolume=self.maps["bundle"], useGpu=False, **values)
            self.assertTrue(any(problem in e for e in prot.validate()), (problem, prot.validate()))

    def test_menu_lists_the_protocol(self):
        import pyworkflow as pw
        from pyworkflow.gui.project.viewprotocols_extra import ProtocolTreeConfig

        config = ProtocolTreeConfig.load(pw.Config.getDomain(), self.getOutputPath("no-user-menu.conf"))
        self.assertIn(("Training", "ProtHaruspexTrain"), _protocol_paths(config["Model building"]))
