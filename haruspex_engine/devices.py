"""Compute-device choice for the worker: GPU when asked and present, CPU otherwise, never silently.

Two frameworks, one policy: ``select_device`` for TensorFlow (Haruspex; must run before TensorFlow touches a device)
and ``select_torch_device`` for PyTorch (CryoREAD).
"""
from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass, field

DEVICE_CHOICES = ("auto", "cpu", "gpu")


class DeviceError(RuntimeError):
    """The requested device cannot be used."""


class DeviceOutOfMemory(RuntimeError):
    """The device ran out of memory for one forward pass (the caller retries with a smaller batch)."""


@dataclass
class DeviceChoice:
    """name: the framework's device string (TensorFlow "/GPU:0" or "/CPU:0"; PyTorch "cuda:0" or "cpu");
    label: for reports ("gpu:0 (name)" or "cpu"); warnings: what the user must hear (e.g. a GPU fallback)."""

    name: str
    label: str
    warnings: list[str] = field(default_factory=list)


def import_tensorflow():
    """Import TensorFlow without its start-up chatter on stderr (shown only if the import fails)."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return tensorflow


def select_device(requested: str) -> DeviceChoice:
    """Pick the device for ``requested`` in {"auto", "cpu", "gpu"}.

    auto: the first GPU when TensorFlow sees one, else CPU with a loud warning. gpu: the first GPU, or DeviceError.
    cpu: hides every GPU from TensorFlow.
    """
    tf = import_tensorflow()

    if requested not in DEVICE_CHOICES:
        raise DeviceError(f"unknown device {requested!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    gpus = [] if requested == "cpu" else tf.config.list_physical_devices("GPU")
    if requested == "cpu" or not gpus:
        tf.config.set_visible_devices([], "GPU")
        if requested == "cpu":
            return DeviceChoice("/CPU:0", "cpu")
        reason = _why_no_gpu(tf)
        if requested == "gpu":
            raise DeviceError(f"--device gpu was asked for but no GPU is usable: {reason}")
        message = f"no GPU is usable ({reason}); running on the CPU, which is much slower"
        loud_warning(message)
        return DeviceChoice("/CPU:0", "cpu", [message])
    gpu = gpus[0]
    tf.config.set_visible_devices([gpu], "GPU")
    tf.config.experimental.set_memory_growth(gpu, True)
    name = tf.config.experimental.get_device_details(gpu).get("device_name", "GPU")
    return DeviceChoice("/GPU:0", f"gpu:0 ({name})")


def select_torch_device(requested: str) -> DeviceChoice:
    """Pick the PyTorch device for ``requested`` in {"auto", "cpu", "gpu"}, with the policy of select_device."""
    import torch

    if requested not in DEVICE_CHOICES:
        raise DeviceError(f"unknown device {requested!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    if requested == "cpu":
        return DeviceChoice("cpu", "cpu")
    if not torch.cuda.is_available():
        if torch.version.cuda is None:
            reason = "this PyTorch build has no CUDA support (CPU-only wheel)"
        else:
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            hidden = visible is not None and visible.strip() in ("", "-1")
            reason = (f"CUDA_VISIBLE_DEVICES={visible!r} hides all GPUs" if hidden
                      else "PyTorch found no CUDA GPU (driver missing or no GPU in this machine)")
        if requested == "gpu":
            raise DeviceError(f"--device gpu was asked for but no GPU is usable: {reason}")
        message = f"no GPU is usable ({reason}); running on the CPU, which is much slower"
        loud_warning(message)
        return DeviceChoice("cpu", "cpu", [message])
    return DeviceChoice("cuda:0", f"gpu:0 ({torch.cuda.get_device_name(0)})")


def _why_no_gpu(tf) -> str:
    if not tf.test.is_built_with_cuda():
        return "this TensorFlow build has no CUDA support (tensorflow-cpu)"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return f"CUDA_VISIBLE_DEVICES={visible!r} hides all GPUs"
    return "TensorFlow found no CUDA GPU (driver missing or no GPU in this machine)"


def loud_warning(message: str) -> None:
    """A warning that stands out in a console or a run log."""
    bar = "!" * 78
    print(f"{bar}\nWARNING: {message}\n{bar}", file=sys.stderr, flush=True)
