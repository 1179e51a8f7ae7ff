"""Model validation against annotation maps (``haruspex validate``), on maps and annotations generated here.

No test runs the published network: its weights cannot be downloaded in the test environment, and an annotation
from random weights scores nothing. The annotations are made from the model itself (each voxel within 3 Å of a
backbone atom gets the class of the nearest one), so the expected scores are known exactly; ../shared's 3J6B map
checks the backbone-density rule on a real map (skipped when ../shared is absent).
"""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import gemmi
import numpy as np
import pytest
from scipy.spatial import cKDTree

from haruspex_engine import structures
from haruspex_engine.annotation.annotate import CHANNELS, Annotation
from haruspex_engine.annotation.outputs import write_annotation
from haruspex_engine.cli import main
from haruspex_engine.maps import DensityMap, read_map, write_map
from haruspex_engine.model_files import read_model
from haruspex_engine.nucleic.building.atoms import write_model
from haruspex_engine.nucleic.building.ideal import ideal_na_strand
from haruspex_engine.simulate import simulate_map
from haruspex_engine.training.labels import model_atoms
from haruspex_engine.validation.secondary_structure import HELIX, NUCLEIC, SHEET, UNASSIGNED, label_residues
from haruspex_engine.validation.validate import (
    CLASS_ORDER,
    LABEL_OF_CLASS,
    NO_PREDICTION,
    ValidationError,
    residue_metrics,
    validate_model,
    validation_report,
)

VOXEL_A = 1.1
PAINT_RADIUS_A = 3.0
NA_SHIFT_A = (55.0, 0.0, 0.0)  # puts the RNA strand clear of the example scene's helices and sheet
WATER_PDB = "HETATM    1  O   HOH W   1      10.000  10.000  10.000  1.00 20.00           O\nEND\n"
SHARED_3J6B = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "protein-3j6b"


# ---- scenes and annotations -------------------------------------------------------------------------------------
def shifted(chain: gemmi.Chain, shift) -> gemmi.Chain:
    out = chain.clone()
    for residue in out:
        for atom in residue:
            atom.pos = gemmi.Position(*(np.array(atom.pos.tolist()) + shift))
    return out


def build_scene(faint_chain: str = "") -> gemmi.Structure:
    """The example scene (helices A-C, sheet D-G) and a 10-nt RNA strand R; ``faint_chain`` at occupancy 0.05."""
    chains = [chain.clone() for chain in structures.example_scene()[0]]
    chains.append(shifted(ideal_na_strand("GGCAUCAGUC", chain_id="R"), NA_SHIFT_A))
    structure = structures.assemble(chains)
    for chain in structure[0]:
        if chain.name == faint_chain:
            for residue in chain:
                for atom in residue:
                    atom.occ = 0.05
    return structure


def simulated(structure: gemmi.Structure) -> DensityMap:
    data, origin = simulate_map(structure, voxel_size=VOXEL_A, resolution=4.0)
    return DensityMap(data=data, voxel_size=(VOXEL_A,) * 3, origin=origin)


def class_maps(structure: gemmi.Structure, grid: DensityMap, relabel: dict[str, int] | None = None,
               swap: tuple[str, str] | None = None) -> dict[str, DensityMap]:
    """One-hot probability maps: each voxel within 3 Å of a backbone atom takes the model class of the nearest one
    (``relabel``: chain -> label overrides), others unassigned; ``swap`` exchanges two classes' maps."""
    atoms = model_atoms(structure)
    labels = np.array([(relabel or {}).get(r.chain, r.label) for r in label_residues(structure)])
    backbone_xyz = atoms.xyz[atoms.backbone]
    backbone_label = labels[atoms.residue[atoms.backbone]]
    z, y, x = np.indices(grid.data.shape)
    centres = (np.stack([x, y, z], axis=-1).reshape(-1, 3) * np.asarray(grid.voxel_size)
               + np.asarray(grid.first_voxel_position))
    distance, nearest = cKDTree(backbone_xyz).query(centres)
    voxel_label = np.where(distance <= PAINT_RADIUS_A, backbone_label[nearest], UNASSIGNED).reshape(grid.data.shape)
    maps = {name: grid.with_data((voxel_label == LABEL_OF_CLASS[name]).astype(np.float32)) for name in CLASS_ORDER}
    if swap:
        first, second = swap
        maps[first], maps[second] = maps[second], maps[first]
    return maps


@pytest.fixture(scope="module")
def scene() -> gemmi.Structure:
    return build_scene()


