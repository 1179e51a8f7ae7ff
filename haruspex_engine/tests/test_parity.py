"""Parity of the native network with the upstream TF1 graph, and the exact published checkpoint layout.

Needs the stored upstream graph ``../shared/models/haruspex/model.ckpt-40000.meta`` (and the derived
``expected_checkpoint_layout.tsv`` next to it); skipped when it is absent. The real weights are not needed: both the
upstream graph and the native network run on random weights written in the published layout.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported anywhere in this module

import struct  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from haruspex_engine.annotation.checkpoint import (  # noqa: E402
    NETWORK_TENSORS,
    data_path,
    index_path,
    published_layout,
    read_network_weights,
)
from haruspex_engine.checkpoints import ALLOW_TEST_WEIGHTS_ENV  # noqa: E402
from haruspex_engine.testing.random_weights import make_test_checkpoint, random_network_weights  # noqa: E402
from haruspex_engine.testing.upstream_graph import FP32_REORDER_TOLERANCE  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SHARED_HARUSPEX = REPO.parent / "shared" / "models" / "haruspex"
META = SHARED_HARUSPEX / "model.ckpt-40000.meta"
LAYOUT_TSV = SHARED_HARUSPEX / "expected_checkpoint_layout.tsv"

pytestmark = pytest.mark.skipif(
    not (META.is_file() and LAYOUT_TSV.is_file()),
    reason=f"upstream Haruspex graph not available ({META} and {LAYOUT_TSV.name} are needed for parity tests)",
)

DATA_BYTES = 72_417_088
INDEX_BYTES = 2_332
TOLERANCE = 1e-5
BATCH = 3
SEED = 0


# ----------------------------------------------------------------------------------------------------------------
# TF's masked CRC32C (pure Python) and a minimal reader of the checkpoint index (an SSTable of BundleEntryProto)
# ----------------------------------------------------------------------------------------------------------------
def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1  # Castagnoli polynomial, reflected
        table.append(crc)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """TF's checksum as stored in checkpoint indexes: rotate right by 15 bits, then add 0xa282ead8 (mod 2^32)."""
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _block_entries(buf: bytes, offset: int, size: int) -> list[tuple[bytes, bytes]]:
    block = buf[offset:offset + size]
    assert buf[offset + size] == 0, "compressed index block"  # trailer: compression type, then a crc
    n_restarts = struct.unpack_from("<I", block, size - 4)[0]
    end = size - 4 - 4 * n_restarts
    entries, key, pos = [], b"", 0
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        entries.append((key, block[pos:pos + value_len]))
        pos += value_len
    return entries


def read_index_entries(path: Path) -> dict[str, dict]:
    """name -> {dtype, shape, offset, size, crc32c} straight from the bytes of a checkpoint ``.index`` file."""
    import tensorflow as tf
    from tensorflow.core.protobuf import tensor_bundle_pb2

    buf = path.read_bytes()
    assert struct.unpack_from("<Q", buf, len(buf) - 8)[0] == 0xDB4775248B80FB57, "not an SSTable"
    pos = len(buf) - 48
    _, pos = _varint(buf, pos)  # metaindex handle (unused)
    _, pos = _varint(buf, pos)
    index_offset, pos = _varint(buf, pos)
    index_size, pos = _varint(buf, pos)
    entries = {}
    for _, handle in _block_entries(buf, index_offset, index_size):
        block_offset, hpos = _varint(handle, 0)
        block_size, _ = _varint(handle, hpos)
        for key, value in _block_entries(buf, block_offset, block_size):
            if key == b"":  # the BundleHeaderProto
                continue
            entry = tensor_bundle_pb2.BundleEntryProto.FromString(value)
            entries[key.decode()] = {
                "dtype": tf.as_dtype(entry.dtype).name,
                "shape": tuple(d.size for d in entry.shape.dim),
                "offset": entry.offset,
                "size": entry.size,
                "crc32c": entry.crc32c,
            }
    return entries


def read_layout_tsv(path: Path) -> dict[str, dict]:
    rows = [line.split("\t") for line in path.read_text().splitlines() if line and not line.startswith("#")]
    header, rows = rows[0], rows[1:]
    assert header[:6] == ["variable", "dtype", "shape", "offset", "size_bytes", "crc32c_masked"], header
    return {
        row[0]: {
            "dtype": row[1],
            "shape": () if row[2] == "scalar" else tuple(int(d) for d in row[2].split("x")),
            "offset": int(row[3]),
            "size": int(row[4]),
            "crc32c": int(row[5], 16),
        }
        for row in rows
    }


# ----------------------------------------------------------------------------------------------------------------
# fixtures
# ----------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def prefix(tmp_path_factory) -> Path:
    return make_test_checkpoint(tmp_path_factory.mktemp("random-weights"), seed=SEED)


