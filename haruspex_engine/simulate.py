"""Density maps simulated from atomic models with gemmi (test data and the built-in example map).

The map is the sum of the atoms' electron scattering densities (gemmi ``DensityCalculatorE``) blurred by a
Gaussian whose width follows the resolution, sampled on the structure's unit cell at the requested voxel size.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import gemmi
import numpy as np

from haruspex_engine.maps import write_map
from haruspex_engine.structures import example_scene


def resolution_blur(resolution: float) -> float:
    """Extra isotropic B (Å²) that blurs atoms to ``resolution`` (Å).

    A Gaussian of standard deviation resolution / (pi * sqrt(2)) (the usual ``molmap`` choice) has
    B = 8 pi^2 sigma^2 = 4 * resolution^2. It is added on top of each atom's own B-factor.
    """
    return 4.0 * resolution**2


def simulate_map(
    structure: gemmi.Structure,
    *,
    voxel_size: float,
    resolution: float,
    noise_sigma: float = 0.0,
    seed: int = 0,
) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Simulate a cryo-EM-like density map of the first model of ``structure``.

    The structure needs an orthogonal unit cell that holds its atoms (density wraps periodically across the cell
    edges, so leave some padding, as ``structures.assemble`` does). The grid has ceil(edge / voxel_size) points per
    axis, spaced exactly ``voxel_size`` Å, starting at the cell origin; it may run up to one voxel past the cell.

    voxel_size, resolution: Å. noise_sigma: standard deviation of added Gaussian noise, relative to the standard
    deviation of the noise-free map (0: no noise). seed: seeds the noise.
    Returns (density, origin): float32 array with axes (z, y, x), and the position (x, y, z) in Å of voxel (0, 0, 0).
    """
    if voxel_size <= 0 or resolution <= 0:
        raise ValueError(f"voxel_size and resolution must be positive, got {voxel_size} and {resolution}")
    if noise_sigma < 0:
        raise ValueError(f"noise_sigma must be >= 0, got {noise_sigma}")
    cell = structure.cell
    if not cell.is_crystal() or (cell.alpha, cell.beta, cell.gamma) != (90.0, 90.0, 90.0):
        raise ValueError(f"simulate_map needs an orthogonal unit cell around the model, got {cell} "
                         "(put the chains in a box with haruspex_engine.structures.assemble)")
    # A tolerance keeps an edge that is a whole number of voxels (up to rounding) from gaining an extra point.
    size_xyz = [math.ceil(edge / voxel_size - 1e-6) for edge in (cell.a, cell.b, cell.c)]
    density = density_on_grid(structure[0], tuple(size_xyz[::-1]), voxel_size, resolution)
    if noise_sigma > 0:
        noise = np.random.default_rng(seed).standard_normal(density.shape) * (noise_sigma * float(density.std()))
        density += noise.astype(np.float32)
    return density, (0.0, 0.0, 0.0)


def density_on_grid(
    model: gemmi.Model, shape_zyx: tuple[int, int, int], voxel_size: float, resolution: float
) -> np.ndarray:
    """Noise-free simulated density of ``model`` on a grid of ``shape_zyx`` voxels of ``voxel_size`` Å whose voxel
    (0, 0, 0) sits at (0, 0, 0) Å; atoms outside the grid wrap around periodically. float32, axes (z, y, x)."""
    nz, ny, nx = shape_zyx
    calculator = gemmi.DensityCalculatorE()
    calculator.blur = resolution_blur(resolution)
    calculator.grid.set_unit_cell(gemmi.UnitCell(nx * voxel_size, ny * voxel_size, nz * voxel_size, 90.0, 90.0, 90.0))
    calculator.grid.set_size(nx, ny, nz)
    calculator.grid.fill(0.0)
    calculator.add_model_density_to_grid(model)
    return np.ascontiguousarray(calculator.grid.array.transpose(2, 1, 0), dtype=np.float32)


def write_example_map(path: str | os.PathLike, voxel_size: float = 1.1, resolution: float = 4.0) -> Path:
    """Simulate the built-in example scene (``structures.example_scene``) and write it as an MRC file at ``path``.

    voxel_size, resolution: Å. No noise. Returns the path written.
    """
    density, origin = simulate_map(example_scene(), voxel_size=voxel_size, resolution=resolution)
    out = Path(path)
    write_map(out, density, (voxel_size,) * 3, origin)
    return out
