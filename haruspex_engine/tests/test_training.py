"""Training the Haruspex network: augmentation, the published loss, Adam (ε 0.1), checkpoints annotate can load."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported anywhere in this module

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy import ndimage  # noqa: E402

from haruspex_engine import cli  # noqa: E402
from haruspex_engine.annotation.checkpoint import (  # noqa: E402
    NETWORK_TENSORS,
    checkpoint_layout,
    data_path,
    index_path,
    published_layout,
    read_network_weights,
)
from haruspex_engine.annotation.network import HaruspexNetwork, network_logits  # noqa: E402
from haruspex_engine.devices import import_tensorflow  # noqa: E402
from haruspex_engine.maps import read_map, write_map  # noqa: E402
from haruspex_engine.training.augment import (  # noqa: E402
    MAX_OFFSET,
    cube_rotations,
    draw_augmentation,
    input_and_target,
    rotate,
)
from haruspex_engine.training.segments import TrainingSegment, save_segments  # noqa: E402
from haruspex_engine.training.train import (  # noqa: E402
    Adam,
    TrainingDataError,
    TrainingResumeError,
    _write_checkpoint_state,
    initial_weights,
    train,
    weighted_loss,
)

tf = import_tensorflow()
PUBLISHED = Path(__file__).resolve().parents[3] / "shared" / "models" / "haruspex"
PUBLISHED_DATA_BYTES = 72_417_088
STEPS, EVERY = 20, 10


def _segments(count: int = 3, seed: int = 0) -> list[TrainingSegment]:
    """Smooth random 70³ densities (r.m.s. 3) labelled by level: helix above 2.4, sheet below -2.4, masked in
    between 1.8 and 2.4 in absolute value, unassigned elsewhere: a rule the network can learn from the density."""
    rng = np.random.default_rng(seed)
    segments = []
    for _ in range(count):
        density = ndimage.gaussian_filter(rng.normal(size=(70, 70, 70)), 2.0)
        density = (3 * density / density.std()).astype(np.float32)
        labels = np.full(density.shape, 3, np.int8)
        labels[density > 2.4] = 1
        labels[density < -2.4] = 0
        labels[(np.abs(density) > 1.8) & (np.abs(density) <= 2.4)] = -1
        segments.append(TrainingSegment(density=density, labels=labels, corner=(0, 0, 0)))
    return segments


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """20 steps of batch 2 from fresh weights, checkpoints every 10 steps, only the latest kept."""
    prefix = tmp_path_factory.mktemp("run") / "model.ckpt"
    report = train(_segments(), steps=STEPS, batch_size=2, seed=0, output_prefix=prefix, checkpoint_every=EVERY,
                   keep=1, progress=False)
    return report, prefix


# --- augmentation ------------------------------------------------------------------------------------------------

def test_there_are_24_distinct_proper_rotations_closed_under_composition():
    rotations = cube_rotations()
    keys = {r.tobytes() for r in rotations}
    assert rotations.shape == (24, 3, 3) and len(keys) == 24
    assert np.allclose([np.linalg.det(r) for r in rotations], 1.0)
    assert all((a @ b).tobytes() in keys for a in rotations for b in rotations)
    assert np.eye(3, dtype=int).tobytes() in keys


def test_rotating_an_array_moves_each_voxel_as_its_matrix_says():
    rng = np.random.default_rng(1)
    n, centre = 7, 3
    cubes = rng.normal(size=(2, n, n, n))  # a leading batch axis is kept
    rotations = cube_rotations()
    for r in rotations:
        p = np.array([1, 5, 2])
        q = r @ (p - centre) + centre
        assert rotate(cubes, r)[(1, *q)] == cubes[(1, *p)]
    a, b = rotations[5], rotations[17]
    assert np.array_equal(rotate(rotate(cubes, a), b), rotate(cubes, b @ a))
    with pytest.raises(ValueError, match="cubes"):
        rotate(np.zeros((4, 4, 5)), a)


def test_crop_takes_the_input_at_the_offset_and_the_target_at_its_centre():
    volume = np.arange(70**3).reshape(70, 70, 70)
    offset = (0, 29, 13)
    x, y = input_and_target(volume[np.newaxis], volume[np.newaxis], offset)
    assert x.shape == (1, 40, 40, 40) and y.shape == (1, 20, 20, 20)
    assert x[0, 0, 0, 0] == volume[0, 29, 13] and x[0, -1, -1, -1] == volume[39, 68, 52]
    assert y[0, 0, 0, 0] == volume[10, 39, 23]
    assert np.array_equal(y[0], x[0, 10:30, 10:30, 10:30])


def test_augmentation_draws_every_rotation_and_offsets_in_0_to_29():
    rng = np.random.default_rng(0)
    draws = [draw_augmentation(rng) for _ in range(2000)]
    assert len({r.tobytes() for r, _ in draws}) == 24
    offsets = np.array([o for _, o in draws])
    assert MAX_OFFSET == 30 and offsets.min() == 0 and offsets.max() == 29


# --- loss and optimiser ------------------------------------------------------------------------------------------

def _cross_entropy(logits: np.ndarray, label: int) -> float:
    return float(np.log(np.exp(logits).sum()) - logits[label])


def test_loss_weights_each_voxel_by_its_true_or_predicted_class_and_skips_masked_ones():
    logits = np.array([[0.0, 0.5, 0.0, 2.0],    # true helix, predicted unassigned -> weight 16
                       [0.1, 0.0, 0.0, 1.0],    # true unassigned, predicted unassigned -> weight 1
                       [3.0, 0.0, 0.0, 1.0],    # true unassigned, predicted sheet -> weight 16
                       [0.0, 9.0, 0.0, 0.0]],   # masked -> weight 0, not counted
                      np.float32)
    labels = np.array([1, 3, 3, -1], np.int32)
    expected = (16 * _cross_entropy(logits[0], 1) + _cross_entropy(logits[1], 3)
                + 16 * _cross_entropy(logits[2], 3)) / 3
    assert float(weighted_loss(tf.constant(logits), tf.constant(labels))) == pytest.approx(expected, rel=1e-6)
    assert float(weighted_loss(tf.constant(logits[:2]), tf.constant([-1, -1], dtype=tf.int32))) == 0.0


def test_adam_step_matches_keras_adam_and_the_formula_with_epsilon_0_1():
    name = "conv3d_7/bias"
    start = np.array([0.5, -1.0, 2.0, 0.0], np.float32)
    gradients = [np.array([0.3, -0.02, 1.5, 0.0], np.float32), np.array([-0.1, 0.2, 0.4, 1e-3], np.float32)]
    ours = tf.Variable(start)
    adam = Adam({name: ours}, learning_rate=1e-3, epsilon=0.1)
    keras_var = tf.Variable(start)
    keras_adam = tf.keras.optimizers.Adam(learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=0.1)
    for g in gradients:
        adam.apply({name: tf.constant(g)})
        keras_adam.apply_gradients([(tf.constant(g), keras_var)])
    np.testing.assert_allclose(ours.numpy(), keras_var.numpy(), rtol=1e-6, atol=1e-9)

    g1, g2 = (g.astype(np.float64) for g in gradients)
    m = 0.1 * g1
    v = 0.001 * g1**2
    m, v = 0.9 * m + 0.1 * g2, 0.999 * v + 0.001 * g2**2
    lr_t = 1e-3 * np.sqrt(1 - 0.999**2) / (1 - 0.9**2)
    w1 = start - 1e-3 * np.sqrt(1 - 0.999) / (1 - 0.9) * (0.1 * g1) / (np.sqrt(0.001 * g1**2) + 0.1)
    np.testing.assert_allclose(ours.numpy(), w1 - lr_t * m / (np.sqrt(v) + 0.1), rtol=1e-5, atol=1e-8)
    slots = adam.slots()
    np.testing.assert_allclose(slots[f"{name}/Adam"], m, rtol=1e-5)
    np.testing.assert_allclose(slots[f"{name}/Adam_1"], v, rtol=1e-5)
    assert slots["beta1_power"] == pytest.approx(0.9**3) and slots["beta2_power"] == pytest.approx(0.999**3)


def test_training_differentiates_the_published_forward_pass():
    """The training forward pass on variables is the engine's direct (published-graph) path, bit for bit."""
    weights = initial_weights(3)
    boxes = _segments(1)[0].density[np.newaxis, 5:45, 10:50, 20:60]
    direct = HaruspexNetwork(weights, algorithm="direct").probabilities(boxes)
    variables = {name: tf.Variable(value) for name, value in weights.items()}
    trained_path = tf.nn.softmax(network_logits(tf.constant(boxes[..., np.newaxis]), variables)).numpy()
    assert np.array_equal(trained_path, direct)


