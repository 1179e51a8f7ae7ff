"""Random CryoREAD weights in the exact published file layout, for tests only.

The directory gets a RANDOM-TEST-WEIGHTS marker, so the engine refuses it unless the test suite sets
HARUSPEX_ALLOW_TEST_WEIGHTS=1.

    python -m haruspex_engine.testing.random_cryoread_weights DIR [--seed N]   # prints DIR
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from haruspex_engine.checkpoints import mark_test_weights
from haruspex_engine.nucleic.detection.checkpoint import BUILDERS, save_stage
from haruspex_engine.weights import CRYOREAD_STAGE_FILES


def random_stage_state_dict(stage: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Plausible random weights for one stage (keys without the ``module.`` prefix), from numpy's generator.

    Convolutions: He-scaled normal kernels, biases N(0, 0.05). Batch norms: weight N(1, 0.1), bias N(0, 0.05),
    running_mean N(0, 0.1), running_var U(0.5, 1.5), num_batches_tracked 1000.
    """
    rng = np.random.default_rng([seed, stage])
    state = {}
    for key, reference in BUILDERS[stage]().state_dict().items():
        shape = tuple(reference.shape)
        if key.endswith("num_batches_tracked"):
            value = np.asarray(1000, dtype=np.int64)
        elif len(shape) == 5:
            value = rng.normal(0.0, np.sqrt(2.0 / np.prod(shape[1:])), shape)
        elif key.endswith("running_var"):
            value = rng.uniform(0.5, 1.5, shape)
        elif key.endswith("running_mean"):
            value = rng.normal(0.0, 0.1, shape)
        elif key.endswith(".weight"):  # batch-norm scale
            value = rng.normal(1.0, 0.1, shape)
        else:
            value = rng.normal(0.0, 0.05, shape)
        state[key] = torch.from_numpy(np.asarray(value, dtype=reference.numpy().dtype))
    return state


def make_test_weight_set(directory: str | Path, seed: int = 0) -> Path:
    """Write random ``stage1_network.pth`` and ``stage2_network.pth`` (published layout) into DIR; return DIR."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for stage, name in zip((1, 2), CRYOREAD_STAGE_FILES):
        module = BUILDERS[stage]()
        module.load_state_dict(random_stage_state_dict(stage, seed))
        save_stage(module, directory / name)
    mark_test_weights(directory)
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(make_test_weight_set(args.directory, args.seed))


if __name__ == "__main__":
    main()
