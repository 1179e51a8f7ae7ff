"""Strand direction from the handedness of the nucleotides: right along ideal strands either way round, paths cut
where a fold-back onto the paired strand reverses it."""
from __future__ import annotations

import gemmi
import numpy as np
import pytest

from haruspex_engine.nucleic.building.attach import PathAttachment, attach_path
from haruspex_engine.nucleic.building.ideal import ideal_na_duplex
from haruspex_engine.nucleic.building.nucleotides import SUGAR_ATOMS
from haruspex_engine.nucleic.building.strand_direction import (
    FLIP_COST_BRIDGED,
    FLIP_COST_OPEN,
    Stretch,
    direction_evidence,
    direction_stretches,
    split_strands,
)

BASE_RING = ("N1", "C2", "N3", "C4", "C5", "C6")  # ring atoms every base has
NO_MAPS = np.zeros((8, 1, 1, 1), np.float32)  # base-type scores play no part here


def _nodes(residues: list[gemmi.Residue]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hand-placed nodes of residues: (sugar-atom centroids, P atoms, base-ring centroids), each (n, 3) Å."""
    def centre(residue: gemmi.Residue, names) -> np.ndarray:
        return np.mean([residue[name][0].pos.tolist() for name in names if residue.find_atom(name, "*")], axis=0)

    return (np.array([centre(r, SUGAR_ATOMS) for r in residues]), np.array([centre(r, ["P"]) for r in residues]),
            np.array([centre(r, BASE_RING) for r in residues]))


def _attached(sugar: np.ndarray, phosphate: np.ndarray, base: np.ndarray) -> PathAttachment:
    return attach_path(sugar, phosphate, {"base": base}, NO_MAPS, (0.0, 0.0, 0.0))


@pytest.mark.parametrize("dna", [False, True], ids=["A-RNA", "B-DNA"])
def test_the_handedness_gives_the_direction_along_an_ideal_strand_either_way_round(dna: bool) -> None:
    first, second = ideal_na_duplex("GACTGCATGG" if dna else "GACUGCAUGG", dna=dna)
    for strand in (first, second):
        sugar, phosphate, base = _nodes(list(strand))
        forward = direction_evidence(sugar, _attached(sugar, phosphate, base))
        backward = direction_evidence(sugar[::-1], _attached(sugar[::-1], phosphate, base))
        assert forward[1:-1].min() > 0.3 and backward[1:-1].max() < -0.3
        assert direction_stretches(forward, np.ones(len(sugar) - 1, bool)) == [
            Stretch(0, len(sugar), False, pytest.approx(forward.sum()))]
        assert direction_stretches(backward, np.ones(len(sugar) - 1, bool))[0].reverse is True


def test_a_node_without_phosphates_or_base_gives_no_evidence() -> None:
    sugar = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 0.0], [12.0, 0.0, 0.0]])
    attachment = _attached(sugar, np.zeros((0, 3)), np.array([[6.0, 5.0, 0.0]]))
    np.testing.assert_array_equal(direction_evidence(sugar, attachment), 0.0)
    assert direction_stretches(np.zeros(3), np.ones(2, bool)) == [Stretch(0, 3, None, 0.0)]
    assert direction_stretches(np.zeros(0), np.zeros(0, bool)) == []


@pytest.mark.parametrize(("bridged", "cuts"), [(True, []), (False, [3, 6])])
def test_a_few_contrary_nodes_cut_a_path_only_where_no_phosphate_bridges_it(bridged: bool, cuts: list[int]) -> None:
    """Three contrary nodes in the middle: setting them apart takes two flips, worth it (gain 2 × 2.5) only when
    neither step into and out of them is bridged (2 × FLIP_COST_OPEN), not when both are (2 × FLIP_COST_BRIDGED)."""
    evidence = np.array([0.9, 0.9, 0.9, -0.9, -0.8, -0.8, 0.9, 0.9, 0.9])
    steps = np.ones(8, bool)
    steps[[2, 5]] = bridged
    assert 2 * FLIP_COST_OPEN < 2 * 2.5 < 2 * FLIP_COST_BRIDGED
    stretches = direction_stretches(evidence, steps)
    assert [s.start for s in stretches[1:]] == cuts
    assert [s.reverse for s in stretches] == ([False] if bridged else [False, True, False])


def _folded_path(bridged_hop: bool) -> tuple[np.ndarray, PathAttachment, int]:
    """A path up strand 1 of an ideal 12-bp A-RNA duplex (residues 1–8, 5′→3′) that hops onto the partner of
    residue 8 and goes on up strand 2, against its 5′→3′ direction, to its 5′ end: hand-placed nodes and their
    attachment, and the index of the hop step. The phosphates are the P atoms of the residues on the path (each
    residue's own, 5′, one); with ``bridged_hop`` one more, the 3′ phosphate of the first strand-2 residue, moved
    to the middle of the hop, where it bridges the two sugars as a strand's phosphate does (the hop rule then
    misses the hop)."""
    first, second = ideal_na_duplex("GACUGCAUGGCA")
    residues = list(first)[:8] + list(second)[4::-1]  # strand-2 residue 5 pairs with strand-1 residue 8
    sugar, phosphate, base = _nodes(residues)
    if bridged_hop:
        phosphate = np.vstack([phosphate, (sugar[7] + sugar[8]) / 2])
    return sugar, _attached(sugar, phosphate, base), 7


def test_a_fold_back_over_a_bridged_hop_is_cut_where_the_direction_flips() -> None:
    sugar, attachment, hop = _folded_path(bridged_hop=True)
    stretches = split_strands(sugar, attachment)
    assert [(s.reverse, s.cut) for s in stretches] == [(False, "path_start"), (True, "direction_flip")]
    # the two nodes of the hop share only the moved phosphate, which says nothing about direction: either may
    # end the first stretch
    assert stretches[1].start in (hop + 1, hop + 2) and stretches[1].stop == len(sugar)


def test_an_unbridged_hop_is_cut_as_a_hop_and_each_side_keeps_its_direction() -> None:
    sugar, attachment, hop = _folded_path(bridged_hop=False)
    stretches = split_strands(sugar, attachment)
    assert [(s.start, s.stop, s.reverse, s.cut) for s in stretches] == [
        (0, hop + 1, False, "path_start"), (hop + 1, len(sugar), True, "base_pair")]
