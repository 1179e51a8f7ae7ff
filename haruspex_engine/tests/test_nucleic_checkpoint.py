"""The strict loader of the published CryoREAD files on generated weight sets: layout, round trip, every refusal."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from haruspex_engine.checkpoints import ALLOW_TEST_WEIGHTS_ENV, TEST_WEIGHTS_MARKER, CheckpointError
from haruspex_engine.nucleic.detection.checkpoint import load_stage, save_stage
from haruspex_engine.nucleic.detection.networks import build_stage2
from haruspex_engine.testing.random_cryoread_weights import make_test_weight_set, random_stage_state_dict

SHARED_CRYOREAD = Path(__file__).resolve().parents[2].parent / "shared" / "models" / "cryoread"
SEED = 3
FILES = {1: "stage1_network.pth", 2: "stage2_network.pth"}


@pytest.fixture(scope="module")
def weight_set(tmp_path_factory) -> Path:
    """Random weights for both stages in the published layout (a marked test-weights directory)."""
    return make_test_weight_set(tmp_path_factory.mktemp("cryoread"), seed=SEED)


@pytest.fixture
def allow_test_weights(monkeypatch):
    monkeypatch.setenv(ALLOW_TEST_WEIGHTS_ENV, "1")


@pytest.fixture(scope="module")
def published_stage2(weight_set) -> dict:
    """The stage-2 file's content as torch.load returns it (tests alter copies of it)."""
    return torch.load(weight_set / FILES[2], map_location="cpu", weights_only=True)


def _write(path: Path, content) -> Path:
    torch.save(content, path)
    return path


def _with_state(published: dict, change) -> dict:
    state = dict(published["state_dict"])
    change(state)
    return {**published, "state_dict": state}