# --- training runs -----------------------------------------------------------------------------------------------

def test_loss_decreases_over_twenty_steps(trained):
    report, _ = trained
    assert len(report.losses) == STEPS and report.first_step == 0 and report.final_step == STEPS
    assert np.mean(report.losses[-5:]) < 0.5 * np.mean(report.losses[:5]), report.losses
    assert report.seconds > 0 and report.seconds_per_step > 0 and report.peak_rss_bytes > 100e6


def test_training_is_deterministic_for_a_seed(trained, tmp_path):
    report, _ = trained
    again = train(_segments(), steps=2, batch_size=2, seed=0, output_prefix=tmp_path / "model.ckpt", progress=False)
    assert again.losses == report.losses[:2]


def test_only_the_latest_checkpoints_are_kept_and_listed(trained):
    report, prefix = trained
    latest = Path(f"{prefix}-{STEPS}")
    assert report.checkpoints == [str(latest)]
    assert index_path(latest).is_file() and data_path(latest).is_file()
    assert not index_path(f"{prefix}-{EVERY}").exists() and not data_path(f"{prefix}-{EVERY}").exists()
    assert tf.train.latest_checkpoint(str(prefix.parent)) == str(latest)
    name = f"model.ckpt-{STEPS}"
    state = f'model_checkpoint_path: "{name}"\nall_model_checkpoint_paths: "{name}"\n'
    assert (prefix.parent / "checkpoint").read_text() == state


