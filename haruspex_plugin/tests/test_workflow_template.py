"""The workflow templates ``templates/annotate_and_build_na.json.template`` (one map) and
``templates/annotate_and_build_na_streaming.json.template`` (a set of maps, map by map), run the way
`scipion3 template` runs them.

The template is found among the plugins' templates (pyworkflow's TemplateList, what scipion-app's kickoff uses), its
placeholders are filled by alias (map, sampling, resolution) and its workflow file written; a project is created
from it and every protocol scheduled with pyworkflow's own scripts (``pyworkflow.project.scripts.create`` and
``schedule``, i.e. `scipion3 python -m ...`), and the test waits until every protocol is FINISHED.

The map is the simulated 12-nt RNA of ``haruspex_engine.testing.oracle_detection`` (1 Å voxels, 38 × 39 × 54). Both
networks run with random weights in the published layouts (allowed by the root conftest.py), with the template's
GPU default: the CPU-only worker falls back to the CPU. Scipion's scheduler waits 30 s per workflow level before
it checks a protocol's inputs, so the run takes about 1.5 min, mostly detection and waiting.

The streaming template's *import maps (streaming)* watches a folder of two nearly empty maps (two specks each: every
detection box is skipped, so building finds no nucleic acid in seconds), written before the workflow starts, with
its stop file: it takes both maps and closes its set. The run takes about 1 min; what it checks is the wiring: both
protocols take the import's set, and every map gets its item in their output sets. How they work on a set still
being filled, with maps arriving over time, is tested in test_streaming.py.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from pwem.objects import SetOfVolumes, Volume
from pwem.protocols import ProtImportVolumes
from pyworkflow import VarTypes
from pyworkflow.project import Manager
from pyworkflow.protocol import STATUS_ABORTED, STATUS_FAILED, STATUS_FINISHED
from pyworkflow.template import Template, TemplateList
from pyworkflow.tests import BaseTest, setupTestProject

from haruspex_engine.nucleic.building import SOLUTION_LIMIT
from haruspex_plugin.constants import (
    BATCH_OUTPUT_NAMES,
    HARUSPEX_CHECKPOINT,
    NA_BATCH_MAP_OUTPUTS,
    NA_BATCH_MASKED_MAP_OUTPUT,
    NA_DETECTION_OUTPUT,
    NA_MAP_OUTPUTS,
    OUTPUT_NAMES,
)
from haruspex_plugin.protocols import (
    ProtHaruspexAnnotate,
    ProtHaruspexBuildNucleicAcids,
    ProtHaruspexImportMapsStreaming,
)
from haruspex_plugin.protocols.protocol_import_maps_streaming import OUTPUT_NAME, STOP_STREAMING_FILE
from haruspex_plugin.tests.helpers import (
    CRYOREAD_WEIGHTS,
    class_environment,
    environment,
    make_test_checkpoint,
    read_mrc,
    run_worker,
    write_mrc,
    write_oracle_example,
)

TEMPLATE_ID = "haruspex_plugin-annotate_and_build_na"  # <plugin module>-<file name without .json.template>
PROJECT = "TestWorkflowTemplate-annotate_and_build_na"
STREAMING_TEMPLATE_ID = "haruspex_plugin-annotate_and_build_na_streaming"
STREAMING_PROJECT = "TestWorkflowTemplate-annotate_and_build_na_streaming"
SPECK_MAPS = {"specks_a.mrc": (30, 30, 30), "specks_b.mrc": (28, 30, 32)}  # file -> shape (z, y, x), 1 Å voxels
SAMPLING = "1.0"
RESOLUTION = "3.5"
WORKFLOW = (ProtImportVolumes, ProtHaruspexAnnotate, ProtHaruspexBuildNucleicAcids)
STREAMING_WORKFLOW = (ProtHaruspexImportMapsStreaming, ProtHaruspexAnnotate, ProtHaruspexBuildNucleicAcids)
#: s: how long before the workflow starts the maps were written (more than the template's file timeout, 30 s).
MAPS_AGE_S = 60
TIMEOUT_S = 480  # the run takes about 1.5 min on 2 CPU cores
POLL_S = 5


def find_template(templateId: str) -> Template:
    """The plugin template of id *templateId*, found as `scipion3 template <id>` finds it."""
    templates = TemplateList()
    templates.addPluginTemplates(templateId)
    found = [t for t in templates.templates if t.getObjId() == templateId]
    if len(found) != 1:
        raise AssertionError(f"{len(found)} plugin templates of id {templateId}")
    return found[0]


def write_workflow(template: Template, values: dict[str, str]) -> str:
    """Fill the template's placeholders by alias, as `scipion3 template <id> alias=value ...` does; return the
    path of the workflow file written."""
    template.replaceEnvVariables()
    template.parseContent()
    assigned = sum(template.setParamValue(alias, value) for alias, value in values.items())
    if assigned != len(template.getParams()):
        raise AssertionError(f"{assigned} of {len(template.getParams())} template parameters set from {values}")
    return template.createTemplateFile()


def run_project_script(script: str, *args: str, log: str) -> None:
    """Run ``python -m pyworkflow.project.scripts.<script> ARGS`` (what `scipion3 python -m` runs), its output
    appended to *log*: a file, not a pipe, since the schedule script leaves scheduler processes running."""
    with open(log, "a") as handle:
        code = subprocess.call([sys.executable, "-m", f"pyworkflow.project.scripts.{script}", *args],
                               stdout=handle, stderr=subprocess.STDOUT, timeout=120)
    if code != 0:
        raise AssertionError(f"{script} {' '.join(args)} exited with {code}:\n{Path(log).read_text()[-3000:]}")


def wait_until_finished(project, timeout_s: float) -> list:
    """The project's runs once all are FINISHED; AssertionError with their logs when one fails or the time is
    up (the runs still active are stopped first)."""
    deadline = time.monotonic() + timeout_s
    while True:
        runs = project.getRuns(refresh=True)
        statuses = [run.getStatus() for run in runs]
        if all(status == STATUS_FINISHED for status in statuses):
            return runs
        failed = any(status in (STATUS_FAILED, STATUS_ABORTED) for status in statuses)
        if failed or time.monotonic() > deadline:
            for run in runs:
                if run.isActive():
                    project.stopProtocol(run)
            problem = "a protocol failed" if failed else f"not finished after {timeout_s:g} s"
            raise AssertionError(f"{problem}:\n" + "\n".join(_run_report(project, run) for run in runs))
        time.sleep(POLL_S)


def _run_report(project, run) -> str:
    """A run's class, status, error and the end of its logs."""
    lines = [f"{run.getObjId()} {run.getClassName()}: {run.getStatus()} {run.getErrorMessage() or ''}"]
    for name in (run.getScheduleLog(), run.getStdoutLog(), run.getStderrLog()):
        log = os.path.join(project.getPath(), name)
        if os.path.exists(log):
            lines.append(f"--- {log}\n{Path(log).read_text(errors='replace')[-1500:]}")
    return "\n".join(lines)


