"""Map preprocessing for nucleic-acid detection: 1 Å grid, contour shift, crop, normalisation.

The steps follow CryoREAD's published behaviour (re-implemented from a description, not from its source):

1. the map is read in standard axis order with its origin honoured (:func:`haruspex_engine.maps.read_map`);
2. it is resampled to a 1 Å grid by trilinear interpolation (:func:`resample_to_angstrom_grid`);
3. a negative contour is removed by adding ``|contour|`` to every voxel (:func:`shift_negative_contour`);
4. it is cropped to the bounding box of voxels above 1e-6 (:func:`crop_to_positive`; unlike the original, the last
   positive plane is kept);
5. a contour at or above the maximum is replaced by a low percentile of the positive densities
   (:func:`replace_unreachable_contour`);
6. it is clipped at its "log-histogram 98 % point" and min-max scaled to [0, 1] (:func:`normalise`).

Units: voxel sizes, origins and positions are in Å and ordered (x, y, z); arrays and array indices are (z, y, x).
:func:`to_input_grid` takes values computed on the working grid back onto the grid of the map that was read.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from haruspex_engine.maps import DensityMap, MapError, Vec3

Shape3 = tuple[int, int, int]

POSITIVE = 1e-6  # density above which a voxel counts as positive for cropping and the contour fallback
HISTOGRAM_BINS = 200
HISTOGRAM_FRACTION = 0.98
CONTOUR_FALLBACK_QUANTILE = 1 / 1000  # index len/1000 of the sorted positive densities
# floor(n * voxel) is taken with this tolerance (in voxels of the new grid) so that voxel sizes stored as float32
# (cell / n in the MRC header, e.g. 1.05 -> 1.0499999523) do not lose the last grid plane to rounding.
_GRID_TOLERANCE = 1e-4


@dataclass(frozen=True)
class WorkingMap:
    """The map the detection networks see.

    data: float32 (z, y, x) on a 1 Å grid, cropped and normalised to [0, 1]. origin: (x, y, z) Å position of
    voxel (0, 0, 0) of ``data``. contour: in normalised units. crop_start: (z, y, x) index of ``data[0, 0, 0]`` in
    the uncropped 1 Å grid, whose shape is grid_shape (z, y, x). scale: the clipping point p, in density units
    after the contour shift. warnings: notes for the user (e.g. a replaced contour).
    """

    data: np.ndarray
    origin: Vec3
    contour: float
    crop_start: Shape3
    grid_shape: Shape3
    scale: float
    warnings: tuple[str, ...] = ()

    def as_density_map(self, data: np.ndarray | None = None) -> DensityMap:
        """This grid (1 Å voxels, this origin) holding ``data`` (default: the working density), ready to write."""
        grid = DensityMap(data=self.data, voxel_size=(1.0, 1.0, 1.0), origin=self.origin)
        return grid if data is None else grid.with_data(np.asarray(data, dtype=np.float32))


def prepare_map(density: DensityMap, contour: float = 0.0) -> WorkingMap:
    """Resample, shift, crop and normalise ``density`` (steps 2-6 of the module docstring).

    contour: the author's recommended level in the map's density units. Raises MapError naming the file when the
    map holds no positive density (after the contour shift) or is constant.
    """
    grid = resample_to_angstrom_grid(density)
    shifted, contour = shift_negative_contour(grid.data, contour)
    cropped, crop_start = crop_to_positive(grid.with_data(shifted))
    contour, warning = replace_unreachable_contour(cropped.data, contour)
    try:
        data, contour, scale = normalise(cropped.data, contour)
    except ValueError as exc:
        raise MapError(f"{density.path}: {exc}") from None
    return WorkingMap(
        data=data,
        origin=cropped.origin,
        contour=contour,
        crop_start=crop_start,
        grid_shape=grid.data.shape,
        scale=scale,
        warnings=(warning,) if warning else (),
    )


def angstrom_grid_shape(shape_zyx: Shape3, voxel_size_xyz: Vec3) -> Shape3:
    """Shape (z, y, x) of the 1 Å grid over a map: floor(n * voxel) per axis."""
    return tuple(
        int(math.floor(n * v + _GRID_TOLERANCE)) for n, v in zip(shape_zyx, reversed(voxel_size_xyz))
    )


def resample_to_angstrom_grid(density: DensityMap) -> DensityMap:
    """The map on a 1 Å grid whose point k (per axis) lies k Å from the first voxel.

    The value at new index k is the trilinear interpolation of the old map at fractional index k / voxel. The new
    grid has floor(n * voxel) points per axis, so its last points can fall between the last input voxel (index
    n - 1) and index n: there the map is taken as 0 beyond its last voxel and the value falls linearly from the
    last voxel's value to 0, as torch ``grid_sample`` (trilinear, align_corners=True, zero padding) does in the
    original. Anisotropic voxels are fine. A map already at 1.0 Å on every axis keeps its data array unchanged.
    The result has voxel 1 Å, origin = the input's first voxel position and nstart 0.
    """
    shape = angstrom_grid_shape(density.data.shape, density.voxel_size)
    if min(shape) < 1:
        raise MapError(f"{density.path}: the map spans less than 1 Å along an axis ({density.data.shape} voxels "
                       f"of {density.voxel_size} Å)")
    if all(v == 1.0 for v in density.voxel_size):
        data = density.data
    else:
        step = [1.0 / v for v in reversed(density.voxel_size)]  # old index per new index, z y x
        data = ndimage.affine_transform(
            density.data, step, output_shape=shape, output=np.float32, order=1, mode="grid-constant", cval=0.0
        )
    return DensityMap(data=data, voxel_size=(1.0, 1.0, 1.0), origin=density.first_voxel_position, path=density.path)


def shift_negative_contour(data: np.ndarray, contour: float) -> tuple[np.ndarray, float]:
    """For a negative contour, (data + |contour|, 0.0); otherwise (data, contour) unchanged."""
    if contour >= 0:
        return data, float(contour)
    return data + np.float32(-contour), 0.0


def crop_to_positive(density: DensityMap) -> tuple[DensityMap, Shape3]:
    """The smallest box holding every voxel above 1e-6, and its start (z, y, x) in the input array.

    Both the first and the last positive plane are kept along every axis. The result is a view of the input
    data with the origin moved to the box's first voxel (start * voxel size, in Å). Raises MapError naming the
    file when no voxel is positive.
    """
    positive = density.data > POSITIVE
    if not positive.any():
        raise MapError(f"{density.path}: no density above {POSITIVE:g} (the map is empty or entirely non-positive "
                       "after the contour shift); nothing to detect")
    bounds = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(positive.any(axis=others))
        bounds.append((int(hits[0]), int(hits[-1]) + 1))
    start = tuple(lo for lo, _ in bounds)
    data = density.data[tuple(slice(lo, hi) for lo, hi in bounds)]
    origin = tuple(o + s * v for o, s, v in zip(density.first_voxel_position, reversed(start), density.voxel_size))
    return replace(density, data=data, origin=origin, nstart=(0, 0, 0)), start


def replace_unreachable_contour(data: np.ndarray, contour: float) -> tuple[float, str]:
    """(contour, "") when some voxel lies above it; else (fallback, warning).

    The fallback is the value at index len/1000 (rounded down) of the sorted densities above 1e-6.
    """
    peak = float(data.max())
    if peak > contour:
        return contour, ""
    positive = data[data > POSITIVE]
    index = int(len(positive) * CONTOUR_FALLBACK_QUANTILE)
    fallback = float(np.partition(positive, index)[index])
    warning = (f"contour {contour:g} is not below the map maximum {peak:g}; using {fallback:g} (the 0.1th "
               "percentile of the positive densities) instead")
    return fallback, warning


def log_histogram_point(data: np.ndarray, bins: int = HISTOGRAM_BINS, fraction: float = HISTOGRAM_FRACTION) -> float:
    """The "log-histogram 98 % point" of the positive (> 0) values of ``data``.

    Histogram of the positive values in ``bins`` equal bins from their minimum to their maximum; each bin weighs
    log(count) (0 for an empty bin, so a single voxel weighs 0 too); the result is the left edge of the first bin
    at which the cumulative weight exceeds (strictly) ``fraction`` of the total. When no bin does (every bin holds
    at most one voxel) the maximum is returned, i.e. nothing is clipped. Raises ValueError without positive values.
    """
    positive = data[data > 0]
    if positive.size == 0:
        raise ValueError("no positive density to normalise")
    counts, edges = np.histogram(positive, bins=bins)
    weights = np.log(counts, out=np.zeros(bins), where=counts > 0)
    cumulative = np.cumsum(weights)
    past = np.flatnonzero(cumulative > fraction * cumulative[-1])
    return float(edges[past[0]]) if past.size else float(edges[-1])


def normalise(data: np.ndarray, contour: float) -> tuple[np.ndarray, float, float]:
    """(normalised data, contour / p, p): negatives set to 0, clipped at p = :func:`log_histogram_point`, min-max
    scaled to [0, 1].

    The contour is divided by p as in the original; this equals the min-max mapping of the contour whenever the
    map holds a zero voxel (the usual case after cropping a map with empty surroundings). Returns a new float32
    array; raises ValueError when the clipped map is constant (nothing to scale).
    """
    out = np.maximum(data, np.float32(0.0), dtype=np.float32)
    p = log_histogram_point(out)
    np.minimum(out, np.float32(p), out=out)
    low, high = float(out.min()), float(out.max())
    if high <= low:
        raise ValueError(f"the density is constant ({high:g}) after clipping at {p:g}; nothing to detect")
    out -= np.float32(low)
    out *= np.float32(1.0 / (high - low))
    return out, contour / p, p


def to_input_grid(values: np.ndarray, working: WorkingMap, density: DensityMap) -> np.ndarray:
    """Values (z, y, x) on ``working.data``'s grid, trilinearly interpolated onto the grid of ``density``.

    density must be the map ``working`` was prepared from. Outside the crop the values are taken as 0, so input
    voxels more than 1 Å outside the cropped box get 0 and those within 1 Å of its faces a linear fall-off (the
    same convention as :func:`resample_to_angstrom_grid`). Returns float32 (z, y, x) of ``density.data.shape``.
    """
    if values.shape != working.data.shape:
        raise ValueError(f"values of shape {values.shape} are not on the working grid {working.data.shape}")
    if angstrom_grid_shape(density.data.shape, density.voxel_size) != tuple(working.grid_shape):
        raise ValueError(f"{density.path}: this map's 1 Å grid is not the one the working map was made from")
    step = list(reversed(density.voxel_size))  # working index per input index, z y x
    offset = [-float(s) for s in working.crop_start]
    return ndimage.affine_transform(
        values.astype(np.float32, copy=False), step, offset=offset, output_shape=density.data.shape,
        output=np.float32, order=1, mode="grid-constant", cval=0.0,
    )
