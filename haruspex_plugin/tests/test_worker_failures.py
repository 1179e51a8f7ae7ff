"""What a failed worker run tells the Scipion user: a worker killed or terminated by a signal says so, with the usual
cause and that Continue resumes the run; any other failure gives the worker's own `haruspex: error:` line, also when
the worker exits without writing the file it writes last (how a failed job shows with one job per step, whose exit
status pyworkflow never looks at; the worker's line is then in the step's job error log). The worker is stood in
for by a shell command run the way Scipion's runJob runs it (a shell, check_call): no Scipion project needed."""
from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
import unittest

from haruspex_plugin.protocols.worker_protocol import HaruspexWorkerProtocol, stopped_worker_message

WORKER_ERROR = "haruspex: error: map.mrc: no such file"
RUN_ID = "7"


class StandInProtocol:
    """The parts of a Haruspex protocol runWorker uses, its job being *command* (a shell command line), run in
    *folder* (its extra folder), with its logs in *folder*/logs; *perStep*: through a queue, one job per step."""

    runWorker = HaruspexWorkerProtocol.runWorker
    workerError = HaruspexWorkerProtocol.workerError
    stepJobErrorLogs = HaruspexWorkerProtocol.stepJobErrorLogs
    missingResultMessage = HaruspexWorkerProtocol.missingResultMessage

    def __init__(self, command: str, folder: str, perStep: bool = False):
        self.command, self.folder, self.perStep = command, folder, perStep
        os.makedirs(self._getLogsPath(), exist_ok=True)

    def runJob(self, program, arguments, env=None, cwd=None) -> None:
        subprocess.check_call(self.command, shell=True, cwd=cwd, stdout=subprocess.DEVNULL)

    def useQueueForSteps(self) -> bool:
        return self.perStep

    def strId(self) -> str:
        return RUN_ID

    def _getExtraPath(self) -> str:
        return self.folder

    def _getLogsPath(self, *paths: str) -> str:
        return os.path.join(self.folder, "logs", *paths)

    def getStdoutLog(self) -> str:
        return self._getLogsPath("run.stdout")

    def getStderrLog(self) -> str:
        return self._getLogsPath("run.stderr")


def write_log(path: str, *lines: str, age_s: float = 0.0) -> None:
    """A log file of *lines*, last modified *age_s* seconds ago."""
    with open(path, "w") as handle:
        handle.writelines(f"{line}\n" for line in lines)
    modified = time.time() - age_s
    os.utime(path, (modified, modified))


def run_in_step_thread(stepId: int, function) -> Exception | None:
    """Call *function* in a thread carrying the step id *stepId* as pyworkflow's step threads do (``thId``); the
    exception it raised, or None."""
    raised = []

    def call():
        try:
            function()
        except Exception as exc:  # handed back to the test
            raised.append(exc)

    thread = threading.Thread(target=call)
    thread.thId = stepId
    thread.start()
    thread.join()
    return raised[0] if raised else None


class TestWorkerFailures(unittest.TestCase):
    def setUp(self):
        folder = tempfile.TemporaryDirectory()
        self.addCleanup(folder.cleanup)
        self.folder = folder.name
        self.result = os.path.join(self.folder, "map_summary.json")

    def protocol(self, command: str, perStep: bool = False) -> StandInProtocol:
        return StandInProtocol(command, self.folder, perStep)

    def failure(self, command: str, runLog: tuple[str, ...] = ("annotate: reading map.mrc", WORKER_ERROR)) -> str:
        """The message of the worker failure of *command*, its run log (run.stderr) being *runLog*."""
        prot = self.protocol(command)
        write_log(prot.getStderrLog(), *runLog)
        with self.assertRaises(RuntimeError) as raised:
            prot.runWorker(["detect-na", "map.mrc"], gpu=False, result=self.result)
        return str(raised.exception)

    def test_a_killed_worker_says_killed_out_of_memory_and_continue(self):
        for command, status in (("sh -c 'kill -9 $$'; exit $?", 137), ("kill -9 $$", -9)):
            message = self.failure(command)
            self.assertEqual(message, "Haruspex worker failed (the worker was killed (signal 9; running out of memory "
                                      f"is the usual cause), exit status {status}; press Continue to resume the run "
                                      "from the failed step)")

    def test_a_terminated_worker_says_terminated_and_continue(self):
        for command, status in (("sh -c 'kill -15 $$'; exit $?", 143), ("kill -15 $$", -15)):
            message = self.failure(command)
            self.assertIn(f"the worker was terminated (signal 15: stopped by the user, the queue system or a "
                          f"shutdown), exit status {status}; press Continue", message)

    def test_any_other_failure_gives_the_worker_message(self):
        self.assertEqual(self.failure("exit 1"), f"Haruspex worker failed ({WORKER_ERROR})")
        for status in (0, 1, 2, 9, 15, 130, 139):
            self.assertEqual(stopped_worker_message(status), "")

    def test_a_worker_that_wrote_its_result_succeeded(self):
        self.protocol(f"touch {self.result}").runWorker(["annotate", "map.mrc"], gpu=False, result=self.result)
        self.protocol("true").runWorker(["annotate", "map.mrc"], gpu=False)  # no result to check

    def test_a_worker_that_wrote_no_result_fails_at_its_step(self):
        self.assertEqual(self.failure("true"), f"Haruspex worker failed ({WORKER_ERROR})")
        self.assertEqual(self.failure("true", runLog=("annotate: done",)),
                         f"Haruspex worker failed (it wrote no {self.result})")

    def test_one_job_per_step_reads_the_steps_job_error_log_first(self):
        prot = self.protocol("true", perStep=True)
        write_log(prot.getStderrLog(), "haruspex: error: in the run's log")
        write_log(prot._getLogsPath(f"{RUN_ID}-3-1.err"), "haruspex: error: the step's first job", age_s=60)
        write_log(prot._getLogsPath(f"{RUN_ID}-3-2.err"), "annotate: reading map.mrc", WORKER_ERROR, age_s=30)
        write_log(prot._getLogsPath(f"{RUN_ID}-4-1.err"), "haruspex: error: another step's job")
        write_log(prot._getLogsPath(f"scipion{RUN_ID}.err"), "haruspex: error: the whole run's job")
        error = run_in_step_thread(3, lambda: prot.runWorker(["annotate", "map.mrc"], gpu=False, result=self.result))
        self.assertEqual(str(error), f"Haruspex worker failed ({WORKER_ERROR})")

    def test_a_job_that_left_no_worker_error_names_its_log(self):
        prot = self.protocol("true", perStep=True)
        log = prot._getLogsPath(f"{RUN_ID}-3-1.err")
        write_log(log, "slurmstepd: error: *** JOB 12 CANCELLED DUE TO TIME LIMIT ***")
        write_log(prot._getLogsPath(f"{RUN_ID}-4-1.err"), "haruspex: error: another step's job", age_s=60)
        error = run_in_step_thread(3, lambda: prot.runWorker(["annotate", "map.mrc"], gpu=False, result=self.result))
        self.assertEqual(str(error), f"Haruspex worker failed (it wrote no {self.result}; see its job's log {log})")
