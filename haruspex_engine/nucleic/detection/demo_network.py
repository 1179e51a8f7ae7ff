"""The demo detection network: one small 3D U-Net from the normalised working map straight to the eight stage-2
classes. NOT CryoREAD's published networks.

CryoREAD detects in two stages of full-width UNet3+ networks (``networks.py``). This network stands in for both so
that nucleic-acid building can be tried without the published weights: trained by this project
(``scripts/make_demo_detector.py``) on maps simulated from nucleic-acid structures built in code and from deposited
ones, with protein beside them; its card (``demo_detector/demo_detector.json``, paths and label in
``demo_detector/__init__.py``) lists the data, settings and
metrics. Every output made with it is labelled DEMO MODEL.

Architecture: a U-Net of four levels (WIDTHS channels; two 3×3×3 convolution + batch norm + ReLU blocks per level,
2× max pooling down, trilinear 2× upsampling and concatenation with the level's encoder features up), then a 1×1×1
convolution to the eight STAGE2_CLASSES logits. Input (B, 1, n, n, n) with n divisible by 8; output logits
(B, 8, n, n, n); axes (box, channel, z, y, x) on the 1 Å working grid.

Probabilities: the training loss weights each class's positive term by POSITIVE_WEIGHT (``demo_training``), which
moves the loss's optimum from the target probability t to the odds w·t / (1 − t): the network's sigmoid reads high
(0.8 where the target is 0.5, 0.5 where it is 0.2), and its maps come out wide (sugar voxels above 0.5: precision
0.07–0.34 at recall 0.96–0.99 on held-out maps). ``DemoPredictor`` removes it exactly: probabilities are
sigmoid(logit − ln w).

Base types: the U-Net's own four base-type maps never learnt the types (at each base's centre the largest names its
type no more often than the types' frequencies; fine-tuning the whole network on a base-type term broke its sugar
and phosphate maps). A second network of the same architecture, its head cut to the four BASE_TYPES logits and
fine-tuned from the U-Net's weights on a softmax cross-entropy over base voxels (``demo_training``), gives the
probability of each type given a base; the predictor's type maps are the U-Net's base probability × that softmax:
P(base of type t) = P(base) · P(t | base).
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn

from haruspex_engine.devices import DeviceOutOfMemory
from haruspex_engine.nucleic.classes import BASE_TYPES, STAGE2_CLASSES
from haruspex_engine.nucleic.detection.demo_detector import DEMO_BASE_TYPE_WEIGHTS, DEMO_DETECTOR_WEIGHTS

#: Channels per level, finest first.
WIDTHS = (12, 24, 48, 64)
#: Weight of the positive term of the training loss; the predictor subtracts its log from the logits.
POSITIVE_WEIGHT = 4.0
#: STAGE2_CLASSES channels of the four base types, in BASE_TYPES order.
BASE_TYPE_CHANNELS = [STAGE2_CLASSES.index(name) for name in BASE_TYPES]
_BASE_CHANNEL = STAGE2_CLASSES.index("base")


def _block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(in_channels, out_channels, 3, padding=1), nn.BatchNorm3d(out_channels), nn.ReLU(inplace=True),
        nn.Conv3d(out_channels, out_channels, 3, padding=1), nn.BatchNorm3d(out_channels), nn.ReLU(inplace=True),
    )


class DemoDetector(nn.Module):
    """The demo U-Net (module docstring): (B, 1, n, n, n) normalised density -> (B, outputs, n, n, n) logits; 8
    outputs (STAGE2_CLASSES) for the detector, 4 (BASE_TYPES) for the base-type network."""

    def __init__(self, widths: tuple[int, ...] = WIDTHS, outputs: int = len(STAGE2_CLASSES)):
        super().__init__()
        self.down = nn.ModuleList(_block(c_in, c_out) for c_in, c_out in zip((1, *widths[:-1]), widths))
        self.up = nn.ModuleList(_block(widths[k + 1] + widths[k], widths[k]) for k in range(len(widths) - 1))
        self.head = nn.Conv3d(widths[0], outputs, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level, block in enumerate(self.down):
            x = block(x if level == 0 else nn.functional.max_pool3d(x, 2))
            skips.append(x)
        for level in range(len(self.up) - 1, -1, -1):
            x = nn.functional.interpolate(x, scale_factor=2, mode="trilinear", align_corners=False)
            x = self.up[level](torch.cat([x, skips[level]], dim=1))
        return self.head(x)


def load_demo_detector(path: str | Path = DEMO_DETECTOR_WEIGHTS) -> DemoDetector:
    """The demo network with the weights at ``path`` (a state dict saved by the training script), in eval mode."""
    return _load_network(path, len(STAGE2_CLASSES))


def base_type_network_from(detector: DemoDetector) -> DemoDetector:
    """A base-type network to fine-tune: a copy of ``detector`` whose head keeps only its four base-type rows."""
    network = copy.deepcopy(detector)
    head = nn.Conv3d(detector.head.in_channels, len(BASE_TYPES), 1)
    with torch.no_grad():
        head.weight.copy_(detector.head.weight[BASE_TYPE_CHANNELS])
        head.bias.copy_(detector.head.bias[BASE_TYPE_CHANNELS])
    network.head = head
    return network


def load_base_type_network(path: str | Path = DEMO_BASE_TYPE_WEIGHTS) -> DemoDetector:
    """The base-type network (module docstring) with the weights at ``path``, in eval mode; the shipped file holds
    them in half precision."""
    return _load_network(path, len(BASE_TYPES))


def _load_network(path: str | Path, outputs: int) -> DemoDetector:
    """A DemoDetector with ``outputs`` logits and the state dict at ``path``, floating-point tensors used in single
    precision whatever they were saved in; in eval mode."""
    network = DemoDetector(outputs=outputs)
    state = torch.load(path, map_location="cpu", weights_only=True)
    network.load_state_dict({name: value.float() if value.is_floating_point() else value
                             for name, value in state.items()})
    return network.eval()


class DemoPredictor:
    """Stage-2 class probabilities of the demo network on batches of boxes (a ``detect.PredictFn``): the sigmoid of
    its logits less ln POSITIVE_WEIGHT (the module docstring); with a base-type network, the four base-type maps are
    the base probability × the softmax of that network's logits."""

    def __init__(self, network: DemoDetector, base_types: DemoDetector | None = None, device: str = "cpu"):
        self.device = torch.device(device)
        self.network = copy.deepcopy(network).to(self.device).eval()
        self.base_types = None if base_types is None else copy.deepcopy(base_types).to(self.device).eval()

    def __call__(self, boxes: np.ndarray) -> np.ndarray:
        """boxes: float32 (B, n, n, n) normalised density (n divisible by 8) -> float32 (B, 8, n, n, n) in
        STAGE2_CLASSES order. DeviceOutOfMemory when the batch does not fit in the GPU's memory."""
        boxes = np.asarray(boxes, dtype=np.float32)
        if boxes.ndim != 4 or any(n == 0 or n % 8 for n in boxes.shape[1:]):
            raise ValueError(f"the demo detector expects boxes (B, n, n, n) with edges divisible by 8, got "
                             f"{boxes.shape}")
        try:
            with torch.inference_mode():
                density = torch.from_numpy(np.ascontiguousarray(boxes))[:, None].to(self.device)
                probabilities = torch.sigmoid(self.network(density) - float(np.log(POSITIVE_WEIGHT)))
                if self.base_types is not None:
                    base = probabilities[:, _BASE_CHANNEL:_BASE_CHANNEL + 1]
                    probabilities[:, BASE_TYPE_CHANNELS] = base * torch.softmax(self.base_types(density), dim=1)
                return probabilities.cpu().numpy()
        except torch.cuda.OutOfMemoryError as exc:
            message = (f"{len(boxes)} boxes of {boxes.shape[1:]} voxels do not fit in {self.device} memory "
                       f"({exc!s:.200})")
        torch.cuda.empty_cache()
        raise DeviceOutOfMemory(message)


def demo_predictor(device: str = "cpu", weights: str | Path = DEMO_DETECTOR_WEIGHTS,
                   base_type_weights: str | Path = DEMO_BASE_TYPE_WEIGHTS) -> DemoPredictor:
    """The shipped demo detector (or the networks at the paths given) as a predictor on ``device``."""
    return DemoPredictor(load_demo_detector(weights), load_base_type_network(base_type_weights), device=device)
