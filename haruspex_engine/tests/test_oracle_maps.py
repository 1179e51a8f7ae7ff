"""The oracle detection maps used to test model building: classes at the right atoms, corruption as asked."""
from __future__ import annotations

from pathlib import Path

import gemmi
import numpy as np
import pytest

from haruspex_engine.nucleic.building.nucleotides import PHOSPHATE_ATOMS, SUGAR_ATOMS
from haruspex_engine.nucleic.classes import STAGE2_CLASSES
from haruspex_engine.structures import ideal_alpha_helix
from haruspex_engine.testing.oracle_maps import (
    BASE_TYPE,
    CLEAN,
    PRESETS,
    REALISTIC,
    Corruption,
    _noise,
    base_type,
    oracle_maps,
    preset,
)
from haruspex_engine.testing.rna_models import ideal_rna

RNA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cryoread-example" / "6v5b_drna.pdb"


def _tiny_rna() -> gemmi.Structure:
    """Two nucleotides (A then U) and one alanine, with a few atoms each at hand-picked positions (Å)."""
    structure = gemmi.Structure()
    model = gemmi.Model(1)
    chain = gemmi.Chain("A")
    layout = {"A": {"P": (0, 0, 0), "C4'": (4, 0, 0), "N9": (8, 0, 0)},
              "U": {"P": (0, 10, 0), "C4'": (4, 10, 0), "N1": (8, 10, 0)},
              "ALA": {"CA": (0, 0, 12)}}
    for number, (name, atoms) in enumerate(layout.items(), start=1):
        residue = gemmi.Residue()
        residue.name, residue.seqid = name, gemmi.SeqId(number, " ")
        for atom_name, xyz in atoms.items():
            atom = gemmi.Atom()
            atom.name, atom.pos = atom_name, gemmi.Position(*xyz)
            atom.element = gemmi.Element(atom_name[0])
            residue.add_atom(atom)
        chain.add_residue(residue)
    model.add_chain(chain)
    structure.add_model(model)
    return structure


def _value(maps, cls: str, xyz) -> float:
    x, y, z = (int(round(c - o)) for c, o in zip(xyz, maps.origin))
    return float(maps.stage2[STAGE2_CLASSES.index(cls)][z, y, x])


def test_each_atom_paints_its_class_only() -> None:
    maps = oracle_maps(_tiny_rna(), Corruption())
    assert maps.stage2.shape[0] == 8 and maps.stage2.shape[1:] == maps.density.shape
    assert _value(maps, "phosphate", (0, 0, 0)) == pytest.approx(1.0)
    assert _value(maps, "sugar", (4, 10, 0)) == pytest.approx(1.0)
    assert _value(maps, "base", (8, 0, 0)) == pytest.approx(1.0) and _value(maps, "A", (8, 0, 0)) == pytest.approx(1.0)
    assert _value(maps, "UT", (8, 10, 0)) == pytest.approx(1.0) and _value(maps, "A", (8, 10, 0)) < 1e-6
    assert _value(maps, "protein", (0, 0, 12)) == pytest.approx(1.0) and _value(maps, "sugar", (0, 0, 12)) < 1e-6
    assert _value(maps, "sugar", (0, 0, 0)) < 1e-6  # 4 Å from the nearest sugar atom: beyond the 3σ blob
    # one voxel off an atom: exp(-1/2)
    assert _value(maps, "phosphate", (1, 0, 0)) == pytest.approx(np.exp(-0.5), rel=1e-5)
    # the simulated density is highest near atoms
    x, y, z = (int(round(-o)) for o in maps.origin)
    assert maps.density[z, y, x] > 10 * maps.density[0, 0, 0]


