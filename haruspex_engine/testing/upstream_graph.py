"""Run the upstream Haruspex TF1 graph (``model.ckpt-40000.meta``) at a chosen batch size, for tests only.

This is the *reference* the native rebuild (``haruspex_engine.annotation.network.HaruspexNetwork``) is checked
against in the parity tests and compared with in benchmarks. It is not a production path: the stored graph is the
Estimator training graph, it needs TensorFlow's ``compat.v1`` session machinery, and it is slower than the rebuild.

The stored graph feeds its input from a shuffle queue through random 90° rotations and a random crop, and the
training batch (100) is folded into four Const nodes. To evaluate it on arbitrary boxes the GraphDef is edited as
protobuf objects (no text substitution):

1. the ``Reshape`` node (the network input, ``[100, 40, 40, 40, 1]``) is replaced by a float32 Placeholder of the
   same name with shape ``[B, 40, 40, 40, 1]``, so the queue and augmentation are no longer reachable;
2. element 0 of the Consts ``conv3d_transpose/Shape``, ``conv3d_transpose_1/Shape`` (output shapes of the two
   transposed convolutions), ``Shape`` and ``Shape_1`` (output reshapes) is set to B;
3. the graph is cut down with ``extract_sub_graph`` to what ``softmax_tensor``, ``ArgMax``, ``conv3d_7/BiasAdd``,
   ``save/restore_all`` and ``save/Const`` need (this drops the loss and optimizer part);
4. the result is imported into a fresh graph and the variables are restored by running ``save/restore_all`` with
   ``save/Const:0`` (the Saver's filename tensor) fed with the checkpoint prefix.

Any checkpoint with the published names and shapes works (the restore op reads all 57 entries, Adam slots
included), e.g. the random weights of ``haruspex_engine.testing.random_weights.make_test_checkpoint``; the real
weights are not needed.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from haruspex_engine.annotation.checkpoint import BOX, CHANNELS, CORE

#: Name of the node that becomes the input placeholder (the stored graph's ``Reshape`` to [-1, 40, 40, 40, 1]).
INPUT_NODE = "Reshape"
#: Const nodes that hold the training batch (100) in element 0.
BATCH_CONSTS = ("conv3d_transpose/Shape", "conv3d_transpose_1/Shape", "Shape", "Shape_1")
PROBABILITIES = "softmax_tensor"
CLASSES = "ArgMax"
LOGITS = "conv3d_7/BiasAdd"
RESTORE_OP = "save/restore_all"
FILENAME_TENSOR = "save/Const"
KEEP = (PROBABILITIES, CLASSES, LOGITS, RESTORE_OP, FILENAME_TENSOR)

#: Largest |Δ probability| allowed between two float32 evaluations of the network that sum in different orders (the
#: Winograd network against the direct one or against this graph). Each float32 evaluation is 2e-6 to 8e-6 away from a
#: float64 evaluation on the test boxes, and the Winograd one is checked to be no further than twice the direct one's
#: distance (test_winograd), so two orders may differ by up to 3 × 8e-6; 1e-5 was exceeded on another CPU (1.07e-5).
FP32_REORDER_TOLERANCE = 3e-5


def batched_graph_def(meta_path: str | os.PathLike, batch_size: int):
    """The stored graph edited for ``batch_size`` boxes fed at ``Reshape:0`` (steps 1–3 of the module doc).

    Returns a ``tf.compat.v1.GraphDef``. Raises ValueError if the graph does not have the expected nodes.
    """
    import tensorflow as tf
    from tensorflow.core.framework import types_pb2
    from tensorflow.core.protobuf import meta_graph_pb2

    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    batch_size = int(batch_size)
    meta = meta_graph_pb2.MetaGraphDef()
    meta.ParseFromString(Path(meta_path).read_bytes())
    graph_def = meta.graph_def
    nodes = {node.name: node for node in graph_def.node}
    missing = [name for name in (INPUT_NODE, *BATCH_CONSTS, *KEEP) if name not in nodes]
    if missing:
        raise ValueError(f"{meta_path}: not the Haruspex graph, nodes missing: {', '.join(missing)}")

    placeholder = nodes[INPUT_NODE]
    placeholder.Clear()
    placeholder.name = INPUT_NODE
    placeholder.op = "Placeholder"
    placeholder.attr["dtype"].type = types_pb2.DT_FLOAT
    placeholder.attr["shape"].shape.CopyFrom(
        tf.TensorShape([batch_size, BOX, BOX, BOX, 1]).as_proto())

    for name in BATCH_CONSTS:
        node = nodes[name]
        if node.op != "Const":
            raise ValueError(f"{meta_path}: {name} is a {node.op}, expected a Const")
        value = tf.make_ndarray(node.attr["value"].tensor).copy()
        if value.shape != (5,):
            raise ValueError(f"{meta_path}: {name} has shape {value.shape}, expected (5,)")
        value[0] = batch_size
        node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))

    with _quiet_tf_logging():
        sub = tf.compat.v1.graph_util.extract_sub_graph(graph_def, list(KEEP))
    for node in sub.node:
        # Static shapes recorded at training time (batch 100) are stale now; they are informational only.
        if "_output_shapes" in node.attr:
            del node.attr["_output_shapes"]
    return sub


class UpstreamGraph:
    """The stored TF1 graph in a ``compat.v1`` session, fed with exactly ``batch_size`` boxes per call.

    Reference for parity tests and benchmarks only (see the module doc). Use as a context manager or call
    ``close()``.
    """

    def __init__(self, meta_path: str | os.PathLike, checkpoint_prefix: str | os.PathLike, batch_size: int):
        import tensorflow as tf

        self.batch_size = int(batch_size)
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.compat.v1.import_graph_def(batched_graph_def(meta_path, batch_size), name="")
        config = tf.compat.v1.ConfigProto(allow_soft_placement=True)
        self.session = tf.compat.v1.Session(graph=self.graph, config=config)
        try:
            self.session.run(RESTORE_OP, feed_dict={f"{FILENAME_TENSOR}:0": str(checkpoint_prefix)})
        except BaseException:
            self.close()
            raise
        self._input = self.graph.get_tensor_by_name(f"{INPUT_NODE}:0")
        self._fetches = {
            "probabilities": self.graph.get_tensor_by_name(f"{PROBABILITIES}:0"),
            "classes": self.graph.get_tensor_by_name(f"{CLASSES}:0"),
            "logits": self.graph.get_tensor_by_name(f"{LOGITS}:0"),
        }

    def run(self, boxes: np.ndarray, outputs: tuple[str, ...] = ("probabilities", "classes", "logits")) -> dict:
        """Evaluate the graph on exactly ``batch_size`` boxes (float (B, 40, 40, 40), axes tile, z, y, x).

        Returns the requested outputs: ``probabilities`` float32 (B, 20, 20, 20, 4), ``classes`` int64
        (B, 20, 20, 20), ``logits`` float32 (B, 20, 20, 20, 4).
        """
        boxes = self._check(boxes)
        fetches = {name: self._fetches[name] for name in outputs}
        return self.session.run(fetches, feed_dict={self._input: boxes[..., np.newaxis]})

    def probabilities(self, boxes: np.ndarray) -> np.ndarray:
        """Softmax probabilities (B, 20, 20, 20, 4) of exactly ``batch_size`` boxes (B, 40, 40, 40)."""
        return self.run(boxes, ("probabilities",))["probabilities"]

    def probabilities_any(self, boxes: np.ndarray) -> np.ndarray:
        """Probabilities for any number of boxes: runs full batches, zero-pads the last and drops the padding."""
        boxes = np.asarray(boxes, dtype=np.float32)
        if boxes.ndim != 4 or boxes.shape[1:] != (BOX, BOX, BOX):
            raise ValueError(f"expected boxes of shape (N, {BOX}, {BOX}, {BOX}), got {boxes.shape}")
        out = np.empty((len(boxes), CORE, CORE, CORE, len(CHANNELS)), dtype=np.float32)
        for start in range(0, len(boxes), self.batch_size):
            chunk = boxes[start:start + self.batch_size]
            n = len(chunk)
            if n < self.batch_size:
                chunk = np.concatenate([chunk, np.zeros((self.batch_size - n, BOX, BOX, BOX), np.float32)])
            out[start:start + n] = self.probabilities(chunk)[:n]
        return out

    def close(self) -> None:
        session, self.session = getattr(self, "session", None), None
        if session is not None:
            session.close()

    def __enter__(self) -> UpstreamGraph:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _check(self, boxes: np.ndarray) -> np.ndarray:
        if self.session is None:
            raise RuntimeError("UpstreamGraph is closed")
        boxes = np.asarray(boxes, dtype=np.float32)
        expected = (self.batch_size, BOX, BOX, BOX)
        if boxes.shape != expected:
            raise ValueError(f"this graph takes exactly {expected} boxes, got {boxes.shape} "
                             "(use probabilities_any for other counts)")
        return boxes


@contextlib.contextmanager
def _quiet_tf_logging():
    """Hide TensorFlow's deprecation warning for ``extract_sub_graph`` (the v1 API is what this module is about)."""
    import tensorflow as tf

    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        yield
    finally:
        logger.setLevel(level)
