"""Training labels painted from a model (paper rules) and the 70³ training segments cut from them."""
from __future__ import annotations

import dataclasses

import gemmi
import numpy as np
import pytest

from haruspex_engine import structures
from haruspex_engine.annotation.annotate import working_map
from haruspex_engine.annotation.checkpoint import CHANNELS
from haruspex_engine.maps import DensityMap
from haruspex_engine.nucleic.building.ideal import ideal_na_strand
from haruspex_engine.simulate import simulate_map
from haruspex_engine.training.labels import MASKED, paint_labels
from haruspex_engine.training.segments import load_segments, save_segments, training_segments
from haruspex_engine.validation.secondary_structure import (
    HELIX,
    NUCLEIC,
    SHEET,
    UNASSIGNED,
    ResidueLabel,
    label_residues,
)

SHEET_CH, HELIX_CH, NUCLEIC_CH, UNASSIGNED_CH = (CHANNELS.index(name) for name in CHANNELS)
HELIX_CHAINS = "ABC"  # example_scene: chains A-C are helices, D-G the strands of a sheet
BLOB_GAP_A = 20.0  # extra room along x for the unmodelled blob


def residue_labels(structure: gemmi.Structure, label_of_chain: dict[str, int]) -> list[ResidueLabel]:
    return [ResidueLabel(chain.name, index, str(residue.seqid), residue.name, label_of_chain[chain.name])
            for chain in structure[0] for index, residue in enumerate(chain)]


def scene_labels(structure: gemmi.Structure) -> list[ResidueLabel]:
    return residue_labels(structure, {c.name: HELIX if c.name in HELIX_CHAINS else SHEET for c in structure[0]})


def widened(structure: gemmi.Structure, extra_x: float) -> gemmi.Structure:
    """A copy whose cell is ``extra_x`` Å longer along x (empty room beyond the atoms)."""
    out = structure.clone()
    cell = out.cell
    out.cell = gemmi.UnitCell(cell.a + extra_x, cell.b, cell.c, 90.0, 90.0, 90.0)
    return out


def only_chains(structure: gemmi.Structure, keep: str) -> gemmi.Structure:
    out = structure.clone()
    for name in [chain.name for chain in out[0] if chain.name not in keep]:
        out[0].remove_chain(name)
    return out


def simulated(structure: gemmi.Structure, voxel: float = 1.1) -> DensityMap:
    data, origin = simulate_map(structure, voxel_size=voxel, resolution=4.0)
    return DensityMap(data=data, voxel_size=(voxel,) * 3, origin=origin)


def atom_xyz(structure: gemmi.Structure, chains: str, names=("N", "CA", "C", "O")) -> np.ndarray:
    return np.array([atom.pos.tolist() for chain in structure[0] if chain.name in chains
                     for residue in chain for atom in residue if names is None or atom.name in names])


def voxel_centres(shape, voxel_size, origin) -> np.ndarray:
    """(Z, Y, X, 3) centres (x, y, z) Å of a grid."""
    z, y, x = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    return np.stack([x, y, z], axis=-1) * np.asarray(voxel_size) + np.asarray(origin)


