"""Training the Haruspex network as the published training graph does, writing checkpoints in its layout.

Each step draws one batch of 70³ training segments, turns the whole batch by one of the 24 proper cube rotations,
cuts the 40³ input at one random offset o ∈ [0, 30)³ and the 20³ target at o + 10 (``augment.py``), and takes one
Adam step (lr 1e-3, β1 0.9, β2 0.999, ε 0.1, TF1 AdamOptimizer semantics) on the weighted softmax cross-entropy
of ``weighted_loss``. The forward pass is ``network.network_logits`` with plain convolutions: the function the
published graph computes (Winograd is an inference-time rewrite of the same function, not trained).

Checkpoints ``{output_prefix}-{global_step}`` are written with ``checkpoint.write_checkpoint`` in exactly the
published layout (network tensors, ``/Adam`` and ``/Adam_1`` slots, beta powers, ``global_step``), so
``haruspex annotate --checkpoint PREFIX`` reads them unchanged and a later run can resume or fine-tune from them.
"""
from __future__ import annotations

import json
import math
import os
import re
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from haruspex_engine.annotation.checkpoint import (
    BOX,
    CHANNELS,
    CORE,
    PUBLISHED_WIDTH,
    checkpoint_layout,
    data_path,
    index_path,
    is_test_weights,
    network_tensors,
    read_network_weights,
    write_checkpoint,
)
from haruspex_engine.annotation.network import network_logits
from haruspex_engine.atomic_files import write_text_atomically
from haruspex_engine.checkpoints import CheckpointError, mark_test_weights
from haruspex_engine.devices import import_tensorflow
from haruspex_engine.progress import Progress
from haruspex_engine.training import SEGMENT_SIZE
from haruspex_engine.training.augment import draw_augmentation, input_and_target, rotate
from haruspex_engine.training.segments import TrainingSegment

tf = import_tensorflow()

#: Per-class loss weights in CHANNELS order (sheet, helix, nucleic, unassigned), as in the published graph.
CLASS_WEIGHTS = (16.0, 16.0, 16.0, 1.0)
BETA1, BETA2 = 0.9, 0.999


class TrainingDataError(ValueError):
    """Training segments that cannot be used (none, wrong shape, labels out of range)."""


class TrainingResumeError(ValueError):
    """An interrupted run that cannot be resumed as asked (its recorded settings differ, or it has no record)."""


def run_record_path(output_prefix: str | os.PathLike) -> Path:
    """The JSON record of a run's settings and first global step, written when the run starts."""
    return Path(f"{output_prefix}.run.json")


def _resumable_checkpoints(output_prefix: Path, settings: dict) -> tuple[list[Path], dict]:
    """The kept checkpoints of an interrupted run into ``output_prefix`` with these settings, oldest first, and its
    run record (([], {}) when there is none to resume); TrainingResumeError when its checkpoints exist but its
    settings differ."""
    kept = [output_prefix.parent / name for name in kept_checkpoints(output_prefix.parent)
            if name.startswith(f"{output_prefix.name}-") and index_path(output_prefix.parent / name).is_file()
            and data_path(output_prefix.parent / name).is_file()]
    if not kept:
        return [], {}
    record_path = run_record_path(output_prefix)
    if not record_path.is_file():
        raise TrainingResumeError(f"{record_path}: missing, so the checkpoints {kept[-1]}… cannot be resumed; "
                                  "train into another prefix or remove them")
    record = json.loads(record_path.read_text())
    changed = [f"{key} {record.get(key)!r} -> {value!r}" for key, value in settings.items()
               if key != "steps" and record.get(key) != value]
    if changed:
        raise TrainingResumeError(f"{record_path}: the interrupted run had other settings ({'; '.join(changed)}); "
                                  "train into another prefix or remove its checkpoints")
    return kept, record


@dataclass
class TrainingReport:
    """What a training run did. losses: the loss of each step; seconds: wall time of the whole run;
    seconds_per_step: median step time; peak_rss_bytes: the process's peak resident memory; resumed_from_step: the
    global step of the checkpoint an interrupted run was resumed from (its losses are those of the later steps)."""

    steps: int
    batch_size: int
    segments: int
    seed: int
    width: int
    learning_rate: float
    epsilon: float
    initial_checkpoint: str | None
    first_step: int
    final_step: int
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    seconds_per_step: float = 0.0
    peak_rss_bytes: int = 0
    checkpoints: list[str] = field(default_factory=list)
    resumed_from_step: int | None = None


