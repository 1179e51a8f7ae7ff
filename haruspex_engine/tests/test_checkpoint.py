"""The strict checkpoint reader (``read_network_weights``) on generated checkpoints: round trip and every refusal."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported anywhere in this module

import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from haruspex_engine.annotation.checkpoint import (  # noqa: E402
    NETWORK_TENSORS,
    PUBLISHED_WIDTH,
    checkpoint_layout,
    data_path,
    index_path,
    network_tensors,
    network_width,
    published_layout,
    read_network_weights,
    write_checkpoint,
)
from haruspex_engine.checkpoints import ALLOW_TEST_WEIGHTS_ENV, TEST_WEIGHTS_MARKER, CheckpointError  # noqa: E402
from haruspex_engine.testing.random_weights import make_test_checkpoint, random_network_weights  # noqa: E402

SEED = 7


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """A random-weights checkpoint in the published layout (written once; tests that damage it work on a copy)."""
    return make_test_checkpoint(tmp_path_factory.mktemp("generated"), seed=SEED)


@pytest.fixture
def allow_test_weights(monkeypatch):
    monkeypatch.setenv(ALLOW_TEST_WEIGHTS_ENV, "1")


@pytest.fixture
def copy(generated, tmp_path) -> Path:
    """A private copy of the generated checkpoint (same file names)."""
    for path in generated.parent.iterdir():
        shutil.copy2(path, tmp_path / path.name)
    return tmp_path / generated.name


def _offset(name: str) -> int:
    """Byte offset of a tensor in the .data file (tensors are stored back to back in name order)."""
    offset = 0
    for entry, (dtype, shape) in published_layout().items():
        if entry == name:
            return offset
        offset += int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raise KeyError(name)


def _save_with_tf_saver(prefix: Path, tensors: dict[str, np.ndarray]) -> Path:
    """Write a name-based V2 checkpoint with TF's own Saver (not the engine's writer)."""
    import tensorflow as tf

    with tf.Graph().as_default():
        variables = {name: tf.compat.v1.Variable(value, name=f"v{i}")
                     for i, (name, value) in enumerate(tensors.items())}
        saver = tf.compat.v1.train.Saver(var_list=variables)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, str(prefix), write_meta_graph=False, write_state=False)
    return prefix


def _published_values(seed: int = SEED) -> dict[str, np.ndarray]:
    weights = random_network_weights(seed)
    values = {}
    for name, (dtype, shape) in published_layout().items():
        values[name] = weights[name] if name in weights else np.zeros(shape, dtype)
    return values


def test_round_trip(generated, allow_test_weights):
    weights = read_network_weights(generated)
    expected = random_network_weights(SEED)
    assert list(weights) == list(NETWORK_TENSORS)
    for name, shape in NETWORK_TENSORS.items():
        assert weights[name].dtype == np.float32 and weights[name].shape == shape, name
        np.testing.assert_array_equal(weights[name], expected[name], err_msg=name)


def test_checkpoint_written_by_tf_saver_is_read(tmp_path, allow_test_weights):
    """The reader does not depend on the engine's writer: a plain TF Saver checkpoint with the published names."""
    values = _published_values(seed=3)
    prefix = _save_with_tf_saver(tmp_path / "model.ckpt-1", values)
    weights = read_network_weights(prefix)
    for name in NETWORK_TENSORS:
        np.testing.assert_array_equal(weights[name], values[name], err_msg=name)


def test_truncated_data_file(copy, allow_test_weights):
    data = data_path(copy)
    size = data.stat().st_size
    with open(data, "r+b") as handle:
        handle.truncate(size - 4096)
    with pytest.raises(CheckpointError, match="truncated") as info:
        read_network_weights(copy)
    assert str(data) in str(info.value)


def test_flipped_bytes_inside_a_kernel(copy, allow_test_weights):
    """Same size, damaged content: only the crc32c in the index can catch it (TF's reader checks it on read)."""
    data = data_path(copy)
    position = _offset("conv3d_4/kernel") + 123_456
    with open(data, "r+b") as handle:
        handle.seek(position)
        original = handle.read(4)
        handle.seek(position)
        handle.write(bytes(b ^ 0x5A for b in original))
    assert data.stat().st_size == 72_417_088
    with pytest.raises(CheckpointError, match="conv3d_4/kernel") as info:
        read_network_weights(copy)
    assert str(data) in str(info.value)
    assert "Checksum" in str(info.value) or "corrupt" in str(info.value)


def test_missing_index(copy, allow_test_weights):
    index_path(copy).unlink()
    with pytest.raises(CheckpointError, match="missing") as info:
        read_network_weights(copy)
    assert str(index_path(copy)) in str(info.value)


def test_missing_data(copy, allow_test_weights):
    data_path(copy).unlink()
    with pytest.raises(CheckpointError, match="missing") as info:
        read_network_weights(copy)
    assert str(data_path(copy)) in str(info.value)


def test_garbage_index(copy, allow_test_weights):
    index_path(copy).write_bytes(b"this is not an SSTable" * 100)
    with pytest.raises(CheckpointError) as info:
        read_network_weights(copy)
    assert str(index_path(copy)) in str(info.value)


def test_tensor_of_the_wrong_shape(tmp_path, allow_test_weights):
    values = _published_values()
    values["conv3d_7/kernel"] = np.zeros((3, 3, 3, 128, 5), np.float32)  # a 5-class head
    values["conv3d_7/bias"] = np.zeros((5,), np.float32)
    prefix = _save_with_tf_saver(tmp_path / "model.ckpt-40000", values)
    with pytest.raises(CheckpointError, match="conv3d_7/kernel") as info:
        read_network_weights(prefix)
    assert str(index_path(prefix)) in str(info.value)
    assert "(3, 3, 3, 128, 5)" in str(info.value)


