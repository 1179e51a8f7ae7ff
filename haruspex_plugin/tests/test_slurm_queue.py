"""The protocols through Scipion's queue system on a real SLURM cluster (docs/cluster.md).

The module starts a one-node SLURM cluster on this machine (scripts/setup-slurm.sh: Debian's packages, installed
when missing; configuration, state and logs under a temporary folder; loopback only; two fake GPUs so that SLURM
schedules GPU requests and sets CUDA_VISIBLE_DEVICES) and makes the hosts.conf of docs/cluster.md Scipion's
hosts.conf; the cluster is stopped when the module's tests end. Where SLURM cannot run (not root, or no SLURM and no
apt-get) every test skips with the reason.

- annotate map (demo model), the whole run as one job on the ``gpu`` queue, with a form GPU ID (3) that the node
  does not have: the worker must keep the GPU SLURM gave the job;
- annotate map on a set of two maps, one job per worker run (QUEUE_FOR_JOBS = Y): the conversions and the
  registration run in the local Scipion process;
- build nucleic acids (demo detector), one job per worker run (detection, building), then continued on oracle maps of
  the RNA (as test_protocol_build_nucleic_acids.py does) as one job on the ``cpu`` queue;
- a map the worker refuses (NaN), as one job and with one job per worker run: the run must fail with the worker's
  message; with one job per worker run (pyworkflow ignores a job's exit status) at the worker's step, which finds
  the message in the job's error log.
Each run is checked against what SLURM recorded (``sacct --completion``: id, name, partition, COMPLETED), the job's
log and the run's log, and by its registered outputs.
"""
from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import pyworkflow as pw
from pwem.protocols import ProtImportVolumes
from pyworkflow.tests import BaseTest, setupTestProject

from haruspex_plugin.constants import BATCH_OUTPUT_NAMES, NA_DETECTION_OUTPUT, NA_MODEL_OUTPUT, OUTPUT_NAMES
from haruspex_plugin.protocols import ProtHaruspexAnnotate, ProtHaruspexBuildNucleicAcids
from haruspex_plugin.tests.helpers import (
    ORIGIN_XYZ,
    VOXEL_SIZE,
    environment,
    import_map,
    reset_steps,
    run_worker,
    synthetic_map,
    write_mrc,
    write_oracle_example,
)
from haruspex_plugin.tests.slurm_cluster import (
    SlurmCluster,
    documented_hosts_conf,
    read_log,
    submitted_job_ids,
    use_queue,
    wait_for_run,
)

# Queue dialog answers (docs/cluster.md's QUEUES): small enough for any test machine.
GPU_JOBS = {"JOB_MEMORY": "3000", "JOB_TIME": "1", "GPU_COUNT": "1"}
CPU_JOBS = {"JOB_MEMORY": "3000", "JOB_TIME": "1", "GPU_COUNT": "0"}
FORM_GPU = "3"  # a GPU ID in the form that the node does not have: it must not reach a queued worker
FAST_BUILD = {"traceSolutions": 100, "traceTimeLimit": 30.0, "assignTimeLimit": 10.0}
# The line the hosts.conf's job script writes first (docs/cluster.md).
JOB_LINE = re.compile(r"SLURM job (?P<id>\d+) on \S+, partition (?P<partition>\w+), "
                      r"CUDA_VISIBLE_DEVICES=(?P<gpus>\S+)")

CLUSTER: SlurmCluster | None = None
_MODULE_STATE = contextlib.ExitStack()


def setUpModule():
    """Start the cluster under a temporary folder (kept under PLUGIN_TEST_ROOT when that is set) and make the
    documented hosts.conf Scipion's, for this process and the protocols and jobs it starts."""
    global CLUSTER
    keep = os.environ.get("PLUGIN_TEST_ROOT")
    folder = tempfile.mkdtemp(prefix="haruspex-slurm-", dir=keep)
    if not keep:
        _MODULE_STATE.callback(shutil.rmtree, folder, ignore_errors=True)
    cluster = SlurmCluster(folder)
    _MODULE_STATE.callback(cluster.stop)
    atexit.register(cluster.stop)  # an interrupted run skips tearDownModule; stopping twice is harmless
    try:
        cluster.start()
    except BaseException:
        _MODULE_STATE.close()
        raise
    hosts = Path(folder, "hosts.conf")
    hosts.write_text(documented_hosts_conf())
    _MODULE_STATE.enter_context(environment(SLURM_CONF=str(cluster.conf), SCIPION_HOSTS=str(hosts)))
    _MODULE_STATE.enter_context(mock.patch.object(pw.Config, "SCIPION_HOSTS", str(hosts)))
    CLUSTER = cluster


