"""What a failed worker run tells the Scipion user: a worker killed or terminated by a signal says so, with the usual
cause and that Continue resumes the run; any other failure gives the worker's own `haruspex: error:` line. The
worker is stood in for by a shell command run the way Scipion's runJob runs it (a shell, check_call): no Scipion
project needed."""
from __future__ import annotations

import subprocess
import tempfile
import unittest

from haruspex_plugin.protocols.worker_protocol import HaruspexWorkerProtocol, stopped_worker_message

WORKER_ERROR = "haruspex: error: map.mrc: no such file"


class StandInProtocol:
    """The parts of a Haruspex protocol runWorker uses, its job being *command* (a shell command line)."""

    runWorker = HaruspexWorkerProtocol.runWorker

    def __init__(self, command: str, folder: str):
        self.command, self.folder = command, folder

    def runJob(self, program, arguments, env=None, cwd=None) -> None:
        subprocess.check_call(self.command, shell=True, cwd=cwd, stdout=subprocess.DEVNULL)

    def _getExtraPath(self) -> str:
        return self.folder

    def workerError(self) -> str:
        return WORKER_ERROR


class TestWorkerFailures(unittest.TestCase):
    def failure(self, command: str) -> str:
        with tempfile.TemporaryDirectory() as folder, self.assertRaises(RuntimeError) as raised:
            StandInProtocol(command, folder).runWorker(["detect-na", "map.mrc"], gpu=False)
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
