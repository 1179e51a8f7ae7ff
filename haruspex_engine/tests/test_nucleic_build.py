"""Model building without a sequence, end to end on clean oracle maps: the model covers the RNA it came from."""
from __future__ import annotations

import numpy as np
import pytest

from haruspex_engine.nucleic.building.build import build_nucleic_model
from haruspex_engine.nucleic.building.evaluate import evaluate_model
from haruspex_engine.testing.oracle_maps import CLEAN, oracle_maps
from haruspex_engine.testing.rna_models import deposited_rna, ideal_rna


@pytest.mark.parametrize("make", [ideal_rna, deposited_rna], ids=["ideal-30nt", "6v5b-78nt"])
def test_clean_oracle_maps_give_the_model_back(make) -> None:
    reference = make()
    maps = oracle_maps(reference, CLEAN)
    result = build_nucleic_model(maps.stage2, maps.density, maps.origin, solution_limit=300)
    assert result.structure is not None and result.trace.stopped_by == "solution limit"
    scores = evaluate_model(result.structure, reference)
    assert scores["backbone_coverage_3A"] >= 0.9 and scores["backbone_precision_3A"] >= 0.9
    assert scores["sequence_recall"] >= 0.85 and scores["rmsd_c4_A"] < 1.5
    confidence = [atom.b_iso for chain in result.structure[0] for residue in chain for atom in residue]
    assert 0.0 < min(confidence) and max(confidence) <= 1.0


def test_maps_without_nucleic_acid_give_no_model() -> None:
    shape = (30, 30, 30)
    result = build_nucleic_model(np.zeros((8,) + shape, np.float32), np.ones(shape, np.float32), (0.0, 0.0, 0.0))
    assert result.structure is None and result.node_counts["sugar"] == 0


def test_no_chain_runs_across_a_base_pair_at_realistic_corruption() -> None:
    """On these maps (seed 0) the trace links the sugars of two paired residues at a helix end (64 → 15 of the
    deposited chain); the path must be cut there, so every built chain follows one strand of the reference."""
    from scipy.spatial import cKDTree

    from haruspex_engine.testing.oracle_maps import REALISTIC

    reference = deposited_rna()
    c4 = np.array([residue["C4'"][0].pos.tolist() for residue in reference[0][0]])
    maps = oracle_maps(reference, REALISTIC)
    result = build_nucleic_model(maps.stage2, maps.density, maps.origin, solution_limit=300)
    for chain in result.structure[0]:
        distance, index = cKDTree(c4).query([residue["C4'"][0].pos.tolist() for residue in chain])
        steps = np.abs(np.diff(index[distance < 3.0]))
        assert steps.size and steps.max() <= 3, (chain.name, index.tolist())