def test_checkpoint_has_the_published_layout_with_adam_state_and_step(trained):
    _, prefix = trained
    latest = f"{prefix}-{STEPS}"
    reader = tf.train.load_checkpoint(latest)
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    layout = published_layout()
    assert set(shapes) == set(layout)
    assert all(tuple(shapes[n]) == shape and dtypes[n].as_numpy_dtype == dtype for n, (dtype, shape) in layout.items())
    assert data_path(latest).stat().st_size == PUBLISHED_DATA_BYTES
    with open(data_path(latest), "rb") as data:  # global_step is the last tensor, as in the published file
        data.seek(PUBLISHED_DATA_BYTES - 8)
        assert int(np.frombuffer(data.read(8), "<i8")[0]) == STEPS
    assert reader.get_tensor("beta1_power") == pytest.approx(0.9 ** (STEPS + 1))
    assert reader.get_tensor("beta2_power") == pytest.approx(0.999 ** (STEPS + 1))
    assert np.abs(reader.get_tensor("conv3d_7/kernel/Adam_1")).max() > 0


def test_checkpoint_bytes_lie_where_the_published_index_puts_them(trained):
    table = PUBLISHED / "expected_checkpoint_layout.tsv"
    if not table.is_file():
        pytest.skip(f"{table} is absent (../shared/models/haruspex not available)")
    latest = f"{trained[1]}-{STEPS}"
    reader = tf.train.load_checkpoint(latest)
    rows = [line.split("\t") for line in table.read_text().splitlines()
            if line and not line.startswith(("#", "variable"))]
    assert [row[0] for row in rows] == sorted(published_layout())
    data = data_path(latest).read_bytes()
    for name, _, _, offset, size, *_ in rows:
        stored = data[int(offset): int(offset) + int(size)]
        assert stored == np.ascontiguousarray(reader.get_tensor(name)).astype(published_layout()[name][0]).tobytes()
    assert index_path(latest).stat().st_size == (PUBLISHED / "model.ckpt-40000.index").stat().st_size


