"""Shared test data and checks: a synthetic map, MRC I/O, ChimeraX script and PNG checks, environment overrides,
commands run in the worker environment (generated weights, engine helpers), steps reset for a continued run."""
from __future__ import annotations

import contextlib
import os
import re
import subprocess
from pathlib import Path

import mrcfile
import numpy as np
from pwem.protocols import ProtImportPdb, ProtImportVolumes
from pyworkflow.protocol import STATUS_NEW

from haruspex_plugin import Plugin
from haruspex_plugin.constants import HARUSPEX_CHECKPOINT

SHAPE_ZYX = (44, 36, 30)
VOXEL_SIZE = 1.1
ORIGIN_XYZ = (-12.1, 5.5, 33.0)  # MRC header origin in Å (= Scipion's origin shifts)
PROBABILITY_KEYS = ("helix", "sheet", "nucleic", "unassigned")
PAPER_COLORS = {"helix": "red", "sheet": "blue", "nucleic": "orange", "unassigned": "grey"}


def synthetic_map(seed: int = 7) -> np.ndarray:
    """A deterministic (z, y, x) float32 map: Gaussian blobs of varied width on weak noise."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(SHAPE_ZYX, dtype=np.float32)
    density = rng.normal(0.0, 0.02, SHAPE_ZYX)
    for _ in range(14):
        cz, cy, cx = rng.uniform(4, np.array(SHAPE_ZYX) - 4)
        sigma = rng.uniform(1.5, 4.0)
        density += rng.uniform(0.5, 1.5) * np.exp(-((z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2) / (2 * sigma**2))
    return density.astype(np.float32)


def write_mrc(path, data: np.ndarray, voxel_size: float = VOXEL_SIZE, origin=ORIGIN_XYZ) -> str:
    """Write *data* (z, y, x) as MRC with *voxel_size* Å and header *origin* (x, y, z) Å; return the path."""
    with mrcfile.new(str(path), overwrite=True) as mrc:
        mrc.set_data(np.asarray(data, dtype=np.float32))
        mrc.voxel_size = voxel_size
        mrc.header.origin = tuple(origin)
    return str(path)


def import_map(test_class, path: str, halves: list[str] | None = None, voxel_size: float | None = None,
               origin: tuple[float, float, float] | None = None):
    """Import an MRC map into a BaseTest class's project with its header voxel size and origin (ProtImportVolumes
    asks for the map centre, i.e. -origin), or with the exact *voxel_size* / *origin* given (the header holds their
    float32 values), and optionally its two half maps; returns the Volume."""
    _, header_voxel, header_origin = read_mrc(path)
    x, y, z = (-value for value in (header_origin if origin is None else origin))
    extra = {"setHalfMaps": True, "half1map": halves[0], "half2map": halves[1]} if halves else {}
    sampling = header_voxel[0] if voxel_size is None else voxel_size
    prot = test_class.newProtocol(ProtImportVolumes, filesPath=path, samplingRate=sampling, setOrigCoord=True,
                                  x=x, y=y, z=z, **extra)
    test_class.launchProtocol(prot)
    return prot.outputVolume


def import_model(test_class, path: str, volume=None):
    """Import a model file into a BaseTest class's project, with *volume* attached when given; returns the
    AtomStruct."""
    prot = test_class.newProtocol(ProtImportPdb, inputPdbData=ProtImportPdb.IMPORT_FROM_FILES, pdbFile=path,
                                  inputVolume=volume)
    test_class.launchProtocol(prot)
    return prot.outputPdb


class ProjectAt:
    """Stands in for a Scipion project in viewer tests: only its folder (``getPath``)."""

    def __init__(self, path: str):
        self.path = path

    def getPath(self) -> str:
        return self.path


def read_mrc(path) -> tuple[np.ndarray, tuple, tuple]:
    """(data (z, y, x), voxel size (x, y, z), header origin (x, y, z)) of an MRC file."""
    with mrcfile.open(str(path), permissive=True) as mrc:
        voxel = tuple(float(v) for v in (mrc.voxel_size.x, mrc.voxel_size.y, mrc.voxel_size.z))
        origin = tuple(float(v) for v in (mrc.header.origin.x, mrc.header.origin.y, mrc.header.origin.z))
        return np.array(mrc.data, dtype=np.float32), voxel, origin


CXC_COMMANDS = [
    re.compile(r'open "(?P<path>[^"]+)"'),
    re.compile(r"rename #(?P<model>\d+) (?P<name>\w+)"),
    re.compile(r"volume #(?P<model>\d+) style (mesh|surface)( level (?P<level>-?[0-9.]+(e[-+][0-9]+)?))?( step 1)?"
               r"( transparency (?P<transparency>[0-9.]+))? color (?P<color>[a-z]+)"),
    re.compile(r"volume #(?P<model>\d+) hide"),
    re.compile(r"color sample #1 map #(?P<labels>\d+) palette (?P<palette>[0-9a-z,:]+)"),
    # Nucleic-acid builds: the model's colourings as aliases (ChimeraX `alias`, `color bfactor ... palette`,
    # `color ... bynucleotide`), and an alias applied.
    re.compile(r"alias (?P<alias>confidence) color bfactor #(?P<model>\d+) "
               r"palette (?P<confidence_palette>[0-9.a-z,:]+)"),
    re.compile(r"alias (?P<alias>bases) color #(?P<model>\d+) bynucleotide"),
    re.compile(r"(?P<colouring>confidence|bases)"),
    re.compile(r"view"),
]
# The label map's values (0 unassigned, 1 helix, 2 sheet, 3 nucleic acid) in the paper's colours.
LABEL_PALETTE = "0,grey:1,red:2,blue:3,orange"


def parse_cxc(path) -> list[re.Match]:
    """Match every non-comment line of a ChimeraX script against the command forms the viewer writes."""
    matches = []
    for line in Path(path).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = next((m for m in (p.fullmatch(line) for p in CXC_COMMANDS) if m), None)
        if match is None:
            raise AssertionError(f"{path}: not a ChimeraX command of the expected forms: {line!r}")
        matches.append(match)
    return matches


def check_cxc(test, script, expected_class_files: dict, labels_file=None) -> None:
    """Assert *script* opens existing files (input first, then the classes, then the label map if given) and
    colours each class correctly; with a label map, the input map is coloured by it in the paper's colours."""
    matches = parse_cxc(script)
    opened = [m["path"] for m in matches if "path" in m.groupdict()]
    test.assertEqual(len(opened), 1 + len(expected_class_files) + (labels_file is not None))
    samples = [m for m in matches if "palette" in m.groupdict()]
    if labels_file is None:
        test.assertEqual(samples, [])
    else:
        test.assertTrue(os.path.samefile(opened[-1], labels_file))
        test.assertEqual([(m["labels"], m["palette"]) for m in samples], [(str(len(opened)), LABEL_PALETTE)])
    for path in opened:
        test.assertTrue(os.path.isabs(path) and os.path.isfile(path), path)
    for model, (name, path) in enumerate(expected_class_files.items(), start=2):
        test.assertTrue(os.path.samefile(opened[model - 1], path), (name, opened[model - 1], path))
        styles = [m for m in matches if m.groupdict().get("color") and m["model"] == str(model)]
        test.assertEqual(len(styles), 1, name)
        test.assertEqual(styles[0]["color"], PAPER_COLORS[name])
        test.assertEqual(float(styles[0]["level"]), 0.5)
    test.assertEqual(matches[-1].re.pattern, "view")


