"""Direction evidence from the fit into the maps: a strand built the right way round fits its maps better than
built backwards, also where no phosphate node was found and the handedness says nothing."""
from __future__ import annotations

import gemmi
import numpy as np
import pytest

from haruspex_engine.nucleic.building.attach import attach_path
from haruspex_engine.nucleic.building.fit_direction import fit_direction_evidence
from haruspex_engine.nucleic.building.ideal import ideal_na_duplex
from haruspex_engine.nucleic.building.nucleotides import SUGAR_ATOMS
from haruspex_engine.nucleic.building.residue_fit import fit_maps
from haruspex_engine.nucleic.building.strand_direction import direction_evidence, split_strands
from haruspex_engine.testing.oracle_maps import CLEAN, oracle_maps

BASE_RING = ("N1", "C2", "N3", "C4", "C5", "C6")


def _duplex() -> gemmi.Structure:
    structure = gemmi.Structure()
    structure.add_model(gemmi.Model(1))
    for chain in ideal_na_duplex("GACUGCAUGGCA"):
        structure[0].add_chain(chain)
    return structure


def _centres(residues, names) -> np.ndarray:
    return np.array([np.mean([r[n][0].pos.tolist() for n in names if r.find_atom(n, "*")], axis=0)
                     for r in residues])


@pytest.mark.parametrize("with_phosphates", [True, False], ids=["phosphate-nodes", "no-phosphate-nodes"])
def test_the_fit_tells_which_way_a_strand_runs(with_phosphates: bool) -> None:
    structure = _duplex()
    maps = oracle_maps(structure, CLEAN)
    strand = list(structure[0][0])
    sugar, base = _centres(strand, SUGAR_ATOMS), _centres(strand, BASE_RING)
    phosphate = _centres(strand[1:], ["P"]) if with_phosphates else np.zeros((0, 3))
    targets = fit_maps(maps.stage2, maps.density, maps.origin, sugar)
    paths = []
    for order in (slice(None), slice(None, None, -1)):
        paths.append((sugar[order], attach_path(sugar[order], phosphate, {"base": base}, maps.stage2, maps.origin)))
    forward, backward = fit_direction_evidence(paths, targets, dna=False)
    assert (forward > 0).mean() >= 0.8 and (backward < 0).mean() >= 0.8, (forward, backward)
    if not with_phosphates:  # the handedness has nothing to go on; the fit alone orients the strand
        assert not direction_evidence(*paths[1]).any()
        stretches = split_strands(*paths[1], backward)
        assert [s.reverse for s in stretches] == [True]


def test_paths_too_short_or_without_bases_get_no_fit_evidence() -> None:
    structure = _duplex()
    maps = oracle_maps(structure, CLEAN)
    sugar = _centres(list(structure[0][0])[:1], SUGAR_ATOMS)
    targets = fit_maps(maps.stage2, maps.density, maps.origin, sugar)
    lone = (sugar, attach_path(sugar, np.zeros((0, 3)), {"base": np.zeros((0, 3))}, maps.stage2, maps.origin))
    (evidence,) = fit_direction_evidence([lone], targets, dna=False)
    np.testing.assert_array_equal(evidence, 0.0)
