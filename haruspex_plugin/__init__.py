"""Scipion plugin for Haruspex: annotation of cryo-EM maps into helix, sheet, nucleic-acid and unassigned regions.

The plugin never computes: protocols convert Scipion objects to files and launch the engine (``haruspex_engine``,
shipped in this same distribution) as a subprocess in its own *worker* Python environment, whose TensorFlow/numpy
stack would clash with Scipion's pinned one. See docs/worker-contract.md.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pwem
import pyworkflow.utils as pwutils
from pyworkflow import VarTypes

from .constants import (
    CHECK_TIMEOUT_S,
    DISTRIBUTION,
    ENGINE_MODULE,
    HARUSPEX_CACHE,
    HARUSPEX_CHECKPOINT,
    HARUSPEX_HOME,
    HARUSPEX_WORKER_PYTHON,
    WEIGHTS_BINARY,
    WEIGHTS_DIR,
    WORKER_BINARY,
    WORKER_ENV_DIR,
    WORKER_ERROR_PREFIX,
)

__version__ = metadata.version(DISTRIBUTION)
_logo = None
_references = ["Mostosi2020"]

# Variables that would make the worker's interpreter load Scipion's packages instead of its own.
_SCIPION_ONLY_ENV = ("PYTHONPATH", "PYTHONHOME")
# File in the haruspex-weights package folder: the HARUSPEX_CHECKPOINT prefix checked at install time.
_CHECKPOINT_RECORD = "checkpoint-prefix.txt"


class Plugin(pwem.Plugin):
    """Configuration, installation and launching of the Haruspex worker."""

    _homeVar = HARUSPEX_HOME
    _pathVars = [HARUSPEX_HOME]
    _url = "https://github.com/thorn-lab/haruspex"

    @classmethod
    def _defineVariables(cls):
        cls._defineEmVar(HARUSPEX_HOME, f"haruspex-{__version__}",
                         description="Folder holding the Haruspex worker environment and, by default, its weights.",
                         var_type=VarTypes.FOLDER)
        home = cls.getVar(HARUSPEX_HOME)
        cls._defineVar(HARUSPEX_WORKER_PYTHON, os.path.join(home, WORKER_ENV_DIR, "bin", "python"),
                       description="Python interpreter of the worker environment (TensorFlow + haruspex_engine).",
                       var_type=VarTypes.PATH)
        cls._defineVar(HARUSPEX_CACHE, os.path.join(home, WEIGHTS_DIR),
                       description="Cache folder of the published Haruspex weights.",
                       var_type=VarTypes.FOLDER)
        cls._defineVar(HARUSPEX_CHECKPOINT, "",
                       description="Optional: checkpoint prefix (…/model.ckpt-40000) or folder of Haruspex weights "
                                   "you already have; used instead of the cache when set.",
                       var_type=VarTypes.PATH)

    # ------------------------------------------------------------------------------------------------------------
    # Launching the worker
    # ------------------------------------------------------------------------------------------------------------
    @classmethod
    def getWorkerPython(cls) -> str:
        """Path of the worker environment's Python interpreter."""
        return cls.getVar(HARUSPEX_WORKER_PYTHON)

    @classmethod
    def getWorkerCommand(cls) -> str:
        """Program string for ``runJob``: ``<worker python> -m haruspex_engine``."""
        return f"{shlex.quote(cls.getWorkerPython())} -m {ENGINE_MODULE}"

    @classmethod
    def getEnviron(cls) -> pwutils.Environ:
        """Environment for the worker: the current one plus the weights location, minus Scipion's Python paths."""
        environ = pwutils.Environ(os.environ)
        for name in _SCIPION_ONLY_ENV:
            environ.pop(name, None)
        environ[HARUSPEX_CACHE] = cls.getVar(HARUSPEX_CACHE)
        checkpoint = environ.get(HARUSPEX_CHECKPOINT) or cls.getVar(HARUSPEX_CHECKPOINT)
        if checkpoint:
            environ[HARUSPEX_CHECKPOINT] = checkpoint
        else:
            environ.pop(HARUSPEX_CHECKPOINT, None)
        return environ

    # ------------------------------------------------------------------------------------------------------------
    # Installation checks
    # ------------------------------------------------------------------------------------------------------------
    @classmethod
    def validateInstallation(cls) -> list[str]:
        """Cheap check run by Scipion on every validation: configured folders and the worker interpreter exist."""
        return super().validateInstallation() or cls._workerPythonProblems()

    @classmethod
    def checkInstallation(cls) -> list[str]:
        """Problems that stop the worker from running (empty when it is usable); starts the worker's Python once."""
        problems = cls._workerPythonProblems()
        if problems:
            return problems
        code, message = cls.runWorkerCheck("-c", f"import {ENGINE_MODULE}")
        if code != 0:
            return [f"The Haruspex worker ({cls.getWorkerPython()}) cannot import {ENGINE_MODULE}: {message}. "
                    f"Reinstall it with `scipion3 installb {WORKER_BINARY}`."]
        return []

    @classmethod
    def checkWeights(cls) -> list[str]:
        """Problems locating the network weights, as the worker reports them (``haruspex weights path``)."""
        code, message = cls.runWorkerCheck("-m", ENGINE_MODULE, "weights", "path")
        if code != 0:
            return [f"Haruspex weights not usable: {message}"]
        return []

    @classmethod
    def runWorkerCheck(cls, *args: str, timeout: float = CHECK_TIMEOUT_S) -> tuple[int | None, str]:
        """Run the worker's Python with *args*; return (exit code or None, last line of its error output)."""
        code, message, _ = cls.runWorkerQuery(*args, timeout=timeout)
        return code, message

    @classmethod
    def runWorkerQuery(cls, *args: str, timeout: float = CHECK_TIMEOUT_S) -> tuple[int | None, str, str]:
        """Run the worker's Python with *args*; return (exit code or None, last line of its error output, its
        standard output).

        It runs in the interpreter's own folder, so that no package in the current folder can be imported instead
        of the worker environment's.
        """
        command = [cls.getWorkerPython(), *args]
        try:
            result = subprocess.run(command, env=cls.getEnviron(), cwd=os.path.dirname(command[0]) or None,
                                    capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, f"`{shlex.join(command)}` gave no answer within {timeout:g} s", ""
        except OSError as exc:
            return None, f"`{shlex.join(command)}` could not start ({exc})", ""
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        message = lines[-1] if lines else f"exit status {result.returncode}"
        return result.returncode, message.removeprefix(WORKER_ERROR_PREFIX).strip(), result.stdout

    @classmethod
    def _workerPythonProblems(cls) -> list[str]:
        python = cls.getWorkerPython()
        if python and os.path.isfile(python):
            return []
        return [f"The Haruspex worker environment is not installed: {HARUSPEX_WORKER_PYTHON}={python} does not "
                f"exist. Run `scipion3 installb {WORKER_BINARY}`, or point {HARUSPEX_WORKER_PYTHON} at the Python of "
                f"an environment where {ENGINE_MODULE} and its requirements are installed."]

    # ------------------------------------------------------------------------------------------------------------
    # Installation (`scipion3 installb haruspex-worker haruspex-weights`)
    # ------------------------------------------------------------------------------------------------------------
    @classmethod
    def defineBinaries(cls, env):
        """Declare the worker environment and the network weights (scipion-app's installer ``env``).

        The packages carry no version in their names: `scipion3 installb NAME` looks a binary up by its full name
        or by the part before its first "-", so a package "haruspex-worker-0.1.0" could only be installed under that
        full name. The plugin version is in the targets instead (the worker's folder and its stamp), so a new plugin
        version installs its own worker.
        """
        from scipion.install.funcs import VOID_TGZ  # scipion-app: present wherever `scipion3 installb` runs

        envDir = cls.getHome(WORKER_ENV_DIR)
        envPython = os.path.join(envDir, "bin", "python")
        installed = os.path.join(envDir, f".{WORKER_BINARY}-{__version__}-installed")
        q = shlex.quote
        workerCommands = [
            (f"{q(sys.executable)} -m venv {q(envDir)}", envPython),
            (f"{_worker_install_command(envPython)} && touch {q(installed)}", installed),
        ]
        env.addPackage(WORKER_BINARY, tar=VOID_TGZ, commands=workerCommands, default=True)

        weightsCommand = _weights_install_command(cls.getWorkerPython(), cls.getVar(HARUSPEX_CACHE),
                                                  cls.getVar(HARUSPEX_CHECKPOINT))
        env.addPackage(WEIGHTS_BINARY, tar=VOID_TGZ, deps=[WORKER_BINARY], commands=[weightsCommand], default=True)


def _weights_install_command(python: str, cache: str, checkpoint: str) -> tuple[str, list[str]]:
    """(shell command, targets) of `scipion3 installb haruspex-weights`, run in the package's folder.

    With *checkpoint* (HARUSPEX_CHECKPOINT: weights the site already has) nothing is downloaded: the worker checks
    the files as it does before every use (``haruspex weights path``: both present, the .data shard of the
    published size and hash) and the checkpoint prefix it will load is recorded in the package folder (the
    target). Otherwise the published weights are downloaded into *cache*; where that fails (e.g. offline), the
    command says how to install them, and the installer stops on the missing files.
    """
    from haruspex_engine.weights import DEFAULT_SET, get_set  # standard library only: safe in Scipion's env

    q = shlex.quote
    worker = f"{HARUSPEX_CACHE}={q(cache)} {q(python)} -m {ENGINE_MODULE} weights"
    if checkpoint:
        check = f"{HARUSPEX_CHECKPOINT}={q(checkpoint)} {worker} path"
        return f'prefix=$({check}) && echo "$prefix" > {_CHECKPOINT_RECORD}', [_CHECKPOINT_RECORD]
    weights = get_set(DEFAULT_SET)
    files = [os.path.join(cache, DEFAULT_SET, weightFile.name) for weightFile in weights.files]
    prefix = f"/path/to/{weights.checkpoint_prefix}"
    instructions = (
        f"The Haruspex weights are not installed: downloading them ({weights.total_size / 2**20:.0f} MiB) into "
        f"{cache} failed, as said above. Allow the download and run `scipion3 installb {WEIGHTS_BINARY}` again; "
        f"or, if you have the published files {' and '.join(f.name for f in weights.files)}, set "
        f"{HARUSPEX_CHECKPOINT}={prefix} (in the environment, or in the [PLUGINS] section of scipion.conf) and run "
        "it again: nothing is downloaded then.")
    return f"{worker} download || {{ echo {q(instructions)} >&2; exit 1; }}", files


def _worker_install_command(python: str) -> str:
    """Shell command installing the engine and its compute stack into the worker environment at *python*.

    The engine ships in this distribution, but the distribution's default requirements are Scipion's
    (scipion-pyworkflow, scipion-em: PyQt, pinned old numpy/scipy), which the worker must not get. So the
    distribution is installed with ``--no-deps`` and only its ``worker`` extra's requirements (read from the
    installed metadata, i.e. requirements-worker.txt) are installed. A plugin running from a source checkout
    (``pip install -e``) installs that same checkout in editable mode, so plugin and engine always match;
    otherwise the released version equal to the plugin's is taken from PyPI.
    """
    q = shlex.quote
    pip = f"{q(python)} -m pip install"
    checkout = _source_checkout()
    engine = f"--no-deps -e {q(str(checkout))}" if checkout else f"--no-deps {q(f'{DISTRIBUTION}=={__version__}')}"
    requirements = " ".join(q(r) for r in _worker_requirements())
    return f"{pip} --upgrade pip && {pip} {requirements} && {pip} {engine}"


def _source_checkout() -> Path | None:
    """The repository root when this plugin is imported from a source checkout, else None."""
    root = Path(__file__).resolve().parent.parent
    if (root / "setup.py").is_file() and (root / ENGINE_MODULE).is_dir():
        return root
    return None


def _worker_requirements(gpu: bool | None = None) -> list[str]:
    """Requirements of the distribution's ``worker`` extra, without their extra markers.

    The extra names the CPU build of TensorFlow (what tests and CPU-only machines need). On a machine with an
    NVIDIA driver (``nvidia-smi`` on PATH, or *gpu* True) the same TensorFlow version is installed with its CUDA
    libraries instead (``tensorflow[and-cuda]``), so the worker can use the GPU.
    """
    from packaging.requirements import Requirement

    if gpu is None:
        gpu = shutil.which("nvidia-smi") is not None
    requirements = []
    for line in metadata.requires(DISTRIBUTION) or []:
        requirement = Requirement(line)
        marker = requirement.marker
        if marker is not None and marker.evaluate({"extra": "worker"}) and not marker.evaluate({"extra": ""}):
            requirement.marker = None
            if gpu and requirement.name == "tensorflow-cpu":
                requirement.name, requirement.extras = "tensorflow", {"and-cuda"}
            requirements.append(str(requirement))
    return requirements
