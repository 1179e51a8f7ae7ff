"""scipion-em-haruspex: Scipion 3 plugin for Haruspex map annotation and CryoREAD-style nucleic-acid building.

Two packages ship in this distribution:
  haruspex_plugin  the Scipion side (imports pyworkflow/pwem, never TensorFlow or PyTorch);
  haruspex_engine  the pure-compute worker (never imports pyworkflow); its CLI is `haruspex`.
The plugin's requirements are the default install; the worker's compute stack is in requirements-worker.txt
(installed into the separate worker environment by the plugin's `defineBinaries` or scripts/setup-envs.sh).
"""
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.egg_info import egg_info

HERE = Path(__file__).parent


def _requirements(name: str) -> list:
    lines = (HERE / name).read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def _version() -> str:
    for line in (HERE / "haruspex_engine" / "__init__.py").read_text().splitlines():
        if line.startswith("__version__"):
            return line.split("=")[1].strip().strip("\"'")
    raise RuntimeError("no __version__ in haruspex_engine/__init__.py")


class PluginFirstEggInfo(egg_info):
    """Lists haruspex_plugin first in top_level.txt (setuptools sorts the names, which puts haruspex_engine first).

    Scipion's installer (`scipion3 installp -p <checkout> --devel`) takes the first name of an editable install's
    top_level.txt as the plugin module, and fails on haruspex_engine, which is not one.
    """

    def run(self):
        super().run()
        path = Path(self.egg_info) / "top_level.txt"
        names = path.read_text().split()
        path.write_text("\n".join(sorted(names, key=lambda name: name != "haruspex_plugin")) + "\n")


setup(
    name="scipion-em-haruspex",
    version=_version(),
    description="Scipion plugin: Haruspex map annotation and CryoREAD-style nucleic-acid model building",
    long_description=(HERE / "README.md").read_text() if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="GPL-3.0-or-later",
    python_requires=">=3.9",
    packages=find_packages(include=["haruspex_plugin*", "haruspex_engine*"]),
    package_data={"haruspex_plugin": ["protocols.conf", "templates/*.json.template"],
                  "haruspex_engine.demo_model": ["demo.ckpt.*", "demo_model.json"],
                  "haruspex_engine.nucleic.detection.demo_detector": ["demo_detector.pt", "demo_base_types.pt",
                                                                      "demo_detector.json"]},
    install_requires=_requirements("requirements.txt"),
    extras_require={"worker": _requirements("requirements-worker.txt")},
    cmdclass={"egg_info": PluginFirstEggInfo},
    entry_points={
        "pyworkflow.plugin": ["haruspex_plugin = haruspex_plugin"],
        "console_scripts": ["haruspex = haruspex_engine.cli:main"],
    },
)
