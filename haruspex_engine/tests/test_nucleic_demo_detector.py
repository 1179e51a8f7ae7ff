"""The bundled demo detector: its network, that the shipped weights detect a simulated RNA, `detect-na --demo-model`
end to end, and that its training resumes exactly where a killed run stopped."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from haruspex_engine.maps import write_map
from haruspex_engine.nucleic.building.attach import base_vectors
from haruspex_engine.nucleic.building.nucleotides import PHOSPHATE_ATOMS, SUGAR_ATOMS
from haruspex_engine.nucleic.classes import BASE_TYPES, STAGE2_CLASSES
from haruspex_engine.nucleic.detection.demo_detector import DEMO_DETECTOR_CARD, DEMO_DETECTOR_LABEL
from haruspex_engine.nucleic.detection.demo_network import (
    BASE_TYPE_CHANNELS,
    POSITIVE_WEIGHT,
    DemoDetector,
    DemoPredictor,
    base_type_network_from,
    demo_predictor,
    load_base_type_network,
    load_demo_detector,
)
from haruspex_engine.nucleic.detection.demo_training import (
    base_type_loss,
    simulated_sample,
    train_base_type_network,
    train_demo_detector,
)
from haruspex_engine.nucleic.detection.detect import detect_with_one_network
from haruspex_engine.nucleic.detection.preprocess import WorkingMap
from haruspex_engine.testing.oracle_maps import base_type
from haruspex_engine.testing.rna_models import ideal_rna


@pytest.fixture(scope="module")
def rna_sample():
    return simulated_sample(ideal_rna(), np.random.default_rng(7), (3.5, 3.5), (0.25, 0.25))


def test_the_predictor_gives_eight_probability_maps_per_box():
    predictor = DemoPredictor(DemoDetector().eval())
    probabilities = predictor(np.random.default_rng(0).random((2, 16, 16, 16), dtype=np.float32))
    assert probabilities.shape == (2, len(STAGE2_CLASSES), 16, 16, 16) and probabilities.dtype == np.float32
    assert 0.0 <= probabilities.min() and probabilities.max() <= 1.0
    with pytest.raises(ValueError, match="divisible by 8"):
        predictor(np.zeros((1, 20, 20, 20), np.float32))


def test_the_predictor_reads_the_target_probability_the_weighted_loss_is_optimal_at():
    # The loss -[w t log p + (1 - t) log(1 - p)] is least at p = w t / (w t + 1 - t); a network that outputs that
    # optimum's logit everywhere must be read back as t.
    target = 0.3
    optimum = POSITIVE_WEIGHT * target / (POSITIVE_WEIGHT * target + 1 - target)
    network = DemoDetector().eval()
    with torch.no_grad():
        network.head.weight.zero_()
        network.head.bias.fill_(float(np.log(optimum / (1 - optimum))))
    probabilities = DemoPredictor(network)(np.zeros((1, 8, 8, 8), np.float32))
    np.testing.assert_allclose(probabilities, target, atol=1e-6)


def test_the_base_type_maps_are_the_base_map_times_the_type_networks_softmax():
    torch.manual_seed(0)
    detector = DemoDetector().eval()
    types = DemoDetector(outputs=len(BASE_TYPES)).eval()
    with torch.no_grad():
        types.head.weight.zero_()
        types.head.bias.copy_(torch.tensor([0.0, 0.0, 0.0, np.log(3.0)]))  # G three times as likely as each other
    boxes = np.random.default_rng(1).random((1, 16, 16, 16), dtype=np.float32)
    alone, combined = DemoPredictor(detector)(boxes), DemoPredictor(detector, types)(boxes)
    others = [c for c in range(len(STAGE2_CLASSES)) if c not in BASE_TYPE_CHANNELS]
    np.testing.assert_array_equal(combined[:, others], alone[:, others])
    base = alone[:, STAGE2_CLASSES.index("base")]
    np.testing.assert_allclose(combined[:, STAGE2_CLASSES.index("G")], base / 2, rtol=1e-5)
    np.testing.assert_allclose(combined[:, STAGE2_CLASSES.index("A")], base / 6, rtol=1e-5)
    np.testing.assert_allclose(combined[:, BASE_TYPE_CHANNELS].sum(axis=1), base, rtol=1e-5)


def test_the_base_type_network_starts_as_the_detectors_base_type_logits():
    torch.manual_seed(0)
    detector = DemoDetector().eval()
    copy = base_type_network_from(detector).eval()
    density = torch.from_numpy(np.random.default_rng(2).random((1, 1, 16, 16, 16), dtype=np.float32))
    with torch.no_grad():
        torch.testing.assert_close(copy(density), detector(density)[:, BASE_TYPE_CHANNELS])


def test_the_base_type_loss_reads_only_labelled_base_voxels():
    targets = torch.zeros((1, len(STAGE2_CLASSES), 2, 2, 2))
    logits = torch.zeros((1, len(BASE_TYPES), 2, 2, 2), requires_grad=True)
    assert float(base_type_loss(logits, targets)) == 0.0  # no base voxel: nothing to learn, still differentiable
    base_type_loss(logits, targets).backward()
    targets[0, STAGE2_CLASSES.index("base"), 0, 0, 0] = targets[0, STAGE2_CLASSES.index("C"), 0, 0, 0] = 0.9
    targets[0, STAGE2_CLASSES.index("C"), 1, 1, 1] = 0.9  # a type without a base: not counted
    with torch.no_grad():
        logits[0, BASE_TYPES.index("C"), 0, 0, 0] = 2.0
    expected = -np.log(np.exp(2.0) / (np.exp(2.0) + 3))
    assert float(base_type_loss(logits, targets)) == pytest.approx(expected, rel=1e-6)


def test_the_shipped_weights_find_the_sugars_and_phosphates_of_a_simulated_rna(rna_sample):
    working = WorkingMap(rna_sample.density, rna_sample.origin, 0.0, (0, 0, 0), rna_sample.density.shape, 1.0)
    detection = detect_with_one_network(working, demo_predictor(), progress=False)
    assert detection.stage1 is None and detection.stage2.shape == (8, *rna_sample.density.shape)
    for name in ("sugar", "phosphate", "base"):
        channel = STAGE2_CLASSES.index(name)
        on_atoms = rna_sample.targets[channel] > 200  # within ~0.6 Å of an atom of the class
        far = rna_sample.targets[[STAGE2_CLASSES.index(c) for c in ("sugar", "phosphate", "base")]].max(0) == 0
        assert detection.stage2[channel][on_atoms].mean() > 0.5, name
        assert detection.stage2[channel][far].mean() < 0.05, name
    protein = detection.stage2[STAGE2_CLASSES.index("protein")]
    assert np.mean(protein > 0.5) < 0.01  # no protein in an RNA-only map


def test_the_shipped_base_type_maps_tell_purines_from_pyrimidines(rna_sample):
    # At each base's centre the largest of the four base-type maps names its class (purine or pyrimidine) for 25 of
    # the 30 bases (17 purines: naming every base a purine scores 0.57); the U-Net's own type maps scored 0.57.
    working = WorkingMap(rna_sample.density, rna_sample.origin, 0.0, (0, 0, 0), rna_sample.density.shape, 1.0)
    detection = detect_with_one_network(working, demo_predictor(), progress=False)
    centres, truth = [], []
    for residue in ideal_rna()[0][0]:
        atoms = [a.pos.tolist() for a in residue if a.name not in SUGAR_ATOMS and a.name not in PHOSPHATE_ATOMS]
        centres.append(np.mean(atoms, axis=0))
        truth.append(BASE_TYPES.index(base_type(residue)))
    called = np.argmax(base_vectors(np.array(centres), detection.stage2, rna_sample.origin), axis=1)
    purines = [BASE_TYPES.index("A"), BASE_TYPES.index("G")]
    assert np.mean(np.isin(called, purines) == np.isin(truth, purines)) >= 0.75


def test_the_card_describes_the_shipped_network():
    card = json.loads(DEMO_DETECTOR_CARD.read_text())
    assert card["what"].startswith("Demo detection network: NOT CryoREAD")
    assert card["parameters"] == sum(p.numel() for p in load_demo_detector().parameters())
    assert card["base_type_parameters"] == sum(p.numel() for p in load_base_type_network().parameters())
    assert "6v5b" in card["data"]["held_out"] and "6v5b" not in card["data"]["train_entries"]


def _run(*args: str, command: str = "detect-na") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARUSPEX_")}
    return subprocess.run([sys.executable, "-m", "haruspex_engine", command, *args], env=env,
                          capture_output=True, text=True, timeout=600)


def test_detect_na_with_the_demo_model_labels_every_output(tmp_path, rna_sample):
    write_map(tmp_path / "rna.mrc", rna_sample.density, (1.0, 1.0, 1.0), rna_sample.origin)
    result = _run(str(tmp_path / "rna.mrc"), "--resolution", "3.5", "--demo-model", "-o", str(tmp_path / "out"),
                  "--device", "cpu", "-q")
    assert result.returncode == 0, result.stderr
    assert "DEMO MODEL" in result.stderr
    summary = json.loads((tmp_path / "out" / "rna_summary.json").read_text())
    assert summary["network"] == "demo" and summary["weights"]["set"] == "demo"
    assert DEMO_DETECTOR_LABEL in summary["warnings"] and summary["stage1_classes"] == []
    assert set(summary["outputs"]) == {*STAGE2_CLASSES, "working"}
    assert summary["volume_above_0.5_A3"]["sugar"] > 100
    for option, source in (((), "anchored"), (("--sugar-nodes", "mean-shift"), "mean-shift")):
        built = _run(str(tmp_path / "out" / "rna_summary.json"), *option, "--prefix", source, command="build-na")
        assert built.returncode == 0, built.stderr
        report = json.loads((tmp_path / "out" / f"{source}_build.json").read_text())
        assert report["node_filter"]["sugar_nodes"] == source  # anchored by default

    refused = _run(str(tmp_path / "rna.mrc"), "--resolution", "3.5", "--demo-model", "--stage1-maps", "-o",
                   str(tmp_path / "out2"))
    assert refused.returncode == 1 and "no stage-1 maps" in refused.stderr.strip().splitlines()[-1]
    both = _run(str(tmp_path / "rna.mrc"), "--resolution", "3.5", "--demo-model", "--weights-dir", str(tmp_path))
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
    far = _run(str(tmp_path / "rna.mrc"), "--resolution", "8", "--demo-model", "-o", str(tmp_path / "out3"), "-q")
    assert far.returncode == 0 and "trained on maps at 2.5-5 Å; at 8 Å" in far.stderr


def test_training_resumed_after_a_kill_ends_where_an_uninterrupted_run_ends(tmp_path, rna_sample):
    settings = dict(steps=3, batch_size=1, crop=16, checkpoint_every=1, progress=False)
    straight, report = train_demo_detector([rna_sample], tmp_path / "straight", **settings)
    assert report.resumed_from is None and len(report.losses) == 3
    train_demo_detector([rna_sample], tmp_path / "resumed", **{**settings, "steps": 2})  # "killed" after step 2
    resumed, report = train_demo_detector([rna_sample], tmp_path / "resumed", **settings)
    assert report.resumed_from == 2 and report.steps == 3 and len(report.losses) == 3
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), name


def test_base_type_fine_tuning_resumed_after_a_kill_ends_where_an_uninterrupted_run_ends(tmp_path, rna_sample):
    torch.manual_seed(0)
    detector = DemoDetector().eval()
    settings = dict(steps=3, batch_size=1, crop=16, checkpoint_every=1, progress=False)
    straight, report = train_base_type_network([rna_sample], tmp_path / "straight", detector, **settings)
    assert straight.head.out_channels == len(BASE_TYPES) and len(report.losses) == 3
    train_base_type_network([rna_sample], tmp_path / "resumed", detector, **{**settings, "steps": 2})
    resumed, report = train_base_type_network([rna_sample], tmp_path / "resumed", detector, **settings)
    assert report.resumed_from == 2 and report.steps == 3
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), name
