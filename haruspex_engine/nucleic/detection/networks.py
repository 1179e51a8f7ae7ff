"""The two CryoREAD detection networks (PyTorch), rebuilt from the published architecture, and their forward pass.

Both work on boxes of ``BOX``³ voxels of a map resampled to a 1 Å grid. Tensors are (batch, channel, z, y, x).

- Stage 1 (``CascadeUNet``): normalised density (1 channel) → 4 "chain" logits [sugar, phosphate, base, protein]
  from ``chain_net`` and 5 raw base-type logits [A, U, C, G, T] from ``base_net``, whose encoder also reads the
  chain net's decoder features. U and T are merged into one channel after the sigmoid (``merge_ut``).
- Stage 2 (``SmallUNet3Plus`` with 8 inputs): the 8 stage-1 probabilities in ``STAGE1_CLASSES`` order → 8 logits
  in ``STAGE2_CLASSES`` order.

Attribute names reproduce the published state_dict keys (without the ``module.`` prefix of nn.DataParallel),
so the published files load strictly. All outputs are independent sigmoids (multi-label), never a softmax.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from haruspex_engine.devices import DeviceOutOfMemory
from haruspex_engine.nucleic.classes import BOX, STAGE1_CLASSES, STAGE1_RAW_CLASSES, STAGE2_CLASSES, merge_ut

#: "fp32": the original arithmetic. "bf16": bfloat16 weights and activations (logits cast to float32 before sigmoid).
PRECISIONS = ("fp32", "bf16")

FILTERS = (64, 128, 256)
CAT_CHANNELS = 64
UP_CHANNELS = 3 * CAT_CHANNELS
#: Decoder branches (each a ``<name>_conv`` + ``<name>_bn`` pair): name -> input channels.
BRANCHES = {
    "h1_PT_hd2": FILTERS[0], "h2_Cat_hd2": FILTERS[1], "hd3_UT_hd2": FILTERS[2],
    "h1_Cat_hd1": FILTERS[0], "hd2_UT_hd1": UP_CHANNELS, "hd3_UT_hd1": FILTERS[2],
}
#: Fusion convolutions after each decoder concatenation: (conv, batch norm).
FUSIONS = (("conv2d_1", "bn2d_1"), ("conv1d_1", "bn1d_1"))


def max_pool(x: torch.Tensor, ceil_mode: bool = False) -> torch.Tensor:
    """2³ max pooling, stride 2. ceil_mode: keep a last, partial window on odd edges (the h1→hd2 branch uses it)."""
    return F.max_pool3d(x, kernel_size=2, stride=2, ceil_mode=ceil_mode)


def upsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Trilinear upsampling by an integer factor, align_corners=False (voxel centres; edges clamp)."""
    return F.interpolate(x, scale_factor=factor, mode="trilinear", align_corners=False)


def _conv3(in_channels: int, out_channels: int) -> nn.Conv3d:
    return nn.Conv3d(in_channels, out_channels, kernel_size=3, stride=1, padding=1)


def _conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(_conv3(in_channels, out_channels), nn.BatchNorm3d(out_channels), nn.ReLU(inplace=True))