@pytest.fixture(scope="module")
def scene_map(scene) -> DensityMap:
    return simulated(scene)


def model_labels(structure: gemmi.Structure) -> dict[str, int]:
    counts = {}
    for residue in label_residues(structure):
        counts[residue.label] = counts.get(residue.label, 0) + 1
    return counts


# ---- scores -----------------------------------------------------------------------------------------------------
def test_a_right_annotation_scores_one(scene, scene_map) -> None:
    validation = validate_model(scene, class_maps(scene, scene_map), scene_map)
    labels = model_labels(scene)
    assert len(validation) == sum(labels.values()) == 92  # every residue is amino acid or nucleotide
    np.testing.assert_array_equal(validation.predicted_label, validation.model_label)
    report = validation_report(validation)
    assert report["counts"] == {"residues": 92, "on_map": 92, "counted": 92, "below_level": 0, "off_map": 0}
    overall = report["metrics"]["overall"]
    assert (overall["tp"], overall["fp"], overall["fn"], overall["tn"]) == (92 - labels[UNASSIGNED], 0, 0,
                                                                            labels[UNASSIGNED])
    assert labels[UNASSIGNED] > 0  # chain ends: the terminal residue of each helix and strand
    assert overall["recall"] == overall["precision"] == overall["f1"] == overall["agreement"] == 1.0
    for name, label in (("helix", HELIX), ("sheet", SHEET), ("nucleic", NUCLEIC)):
        scores = report["metrics"]["per_class"][name]
        assert scores["residues"] == labels[label] > 0
        assert scores["recall"] == scores["precision"] == scores["f1"] == 1.0
    assert report["warnings"] == []
    assert all(chain["agreement"] == 1.0 and chain["disagreements"] == [] for chain in report["chains"])


def test_swapped_helix_and_sheet_maps_score_zero_for_them(scene, scene_map) -> None:
    validation = validate_model(scene, class_maps(scene, scene_map, swap=("helix", "sheet")), scene_map)
    metrics = validation_report(validation)["metrics"]
    labels = model_labels(scene)
    for name in ("helix", "sheet"):
        assert metrics["per_class"][name]["recall"] == metrics["per_class"][name]["precision"] == 0.0
        assert metrics["per_class"][name]["f1"] is None  # harmonic mean of two zeros: undefined
    assert metrics["per_class"]["nucleic"]["recall"] == 1.0
    assert metrics["confusion"]["helix"]["sheet"] == labels[HELIX]
    assert metrics["confusion"]["sheet"]["helix"] == labels[SHEET]
    overall = metrics["overall"]
    assert (overall["tp"], overall["fp"], overall["fn"]) == (labels[NUCLEIC], labels[HELIX] + labels[SHEET], 0)
    chains = {chain["id"]: chain for chain in validation_report(validation)["chains"]}
    helix_a = [r.seqid for r in label_residues(scene) if r.chain == "A" and r.label == HELIX]
    assert chains["A"]["disagreements"] == helix_a and chains["R"]["disagreements"] == []


def test_residues_below_one_rmsd_backbone_density_are_not_counted() -> None:
    structure = build_scene(faint_chain="A")
    density = simulated(structure)
    wrong_a = class_maps(structure, density, relabel={"A": SHEET})  # chain A annotated as sheet
    validation = validate_model(structure, wrong_a, density)
    in_a = validation.chain == "A"
    assert np.all(validation.backbone_density[in_a] < 1.0) and np.all(validation.backbone_density[~in_a] > 1.0)
    np.testing.assert_array_equal(validation.counted, ~in_a)
    report = validation_report(validation)
    assert report["counts"]["below_level"] == 18 and report["counts"]["counted"] == len(validation) - 18
    assert report["metrics"]["overall"]["precision"] == report["metrics"]["overall"]["recall"] == 1.0
    everything = validation_report(validate_model(structure, wrong_a, density, level=0.0))
    assert everything["counts"]["counted"] == len(validation)
    assert everything["metrics"]["per_class"]["helix"]["recall"] < 1.0
    assert everything["metrics"]["overall"]["precision"] < 1.0


