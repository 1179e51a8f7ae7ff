"""A real streaming producer for the tests: *import maps (streaming)* watching a folder, run in its own process in
a BaseTest class's project, while the test writes map files into the folder; and waiting on runs of the project
(the producer's or a consumer's) as the GUI sees them.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from pyworkflow.protocol import STATUS_ABORTED, STATUS_FAILED

from haruspex_plugin.protocols import ProtHaruspexImportMapsStreaming
from haruspex_plugin.protocols.protocol_import_maps_streaming import OUTPUT_NAME
from haruspex_plugin.tests.helpers import class_environment

#: pwem's polling period of streaming imports, in seconds (10 by default), for the producers the tests start.
NEW_FILE_CHECK_SEC = 1
POLL_S = 1


def start_import(test_class, folder: str, sampling: float, **values):
    """Launch *import maps (streaming)* on *folder* (pattern, timeouts, ... in *values*) in its own process and
    return it once it runs. Files are taken as soon as their size is stable between two polls of the folder (file
    timeout 0 unless given), and the folder is polled every NEW_FILE_CHECK_SEC s."""
    class_environment(test_class, SCIPION_EM_NEW_FILE_CHECK_SEC=str(NEW_FILE_CHECK_SEC))
    values.setdefault("fileTimeout", "0")
    prot = test_class.newProtocol(ProtHaruspexImportMapsStreaming, filesPath=os.path.abspath(folder),
                                  samplingRate=sampling, **values)
    prot.setObjLabel("import maps (streaming)")
    test_class.proj.launchProtocol(prot, wait=False)
    return wait_for_run(test_class.proj, prot.getObjId(), "the import running", lambda run: run.isRunning(),
                        timeout_s=60)


def refreshed_run(project, runId: int):
    """The run *runId* as the project sees it now (updated from the run's own database, as the GUI does)."""
    return next(run for run in project.getRuns(refresh=True) if run.getObjId() == runId)


def wait_for_run(project, runId: int, what: str, condition, timeout_s: float):
    """The refreshed run *runId* once *condition* holds for it; AssertionError with its logs when it failed, was
    aborted or the time is up."""
    deadline = time.monotonic() + timeout_s
    while True:
        run = refreshed_run(project, runId)
        if condition(run):
            return run
        if run.getStatus() in (STATUS_FAILED, STATUS_ABORTED) or time.monotonic() > deadline:
            raise AssertionError(f"waiting for {what}: {run.getRunName()} {run.getStatus()} "
                                 f"{run.getErrorMessage() or ''}\n{log_tails(run)}")
        time.sleep(POLL_S)


def imported_files(run) -> dict[int, str]:
    """Map id -> name of the file it was imported from, for every map of an import run's set."""
    volumes = getattr(run, OUTPUT_NAME, None)
    return {} if volumes is None else {volume.getObjId(): os.path.basename(volume.getObjComment())
                                       for volume in volumes}


def log_tails(run) -> str:
    """The last lines of a run's scheduling, standard output and error logs."""
    parts = []
    for log in (run.getScheduleLog(), run.getStdoutLog(), run.getStderrLog()):
        if os.path.exists(log):
            parts.append(f"--- {log}\n{Path(log).read_text(errors='replace')[-3000:]}")
    return "\n".join(parts)