def tearDownModule():
    _MODULE_STATE.close()


class SlurmRunChecks:
    """Checks (for BaseTest classes) on runs that went through the cluster."""

    def assertJobsCompleted(self, jobIds, names, partition: str) -> None:
        """SLURM recorded the jobs *jobIds*, named *names* (in order), in *partition*, as completed."""
        jobs = CLUSTER.finished_jobs(expected=jobIds)
        for jobId, name in zip(jobIds, names, strict=True):
            with self.subTest(job=jobId):
                self.assertIn(jobId, jobs)
                self.assertEqual((jobs[jobId].name, jobs[jobId].partition, jobs[jobId].state,
                                  jobs[jobId].exit_code), (name, partition, "COMPLETED", "0:0"))

    def assertJobLog(self, path: str, jobId: int, partition: str, gpus: str | None = None) -> None:
        """The job's log at *path* holds the job script's line for *jobId* in *partition*, with the GPUs SLURM
        allocated (*gpus*: ``none``, or any one index when None)."""
        text = read_log(path)
        line = JOB_LINE.search(text)
        self.assertIsNotNone(line, f"{path}: {text[:500]!r}")
        self.assertEqual((int(line["id"]), line["partition"]), (jobId, partition))
        if gpus is None:
            self.assertRegex(line["gpus"], r"^\d+$")
        else:
            self.assertEqual(line["gpus"], gpus)


