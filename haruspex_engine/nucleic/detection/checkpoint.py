"""The published CryoREAD weight files (``stage1_network.pth``, ``stage2_network.pth``): strict loader and writer.

A published file is ``torch.save`` of a dict whose key ``'state_dict'`` holds the network's state_dict as saved
through nn.DataParallel: every key prefixed ``module.``, float32 parameters and batch-norm running statistics,
int64 ``num_batches_tracked`` (stage 1: 208 entries, stage 2: 104). Other keys of the dict are ignored.
A state_dict without the ``module.`` prefix on any key (a network saved without DataParallel) is accepted too;
a mix of prefixed and unprefixed keys is not.
"""
from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from haruspex_engine.atomic_files import atomic_path
from haruspex_engine.checkpoints import CheckpointError, check_not_test_weights
from haruspex_engine.nucleic.detection.networks import build_stage1, build_stage2
from haruspex_engine.weights import CRYOREAD_ENV

#: Key prefix that nn.DataParallel adds to every entry of the published state_dicts.
PREFIX = "module."
INSTALL_HINT = (f"Install the published CryoREAD weights with `haruspex weights download --set cryoread-default`, "
                f"or set {CRYOREAD_ENV} to a directory holding them.")
BUILDERS = {1: build_stage1, 2: build_stage2}


def load_stage(path: str | os.PathLike, stage: int, *, trusted: bool = False) -> nn.Module:
    """The stage-1 or stage-2 network with the weights of ``path`` loaded strictly (eval mode, on the CPU).

    The file is read with ``torch.load(weights_only=True)``, which can only rebuild tensors and plain containers.
    trusted: read with ``weights_only=False`` instead, which runs arbitrary pickled code: only for a file whose
    git blob id the caller has checked against the weight registry (``haruspex weights verify``).
    Raises CheckpointError naming the file and the problem (missing, unreadable, not this network's layout).
    """
    if stage not in BUILDERS:
        raise ValueError(f"stage must be 1 or 2, not {stage!r}")
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: missing (the stage-{stage} CryoREAD network). {INSTALL_HINT}")
    check_not_test_weights(path.parent, str(path), INSTALL_HINT)
    module = BUILDERS[stage]()
    module.load_state_dict(_checked_state_dict(path, stage, _read(path, trusted), module.state_dict()))
    return module.eval()


def save_stage(module: nn.Module, path: str | os.PathLike) -> Path:
    """Write ``module``'s weights in the published layout: ``{'state_dict': {'module.' + key: tensor}}``.

    Every state_dict entry is written (batch-norm running statistics and num_batches_tracked included), as CPU
    tensors. The file appears complete or not at all (written to a temporary name, then renamed). Returns the path.
    """
    path = Path(path)
    state = {PREFIX + key: value.detach().cpu() for key, value in module.state_dict().items()}
    with atomic_path(path) as partial:
        torch.save({"state_dict": state}, partial)
    return path


def _read(path: Path, trusted: bool) -> dict:
    try:
        content = torch.load(path, map_location="cpu", weights_only=not trusted)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, KeyError, ValueError) as exc:
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if refused is not None:
            raise CheckpointError(
                f"{path}: holds non-tensor Python objects ({refused.group(1)}), which safe loading (weights_only) "
                "refuses to rebuild. If this is a published CryoREAD file whose git blob id you have verified "
                "(`haruspex weights verify`), load it with trusted=True."
            ) from None
        detail = re.search(r"WeightsUnpickler error:\s*(.+)", str(exc))
        raise CheckpointError(
            f"{path}: not a PyTorch file, or truncated or corrupt ({type(exc).__name__}: "
            f"{detail.group(1) if detail else _first_line(exc)}); download it again. {INSTALL_HINT}"
        ) from None
    if not isinstance(content, Mapping):
        raise CheckpointError(f"{path}: holds a {type(content).__name__}, expected a dict with a 'state_dict' entry")
    if "state_dict" not in content:
        keys = ", ".join(map(repr, list(content)[:6]))
        raise CheckpointError(f"{path}: no 'state_dict' entry (keys: {keys or 'none'}); not a CryoREAD network file")
    if not isinstance(content["state_dict"], Mapping):
        raise CheckpointError(f"{path}: 'state_dict' holds a {type(content['state_dict']).__name__}, expected a dict")
    return content["state_dict"]


def _checked_state_dict(
    path: Path, stage: int, saved: Mapping, expected: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """``saved`` without its key prefix, after checking it has exactly the keys, shapes and dtypes of ``expected``."""
    where = f"{path}: not the stage-{stage} CryoREAD network"
    with_prefix = [str(key) for key in saved if str(key).startswith(PREFIX)]
    without = [str(key) for key in saved if not str(key).startswith(PREFIX)]
    if with_prefix and without:
        raise CheckpointError(f"{where}: {len(without)} of {len(saved)} keys lack the {PREFIX!r} prefix of the others "
                              f"({_names('', without)})")
    prefix = PREFIX if with_prefix else ""
    state = {str(key)[len(prefix):]: value for key, value in saved.items()}
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    if missing or unexpected:
        problems = []
        if missing:
            problems.append(f"{len(missing)} of {len(expected)} entries missing ({_names(prefix, missing)})")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected ({_names(prefix, unexpected)})")
        other = 3 - stage
        if set(state) == set(BUILDERS[other]().state_dict()):
            problems.append(f"this is a stage-{other} file")
        raise CheckpointError(f"{where}: " + "; ".join(problems))
    for key, reference in expected.items():
        value = state[key]
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{where}: {prefix}{key} is a {type(value).__name__}, expected a tensor")
        if value.shape != reference.shape:
            raise CheckpointError(
                f"{where}: {prefix}{key} has shape {tuple(value.shape)}, expected {tuple(reference.shape)}"
            )
        if value.dtype != reference.dtype:
            raise CheckpointError(f"{where}: {prefix}{key} is {value.dtype}, expected {reference.dtype}")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{path}: {prefix}{key} holds NaN or infinite values (corrupt file)")
    return state


def _names(prefix: str, keys: list[str], shown: int = 3) -> str:
    names = ", ".join(prefix + key for key in keys[:shown])
    return names + (f" and {len(keys) - shown} more" if len(keys) > shown else "")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