def min_distance(centres: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Brute-force distance (Å) from every centre (..., 3) to its nearest point (N, 3)."""
    flat = centres.reshape(-1, 3)
    out = np.concatenate([np.linalg.norm(flat[i:i + 4096, None] - points[None], axis=-1).min(axis=1)
                          for i in range(0, len(flat), 4096)])
    return out.reshape(centres.shape[:-1])


def expected_labels(structure, centres, density, painted_helix: str, painted_sheet: str) -> np.ndarray:
    """The paper's rules evaluated voxel by voxel, with every listed element painted."""
    rmsd = density.std()
    expected = np.full(density.shape, UNASSIGNED_CH, dtype=np.int8)
    expected[(density >= rmsd) & (min_distance(centres, atom_xyz(structure, "ABCDEFG", None)) > 5.0)] = MASKED
    expected[min_distance(centres, atom_xyz(structure, painted_helix)) <= 3.0] = HELIX_CH
    expected[min_distance(centres, atom_xyz(structure, painted_sheet)) <= 3.0] = SHEET_CH
    return expected


@pytest.fixture(scope="module")
def scene() -> gemmi.Structure:
    return widened(structures.example_scene(), BLOB_GAP_A)


@pytest.fixture(scope="module")
def scene_map(scene) -> DensityMap:
    """The example scene at 1.1 Å plus a Gaussian blob (no atom within 15 Å) in the empty room along x."""
    clean = simulated(scene)
    centres = voxel_centres(clean.data.shape, clean.voxel_size, clean.origin)
    blob_centre = np.array([scene.cell.a - BLOB_GAP_A / 2, scene.cell.b / 2, scene.cell.c / 2])
    blob = clean.data.max() * np.exp(-np.sum((centres - blob_centre) ** 2, axis=-1) / (2 * 1.5 ** 2))
    return clean.with_data((clean.data + blob).astype(np.float32))


def test_labels_follow_the_paper_rules_voxel_by_voxel(scene, scene_map) -> None:
    volume = paint_labels(scene_map, scene, scene_labels(scene))
    centres = voxel_centres(scene_map.data.shape, scene_map.voxel_size, scene_map.origin)
    expected = expected_labels(scene, centres, scene_map.data, HELIX_CHAINS, "DEFG")
    assert volume.labels.dtype == np.int8 and volume.labels.shape == scene_map.data.shape
    np.testing.assert_array_equal(volume.labels, expected)
    assert volume.rmsd == pytest.approx(float(scene_map.data.std()), rel=1e-5)
    assert [e.outcome for e in volume.elements] == ["painted"] * 7
    # every class is present: helix and sheet shells, the blob masked, solvent unassigned
    counts = {value: int(np.count_nonzero(volume.labels == value)) for value in (SHEET_CH, HELIX_CH, UNASSIGNED_CH,
                                                                                  MASKED)}
    assert min(counts.values()) > 20, counts
    blob_zyx = np.rint(np.array([scene.cell.c / 2, scene.cell.b / 2, scene.cell.a - BLOB_GAP_A / 2]) / 1.1)
    assert volume.labels[tuple(blob_zyx.astype(int))] == MASKED


def test_helix_and_sheet_voxels_next_to_their_backbone(scene, scene_map) -> None:
    volume = paint_labels(scene_map, scene, scene_labels(scene))
    for chains, channel in ((HELIX_CHAINS, HELIX_CH), ("DEFG", SHEET_CH)):
        ca = atom_xyz(scene, chains, ("CA",))
        nearest = np.rint((ca - np.asarray(volume.origin)) / np.asarray(volume.voxel_size)).astype(int)[:, ::-1]
        assert np.all(volume.labels[tuple(nearest.T)] == channel)


@pytest.mark.parametrize("scale, outcome, shell_value", [(0.22, "masked", MASKED), (0.08, "ignored", UNASSIGNED_CH)])
def test_weak_element_is_masked_or_left_unassigned(scene, scale, outcome, shell_value) -> None:
    strong = simulated(only_chains(scene, "ACDEFG"))
    weak = simulated(only_chains(scene, "B"))
    density = strong.with_data(strong.data + np.float32(scale) * weak.data)
    volume = paint_labels(density, scene, scene_labels(scene))
    by_chain = {element.chain: element for element in volume.elements}
    level = by_chain["B"].backbone_density
    assert (1.0 <= level <= 2.0) if outcome == "masked" else level < 1.0, level
    assert by_chain["B"].outcome == outcome
    assert all(by_chain[c].outcome == "painted" for c in "ACDEFG")
    centres = voxel_centres(density.data.shape, density.voxel_size, density.origin)
    shell_b = min_distance(centres, atom_xyz(scene, "B")) <= 3.0
    near_others = min_distance(centres, atom_xyz(scene, "ACDEFG")) <= 3.0
    assert np.count_nonzero(shell_b & ~near_others) > 100
    assert np.all(volume.labels[shell_b & ~near_others] == shell_value)
    assert np.all(volume.labels[shell_b & near_others] != MASKED)  # a painted neighbour keeps its class


def test_resampled_onto_the_working_grid(scene) -> None:
    fine = simulated(scene, voxel=0.8)
    volume = paint_labels(fine, scene, scene_labels(scene))
    assert volume.labels.shape == tuple(round(n * 0.8 / 1.1) for n in fine.data.shape)
    # corner-aligned zoom (as annotate): first and last voxels keep their positions, spacing close to 1.1 Å
    spacing = [0.8 * (n_in - 1) / (n_out - 1) for n_in, n_out in zip(fine.data.shape, volume.labels.shape)][::-1]
    np.testing.assert_allclose(volume.voxel_size, spacing, rtol=1e-12)
    np.testing.assert_allclose(volume.voxel_size, 1.1, atol=0.03)
    assert volume.origin == (0.0, 0.0, 0.0)
    work = working_map(fine)
    assert work.data.shape == volume.labels.shape and work.voxel_size == volume.voxel_size
    centres = voxel_centres(work.data.shape, volume.voxel_size, volume.origin)
    np.testing.assert_array_equal(volume.labels, expected_labels(scene, centres, work.data, HELIX_CHAINS, "DEFG"))


def translated(structure: gemmi.Structure, shift) -> gemmi.Structure:
    out = structure.clone()
    for chain in out[0]:
        for residue in chain:
            for atom in residue:
                atom.pos = atom.pos + gemmi.Position(*shift)
    return out


@pytest.mark.parametrize("field", ["origin", "nstart"])
def test_map_origin_is_honoured(scene, scene_map, field) -> None:
    nstart = (10, -4, 7)
    shift = tuple(n * 1.1 for n in nstart)
    moved_map = dataclasses.replace(scene_map, **{field: shift if field == "origin" else nstart})
    moved = translated(scene, shift)
    reference = paint_labels(scene_map, scene, scene_labels(scene))
    volume = paint_labels(moved_map, moved, scene_labels(moved))
    np.testing.assert_allclose(volume.origin, shift, atol=1e-9)
    np.testing.assert_array_equal(volume.labels, reference.labels)
    ignoring_origin = paint_labels(scene_map, moved, scene_labels(moved))
    assert np.count_nonzero(ignoring_origin.labels == HELIX_CH) < np.count_nonzero(reference.labels == HELIX_CH) / 2


def test_label_for_a_missing_or_different_residue_is_refused(scene, scene_map) -> None:
    labels = scene_labels(scene)
    with pytest.raises(ValueError, match="no residue at position 99 of chain 'A'"):
        paint_labels(scene_map, scene, [*labels, ResidueLabel("A", 99, "100", "ALA", HELIX)])
    with pytest.raises(ValueError, match="position 0 is ALA, but its residue label says GLY"):
        paint_labels(scene_map, scene, [dataclasses.replace(labels[0], name="GLY"), *labels[1:]])


NUCLEOTIDE_BACKBONE = ("P", "OP1", "OP2", "O5'", "C5'", "C4'", "C3'", "O3'")


def test_nucleotides_painted_around_their_backbone_with_computed_labels() -> None:
    structure = structures.assemble([ideal_na_strand("GGCAUCAGUC", chain_id="R"),
                                     structures.ideal_alpha_helix(14, chain_id="H", start=(25.0, 0.0, 0.0))])
    density = simulated(structure)
    labels = label_residues(structure)
    assert {r.label for r in labels if r.chain == "R"} == {NUCLEIC}
    volume = paint_labels(density, structure, labels)
    assert ("R", 0, 9, NUCLEIC, "painted") in [(e.chain, e.first, e.last, e.label, e.outcome) for e in volume.elements]
    assert {e.outcome for e in volume.elements} == {"painted"} and HELIX in {e.label for e in volume.elements}
    centres = voxel_centres(density.data.shape, density.voxel_size, density.origin)
    near_na_backbone = min_distance(centres, atom_xyz(structure, "R", NUCLEOTIDE_BACKBONE)) <= 3.0
    np.testing.assert_array_equal(volume.labels == NUCLEIC_CH, near_na_backbone)
    base_tips = atom_xyz(structure, "R", ("N1", "N3", "C2"))  # ring atoms: some lie beyond 3 Å of the backbone
    tip_index = np.rint(base_tips / 1.1).astype(int)[:, ::-1]
    assert UNASSIGNED_CH in volume.labels[tuple(tip_index.T)]


# ---- segments ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bundle() -> gemmi.Structure:
    """Nine 24-residue helices (3 x 3, 10 Å apart, along z) beside a 4-stranded sheet, in a cell stretched to
    150 Å along x so that the far end holds only solvent."""
    chains = [structures.ideal_alpha_helix(24, chain_id="ABCDEFGHI"[k], start=(10.0 * (k % 3), 10.0 * (k // 3), 0.0))
              for k in range(9)]
    chains += structures.beta_sheet(4, 9, chain_ids=list("JKLM"), start=(32.0, 0.0, 5.0), strand_axis=(0, 0, 1))
    structure = structures.assemble(chains)
    return widened(structure, 150.0 - structure.cell.a)


def bundle_labels(structure: gemmi.Structure) -> list[ResidueLabel]:
    return residue_labels(structure, {c.name: HELIX if c.name < "J" else SHEET for c in structure[0]})


@pytest.fixture(scope="module")
def bundle_map(bundle) -> DensityMap:
    return simulated(bundle)


def test_segment_over_the_model_kept_and_over_solvent_rejected(bundle, bundle_map) -> None:
    volume = paint_labels(bundle_map, bundle, bundle_labels(bundle))
    segments = training_segments(bundle_map, volume, bundle)
    # z and y are shorter than 70 voxels (one padded corner each); along x the corners are 0, 35 and 67
    assert bundle_map.data.shape[2] == 137 and max(bundle_map.data.shape[:2]) < 70
    assert [segment.corner for segment in segments] == [(0, 0, 0)]
    kept = segments[0]
    assert kept.density.shape == kept.labels.shape == (70, 70, 70)
    assert kept.density.dtype == np.float32 and kept.labels.dtype == np.int8
    nz, ny = bundle_map.data.shape[:2]
    np.testing.assert_array_equal(kept.density[:nz, :ny], bundle_map.data[:, :, :70])
    np.testing.assert_array_equal(kept.labels[:nz, :ny], volume.labels[:, :, :70])
    assert np.all(kept.labels[nz:] == MASKED) and np.all(kept.density[nz:] == 0)


def test_computed_labels_give_the_same_segment(bundle, bundle_map) -> None:
    volume = paint_labels(bundle_map, bundle, label_residues(bundle))
    assert {e.outcome for e in volume.elements} == {"painted"}
    assert [s.corner for s in training_segments(bundle_map, volume, bundle)] == [(0, 0, 0)]


def test_each_segment_rule_rejects_on_its_own(bundle, bundle_map) -> None:
    volume = paint_labels(bundle_map, bundle, bundle_labels(bundle))
    # nothing annotated (all residues unassigned): atoms and backbone density alone do not make a segment
    unlabelled = paint_labels(bundle_map, bundle, residue_labels(bundle, {c.name: UNASSIGNED for c in bundle[0]}))
    assert training_segments(bundle_map, unlabelled, bundle) == []
    # backbone mean below 3 r.m.s.d. (levels read against twice the r.m.s.d.; labels unchanged)
    # (every atom of the bundle is above 4 r.m.s.d. and its backbone mean is about 6.8: against 2.5 times the
    # r.m.s.d. all atoms still count as dense while the backbone mean falls below 3)
    assert training_segments(bundle_map, dataclasses.replace(volume, rmsd=2.5 * volume.rmsd), bundle) == []
    assert len(training_segments(bundle_map, dataclasses.replace(volume, rmsd=1.5 * volume.rmsd), bundle)) == 1


@pytest.mark.parametrize("second_helix, kept", [(12, 0), (13, 1)])  # glycines, 4 atoms each: 96 or 100 atoms
def test_segment_needs_100_dense_atoms(second_helix, kept) -> None:
    structure = structures.assemble([
        structures.ideal_alpha_helix(12, chain_id="A", residue="GLY"),
        structures.ideal_alpha_helix(second_helix, chain_id="B", start=(10.0, 0.0, 0.0), residue="GLY")])
    density = simulated(structure)
    volume = paint_labels(density, structure, residue_labels(structure, {"A": HELIX, "B": HELIX}))
    atoms = atom_xyz(structure, "AB", None)
    assert len(atoms) == 96 + 4 * kept and max(density.data.shape) <= 35
    assert len(training_segments(density, volume, structure, size=34)) == kept


def test_jitter_is_seeded_and_stays_inside(bundle, bundle_map) -> None:
    volume = paint_labels(bundle_map, bundle, residue_labels(bundle, {c.name: HELIX for c in bundle[0]}))
    first = training_segments(bundle_map, volume, bundle, size=30, stride=15, jitter=5, seed=3)
    again = training_segments(bundle_map, volume, bundle, size=30, stride=15, jitter=5, seed=3)
    plain = training_segments(bundle_map, volume, bundle, size=30, stride=15)
    assert [s.corner for s in first] == [s.corner for s in again] and first
    assert [s.corner for s in first] != [s.corner for s in plain]
    limit = np.asarray(bundle_map.data.shape) - 30
    assert all(0 <= c <= m for s in first for c, m in zip(s.corner, limit))


def test_segments_round_trip_through_npz(bundle, bundle_map, tmp_path) -> None:
    volume = paint_labels(bundle_map, bundle, bundle_labels(bundle))
    segments = training_segments(bundle_map, volume, bundle, size=30, stride=30)
    paths = save_segments(segments, tmp_path / "segments", prefix="bundle")
    assert [p.name for p in paths] == [f"bundle_{n:05d}.npz" for n in range(len(segments))] and len(segments) > 1
    loaded = load_segments(tmp_path / "segments")
    for original, copy in zip(segments, loaded, strict=True):
        assert copy.corner == original.corner
        np.testing.assert_array_equal(copy.density, original.density)
        np.testing.assert_array_equal(copy.labels, original.labels)
    (tmp_path / "segments" / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="broken.npz: not a training segment file"):
        load_segments(tmp_path / "segments")


def test_segments_refuse_labels_from_another_grid(scene, scene_map, bundle, bundle_map) -> None:
    volume = paint_labels(scene_map, scene, scene_labels(scene))
    with pytest.raises(ValueError, match="is not the grid the labels were painted on"):
        training_segments(bundle_map, volume, bundle)


def test_training_data_command_feeds_train(bundle, bundle_map, tmp_path) -> None:
    """`haruspex training-data` writes the segment, the label map and its report; `haruspex train` reads them."""
    import json

    from haruspex_engine import cli
    from haruspex_engine.maps import read_map, write_map

    map_path, model_path, out = tmp_path / "bundle.mrc", tmp_path / "bundle.cif", tmp_path / "data"
    write_map(map_path, bundle_map.data, bundle_map.voxel_size, bundle_map.origin)
    bundle.make_mmcif_document().write_file(str(model_path))
    assert cli.main(["training-data", str(map_path), str(model_path), "-o", str(out), "--write-labels"]) == 0
    report = json.loads((out / "bundle_training_data.json").read_text())
    assert report["segments"] == 1 and report["element_outcomes"] == {"painted": len(report["elements"])}
    assert report["warnings"] == []
    assert [segment.corner for segment in load_segments(out)] == [(0, 0, 0)]
    painted = read_map(report["outputs"]["labels"])
    expected = paint_labels(bundle_map, bundle, label_residues(bundle)).labels
    np.testing.assert_array_equal(painted.data, expected)
    assert report["label_fractions"]["helix"] > 0.05 and report["label_fractions"]["masked"] < 0.01

    checkpoint = tmp_path / "run" / "model.ckpt"
    assert cli.main(["train", str(out), "-o", str(checkpoint), "--steps", "1", "--batch-size", "1", "-q"]) == 0
    assert (tmp_path / "run" / "model.ckpt-1.index").is_file()


def test_training_data_command_refuses_a_bad_model(bundle_map, tmp_path, capsys) -> None:
    from haruspex_engine import cli
    from haruspex_engine.maps import write_map

    map_path, model_path = tmp_path / "m.mrc", tmp_path / "broken.pdb"
    write_map(map_path, bundle_map.data, bundle_map.voxel_size, bundle_map.origin)
    model_path.write_text("not a model\n")
    assert cli.main(["training-data", str(map_path), str(model_path), "-o", str(tmp_path / "out")]) == 1
    assert f"haruspex: error: {model_path}:" in capsys.readouterr().err


def _write_inputs(tmp_path, structure: gemmi.Structure, density: DensityMap):
    from haruspex_engine.maps import write_map

    map_path, model_path = tmp_path / "map.mrc", tmp_path / "model.cif"
    write_map(map_path, density.data, density.voxel_size, density.origin)
    structure.make_mmcif_document().write_file(str(model_path))
    return map_path, model_path


def test_training_data_refuses_a_model_outside_the_map(bundle, bundle_map, tmp_path, capsys) -> None:
    """The map moved 500 Å away (as when model and map come from different origins): one line, no output."""
    from haruspex_engine import cli

    moved = DensityMap(data=bundle_map.data, voxel_size=bundle_map.voxel_size, origin=(500.0, 500.0, 500.0))
    map_path, model_path = _write_inputs(tmp_path, bundle, moved)
    out = tmp_path / "out"
    assert cli.main(["training-data", str(map_path), str(model_path), "-o", str(out)]) == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert error.startswith(f"haruspex: error: {model_path}: no atom lies inside the map {map_path} (")
    # the model's extent (atoms from 8 Å on, see the bundle fixture) and the box of the voxel centres, 1.1 Å apart
    xyz = atom_xyz(bundle, "ABCDEFGHIJKLM", None)
    low, high = xyz.min(axis=0), xyz.max(axis=0)
    assert (f"model atoms span ({low[0]:.1f}, {low[1]:.1f}, {low[2]:.1f}) to "
            f"({high[0]:.1f}, {high[1]:.1f}, {high[2]:.1f}) Å (x, y, z)") in error
    assert "the map's box (500.0, 500.0, 500.0) to (649.6, 541.8, 555.0) Å (x, y, z)" in error  # 137, 39, 51 voxels
    assert "different origins" in error
    assert not out.exists()


def test_training_data_warns_when_little_of_the_model_is_inside(bundle, bundle_map, tmp_path, capsys) -> None:
    """A map keeping only the first 15 voxels along x (centres up to 15.4 Å) holds 360 of the 1260 atoms (29 %)."""
    import json

    from haruspex_engine import cli

    cut = DensityMap(data=np.ascontiguousarray(bundle_map.data[:, :, :15]), voxel_size=bundle_map.voxel_size)
    map_path, model_path = _write_inputs(tmp_path, bundle, cut)
    xyz = atom_xyz(bundle, "ABCDEFGHIJKLM", None)
    inside = int(np.count_nonzero(xyz[:, 0] <= 14 * 1.1))  # y and z: the map covers the whole cell
    assert (inside, len(xyz)) == (360, 1260)
    out = tmp_path / "out"
    assert cli.main(["training-data", str(map_path), str(model_path), "-o", str(out)]) == 0
    report = json.loads((out / "map_training_data.json").read_text())
    assert len(report["warnings"]) == 1
    warning = report["warnings"][0]
    assert warning.startswith(f"only 360 of 1260 atoms of {model_path} lie inside the map {map_path} (")
    assert f"training-data: warning: {warning}" in capsys.readouterr().err