def test_annotate_loads_the_trained_checkpoint(trained, tmp_path):
    _, prefix = trained
    latest = Path(f"{prefix}-{STEPS}")
    density = _segments(1, seed=5)[0].density[:44, :41, :40]
    write_map(tmp_path / "small.mrc", density, (1.1, 1.1, 1.1), (3.0, 4.0, 5.0))
    status = cli.main(["annotate", str(tmp_path / "small.mrc"), "-o", str(tmp_path / "out"), "--checkpoint",
                       str(latest), "--algorithm", "direct", "--device", "cpu", "-q"])
    assert status == 0
    summary = json.loads((tmp_path / "out" / "small_summary.json").read_text())
    assert summary["checkpoint"] == str(latest.resolve()) and summary["algorithm"] == "direct"
    assert not any("RANDOM TEST WEIGHTS" in w for w in summary["warnings"])
    total = sum(read_map(summary["outputs"][c]).data for c in ("helix", "sheet", "nucleic", "unassigned"))
    np.testing.assert_allclose(total, 1.0, atol=1e-5)
    assert read_map(summary["outputs"]["helix"]).data.shape == density.shape


def test_train_command_fine_tunes_from_a_checkpoint_and_reports_last(trained, tmp_path):
    _, prefix = trained
    start = f"{prefix}-{STEPS}"
    save_segments(_segments(2, seed=9), tmp_path / "segments")
    output = tmp_path / "tuned" / "model.ckpt"
    status = cli.main(["train", str(tmp_path / "segments"), "-o", str(output), "--steps", "1", "--batch-size", "1",
                       "--init-checkpoint", start, "--device", "cpu", "-q"])
    assert status == 0
    report = json.loads((output.parent / "training_summary.json").read_text())
    assert report["first_step"] == STEPS and report["final_step"] == STEPS + 1 and len(report["losses"]) == 1
    assert report["checkpoints"] == [f"{output}-{STEPS + 1}"] and report["segments"] == 2
    reader = tf.train.load_checkpoint(f"{output}-{STEPS + 1}")
    assert reader.get_tensor("beta1_power") == pytest.approx(0.9 ** (STEPS + 2))
    before, after = read_network_weights(start), read_network_weights(f"{output}-{STEPS + 1}")
    change = max(float(np.abs(after[n] - before[n]).max()) for n in NETWORK_TENSORS)
    assert 0 < change < 0.01  # one Adam step from the loaded weights, not a fresh start


def test_unusable_training_data_is_refused_with_its_directory(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert cli.main(["train", str(tmp_path / "empty"), "-o", str(tmp_path / "m" / "model.ckpt")]) == 1
    assert f"{tmp_path / 'empty'}: no training segment files" in capsys.readouterr().err
    bad = _segments(1)[0]
    bad.labels[0, 0, 0] = 7
    with pytest.raises(TrainingDataError, match="training segment 0: labels from -1 to 7"):
        train([bad], steps=1,
              output_prefix=tmp_path / "m" / "model.ckpt", progress=False)
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())


def test_train_command_trains_a_narrow_network_that_annotate_reads(tmp_path):
    save_segments(_segments(2, seed=4), tmp_path / "segments")
    output = tmp_path / "narrow" / "model.ckpt"
    status = cli.main(["train", str(tmp_path / "segments"), "-o", str(output), "--steps", "2", "--batch-size", "1",
                       "--width", "4", "--epsilon", "1e-3", "--device", "cpu", "-q"])
    assert status == 0
    report = json.loads((output.parent / "training_summary.json").read_text())
    assert report["width"] == 4 and report["epsilon"] == 1e-3
    reader = tf.train.load_checkpoint(f"{output}-2")
    shapes = {name: tuple(shape) for name, shape in reader.get_variable_to_shape_map().items()}
    assert shapes == {name: shape for name, (_, shape) in checkpoint_layout(4).items()}
    density = _segments(1, seed=6)[0].density[:40, :40, :40]
    write_map(tmp_path / "box.mrc", density, (1.1, 1.1, 1.1))
    assert cli.main(["annotate", str(tmp_path / "box.mrc"), "-o", str(tmp_path / "out"), "--checkpoint",
                     f"{output}-2", "--device", "cpu", "-q"]) == 0
    summary = json.loads((tmp_path / "out" / "box_summary.json").read_text())
    assert summary["network_width"] == 4 and summary["network"] == "checkpoint"


