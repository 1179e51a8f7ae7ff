"""Training augmentation of the Haruspex network: the 24 proper rotations of a cube and the random 40³ crop.

As the published training graph does it, one draw serves a whole batch: every 70³ training segment of the batch is
turned by the same 90° rotation (no reflections), then the same crop offset o ∈ [0, 30)³ cuts the 40³ network
input ``view[o:o+40]`` and its 20³ target ``view[o+10:o+30]`` (the central 20³ of the input, which is what the
network predicts). Arrays are (..., z, y, x): the last three axes are the cube, leading axes (the batch) are kept.
"""
from __future__ import annotations

import itertools

import numpy as np

from haruspex_engine.annotation.checkpoint import BOX, CORE
from haruspex_engine.training import SEGMENT_SIZE

#: Crop offsets are drawn from [0, MAX_OFFSET) along each axis.
MAX_OFFSET = SEGMENT_SIZE - BOX  # 30


def cube_rotations() -> np.ndarray:
    """The 24 proper rotations of a cube as int (24, 3, 3) signed permutation matrices with determinant +1.

    Matrix R maps the voxel index vector p (z, y, x), measured from the cube centre, to R @ p.
    """
    matrices = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            matrix = np.zeros((3, 3), dtype=int)
            matrix[np.arange(3), perm] = signs
            if round(np.linalg.det(matrix)) == 1:
                matrices.append(matrix)
    return np.array(matrices)


def rotate(cube: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """``cube`` (..., n, n, n) turned by ``rotation`` (3×3 signed permutation): out[..., R @ p] = cube[..., p].

    Returns a view (transpose + flips, no copy).
    """
    lead = cube.ndim - 3
    if cube.ndim < 3 or len(set(cube.shape[lead:])) != 1:
        raise ValueError(f"expected (..., n, n, n) cubes, got shape {cube.shape}")
    source_axis = np.abs(rotation).argmax(axis=1)      # new axis i is old axis source_axis[i]
    sign = rotation[np.arange(3), source_axis]
    out = np.transpose(cube, list(range(lead)) + [lead + int(a) for a in source_axis])
    flipped = [lead + i for i in range(3) if sign[i] < 0]
    return np.flip(out, axis=flipped) if flipped else out


def crop(views: np.ndarray, offset: tuple[int, int, int], size: int) -> np.ndarray:
    """``views[..., o:o+size]`` along each of the last three axes (z, y, x), as a contiguous copy."""
    window = tuple(slice(o, o + size) for o in offset)
    return np.ascontiguousarray(views[(Ellipsis, *window)])


def input_and_target(density: np.ndarray, labels: np.ndarray, offset: tuple[int, int, int]
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The network input (…, 40, 40, 40) at ``offset`` and the labels of its central 20³ (…, 20, 20, 20)."""
    margin = (BOX - CORE) // 2
    return crop(density, offset, BOX), crop(labels, tuple(o + margin for o in offset), CORE)


def draw_augmentation(rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int, int]]:
    """One batch's rotation (3×3, uniform over the 24) and crop offset (z, y, x), uniform in [0, 30)³."""
    rotations = cube_rotations()
    rotation = rotations[rng.integers(len(rotations))]
    offset = tuple(int(o) for o in rng.integers(0, MAX_OFFSET, size=3))
    return rotation, offset
