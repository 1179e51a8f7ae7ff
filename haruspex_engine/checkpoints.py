"""What every network checkpoint reader shares: its error type and the guard against random test weights.

Test weight sets (generated in the published layouts by ``haruspex_engine.testing``) are labelled by a marker file
in their directory. The engine refuses them unless the test suite sets ``HARUSPEX_ALLOW_TEST_WEIGHTS=1``, so random
weights can never produce maps or models outside tests.
"""
from __future__ import annotations

import os
from pathlib import Path

#: Marker file that labels a directory of weights as random weights generated for tests.
TEST_WEIGHTS_MARKER = "RANDOM-TEST-WEIGHTS"
ALLOW_TEST_WEIGHTS_ENV = "HARUSPEX_ALLOW_TEST_WEIGHTS"


class CheckpointError(ValueError):
    """A checkpoint that is missing, incomplete, corrupt or of another network; the message names the file."""


def mark_test_weights(directory: str | os.PathLike) -> None:
    """Label ``directory`` as holding random test weights."""
    (Path(directory) / TEST_WEIGHTS_MARKER).write_text("Random weights generated for tests. Outputs are meaningless.\n")


def is_test_weights(directory: str | os.PathLike) -> bool:
    """True when ``directory`` holds random weights generated for tests."""
    return (Path(directory) / TEST_WEIGHTS_MARKER).exists()


def check_not_test_weights(directory: str | os.PathLike, what: str, install_hint: str) -> None:
    """Refuse the test weights in ``directory`` unless HARUSPEX_ALLOW_TEST_WEIGHTS=1 (set only by the test suite).

    what: the file or prefix being loaded (named in the message). install_hint: how to get the real weights.
    """
    if is_test_weights(directory) and os.environ.get(ALLOW_TEST_WEIGHTS_ENV) != "1":
        marker = Path(directory) / TEST_WEIGHTS_MARKER
        raise CheckpointError(
            f"{what}: these are random weights generated for tests ({marker} exists); they give meaningless "
            f"results. {install_hint}"
        )