def test_corruption_is_reproducible_and_as_large_as_asked() -> None:
    if not RNA.is_file():
        pytest.skip(f"{RNA} is absent (../shared not beside the project)")
    structure = gemmi.read_structure(str(RNA))
    first, again = oracle_maps(structure, REALISTIC), oracle_maps(structure, REALISTIC)
    np.testing.assert_array_equal(first.stage2, again.stage2)
    assert len(first.dropped) == round(0.05 * 78) and len(first.confused) == round(0.15 * 78)
    assert not set(first.dropped) & set(first.confused)
    clean = oracle_maps(structure, Corruption())
    noise = first.stage2 - clean.stage2
    assert 0.05 < float(noise[:, ::3, ::3, ::3].std()) < 0.2
    other = oracle_maps(structure, Corruption(**{**REALISTIC.__dict__, "seed": 1}))
    assert other.dropped != first.dropped


CORPUS = RNA.parents[1] / "na-corpus"
MODIFIED_PARENTS = {"PSU": "UT", "H2U": "UT", "5MU": "UT", "1MA": "A", "7MG": "G", "OMG": "G", "2MG": "G",
                    "M2G": "G", "OMC": "C"}


def _corpus(name: str) -> gemmi.Structure:
    path = CORPUS / name
    if not path.is_file():
        pytest.skip(f"{path} is absent (../shared/data/na-corpus not beside the project)")
    return gemmi.read_structure(str(path))


def _voxel(maps, xyz) -> tuple[int, int, int]:
    """(z, y, x) index of the voxel nearest to ``xyz`` (Å)."""
    x, y, z = (int(round(c - o)) for c, o in zip(xyz, maps.origin))
    return z, y, x


def _classes_at(maps, xyz) -> np.ndarray:
    """The eight class values (STAGE2_CLASSES order) at the voxel nearest to ``xyz`` (Å)."""
    z, y, x = _voxel(maps, xyz)
    return maps.stage2[:, z, y, x]


def _channel(maps, cls: str) -> np.ndarray:
    return maps.stage2[STAGE2_CLASSES.index(cls)]


def _single_atoms(count: int) -> gemmi.Structure:
    """``count`` adenosine residues with nothing but a P atom each, on whole Å 20 Å apart along x."""
    structure = gemmi.Structure()
    model, chain = gemmi.Model(1), gemmi.Chain("A")
    for k in range(count):
        residue, atom = gemmi.Residue(), gemmi.Atom()
        residue.name, residue.seqid = "A", gemmi.SeqId(k + 1, " ")
        atom.name, atom.element, atom.pos = "P", gemmi.Element("P"), gemmi.Position(20.0 * k, 0, 0)
        residue.add_atom(atom)
        chain.add_residue(residue)
    model.add_chain(chain)
    structure.add_model(model)
    return structure


def _rna_and_protein() -> gemmi.Structure:
    """A 10-nt ideal RNA and a 20-residue alanine helix starting 25 Å beyond the RNA along x."""
    structure = ideal_rna("GGCAUCAGUC")
    far = max(atom.pos.x for residue in structure[0][0] for atom in residue) + 25.0
    structure[0].add_chain(ideal_alpha_helix(20, chain_id="P", start=(far, 0.0, 0.0)))
    return structure


def _lag1_correlation(values: np.ndarray) -> float:
    """Correlation of each voxel with its +x neighbour."""
    return float(np.corrcoef(values[..., :-1].ravel(), values[..., 1:].ravel())[0, 1])


def test_correlated_noise_has_the_asked_sd_and_neighbour_correlation() -> None:
    rng = np.random.default_rng(0)
    white, smooth = _noise((40, 40, 40), 0.1, 0.0, rng), _noise((40, 40, 40), 0.1, 1.5, rng)
    assert float(white.std()) == pytest.approx(0.1, rel=0.02) and float(smooth.std()) == pytest.approx(0.1, rel=1e-3)
    assert abs(_lag1_correlation(white)) < 0.05
    assert _lag1_correlation(smooth) == pytest.approx(np.exp(-1 / (4 * 1.5**2)), abs=0.03)  # smoothed white noise


