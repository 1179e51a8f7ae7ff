"""The bundled demo model: stored in the published layout at width 8, labelled wherever it is used, and good enough
on the built-in example to be worth shipping (per-residue recall and precision as `haruspex validate` counts them)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from haruspex_engine.annotation.checkpoint import (
    CHANNELS,
    data_path,
    index_path,
    network_tensors,
    network_width,
    read_network_weights,
)
from haruspex_engine.demo_model import DEMO_CARD, DEMO_LABEL, DEMO_PREFIX
from haruspex_engine.maps import read_map
from haruspex_engine.simulate import write_example_map
from haruspex_engine.structures import example_scene
from haruspex_engine.validation.validate import validate_model, validation_report


def run_cli(*args):
    env = {k: v for k, v in os.environ.items() if k not in ("HARUSPEX_CHECKPOINT", "HARUSPEX_ALLOW_TEST_WEIGHTS")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return subprocess.run([sys.executable, "-m", "haruspex_engine", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=600)


def test_demo_model_is_a_width_8_network_in_the_published_layout_with_its_card():
    weights = read_network_weights(DEMO_PREFIX)  # the strict reader: names, shapes, sizes, checksums
    assert network_width(weights) == 8
    assert {name: w.shape for name, w in weights.items()} == network_tensors(8)
    card = json.loads(DEMO_CARD.read_text())
    assert "NOT the published network" in card["what"]
    assert card["width"] == 8 and card["parameters"] == sum(w.size for w in weights.values())
    assert card["bytes"] == data_path(DEMO_PREFIX).stat().st_size + index_path(DEMO_PREFIX).stat().st_size
    for data_set in ("held_out_scenes", "protein_3j6b"):
        overall = card["evaluation"][data_set]["overall"]
        assert 0 < overall["recall"] <= 1 and 0 < overall["precision"] <= 1


@pytest.fixture(scope="module")
def example_annotation(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    write_example_map(folder / "example.mrc")
    result = run_cli("annotate", folder / "example.mrc", "-o", folder, "--demo-model", "-q")
    return result, folder


def test_annotate_with_the_demo_model_needs_no_published_weights_and_says_so(example_annotation):
    result, folder = example_annotation
    assert result.returncode == 0, result.stderr
    assert DEMO_LABEL in result.stderr
    summary = json.loads((folder / "example_summary.json").read_text())
    assert summary["network"] == "demo" and summary["network_width"] == 8
    assert summary["checkpoint"] == str(DEMO_PREFIX) and DEMO_LABEL in summary["warnings"]


def test_demo_model_finds_the_helices_and_the_sheet_of_the_example(example_annotation):
    _, folder = example_annotation
    density = read_map(folder / "example.mrc")
    maps = {name: read_map(folder / f"example_{name}.mrc") for name in CHANNELS}
    metrics = validation_report(validate_model(example_scene(), maps, density))["metrics"]
    helix, sheet = metrics["per_class"]["helix"], metrics["per_class"]["sheet"]
    assert helix["residues"] >= 40 and sheet["residues"] >= 20
    assert helix["recall"] >= 0.9 and helix["precision"] >= 0.8, metrics["per_class"]
    assert sheet["recall"] >= 0.8 and sheet["precision"] >= 0.7, metrics["per_class"]
    assert metrics["confusion"]["helix"]["nucleic"] + metrics["confusion"]["sheet"]["nucleic"] == 0


def test_demo_model_and_a_checkpoint_exclude_each_other(tmp_path):
    result = run_cli("annotate", tmp_path / "x.mrc", "--demo-model", "--checkpoint", tmp_path / "model.ckpt-1")
    assert result.returncode == 2 and "not allowed with argument" in result.stderr