class TestWorkflowTemplate(BaseTest):
    """One scheduled run of the template (shared by the checks)."""

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)  # a scratch project, whose folder holds the generated map and weights
        checkpoint = make_test_checkpoint(cls.getOutputPath("haruspex-weights"))
        cryoreadWeights = cls.getOutputPath("cryoread-weights")
        run_worker("-m", "haruspex_engine.testing.random_cryoread_weights", cryoreadWeights)
        cls.mapPath = os.path.abspath(cls.getOutputPath("rna_map.mrc"))
        write_oracle_example(cls.getOutputPath("rna.cif"), cls.mapPath)
        stack = contextlib.ExitStack()
        cls.addClassCleanup(stack.close)
        stack.enter_context(environment(**{HARUSPEX_CHECKPOINT: checkpoint, CRYOREAD_WEIGHTS: cryoreadWeights}))

        cls.template = find_template(TEMPLATE_ID)
        workflow = write_workflow(cls.template, {"map": cls.mapPath, "sampling": SAMPLING,
                                                 "resolution": RESOLUTION})
        cls.addClassCleanup(os.remove, workflow)
        manager = Manager()
        manager.deleteProject(PROJECT)  # left by an earlier run under the same PLUGIN_TEST_ROOT
        log = cls.getOutputPath("project-scripts.log")
        run_project_script("create", PROJECT, workflow, log=log)
        run_project_script("schedule", PROJECT, log=log)
        cls.project = manager.loadProject(PROJECT)
        runs = wait_until_finished(cls.project, TIMEOUT_S)
        cls.runs = {type(run): run for run in runs}
        cls.addClassCleanup(os.chdir, os.getcwd())
        os.chdir(cls.project.getPath())  # output file names are relative to their project

    def test_scipion_lists_the_template_with_its_placeholders(self):
        self.assertIn("Haruspex", self.template.description)
        params = {p.getAlias(): (p.getTitle(), p.getType()) for p in self.template.getParams().values()}
        self.assertEqual(params, {"map": ("Map file (MRC)", VarTypes.PATH.value),
                                  "sampling": ("Sampling rate (A/voxel)", VarTypes.DECIMAL.value),
                                  "resolution": ("Map resolution (A)", VarTypes.DECIMAL.value)})

    def test_every_protocol_of_the_workflow_finished(self):
        self.assertEqual(set(self.runs), set(WORKFLOW))
        for run in self.runs.values():
            self.assertEqual(run.getStatus(), STATUS_FINISHED, run.getRunName())

    def test_placeholders_reached_the_protocols(self):
        imported, annotate, build = (self.runs[cls] for cls in WORKFLOW)
        self.assertEqual(imported.filesPath.get(), self.mapPath)
        self.assertEqual(imported.samplingRate.get(), float(SAMPLING))
        self.assertEqual(build.resolution.get(), float(RESOLUTION))
        for prot in (annotate, build):
            self.assertTrue(prot.useGpu.get(), prot.getRunName())  # the template keeps Scipion's GPU default
            self.assertEqual(prot.inputVolume.get().getObjId(), imported.outputVolume.getObjId())

    def test_the_build_traces_with_the_engine_default_budget(self):
        """The template writes its tracing budget as a number: it must be build-na's default."""
        self.assertEqual(self.runs[ProtHaruspexBuildNucleicAcids].traceSolutions.get(), SOLUTION_LIMIT)

    def test_annotation_outputs_lie_on_the_imported_map(self):
        imported, annotate = self.runs[ProtImportVolumes].outputVolume, self.runs[ProtHaruspexAnnotate]
        shape = read_mrc(self.mapPath)[0].shape
        for name in OUTPUT_NAMES.values():
            with self.subTest(output=name):
                volume = getattr(annotate, name)
                self.assertIsInstance(volume, Volume)
                self.assertEqual(volume.getDim(), shape[::-1])
                self.assertEqual(volume.getSamplingRate(), float(SAMPLING))
                np.testing.assert_allclose(volume.getOrigin(force=True).getShifts(),
                                           imported.getOrigin(force=True).getShifts())
                self.assertTrue(np.isfinite(read_mrc(volume.getFileName())[0]).all())
        self.assertIn("Class fractions", "\n".join(annotate.summary()))

    def test_nucleic_acid_outputs_exist(self):
        build = self.runs[ProtHaruspexBuildNucleicAcids]
        detection = getattr(build, NA_DETECTION_OUTPUT)
        self.assertIsInstance(detection, SetOfVolumes)
        self.assertEqual(detection.getSize(), 8)
        files = [volume.getFileName() for volume in detection]
        files += [getattr(build, name).getFileName() for name in NA_MAP_OUTPUTS.values()]
        for path in files:
            self.assertTrue(os.path.isfile(path), path)
        self.assertIn("Detection: weights", "\n".join(build.summary()))


