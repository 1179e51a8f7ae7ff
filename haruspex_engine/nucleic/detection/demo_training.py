"""Training the demo detector (``demo_network``) on simulated maps: samples, random crops, a resumable loop.

A sample is one simulated working map and its eight target maps: ``testing.oracle_maps`` with no corruption of the
class maps gives the targets (per class, Gaussian blobs of σ TARGET_BLOB_SIGMA_A and peak 1 on that class's atoms:
what a perfect detector outputs; wider than the atoms' 1 Å, as a network at 2.5-5 Å cannot place atoms closer, and
within the 1.2-1.8 Å the builder is tested on), and its density, simulated with gemmi at a drawn resolution with
correlated noise and normalised as detect-na's working map, is the input. Training crops are cubes cut around
nucleic-acid voxels (most), protein voxels and anywhere, turned by random multiples of 90° (never mirrored: a
mirrored nucleotide has the wrong hand). The loss is the binary cross-entropy of each class map against its target,
its positive term weighted POSITIVE_WEIGHT: a class covers a few per cent of the voxels, and unweighted the network
settles on timid maps (peaks of 0.2-0.3 after 1,500 steps, below every threshold the builder applies); the
predictor takes the weight out again (``demo_network``). The base-type network is fine-tuned from the trained
detector on ``base_type_loss`` (``train_base_type_network``). The loop saves its whole state (network, optimizer, step,
losses, random generator) every ``checkpoint_every`` steps, so a killed run resumes where it was.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import gemmi
import numpy as np
import torch

from haruspex_engine.atomic_files import atomic_path
from haruspex_engine.nucleic.classes import STAGE2_CLASSES
from haruspex_engine.nucleic.detection.demo_network import (
    BASE_TYPE_CHANNELS,
    POSITIVE_WEIGHT,
    DemoDetector,
    base_type_network_from,
)
from haruspex_engine.progress import Progress
from haruspex_engine.testing.oracle_maps import Corruption, oracle_maps

#: Target maps are stored as probability × TARGET_SCALE in uint8.
TARGET_SCALE = 255
#: Å: σ of the target blobs.
TARGET_BLOB_SIGMA_A = 1.5
#: Share of crops centred on a nucleic-acid voxel and on a protein voxel (the rest anywhere in the map).
NUCLEIC_CENTRED, PROTEIN_CENTRED = 0.6, 0.2
#: The same shares for the base-type network, which learns only on base voxels.
NUCLEIC_CENTRED_TYPES = (0.9, 0.05)
_NUCLEIC_CHANNELS = [STAGE2_CLASSES.index(name) for name in ("sugar", "phosphate", "base")]
_PROTEIN_CHANNEL = STAGE2_CLASSES.index("protein")
#: File of the loop's saved state in its work folder.
STATE_NAME = "training_state.pt"


@dataclass
class Sample:
    """density: float32 (Z, Y, X) normalised working map, 1 Å voxels; targets: uint8 (8, Z, Y, X), the
    STAGE2_CLASSES target probabilities × TARGET_SCALE; origin: (x, y, z) Å of voxel (0, 0, 0).
    resolution_A / density_noise: how the density was made."""

    density: np.ndarray
    targets: np.ndarray
    origin: tuple[float, float, float]
    resolution_A: float
    density_noise: float


def simulated_sample(structure: gemmi.Structure, rng: np.random.Generator,
                     resolution_A: tuple[float, float] = (2.5, 5.0),
                     density_noise: tuple[float, float] = (0.1, 0.5)) -> Sample:
    """A training or test sample of ``structure`` (module docstring); resolution (Å) and density noise (s.d.
    relative to the simulated map's near the atoms, smoothed σ 1.5 Å) drawn uniformly from the ranges."""
    resolution, noise = float(rng.uniform(*resolution_A)), float(rng.uniform(*density_noise))
    maps = oracle_maps(structure, Corruption(density_noise_sigma=noise, seed=int(rng.integers(2**31))),
                       resolution_A=resolution, blob_sigma_A=TARGET_BLOB_SIGMA_A)
    targets = np.round(np.clip(maps.stage2, 0.0, 1.0) * TARGET_SCALE).astype(np.uint8)
    return Sample(maps.density.astype(np.float32), targets, maps.origin, resolution, noise)


def random_crop(sample: Sample, size: int, rng: np.random.Generator,
                centred: tuple[float, float] = (NUCLEIC_CENTRED, PROTEIN_CENTRED)) -> tuple[np.ndarray, np.ndarray]:
    """A (size³) crop of the density and the (8, size³) float32 targets in [0, 1], centred on a nucleic-acid voxel,
    a protein voxel or anywhere with the shares ``centred`` (nucleic, protein; the rest anywhere) and turned by
    random multiples of 90°; maps smaller than the crop are padded with 0."""
    pad = [(0, max(0, size - n)) for n in sample.density.shape]
    density = np.pad(sample.density, pad)
    targets = np.pad(sample.targets, [(0, 0), *pad])
    draw = rng.random()
    if draw < sum(centred):
        channels = _NUCLEIC_CHANNELS if draw < centred[0] else [_PROTEIN_CHANNEL]
        candidates = np.argwhere(targets[channels].max(axis=0) > TARGET_SCALE // 2)
    else:
        candidates = np.zeros((0, 3), int)
    centre = (candidates[rng.integers(len(candidates))] if len(candidates)
              else np.array([rng.integers(n) for n in density.shape]))
    start = [int(np.clip(c - size // 2, 0, n - size)) for c, n in zip(centre, density.shape)]
    window = tuple(slice(s, s + size) for s in start)
    crop_density, crop_targets = density[window], targets[(slice(None), *window)].astype(np.float32) / TARGET_SCALE
    for _ in range(2):
        axes = tuple(int(a) for a in rng.choice(3, size=2, replace=False))
        turns = int(rng.integers(4))
        crop_density = np.rot90(crop_density, turns, axes)
        crop_targets = np.rot90(crop_targets, turns, tuple(a + 1 for a in axes))
    return np.ascontiguousarray(crop_density), np.ascontiguousarray(crop_targets)


@dataclass
class TrainingReport:
    """steps: done in total; losses: per step (every step since the start, across resumes); seconds: this run's
    training time; resumed_from: the step a killed run was resumed from (None: a fresh start)."""

    steps: int
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    resumed_from: int | None = None


def train_demo_detector(samples: list[Sample], work: str | os.PathLike, *, steps: int, batch_size: int = 4,
                        crop: int = 40, learning_rate: float = 1e-3, seed: int = 0, checkpoint_every: int = 100,
                        progress: bool = True) -> tuple[DemoDetector, TrainingReport]:
    """Train a DemoDetector for ``steps`` steps of ``batch_size`` crops (edge ``crop`` voxels, divisible by 8) with
    Adam, saving the loop's state to ``work``/STATE_NAME every ``checkpoint_every`` steps and at the end; a saved
    state there is resumed (the same settings are assumed). Returns the network (eval mode) and the report."""
    torch.manual_seed(seed)
    positive_weight = torch.full((len(STAGE2_CLASSES), 1, 1, 1), POSITIVE_WEIGHT)

    def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, pos_weight=positive_weight)

    return _train(DemoDetector(), loss, samples, work, steps=steps, batch_size=batch_size, crop=crop,
                  learning_rate=learning_rate, seed=seed, checkpoint_every=checkpoint_every, progress=progress,
                  centred=(NUCLEIC_CENTRED, PROTEIN_CENTRED))


def base_type_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy of the four base-type logits (B, 4, n, n, n; BASE_TYPES order) on the voxels where the
    base target and one base type's target exceed 1/2 (targets: (B, 8, n, n, n) in STAGE2_CLASSES order, in [0, 1]);
    zero (with a gradient) when a batch has no such voxel."""
    types = targets[:, BASE_TYPE_CHANNELS]
    on_base = (targets[:, STAGE2_CLASSES.index("base")] > 0.5) & (types.amax(dim=1) > 0.5)
    if not on_base.any():
        return logits.sum() * 0.0
    return torch.nn.functional.cross_entropy(logits.permute(0, 2, 3, 4, 1)[on_base], types.argmax(dim=1)[on_base])


def train_base_type_network(samples: list[Sample], work: str | os.PathLike, detector: DemoDetector, *, steps: int,
                            batch_size: int = 4, crop: int = 40, learning_rate: float = 1e-3, seed: int = 0,
                            checkpoint_every: int = 100, progress: bool = True) -> tuple[DemoDetector, TrainingReport]:
    """Fine-tune the base-type network (``demo_network`` module docstring) from ``detector``'s weights on
    ``base_type_loss``, with crops centred on nucleic acid (NUCLEIC_CENTRED_TYPES); otherwise as
    ``train_demo_detector`` (same saving and resuming, in ``work``)."""
    torch.manual_seed(seed)
    return _train(base_type_network_from(detector), base_type_loss, samples, work, steps=steps,
                  batch_size=batch_size, crop=crop, learning_rate=learning_rate, seed=seed,
                  checkpoint_every=checkpoint_every, progress=progress, centred=NUCLEIC_CENTRED_TYPES)


def _train(network: DemoDetector, loss_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
           samples: list[Sample], work: str | os.PathLike, *, steps: int, batch_size: int, crop: int,
           learning_rate: float, seed: int, checkpoint_every: int, progress: bool,
           centred: tuple[float, float]) -> tuple[DemoDetector, TrainingReport]:
    """The resumable Adam loop of both trainings: ``loss_of(logits, targets)`` on random crops (``random_crop``)."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate)
    rng = np.random.default_rng(seed)
    report = TrainingReport(steps=0)
    state_path = work / STATE_NAME
    if state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=False)  # our own file
        network.load_state_dict(state["network"])
        optimizer.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["rng"]
        report = TrainingReport(steps=state["step"], losses=list(state["losses"]), resumed_from=state["step"])
    network.train()
    bar = Progress(steps, "train", "step") if progress else None
    if bar:
        bar.update(report.steps)
    t0 = time.perf_counter()
    while report.steps < steps:
        crops = [random_crop(samples[int(rng.integers(len(samples)))], crop, rng, centred) for _ in range(batch_size)]
        density = torch.from_numpy(np.stack([c[0] for c in crops]))[:, None]
        targets = torch.from_numpy(np.stack([c[1] for c in crops]))
        optimizer.zero_grad()
        loss = loss_of(network(density), targets)
        loss.backward()
        optimizer.step()
        report.losses.append(float(loss.detach()))
        report.steps += 1
        if bar:
            bar.update(1)
        if report.steps % checkpoint_every == 0 or report.steps == steps:
            _save_state(state_path, network, optimizer, rng, report)
    if bar:
        bar.close()
    report.seconds = time.perf_counter() - t0
    return network.eval(), report


def _save_state(path: Path, network: DemoDetector, optimizer: torch.optim.Optimizer, rng: np.random.Generator,
                report: TrainingReport) -> None:
    with atomic_path(path) as partial:
        torch.save({"network": network.state_dict(), "optimizer": optimizer.state_dict(),
                    "rng": rng.bit_generator.state, "step": report.steps, "losses": report.losses}, partial)
