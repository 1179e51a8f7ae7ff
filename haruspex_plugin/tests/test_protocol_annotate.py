"""ProtHaruspexAnnotate in a real (headless) Scipion project, launching the real worker from its own environment.

The worker runs with random weights generated in the published checkpoint layout (the root conftest.py allows
them with HARUSPEX_ALLOW_TEST_WEIGHTS=1), so the maps are meaningless but every file, header and relation is real.
Batch mode: a set of two maps, the second with a NaN voxel, fails at that map's worker run; its converted map is
then replaced by a valid one (a fix after a failure) and the protocol is continued, as a user would.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path
from unittest import mock

import numpy as np
from pwem.objects import SetOfVolumes, Volume
from pwem.protocols import EMProtocol, ProtImportVolumes
from pyworkflow.protocol import STATUS_FAILED
from pyworkflow.tests import BaseTest, setupTestProject

from haruspex_plugin import Plugin
from haruspex_plugin.constants import (
    BATCH_OUTPUT_NAMES,
    BATCH_WEIGHTED_OUTPUT_NAMES,
    CLASS_LABELS,
    CLASSES,
    HARUSPEX_CACHE,
    HARUSPEX_CHECKPOINT,
    HARUSPEX_WORKER_PYTHON,
    OUTPUT_NAMES,
    WEIGHTED_OUTPUT,
)
from haruspex_plugin.protocols import ProtHaruspexAnnotate
from haruspex_plugin.tests.helpers import (
    ORIGIN_XYZ,
    PROBABILITY_KEYS,
    SHAPE_ZYX,
    VOXEL_SIZE,
    check_cxc,
    check_png,
    class_environment,
    environment,
    import_map,
    read_mrc,
    run_worker,
    synthetic_map,
    use_test_checkpoint,
    worker_writing,
    write_mrc,
)
from haruspex_plugin.viewers import HaruspexAnnotateViewer, chimerax_script_for_protocol, summary_plot_for_protocol


class TestHaruspexAnnotate(BaseTest):
    """One real annotation run (shared by the checks), failing runs, validation, installation, viewers."""

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.checkpoint = use_test_checkpoint(cls)
        cls.inputVolume = cls.importMap("in_map.mrc", synthetic_map())
        cls.prot = cls.newProtocol(ProtHaruspexAnnotate, inputVolume=cls.inputVolume, useGpu=False,
                                   densityWeighted=True, batchSize=8)
        cls.launchProtocol(cls.prot)

    @classmethod
    def importMap(cls, name: str, data: np.ndarray):
        """Import *data* as a Volume with exactly VOXEL_SIZE and origin ORIGIN_XYZ (the constants the tests
        compare against, not their float32 header values)."""
        return import_map(cls, write_mrc(cls.getOutputPath(name), data), voxel_size=VOXEL_SIZE, origin=ORIGIN_XYZ)

    # --- a successful run ---------------------------------------------------------------------------------------
    def test_every_output_on_the_input_grid(self):
        inputShifts = self.inputVolume.getOrigin(force=True).getShifts()
        self.assertEqual(tuple(inputShifts), ORIGIN_XYZ)
        volumes = [getattr(self.prot, name) for name in OUTPUT_NAMES.values()]
        volumes += list(getattr(self.prot, WEIGHTED_OUTPUT))
        self.assertEqual(len(volumes), 9)
        for volume in volumes:
            with self.subTest(volume=volume.getFileName()):
                self.assertEqual(volume.getDim(), SHAPE_ZYX[::-1])
                self.assertEqual(volume.getSamplingRate(), VOXEL_SIZE)
                np.testing.assert_allclose(volume.getOrigin(force=True).getShifts(), inputShifts)
                data, voxel, origin = read_mrc(volume.getFileName())
                self.assertEqual(data.shape, SHAPE_ZYX)
                np.testing.assert_allclose(voxel, (VOXEL_SIZE,) * 3, rtol=1e-5)
                np.testing.assert_allclose(origin, ORIGIN_XYZ, atol=1e-4)
                self.assertTrue(np.isfinite(data).all())

    def test_probabilities_sum_to_one_and_labels_are_their_argmax(self):
        probabilities = np.stack([read_mrc(self.outputFile(k))[0] for k in CLASSES])  # label value order
        self.assertGreaterEqual(float(probabilities.min()), 0.0)
        np.testing.assert_allclose(probabilities.sum(axis=0), 1.0, atol=1e-4)
        labels = read_mrc(self.outputFile("labels"))[0]
        self.assertTrue(set(np.unique(labels)) <= {0.0, 1.0, 2.0, 3.0}, np.unique(labels))
        ordered = np.sort(probabilities, axis=0)
        clear = ordered[-1] - ordered[-2] > 1e-6  # voxels whose most likely class is not a tie
        self.assertGreater(clear.mean(), 0.99)
        np.testing.assert_array_equal(labels[clear], probabilities.argmax(axis=0)[clear])

    def test_summary_fractions_match_the_label_map(self):
        summary = self.prot.getWorkerSummary()
        labels = read_mrc(self.outputFile("labels"))[0]
        for value, name in enumerate(CLASSES):
            self.assertAlmostEqual(summary["class_fractions"][name], float(np.mean(labels == value)), places=6)

    def test_density_weighted_set_is_probability_times_density(self):
        weighted = getattr(self.prot, WEIGHTED_OUTPUT)
        self.assertEqual(weighted.getSize(), 4)
        self.assertEqual(weighted.getSamplingRate(), VOXEL_SIZE)
        density = read_mrc(self.prot.getInputMapPath())[0]
        np.testing.assert_allclose(density, synthetic_map(), atol=1e-6)
        files = {Path(v.getFileName()).name for v in weighted}
        for name in PROBABILITY_KEYS:
            weightedFile = f"{self.prot.getPrefix()}_{name}_weighted.mrc"
            self.assertIn(weightedFile, files)
            expected = read_mrc(self.outputFile(name))[0] * density
            actual = read_mrc(self.prot._getExtraPath(weightedFile))[0]
            np.testing.assert_allclose(actual, expected, atol=1e-5 * float(np.abs(density).max()))

    def test_summary_methods_and_citations(self):
        text = "\n".join(self.prot.summary())
        fractions = self.prot.getWorkerSummary()["class_fractions"]
        for name in CLASSES:
            self.assertIn(f"{CLASS_LABELS[name]} {100 * fractions[name]:.1f}%", text)
        self.assertIn("Device: cpu", text)
        self.assertIn("RANDOM TEST WEIGHTS", text)  # the worker's warning reaches the user
        self.assertIn("[Mostosi2020]", "\n".join(self.prot.methods()))
        self.assertEqual(self.prot._citations(), ["Mostosi2020"])

    def test_outputs_derive_from_the_input(self):
        for name in list(OUTPUT_NAMES.values()) + [WEIGHTED_OUTPUT]:
            output = getattr(self.prot, name)
            parents = self.proj.getSourceParents(output)
            self.assertEqual([p.getObjId() for p in parents], [self.inputVolume.getObjId()], name)

    def test_viewer_files_from_the_protocol(self):
        script = chimerax_script_for_protocol(self.prot)
        self.assertEqual(script.parent.resolve(), Path(self.prot._getExtraPath()).resolve())
        check_cxc(self, script, {name: self.outputFile(name) for name in PROBABILITY_KEYS},
                  labels_file=self.outputFile("labels"))
        check_png(self, summary_plot_for_protocol(self.prot), min_size=(1000, 400))

    def test_gui_viewer_returns_a_chimerax_view_of_the_script(self):
        viewer = HaruspexAnnotateViewer(project=self.proj, protocol=self.prot)
        viewer.setProtocol(self.prot)
        views = viewer._getVisualizeDict()["displayChimeraX"]("displayChimeraX")
        self.assertEqual(len(views), 1)
        self.assertIn(f"{self.prot.getPrefix()}_chimerax.cxc", views[0]._cmd)

    def test_gui_viewer_plots_the_summary(self):
        viewer = HaruspexAnnotateViewer(project=self.proj, protocol=self.prot)
        viewer.setProtocol(self.prot)
        plotter, = viewer._getVisualizeDict()["displaySummaryPlot"]("displaySummaryPlot")
        axes = plotter.getFigure().get_axes()
        self.assertEqual([a.get_title() for a in axes], ["Class fractions", "Class profile along z"])
        self.assertEqual(len(axes[0].patches), 4)  # one bar per class

    # --- failing runs register nothing -----------------------------------------------------------------------
    def test_incomplete_worker_outputs_register_nothing(self):
        prot = self.newProtocol(ProtHaruspexAnnotate, inputVolume=self.inputVolume, useGpu=False)
        prot.setWorkingDir(self.getOutputPath("unlaunched-incomplete"))
        os.makedirs(prot._getExtraPath())
        outputs = {key: os.path.abspath(prot._getExtraPath(f"{key}.mrc")) for key in OUTPUT_NAMES}
        for path in list(outputs.values())[:-1]:  # every file but the label map
            write_mrc(path, synthetic_map())
        Path(prot.getSummaryPath()).write_text(json.dumps({"outputs": outputs}))
        with self.assertRaisesRegex(RuntimeError, r"labels: .*labels\.mrc missing"):
            prot.createOutputStep()
        self.assertEqual(list(prot.iterOutputAttributes()), [])

    def test_worker_failure_fails_the_run_and_registers_nothing(self):
        data = synthetic_map(seed=3)
        data[5, 6, 7] = np.nan  # the worker refuses maps with NaN values
        volume = self.importMap("nan_map.mrc", data)
        prot = self.newProtocol(ProtHaruspexAnnotate, inputVolume=volume, useGpu=False)
        self.assertEqual(prot.validate(), [])  # the problem is only found by the worker
        self.proj.launchProtocol(prot, wait=True)
        self.assertTrue(prot.isFailed(), prot.getStatus())
        self.assertIn("haruspex: error:", prot.getErrorMessage())
        self.assertIn("NaN", prot.getErrorMessage())
        self.assertEqual(list(prot.iterOutputAttributes()), [])
        self.assertFalse(os.path.exists(prot.getSummaryPath()))

    def test_missing_checkpoint_fails_the_run_and_registers_nothing(self):
        missing = self.getOutputPath("no-such-weights", "model.ckpt-40000")
        prot = self.newProtocol(ProtHaruspexAnnotate, inputVolume=self.inputVolume, useGpu=False)
        with environment(**{HARUSPEX_CHECKPOINT: missing}):
            errors = prot.validate()
            self.assertTrue(any(HARUSPEX_CHECKPOINT in e and "no-such-weights" in e for e in errors), errors)
            self.proj.launchProtocol(prot, wait=True)
        self.assertTrue(prot.isFailed(), prot.getStatus())
        self.assertIn(HARUSPEX_CHECKPOINT, prot.getErrorMessage())
        self.assertEqual(list(prot.iterOutputAttributes()), [])

    # --- validation and installation ---------------------------------------------------------------------------
    def test_validate_accepts_a_complete_setup(self):
        prot = self.newProtocol(ProtHaruspexAnnotate, inputVolume=self.inputVolume, useGpu=False)
        self.assertEqual(prot.validate(), [])

    def test_validate_reports_a_missing_worker_python(self):
        prot = self.newProtocol(ProtHaruspexAnnotate, inputVolume=self.inputVolume, useGpu=False)
        missing = self.getOutputPath("no-worker-env", "bin", "python")
        with mock.patch.dict(Plugin.getVars(), {HARUSPEX_WORKER_PYTHON: missing}):
            errors = prot.validate()
            problems = Plugin.checkInstallation()
        self.assertEqual(len(problems), 1)
        self.assertIn("scipion3 installb haruspex-worker", problems[0])
        self.assertIn(missing, problems[0])
        self.assertEqual([e for e in errors if "installb haruspex-worker" in e], problems)  # reported once

    def test_validate_reports_a_worker_without_the_engine(self):
        prot = self.newProtocol(ProtHaruspexAnnotate, inputVolume=self.inputVolume, useGpu=False)
        bare = self.getOutputPath("bare-env")
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", bare], check=True)
        with mock.patch.dict(Plugin.getVars(), {HARUSPEX_WORKER_PYTHON: os.path.join(bare, "bin", "python")}):
            errors = prot.validate()
        self.assertTrue(any("cannot import haruspex_engine" in e for e in errors), errors)

    def test_validate_requires_a_gpu_id_when_using_the_gpu(self):
        prot = self.newProtocol(ProtHaruspexAnnotate, inputVolume=self.inputVolume, useGpu=True, gpuList="")
        self.assertTrue(any("GPU ID" in e for e in prot.validate()))

    def test_worker_command_and_environment(self):
        python = Plugin.getVar(HARUSPEX_WORKER_PYTHON)
        self.assertEqual(Plugin.getWorkerCommand(), f"{python} -m haruspex_engine")
        with environment(PYTHONPATH="/scipion/only", **{HARUSPEX_CHECKPOINT: "/data/model.ckpt-40000"}):
            environ = Plugin.getEnviron()
        self.assertEqual(environ[HARUSPEX_CACHE], Plugin.getVar(HARUSPEX_CACHE))
        self.assertEqual(environ[HARUSPEX_CHECKPOINT], "/data/model.ckpt-40000")
        self.assertNotIn("PYTHONPATH", environ)
        self.assertTrue(hasattr(environ, "getPrepend"))  # runJob needs a pyworkflow Environ

    def test_gpu_run_selects_the_gpu_through_cuda_visible_devices(self):
        prot = self.newProtocol(ProtHaruspexAnnotate, inputVolume=self.inputVolume, useGpu=True, gpuList="1")
        prot.setWorkingDir(self.getOutputPath("unlaunched-gpu"))
        worker = worker_writing(prot.getSummaryPath())
        with mock.patch.object(ProtHaruspexAnnotate, "runJob", side_effect=worker) as runJob:
            prot.annotateStep()
        program, args = runJob.call_args.args
        self.assertTrue(program.startswith("CUDA_VISIBLE_DEVICES=%(GPU)s "), program)
        self.assertIn("--device auto", args)
        self.assertIn("--batch-size 8", args)

    def test_define_binaries_creates_the_worker_env_and_downloads_the_weights(self):
        env = _RecordingInstallEnv()
        funcs = types.ModuleType("scipion.install.funcs")
        funcs.VOID_TGZ = "void.tgz"
        modules = {"scipion": types.ModuleType("scipion"), "scipion.install": types.ModuleType("scipion.install"),
                   "scipion.install.funcs": funcs}
        with mock.patch.dict(sys.modules, modules):
            Plugin.defineBinaries(env)
        worker, weights = env.packages["haruspex-worker"], env.packages["haruspex-weights"]
        envDir = Plugin.getHome("worker-env")
        (venvCmd, venvTarget), (pipCmd, pipTarget) = worker["commands"]
        self.assertIn(f"-m venv {envDir}", venvCmd)
        self.assertEqual(venvTarget, os.path.join(envDir, "bin", "python"))
        self.assertIn("tensorflow", pipCmd)
        self.assertIn("--no-deps", pipCmd)
        self.assertNotIn("scipion-pyworkflow", pipCmd)
        self.assertTrue(pipTarget.startswith(envDir))
        (downloadCmd, targets), = weights["commands"]
        self.assertIn(f"{HARUSPEX_CACHE}={Plugin.getVar(HARUSPEX_CACHE)} ", downloadCmd)
        self.assertIn("-m haruspex_engine weights download", downloadCmd)
        self.assertTrue(targets and all(t.startswith(Plugin.getVar(HARUSPEX_CACHE)) for t in targets))
        self.assertEqual(weights["deps"], ["haruspex-worker"])

    def test_worker_gets_gpu_tensorflow_only_where_a_gpu_driver_is(self):
        from haruspex_plugin import _worker_requirements

        cpu, gpu = _worker_requirements(gpu=False), _worker_requirements(gpu=True)
        self.assertTrue(any(r.startswith("tensorflow-cpu==") for r in cpu), cpu)
        version = next(r for r in cpu if r.startswith("tensorflow-cpu==")).split("==")[1]
        self.assertIn(f"tensorflow[and-cuda]=={version}", gpu)
        self.assertEqual([r for r in cpu if "tensorflow" not in r], [r for r in gpu if "tensorflow" not in r])

    def test_default_gpu_run_without_a_gpu_falls_back_to_cpu_loudly(self):
        prot = self.newProtocol(ProtHaruspexAnnotate, inputVolume=self.inputVolume)  # useGpu defaults to Yes
        self.assertTrue(prot.useGpu.get())
        self.launchProtocol(prot)  # the worker here has CPU-only TensorFlow
        summary = prot.getWorkerSummary()
        self.assertEqual(summary["device"], "cpu")
        self.assertTrue(any("no GPU is usable" in w for w in summary["warnings"]), summary["warnings"])
        self.assertTrue(any("no GPU is usable" in line for line in prot.summary()), prot.summary())
        logs = "".join(open(log).read() for log in (prot.getStdoutLog(), prot.getStderrLog()) if os.path.exists(log))
        self.assertIn("WARNING: no GPU is usable", logs)

    def test_menu_lists_the_protocol(self):
        import pyworkflow as pw
        from pyworkflow.gui.project.viewprotocols_extra import ProtocolTreeConfig

        config = ProtocolTreeConfig.load(pw.Config.getDomain(), self.getOutputPath("no-user-menu.conf"))
        self.assertIn(("Preprocess map", "ProtHaruspexAnnotate"), _protocol_paths(config["Model building"]))
        self.assertIn(("3D", "Analysis", "ProtHaruspexAnnotate"), _protocol_paths(config["Protocols SPA"]))

    # --- helpers ------------------------------------------------------------------------------------------------
    def outputFile(self, key: str) -> str:
        return getattr(self.prot, OUTPUT_NAMES[key]).getFileName()


class TestHaruspexAnnotateDemoModel(BaseTest):
    """The bundled demo model: runs with no published weights installed and annotates the built-in example."""

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        missing = cls.getOutputPath("no-published-weights", "model.ckpt-40000")
        class_environment(cls, **{HARUSPEX_CHECKPOINT: missing, "HARUSPEX_ALLOW_TEST_WEIGHTS": "0"})
        path = cls.getOutputPath("example.mrc")
        run_worker("-m", "haruspex_engine", "example", path)
        cls.prot = cls.newProtocol(ProtHaruspexAnnotate, inputVolume=import_map(cls, path), useGpu=False,
                                   useDemoModel=True)
        cls.launchProtocol(cls.prot)

    def test_runs_without_the_published_weights_and_says_it_is_the_demo_model(self):
        self.assertTrue(self.prot.isFinished(), self.prot.getStatus())
        self.assertIn("--demo-model", self.prot._workerArgs(None))
        self.assertIn("DEMO MODEL", "\n".join(self.prot.summary()))
        self.assertIn("demo model", "\n".join(self.prot.methods()))
        self.assertEqual(self.prot.getWorkerSummary()["network"], "demo")

    def test_finds_the_helices_and_the_sheet_of_the_example(self):
        fractions = self.prot.getWorkerSummary()["class_fractions"]
        self.assertGreater(fractions["helix"], 0.02, fractions)
        self.assertGreater(fractions["sheet"], 0.01, fractions)
        self.assertGreater(fractions["helix"] + fractions["sheet"], 5 * fractions["nucleic"], fractions)

    def test_demo_model_and_other_weights_exclude_each_other(self):
        prot = self.newProtocol(ProtHaruspexAnnotate, inputVolume=self.prot.inputVolume.get(), useGpu=False,
                                useDemoModel=True, checkpointPrefix=self.getOutputPath("model.ckpt-1"))
        self.assertIn("Choose either the demo model or other network weights, not both.", prot.validate())


class TestHaruspexAnnotateBatch(BaseTest):
    """A SetOfVolumes of two maps annotated map by map: a failing map, a continued run, the per-class output sets."""

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        use_test_checkpoint(cls)
        cls.densities = {"map_a": synthetic_map(seed=7), "map_b": synthetic_map(seed=11)}
        broken = cls.densities["map_b"].copy()
        broken[5, 6, 7] = np.nan  # the worker refuses maps with NaN values
        folder = cls.getOutputPath("maps")
        os.makedirs(folder, exist_ok=True)
        write_mrc(os.path.join(folder, "map_a.mrc"), cls.densities["map_a"])
        write_mrc(os.path.join(folder, "map_b.mrc"), broken)
        x, y, z = (-value for value in ORIGIN_XYZ)
        importer = cls.newProtocol(ProtImportVolumes, filesPath=folder, filesPattern="map_*.mrc",
                                   samplingRate=VOXEL_SIZE, setOrigCoord=True, x=x, y=y, z=z)
        cls.launchProtocol(importer)
        cls.inputSet = importer.outputVolumes
        stems = {v.getObjId(): Path(v.getFileName().replace(":mrc", "")).stem for v in cls.inputSet}
        cls.ids = {name: mapId for mapId, stem in stems.items() for name in cls.densities if stem.endswith(name)}

        cls.prot = cls.newProtocol(ProtHaruspexAnnotate, inputVolume=cls.inputSet, useGpu=False,
                                   densityWeighted=True)
        cls.proj.launchProtocol(cls.prot, wait=True)  # map_b fails
        cls.failed = {"status": cls.prot.getStatus(), "error": cls.prot.getErrorMessage(),
                      "outputs": [name for name, _ in cls.prot.iterOutputAttributes()],
                      "summaries": {name: os.path.exists(cls.prot.getSummaryPath(i)) for name, i in cls.ids.items()},
                      "summaryA": os.stat(cls.prot.getSummaryPath(cls.ids["map_a"])).st_mtime_ns}
        write_mrc(cls.prot.getInputMapPath(cls.ids["map_b"]), cls.densities["map_b"])  # the fix
        cls.launchProtocol(cls.prot)  # continue: only map_b's worker run and the output step run

    def test_a_failing_map_fails_the_run_and_registers_nothing(self):
        self.assertEqual(self.failed["status"], STATUS_FAILED)
        self.assertIn("haruspex: error:", self.failed["error"])
        self.assertIn("NaN", self.failed["error"])
        self.assertEqual(self.failed["outputs"], [])
        self.assertEqual(self.failed["summaries"], {"map_a": True, "map_b": False})

    def test_continue_reruns_only_the_failed_map(self):
        self.assertTrue(self.prot.isFinished(), self.prot.getStatus())
        self.assertEqual(os.stat(self.prot.getSummaryPath(self.ids["map_a"])).st_mtime_ns, self.failed["summaryA"])
        self.assertTrue(os.path.exists(self.prot.getSummaryPath(self.ids["map_b"])))
        runs = [s.funcName.get() for s in self.prot.loadSteps()]
        self.assertEqual(runs, ["convertInputStep", "annotateStep"] * 2 + ["createOutputStep"])

    def test_one_set_per_output_with_each_input_map_as_its_item(self):
        names = list(BATCH_OUTPUT_NAMES.values()) + list(BATCH_WEIGHTED_OUTPUT_NAMES.values())
        self.assertEqual(sorted(name for name, _ in self.prot.iterOutputAttributes()), sorted(names))
        inputs = {v.getObjId(): v.clone() for v in self.inputSet}
        for name in names:
            output = getattr(self.prot, name)
            self.assertIsInstance(output, SetOfVolumes, name)
            self.assertIs(self.prot._possibleOutputs[name], SetOfVolumes)
            self.assertEqual(output.getSamplingRate(), VOXEL_SIZE)
            items = {item.getObjId(): item.clone() for item in output}
            self.assertEqual(sorted(items), sorted(inputs), name)
            for mapId, item in items.items():
                with self.subTest(output=name, map=mapId):
                    self.assertTrue(os.path.samefile(os.path.dirname(item.getFileName()),
                                                     self.prot.getMapFolder(mapId)))
                    self.assertEqual(item.getDim(), SHAPE_ZYX[::-1])
                    self.assertEqual(item.getSamplingRate(), inputs[mapId].getSamplingRate())
                    np.testing.assert_allclose(item.getOrigin(force=True).getShifts(),
                                               inputs[mapId].getOrigin(force=True).getShifts())
                    data, voxel, origin = read_mrc(item.getFileName())
                    np.testing.assert_allclose(voxel, (VOXEL_SIZE,) * 3, rtol=1e-5)
                    np.testing.assert_allclose(origin, ORIGIN_XYZ, atol=1e-4)
                    self.assertTrue(np.isfinite(data).all())

    def test_each_item_is_the_annotation_of_its_own_map(self):
        for name, mapId in self.ids.items():
            density = read_mrc(self.prot.getInputMapPath(mapId))[0]
            np.testing.assert_allclose(density, self.densities[name], atol=1e-6)
            probabilities = np.stack([read_mrc(self.itemFile(BATCH_OUTPUT_NAMES[c], mapId))[0] for c in CLASSES])
            np.testing.assert_allclose(probabilities.sum(axis=0), 1.0, atol=1e-4)
            for index, cls in enumerate(CLASSES):
                weighted = read_mrc(self.itemFile(BATCH_WEIGHTED_OUTPUT_NAMES[cls], mapId))[0]
                np.testing.assert_allclose(weighted, probabilities[index] * density,
                                           atol=1e-5 * float(np.abs(density).max()), err_msg=f"{name} {cls}")
            fractions = self.prot.getWorkerSummary(mapId)["class_fractions"]
            labels = read_mrc(self.itemFile(BATCH_OUTPUT_NAMES["labels"], mapId))[0]
            for value, cls in enumerate(CLASSES):
                self.assertAlmostEqual(fractions[cls], float(np.mean(labels == value)), places=6)

    def test_summary_and_methods_cover_every_map(self):
        text = "\n".join(self.prot.summary())
        self.assertIn("2 of 2 maps annotated", text)
        for mapId in self.ids.values():
            fractions = self.prot.getWorkerSummary(mapId)["class_fractions"]
            line = f"map {mapId} ({Path(self.prot.getInputMapPath(mapId)).stem}): " + ", ".join(
                f"{CLASS_LABELS[c]} {100 * fractions[c]:.1f}%" for c in ("helix", "sheet", "nucleic", "unassigned"))
            self.assertIn(line, text)
        self.assertIn("Device: cpu", text)
        self.assertEqual(text.count("RANDOM TEST WEIGHTS"), 1)  # the same warning of both runs, once
        self.assertIn("Each of the 2 maps", "\n".join(self.prot.methods()))

    def test_the_viewer_says_it_shows_single_map_runs(self):
        viewer = HaruspexAnnotateViewer(project=self.proj, protocol=self.prot)
        viewer.setProtocol(self.prot)
        with mock.patch.object(HaruspexAnnotateViewer, "errorMessage", side_effect=lambda msg, title: msg):
            for key in ("displayChimeraX", "displaySummaryPlot"):
                message, = viewer._getVisualizeDict()[key](key)
                self.assertIn("annotated a set of maps", message)

    def test_outputs_derive_from_the_input_set(self):
        for name, output in self.prot.iterOutputAttributes():
            parents = self.proj.getSourceParents(output)
            self.assertEqual([p.getObjId() for p in parents], [self.inputSet.getObjId()], name)

    def test_validate_names_a_map_without_sampling_rate(self):
        unsampled = self.registerSet("unsampled", [0.0, VOXEL_SIZE])
        prot = self.newProtocol(ProtHaruspexAnnotate, inputVolume=unsampled, useGpu=False)
        errors = prot.validate()
        self.assertIn("Map 1 of the input set has no sampling rate: set it (Å/voxel) when importing the map.", errors)
        self.assertFalse(any("Map 2" in e for e in errors), errors)

    def test_validate_refuses_an_empty_set(self):
        prot = self.newProtocol(ProtHaruspexAnnotate, inputVolume=self.registerSet("empty", []), useGpu=False)
        self.assertIn("The input set of maps is empty.", prot.validate())

    # --- helpers ------------------------------------------------------------------------------------------------
    def itemFile(self, outputName: str, mapId: int) -> str:
        return getattr(self.prot, outputName)[mapId].getFileName()

    @classmethod
    def registerSet(cls, label: str, samplings: list[float]) -> SetOfVolumes:
        """A SetOfVolumes of maps with the given sampling rates, registered as the output of a saved protocol."""
        holder = cls.newProtocol(EMProtocol)
        holder.setObjLabel(label)
        cls.proj.saveProtocol(holder)
        holder.makePathsAndClean()
        volumes = SetOfVolumes(filename=holder._getPath("volumes.sqlite"))
        for index, sampling in enumerate(samplings):
            volume = Volume(location=write_mrc(holder._getExtraPath(f"{index}.mrc"), synthetic_map()))
            volume.setSamplingRate(sampling)
            volumes.append(volume)
        volumes.write()
        holder._defineOutputs(outputVolumes=volumes)
        holder.setFinished()
        cls.proj._storeProtocol(holder)
        return holder.outputVolumes


class _RecordingInstallEnv:
    """Stands in for scipion-app's install Environment: records addPackage calls."""

    def __init__(self):
        self.packages = {}

    def addPackage(self, name, **kwargs):
        self.packages[name] = kwargs


def _protocol_paths(node, path: tuple = ()) -> list[tuple]:
    """(section texts..., protocol class name) of every protocol under a protocol-tree node."""
    if node.tag == "protocol":
        return [(*path, node.value)]
    paths = []
    for child in node.childs:
        paths += _protocol_paths(child, path + (child.text,) if child.tag != "protocol" else path)
    return paths
