"""Winograd F(2³, 3³) convolution: equal to tf.nn.conv3d, and the network built with it equal to the direct one."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported anywhere in this module

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from haruspex_engine.annotation.network import ALGORITHMS, HaruspexNetwork  # noqa: E402
from haruspex_engine.annotation.winograd import tf, transform_kernel, winograd_conv3d_valid  # noqa: E402
from haruspex_engine.testing.random_weights import random_network_weights  # noqa: E402
from haruspex_engine.testing.upstream_graph import FP32_REORDER_TOLERANCE  # noqa: E402


def _direct(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    return tf.nn.conv3d(tf.constant(x), tf.constant(kernel), [1, 1, 1, 1, 1], "VALID").numpy()


@pytest.mark.parametrize("shape", [(2, 6, 8, 10, 3, 5), (1, 4, 4, 4, 1, 1), (3, 10, 6, 4, 7, 2)])
def test_winograd_equals_conv3d_in_float64(shape):
    batch, d, h, w, cin, cout = shape
    rng = np.random.default_rng(sum(shape))
    x = rng.normal(size=(batch, d, h, w, cin))
    kernel = rng.normal(size=(3, 3, 3, cin, cout))
    got = winograd_conv3d_valid(tf.constant(x), tf.constant(transform_kernel(kernel))).numpy()
    ref = _direct(x, kernel)
    assert got.shape == ref.shape == (batch, d - 2, h - 2, w - 2, cout)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12 * np.abs(ref).max())


def test_winograd_bias_and_relu():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2, 8, 8, 8, 4))
    kernel = rng.normal(size=(3, 3, 3, 4, 6))
    bias = rng.normal(size=6)
    got = winograd_conv3d_valid(tf.constant(x), tf.constant(transform_kernel(kernel)), bias=tf.constant(bias),
                                relu=True).numpy()
    np.testing.assert_allclose(got, np.maximum(_direct(x, kernel) + bias, 0.0), rtol=0, atol=1e-11)


def test_winograd_float32_error_is_no_larger_than_direct():
    """In float32 (a network-sized layer) both algorithms are compared with a float64 reference."""
    rng = np.random.default_rng(11)
    x = rng.normal(size=(2, 16, 16, 16, 96))
    kernel = rng.normal(size=(3, 3, 3, 96, 64)) / np.sqrt(27 * 96)
    ref = _direct(x, kernel)
    x32, k32 = x.astype(np.float32), kernel.astype(np.float32)
    direct_err = np.abs(_direct(x32, k32) - ref).max()
    wino = winograd_conv3d_valid(tf.constant(x32), tf.constant(transform_kernel(k32).astype(np.float32))).numpy()
    wino_err = np.abs(wino - ref).max()
    assert wino.dtype == np.float32
    assert wino_err <= 2 * direct_err, (wino_err, direct_err)


def test_transform_kernel_shape_and_validation():
    u = transform_kernel(np.ones((3, 3, 3, 5, 7), np.float32))
    assert u.shape == (64, 5, 7) and u.dtype == np.float64
    # G applied to an all-ones 3-tap kernel gives (1, 3/2, 1/2, 1) per axis; position ξ = 16a + 4b + c.
    per_axis = np.array([1.0, 1.5, 0.5, 1.0])
    np.testing.assert_array_equal(u[:, 0, 0], np.einsum("a,b,c->abc", per_axis, per_axis, per_axis).ravel())
    with pytest.raises(ValueError):
        transform_kernel(np.ones((2, 2, 2, 1, 1)))
    with pytest.raises(ValueError):
        winograd_conv3d_valid(tf.zeros((1, 5, 6, 6, 1)), tf.constant(u[:, :1, :1]))


# ----------------------------------------------------------------------------------------------------------------
# whole network
# ----------------------------------------------------------------------------------------------------------------
def _float64_network(weights: dict[str, np.ndarray], boxes: np.ndarray) -> np.ndarray:
    """The published architecture in float64 with tf.nn.conv3d (reference for both float32 algorithms)."""
    w = {name: tf.constant(value.astype(np.float64)) for name, value in weights.items()}
    x = tf.constant(boxes[..., np.newaxis].astype(np.float64))
    batch = x.shape[0]

    def conv(x, name, padding="VALID", relu=True):
        y = tf.nn.conv3d(x, w[f"{name}/kernel"], [1, 1, 1, 1, 1], padding) + w[f"{name}/bias"]
        return tf.nn.relu(y) if relu else y

    def pool(x):
        _, d, h, ww, c = x.shape
        return tf.reduce_max(tf.reshape(x, [batch, d // 2, 2, h // 2, 2, ww // 2, 2, c]), axis=[2, 4, 6])

    def up(x, name, size):
        kernel = w[name]
        shape = [batch, size, size, size, kernel.shape[3]]
        return tf.nn.relu(tf.nn.conv3d_transpose(x, kernel, shape, [1, 2, 2, 2, 1], "VALID"))

    skip_a = conv(conv(x, "conv3d"), "conv3d_1")
    skip_b = conv(pool(skip_a), "conv3d_2")
    x = up(conv(pool(skip_b), "conv3d_3", "SAME"), "conv3d_transpose/kernel", 16)
    x = conv(conv(tf.concat([skip_b, x], -1), "conv3d_4"), "conv3d_5")
    x = up(x, "conv3d_transpose_1/kernel", 24)
    x = conv(tf.concat([skip_a[:, 6:30, 6:30, 6:30], x], -1), "conv3d_6")
    return tf.nn.softmax(conv(x, "conv3d_7", relu=False), axis=-1).numpy()


def test_network_winograd_equals_direct():
    weights = random_network_weights(3)
    boxes = np.random.default_rng(4).normal(0.0, 1.0, (3, 40, 40, 40)).astype(np.float32)
    direct = HaruspexNetwork(weights, "fp32", algorithm="direct").probabilities(boxes)
    winograd = HaruspexNetwork(weights, "fp32", algorithm="winograd").probabilities(boxes)
    exact = _float64_network(weights, boxes)
    assert winograd.shape == direct.shape == (3, 20, 20, 20, 4)
    assert direct.std() > 0.01  # not a degenerate network
    delta = float(np.abs(winograd - direct).max())
    direct_err = float(np.abs(direct - exact).max())
    winograd_err = float(np.abs(winograd - exact).max())
    print(f"\n[winograd] max |dprob| winograd-direct {delta:.3g}; vs float64: direct {direct_err:.3g}, "
          f"winograd {winograd_err:.3g}")
    assert delta <= FP32_REORDER_TOLERANCE
    assert winograd_err <= 2 * direct_err + 1e-7
    top2 = np.sort(direct, axis=-1)[..., -2:]
    clear = top2[..., 1] - top2[..., 0] > 1e-4  # the class is decided by more than rounding
    np.testing.assert_array_equal(winograd.argmax(-1)[clear], direct.argmax(-1)[clear])


def test_network_algorithm_choice():
    weights = random_network_weights(0)
    with pytest.raises(ValueError, match="algorithm"):
        HaruspexNetwork(weights, "fp32", algorithm="fft")
    assert HaruspexNetwork(weights, "fp32").algorithm == "winograd"  # default on the CPU
    assert HaruspexNetwork(weights, "fp32", algorithm="direct").algorithm == "direct"
    boxes = np.random.default_rng(0).normal(0.0, 1.0, (2, 40, 40, 40)).astype(np.float32)
    reference = HaruspexNetwork(weights, "fp32", algorithm="direct").probabilities(boxes)
    for algorithm in ALGORITHMS:
        bf16 = HaruspexNetwork(weights, "bf16", algorithm=algorithm)
        assert bf16.algorithm == algorithm
        out = bf16.probabilities(boxes)
        assert out.shape == (2, 20, 20, 20, 4) and np.all(np.isfinite(out))
        # reduced precision: close to fp32, not equal (measured ~5e-3 direct, ~9e-3 Winograd on random weights)
        assert 1e-5 < np.abs(out - reference).max() < 0.05