class TestAnnotateThroughSlurm(SlurmRunChecks, BaseTest):
    """annotate map (demo model): one map as one job; a set of two maps as one job per map."""

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        example = cls.getOutputPath("example.mrc")
        run_worker("-m", "haruspex_engine", "example", example)
        cls.whole = cls.newProtocol(ProtHaruspexAnnotate, inputVolume=import_map(cls, example), useDemoModel=True,
                                    useGpu=True, gpuList=FORM_GPU)
        use_queue(cls.whole, "gpu", QUEUE_FOR_JOBS="N", **GPU_JOBS)

        folder = cls.getOutputPath("maps")
        os.makedirs(folder, exist_ok=True)
        for name, seed in (("map_a", 7), ("map_b", 11)):
            write_mrc(os.path.join(folder, f"{name}.mrc"), synthetic_map(seed=seed))
        x, y, z = (-value for value in ORIGIN_XYZ)
        importer = cls.newProtocol(ProtImportVolumes, filesPath=folder, filesPattern="map_*.mrc",
                                   samplingRate=VOXEL_SIZE, setOrigCoord=True, x=x, y=y, z=z)
        cls.launchProtocol(importer)
        cls.perStep = cls.newProtocol(ProtHaruspexAnnotate, inputVolume=importer.outputVolumes, useDemoModel=True,
                                      useGpu=True, gpuList=FORM_GPU)
        use_queue(cls.perStep, "gpu", QUEUE_FOR_JOBS="Y", **GPU_JOBS)

        for prot in (cls.whole, cls.perStep):  # both at once: the cluster runs their jobs side by side
            cls.proj.launchProtocol(prot)
        for prot in (cls.whole, cls.perStep):
            wait_for_run(cls.proj, prot)

    # --- the whole run as one job -------------------------------------------------------------------------------
    def test_the_whole_run_is_the_one_job_slurm_completed(self):
        self.assertTrue(self.whole.isFinished(), self.whole.getErrorMessage())
        jobIds = [int(job) for job in self.whole.getJobIds()]
        self.assertEqual(len(jobIds), 1)
        self.assertJobsCompleted(jobIds, [self.whole.strId()], "gpu")
        self.assertIn("Executing through the queue system", read_log(self.whole.getStdoutLog()))

    def test_the_worker_keeps_the_gpu_slurm_allocated(self):
        jobId = int(self.whole.getJobIds()[0])
        self.assertJobLog(self.whole._getLogsPath(f"scipion{self.whole.strId()}.out"), jobId, "gpu")
        log = read_log(self.whole.getStdoutLog())
        self.assertRegex(log, r"haruspex_engine annotate .* --device auto")  # the worker's command, as runJob logs it
        self.assertNotIn("CUDA_VISIBLE_DEVICES", log)  # no prefix: not the form's GPU, not any other
        # The worker looked for the GPU it was given (there is none behind the fake one) and said so loudly.
        self.assertIn("WARNING: no GPU is usable", read_log(self.whole.getStderrLog()))
        self.assertEqual(self.whole.getWorkerSummary()["network"], "demo")

    def test_the_queued_run_registers_its_maps(self):
        for name in OUTPUT_NAMES.values():
            with self.subTest(output=name):
                volume = getattr(self.whole, name)
                self.assertTrue(os.path.isfile(volume.getFileName()))
                self.assertEqual(volume.getSamplingRate(), self.whole.inputVolume.get().getSamplingRate())

    # --- one job per worker run ---------------------------------------------------------------------------------
    def test_each_map_is_a_job_and_the_python_steps_ran_here(self):
        self.assertTrue(self.perStep.isFinished(), self.perStep.getErrorMessage())
        steps = self.perStep.loadSteps()
        self.assertTrue(all(s.isFinished() for s in steps))
        workerSteps = [s for s in steps if s.funcName.get() == "annotateStep"]
        self.assertEqual(len(workerSteps), 2)
        self.assertIn("convertInputStep", {s.funcName.get() for s in steps})
        jobIds = submitted_job_ids(self.perStep)
        # pyworkflow names a step's job <run id>-<step id>-<job of the step>: the two worker runs were the only jobs.
        names = [f"{self.perStep.strId()}-{s.getObjId()}-1" for s in workerSteps]
        self.assertJobsCompleted(jobIds, names, "gpu")
        log = read_log(self.perStep.getStdoutLog())
        self.assertRegex(log, r"\nPID: \d+\n")  # the run itself was a local process ...
        self.assertNotIn("Executing through the queue system", log)  # ... not a job
        for jobId, name in zip(jobIds, names):
            with self.subTest(job=jobId):
                self.assertJobLog(self.perStep._getLogsPath(f"{name}.out"), jobId, "gpu")
                # The worker's own progress lines (stderr) are in the job's error log, not in the run's log.
                self.assertIn("annotate: done", read_log(self.perStep._getLogsPath(f"{name}.err")))
        self.assertNotIn("annotate: done", log + read_log(self.perStep.getStderrLog()))

    def test_the_step_by_step_run_registers_one_set_per_class(self):
        for name in BATCH_OUTPUT_NAMES.values():
            with self.subTest(output=name):
                self.assertEqual(getattr(self.perStep, name).getSize(), 2)