def test_correlation_range_draws_a_width_per_channel() -> None:
    structure = ideal_rna("GGCAUC")
    clean = oracle_maps(structure, Corruption())
    maps = oracle_maps(structure, Corruption(noise_sigma=0.1, noise_correlation_A=(1.0, 2.0), seed=4))
    empty = (clean.stage2 == 0).all(axis=0)[..., :-1] & (clean.stage2 == 0).all(axis=0)[..., 1:]
    lags = [float(np.corrcoef(c[..., :-1][empty], c[..., 1:][empty])[0, 1]) for c in maps.stage2]
    white = oracle_maps(structure, Corruption(noise_sigma=0.1, seed=4)).stage2
    assert min(lags) > 0.5 and max(lags) - min(lags) > 0.02  # correlated (clipped at 0), widths differ
    assert abs(float(np.corrcoef(white[0][..., :-1][empty], white[0][..., 1:][empty])[0, 1])) < 0.05


def test_per_residue_blob_peaks_and_widths_lie_in_their_ranges() -> None:
    structure = _single_atoms(12)
    maps = oracle_maps(structure, Corruption(blob_sigma_range_A=(1.2, 1.8), peak_range=(0.5, 1.0), seed=2))
    phosphate = _channel(maps, "phosphate")
    peaks, widths = [], []
    for residue in structure[0][0]:
        z, y, x = _voxel(maps, residue[0].pos.tolist())
        peaks.append(float(phosphate[z, y, x]))
        widths.append(float(np.sqrt(-1 / (2 * np.log(phosphate[z, y, x + 1] / phosphate[z, y, x])))))
    assert min(peaks) >= 0.5 and max(peaks) <= 1.0 and max(peaks) - min(peaks) > 0.2
    assert min(widths) >= 1.2 - 1e-3 and max(widths) <= 1.8 + 1e-3 and max(widths) - min(widths) > 0.2
    fixed = oracle_maps(structure, Corruption(), blob_sigma_A=1.5)
    z, y, x = _voxel(fixed, (0, 0, 0))
    assert _channel(fixed, "phosphate")[z, y, x + 1] == pytest.approx(np.exp(-1 / (2 * 1.5**2)), rel=1e-5)


