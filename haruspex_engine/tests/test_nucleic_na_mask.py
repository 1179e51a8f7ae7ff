"""The nucleic-acid-masked map (CryoREAD's map for refinement): the masking rule, and build-na writing it on the
working grid even when no model is built."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from haruspex_engine.maps import read_map, write_map
from haruspex_engine.nucleic.building.na_mask import (
    NUCLEIC_MAX_PROBABILITY,
    PROTEIN_MIN_PROBABILITY,
    nucleic_acid_masked,
)
from haruspex_engine.nucleic.classes import STAGE2_CLASSES

SHAPE = (6, 5, 4)
ORIGIN = (12.0, -7.0, 3.0)  # Å, header origin of the working grid


def _maps(**values: float) -> np.ndarray:
    """Stage-2 maps (8, z, y, x): every class 0 except the given constant probabilities."""
    stage2 = np.zeros((len(STAGE2_CLASSES), *SHAPE), np.float32)
    for name, value in values.items():
        stage2[STAGE2_CLASSES.index(name)] = value
    return stage2


def _density() -> np.ndarray:
    return np.linspace(0.05, 1.0, np.prod(SHAPE), dtype=np.float32).reshape(SHAPE)


@pytest.mark.parametrize(("probabilities", "kept"), [
    ({"sugar": 0.5}, True),
    ({"phosphate": 0.2, "base": 0.2}, True),
    ({"sugar": 0.04, "phosphate": 0.04, "base": 0.04}, True),  # the three are summed: 0.12 > 0.1
    ({"sugar": 0.03, "phosphate": 0.03, "base": 0.03}, False),
    ({"sugar": NUCLEIC_MAX_PROBABILITY}, False),  # at the limit: removed
    ({"A": 0.9, "G": 0.9, "UT": 0.9, "C": 0.9}, False),  # base types alone are not nucleic-acid evidence
    ({"sugar": 0.9, "protein": PROTEIN_MIN_PROBABILITY}, False),  # protein at the limit: removed
    ({"sugar": 0.9, "protein": 0.59}, True),
])
def test_rule_keeps_density_only_where_nucleic_acid_and_not_protein(probabilities, kept) -> None:
    density = _density()
    masked = nucleic_acid_masked(density, _maps(**probabilities))
    assert masked.dtype == np.float32 and masked.shape == SHAPE
    np.testing.assert_array_equal(masked, density if kept else np.zeros(SHAPE))


def test_rule_works_voxel_by_voxel_with_the_contour() -> None:
    density = _density()
    stage2 = _maps(sugar=0.5)
    stage2[STAGE2_CLASSES.index("protein"), 0] = 0.8  # protein in the first z plane
    stage2[STAGE2_CLASSES.index("sugar"), :, 0] = 0.0  # no nucleic acid in the first y row
    given = (density.copy(), stage2.copy())
    masked = nucleic_acid_masked(density, stage2, contour=0.5)
    expected = density.copy()
    expected[0], expected[:, 0] = 0.0, 0.0
    expected[density <= 0.5] = 0.0
    np.testing.assert_array_equal(masked, expected)
    assert np.count_nonzero(masked) > 0
    np.testing.assert_array_equal(density, given[0])  # inputs untouched
    np.testing.assert_array_equal(stage2, given[1])


def test_maps_off_the_density_grid_are_refused() -> None:
    with pytest.raises(ValueError, match="do not match the density grid"):
        nucleic_acid_masked(_density(), _maps()[:, :-1])
    with pytest.raises(ValueError, match="8 classes expected"):
        nucleic_acid_masked(_density(), _maps()[:7])


def test_build_na_writes_the_masked_map_on_the_working_grid_without_a_model(tmp_path: Path) -> None:
    """No sugar detected, so no model; the masked map is still written, listed, on the working grid, with the
    protein half and the density at or below the summary's contour removed."""
    density = _density()
    stage2 = _maps(phosphate=0.3)
    stage2[STAGE2_CLASSES.index("protein"), :3] = 0.9
    outputs = {}
    for name, values in [*zip(STAGE2_CLASSES, stage2), ("working", density)]:
        outputs[name] = str(tmp_path / f"rna_{name}.mrc")
        write_map(outputs[name], values, (1.0, 1.0, 1.0), ORIGIN)
    summary = tmp_path / "rna_summary.json"
    summary.write_text(json.dumps({"outputs": outputs, "output_grid": "working",
                                   "contour": {"given": 0.4, "normalised": 0.2, "scale": 2.0}}))
    result = subprocess.run([sys.executable, "-m", "haruspex_engine", "build-na", str(summary), "-o",
                             str(tmp_path / "out")], capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "out" / "rna_build.json").read_text())
    assert report["residues"] == 0
    assert report["outputs"] == {"na_masked_map": str(tmp_path / "out" / "rna_na_masked.mrc")}
    masked = read_map(report["outputs"]["na_masked_map"])
    assert masked.voxel_size == (1.0, 1.0, 1.0) and masked.origin == ORIGIN
    expected = np.where(density <= 0.2, 0.0, density)
    expected[:3] = 0.0
    np.testing.assert_array_equal(masked.data, expected)
    assert np.count_nonzero(masked.data) > 0