@pytest.mark.parametrize("stage", [1, 2])
def test_generated_files_have_the_published_layout(weight_set, stage):
    tsv = SHARED_CRYOREAD / f"expected_state_dict_stage{stage}.tsv"
    if not tsv.is_file():
        pytest.skip(f"{tsv} is absent (../shared/models/cryoread not available)")
    expected = [tuple(line.split("\t")) for line in tsv.read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    content = torch.load(weight_set / FILES[stage], map_location="cpu", weights_only=True)
    assert list(content) == ["state_dict"]
    actual = [(key, str(tuple(value.shape)), str(value.dtype)) for key, value in content["state_dict"].items()]
    assert actual == expected


@pytest.mark.parametrize("stage", [1, 2])
def test_round_trip_loads_strictly(weight_set, allow_test_weights, stage):
    module = load_stage(weight_set / FILES[stage], stage)
    assert not module.training
    expected = random_stage_state_dict(stage, SEED)
    loaded = module.state_dict()
    assert list(loaded) == list(expected)
    assert all(torch.equal(loaded[key], expected[key]) for key in expected)


def test_state_dict_without_prefix_is_accepted(published_stage2, tmp_path):
    state = {key.removeprefix("module."): value for key, value in published_stage2["state_dict"].items()}
    module = load_stage(_write(tmp_path / "plain.pth", {"state_dict": state}), 2)
    assert torch.equal(module.outconv1.bias, state["outconv1.bias"])


def test_extra_top_level_entries_are_ignored(published_stage2, tmp_path):
    path = _write(tmp_path / "extra.pth", {**published_stage2, "epoch": 120, "best_loss": 0.01})
    load_stage(path, 2)


def test_non_tensor_objects_need_trusted(published_stage2, tmp_path):
    path = _write(tmp_path / "pickled.pth", {**published_stage2, "args": argparse.Namespace(lr=0.001)})
    with pytest.raises(CheckpointError) as refused:
        load_stage(path, 2)
    assert str(path) in str(refused.value)
    assert "argparse.Namespace" in str(refused.value) and "trusted=True" in str(refused.value)
    load_stage(path, 2, trusted=True)


def test_save_stage_writes_the_published_layout(tmp_path):
    module = build_stage2()
    path = save_stage(module, tmp_path / "stage2.pth")
    content = torch.load(path, weights_only=True)
    assert list(content) == ["state_dict"]
    assert list(content["state_dict"]) == [f"module.{key}" for key in module.state_dict()]
    assert [p.name for p in tmp_path.iterdir()] == ["stage2.pth"]


def _drop(key):
    return lambda state: state.pop(key)


def _set(key, value):
    return lambda state: state.__setitem__(key, value)


def _mix_prefixes(state):
    state["conv1.conv1.0.bias"] = state.pop("module.conv1.conv1.0.bias")


BAD_STATES = {
    "missing": (_drop("module.outconv3.bias"), ["1 of 104 entries missing", "module.outconv3.bias"]),
    "unexpected": (_set("module.outconv4.weight", torch.zeros(8, 192, 3, 3, 3)),
                   ["1 unexpected (module.outconv4.weight)"]),
    "mixed prefixes": (_mix_prefixes, ["1 of 104 keys lack the 'module.' prefix", "(conv1.conv1.0.bias)"]),
    "misshaped": (_set("module.conv1.conv1.0.weight", torch.zeros(64, 1, 3, 3, 3)),
                  ["module.conv1.conv1.0.weight", "(64, 1, 3, 3, 3)", "expected (64, 8, 3, 3, 3)"]),
    "float64": (_set("module.bn1d_1.running_var", torch.ones(192, dtype=torch.float64)),
                ["module.bn1d_1.running_var", "torch.float64", "expected torch.float32"]),
    "not a tensor": (_set("module.outconv1.bias", [0.0] * 8), ["module.outconv1.bias", "is a list"]),
    "nan": (_set("module.conv2d_1.bias", torch.full((192,), float("nan"))), ["module.conv2d_1.bias", "NaN"]),
}


@pytest.mark.parametrize("problem", list(BAD_STATES))
def test_bad_state_dict_is_refused(published_stage2, tmp_path, problem):
    change, phrases = BAD_STATES[problem]
    path = _write(tmp_path / "stage2_network.pth", _with_state(published_stage2, change))
    with pytest.raises(CheckpointError) as refused:
        load_stage(path, 2)
    assert str(path) in str(refused.value)
    for phrase in phrases:
        assert phrase in str(refused.value)


def test_file_of_the_other_stage_is_named(weight_set, allow_test_weights):
    with pytest.raises(CheckpointError, match="this is a stage-1 file"):
        load_stage(weight_set / FILES[1], 2)


@pytest.mark.parametrize("content, phrase", [
    ({"model": {}}, "no 'state_dict' entry (keys: 'model')"),
    ([1, 2, 3], "holds a list"),
    ({"state_dict": [1, 2]}, "'state_dict' holds a list"),
])
def test_wrong_container_is_refused(tmp_path, content, phrase):
    path = _write(tmp_path / "stage2_network.pth", content)
    with pytest.raises(CheckpointError) as refused:
        load_stage(path, 2)
    assert str(path) in str(refused.value) and phrase in str(refused.value)


def test_truncated_and_foreign_files_are_refused(weight_set, tmp_path):
    truncated = tmp_path / "truncated.pth"
    data = (weight_set / FILES[2]).read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    text = tmp_path / "notes.pth"
    text.write_text("not a network\n")
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    for path in (truncated, text, empty):
        with pytest.raises(CheckpointError) as refused:
            load_stage(path, 2)
        assert str(path) in str(refused.value) and "truncated or corrupt" in str(refused.value)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match=r"stage2_network\.pth: missing"):
        load_stage(tmp_path / "stage2_network.pth", 2)


def test_test_weights_refused_without_permission(weight_set, monkeypatch):
    monkeypatch.delenv(ALLOW_TEST_WEIGHTS_ENV, raising=False)
    with pytest.raises(CheckpointError) as refused:
        load_stage(weight_set / FILES[2], 2)
    assert str(weight_set / FILES[2]) in str(refused.value) and TEST_WEIGHTS_MARKER in str(refused.value)


def test_unknown_stage_is_refused(weight_set):
    with pytest.raises(ValueError, match="stage must be 1 or 2"):
        load_stage(weight_set / FILES[2], 3)


def test_the_worker_trusts_only_files_with_a_published_blob_id(published_stage2, tmp_path, monkeypatch):
    """detect-na unpickles fully only files whose git blob id is a registered CryoREAD file's."""
    from haruspex_engine import weights
    from haruspex_engine.nucleic.detection.detect_command import _load

    path = _write(tmp_path / "stage2_network.pth", {**published_stage2, "args": argparse.Namespace(lr=0.001)})
    with pytest.raises(CheckpointError, match="argparse.Namespace"):
        _load(path, 2)
    published = weights.get_set("cryoread-default")
    files = (published.files[0], weights.WeightFile(path.name, "", None, weights.git_blob_sha1(path)))
    monkeypatch.setitem(weights.REGISTRY, "cryoread-default", weights.WeightSet(
        key=published.key, description="", files=files, licence="", citation="", upstream_dir="best_model"))
    assert isinstance(_load(path, 2), torch.nn.Module)
