"""The Haruspex 3-D U-Net rebuilt in TensorFlow 2 from the published architecture.

Input: boxes of 40³ voxels (raw map values, one channel). Output: the central 20³ voxels of each box with
4 channels in the published order (0 sheet, 1 helix, 2 nucleic acid, 3 unassigned). Tensors are NDHWC with
D along the map's z axis. Layers (all 3³ convolutions VALID + ReLU unless noted):

    conv3d 1→32, conv3d_1 32→64 (skip A, 36³), max-pool 2
    conv3d_2 64→128 (skip B, 16³), max-pool 2
    conv3d_3 128→256 (SAME)
    conv3d_transpose 256→256 (2³ stride 2, no bias, ReLU), concat [skip B, up]
    conv3d_4 384→256, conv3d_5 256→128
    conv3d_transpose_1 128→128 (2³ stride 2, no bias, ReLU), concat [skip A cropped to its central 24³, up]
    conv3d_6 192→128, conv3d_7 128→4 (no activation: logits), softmax over channels

Two algorithms compute the same function: "direct" uses tf.nn.conv3d for every convolution; "winograd" computes the
3³ convolutions of WINOGRAD_LAYERS with Winograd F(2×2×2, 3×3×3) (``winograd.py``: 64 instead of 216 multiplications
per 2³ output block), which differs from "direct" only by summation order (float32 rounding, ~1e-6 relative).
conv3d (1 input channel) and conv3d_7 (4 output channels) stay direct: there the transforms cost more than they save.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from haruspex_engine.annotation.checkpoint import BOX, NETWORK_TENSORS
from haruspex_engine.annotation.winograd import transform_kernel, winograd_conv3d_valid
from haruspex_engine.devices import DeviceOutOfMemory, import_tensorflow

tf = import_tensorflow()

PRECISIONS = {"fp32": tf.float32, "bf16": tf.bfloat16}
ALGORITHMS = ("winograd", "direct")
#: Convolutions computed with Winograd F(2³, 3³) when algorithm == "winograd" (conv3d_3 is SAME: zero-padded first).
WINOGRAD_LAYERS = ("conv3d_2", "conv3d_3", "conv3d_4", "conv3d_5", "conv3d_6")
#: Multiply-accumulate operations per 40³ tile (counted layer by layer from the shapes above).
MACS_PER_TILE = (
    38**3 * 27 * 1 * 32 + 36**3 * 27 * 32 * 64 + 16**3 * 27 * 64 * 128 + 8**3 * 27 * 128 * 256
    + 16**3 * 256 * 256 + 14**3 * 27 * 384 * 256 + 12**3 * 27 * 256 * 128 + 24**3 * 128 * 128
    + 22**3 * 27 * 192 * 128 + 20**3 * 27 * 128 * 4
)


class HaruspexNetwork:
    """Forward pass of the published network on batches of 40³ boxes.

    weights: checkpoint name -> array, shapes as in NETWORK_TENSORS (TF kernel layouts, used as they are).
    precision: "fp32" (matches the original) or "bf16" (weights and activations in bfloat16, softmax in fp32).
    device: TensorFlow device string, e.g. "/CPU:0" or "/GPU:0".
    algorithm: "winograd" (Winograd F(2³, 3³) for WINOGRAD_LAYERS; in bf16 its transforms add rounding) or "direct"
    (tf.nn.conv3d everywhere). Both compute the same function up to float32 summation order. None (default):
    "winograd" on a CPU device (1.6-1.7× faster per tile on a 2-core AVX-512 CPU), "direct" elsewhere (the GPU gain
    is not measured; cuDNN picks its own convolution algorithm).
    """

    def __init__(self, weights: dict[str, np.ndarray], precision: str = "fp32", device: str = "/CPU:0",
                 algorithm: str | None = None):
        if algorithm is None:
            algorithm = "winograd" if "CPU" in device.upper() else "direct"
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, not {precision!r}")
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, not {algorithm!r}")
        self.precision = precision
        self.device = device
        self.algorithm = algorithm
        dtype = PRECISIONS[precision]
        with tf.device(device):
            self._w = {name: tf.constant(np.asarray(weights[name], np.float32), dtype=dtype)
                       for name in NETWORK_TENSORS}
            if self.algorithm == "winograd":
                for name in WINOGRAD_LAYERS:
                    u = transform_kernel(np.asarray(weights[f"{name}/kernel"], np.float32))
                    self._w[f"{name}/winograd"] = tf.constant(u.astype(np.float32), dtype=dtype)
        self._forward = tf.function(self._logits, reduce_retracing=True)

    def probabilities(self, boxes: np.ndarray) -> np.ndarray:
        """Class probabilities of the central 20³ of each box.

        boxes: float32 (B, 40, 40, 40), axes (tile, z, y, x). Returns float32 (B, 20, 20, 20, 4).
        """
        if boxes.ndim != 4 or boxes.shape[1:] != (BOX, BOX, BOX):
            raise ValueError(f"expected boxes of shape (B, {BOX}, {BOX}, {BOX}), got {boxes.shape}")
        try:
            with tf.device(self.device):
                logits = self._forward(tf.convert_to_tensor(boxes[..., np.newaxis], dtype=tf.float32))
                return tf.nn.softmax(logits, axis=-1).numpy()
        except tf.errors.ResourceExhaustedError as exc:
            raise DeviceOutOfMemory(f"{len(boxes)} tiles do not fit in {self.device} memory") from exc

    def _logits(self, x: tf.Tensor) -> tf.Tensor:
        return tf.cast(network_logits(tf.cast(x, PRECISIONS[self.precision]), self._w), tf.float32)


def network_logits(x: tf.Tensor, w: Mapping[str, tf.Tensor]) -> tf.Tensor:
    """Logits of the central 20³ of each box: x (B, 40, 40, 40, 1) NDHWC -> (B, 20, 20, 20, 4), in x's dtype.

    w: the NETWORK_TENSORS as tensors or tf.Variables (the training model passes its variables, so training
    differentiates exactly this forward pass); a ``{layer}/winograd`` entry computes that layer with Winograd.
    """
    batch = tf.shape(x)[0]
    x = _conv(x, w, "conv3d")
    skip_a = _conv(x, w, "conv3d_1")                                  # 36³ × 64
    x = tf.nn.max_pool3d(skip_a, ksize=2, strides=2, padding="VALID")  # 18³
    skip_b = _conv(x, w, "conv3d_2")                                  # 16³ × 128
    x = tf.nn.max_pool3d(skip_b, ksize=2, strides=2, padding="VALID")  # 8³
    x = _conv(x, w, "conv3d_3", padding="SAME")                       # 8³ × 256
    x = _up(x, w["conv3d_transpose/kernel"], batch, 16)               # 16³ × 256
    x = tf.concat([skip_b, x], axis=-1)                               # 16³ × 384
    x = _conv(x, w, "conv3d_4")                                       # 14³ × 256
    x = _conv(x, w, "conv3d_5")                                       # 12³ × 128
    x = _up(x, w["conv3d_transpose_1/kernel"], batch, 24)             # 24³ × 128
    x = tf.concat([skip_a[:, 6:30, 6:30, 6:30, :], x], axis=-1)       # 24³ × 192
    x = _conv(x, w, "conv3d_6")                                       # 22³ × 128
    return _conv(x, w, "conv3d_7", relu=False)                        # 20³ × 4 logits


def _conv(x: tf.Tensor, w: Mapping[str, tf.Tensor], name: str, padding: str = "VALID", relu: bool = True) -> tf.Tensor:
    if f"{name}/winograd" in w:
        if padding == "SAME":
            x = tf.pad(x, [[0, 0], [1, 1], [1, 1], [1, 1], [0, 0]])
        return winograd_conv3d_valid(x, w[f"{name}/winograd"], bias=w[f"{name}/bias"], relu=relu)
    y = tf.nn.conv3d(x, w[f"{name}/kernel"], strides=[1, 1, 1, 1, 1], padding=padding)
    y = tf.nn.bias_add(y, w[f"{name}/bias"])
    return tf.nn.relu(y) if relu else y


def _up(x: tf.Tensor, kernel: tf.Tensor, batch: tf.Tensor, size: int) -> tf.Tensor:
    """2³ stride-2 transposed convolution (kernel [kd, kh, kw, out, in]) followed by ReLU."""
    out_shape = tf.stack([batch, size, size, size, kernel.shape[3]])
    y = tf.nn.conv3d_transpose(x, kernel, out_shape, strides=[1, 2, 2, 2, 1], padding="VALID")
    return tf.nn.relu(y)