def test_predictions_and_density_are_means_of_trilinear_values_at_backbone_atoms(scene, scene_map) -> None:
    """On linear ramps trilinear interpolation is exact, so each mean is the ramp at the mean backbone atom."""
    z, y, x = np.indices(scene_map.data.shape).astype(np.float32) * VOXEL_A
    ramp = scene_map.with_data(x + 2 * y + 3 * z)
    probabilities = {"helix": ramp.with_data(0.01 * x), "sheet": ramp.with_data(0.01 * y),
                     "nucleic": ramp.with_data(0.01 * z), "unassigned": ramp.with_data(np.full_like(x, 0.2))}
    validation = validate_model(scene, probabilities, ramp)
    atoms = model_atoms(scene)
    rmsd = float(np.std(ramp.data, dtype=np.float64))
    for k in (0, 20, 91):
        xyz = atoms.xyz[atoms.backbone & (atoms.residue == validation.row[k])]
        mean = xyz.mean(axis=0)
        assert validation.backbone_density[k] == pytest.approx((mean @ [1, 2, 3]) / rmsd, rel=1e-5)
        np.testing.assert_allclose(validation.probabilities[k], [*(0.01 * mean), 0.2], rtol=1e-5)
        expected = CLASS_ORDER[int(np.argmax([*(0.01 * mean), 0.2]))]
        assert validation.predicted_label[k] == LABEL_OF_CLASS[expected]
    assert validation.rmsd == pytest.approx(rmsd)


def test_residues_off_the_map_have_no_prediction(scene, scene_map) -> None:
    rna_x = min(atom.pos.x for residue in scene[0]["R"] for atom in residue)
    protein_x = max(atom.pos.x for chain in scene[0] if chain.name != "R" for residue in chain for atom in residue)
    assert protein_x + 2 * VOXEL_A < rna_x
    keep_x = int(rna_x / VOXEL_A) - 1  # the voxels left of the RNA strand
    cropped = DensityMap(data=np.ascontiguousarray(scene_map.data[:, :, :keep_x]), voxel_size=scene_map.voxel_size,
                         origin=scene_map.origin)
    validation = validate_model(scene, class_maps(scene, cropped), cropped)
    in_r = validation.chain == "R"
    assert np.all(validation.predicted_label[in_r] == NO_PREDICTION) and not validation.counted[in_r].any()
    assert np.all(np.isnan(validation.backbone_density[in_r]))
    report = validation_report(validation)
    assert report["counts"]["off_map"] == 10 and report["metrics"]["per_class"]["nucleic"]["recall"] is None
    assert report["metrics"]["overall"]["recall"] == 1.0
    assert any("no backbone atom on the map grid" in w for w in report["warnings"])


def test_residue_metrics_count_as_the_paper() -> None:
    model = np.array([HELIX, HELIX, HELIX, SHEET, SHEET, UNASSIGNED, UNASSIGNED, NUCLEIC])
    predicted = np.array([HELIX, HELIX, UNASSIGNED, HELIX, SHEET, HELIX, UNASSIGNED, NUCLEIC])
    metrics = residue_metrics(model, predicted)
    overall = metrics["overall"]
    assert (overall["tp"], overall["fp"], overall["fn"], overall["tn"]) == (4, 2, 1, 1)
    assert overall["recall"] == pytest.approx(4 / 5) and overall["precision"] == pytest.approx(4 / 6)
    assert overall["f1"] == pytest.approx(2 * (4 / 5) * (4 / 6) / (4 / 5 + 4 / 6))
    assert overall["agreement"] == pytest.approx(5 / 8)
    helix = metrics["per_class"]["helix"]
    assert (helix["tp"], helix["fp"], helix["fn"], helix["residues"]) == (2, 2, 1, 3)
    assert metrics["confusion"]["sheet"] == {"helix": 1, "sheet": 1, "nucleic": 0, "unassigned": 0}
    empty = residue_metrics(np.zeros(0, int), np.zeros(0, int))
    assert empty["overall"]["recall"] is None and empty["overall"]["agreement"] is None
    with pytest.raises(ValueError, match="without a prediction"):
        residue_metrics(model[:1], np.array([NO_PREDICTION]))


# ---- bad inputs ---------------------------------------------------------------------------------------------------
def test_a_model_without_protein_or_nucleotides_is_refused(scene_map) -> None:
    structure = gemmi.read_pdb_string(WATER_PDB)
    maps = {name: scene_map for name in CLASS_ORDER}
    with pytest.raises(ValidationError, match="waters.pdb: no amino-acid or nucleotide residue"):
        validate_model(structure, maps, scene_map, model_path="waters.pdb")