def _interrupted_after(prefix: Path, step: int) -> None:
    """Leave a run's folder as a kill right after checkpoint ``step`` would: later checkpoints gone, state file
    listing the checkpoints up to ``step``."""
    kept = []
    for index in sorted(prefix.parent.glob(f"{prefix.name}-*.index")):
        name = index.name[: -len(".index")]
        if int(name.rsplit("-", 1)[1]) > step:
            index.unlink()
            data_path(prefix.parent / name).unlink()
        else:
            kept.append(str(prefix.parent / name))
    _write_checkpoint_state(prefix.parent, kept)


def test_an_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path):
    segments = _segments(2, seed=11)
    settings = dict(steps=4, batch_size=1, width=2, seed=5, checkpoint_every=2, keep=5, progress=False)
    whole = train(segments, output_prefix=tmp_path / "whole" / "model.ckpt", **settings)
    cut = tmp_path / "cut" / "model.ckpt"
    train(segments, output_prefix=cut, **settings)
    _interrupted_after(cut, 2)
    resumed = train(segments, output_prefix=cut, resume=True, **settings)
    assert resumed.resumed_from_step == 2 and resumed.first_step == 0 and resumed.final_step == 4
    assert resumed.losses == whole.losses[2:]
    assert resumed.checkpoints == [f"{cut}-2", f"{cut}-4"]
    final, expected = read_network_weights(f"{cut}-4"), read_network_weights(tmp_path / "whole" / "model.ckpt-4")
    for name in expected:
        np.testing.assert_array_equal(final[name], expected[name])


def test_resuming_with_more_steps_extends_a_finished_run_to_the_longer_run(tmp_path):
    segments = _segments(2, seed=13)
    settings = dict(batch_size=1, width=2, seed=2, checkpoint_every=3, keep=5, progress=False)
    longer = train(segments, output_prefix=tmp_path / "long" / "model.ckpt", steps=5, **settings)
    short = tmp_path / "short" / "model.ckpt"
    train(segments, output_prefix=short, steps=3, **settings)
    extended = train(segments, output_prefix=short, steps=5, resume=True, **settings)
    assert extended.resumed_from_step == 3 and extended.losses == longer.losses[3:]
    final, expected = read_network_weights(f"{short}-5"), read_network_weights(tmp_path / "long" / "model.ckpt-5")
    for name in expected:
        np.testing.assert_array_equal(final[name], expected[name])
    with pytest.raises(TrainingResumeError, match="already 5 steps long; ask for at least that many, not 4"):
        train(segments, output_prefix=short, steps=4, resume=True, **settings)


def test_resume_refuses_other_settings_and_starts_afresh_without_checkpoints(tmp_path, capsys):
    segments = _segments(1, seed=12)
    prefix = tmp_path / "run" / "model.ckpt"
    first = train(segments, output_prefix=prefix, steps=2, batch_size=1, width=2, resume=True, progress=False)
    assert first.resumed_from_step is None and first.final_step == 2
    with pytest.raises(TrainingResumeError, match=r"model\.ckpt\.run\.json: the interrupted run had other settings "
                                                  r"\(batch_size 1 -> 2\)"):
        train(segments, output_prefix=prefix, steps=2, batch_size=2, width=2, resume=True, progress=False)
    with pytest.raises(TrainingResumeError, match=r"\(width 2 -> 4\)"):
        train(segments, output_prefix=prefix, steps=2, batch_size=1, width=4, resume=True, progress=False)
    save_segments(segments, tmp_path / "segments")
    assert cli.main(["train", str(tmp_path / "segments"), "-o", str(prefix), "--steps", "2", "--batch-size", "1",
                     "--width", "2", "--resume", "--device", "cpu", "-q"]) == 0
    assert "0 steps" in capsys.readouterr().err  # already complete: nothing left to run
