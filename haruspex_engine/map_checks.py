"""Warnings about density maps that read correctly but hold values no cryo-EM map holds.

`haruspex annotate` and `haruspex detect-na` both run :func:`report_map_warnings` on the map they read. Annotate
feeds raw intensities to its network, so a map scaled by 1e30, or one huge voxel, changes labels tens of Å away;
detect-na normalises, but by the map's extremes, and crops at a fixed density of 1e-6. The checks, and why their
limits leave ordinary maps alone:

- magnitude: the bulk of the map, the 99.99th percentile of |density|, lies outside [1e-6, 1e6]. Maps hold
  values of order 1e-3 to 1e2 whether normalised, on an absolute scale or stored as integers (16-bit modes stop
  at 65535), so either limit is at least 3 orders of magnitude away.
- outliers: voxels more than 50 s.d. from the mean AND beyond 10 times the bulk. In simulated maps of the
  na-corpus entries (2 and 3.5 Å), of random training scenes with noise, and in the real 3j6b crop, the maximum
  lies 7-17 s.d. from the mean, and at most 1.8 times the bulk; a small molecule in a mostly empty box reaches
  95 s.d. too, which is why both tests must hold.
"""
from __future__ import annotations

import sys

import numpy as np

from haruspex_engine.maps import DensityMap

#: Percentile of |density| taken as the bulk magnitude of a map (the top 0.01 % may be outliers).
BULK_PERCENTILE = 99.99
#: Bulk magnitudes outside this range are implausible for a cryo-EM map.
PLAUSIBLE_BULK = (1e-6, 1e6)
#: A voxel is an outlier when it lies this many s.d. from the mean ...
OUTLIER_SD = 50.0
#: ... and its |density| exceeds the bulk magnitude this many times.
OUTLIER_OVER_BULK = 10.0


def report_map_warnings(density: DensityMap, command: str) -> list[str]:
    """:func:`map_warnings` of ``density``, each also printed on stderr as "COMMAND: warning: ..."."""
    found = map_warnings(density)
    for warning in found:
        print(f"{command}: warning: {warning}", file=sys.stderr, flush=True)
    return found


def map_warnings(density: DensityMap) -> list[str]:
    """Warnings (one line each, naming the file, the values and what to do) for implausible magnitudes and outlier
    voxels; empty for an ordinary map."""
    magnitude = np.abs(density.data)
    bulk = float(np.percentile(magnitude, BULK_PERCENTILE, method="lower"))
    found = [magnitude_warning(density, bulk), outlier_warning(density, magnitude, bulk)]
    return [warning for warning in found if warning]


def magnitude_warning(density: DensityMap, bulk: float) -> str:
    """A warning when the bulk magnitude ``bulk`` (:data:`BULK_PERCENTILE` of |density|) is outside
    :data:`PLAUSIBLE_BULK`; "" otherwise, and for a map that is all zeros (refused elsewhere)."""
    low, high = PLAUSIBLE_BULK
    if bulk == 0.0 or low <= bulk <= high:
        return ""
    size = "large" if bulk > high else "small"
    sd = float(density.data.std(dtype=np.float64))
    return (f"{density.path}: implausibly {size} density values for a cryo-EM map: 99.99 % of its voxels have "
            f"|density| up to {bulk:.3g} (s.d. {sd:.3g}), where maps stay between {low:g} and {high:g}; the networks "
            "expect maps of ordinary scale, so rescale it (e.g. divide it by its s.d.) and run again")


def outlier_warning(density: DensityMap, magnitude: np.ndarray, bulk: float) -> str:
    """A warning when voxels lie more than :data:`OUTLIER_SD` s.d. from the mean and above :data:`OUTLIER_OVER_BULK`
    times ``bulk``, naming the most extreme one's value and position (x, y, z) in Å; "" when none does.

    magnitude: |density.data|, (z, y, x).
    """
    data = density.data
    mean, sd = float(data.mean(dtype=np.float64)), float(data.std(dtype=np.float64))
    outliers = (magnitude > OUTLIER_OVER_BULK * bulk) & (np.abs(data - np.float32(mean)) > OUTLIER_SD * sd)
    count = int(np.count_nonzero(outliers))
    if count == 0:
        return ""
    index = np.unravel_index(int(np.argmax(np.where(outliers, magnitude, 0.0))), data.shape)
    value = float(data[index])
    x, y, z = density.position_of(tuple(int(i) for i in index))
    times = f"{abs(value) / bulk:.3g} times" if bulk > 0 else "far above"
    voxels = "1 voxel lies" if count == 1 else f"{count} voxels lie"
    return (f"{density.path}: {voxels} far beyond the rest of the map: {value:.3g} at ({x:.1f}, {y:.1f}, {z:.1f}) Å "
            f"is {abs(value - mean) / sd:.0f} s.d. from the mean and {times} the 99.99th percentile of |density| "
            f"({bulk:.3g}); such spikes (corrupt or spurious voxels) change the results tens of Å around them: "
            "inspect the map there, set them to the surrounding density or mask them out, and run again")
