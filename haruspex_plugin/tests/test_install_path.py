"""The real install path, as a facility takes it (slow: about 2.5 minutes on 2 cores, PyPI reachable).

In a fresh temporary folder: Scipion is installed from PyPI by its own installer (scipion-installer, virtualenv
mode: the `scipion3` launcher and scipion-app, scipion-pyworkflow and scipion-em at the versions pinned below), the
plugin is installed from this checkout with `scipion3 installp -p <checkout> --devel`, its worker environment with
`scipion3 installb haruspex-worker`, and then:
- `scipion3 installb haruspex-weights` offline: it fails and says how to install the weights when nothing is
  configured, refuses files that are not the published ones, and succeeds without any download when
  HARUSPEX_CHECKPOINT points at weights in the published layout (generated here, with the marker that makes the
  engine skip their hash check and refuse them outside tests);
- `scipion3 tests` runs the import-sequences protocol tests, and the demo-model annotation tests, whose protocol
  runs the worker that `installb` made.

Offline means here: the weight steps run with HTTPS sent to a closed port, so nothing can be downloaded. Scipion's
own server is never needed: the installer fetches `void.tgz` (an empty archive) from it once before it installs any
package declared with `tar=VOID_TGZ`; an empty archive is put in its place, as an offline site would.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import unittest
from pathlib import Path

from haruspex_engine.checkpoints import TEST_WEIGHTS_MARKER
from haruspex_plugin import __version__
from haruspex_plugin.constants import WORKER_ENV_DIR

REPO = Path(__file__).resolve().parents[2]
# What the facility installs, pinned so the test does not change under us: the installer and its virtualenv, and the
# Scipion core the installer pulls (given to it as pip constraints).
INSTALLER = ("scipion-installer==2.1.1", "virtualenv==21.15.14")
SCIPION_CORE = ("scipion-app==3.8.3", "scipion-pyworkflow==3.11.7", "scipion-em==3.11.1")
DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens, every HTTPS connection is refused
TAIL_CHARS = 4000
MEMORY_FOLDER = "/dev/shm"
MEMORY_FOLDER_MIN_FREE = 8 * 2**30


class TestInstallPath(unittest.TestCase):
    """Scipion from PyPI, then the plugin, its worker and weights through Scipion's installer, then Scipion's tests."""

    @classmethod
    def setUpClass(cls):
        cls.root = cls._installFolder()
        cls.home = cls.root / "scipion"  # SCIPION_HOME
        cls.emRoot = cls.home / "software" / "em"
        cls.env = _scipion_environment(cls.root)
        boot = cls.root / "bootstrap"
        cls.runStep([sys.executable, "-m", "venv", str(boot)])
        cls.runStep([str(boot / "bin" / "python3"), "-m", "pip", "install", "-q", *INSTALLER])
        pins = cls.root / "scipion-core.txt"
        pins.write_text("\n".join(SCIPION_CORE) + "\n")
        cls.home.mkdir()
        cls.runStep([str(boot / "bin" / "python3"), "-m", "scipioninstaller", str(cls.home), "-venv", "-noAsk",
                 "-python", os.path.realpath(sys.executable)], PIP_CONSTRAINT=str(pins))
        cls.scipion("config", "--overwrite", "--unattended")
        with tarfile.open(cls.emRoot / "void.tgz", "w:gz"):  # what Scipion's server would send: an empty archive
            pass
        # Scipion takes the plugin's name from the folder's name: it must be the distribution's.
        checkout = cls.root / "src" / "scipion-em-haruspex"
        checkout.parent.mkdir()
        checkout.symlink_to(REPO, target_is_directory=True)
        cls.installp = cls.scipion("installp", "-p", str(checkout), "--devel", "--noBin")
        cls.installb = cls.scipion("installb", "haruspex-worker")
        cls.workerPython = cls.emRoot / f"haruspex-{__version__}" / WORKER_ENV_DIR / "bin" / "python"
        cls.weights = cls.root / "weights"  # generated, in the published layout, with the test-weights marker
        cls.runStep([str(cls.workerPython), "-m", "haruspex_engine.testing.random_weights", str(cls.weights)])

    @classmethod
    def _installFolder(cls) -> Path:
        folder = tempfile.TemporaryDirectory(prefix="haruspex-install-", dir=_memory_folder())
        cls.addClassCleanup(folder.cleanup)
        return Path(folder.name)

    @classmethod
    def runStep(cls, command: list[str], *, check: bool = True, **environment: str) -> subprocess.CompletedProcess:
        """Run *command* in the Scipion environment (plus *environment*); print its wall time; with *check*, fail
        with the end of its output when its exit status is not 0."""
        start = time.monotonic()
        result = subprocess.run(command, cwd=cls.root, env={**cls.env, **environment}, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        print(f"[{time.monotonic() - start:6.1f} s] {' '.join(command[:4])} -> {result.returncode}")
        if check and result.returncode != 0:
            raise AssertionError(f"`{' '.join(command)}` exited with {result.returncode}:\n"
                                 f"{result.stdout[-TAIL_CHARS:]}")
        return result

    @classmethod
    def scipion(cls, *args: str, check: bool = True, **environment: str) -> subprocess.CompletedProcess:
        """``scipion3 ARGS`` through the launcher the installer wrote."""
        return cls.runStep([str(cls.home / "scipion3"), *args], check=check, **environment)

    def installWeights(self, **environment: str) -> subprocess.CompletedProcess:
        """`scipion3 installb haruspex-weights` offline, from a fresh package folder (nothing installed before)."""
        shutil.rmtree(self.emRoot / "haruspex-weights", ignore_errors=True)
        return self.scipion("installb", "haruspex-weights", check=False, https_proxy=DEAD_PROXY,
                            HTTPS_PROXY=DEAD_PROXY, no_proxy="", NO_PROXY="", **environment)

    # --- plugin and worker --------------------------------------------------------------------------------------
    def test_installp_installs_the_plugin_from_the_checkout(self):
        self.assertIn("Successfully installed scipion-em-haruspex", self.installp.stdout)
        listed = self.scipion("installb", "--help").stdout
        self.assertIn("haruspex-worker", listed)
        self.assertIn("haruspex-weights", listed)

    def test_installb_makes_a_worker_the_plugin_accepts(self):
        self.assertNotIn("ERROR", self.installb.stdout)  # installb exits with 0 even when it finds no such binary
        self.assertTrue(self.workerPython.is_file(), self.installb.stdout[-TAIL_CHARS:])
        code = ("from pwem import Domain; Plugin = Domain.getPluginModule('haruspex_plugin').Plugin; "
                "print(Plugin.getWorkerPython(), Plugin.checkInstallation())")
        output = self.scipion("python", "-c", code).stdout.strip().splitlines()[-1]
        self.assertEqual(output, f"{self.workerPython} []")

    # --- weights ------------------------------------------------------------------------------------------------
    def test_weights_offline_without_files_fail_with_the_install_instructions(self):
        result = self.installWeights()
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("download failed", result.stdout)
        self.assertIn("The Haruspex weights are not installed", result.stdout)
        self.assertIn("set HARUSPEX_CHECKPOINT=/path/to/model.ckpt-40000", result.stdout)

    def test_weights_offline_from_the_files_haruspex_checkpoint_names(self):
        prefix = self.weights / "model.ckpt-40000"
        result = self.installWeights(HARUSPEX_CHECKPOINT=str(prefix))
        self.assertEqual(result.returncode, 0, result.stdout[-TAIL_CHARS:])
        self.assertNotIn("weights download", result.stdout)
        record = self.emRoot / "haruspex-weights" / "checkpoint-prefix.txt"
        self.assertEqual(record.read_text().strip(), str(prefix))

    def test_weights_that_are_not_the_published_ones_are_refused(self):
        unmarked = self.root / "other-weights"
        unmarked.mkdir(exist_ok=True)
        for path in self.weights.iterdir():
            if path.name != TEST_WEIGHTS_MARKER:
                shutil.copy(path, unmarked / path.name)
        result = self.installWeights(HARUSPEX_CHECKPOINT=str(unmarked / "model.ckpt-40000"))
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("not the published haruspex-hpx_190116 file model.ckpt-40000.data-00000-of-00001",
                      result.stdout)

    # --- Scipion's test runner ----------------------------------------------------------------------------------
    def test_scipion_tests_run_the_import_sequences_tests(self):
        self.checkScipionTests("haruspex_plugin.tests.test_protocol_import_sequences")

    def test_scipion_tests_run_an_annotation_with_the_installed_worker(self):
        output = self.checkScipionTests("haruspex_plugin.tests.test_protocol_annotate.TestHaruspexAnnotateDemoModel")
        runs = self.root / "userdata" / "projects" / "TestHaruspexAnnotateDemoModel" / "Runs"
        logs = "".join(log.read_text() for log in runs.glob("*_ProtHaruspexAnnotate/logs/run.stdout"))
        self.assertIn(f"{self.workerPython} -m haruspex_engine annotate", logs, output[-TAIL_CHARS:])

    def checkScipionTests(self, name: str) -> str:
        """Run `scipion3 tests NAME`; it must pass every test it runs. Returns its output."""
        output = self.scipion("tests", name).stdout
        self.assertRegex(output, r"PASSED.*\d+ tests")
        self.assertNotIn("FAILED", output)
        return output


def _memory_folder() -> str | None:
    """/dev/shm when it is a memory file system with room for the install (3.5 GB) where programs may run, else None
    (the default temporary folder). Deleting the install's 60,000 files takes seconds there but can take minutes
    on a virtual disk."""
    try:
        stat = os.statvfs(MEMORY_FOLDER)
    except OSError:
        return None
    roomy = stat.f_bavail * stat.f_frsize >= MEMORY_FOLDER_MIN_FREE
    return MEMORY_FOLDER if roomy and not stat.f_flag & os.ST_NOEXEC else None


def _scipion_environment(root: Path) -> dict[str, str]:
    """The environment a facility admin's shell would have: this process's, without what the test suite set for its
    own Scipion (SCIPION_*, HARUSPEX_*, EM_ROOT, the project's environments on PATH), with the user-data, log and
    local-config paths under *root* instead of the home folder."""
    ours = (str(REPO / ".venv"), str(REPO / ".venv-worker"))
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("SCIPION_", "HARUSPEX_")) and name not in ("EM_ROOT", "PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(ours))
    env.update(SCIPION_USER_DATA=str(root / "userdata"), SCIPION_LOGS=str(root / "userdata" / "logs"),
               SCIPION_LOG=str(root / "userdata" / "logs" / "scipion.log"),
               SCIPION_TESTS_OUTPUT=str(root / "userdata" / "Tests"),
               SCIPION_LOCAL_CONFIG=str(root / "local-scipion.conf"), SCIPION_NOTIFY="False")
    return env