@pytest.fixture(scope="module")
def native_weights(prefix) -> dict[str, np.ndarray]:
    """The weights as the engine reads them (the full writer -> reader -> network chain is under test)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ALLOW_TEST_WEIGHTS_ENV, "1")
        return read_network_weights(prefix)


@pytest.fixture(scope="module")
def upstream(prefix):
    from haruspex_engine.testing.upstream_graph import UpstreamGraph

    with UpstreamGraph(META, prefix, BATCH) as graph:
        yield graph


def map_like_boxes(rng: np.random.Generator) -> np.ndarray:
    """Three boxes with the value statistics of real maps: small-scale normalised, raw large-scale, skewed."""
    return np.stack([
        rng.normal(0.02, 0.1, (40, 40, 40)),                                            # EMDB-like, rms ~0.1
        rng.normal(0.0, 5.0, (40, 40, 40)),                                             # unnormalised
        rng.exponential(0.5, (40, 40, 40)) - 0.3 + rng.normal(0.0, 0.05, (40, 40, 40)),  # skewed, positive tail
    ]).astype(np.float32)


def smooth_field_boxes(rng: np.random.Generator, count: int = 5) -> np.ndarray:
    """Boxes cut from a simulated-looking map: random-walk chains of 3.8 Å steps splatted at 1.1 Å and blurred."""
    from scipy.ndimage import gaussian_filter

    size = 88
    grid = np.zeros((size,) * 3, np.float64)
    for _ in range(12):
        point = rng.uniform(10, size - 10, 3)
        for _ in range(60):
            step = rng.normal(size=3)
            point = np.clip(point + step / np.linalg.norm(step) * 3.8 / 1.1, 2, size - 3)
            for _ in range(6):  # side-chain-ish atoms around each C-alpha
                z, y, x = np.clip(np.round(point + rng.normal(0, 1.0, 3)), 0, size - 1).astype(int)
                grid[z, y, x] += rng.uniform(6, 8)
    density = gaussian_filter(grid, 1.6) + rng.normal(0.0, 0.01, grid.shape)
    density /= density.std()
    starts = rng.integers(0, size - 40, (count, 3))
    return np.stack([density[z:z + 40, y:y + 40, x:x + 40] for z, y, x in starts]).astype(np.float32)


# ----------------------------------------------------------------------------------------------------------------
# a) layout of the generated checkpoint
# ----------------------------------------------------------------------------------------------------------------
def test_masked_crc32c_known_values():
    assert crc32c(b"123456789") == 0xE3069283  # the standard CRC-32C check value
    assert crc32c(b"") == 0


def test_generated_checkpoint_has_the_published_layout(prefix):
    import tensorflow as tf

    assert data_path(prefix).stat().st_size == DATA_BYTES
    assert index_path(prefix).stat().st_size == INDEX_BYTES
    expected = read_layout_tsv(LAYOUT_TSV)
    assert list(expected) == list(published_layout())
    index = read_index_entries(index_path(prefix))
    assert list(index) == list(expected)
    for name, row in expected.items():
        got = index[name]
        assert (got["dtype"], got["shape"], got["offset"], got["size"]) == (
            row["dtype"], row["shape"], row["offset"], row["size"]), name

    # Every tensor's bytes sit at its published offset, raw little-endian C order.
    data = data_path(prefix).read_bytes()
    reader = tf.train.load_checkpoint(str(prefix))
    generated = random_network_weights(SEED)
    for name, row in expected.items():
        stored = data[row["offset"]:row["offset"] + row["size"]]
        value = reader.get_tensor(name)
        assert stored == np.ascontiguousarray(value).astype(value.dtype.newbyteorder("<")).tobytes(), name
        if name in NETWORK_TENSORS:
            assert stored == generated[name].astype("<f4").tobytes(), name

    # global_step = 40000 gives the published checksum; the other tensors are random, so only their layout compares.
    step = data[expected["global_step"]["offset"]:][:8]
    assert struct.unpack("<q", step)[0] == 40000
    assert masked_crc32c(step) == expected["global_step"]["crc32c"] == 0x0D531479
    assert index["global_step"]["crc32c"] == expected["global_step"]["crc32c"]
    # The crcs TF wrote into the index agree with this implementation (small tensors: pure Python is slow).
    checked = [name for name, row in index.items() if row["size"] <= 4096]
    assert "conv3d/kernel" in checked and "conv3d_7/bias" in checked
    for name in checked:
        row = index[name]
        assert masked_crc32c(data[row["offset"]:row["offset"] + row["size"]]) == row["crc32c"], name


# ----------------------------------------------------------------------------------------------------------------
# b) parity with the upstream graph
# ----------------------------------------------------------------------------------------------------------------
def _compare(upstream, native, boxes: np.ndarray, label: str) -> float:
    """Max |Δ probability| of ``native`` against the upstream graph; direct fp32 must be within TOLERANCE (it sums in
    TensorFlow's order and measures 0 here), Winograd within the float32 reordering bound."""
    ref = upstream.run(boxes)
    ours = native.probabilities(boxes)
    assert ours.shape == ref["probabilities"].shape == (len(boxes), 20, 20, 20, 4)
    delta = float(np.abs(ours - ref["probabilities"]).max())
    same = np.mean(ours.argmax(-1) == ref["classes"])
    counts = np.bincount(ref["classes"].ravel(), minlength=4)
    print(f"\n[parity] {label}: max |dprob| = {delta:.3g}, argmax agreement = {same:.4%}, "
          f"upstream classes = {counts.tolist()}")
    # The comparison means something only if the outputs are not degenerate.
    assert np.count_nonzero(counts) >= 2, f"{label}: the random network predicts a single class everywhere"
    assert ref["probabilities"].std() > 0.01
    np.testing.assert_allclose(ref["probabilities"].sum(-1), 1.0, atol=1e-5)
    bound = FP32_REORDER_TOLERANCE if native.algorithm == "winograd" else TOLERANCE
    assert delta <= bound, f"{label}: max |dprob| = {delta:.3g} > {bound}"
    np.testing.assert_array_equal(ours.argmax(-1), ref["classes"])
    return delta


@pytest.mark.parametrize("algorithm", ["direct", "winograd"])
def test_parity_map_like_boxes(upstream, native_weights, algorithm):
    from haruspex_engine.annotation.network import HaruspexNetwork

    boxes = map_like_boxes(np.random.default_rng(1))
    native = HaruspexNetwork(native_weights, "fp32", algorithm=algorithm)
    _compare(upstream, native, boxes, f"map-like random boxes, {algorithm}")


@pytest.mark.parametrize("algorithm", ["direct", "winograd"])
def test_parity_smooth_field_boxes(upstream, native_weights, algorithm):
    from haruspex_engine.annotation.network import HaruspexNetwork

    native = HaruspexNetwork(native_weights, "fp32", algorithm=algorithm)
    boxes = smooth_field_boxes(np.random.default_rng(2), count=2 * BATCH)
    for start in range(0, len(boxes), BATCH):
        _compare(upstream, native, boxes[start:start + BATCH],
                 f"simulated-map boxes {start}-{start + BATCH - 1}, {algorithm}")


def test_parity_any_count_pads_the_last_batch(upstream, native_weights):
    from haruspex_engine.annotation.network import HaruspexNetwork

    boxes = smooth_field_boxes(np.random.default_rng(3), count=BATCH + 2)
    start = time.perf_counter()
    ref = upstream.probabilities_any(boxes)
    elapsed = time.perf_counter() - start
    print(f"\n[timing] upstream graph, batch {BATCH}: {elapsed / len(boxes):.3f} s per tile "
          f"({len(boxes)} tiles in 2 runs, last one padded)")
    ours = HaruspexNetwork(native_weights, "fp32").probabilities(boxes)
    assert ref.shape == (len(boxes), 20, 20, 20, 4)
    assert float(np.abs(ours - ref).max()) <= TOLERANCE


@pytest.mark.parametrize("kernel", ["conv3d_transpose/kernel", "conv3d_transpose_1/kernel"])
def test_parity_check_is_sensitive_to_transposed_kernel_layout(upstream, native_weights, kernel):
    """Swapping the [out, in] axes of a transposed-conv kernel (square, so no shape error) must fail parity."""
    from haruspex_engine.annotation.network import HaruspexNetwork

    swapped = dict(native_weights)
    swapped[kernel] = np.ascontiguousarray(native_weights[kernel].transpose(0, 1, 2, 4, 3))
    boxes = map_like_boxes(np.random.default_rng(1))
    delta = float(np.abs(HaruspexNetwork(swapped, "fp32").probabilities(boxes) - upstream.probabilities(boxes)).max())
    print(f"\n[sensitivity] {kernel} axes 3<->4 swapped: max |dprob| = {delta:.3g}")
    assert delta > 100 * TOLERANCE


def test_upstream_graph_rejects_a_wrong_box_count(upstream):
    with pytest.raises(ValueError, match="exactly"):
        upstream.probabilities(np.zeros((BATCH + 1, 40, 40, 40), np.float32))


# ----------------------------------------------------------------------------------------------------------------
# c) other batch sizes
# ----------------------------------------------------------------------------------------------------------------
def test_upstream_graph_at_batch_1(prefix, native_weights):
    from haruspex_engine.annotation.network import HaruspexNetwork
    from haruspex_engine.testing.upstream_graph import UpstreamGraph

    box = smooth_field_boxes(np.random.default_rng(4), count=1)
    with UpstreamGraph(META, prefix, 1) as graph:
        out = graph.run(box)
    assert out["probabilities"].shape == (1, 20, 20, 20, 4)
    assert out["logits"].shape == (1, 20, 20, 20, 4)
    assert out["classes"].shape == (1, 20, 20, 20)
    ours = HaruspexNetwork(native_weights, "fp32").probabilities(box)
    assert float(np.abs(ours - out["probabilities"]).max()) <= TOLERANCE
