"""A one-node SLURM cluster for the queue tests, and Scipion's side of it.

``SlurmCluster`` starts and stops the cluster with scripts/setup-slurm.sh under a folder of the test run and lists
the jobs SLURM recorded; ``documented_hosts_conf`` is the hosts.conf of docs/cluster.md, which the tests use as it
is; ``use_queue`` sets a protocol to go through one of its queues, ``wait_for_run`` waits for a queued run to end and
``submitted_job_ids`` reads the ids of the jobs a run submitted step by step from its log.
"""
from __future__ import annotations

import os
import re
import subprocess
import time
import unittest
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SETUP_SCRIPT = REPO / "scripts" / "setup-slurm.sh"
CLUSTER_DOC = REPO / "docs" / "cluster.md"
HOSTS_MARKER = "<!-- hosts.conf"  # the comment right above the hosts.conf block of docs/cluster.md
CANNOT_RUN = 3  # setup-slurm.sh's exit status when SLURM cannot run on this machine
SACCT_FIELDS = ("jobid", "jobname", "partition", "state", "exitcode")
# What pyworkflow's queue submission logs for each job it submits (pyworkflow.protocol.launch._submit).
SUBMITTED_JOB = re.compile(r"Launched job with id (\d+)")


@dataclass(frozen=True)
class SlurmJob:
    """A job that ended, as SLURM's job completion record lists it."""
    job_id: int
    name: str
    partition: str
    state: str
    exit_code: str


class SlurmCluster:
    """The one-node cluster of scripts/setup-slurm.sh, with its configuration, state and logs in *folder*."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    @property
    def conf(self) -> Path:
        """slurm.conf: SLURM's commands find the cluster with SLURM_CONF pointing at it."""
        return self.folder / "slurm.conf"

    def start(self) -> None:
        """Start the cluster, installing SLURM first when it is missing. unittest.SkipTest with the script's reason
        where SLURM cannot run (not root, or no SLURM and no apt-get); RuntimeError with its output if it fails."""
        result = self._run_script("start")
        if result.returncode == CANNOT_RUN:
            raise unittest.SkipTest(result.stderr.strip().splitlines()[-1])
        if result.returncode != 0:
            raise RuntimeError(f"{SETUP_SCRIPT} start {self.folder} failed (exit status {result.returncode}):\n"
                               f"{result.stderr[-3000:]}")

    def stop(self) -> None:
        """Cancel the cluster's jobs and stop its daemons (nothing to do when they are not running)."""
        result = self._run_script("stop")
        if result.returncode != 0:
            raise RuntimeError(f"{SETUP_SCRIPT} stop {self.folder} failed (exit status {result.returncode}):\n"
                               f"{result.stderr[-3000:]}")

    def finished_jobs(self, expected=(), timeout_s: float = 60.0) -> dict[int, SlurmJob]:
        """Job id -> job, for every job that ended, from SLURM's job completion log (``sacct --completion``: the
        cluster has no accounting database), once the *expected* job ids are in it (a run is finished a moment
        before its job is: the job still has to exit); as it is after *timeout_s* seconds otherwise."""
        deadline = time.monotonic() + timeout_s
        jobs = self._completion_log()
        while not set(expected) <= set(jobs) and time.monotonic() < deadline:
            time.sleep(0.5)
            jobs = self._completion_log()
        return jobs

    def _completion_log(self) -> dict[int, SlurmJob]:
        command = ["sacct", "--completion", "--noheader", "--parsable2", "--starttime=2000-01-01",
                   f"--format={','.join(SACCT_FIELDS)}"]
        output = subprocess.run(command, capture_output=True, text=True, check=True,
                                env={**os.environ, "SLURM_CONF": str(self.conf)}).stdout
        jobs = [line.split("|") for line in output.splitlines() if line.strip()]
        return {int(fields[0]): SlurmJob(int(fields[0]), *fields[1:]) for fields in jobs}

    def _run_script(self, action: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(SETUP_SCRIPT), action, str(self.folder)], capture_output=True, text=True,
                              check=False)


def documented_hosts_conf() -> str:
    """The hosts.conf of docs/cluster.md: the ```ini block after its HOSTS_MARKER comment."""
    text = CLUSTER_DOC.read_text()
    match = re.search(re.escape(HOSTS_MARKER) + r".*?\n```ini\n(.*?)\n```", text, re.S)
    if match is None:
        raise AssertionError(f"{CLUSTER_DOC}: no ```ini block after the '{HOSTS_MARKER}' comment")
    return match.group(1) + "\n"


def use_queue(prot, queue: str, **parameters: str) -> None:
    """Send *prot* through *queue* of the hosts.conf with these queue *parameters*, as answering Yes to 'Use a queue
    engine?' and filling in the queue dialog of the form does."""
    prot._useQueue.set(True)
    prot.setQueueParams([queue, parameters])


def wait_for_run(project, prot, timeout_s: float = 600.0) -> None:
    """Wait until the queued run of *prot* has ended (updating *prot* from its run database, as the GUI does);
    AssertionError after *timeout_s* seconds."""
    deadline = time.monotonic() + timeout_s
    project._updateProtocol(prot)
    while prot.isActive():
        if time.monotonic() > deadline:
            raise AssertionError(f"{prot.getRunName()} still {prot.getStatus()} after {timeout_s:g} s; jobs "
                                 f"{list(prot.getJobIds())}; logs in {prot._getLogsPath()}")
        time.sleep(1.0)
        project._updateProtocol(prot)


def submitted_job_ids(prot, log_offset: int = 0) -> list[int]:
    """Ids of the jobs a run submitted step by step (QUEUE_FOR_JOBS = Y), in order, from its run.stdout after
    *log_offset* characters."""
    return [int(job) for job in SUBMITTED_JOB.findall(read_log(prot.getStdoutLog())[log_offset:])]


def read_log(path: str) -> str:
    """A log file's text ('' when it does not exist)."""
    return Path(path).read_text(errors="replace") if os.path.exists(path) else ""