def test_segment_drops_remove_runs_of_consecutive_nucleotides() -> None:
    structure = ideal_rna()  # 30 nt
    maps = oracle_maps(structure, Corruption(drop_fraction=0.3, segment_drop_share=1.0, seed=3))
    runs = _runs(maps.dropped)
    assert sum(len(run) for run in runs) == 9 and sum(len(run) for run in runs if len(run) >= 3) >= 7
    longest = max(runs, key=len)
    middle = structure[0][0][int(longest[len(longest) // 2]) - 1]
    assert _channel(maps, "sugar")[_voxel(maps, middle["C4'"][0].pos.tolist())] < 0.01  # painted nowhere
    singles = _runs(oracle_maps(structure, Corruption(drop_fraction=0.3, seed=3)).dropped)
    assert sum(len(run) for run in singles) == 9 and sum(len(run) for run in singles if len(run) >= 3) <= 3


def _runs(labels) -> list[np.ndarray]:
    """Runs of consecutive residue numbers among (chain, number) labels of one chain."""
    numbers = sorted(number for _, number in labels)
    return np.split(numbers, np.flatnonzero(np.diff(numbers) != 1) + 1)


def test_confusion_up_to_35_percent_moves_bases_to_another_type() -> None:
    structure = ideal_rna("GGCAUCAGUCCAAGUCGGAU")
    maps = oracle_maps(structure, Corruption(confusion_fraction=0.35, seed=1))
    assert len(maps.confused) == 7
    for residue in structure[0][0]:
        if ("A", residue.seqid.num) not in maps.confused:
            continue
        own = BASE_TYPE[residue.name]
        n1 = _voxel(maps, residue["N1"][0].pos.tolist())
        assert _channel(maps, own)[n1] < 0.05
        assert max(_channel(maps, other)[n1] for other in ("A", "UT", "C", "G") if other != own) > 0.5


def test_protein_calls_paint_one_nucleic_class_on_protein_only_when_asked() -> None:
    structure = _rna_and_protein()
    plain = oracle_maps(structure, Corruption())
    maps = oracle_maps(structure, Corruption(protein_call_fraction=0.5, seed=5))
    assert len(maps.protein_calls) == 10 and {chain for chain, _ in maps.protein_calls} == {"P"}
    nucleic = [STAGE2_CLASSES.index(c) for c in ("sugar", "phosphate", "base")]
    types = [STAGE2_CLASSES.index(c) for c in ("A", "UT", "C", "G")]
    protein = structure[0]["P"]
    for residue in protein:
        at_atoms = np.array([_classes_at(maps, atom.pos.tolist()) for atom in residue])
        assert max(_classes_at(plain, atom.pos.tolist())[nucleic].max() for atom in residue) < 1e-6
        if ("P", residue.seqid.num) in maps.protein_calls:
            strongest = at_atoms[:, nucleic].max(axis=0)
            assert 0.2 < strongest.max() <= 0.8 + 1e-6
            if strongest[2] > 0.2:  # a base call paints a base type too
                assert at_atoms[:, types].max() > 0.2
    np.testing.assert_array_equal(maps.stage2[STAGE2_CLASSES.index("protein")],
                                  plain.stage2[STAGE2_CLASSES.index("protein")])
    rna_x = int(round(max(atom.pos.x for residue in structure[0][0] for atom in residue) + 5 - maps.origin[0]))
    np.testing.assert_array_equal(maps.stage2[..., :rna_x], plain.stage2[..., :rna_x])  # RNA maps untouched
    rna_only = ideal_rna("GGCAUCAGUC")
    np.testing.assert_array_equal(oracle_maps(rna_only, Corruption(protein_call_fraction=0.5)).stage2,
                                  oracle_maps(rna_only, Corruption()).stage2)


def _named(name: str) -> gemmi.Residue:
    residue = gemmi.Residue()
    residue.name = name
    return residue


def test_base_type_knows_modified_nucleotides_by_their_parent() -> None:
    assert base_type(_named("DT")) == "UT" and base_type(_named("G")) == "G"
    for name, parent in MODIFIED_PARENTS.items():
        assert base_type(_named(name)) == parent, name
    assert base_type(_named("5MC"), "C") == "C"  # not in gemmi's table: the MODRES parent decides
    assert base_type(_named("5MC")) is None
    assert all(base_type(_named(name)) is None for name in ("HOH", "ALA", "MG"))


def test_modified_nucleotides_of_1ehz_paint_their_parent_base() -> None:
    structure = _corpus("1EHZ.pdb")
    maps = oracle_maps(structure, Corruption())
    painted = set()
    for residue in structure[0]["A"]:
        base_atoms = [a for a in residue if a.name not in SUGAR_ATOMS + PHOSPHATE_ATOMS and not a.is_hydrogen()]
        if residue.name in MODIFIED_PARENTS:
            values = {t: np.mean([_channel(maps, t)[_voxel(maps, a.pos.tolist())] for a in base_atoms])
                      for t in ("A", "UT", "C", "G")}
            assert max(values, key=values.get) == MODIFIED_PARENTS[residue.name] and max(values.values()) > 0.6
            painted.add(residue.name)
        elif residue.name == "5MC":  # unknown to gemmi's table: the file's MODRES record names C
            methyl = _voxel(maps, residue["CM5"][0].pos.tolist())
            assert _channel(maps, "base")[methyl] > 0.6 and _channel(maps, "C")[methyl] > 0.6
            assert max(_channel(maps, t)[methyl] for t in ("A", "UT", "G")) < 0.1
            assert _channel(maps, "sugar")[_voxel(maps, residue["C4'"][0].pos.tolist())] > 0.6
            painted.add("5MC")
    assert painted == set(MODIFIED_PARENTS) | {"5MC"}
    xyz = np.array([a.pos.tolist() for r in structure[0]["A"] if r.name != "HOH" for a in r])
    lonely = [r[0].pos.tolist() for r in structure[0]["A"] if r.name == "HOH"
              and np.linalg.norm(xyz - r[0].pos.tolist(), axis=1).min() > 4.0]
    assert lonely and max(float(_classes_at(maps, w).max()) for w in lonely) < 0.02  # water: nothing
    assert len(oracle_maps(structure, Corruption(drop_fraction=0.1)).dropped) == 8  # all 76 nt count


def test_density_is_the_normalised_working_map_with_optional_noise() -> None:
    structure = ideal_rna("GGCAUC")
    clean = oracle_maps(structure, Corruption())
    noisy = oracle_maps(structure, Corruption(density_noise_sigma=0.25, seed=1))
    for maps in (clean, noisy):
        assert float(maps.density.min()) == 0.0 and float(maps.density.max()) == pytest.approx(1.0, abs=1e-6)
    far = (clean.stage2.max(axis=0) == 0) & (clean.density == 0)  # solvent, far from every atom
    assert far.mean() > 0.3
    assert 0.01 < float(noisy.density[far].std()) < 0.3  # positive noise survives normalisation there
    near = clean.density > 0.5
    assert np.corrcoef(clean.density[near], noisy.density[near])[0, 1] > 0.8  # the molecule is still there


def test_same_seed_same_maps() -> None:
    structure = _rna_and_protein()
    first, again = oracle_maps(structure, preset("realistic", 7)), oracle_maps(structure, preset("realistic", 7))
    np.testing.assert_array_equal(first.stage2, again.stage2)
    np.testing.assert_array_equal(first.density, again.density)
    assert (first.dropped, first.confused, first.protein_calls) == (again.dropped, again.confused, again.protein_calls)
    other = oracle_maps(structure, preset("realistic", 8))
    assert not np.array_equal(first.stage2, other.stage2) and not np.array_equal(first.density, other.density)


def test_presets_hold_the_documented_values() -> None:
    shapes = {"noise_correlation_A": (1.0, 2.0), "blob_sigma_range_A": (1.2, 1.8), "peak_range": (0.5, 1.0)}
    assert PRESETS == {
        "clean-white": Corruption(noise_sigma=0.05),
        "moderate": Corruption(noise_sigma=0.05, drop_fraction=0.05, confusion_fraction=0.15,
                               false_blobs_per_1000_A3=2.0),
        "realistic-white": Corruption(noise_sigma=0.15, drop_fraction=0.05, confusion_fraction=0.15,
                                      false_blobs_per_1000_A3=2.0),
        "harsh-white": Corruption(noise_sigma=0.2, drop_fraction=0.1, confusion_fraction=0.25,
                                  false_blobs_per_1000_A3=4.0),
        "clean": Corruption(noise_sigma=0.05, density_noise_sigma=0.1, **shapes),
        "realistic": Corruption(noise_sigma=0.15, drop_fraction=0.05, segment_drop_share=0.5, confusion_fraction=0.15,
                                protein_call_fraction=0.1, false_blobs_per_1000_A3=2.0, density_noise_sigma=0.25,
                                **shapes),
        "harsh": Corruption(noise_sigma=0.2, drop_fraction=0.1, segment_drop_share=0.5, confusion_fraction=0.35,
                            protein_call_fraction=0.2, false_blobs_per_1000_A3=4.0, density_noise_sigma=0.25,
                            **shapes),
    }
    assert CLEAN == PRESETS["clean-white"] and REALISTIC == PRESETS["realistic-white"]
    assert preset("harsh", 3) == Corruption(**{**PRESETS["harsh"].__dict__, "seed": 3})
    with pytest.raises(ValueError, match="realistic-white"):
        preset("nonsense", 0)


def test_realistic_preset_on_a_protein_dna_complex() -> None:
    structure = _corpus("1D66.pdb")  # 38 DNA nt, 114 amino acids
    maps = oracle_maps(structure, preset("realistic", 0))
    assert (len(maps.dropped), len(maps.confused), len(maps.protein_calls)) == (2, 6, 11)
    harsh = oracle_maps(structure, preset("harsh", 0))
    assert (len(harsh.dropped), len(harsh.confused), len(harsh.protein_calls)) == (4, 13, 23)
    assert not set(harsh.dropped) & set(harsh.confused)
    assert float(harsh.density.min()) == 0.0 and float(harsh.density.max()) == pytest.approx(1.0, abs=1e-6)
