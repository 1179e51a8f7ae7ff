"""A nucleic-acid-masked map for refinement: the working density with protein and empty density zeroed.

CryoREAD refines its model into such a map (its ``mask_map``), made from the stage-2 detection maps on the working
grid: a voxel keeps its density only where the detection does not call it protein, sees some nucleic acid, and the
density is above the contour. Re-implemented from that description:

* zeroed where the protein probability is at least ``PROTEIN_MIN_PROBABILITY`` (0.6);
* zeroed where sugar + phosphate + base probability (the sum of the three maps) is at most
  ``NUCLEIC_MAX_PROBABILITY`` (0.1);
* zeroed where the density is at or below the contour (in the working map's normalised units; detect-na's summary
  gives it as ``contour.normalised``; at the default contour 0 this only touches voxels that are already 0).
"""
from __future__ import annotations

import numpy as np

from haruspex_engine.nucleic.classes import STAGE2_CLASSES

PROTEIN_MIN_PROBABILITY = 0.6
NUCLEIC_MAX_PROBABILITY = 0.1
NUCLEIC_CLASSES = ("sugar", "phosphate", "base")


def nucleic_acid_masked(density: np.ndarray, stage2: np.ndarray, contour: float = 0.0) -> np.ndarray:
    """``density`` (z, y, x) with the voxels that are not nucleic acid set to 0 (see the module docstring).

    stage2: the detection probabilities (8, z, y, x) in ``STAGE2_CLASSES`` order, on the grid of ``density``.
    contour: density threshold in the units of ``density``. Returns a new float32 array; the inputs are unchanged.
    """
    if stage2.shape != (len(STAGE2_CLASSES), *density.shape):
        raise ValueError(f"detection maps of shape {stage2.shape} do not match the density grid {density.shape} "
                         f"({len(STAGE2_CLASSES)} classes expected)")
    protein = stage2[STAGE2_CLASSES.index("protein")]
    nucleic = sum(stage2[STAGE2_CLASSES.index(name)] for name in NUCLEIC_CLASSES)
    removed = (protein >= PROTEIN_MIN_PROBABILITY) | (nucleic <= NUCLEIC_MAX_PROBABILITY) | (density <= contour)
    return np.where(removed, np.float32(0.0), density).astype(np.float32)