def check_png(test, png, min_size=(400, 200)) -> None:
    """Assert *png* is a PNG image of at least *min_size* pixels that is not blank."""
    from PIL import Image

    test.assertEqual(Path(png).read_bytes()[:8], b"\x89PNG\r\n\x1a\n")
    with Image.open(png) as image:
        image.load()
        test.assertGreaterEqual(image.size[0], min_size[0])
        test.assertGreaterEqual(image.size[1], min_size[1])
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    test.assertGreater(float(pixels.std()), 10.0)


@contextlib.contextmanager
def environment(**values: str):
    """Set environment variables for the duration of a block (protocols launched inside inherit them)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


#: Environment variable pointing the worker at CryoREAD weights (generated ones in tests).
CRYOREAD_WEIGHTS = "HARUSPEX_CRYOREAD_WEIGHTS"


def write_oracle_example(reference: str, map_path: str, *options: str) -> None:
    """Write the worker's built-in RNA example (``testing.oracle_detection example``): its model to ``reference``
    and a map simulated from it to ``map_path``; ``options`` go to that command (e.g. --sequence SEQ)."""
    run_worker("-m", "haruspex_engine.testing.oracle_detection", "example", reference, map_path, *options)


def run_worker(*args: str) -> str:
    """Run ``<worker python> ARGS`` (e.g. ``-m haruspex_engine ...``); return its stdout (RuntimeError with its
    stderr when it fails)."""
    result = subprocess.run([Plugin.getWorkerPython(), *args], capture_output=True, text=True,
                            env=Plugin.getEnviron(), check=False)
    if result.returncode != 0:
        raise RuntimeError(f"worker {' '.join(args[:3])} failed: {result.stderr.strip()[-2000:]}")
    return result.stdout


def make_test_checkpoint(directory) -> str:
    """Random Haruspex weights in the published layout, written by the worker; returns the checkpoint prefix."""
    return run_worker("-m", "haruspex_engine.testing.random_weights", str(directory)).strip().splitlines()[-1]


def class_environment(test_class, **variables: str) -> None:
    """Set environment *variables* (``environment``) until the tests of a BaseTest class are done."""
    stack = contextlib.ExitStack()
    test_class.addClassCleanup(stack.close)
    stack.enter_context(environment(**variables))


def use_test_checkpoint(test_class) -> str:
    """Generate random Haruspex weights for a BaseTest class and point the worker at them (HARUSPEX_CHECKPOINT)
    until the class's tests are done; returns the checkpoint prefix."""
    checkpoint = make_test_checkpoint(test_class.getOutputPath("weights"))
    class_environment(test_class, **{HARUSPEX_CHECKPOINT: checkpoint})
    return checkpoint


def reset_steps(prot, *names: str) -> None:
    """Mark the steps of *prot* whose function is one of *names* as new, one at a time as the Reset button of the
    GUI's steps window does, so that continuing the run reruns them."""
    for step in prot.loadSteps():
        if step.funcName.get() in names:
            prot._updateSteps(lambda s: s.setStatus(STATUS_NEW), where=f"id='{step.getObjId()}'")
    reset = {step.funcName.get() for step in prot.loadSteps() if step.isNew()}
    if reset != set(names):
        raise AssertionError(f"steps reset: {sorted(reset)}, asked for {sorted(names)}")


def worker_writing(*paths: str):
    """A stand-in for a protocol's runJob (a mock's side effect) whose worker writes *paths* (empty files): the
    file a worker step checks its worker wrote last, for tests that look at the command and run no worker."""
    def runJob(*args, **kwargs) -> None:
        for path in paths:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            Path(path).touch()
    return runJob
