"""HaruspexWorkerProtocol: what every Haruspex protocol shares to launch the worker and read what it wrote."""
from __future__ import annotations

import glob
import json
import os
import re
import shlex
import subprocess
import threading
from collections.abc import Callable

import pyworkflow.protocol.params as params
import pyworkflow.utils as pwutils
from pwem.objects import Volume
from pwem.protocols import EMProtocol

from .. import Plugin
from ..constants import WORKER_ERROR_PREFIX

#: Signal number -> what happened to a worker it stopped (the shell reports exit status 128 + N, Python -N).
WORKER_SIGNALS = {
    9: "was killed (signal 9; running out of memory is the usual cause)",
    15: "was terminated (signal 15: stopped by the user, the queue system or a shutdown)",
}


class HaruspexWorkerProtocol(EMProtocol):
    """Base of the protocols that run the Haruspex worker (docs/worker-contract.md) on an ``inputVolume``."""

    @staticmethod
    def addGpuParams(form, useGpuHelp: str) -> None:
        """Scipion's hidden GPU parameters (``useGpu``, ``gpuList``); *useGpuHelp* says what the GPU runs here."""
        form.addHidden(params.USE_GPU, params.BooleanParam, default=True, label="Use GPU?", help=useGpuHelp)
        form.addHidden(params.GPU_LIST, params.StringParam, default="0",
                       label="GPU IDs", help="GPUs made visible to the worker, which runs on the first of them.")

    def gpuErrors(self) -> list[str]:
        """The problem with the GPU choice of the form, if any."""
        if self.useGpu.get() and not self.getGpuList():
            return ["Give a GPU ID, or answer No to 'Use GPU?' to run on the CPU."]
        return []

    @staticmethod
    def installationErrors(toolProblems: Callable[[], list[str]]) -> list[str]:
        """Problems of the worker installation, or when it is fine those *toolProblems* finds (weights, programs);
        none when Scipion already lists the installation problems itself."""
        if Plugin.validateInstallation():
            return []
        return Plugin.checkInstallation() or toolProblems()

    def getPrefix(self, volume: Volume | None = None) -> str:
        """Output file prefix: the file name without extension of *volume* (default: the input map), made
        file-system safe."""
        volume = self.inputVolume.get() if volume is None else volume
        name = pwutils.removeBaseExt(volume.getFileName().replace(":mrc", ""))
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "map"

    def runWorker(self, args: list[str], gpu: bool, result: str | None = None) -> None:
        """Run ``haruspex ARGS`` in the worker environment, in the extra folder, on the GPUs Scipion gives the step
        when *gpu*; fail with the worker's own one-line message, also when the worker exited without writing
        *result* (the file it writes last). Through a queue system the worker keeps the GPUs the queue allocated
        (SLURM sets CUDA_VISIBLE_DEVICES in the job): the form's GPU IDs, meant for the local machine, must not
        override them. With one job per step, pyworkflow does not look at the job's exit status: the missing
        *result* is how a failed job shows."""
        program = Plugin.getWorkerCommand()
        line = " ".join(shlex.quote(arg) for arg in args)
        if gpu and not self.useQueue():
            program = f"CUDA_VISIBLE_DEVICES=%(GPU)s {program}"
            line = line.replace("%", "%%")  # runJob %-formats the arguments with the GPU list
        try:
            self.runJob(program, line, env=Plugin.getEnviron(), cwd=self._getExtraPath())
        except subprocess.CalledProcessError as exc:
            reason = stopped_worker_message(exc.returncode) or self.workerError() or exc
            raise RuntimeError(f"Haruspex worker failed ({reason})") from None
        if result is not None and not os.path.exists(result):
            reason = self.workerError() or self.missingResultMessage(result)
            raise RuntimeError(f"Haruspex worker failed ({reason})")

    def workerError(self) -> str:
        """The worker's one-line error (``haruspex: error: ...``) from this run's logs, or ''. With one job per
        step, the worker's output is in the error logs of the step's jobs, read first."""
        for log in (*self.stepJobErrorLogs(), self.getStderrLog(), self.getStdoutLog()):
            if not os.path.exists(log):
                continue
            with open(log, errors="replace") as handle:
                errors = [line.strip() for line in handle if line.strip().startswith(WORKER_ERROR_PREFIX)]
            if errors:
                return errors[-1]
        return ""

    def stepJobErrorLogs(self) -> list[str]:
        """With one job per step (the queue's QUEUE_FOR_JOBS = Y), the error logs of the jobs the running step
        submitted, newest first: pyworkflow names them ``<run id>-<step id>-<job of the step>.err`` in the run's
        logs folder (the job name, with the hosts.conf's ``%_(JOB_LOGS)s.err``), the step id being its thread's
        ``thId``. None without one job per step."""
        if not self.useQueueForSteps():
            return []
        stepId = getattr(threading.current_thread(), "thId", "*")
        logs = glob.glob(self._getLogsPath(f"{self.strId()}-{stepId}-*.err"))
        return sorted(logs, key=os.path.getmtime, reverse=True)

    def missingResultMessage(self, result: str) -> str:
        """Why a worker that left no worker error failed: it wrote no *result*, and where its job's log is."""
        logs = self.stepJobErrorLogs()
        return f"it wrote no {result}" + (f"; see its job's log {logs[0]}" if logs else "")


def stopped_worker_message(returncode: int) -> str:
    """What stopped a worker that exited with *returncode* when it was a WORKER_SIGNALS signal (exit status
    128 + N from the shell, -N from Python), and that Continue resumes the run; '' for any other exit status."""
    what = WORKER_SIGNALS.get(-returncode if returncode < 0 else returncode - 128)
    if what is None:
        return ""
    return f"the worker {what}, exit status {returncode}; press Continue to resume the run from the failed step"


def read_json(path: str) -> dict:
    """A worker summary or report (JSON)."""
    with open(path) as handle:
        return json.load(handle)


def checked_files(report: str, listed: dict[str, str], expected) -> dict[str, str]:
    """Output key -> project-relative path of the files a worker *report* lists, after checking that every
    *expected* key is listed and every listed file exists (RuntimeError naming the report otherwise)."""
    problems = [f"{key}: not listed" for key in expected if key not in listed]
    problems += [f"{key}: {path} missing" for key, path in listed.items() if not os.path.exists(path)]
    if problems:
        raise RuntimeError(f"{report}: the worker's outputs are incomplete: " + "; ".join(problems))
    return {key: os.path.relpath(path) for key, path in listed.items()}
