"""Values of maps on the 1 Å working grid at model points (x, y, z) Å: the one place that turns positions into
voxel indices for the model-building modules."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from haruspex_engine.maps import Vec3


def fractional_indices(points: np.ndarray, origin: Vec3) -> np.ndarray:
    """(…, 3) fractional voxel indices (z, y, x) of points (…, 3) (x, y, z) Å on a 1 Å grid whose voxel (0, 0, 0) is
    at ``origin``."""
    return (np.asarray(points, dtype=np.float64) - np.asarray(origin, dtype=np.float64))[..., ::-1]


def nearest_values(volume: np.ndarray, points: np.ndarray, origin: Vec3, *, off_grid: str = "zero") -> np.ndarray:
    """Values of ``volume`` (…, Z, Y, X) at the voxel nearest to each point (…P, 3) → (…, …P).

    off_grid: "zero" gives 0 for points whose nearest voxel lies outside the grid; "border" reads the nearest voxel
    on the grid's border instead.
    """
    if off_grid not in ("zero", "border"):
        raise ValueError(f"off_grid must be 'zero' or 'border', not {off_grid!r}")
    shape = np.asarray(volume.shape[-3:])
    index = np.rint(fractional_indices(points, origin)).astype(np.intp)
    clipped = np.clip(index, 0, shape - 1)
    values = volume[..., clipped[..., 0], clipped[..., 1], clipped[..., 2]]
    if off_grid == "border":
        return values
    inside = np.all((index >= 0) & (index < shape), axis=-1)
    return np.where(inside, values, 0.0)


def trilinear_values(volume: np.ndarray, points: np.ndarray, origin: Vec3) -> np.ndarray:
    """Trilinear interpolation of ``volume`` (Z, Y, X) at points (…, 3) → (…); 0 outside the grid."""
    index = fractional_indices(points, origin)
    values = ndimage.map_coordinates(volume, index.reshape(-1, 3).T, order=1, mode="constant", cval=0.0)
    return values.reshape(index.shape[:-1])