def test_maps_on_different_grids_or_missing_are_refused(scene, scene_map) -> None:
    maps = class_maps(scene, scene_map)
    moved = DensityMap(data=maps["sheet"].data, voxel_size=scene_map.voxel_size, origin=(1.0, 0.0, 0.0),
                       path="/data/sheet.mrc")
    with pytest.raises(ValidationError, match=r"/data/sheet.mrc: grid .* differs from that of density"):
        validate_model(scene, {**maps, "sheet": moved}, scene_map)
    with pytest.raises(ValidationError, match="no nucleic probability map"):
        validate_model(scene, {k: v for k, v in maps.items() if k != "nucleic"}, scene_map)
    flat = scene_map.with_data(np.ones_like(scene_map.data))
    with pytest.raises(ValidationError, match="constant density"):
        validate_model(scene, maps, flat)


# ---- the command --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def annotated(tmp_path_factory, scene, scene_map):
    """A model file, its map and an annotation written by annotate's own writer (the worker contract)."""
    root = tmp_path_factory.mktemp("validate")
    write_map(root / "scene.mrc", scene_map.data, scene_map.voxel_size, scene_map.origin)
    density = read_map(root / "scene.mrc")
    maps = class_maps(scene, density)
    probabilities = np.stack([maps[name].data for name in CHANNELS], axis=-1)
    annotation = Annotation(probabilities=probabilities, covered=np.ones(density.data.shape, dtype=bool),
                            resampled=False, working_voxel_size=density.voxel_size, tiles=1, batch_size=1,
                            warnings=["made from the model (test)"])
    paths = write_annotation(annotation, density, root / "annotation", "scene")
    model = write_model(scene, root / "scene_model.cif")
    return {"root": root, "model": model, "summary": paths["summary"], "paths": paths, "density": density}


def run_cli(capsys, *args) -> tuple[int, str]:
    code = main(["validate", *map(str, args)])
    return code, capsys.readouterr().err


