"""Warnings about maps that read correctly but hold implausible values or an image-stack header."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from haruspex_engine.map_checks import map_warnings, report_map_warnings
from haruspex_engine.maps import DensityMap, read_map
from haruspex_engine.simulate import simulate_map
from haruspex_engine.structures import assemble, example_scene
from haruspex_engine.training.scenes import random_duplex, random_scene, scene_map

SHARED_3J6B = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "protein-3j6b" / "2566_3J6B_9.mrc"


@pytest.fixture(scope="module")
def example() -> DensityMap:
    """The built-in example scene simulated at 4 Å on a 1.1 Å grid, placed away from the coordinate origin."""
    density, _ = simulate_map(example_scene(), voxel_size=1.1, resolution=4.0)
    return DensityMap(data=density, voxel_size=(1.1, 1.1, 1.1), origin=(100.0, -50.0, 20.0), path="example.mrc")


def _ordinary_maps(example: DensityMap) -> dict[str, DensityMap]:
    rng = np.random.default_rng(7)
    duplex = assemble(random_duplex(rng, iter("AB")), cell_padding_A=40.0)
    small_in_big_box, _ = simulate_map(duplex, voxel_size=1.0, resolution=2.0)  # ~100 s.d. peaks: must not warn
    scenes = {f"scene {k}": scene_map(random_scene(rng), rng) for k in range(2)}  # noise and a random scale
    return {
        "example": example,
        "example at 2 Å": replace(example, data=simulate_map(example_scene(), voxel_size=1.1, resolution=2.0)[0]),
        "16-bit integer scale": example.with_data(np.rint(example.data * (32767 / example.data.max()))),
        "small scale": example.with_data(example.data * 1e-3),
        "duplex in a mostly empty box": DensityMap(data=small_in_big_box, voxel_size=(1.0, 1.0, 1.0)),
        **scenes,
    }


def test_ordinary_simulated_maps_do_not_warn(example):
    for name, density in _ordinary_maps(example).items():
        assert map_warnings(density) == [], name


@pytest.mark.skipif(not SHARED_3J6B.exists(), reason="../shared/data/protein-3j6b not present")
def test_a_real_map_does_not_warn():
    assert map_warnings(read_map(SHARED_3J6B)) == []


@pytest.mark.parametrize("factor, size", [(1e30, "large"), (1e-9, "small")])
def test_maps_scaled_far_beyond_cryo_em_values_warn(example, factor, size):
    (warning,) = map_warnings(example.with_data(example.data * np.float32(factor)))
    assert warning.startswith(f"example.mrc: implausibly {size} density values")
    assert "rescale it" in warning


def test_a_single_huge_voxel_is_named_with_its_position_in_angstrom(example):
    data = example.data.copy()
    data[3, 4, 5] = 1e30
    (warning,) = map_warnings(example.with_data(data))
    x, y, z = example.position_of((3, 4, 5))  # (105.5, -45.6, 23.3) Å
    assert warning.startswith("example.mrc: 1 voxel lies far beyond the rest of the map: 1e+30 at "
                              f"({x:.1f}, {y:.1f}, {z:.1f}) Å")
    assert "mask them out" in warning


def test_a_bright_but_ordinary_peak_does_not_warn(example):
    data = example.data.copy()
    data[10, 10, 10] = 3 * data.max()  # a heavy atom: far above the mean, but not 10x the map's 99.99th percentile
    assert map_warnings(example.with_data(data)) == []


def test_every_warning_is_printed_with_the_command_name(example, capsys):
    data = example.data * np.float32(1e-9)
    data[3, 4, 5] = 1.0
    warnings = report_map_warnings(example.with_data(data), "detect-na")
    assert len(warnings) == 2
    assert capsys.readouterr().err == "".join(f"detect-na: warning: {w}\n" for w in warnings)
