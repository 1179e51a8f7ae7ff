"""Model building without a sequence, end to end on clean oracle maps: the model covers the RNA it came from, and
no stretch of it runs 3′→5′ where a traced path folds back onto the paired strand."""
from __future__ import annotations

from pathlib import Path

import gemmi
import numpy as np
import pytest
from scipy.spatial import cKDTree

from haruspex_engine.nucleic.building import build, strand_direction
from haruspex_engine.nucleic.building.build import build_nucleic_model
from haruspex_engine.nucleic.building.evaluate import evaluate_model
from haruspex_engine.nucleic.building.ideal import ideal_na_duplex
from haruspex_engine.nucleic.building.nucleotides import SUGAR_ATOMS
from haruspex_engine.nucleic.building.trace import TraceResult
from haruspex_engine.testing.oracle_maps import CLEAN, Corruption, oracle_maps
from haruspex_engine.testing.rna_models import deposited_rna, ideal_rna

#: The TYMV tRNA-like structure (84 nt, H-type pseudoknot) of the shared corpus, beside the project.
PSEUDOKNOT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "na-corpus" / "4P5J.pdb"


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


def _structure(*chains: gemmi.Chain) -> gemmi.Structure:
    structure = gemmi.Structure()
    structure.add_model(gemmi.Model(1))
    for chain in chains:
        structure[0].add_chain(chain)
    structure.setup_entities()
    return structure


def test_a_path_that_folds_back_onto_the_paired_strand_is_built_in_two_correct_stretches(monkeypatch) -> None:
    """The trace is replaced by one path up strand 1 of an ideal 12-bp A-RNA duplex (residues 1–8) that crosses to
    the partner of residue 8 and goes on up strand 2, against its 5′→3′ direction, to its 5′ end; the hop rule is
    switched off, so only the direction evidence can cut it. Read in one direction, 5 or 8 of its 13 residues would
    run backwards with their C4′ 3.5–5 Å off."""
    first, second = ideal_na_duplex("GACUGCAUGGCA")
    maps = oracle_maps(_structure(first, second), Corruption())
    on_path = list(first)[:8] + list(second)[4::-1]
    centres = np.array([np.mean([atom.pos.tolist() for atom in residue if atom.name in SUGAR_ATOMS], axis=0)
                        for residue in on_path])

    def folded_trace(xyz: np.ndarray, *args, **kwargs) -> TraceResult:
        path = cKDTree(xyz).query(centres)[1]
        return TraceResult((path,), "solution limit", 0.0, 1, 0, len(xyz) - len(path))

    monkeypatch.setattr(build, "trace_backbone", folded_trace)
    monkeypatch.setattr(strand_direction, "base_pair_hops", lambda *args: np.zeros(0, dtype=int))
    result = build_nucleic_model(maps.stage2, maps.density, maps.origin)
    assert result.strands["cut_direction_flip"] == 1 and result.strands["cut_base_pair"] == 0
    reference_a, reference_b = gemmi.Chain("A"), gemmi.Chain("B")
    for residue in list(first)[:8]:
        reference_a.add_residue(residue)
    for residue in list(second)[:5]:
        reference_b.add_residue(residue)
    scores = evaluate_model(result.structure, _structure(reference_a, reference_b))
    assert scores["backbone_coverage_3A"] >= 0.9 and scores["backbone_precision_3A"] >= 0.9
    assert scores["reversed_residues"] == 0 and scores["counts"]["matched_steps"] >= 9


def test_a_pseudoknot_on_perfect_maps_is_built_without_reversed_stretches() -> None:
    """4P5J on perfect oracle maps (seed 0): the routing links sugars of different strands at its junctions and
    one path folds back onto a paired strand; read as one direction per path, 7 residues ran backwards and the
    coverage was 0.76."""
    if not PSEUDOKNOT.is_file():
        pytest.skip(f"{PSEUDOKNOT} is absent (../shared not beside the project)")
    reference = gemmi.read_structure(str(PSEUDOKNOT))
    reference.remove_ligands_and_waters()
    maps = oracle_maps(reference, Corruption())
    result = build_nucleic_model(maps.stage2, maps.density, maps.origin, solution_limit=300)
    scores = evaluate_model(result.structure, reference)
    assert scores["backbone_coverage_3A"] >= 0.9 and scores["backbone_precision_3A"] >= 0.9
    assert scores["reversed_fraction"] <= 0.02