class TestBuildNucleicAcidsThroughSlurm(SlurmRunChecks, BaseTest):
    """build nucleic acids: detection and building as jobs of their own on the gpu queue, then the build continued
    on oracle detection maps as one job on the cpu queue."""

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.reference = cls.getOutputPath("rna_reference.cif")
        mapPath = cls.getOutputPath("rna_map.mrc")
        write_oracle_example(cls.reference, mapPath)
        cls.prot = cls.newProtocol(ProtHaruspexBuildNucleicAcids, inputVolume=import_map(cls, mapPath),
                                   resolution=3.5, useDemoModel=True, refineModel=False, useGpu=True,
                                   gpuList=FORM_GPU, **FAST_BUILD)
        use_queue(cls.prot, "gpu", QUEUE_FOR_JOBS="Y", **GPU_JOBS)
        cls.proj.launchProtocol(cls.prot)
        wait_for_run(cls.proj, cls.prot)
        cls.stepJobs = submitted_job_ids(cls.prot)
        cls.steps = {s.funcName.get(): s.getObjId() for s in cls.prot.loadSteps()}
        cls.demoStatus = cls.prot.getStatus()
        cls.demoError = cls.prot.getErrorMessage()

        # Oracle maps of the RNA on the detection's grid; the build continued through the cpu queue as one job.
        run_worker("-m", "haruspex_engine.testing.oracle_detection", "replace",
                   cls.prot.getDetectionSummaryPath(), cls.reference)
        reset_steps(cls.prot, "buildStep", "createOutputStep")
        use_queue(cls.prot, "cpu", QUEUE_FOR_JOBS="N", **CPU_JOBS)
        cls.logOffset = len(read_log(cls.prot.getStdoutLog()))
        cls.proj.launchProtocol(cls.prot)
        wait_for_run(cls.proj, cls.prot)

    def test_detection_and_building_were_jobs_of_their_own(self):
        self.assertEqual(self.demoStatus, "finished", self.demoError)
        names = [f"{self.prot.strId()}-{self.steps[step]}-1" for step in ("detectStep", "buildStep")]
        self.assertJobsCompleted(self.stepJobs, names, "gpu")
        # Both jobs got a GPU: pyworkflow submits every job of a run with the run's queue parameters, so the CPU-only
        # build asks for one too (docs/cluster.md). The worker's last line (stderr) is in each job's error log.
        finished = (r"detect-na: done", r"build-na: \d+ chains?, \d+ residues")
        for jobId, name, done in zip(self.stepJobs, names, finished):
            with self.subTest(job=jobId):
                self.assertJobLog(self.prot._getLogsPath(f"{name}.out"), jobId, "gpu")
                self.assertRegex(read_log(self.prot._getLogsPath(f"{name}.err")), done)

    def test_the_continued_run_is_one_job_on_the_cpu_queue(self):
        self.assertTrue(self.prot.isFinished(), self.prot.getErrorMessage())
        jobIds = [int(job) for job in self.prot.getJobIds()]
        self.assertEqual(len(jobIds), 1)
        self.assertJobsCompleted(jobIds, [self.prot.strId()], "cpu")
        self.assertJobLog(self.prot._getLogsPath(f"scipion{self.prot.strId()}.out"), jobIds[0], "cpu", gpus="none")
        log = read_log(self.prot.getStdoutLog())[self.logOffset:]
        self.assertIn("Executing through the queue system", log)
        self.assertEqual(submitted_job_ids(self.prot, self.logOffset), [])

    def test_the_oracle_build_through_the_queue_registers_the_rna(self):
        build = self.prot.getBuildReport()
        self.assertEqual(build["residues"], 12, build.get("chains"))
        model = getattr(self.prot, NA_MODEL_OUTPUT)
        self.assertTrue(os.path.isfile(model.getFileName()))
        self.assertEqual(getattr(self.prot, NA_DETECTION_OUTPUT).getSize(), 8)


class TestWorkerFailureThroughSlurm(SlurmRunChecks, BaseTest):
    """annotate map on a map the worker refuses (a NaN voxel), as one job and with one job per worker run."""

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        broken = synthetic_map(seed=3)
        broken[5, 6, 7] = np.nan
        volume = import_map(cls, write_mrc(cls.getOutputPath("broken.mrc"), broken))
        cls.runs = {}
        for perStep in ("N", "Y"):
            prot = cls.newProtocol(ProtHaruspexAnnotate, inputVolume=volume, useDemoModel=True, useGpu=False)
            use_queue(prot, "cpu", QUEUE_FOR_JOBS=perStep, **CPU_JOBS)
            cls.proj.launchProtocol(prot)
            cls.runs[perStep] = prot
        for prot in cls.runs.values():
            wait_for_run(cls.proj, prot)

    def test_a_failing_worker_fails_the_queued_run_with_its_message(self):
        self.assertWorkerMessage(self.runs["N"])

    def test_a_failing_worker_job_fails_the_run_with_its_message(self):
        """pyworkflow's step-by-step submission does not look at a job's exit status: the worker's step itself
        must fail, on the summary the worker did not write, with the message from the job's error log."""
        prot = self.runs["Y"]
        self.assertWorkerMessage(prot)
        failed = [s.funcName.get() for s in prot.loadSteps() if s.isFailed()]
        self.assertEqual(failed, ["annotateStep"])
        self.assertNotIn("No such file", prot.getErrorMessage())

    def assertWorkerMessage(self, prot) -> None:
        self.assertTrue(prot.isFailed(), prot.getStatus())
        self.assertIn("haruspex: error:", prot.getErrorMessage())
        self.assertIn("NaN", prot.getErrorMessage())