class ConvBlock(nn.Module):
    """Two [3³ convolution (padding 1) → batch norm → ReLU] layers (keys ``conv1.0/.1``, ``conv2.0/.1``)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = _conv_bn_relu(in_channels, out_channels)
        self.conv2 = _conv_bn_relu(out_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


class SmallUNet3Plus(nn.Module):
    """The "small UNet 3+ with deep supervision": 3 encoder levels (64, 128, 256 filters), full-scale skips.

    For an input of edge n (divisible by 4): h1 = conv1(x) @n, h2 = conv2(pool(h1)) @n/2, hd3 = conv3(pool(h2)) @n/4;
    hd2 = fusion of [pool_ceil(h1)→64, h2→64, up×2(hd3)→64] @n/2; hd1 = fusion of [h1→64, up×2(hd2)→64,
    up×4(hd3)→64] @n (resampling before each branch convolution). Logits = outconv1(hd1) @n.

    merged_channels: extra channels concatenated after the encoder input of each level (stage 1's base net reads
    the chain net's hd1, hd2 and hd3 there); 0 for a plain network.
    outconv2 and outconv3 are the training-time deep-supervision heads on hd2 and hd3: they exist only so the
    published files load strictly and are never computed.
    """

    def __init__(self, in_channels: int, n_classes: int, merged_channels: tuple[int, int, int] = (0, 0, 0)):
        super().__init__()
        self.conv1 = ConvBlock(in_channels + merged_channels[0], FILTERS[0])
        self.conv2 = ConvBlock(FILTERS[0] + merged_channels[1], FILTERS[1])
        self.conv3 = ConvBlock(FILTERS[1] + merged_channels[2], FILTERS[2])
        for name in ("h1_PT_hd2", "h2_Cat_hd2", "hd3_UT_hd2"):
            self._add_branch(name)
        self.conv2d_1 = _conv3(UP_CHANNELS, UP_CHANNELS)
        self.bn2d_1 = nn.BatchNorm3d(UP_CHANNELS)
        for name in ("h1_Cat_hd1", "hd2_UT_hd1", "hd3_UT_hd1"):
            self._add_branch(name)
        self.conv1d_1 = _conv3(UP_CHANNELS, UP_CHANNELS)
        self.bn1d_1 = nn.BatchNorm3d(UP_CHANNELS)
        self.outconv1 = _conv3(UP_CHANNELS, n_classes)
        self.outconv2 = _conv3(UP_CHANNELS, n_classes)
        self.outconv3 = _conv3(FILTERS[2], n_classes)

    def _add_branch(self, name: str) -> None:
        self.add_module(f"{name}_conv", _conv3(BRANCHES[name], CAT_CHANNELS))
        self.add_module(f"{name}_bn", nn.BatchNorm3d(CAT_CHANNELS))

    def _branch(self, name: str, x: torch.Tensor) -> torch.Tensor:
        conv, bn = getattr(self, f"{name}_conv"), getattr(self, f"{name}_bn")
        return F.relu(bn(conv(x)), inplace=True)

    def features(
        self, x: torch.Tensor, merged: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Decoder features (hd1 192 ch @n, hd2 192 ch @n/2) and the deepest encoder output (hd3 256 ch @n/4).

        merged: tensors concatenated (after the level's own input) into the input of conv1, conv2 and conv3.
        """
        extra = merged if merged is not None else (None, None, None)
        h1 = self.conv1(_cat(x, extra[0]))
        h2 = self.conv2(_cat(max_pool(h1), extra[1]))
        hd3 = self.conv3(_cat(max_pool(h2), extra[2]))
        hd2 = torch.cat([
            self._branch("h1_PT_hd2", max_pool(h1, ceil_mode=True)),
            self._branch("h2_Cat_hd2", h2),
            self._branch("hd3_UT_hd2", upsample(hd3, 2)),
        ], dim=1)
        hd2 = F.relu(self.bn2d_1(self.conv2d_1(hd2)), inplace=True)
        hd1 = torch.cat([
            self._branch("h1_Cat_hd1", h1),
            self._branch("hd2_UT_hd1", upsample(hd2, 2)),
            self._branch("hd3_UT_hd1", upsample(hd3, 4)),
        ], dim=1)
        hd1 = F.relu(self.bn1d_1(self.conv1d_1(hd1)), inplace=True)
        return hd1, hd2, hd3

    def forward(
        self, x: torch.Tensor, merged: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Full-resolution logits (B, n_classes, n, n, n) of x (B, in_channels, n, n, n)."""
        return self.outconv1(self.features(x, merged)[0])


def _cat(x: torch.Tensor, extra: torch.Tensor | None) -> torch.Tensor:
    return x if extra is None else torch.cat([x, extra], dim=1)


class CascadeUNet(nn.Module):
    """Stage 1: ``chain_net`` (density → 4 chain logits) feeding its features into ``base_net`` (→ 5 base logits).

    The base net's encoder inputs are [density, chain hd1] (193 ch), [pool(h1_base), chain hd2] (256 ch) and
    [pool(h2_base), chain hd3] (384 ch).
    """

    def __init__(self):
        super().__init__()
        self.chain_net = SmallUNet3Plus(1, 4)
        self.base_net = SmallUNet3Plus(1, 5, merged_channels=(UP_CHANNELS, UP_CHANNELS, FILTERS[2]))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: density (B, 1, n, n, n) → (chain logits (B, 4, n, n, n), raw base logits (B, 5, n, n, n))."""
        features = self.chain_net.features(x)
        return self.chain_net.outconv1(features[0]), self.base_net(x, merged=features)


def build_stage1() -> nn.Module:
    """The stage-1 network (random initialisation, training mode; load weights with ``checkpoint.load_stage``)."""
    return CascadeUNet()


def build_stage2() -> nn.Module:
    """The stage-2 network: 8 stage-1 probabilities in, 8 logits out."""
    return SmallUNet3Plus(len(STAGE1_CLASSES), len(STAGE2_CLASSES))


def macs_per_box(stage: int) -> int:
    """Multiply-accumulates of the 3³ convolutions in one BOX³ forward pass (full-resolution head only).

    Counted from the modules: a forward pass on the meta device records each Conv3d's output size, so the
    deep-supervision heads (never run) are not counted. Batch norm, ReLU, pooling and upsampling are not counted.
    """
    with torch.device("meta"):
        module = {1: build_stage1, 2: build_stage2}[stage]()
        x = torch.empty((1, 1 if stage == 1 else len(STAGE1_CLASSES), BOX, BOX, BOX))
    total = 0

    def count(conv: nn.Conv3d, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        total += output[0].numel() * conv.in_channels // conv.groups * int(np.prod(conv.kernel_size))

    for layer in module.modules():
        if isinstance(layer, nn.Conv3d):
            layer.register_forward_hook(count)
    module.eval()(x)
    return total


def fold_batch_norm(module: nn.Module) -> nn.Module:
    """A copy of an eval-mode detection network with every batch norm folded into the convolution before it.

    Computes the same function up to float32 rounding (used for the reduced-precision path, where the folded
    weights are rounded once instead of the convolution and batch-norm parameters separately).
    """
    module = copy.deepcopy(module).eval()
    for net in module.modules():
        if not isinstance(net, SmallUNet3Plus):
            continue
        for block in (net.conv1, net.conv2, net.conv3):
            for layer in (block.conv1, block.conv2):
                layer[0], layer[1] = fuse_conv_bn_eval(layer[0], layer[1]), nn.Identity()
        for conv, bn in [(f"{name}_conv", f"{name}_bn") for name in BRANCHES] + list(FUSIONS):
            setattr(net, conv, fuse_conv_bn_eval(getattr(net, conv), getattr(net, bn)))
            setattr(net, bn, nn.Identity())
    return module


class DetectionNetwork:
    """Sigmoid class probabilities of a stage-1 or stage-2 network on batches of boxes.

    module: ``build_stage1()`` / ``build_stage2()`` with weights loaded (``checkpoint.load_stage``); it is copied,
    the caller's module is left untouched. stage: 1 or 2. device: torch device string ("cpu", "cuda:0").
    precision:
      - "fp32": the plain eval-mode module in float32, default (contiguous) memory format: outputs are bit-identical
        to calling the module directly. (channels_last_3d is ~10 % faster on an AVX-512 CPU but not bit-identical.)
        On CUDA, TensorFloat-32 (cuDNN's default on Ampere and later GPUs) is switched off for this process.
      - "bf16": batch norms folded into the convolutions in float32, then weights and activations in bfloat16 with
        the channels_last_3d memory format (oneDNN bf16 convolutions, close to the CPU's bf16 peak: 2.0× (stage 1)
        and 2.3× (stage 2) the fp32 speed on a 2-core AVX512_BF16 CPU; probabilities within 0.01 of fp32 on random
        weights); logits are cast to float32 before the sigmoid. Same path on CUDA
        (bfloat16 keeps the float32 exponent range, so activations cannot overflow as in float16; GPU speed not
        measured).
    merge_ut: stage 1 only. True: merge U and T per box (8 output channels, STAGE1_CLASSES). False: the 9 raw
    channels (STAGE1_RAW_CLASSES), so a caller can average overlapping boxes first and merge the stitched map
    with ``merge_ut(..., axis=0)`` as the original pipeline does.
    """

    def __init__(self, module: nn.Module, stage: int, device: str = "cpu", precision: str = "fp32",
                 merge_ut: bool = True):
        expected = {1: CascadeUNet, 2: SmallUNet3Plus}.get(stage)
        if expected is None:
            raise ValueError(f"stage must be 1 or 2, not {stage!r}")
        if not isinstance(module, expected):
            raise ValueError(f"a stage-{stage} network must be a {expected.__name__}, not {type(module).__name__}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
        self.stage = stage
        self.device = torch.device(device)
        self.precision = precision
        self.merge_ut = merge_ut and stage == 1
        if precision == "fp32":
            if self.device.type == "cuda":  # fp32 means fp32: no TensorFloat-32 shortcuts on Ampere and newer GPUs
                torch.backends.cudnn.allow_tf32 = False
                torch.backends.cuda.matmul.allow_tf32 = False
            self.module = copy.deepcopy(module).to(self.device).eval()
        else:
            self.module = fold_batch_norm(module).to(self.device, torch.bfloat16)
            self.module = self.module.to(memory_format=torch.channels_last_3d)

    @property
    def classes(self) -> tuple[str, ...]:
        """Names of the output channels, in order."""
        if self.stage == 2:
            return STAGE2_CLASSES
        return STAGE1_CLASSES if self.merge_ut else STAGE1_RAW_CLASSES

    def __call__(self, boxes: np.ndarray) -> np.ndarray:
        """Probabilities for a batch of boxes on the 1 Å grid.

        boxes: float32, stage 1: (B, n, n, n) normalised density; stage 2: (B, 8, n, n, n) stage-1 probabilities in
        STAGE1_CLASSES order. Axes (box, [channel,] z, y, x); n = BOX for the published setting (any edge
        divisible by 4 works). Returns float32 (B, len(classes), n, n, n) in ``classes`` order.
        Raises DeviceOutOfMemory when the batch does not fit in the GPU's memory (retry with fewer boxes).
        """
        boxes = np.asarray(boxes, dtype=np.float32)
        leading = (len(STAGE1_CLASSES),) if self.stage == 2 else ()
        spatial = boxes.shape[1 + len(leading):]
        if (boxes.ndim != 4 + len(leading) or boxes.shape[1:1 + len(leading)] != leading
                or any(n == 0 or n % 4 for n in spatial)):
            raise ValueError(f"stage {self.stage} expects boxes of shape (B, {'8, ' * len(leading)}n, n, n) with edges "
                             f"divisible by 4 (n = {BOX}), got {boxes.shape}")
        x = torch.from_numpy(np.ascontiguousarray(boxes))
        if self.stage == 1:
            x = x.unsqueeze(1)
        try:
            probs = self._probabilities(x)
        except torch.cuda.OutOfMemoryError as exc:
            message = f"{len(boxes)} boxes of {spatial} voxels do not fit in {self.device} memory ({exc!s:.200})"
        else:
            return merge_ut(probs) if self.merge_ut else probs
        # Raised outside the except clause: the failed pass's tensors (held by the traceback) are freed by now.
        torch.cuda.empty_cache()
        raise DeviceOutOfMemory(message)

    def _probabilities(self, x: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            x = x.to(self.device)
            if self.precision == "bf16":
                x = x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last_3d)
            logits = self.module(x)
            if self.stage == 1:
                logits = torch.cat(logits, dim=1)
            return torch.sigmoid(logits.float()).contiguous().cpu().numpy()
