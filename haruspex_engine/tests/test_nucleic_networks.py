"""The CryoREAD detection networks: published layout, wiring against hand-computed values, class order, precisions.

Wiring tests run on small boxes (the networks accept any edge divisible by 4); only two forward passes (bf16) use
the published 64³ box. Reference values come from numpy formulas or from hand, never from the torch function tested.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from haruspex_engine.devices import DeviceOutOfMemory
from haruspex_engine.nucleic.classes import BOX, STAGE1_CLASSES, STAGE1_RAW_CLASSES, STAGE2_CLASSES, merge_ut
from haruspex_engine.nucleic.detection.networks import (
    DetectionNetwork,
    build_stage1,
    build_stage2,
    macs_per_box,
    max_pool,
    upsample,
)
from haruspex_engine.testing.random_cryoread_weights import random_stage_state_dict

SHARED_CRYOREAD = Path(__file__).resolve().parents[2].parent / "shared" / "models" / "cryoread"
#: bf16 against fp32 probabilities on random weights (measured on 32³ and 64³ boxes: max |Δ| ≤ 0.005, per-class Dice
#: of the 0.5-thresholded maps ≥ 0.985).
BF16_MAX_ABS = 0.02
BF16_MIN_DICE = 0.97


def _network(stage: int, seed: int = 0) -> torch.nn.Module:
    module = build_stage1() if stage == 1 else build_stage2()
    module.load_state_dict(random_stage_state_dict(stage, seed))
    return module.eval()


def _density(n: int, seed: int = 1) -> np.ndarray:
    """A normalised density box (1, n, n, n) in [0, 1]: smooth blobs on a zero background."""
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.normal(size=(1, 1, n, n, n)).astype(np.float32))
    x = torch.nn.functional.avg_pool3d(x, 5, stride=1, padding=2, count_include_pad=False).numpy()[:, 0]
    x = np.clip(x / x.std() - 0.5, 0, None)
    return (x / x.max()).astype(np.float32)


# -- numpy references ---------------------------------------------------------------------------------------------
def _np_upsample(a: np.ndarray, factor: int) -> np.ndarray:
    """Linear interpolation along each of the last three axes, align_corners=False: output voxel i samples the
    input at (i + 0.5) / factor - 0.5, clamped at 0 below and at the last voxel above."""
    for axis in (-3, -2, -1):
        n = a.shape[axis]
        src = np.maximum((np.arange(n * factor) + 0.5) / factor - 0.5, 0.0)
        i0 = np.floor(src).astype(int)
        i1 = np.minimum(i0 + 1, n - 1)
        w = (src - i0).reshape([-1] + [1] * (-axis - 1))
        a = (1 - w) * np.take(a, i0, axis=axis) + w * np.take(a, i1, axis=axis)
    return a


def _np_pool(a: np.ndarray) -> np.ndarray:
    """2³ max pooling of (B, C, z, y, x) with even edges."""
    b, c, z, y, x = a.shape
    return a.reshape(b, c, z // 2, 2, y // 2, 2, x // 2, 2).max(axis=(3, 5, 7))


def _np_sigmoid(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(v, dtype=np.float64)))


def _capture(module: torch.nn.Module, names: list[str]) -> dict[str, np.ndarray]:
    """Register hooks that copy the input ("<name>:in") and output ("<name>:out") of the named submodules."""
    seen: dict[str, np.ndarray] = {}
    for name in names:
        def hook(_module, inputs, output, name=name):
            seen[f"{name}:in"] = inputs[0].detach().numpy().copy()
            seen[f"{name}:out"] = output.detach().numpy().copy()
        module.get_submodule(name).register_forward_hook(hook)
    return seen


# -- layout -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stage", [1, 2])
def test_state_dict_matches_published_layout(stage):
    tsv = SHARED_CRYOREAD / f"expected_state_dict_stage{stage}.tsv"
    if not tsv.is_file():
        pytest.skip(f"{tsv} is absent (../shared/models/cryoread not available)")
    expected = [tuple(line.split("\t")) for line in tsv.read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    module = build_stage1() if stage == 1 else build_stage2()
    actual = [(f"module.{key}", str(tuple(v.shape)), str(v.dtype)) for key, v in module.state_dict().items()]
    assert actual == expected


@pytest.mark.parametrize("stage, params, entries, buffers", [(1, 17_089_563, 208, 6_684), (2, 7_234_968, 104, 3_342)])
def test_parameter_counts(stage, params, entries, buffers):
    module = build_stage1() if stage == 1 else build_stage2()
    assert sum(p.numel() for p in module.parameters()) == params
    assert len(module.state_dict()) == entries
    assert sum(b.numel() for b in module.buffers()) == buffers


def _unet_macs(n: int, in_channels: int, classes: int, merged: tuple[int, int, int] = (0, 0, 0)) -> int:
    """3³-convolution MACs of one small UNet 3+ on an n³ box, written out level by level from the architecture."""
    k, full, half, quarter = 27, n**3, (n // 2) ** 3, (n // 4) ** 3
    encoder = (full * ((in_channels + merged[0]) * 64 + 64 * 64) + half * ((64 + merged[1]) * 128 + 128 * 128)
               + quarter * ((128 + merged[2]) * 256 + 256 * 256))
    level2 = half * (64 * 64 + 128 * 64 + 256 * 64 + 192 * 192)
    level1 = full * (64 * 64 + 192 * 64 + 256 * 64 + 192 * 192 + 192 * classes)
    return k * (encoder + level2 + level1)


def test_macs_per_box():
    assert macs_per_box(2) == _unet_macs(BOX, 8, 8)
    assert macs_per_box(1) == _unet_macs(BOX, 1, 4) + _unet_macs(BOX, 1, 5, merged=(192, 192, 256))


# -- building blocks against hand-computed values ----------------------------------------------------------------------
def test_upsample_matches_hand_values():
    ramp = torch.tensor([0.0, 1.0]).reshape(1, 1, 1, 1, 2).expand(1, 1, 2, 2, 2)
    by2 = [0.0, 0.25, 0.75, 1.0]                                   # samples at -0.25 (clamped), 0.25, 0.75, 1.25
    by4 = [0.0, 0.0, 0.125, 0.375, 0.625, 0.875, 1.0, 1.0]         # samples at -0.375 … 1.375, clamped at both ends
    assert upsample(ramp, 2)[0, 0, 0, 0].tolist() == by2
    assert upsample(ramp, 4)[0, 0, 0, 0].tolist() == by4
    assert _np_upsample(ramp.numpy(), 2)[0, 0, 0, 0].tolist() == by2
    # separable in 3-D: f = z + 10 y + 100 x on 2³ becomes u(z) + 10 u(y) + 100 u(x)
    z, y, x = np.meshgrid([0.0, 1.0], [0.0, 1.0], [0.0, 1.0], indexing="ij")
    cube = torch.tensor(z + 10 * y + 100 * x, dtype=torch.float32)[None, None]
    u = np.array(by4)
    expected = u[:, None, None] + 10 * u[None, :, None] + 100 * u[None, None, :]
    np.testing.assert_allclose(upsample(cube, 4)[0, 0].numpy(), expected, rtol=0, atol=1e-5)


def test_ceil_mode_max_pool_keeps_partial_windows():
    cube = torch.arange(27, dtype=torch.float32).reshape(1, 1, 3, 3, 3)  # value 9 z + 3 y + x grows along each axis
    # windows {0, 1} and {2} per axis: the maximum sits at index 1 or 2
    expected = [[[13.0, 14.0], [16.0, 17.0]], [[22.0, 23.0], [25.0, 26.0]]]
    assert max_pool(cube, ceil_mode=True)[0, 0].tolist() == expected
    assert max_pool(cube)[0, 0].tolist() == [[[13.0]]]


# -- wiring: which tensor arrives where -----------------------------------------------------------------------------
def test_unet_decoder_wiring():
    module = _network(2)
    names = ["conv1", "conv2", "conv3", "bn2d_1", "bn1d_1", "conv2d_1", "conv1d_1", "outconv1"]
    branches = ["h1_PT_hd2", "h2_Cat_hd2", "hd3_UT_hd2", "h1_Cat_hd1", "hd2_UT_hd1", "hd3_UT_hd1"]
    seen = _capture(module, names + [f"{b}_conv" for b in branches] + [f"{b}_bn" for b in branches])
    x = np.random.default_rng(2).uniform(size=(1, 8, 8, 8, 8)).astype(np.float32)
    with torch.inference_mode():
        module(torch.from_numpy(x))
    h1, h2, hd3 = seen["conv1:out"], seen["conv2:out"], seen["conv3:out"]
    hd2, hd1 = np.maximum(seen["bn2d_1:out"], 0), np.maximum(seen["bn1d_1:out"], 0)
    close = dict(rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(seen["conv1:in"], x)
    np.testing.assert_array_equal(seen["conv2:in"], _np_pool(h1))
    np.testing.assert_array_equal(seen["conv3:in"], _np_pool(h2))
    np.testing.assert_array_equal(seen["h1_PT_hd2_conv:in"], _np_pool(h1))
    np.testing.assert_array_equal(seen["h2_Cat_hd2_conv:in"], h2)
    np.testing.assert_allclose(seen["hd3_UT_hd2_conv:in"], _np_upsample(hd3, 2), **close)
    np.testing.assert_array_equal(seen["h1_Cat_hd1_conv:in"], h1)
    np.testing.assert_allclose(seen["hd2_UT_hd1_conv:in"], _np_upsample(hd2, 2), **close)
    np.testing.assert_allclose(seen["hd3_UT_hd1_conv:in"], _np_upsample(hd3, 4), **close)
    for fusion, level in (("conv2d_1", branches[:3]), ("conv1d_1", branches[3:])):
        concatenated = np.concatenate([np.maximum(seen[f"{b}_bn:out"], 0) for b in level], axis=1)
        np.testing.assert_array_equal(seen[f"{fusion}:in"], concatenated)
    np.testing.assert_array_equal(seen["outconv1:in"], hd1)


def test_merged_encoder_concatenation_order():
    module = _network(1)
    seen = _capture(module, ["chain_net.conv3", "chain_net.bn2d_1", "chain_net.outconv1",
                             "base_net.conv1", "base_net.conv2", "base_net.conv3"])
    x = _density(8)
    with torch.inference_mode():
        module(torch.from_numpy(x[:, None]))
    hd1, hd2 = seen["chain_net.outconv1:in"], np.maximum(seen["chain_net.bn2d_1:out"], 0)
    hd3 = seen["chain_net.conv3:out"]
    assert seen["base_net.conv1:in"].shape[1] == 1 + 192
    np.testing.assert_array_equal(seen["base_net.conv1:in"], np.concatenate([x[:, None], hd1], axis=1))
    np.testing.assert_array_equal(seen["base_net.conv2:in"],
                                  np.concatenate([_np_pool(seen["base_net.conv1:out"]), hd2], axis=1))
    np.testing.assert_array_equal(seen["base_net.conv3:in"],
                                  np.concatenate([_np_pool(seen["base_net.conv2:out"]), hd3], axis=1))


@pytest.mark.parametrize("stage", [1, 2])
def test_only_the_full_resolution_head_runs(stage):
    module = _network(stage)
    calls: list[str] = []
    for name, layer in module.named_modules():
        if name.split(".")[-1] in ("outconv1", "outconv2", "outconv3"):
            layer.register_forward_hook(lambda *_, name=name: calls.append(name))
    shape = (1, 8, 8, 8) if stage == 1 else (1, 8, 8, 8, 8)
    DetectionNetwork(module, stage)(np.zeros(shape, np.float32))  # the forward runs on a copy: hooks come along
    assert calls == (["chain_net.outconv1", "base_net.outconv1"] if stage == 1 else ["outconv1"])


# -- class order and the U/T merge ----------------------------------------------------------------------------------
def _constant_heads(module: torch.nn.Module, biases: dict[str, list[float]]) -> torch.nn.Module:
    """Zero the full-resolution head kernels so each raw output channel is sigmoid(its bias) everywhere."""
    with torch.no_grad():
        for name, values in biases.items():
            head = module.get_submodule(name)
            head.weight.zero_()
            head.bias.copy_(torch.tensor(values))
    return module


@pytest.mark.parametrize("u, t", [(0.7, -0.4), (-0.9, 1.3)])
def test_stage1_class_order_and_ut_merge(u, t):
    chain, base = [-2.0, -1.0, 0.5, 2.5], [-3.0, u, 1.1, 1.9, t]  # raw: sugar phosphate base protein | A U C G T
    module = _constant_heads(_network(1), {"chain_net.outconv1": chain, "base_net.outconv1": base})
    boxes = _density(8)
    raw_net = DetectionNetwork(module, 1, merge_ut=False)
    raw = raw_net(boxes)
    merged = DetectionNetwork(module, 1)(boxes)
    assert raw_net.classes == STAGE1_RAW_CLASSES and DetectionNetwork(module, 1).classes == STAGE1_CLASSES
    assert raw.shape == (1, 9, 8, 8, 8) and merged.shape == (1, 8, 8, 8, 8) and merged.dtype == np.float32
    expected_raw = _np_sigmoid(chain + base)
    np.testing.assert_allclose(raw[0, :, 0, 0, 0], expected_raw, rtol=1e-6)
    expected = {"sugar": chain[0], "phosphate": chain[1], "base": chain[2], "protein": chain[3],
                "A": base[0], "UT": max(u, t), "C": base[2], "G": base[3]}
    np.testing.assert_allclose(merged[0, :, 3, 2, 1], _np_sigmoid([expected[c] for c in STAGE1_CLASSES]), rtol=1e-6)
    np.testing.assert_array_equal(merged[:, STAGE1_CLASSES.index("UT")], np.maximum(raw[:, 5], raw[:, 8]))
    # the same merge on a stitched map (channels first)
    np.testing.assert_array_equal(merge_ut(raw[0], axis=0), merged[0])


def test_stage2_class_order():
    logits = [-2.5, -1.5, -0.5, 0.25, 0.75, 1.5, 2.0, 3.0]
    module = _constant_heads(_network(2), {"outconv1": logits})
    network = DetectionNetwork(module, 2)
    out = network(np.random.default_rng(3).uniform(size=(2, 8, 4, 4, 4)).astype(np.float32))
    assert network.classes == STAGE2_CLASSES
    assert STAGE1_CLASSES == ("sugar", "phosphate", "base", "protein", "A", "UT", "C", "G")
    assert STAGE2_CLASSES == ("sugar", "phosphate", "A", "UT", "C", "G", "protein", "base")
    np.testing.assert_allclose(out[1, :, 1, 2, 3], _np_sigmoid(logits), rtol=1e-6)


@pytest.mark.parametrize("stage, shape", [(1, (1, 8, 8, 8, 8)), (1, (1, 10, 10, 10)), (2, (1, 4, 8, 8, 8)),
                                          (2, (8, 8, 8, 8))])
def test_wrong_box_shape_is_refused(stage, shape):
    with pytest.raises(ValueError, match=f"stage {stage} expects boxes"):
        DetectionNetwork(_network(stage), stage)(np.zeros(shape, np.float32))


def test_cuda_out_of_memory_becomes_device_out_of_memory(monkeypatch):
    network = DetectionNetwork(_network(2), 2)

    def exhausted(_x):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(network, "_probabilities", exhausted)
    with pytest.raises(DeviceOutOfMemory, match="3 boxes of .* do not fit in cpu memory"):
        network(np.zeros((3, 8, 4, 4, 4), np.float32))


# -- precisions -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stage", [1, 2])
def test_fp32_is_bit_identical_to_the_plain_module(stage):
    module = _network(stage, seed=4)
    density = _density(32, seed=5)
    x = density if stage == 1 else np.random.default_rng(6).uniform(size=(1, 8, 32, 32, 32)).astype(np.float32)
    with torch.inference_mode():
        plain = module(torch.from_numpy(x[:, None] if stage == 1 else x))
    if stage == 1:
        expected = merge_ut(torch.sigmoid(torch.cat(plain, dim=1)).numpy())
    else:
        expected = torch.sigmoid(plain).numpy()
    np.testing.assert_array_equal(DetectionNetwork(module, stage, precision="fp32")(x), expected)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0.5, b > 0.5
    return 1.0 if not (a.any() or b.any()) else 2.0 * (a & b).sum() / (a.sum() + b.sum())


@pytest.mark.parametrize("stage", [1, 2])
def test_published_box_size(stage):
    """One 64³ box per stage (bf16: the fp32 pass would take ~3× longer on a 2-core CPU)."""
    x = _density(BOX, seed=8) if stage == 1 else np.random.default_rng(9).uniform(size=(1, 8, BOX, BOX, BOX))
    probs = DetectionNetwork(_network(stage, seed=7), stage, precision="bf16")(x.astype(np.float32))
    assert probs.shape == (1, 8, BOX, BOX, BOX)
    assert probs.dtype == np.float32 and probs.flags.c_contiguous
    assert 0.0 <= probs.min() and probs.max() <= 1.0


def test_bf16_close_to_fp32():
    """Stage 1 on a density box, stage 2 on the fp32 stage-1 output (32³ boxes, random weights)."""
    x = _density(32, seed=8)
    for stage in (1, 2):
        module = _network(stage, seed=7)
        fp32 = DetectionNetwork(module, stage)(x)
        bf16 = DetectionNetwork(module, stage, precision="bf16")(x)
        assert np.abs(fp32 - bf16).max() < BF16_MAX_ABS
        assert min(_dice(fp32[:, c], bf16[:, c]) for c in range(fp32.shape[1])) > BF16_MIN_DICE
        x = fp32
