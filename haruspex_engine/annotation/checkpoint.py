"""The published Haruspex checkpoint (TF1 name-based V2 bundle): its layout, a strict reader and a writer.

The published network ``hpx_190116`` is ``model.ckpt-40000.index`` + ``model.ckpt-40000.data-00000-of-00001``:
57 tensors stored back to back in name order (the 18 network tensors below, an Adam pair for each, two beta
powers and ``global_step``). Kernels use TF layouts: Conv3D ``[kd, kh, kw, in, out]``, Conv3DTranspose
``[kd, kh, kw, out, in]``.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from haruspex_engine.checkpoints import CheckpointError
from haruspex_engine.checkpoints import check_not_test_weights as _check_not_test_weights
from haruspex_engine.checkpoints import is_test_weights as _is_test_weights
from haruspex_engine.devices import import_tensorflow

#: Edge in voxels of the network's input box and of the central core it predicts.
BOX, CORE = 40, 20
#: Channel order of the network output (published).
CHANNELS = ("sheet", "helix", "nucleic", "unassigned")
#: Channels of the first convolution in the published network; the others are 2, 4 and 8 times as many.
PUBLISHED_WIDTH = 32


def network_tensors(width: int = PUBLISHED_WIDTH) -> dict[str, tuple[int, ...]]:
    """Network tensors needed for inference: checkpoint name -> shape, for a network whose first convolution has
    ``width`` channels (the published network: 32; the project's demo model: a narrower one, same names)."""
    if width < 1:
        raise ValueError(f"network width must be at least 1, not {width}")
    c1, c2, c3, c4 = width, 2 * width, 4 * width, 8 * width
    return {
        "conv3d/kernel": (3, 3, 3, 1, c1),
        "conv3d/bias": (c1,),
        "conv3d_1/kernel": (3, 3, 3, c1, c2),
        "conv3d_1/bias": (c2,),
        "conv3d_2/kernel": (3, 3, 3, c2, c3),
        "conv3d_2/bias": (c3,),
        "conv3d_3/kernel": (3, 3, 3, c3, c4),
        "conv3d_3/bias": (c4,),
        "conv3d_transpose/kernel": (2, 2, 2, c4, c4),
        "conv3d_4/kernel": (3, 3, 3, c3 + c4, c4),
        "conv3d_4/bias": (c4,),
        "conv3d_5/kernel": (3, 3, 3, c4, c3),
        "conv3d_5/bias": (c3,),
        "conv3d_transpose_1/kernel": (2, 2, 2, c3, c3),
        "conv3d_6/kernel": (3, 3, 3, c2 + c3, c3),
        "conv3d_6/bias": (c3,),
        "conv3d_7/kernel": (3, 3, 3, c3, len(CHANNELS)),
        "conv3d_7/bias": (len(CHANNELS),),
    }


#: The published network's tensors: checkpoint name -> shape.
NETWORK_TENSORS: dict[str, tuple[int, ...]] = network_tensors()


def network_width(weights: dict[str, np.ndarray]) -> int:
    """The width (channels of the first convolution) of a set of network tensors."""
    return int(np.shape(weights["conv3d/kernel"])[-1])


def checkpoint_layout(width: int = PUBLISHED_WIDTH,
                      optimizer: bool = True) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    """Every tensor of a checkpoint in the published layout, name -> (dtype, shape), in the order they are stored.

    width: see ``network_tensors``. optimizer: include the Adam slots and beta powers (False: the network tensors
    and ``global_step`` only, as the bundled demo model is stored).
    """
    entries: dict[str, tuple[np.dtype, tuple[int, ...]]] = {"global_step": (np.dtype(np.int64), ())}
    if optimizer:
        entries["beta1_power"] = (np.dtype(np.float32), ())
        entries["beta2_power"] = (np.dtype(np.float32), ())
    for name, shape in network_tensors(width).items():
        for suffix in ("", "/Adam", "/Adam_1") if optimizer else ("",):
            entries[name + suffix] = (np.dtype(np.float32), shape)
    return dict(sorted(entries.items()))


def published_layout() -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    """Every tensor of the published checkpoint, name -> (dtype, shape), in the order they are stored."""
    return checkpoint_layout()


def data_path(prefix: str | os.PathLike) -> Path:
    return Path(f"{prefix}.data-00000-of-00001")


def index_path(prefix: str | os.PathLike) -> Path:
    return Path(f"{prefix}.index")


def read_network_weights(prefix: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read the 18 network tensors of a Haruspex checkpoint, checking names, shapes, sizes and checksums.

    prefix: path without extension, e.g. ``.../model.ckpt-40000``. The shapes must be those of
    ``network_tensors(width)`` for the width of its first convolution (32 for the published network). Returns
    float32 arrays keyed by checkpoint name. Raises CheckpointError naming the file and the problem.
    """
    tf = import_tensorflow()
    prefix = Path(prefix)
    check_not_test_weights(prefix)
    for path in (index_path(prefix), data_path(prefix)):
        if not path.is_file():
            raise CheckpointError(f"{path}: missing (a checkpoint needs both the .index and the .data file)")
    try:
        reader = tf.train.load_checkpoint(str(prefix))
    except (tf.errors.OpError, ValueError) as exc:
        raise CheckpointError(f"{index_path(prefix)}: not a TensorFlow checkpoint index ({_first_line(exc)})") from None
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    missing = [n for n in NETWORK_TENSORS if n not in shapes]
    if missing:
        raise CheckpointError(
            f"{index_path(prefix)}: not a Haruspex checkpoint, tensors missing: {', '.join(missing[:4])}"
            + (" …" if len(missing) > 4 else "")
        )
    first = tuple(shapes["conv3d/kernel"])
    width = first[-1] if len(first) == 5 and first[-1] >= 1 else PUBLISHED_WIDTH
    wrong = [f"{n} has shape {tuple(shapes[n])}, expected {s}" for n, s in network_tensors(width).items()
             if tuple(shapes[n]) != s]
    wrong += [f"{n} is {dtypes[n].name}, expected float32" for n in NETWORK_TENSORS if dtypes[n] != tf.float32]
    if wrong:
        raise CheckpointError(f"{index_path(prefix)}: not the Haruspex network: " + "; ".join(wrong))
    expected_size = sum(math.prod(shapes[n]) * dtypes[n].size for n in shapes)
    actual_size = data_path(prefix).stat().st_size
    if actual_size != expected_size:
        raise CheckpointError(
            f"{data_path(prefix)}: {actual_size:,} bytes, but its index describes {expected_size:,} bytes "
            "(truncated or from another checkpoint; download it again)"
        )
    weights = {}
    for name in NETWORK_TENSORS:
        try:
            weights[name] = np.asarray(reader.get_tensor(name), dtype=np.float32)
        except tf.errors.OpError as exc:
            raise CheckpointError(f"{data_path(prefix)}: tensor {name} is corrupt ({_first_line(exc)})") from None
    return weights


def check_not_test_weights(prefix: str | os.PathLike) -> None:
    """Refuse random test weights unless HARUSPEX_ALLOW_TEST_WEIGHTS=1 (set only by the test suite)."""
    _check_not_test_weights(Path(prefix).parent, str(prefix),
                            "Install the published weights with `haruspex weights download`.")


def is_test_weights(prefix: str | os.PathLike) -> bool:
    """True when the checkpoint at ``prefix`` is a random test checkpoint."""
    return _is_test_weights(Path(prefix).parent)


def write_checkpoint(
    prefix: str | os.PathLike,
    weights: dict[str, np.ndarray],
    *,
    global_step: int = 0,
    optimizer_slots: dict[str, np.ndarray] | None = None,
    optimizer: bool = True,
) -> Path:
    """Write a checkpoint in exactly the published layout (same names, dtypes, shapes and byte order).

    weights: the 18 network tensors (float32, shapes of ``network_tensors(width)``; the published network has width
    32). optimizer_slots: optional values for the ``/Adam``, ``/Adam_1``, ``beta1_power`` and ``beta2_power``
    entries (zeros, 0.9 and 0.999 otherwise); optimizer False leaves those entries out (a smaller file that
    annotate reads the same way but training cannot resume from). Returns the prefix (training runs list their
    checkpoints in the ``checkpoint`` state file themselves).
    """
    tf = import_tensorflow()
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    slots = dict(optimizer_slots or {})
    width = network_width(weights)
    names = network_tensors(width)
    values = {}
    for name, (dtype, shape) in checkpoint_layout(width, optimizer).items():
        if name == "global_step":
            value = np.asarray(global_step, dtype=np.int64)
        elif name in names:
            value = np.asarray(weights[name], dtype=np.float32)
        elif name in slots:
            value = np.asarray(slots[name], dtype=np.float32)
        else:
            value = np.full(shape, {"beta1_power": 0.9, "beta2_power": 0.999}.get(name, 0.0), dtype=np.float32)
        if value.shape != shape:
            raise ValueError(f"{name}: shape {value.shape}, expected {shape}")
        values[name] = value.astype(dtype)
    with tf.Graph().as_default():
        variables = {name: tf.compat.v1.Variable(value, name=name.replace("/", "_")) for name, value in values.items()}
        saver = tf.compat.v1.train.Saver(var_list=variables, write_version=tf.compat.v1.train.SaverDef.V2)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, str(prefix), write_meta_graph=False, write_state=False)
    return prefix


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
