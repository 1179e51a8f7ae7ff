"""Headless Scipion environment for the plugin tests (see ../shared/reference/scipion-notes.md §2.4).

pyworkflow reads its configuration from environment variables when it is first imported, so everything is set
here, before any test module imports it. Each variable is only set when the caller has not set it already.
Protocols run as subprocesses (``SCIPION_PYTHON``) and inherit this environment; the Haruspex worker they launch
runs from the engine's own environment (``.venv-worker``), as it does in production.

The projects go to a fresh temporary folder, removed at exit; set PLUGIN_TEST_ROOT to a folder to keep them (and
the protocols' logs) for inspection. In the worker environment (no pyworkflow: the engine's tests) this file changes
nothing.
"""
import atexit
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent
HOSTS_CONF = "[localhost]\nPARALLEL_COMMAND = mpirun -np %_(JOB_NODES)d %_(COMMAND)s\n"


def _prepare_scipion_environment() -> None:
    if os.environ.get("PLUGIN_TEST_ROOT"):
        base = Path(os.environ["PLUGIN_TEST_ROOT"])
    else:
        base = Path(tempfile.mkdtemp(prefix="scipion-test-"))
        atexit.register(shutil.rmtree, base, ignore_errors=True)
    hosts = base / "config" / "hosts.conf"
    if not hosts.exists():
        hosts.parent.mkdir(parents=True, exist_ok=True)
        hosts.write_text(HOSTS_CONF)
    defaults = {
        "SCIPION_HOME": str(base),
        "SCIPION_USER_DATA": str(base / "userdata"),
        "SCIPION_TESTS": str(base / "data" / "tests"),
        "SCIPION_DOMAIN": "pwem",
        "SCIPION_PYTHON": sys.executable,
        "SCIPION_TEST_NOSYNC": "1",
        "HARUSPEX_HOME": str(base / "haruspex"),
        "HARUSPEX_WORKER_PYTHON": str(REPO / ".venv-worker" / "bin" / "python"),
        "HARUSPEX_ALLOW_TEST_WEIGHTS": "1",
    }
    for name, value in defaults.items():
        os.environ.setdefault(name, value)
    Path(os.environ["HARUSPEX_HOME"]).mkdir(parents=True, exist_ok=True)


if importlib.util.find_spec("pyworkflow") is not None:
    _prepare_scipion_environment()
