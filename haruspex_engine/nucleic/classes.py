"""Channel orders of CryoREAD's detection maps and the U/T merge: what every nucleic module shares (no torch)."""
from __future__ import annotations

import numpy as np

#: Edge in voxels (1 Å grid) of the networks' input box.
BOX = 64
#: Stage-1 output channels after the U/T merge; also the stage-2 input channel order.
STAGE1_CLASSES = ("sugar", "phosphate", "base", "protein", "A", "UT", "C", "G")
#: Stage-1 channels before the merge: chain_net (4) then base_net (5). Raw U and T are inferred, not documented.
STAGE1_RAW_CLASSES = ("sugar", "phosphate", "base", "protein", "A", "U", "C", "G", "T")
#: Stage-2 output channels.
STAGE2_CLASSES = ("sugar", "phosphate", "A", "UT", "C", "G", "protein", "base")
#: The four base types, in the order of every base-type score vector (U and T together).
BASE_TYPES = ("A", "UT", "C", "G")


def merge_ut(probs: np.ndarray, axis: int = 1) -> np.ndarray:
    """Stage-1 probabilities with 9 channels along ``axis`` (STAGE1_RAW_CLASSES) → 8 channels (STAGE1_CLASSES).

    UT := max(U, T); T is dropped. Works on boxes (axis 1) or on stitched maps (C, z, y, x) with axis 0.
    """
    raw = np.moveaxis(probs, axis, 0)
    merged = np.concatenate([raw[:5], np.maximum(raw[5:6], raw[8:9]), raw[6:8]])
    return np.ascontiguousarray(np.moveaxis(merged, 0, axis))