def weighted_loss(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """The published loss: softmax cross-entropy per voxel, weighted, summed, divided by the non-zero weights.

    logits: float (B, 20, 20, 20, 4) in CHANNELS order. labels: int (B, 20, 20, 20), channel index, -1 = masked.
    A voxel's weight is CLASS_WEIGHTS of its true class or of its predicted class (argmax of the logits),
    whichever is larger, and 0 where masked; with no weighted voxel the loss is 0.
    """
    mask = labels >= 0
    true_class = tf.where(mask, labels, 0)
    predicted = tf.argmax(logits, axis=-1, output_type=true_class.dtype)
    class_weights = tf.constant(CLASS_WEIGHTS, dtype=logits.dtype)
    weights = tf.maximum(tf.gather(class_weights, true_class), tf.gather(class_weights, predicted))
    weights *= tf.cast(mask, logits.dtype)
    cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=true_class, logits=logits)
    present = tf.cast(tf.math.count_nonzero(weights), logits.dtype)
    return tf.math.divide_no_nan(tf.reduce_sum(weights * cross_entropy), present)


class Adam:
    """Adam as TF1's AdamOptimizer applies it, with its checkpoint state (``/Adam`` = m, ``/Adam_1`` = v).

    lr_t = lr·√(1-β2^t)/(1-β1^t); m += (g-m)(1-β1); v += (g²-v)(1-β2); var -= lr_t·m/(√v + ε); β1^t, β2^t then
    advance. state: checkpoint name -> value of an ``/Adam`` or ``/Adam_1`` slot of a variable, or a beta power (missing
    ones start fresh).
    """

    def __init__(self, variables: dict[str, tf.Variable], learning_rate: float, epsilon: float,
                 state: dict[str, np.ndarray] | None = None):
        state = state or {}
        self.variables = variables
        self.learning_rate = learning_rate
        self.epsilon = epsilon
        starts = {**{f"{name}/{slot}": np.zeros(variable.shape) for name, variable in variables.items()
                     for slot in ("Adam", "Adam_1")},
                  "beta1_power": BETA1, "beta2_power": BETA2}
        self.state = {name: tf.Variable(np.asarray(state.get(name, start), np.float32), trainable=False)
                      for name, start in starts.items()}

    def apply(self, gradients: dict[str, tf.Tensor]) -> None:
        """One step. gradients: network tensor name -> gradient of the loss (shape of that tensor)."""
        s = self.state
        lr_t = self.learning_rate * tf.sqrt(1.0 - s["beta2_power"]) / (1.0 - s["beta1_power"])
        for name, g in gradients.items():
            m = s[f"{name}/Adam"].assign_add((g - s[f"{name}/Adam"]) * (1.0 - BETA1))
            v = s[f"{name}/Adam_1"].assign_add((tf.square(g) - s[f"{name}/Adam_1"]) * (1.0 - BETA2))
            self.variables[name].assign_sub(lr_t * m / (tf.sqrt(v) + self.epsilon))
        s["beta1_power"].assign(s["beta1_power"] * BETA1)
        s["beta2_power"].assign(s["beta2_power"] * BETA2)

    def slots(self) -> dict[str, np.ndarray]:
        """The state as checkpoint name -> array (``write_checkpoint``'s optimizer_slots)."""
        return {name: variable.numpy() for name, variable in self.state.items()}