def test_tensor_of_the_wrong_dtype(tmp_path, allow_test_weights):
    values = _published_values()
    values["conv3d/kernel"] = values["conv3d/kernel"].astype(np.float64)
    prefix = _save_with_tf_saver(tmp_path / "model.ckpt-40000", values)
    with pytest.raises(CheckpointError, match=r"model\.ckpt-40000\.index.*conv3d/kernel is float64, expected float32"):
        read_network_weights(prefix)


def test_checkpoint_of_another_network(tmp_path, allow_test_weights):
    prefix = _save_with_tf_saver(tmp_path / "model.ckpt-500", {
        "dense/kernel": np.ones((16, 4), np.float32),
        "dense/bias": np.zeros((4,), np.float32),
        "global_step": np.asarray(500, np.int64),
    })
    with pytest.raises(CheckpointError, match="missing") as info:
        read_network_weights(prefix)
    assert str(index_path(prefix)) in str(info.value)
    assert "conv3d/kernel" in str(info.value)


@pytest.mark.parametrize("value", [None, "0", "yes"])
def test_random_test_weights_are_refused(generated, monkeypatch, value):
    assert (generated.parent / TEST_WEIGHTS_MARKER).is_file()
    if value is None:
        monkeypatch.delenv(ALLOW_TEST_WEIGHTS_ENV, raising=False)
    else:
        monkeypatch.setenv(ALLOW_TEST_WEIGHTS_ENV, value)
    with pytest.raises(CheckpointError, match=TEST_WEIGHTS_MARKER) as info:
        read_network_weights(generated)
    assert str(generated) in str(info.value)


def test_random_test_weights_are_accepted_when_allowed(generated, monkeypatch):
    monkeypatch.setenv(ALLOW_TEST_WEIGHTS_ENV, "1")
    assert set(read_network_weights(generated)) == set(NETWORK_TENSORS)


def test_same_weights_without_marker_need_no_permission(copy, monkeypatch):
    monkeypatch.delenv(ALLOW_TEST_WEIGHTS_ENV, raising=False)
    (copy.parent / TEST_WEIGHTS_MARKER).unlink()
    assert set(read_network_weights(copy)) == set(NETWORK_TENSORS)


# --- narrower networks of the published architecture (the demo model) ------------------------------------------

#: The published network's tensors (../shared/models/haruspex/expected_checkpoint_layout.tsv), written out.
PUBLISHED_SHAPES = {
    "conv3d/kernel": (3, 3, 3, 1, 32), "conv3d/bias": (32,),
    "conv3d_1/kernel": (3, 3, 3, 32, 64), "conv3d_1/bias": (64,),
    "conv3d_2/kernel": (3, 3, 3, 64, 128), "conv3d_2/bias": (128,),
    "conv3d_3/kernel": (3, 3, 3, 128, 256), "conv3d_3/bias": (256,),
    "conv3d_transpose/kernel": (2, 2, 2, 256, 256),
    "conv3d_4/kernel": (3, 3, 3, 384, 256), "conv3d_4/bias": (256,),
    "conv3d_5/kernel": (3, 3, 3, 256, 128), "conv3d_5/bias": (128,),
    "conv3d_transpose_1/kernel": (2, 2, 2, 128, 128),
    "conv3d_6/kernel": (3, 3, 3, 192, 128), "conv3d_6/bias": (128,),
    "conv3d_7/kernel": (3, 3, 3, 128, 4), "conv3d_7/bias": (4,),
}


def test_published_width_gives_the_published_tensors():
    assert network_tensors(PUBLISHED_WIDTH) == PUBLISHED_SHAPES
    optimizer = {f"{name}/{slot}": shape for name, shape in PUBLISHED_SHAPES.items() for slot in ("Adam", "Adam_1")}
    assert {name: shape for name, (_, shape) in checkpoint_layout(PUBLISHED_WIDTH).items()} == {
        **PUBLISHED_SHAPES, **optimizer, "beta1_power": (), "beta2_power": (), "global_step": ()}
    assert len(checkpoint_layout(PUBLISHED_WIDTH)) == 57
    assert network_tensors(4)["conv3d_4/kernel"] == (3, 3, 3, 48, 32)  # skip (16) + upsampled (32) channels
    with pytest.raises(ValueError, match="at least 1"):
        network_tensors(0)


def test_narrow_network_without_optimizer_state_round_trips(tmp_path):
    rng = np.random.default_rng(1)
    weights = {name: rng.normal(size=shape).astype(np.float32) for name, shape in network_tensors(4).items()}
    prefix = write_checkpoint(tmp_path / "demo.ckpt", weights, global_step=12, optimizer=False)
    read = read_network_weights(prefix)
    assert network_width(read) == 4 and list(read) == list(weights)
    for name in weights:
        np.testing.assert_array_equal(read[name], weights[name])
    layout = checkpoint_layout(4, optimizer=False)
    assert sorted(layout) == sorted([*network_tensors(4), "global_step"])
    assert data_path(prefix).stat().st_size == sum(np.prod(shape) * dtype.itemsize for dtype, shape in layout.values())


def test_network_of_mixed_widths_is_refused(tmp_path, allow_test_weights):
    values = {name: np.zeros(shape, np.float32) for name, shape in network_tensors(4).items()}
    values["conv3d_5/kernel"] = np.zeros(network_tensors(8)["conv3d_5/kernel"], np.float32)
    prefix = _save_with_tf_saver(tmp_path / "model.ckpt-1", values)
    with pytest.raises(CheckpointError, match=r"conv3d_5/kernel has shape \(3, 3, 3, 64, 32\), expected "
                                              r"\(3, 3, 3, 32, 16\)"):
        read_network_weights(prefix)
