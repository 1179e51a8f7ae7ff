"""Random Haruspex weights in the exact published checkpoint layout, for tests only.

The checkpoint directory gets a RANDOM-TEST-WEIGHTS marker, so the engine refuses it unless the test suite sets
HARUSPEX_ALLOW_TEST_WEIGHTS=1.

    python -m haruspex_engine.testing.random_weights DIR [--seed N]   # prints the checkpoint prefix
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from haruspex_engine.annotation.checkpoint import NETWORK_TENSORS, write_checkpoint
from haruspex_engine.checkpoints import mark_test_weights


def random_network_weights(seed: int = 0) -> dict[str, np.ndarray]:
    """He-scaled normal kernels and small biases (float32), so activations stay in a realistic range."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in NETWORK_TENSORS.items():
        if name.endswith("/bias"):
            weights[name] = rng.normal(0.0, 0.05, shape).astype(np.float32)
        else:
            fan_in = int(np.prod(shape[:3])) * (shape[4] if "transpose" in name else shape[3])
            weights[name] = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape).astype(np.float32)
    return weights


def make_test_checkpoint(directory: str | Path, seed: int = 0) -> Path:
    """Write random weights as ``DIR/model.ckpt-40000`` (published names and layout) and return that prefix."""
    directory = Path(directory)
    prefix = write_checkpoint(directory / "model.ckpt-40000", random_network_weights(seed), global_step=40000)
    mark_test_weights(directory)
    return prefix


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(make_test_checkpoint(args.directory, args.seed))


if __name__ == "__main__":
    main()
