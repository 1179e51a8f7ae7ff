"""Wizards of the Haruspex plugin (GUI helpers that fill in a protocol parameter)."""
from __future__ import annotations

import mrcfile
import numpy as np
from pyworkflow.gui.dialog import showError
from pyworkflow.wizard import Wizard

from .protocols.protocol_build_nucleic_acids import ProtHaruspexBuildNucleicAcids

# Robust standard deviation of normally distributed values = this factor × their median absolute deviation.
MAD_TO_SIGMA = 1.4826
# An author's recommended contour typically sits a few noise standard deviations above the solvent.
AUTHOR_LEVEL_SIGMAS = 3.0


def proposed_contour(density: np.ndarray) -> float:
    """A contour level for nucleic-acid detection, in the map's units, from its density values (any axes).

    CryoREAD advises half the author's recommended contour level. Without an author level, the solvent is
    described robustly (most voxels of a cryo-EM box are solvent): its median m and the standard deviation
    σ = 1.4826 × median absolute deviation; the author-like level is m + 3σ, and the proposal is half of it,
    never below 0. A low contour only costs time (fewer boxes are skipped), a high one can lose weak density.
    """
    values = np.asarray(density, dtype=np.float64).ravel()
    median = float(np.median(values))
    sigma = MAD_TO_SIGMA * float(np.median(np.abs(values - median)))
    return max(0.0, 0.5 * (median + AUTHOR_LEVEL_SIGMAS * sigma))


class HaruspexContourWizard(Wizard):
    """Proposes the contour level of 'build nucleic acids' from the input map (see ``proposed_contour``)."""

    _targets = [(ProtHaruspexBuildNucleicAcids, ["contourLevel"])]

    def show(self, form, *params):
        volume = form.protocol.inputVolume.get()
        if volume is None:
            showError("No input map", "Choose the input map first.", form.root)
            return
        path = volume.getFileName().replace(":mrc", "")
        try:
            with mrcfile.open(path, permissive=True) as mrc:
                level = proposed_contour(mrc.data)
        except (OSError, ValueError) as exc:
            showError("Unreadable map", f"{path}: {exc}", form.root)
            return
        form.setVar("contourLevel", float(f"{level:.4g}"))