def initial_weights(seed: int | np.random.SeedSequence, width: int = PUBLISHED_WIDTH) -> dict[str, np.ndarray]:
    """Fresh weights as TF1 ``tf.layers`` creates them: Glorot-uniform kernels, zero biases (float32).

    width: channels of the first convolution (``checkpoint.network_tensors``; 32 is the published network)."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in network_tensors(width).items():
        if name.endswith("/bias"):
            weights[name] = np.zeros(shape, np.float32)
        else:
            receptive = math.prod(shape[:3])
            limit = math.sqrt(6.0 / (receptive * (shape[3] + shape[4])))
            weights[name] = rng.uniform(-limit, limit, shape).astype(np.float32)
    return weights


def read_training_state(prefix: str | os.PathLike) -> tuple[dict[str, np.ndarray], int]:
    """The Adam state (every optimizer entry of ``checkpoint_layout``, or {} when the checkpoint has none) and global
    step (0 if absent)."""
    reader = tf.train.load_checkpoint(str(prefix))
    shapes = reader.get_variable_to_shape_map()
    width = int(shapes["conv3d/kernel"][-1])
    layout = checkpoint_layout(width)
    names = [name for name in layout if name not in checkpoint_layout(width, optimizer=False)]
    state = {}
    if all(name in shapes for name in names):
        wrong = [name for name in names if tuple(shapes[name]) != layout[name][1]]
        if wrong:
            raise CheckpointError(f"{index_path(prefix)}: optimizer slots of the wrong shape: {', '.join(wrong[:4])}")
        state = {name: np.asarray(reader.get_tensor(name), np.float32) for name in names}
    step = int(reader.get_tensor("global_step")) if "global_step" in shapes else 0
    return state, step


def train(
    segments: list[TrainingSegment],
    *,
    steps: int,
    output_prefix: str | os.PathLike,
    batch_size: int = 100,
    learning_rate: float = 1e-3,
    epsilon: float = 0.1,
    seed: int = 0,
    width: int = PUBLISHED_WIDTH,
    initial_checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    checkpoint_every: int = 5000,
    keep: int = 10,
    device: str = "/CPU:0",
    progress: bool = True,
) -> TrainingReport:
    """Train for ``steps`` Adam steps on ``segments`` and write checkpoints ``{output_prefix}-{global_step}``.

    segments: TrainingSegment (density (70, 70, 70) float32 and labels (70, 70, 70) int8 in CHANNELS order,
    -1 = masked), axes (z, y, x). Batches are drawn without replacement within each pass over the segments.
    initial_checkpoint: fine-tune from a checkpoint prefix (its network tensors and width; its Adam state and global
    step when present); otherwise fresh weights of ``width`` (``checkpoint.network_tensors``) from ``seed``.
    A checkpoint is written every ``checkpoint_every`` global steps and at the end; only the latest ``keep`` are
    kept. Deterministic for a fixed seed on the CPU (turns on TensorFlow's op determinism for the process).
    The settings are recorded in ``{output_prefix}.run.json`` when a run starts. resume: continue an interrupted run
    from the latest checkpoint listed in the ``checkpoint`` file next to ``output_prefix``, replaying the batch and
    augmentation draws of the finished steps, so the result equals an uninterrupted run's; the recorded settings
    must match (TrainingResumeError otherwise), except ``steps``, which may grow: the draws of a step do not depend
    on the total, so resuming a finished run with more steps equals a longer run from the start. Without such a
    checkpoint the run starts from the beginning.
    """
    if steps < 1 or batch_size < 1 or checkpoint_every < 1 or keep < 1:
        raise ValueError(f"steps, batch size, checkpoint interval and keep must be at least 1, not "
                         f"{steps}, {batch_size}, {checkpoint_every}, {keep}")
    _check_segments(segments)
    tf.config.experimental.enable_op_determinism()
    weight_seed, data_seed = np.random.SeedSequence(seed).spawn(2)
    data_rng = np.random.default_rng(data_seed)
    output_prefix = Path(output_prefix)
    settings = {"steps": steps, "batch_size": batch_size, "segments": len(segments), "seed": seed,
                "width": width if initial_checkpoint is None else None,  # else the initial checkpoint's
                "learning_rate": learning_rate, "epsilon": epsilon,
                "initial_checkpoint": None if initial_checkpoint is None else str(initial_checkpoint)}
    kept, record = _resumable_checkpoints(output_prefix, settings) if resume else ([], {})
    if kept:
        weights = read_network_weights(kept[-1])
        state, done = read_training_state(kept[-1])
        first_step = record["first_step"]
        if done - first_step > steps:
            raise TrainingResumeError(f"{kept[-1]}: the run is already {done - first_step} steps long; ask for at "
                                      f"least that many, not {steps}")
        write_text_atomically(run_record_path(output_prefix), json.dumps({**record, "steps": steps}))
    else:
        state, first_step = {}, 0
        if initial_checkpoint is None:
            weights = initial_weights(weight_seed, width)
        else:
            weights = read_network_weights(initial_checkpoint)
            state, first_step = read_training_state(initial_checkpoint)
        done = first_step
        output_prefix.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomically(run_record_path(output_prefix), json.dumps({**settings, "first_step": first_step}))
    if initial_checkpoint is not None and is_test_weights(initial_checkpoint):
        mark_test_weights(output_prefix.parent)  # trained from random test weights: still test weights

    report = TrainingReport(steps=steps, batch_size=batch_size, segments=len(segments), seed=seed,
                            width=int(weights["conv3d/kernel"].shape[-1]),
                            learning_rate=learning_rate, epsilon=epsilon,
                            initial_checkpoint=settings["initial_checkpoint"],
                            first_step=first_step, final_step=done, checkpoints=[str(p) for p in kept],
                            resumed_from_step=done if kept else None)
    with tf.device(device):
        variables = {name: tf.Variable(value, name=name.replace("/", "_")) for name, value in weights.items()}
        adam = Adam(variables, learning_rate, epsilon, state)
        step_fn = _step_function(variables, adam)
    started = time.perf_counter()
    step_seconds = []
    last_step = first_step + steps
    bar = Progress(last_step - done, "train", "step") if progress and last_step > done else None
    for step, batch in enumerate(_batches(len(segments), batch_size, steps, data_rng), start=first_step + 1):
        t0 = time.perf_counter()
        rotation, offset = draw_augmentation(data_rng)
        if step <= done:
            continue  # finished before the run was interrupted: its draws are replayed, not its work
        density = rotate(np.stack([segments[i].density for i in batch]), rotation)
        labels = rotate(np.stack([segments[i].labels for i in batch]), rotation)
        x, y = input_and_target(density, labels, offset)
        with tf.device(device):
            loss = step_fn(tf.constant(x[..., np.newaxis].astype(np.float32)), tf.constant(y.astype(np.int32)))
        report.losses.append(float(loss))
        report.final_step += 1
        step_seconds.append(time.perf_counter() - t0)
        if report.final_step % checkpoint_every == 0 or report.final_step == last_step:
            _save(report, variables, adam, output_prefix, keep)
            if progress:
                recent = report.losses[-checkpoint_every:]
                print(f"train: step {report.final_step}, mean loss of the last {len(recent)} steps "
                      f"{np.mean(recent):.4f}, wrote {report.checkpoints[-1]}", file=sys.stderr, flush=True)
        if bar:
            bar.update(1)
    if bar:
        bar.close()
    report.seconds = time.perf_counter() - started
    report.seconds_per_step = float(np.median(step_seconds)) if step_seconds else 0.0
    report.peak_rss_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return report


def _step_function(variables: dict[str, tf.Variable], adam: Adam):
    names = list(variables)

    @tf.function(input_signature=[tf.TensorSpec([None, BOX, BOX, BOX, 1], tf.float32),
                                  tf.TensorSpec([None, CORE, CORE, CORE], tf.int32)])
    def step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = weighted_loss(network_logits(x, variables), y)
        gradients = tape.gradient(loss, [variables[name] for name in names])
        adam.apply(dict(zip(names, gradients)))
        return loss

    return step


def _batches(n_segments: int, batch_size: int, steps: int, rng: np.random.Generator):
    """``steps`` index arrays of ``batch_size`` segments: shuffled passes over all segments, chained."""
    order = np.empty(0, dtype=int)
    for _ in range(steps):
        while len(order) < batch_size:
            order = np.concatenate([order, rng.permutation(n_segments)])
        batch, order = order[:batch_size], order[batch_size:]
        yield batch


def _save(report: TrainingReport, variables: dict[str, tf.Variable], adam: Adam, output_prefix: Path,
          keep: int) -> None:
    """Write ``{output_prefix}-{step}``, delete checkpoints beyond the latest ``keep``, list the kept ones."""
    prefix = write_checkpoint(f"{output_prefix}-{report.final_step}",
                              {name: v.numpy() for name, v in variables.items()},
                              global_step=report.final_step, optimizer_slots=adam.slots())
    report.checkpoints.append(str(prefix))
    for old in report.checkpoints[:-keep]:
        for path in (index_path(old), data_path(old)):
            path.unlink(missing_ok=True)
    report.checkpoints = report.checkpoints[-keep:]
    _write_checkpoint_state(output_prefix.parent, report.checkpoints)


def kept_checkpoints(directory: str | os.PathLike) -> list[str]:
    """Names of the checkpoints the ``checkpoint`` state file in ``directory`` lists, oldest first ([] without one)."""
    state = Path(directory) / "checkpoint"
    if not state.is_file():
        return []
    return re.findall(r'^all_model_checkpoint_paths: "(.*)"$', state.read_text(), flags=re.MULTILINE)


def _write_checkpoint_state(directory: Path, prefixes: list[str]) -> None:
    """The ``checkpoint`` file (TensorFlow's text format, as published): the latest prefix and every kept one."""
    names = [Path(prefix).name for prefix in prefixes]
    text = f'model_checkpoint_path: "{names[-1]}"\n' + "".join(f'all_model_checkpoint_paths: "{n}"\n' for n in names)
    write_text_atomically(directory / "checkpoint", text)


def _check_segments(segments: list[TrainingSegment]) -> None:
    if not segments:
        raise TrainingDataError("no training segments")
    cube = (SEGMENT_SIZE,) * 3
    for i, segment in enumerate(segments):
        if segment.density.shape != cube or segment.labels.shape != cube:
            raise TrainingDataError(f"training segment {i}: density {segment.density.shape} and labels "
                             f"{segment.labels.shape}, expected {cube} each")
        low, high = int(segment.labels.min()), int(segment.labels.max())
        if low < -1 or high >= len(CHANNELS):
            raise TrainingDataError(f"training segment {i}: labels from {low} to {high}, expected -1 (masked) "
                             f"to {len(CHANNELS) - 1}")