def test_cli_writes_table_model_and_report(annotated, scene, capsys) -> None:
    out = annotated["root"] / "out"
    code, err = run_cli(capsys, annotated["model"], annotated["summary"], "-o", out)
    assert code == 0, err
    assert "recall 100.0%, precision 100.0%" in err
    report = json.loads((out / "scene_model_validation.json").read_text())
    expected = validation_report(validate_model(read_model(annotated["model"]),
                                                class_maps(scene, annotated["density"]), annotated["density"]))
    assert report["metrics"] == expected["metrics"] and report["counts"] == expected["counts"]
    assert report["warnings"] == ["annotation: made from the model (test)"]
    assert report["map"]["path"] == str((annotated["root"] / "scene.mrc").resolve())
    assert report["outputs"] == {"table": str(out / "scene_model_validation.csv"),
                                 "model": str(out / "scene_model_validation.cif")}

    with open(out / "scene_model_validation.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 92 and {row["agreement"] for row in rows} == {"1"} and {row["counted"] for row in rows} == {"1"}
    labels = label_residues(scene)
    assert [(row["chain"], row["residue_number"], row["residue_name"]) for row in rows] == \
        [(r.chain, r.seqid, r.name) for r in labels]
    assert [row["model_class"] for row in rows] == [CLASS_ORDER[[HELIX, SHEET, NUCLEIC, UNASSIGNED].index(r.label)]
                                                    for r in labels]

    scored = read_model(out / "scene_model_validation.cif")
    bfactor = {(chain.name, str(residue.seqid)): residue[0].b_iso for chain in scored[0] for residue in chain}
    for row in rows:
        assert row["model_class_probability"] == row[f"p_{row['model_class']}"]
        assert bfactor[(row["chain"], row["residue_number"])] == pytest.approx(float(row["model_class_probability"]),
                                                                               abs=1e-3)


def test_cli_takes_the_annotation_directory_and_a_given_map(annotated, capsys) -> None:
    out = annotated["root"] / "from-dir"
    code, err = run_cli(capsys, annotated["model"], annotated["summary"].parent, "--map",
                        annotated["root"] / "scene.mrc", "-o", out, "--prefix", "check")
    assert code == 0, err
    report = json.loads((out / "check_validation.json").read_text())
    assert report["annotation"] == str(annotated["summary"].resolve())
    assert report["metrics"]["overall"]["f1"] == 1.0


def test_cli_errors_name_the_file(annotated, scene, capsys, tmp_path) -> None:
    waters = tmp_path / "waters.pdb"
    waters.write_text(WATER_PDB)
    code, err = run_cli(capsys, waters, annotated["summary"], "-o", tmp_path)
    assert code == 1 and f"haruspex: error: {waters}: no amino-acid or nucleotide residue" in err

    other_grid = tmp_path / "other.mrc"
    write_map(other_grid, np.ones((10, 10, 10), np.float32), (1.1,) * 3)
    code, err = run_cli(capsys, annotated["model"], annotated["summary"], "--map", other_grid, "-o", tmp_path)
    assert code == 1 and "haruspex: error:" in err and "differs from that of" in err and str(other_grid) in err

    code, err = run_cli(capsys, annotated["model"], tmp_path / "nothing.json", "-o", tmp_path)
    assert code == 1 and f"{tmp_path / 'nothing.json'}: no such file or directory" in err

    code, err = run_cli(capsys, annotated["model"], tmp_path, "-o", tmp_path)
    assert code == 1 and f"{tmp_path}: no annotate summary" in err

    summary = json.loads(annotated["summary"].read_text())
    summary["outputs"]["helix"] = str(tmp_path / "gone_helix.mrc")
    edited = tmp_path / "edited_summary.json"
    edited.write_text(json.dumps(summary))
    code, err = run_cli(capsys, annotated["model"], edited, "-o", tmp_path / "out")
    assert code == 1 and (f"haruspex: error: {edited}: its helix probability map gone_helix.mrc is neither beside it "
                          f"nor at {tmp_path / 'gone_helix.mrc'}; keep the maps beside their summary") in err
    assert not (tmp_path / "out").exists()  # nothing is written before the inputs are known to be usable


def test_cli_reads_the_maps_beside_a_copied_summary(annotated, capsys, tmp_path) -> None:
    original = tmp_path / "original"
    shutil.copytree(annotated["summary"].parent, original)
    summary = json.loads((original / annotated["summary"].name).read_text())
    summary["outputs"] = {name: str(original / Path(path).name) for name, path in summary["outputs"].items()}
    (original / annotated["summary"].name).write_text(json.dumps(summary))  # as if annotate had written it here
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    helix = read_map(original / Path(summary["outputs"]["helix"]).name)
    write_map(helix.path, np.zeros_like(helix.data), helix.voxel_size, helix.origin)  # changed after the copy
    code, err = run_cli(capsys, annotated["model"], copy, "-o", tmp_path / "out")
    assert code == 0, err
    assert json.loads((tmp_path / "out" / "scene_model_validation.json").read_text())["metrics"]["overall"]["f1"] == 1.0


def test_cli_names_a_summary_cut_short_and_a_folder_whose_only_summary_is(annotated, capsys, tmp_path) -> None:
    text = annotated["summary"].read_text()
    cut = tmp_path / "scene_summary.json"
    cut.write_text(text[: len(text) // 2])
    code, err = run_cli(capsys, annotated["model"], cut, "-o", tmp_path / "out")
    assert code == 1 and len(err.splitlines()) == 1
    assert err.startswith(f"haruspex: error: {cut}: the summary is cut short or corrupt (JSON: ")
    assert "run `haruspex annotate` again" in err
    code, err = run_cli(capsys, annotated["model"], tmp_path, "-o", tmp_path / "out")
    assert code == 1 and len(err.splitlines()) == 1
    assert err.startswith(f"haruspex: error: {tmp_path}: no readable annotate summary in this directory: {cut}: ")


def test_cli_exit_status_from_the_worker_process(annotated, tmp_path) -> None:
    result = subprocess.run([sys.executable, "-m", "haruspex_engine", "validate", str(annotated["model"]),
                             str(annotated["summary"]), "-o", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "scene_model_validation.json").is_file()
    result = subprocess.run([sys.executable, "-m", "haruspex_engine", "validate", str(tmp_path / "missing.cif"),
                             str(annotated["summary"])], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"haruspex: error: {tmp_path / 'missing.cif'}: no such file"


# ---- a real map ---------------------------------------------------------------------------------------------------
@pytest.mark.skipif(not (SHARED_3J6B / "3J6B_9.pdb").is_file(),
                    reason=f"{SHARED_3J6B} is absent (../shared not beside the project)")
def test_backbone_density_rule_on_the_3j6b_map() -> None:
    """The deposited chain in its 3.2 Å map (header origin honoured): most residues reach 1 r.m.s.d.; maps painted
    from its own labels score 1 on them (no published annotation can be made here: no weights)."""
    structure = read_model(SHARED_3J6B / "3J6B_9.pdb")
    density = read_map(SHARED_3J6B / "2566_3J6B_9.mrc")
    validation = validate_model(structure, class_maps(structure, density), density)
    report = validation_report(validation)
    assert report["counts"]["off_map"] == 0  # the model is off the map when the header origin is dropped
    assert report["counts"]["counted"] >= 0.9 * len(validation)
    assert report["metrics"]["overall"]["recall"] == report["metrics"]["overall"]["precision"] == 1.0