def create_and_schedule(template_id: str, project_name: str, values: dict[str, str], log: str):
    """(the template, the project created from it with every protocol scheduled)."""
    template = find_template(template_id)
    workflow = write_workflow(template, values)
    try:
        manager = Manager()
        manager.deleteProject(project_name)  # left by an earlier run under the same PLUGIN_TEST_ROOT
        run_project_script("create", project_name, workflow, log=log)
        run_project_script("schedule", project_name, log=log)
    finally:
        os.remove(workflow)
    return template, manager.loadProject(project_name)


class TestStreamingWorkflowTemplate(BaseTest):
    """One scheduled run of the streaming template on a folder of two maps (shared by the checks)."""

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)  # a scratch project, whose folder holds the generated maps and weights
        cryoreadWeights = cls.getOutputPath("cryoread-weights")
        run_worker("-m", "haruspex_engine.testing.random_cryoread_weights", cryoreadWeights)
        class_environment(cls, **{HARUSPEX_CHECKPOINT: make_test_checkpoint(cls.getOutputPath("haruspex-weights")),
                                   CRYOREAD_WEIGHTS: cryoreadWeights})
        class_environment(cls, SCIPION_EM_NEW_FILE_CHECK_SEC="1")  # pwem's polling period of streaming imports
        cls.mapsFolder = os.path.abspath(cls.getOutputPath("maps"))
        os.makedirs(cls.mapsFolder, exist_ok=True)
        written = time.time() - MAPS_AGE_S
        for name, shape in SPECK_MAPS.items():
            density = np.zeros(shape, np.float32)
            density[1, 1, 1], density[-2, -3, -4] = 1.0, 0.5  # too little density for any detection box to run
            path = write_mrc(os.path.join(cls.mapsFolder, name), density, 1.0, (0.0, 0.0, 0.0))
            os.utime(path, (written, written))
        Path(cls.mapsFolder, STOP_STREAMING_FILE).touch()  # no more maps will come
        values = {"maps": cls.mapsFolder, "pattern": "specks_*.mrc", "sampling": SAMPLING, "resolution": RESOLUTION}
        cls.template, cls.project = create_and_schedule(STREAMING_TEMPLATE_ID, STREAMING_PROJECT, values,
                                                        cls.getOutputPath("project-scripts.log"))
        cls.runs = {type(run): run for run in wait_until_finished(cls.project, TIMEOUT_S)}
        cls.addClassCleanup(os.chdir, os.getcwd())
        os.chdir(cls.project.getPath())  # output file names are relative to their project
        cls.maps = {Path(os.path.realpath(v.getFileName().replace(":mrc", ""))).name: v.clone()  # the import links
                    for v in getattr(cls.runs[ProtHaruspexImportMapsStreaming], OUTPUT_NAME)}

    def test_scipion_lists_the_template_with_its_placeholders(self):
        self.assertIn("streaming", self.template.description)
        params = {p.getAlias(): (p.getTitle(), p.getType()) for p in self.template.getParams().values()}
        self.assertEqual(params, {"maps": ("Maps folder", VarTypes.FOLDER.value),
                                  "pattern": ("Map file pattern", VarTypes.STRING.value),
                                  "sampling": ("Sampling rate (A/voxel)", VarTypes.DECIMAL.value),
                                  "resolution": ("Map resolution (A)", VarTypes.DECIMAL.value)})

    def test_every_protocol_finished_on_the_imported_set(self):
        self.assertEqual(set(self.runs), set(STREAMING_WORKFLOW))
        self.assertEqual(set(self.maps), set(SPECK_MAPS))
        importRun = self.runs[ProtHaruspexImportMapsStreaming]
        self.assertEqual((importRun.filesPath.get(), importRun.filesPattern.get(), importRun.samplingRate.get()),
                         (self.mapsFolder, "specks_*.mrc", float(SAMPLING)))
        imported = getattr(importRun, OUTPUT_NAME)
        self.assertTrue(imported.isStreamClosed())
        for cls in STREAMING_WORKFLOW[1:]:
            run = self.runs[cls]
            with self.subTest(protocol=cls.__name__):
                self.assertEqual(run.getStatus(), STATUS_FINISHED)
                self.assertTrue(cls.worksInStreaming())
                self.assertEqual(run.inputVolume.get().getObjId(), imported.getObjId())
        self.assertEqual(self.runs[ProtHaruspexBuildNucleicAcids].resolution.get(), float(RESOLUTION))

    def test_the_build_traces_with_the_engine_default_budget(self):
        """The template writes its tracing budget as a number: it must be build-na's default."""
        self.assertEqual(self.runs[ProtHaruspexBuildNucleicAcids].traceSolutions.get(), SOLUTION_LIMIT)

    def test_every_map_has_its_item_in_every_output_set(self):
        ids = {volume.getObjId(): name for name, volume in self.maps.items()}
        annotate, build = self.runs[ProtHaruspexAnnotate], self.runs[ProtHaruspexBuildNucleicAcids]
        outputs = [(annotate, name) for name in BATCH_OUTPUT_NAMES.values()]
        outputs += [(build, name) for name in (*NA_BATCH_MAP_OUTPUTS.values(), NA_BATCH_MASKED_MAP_OUTPUT)]
        for run, name in outputs:
            with self.subTest(output=name):
                output = getattr(run, name)
                self.assertIsInstance(output, SetOfVolumes)
                self.assertTrue(output.isStreamClosed())
                self.assertEqual({item.getObjId() for item in output}, set(ids))
        for mapId, name in ids.items():
            item = getattr(annotate, BATCH_OUTPUT_NAMES["labels"])[mapId]
            self.assertEqual(item.getDim(), SPECK_MAPS[name][::-1])
        summary = build.summary()
        self.assertIn("2 of 2 maps built:", summary)
        for mapId in ids:
            self.assertTrue(any(line.startswith(f"map {mapId} (") and line.endswith("): no nucleic acid found")
                                for line in summary), summary)
