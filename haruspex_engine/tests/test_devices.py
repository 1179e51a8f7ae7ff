"""Device choice for PyTorch: GPU when asked and present, CPU otherwise, never silently."""
from __future__ import annotations

import pytest
import torch

from haruspex_engine.devices import DeviceError, select_torch_device


def test_cpu_is_taken_when_asked_for(capsys) -> None:
    choice = select_torch_device("cpu")
    assert (choice.name, choice.label, choice.warnings) == ("cpu", "cpu", [])
    assert capsys.readouterr().err == ""


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the fallback cannot be seen")
def test_auto_without_a_gpu_falls_back_loudly(capsys) -> None:
    choice = select_torch_device("auto")
    assert choice.name == "cpu" and len(choice.warnings) == 1
    assert "no GPU is usable" in choice.warnings[0]
    assert "WARNING: no GPU is usable" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_gpu_without_a_gpu_is_an_error() -> None:
    with pytest.raises(DeviceError, match="--device gpu was asked for but no GPU is usable"):
        select_torch_device("gpu")


def test_unknown_device_is_an_error() -> None:
    with pytest.raises(DeviceError, match="unknown device 'tpu'"):
        select_torch_device("tpu")
