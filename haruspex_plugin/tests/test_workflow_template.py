"""The workflow template ``templates/annotate_and_build_na.json.template``, run the way `scipion3 template` runs it.

The template is found among the plugins' templates (pyworkflow's TemplateList, what scipion-app's kickoff uses), its
placeholders are filled by alias (map, sampling, resolution) and its workflow file written; a project is created
from it and every protocol scheduled with pyworkflow's own scripts (``pyworkflow.project.scripts.create`` and
``schedule``, i.e. `scipion3 python -m ...`), and the test waits until every protocol is FINISHED.

The map is the simulated 12-nt RNA of ``haruspex_engine.testing.oracle_detection`` (1 Å voxels, 38 × 39 × 54). Both
networks run with random weights in the published layouts (allowed by the root conftest.py), with the template's
GPU default: the CPU-only worker falls back to the CPU. Scipion's scheduler waits 30 s per workflow level before
it checks a protocol's inputs, so the run takes about 1.5 min, mostly detection and waiting.
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

from haruspex_plugin.constants import HARUSPEX_CHECKPOINT, NA_DETECTION_OUTPUT, NA_MAP_OUTPUTS, OUTPUT_NAMES
from haruspex_plugin.protocols import ProtHaruspexAnnotate, ProtHaruspexBuildNucleicAcids
from haruspex_plugin.tests.helpers import CRYOREAD_WEIGHTS, environment, make_test_checkpoint, read_mrc, run_worker

TEMPLATE_ID = "haruspex_plugin-annotate_and_build_na"  # <plugin module>-<file name without .json.template>
PROJECT = "TestWorkflowTemplate-annotate_and_build_na"
SAMPLING = "1.0"
RESOLUTION = "3.5"
WORKFLOW = (ProtImportVolumes, ProtHaruspexAnnotate, ProtHaruspexBuildNucleicAcids)
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
        run_worker("-m", "haruspex_engine.testing.oracle_detection", "example", cls.getOutputPath("rna.cif"),
                   cls.mapPath)
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
