"""Train, evaluate and install the bundled demo detection network (haruspex_engine/nucleic/detection/demo_detector/).

The demo detector is NOT CryoREAD's published networks: one small U-Net (``demo_network``) from the working map
straight to the eight stage-2 classes, trained here so that `detect-na --demo-model` and nucleic-acid building can
be tried without the published weights. Stages (``--stage``, default all, in this order; each reads the previous
one's files in WORK):

    data      simulate the training samples (``demo_training.simulated_sample``): random scenes of ideal RNA/DNA
              duplexes and strands among protein helices, sheets and coil (``training.scenes``), and the corpus
              entries TRAIN_ENTRIES (../shared/data/na-corpus); resolution 2.5–5 Å, correlated density noise
    train     train the U-Net on them (state in WORK/train; a killed run resumes: rerun the same command)
    types     fine-tune the base-type network from the trained U-Net (``demo_training.train_base_type_network``;
              state in WORK/train-types, resumable the same way; ``--type-steps``)
    evaluate  on held-out maps (corpus HELD_OUT_ENTRIES and 6v5b, never trained on; 3.5 Å, noise 0.25): per class
              voxel precision / recall at 0.5 against the targets, then detection -> build-na (with and without the
              sequence) -> evaluate-na, with the detection time
    install   write the network to the package and its card (data, settings, time, metrics); append the figures
              to BENCHMARKS.md (raw copy in benchmarks/results/)

Run with the worker environment: ``.venv-worker/bin/python scripts/make_demo_detector.py --work /tmp/demo-detector``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from bench_common import append_to_benchmarks, machine, peak_rss_gb, save_results  # noqa: E402

from haruspex_engine.nucleic.building.attach import base_vectors  # noqa: E402
from haruspex_engine.nucleic.building.build import build_nucleic_model, find_nodes  # noqa: E402
from haruspex_engine.nucleic.building.evaluate import evaluate_model  # noqa: E402
from haruspex_engine.nucleic.building.nucleotides import PHOSPHATE_ATOMS, SUGAR_ATOMS  # noqa: E402
from haruspex_engine.nucleic.building.parent_bases import parent_base  # noqa: E402
from haruspex_engine.nucleic.building.sequences import parse_fasta  # noqa: E402
from haruspex_engine.nucleic.classes import BASE_TYPES, STAGE2_CLASSES  # noqa: E402
from haruspex_engine.nucleic.detection.demo_detector import (  # noqa: E402
    DEMO_BASE_TYPE_WEIGHTS,
    DEMO_DETECTOR_CARD,
    DEMO_DETECTOR_WEIGHTS,
)
from haruspex_engine.nucleic.detection.demo_network import (  # noqa: E402
    demo_predictor,
    load_base_type_network,
    load_demo_detector,
)
from haruspex_engine.nucleic.detection.demo_training import (  # noqa: E402
    POSITIVE_WEIGHT,
    TARGET_BLOB_SIGMA_A,
    TARGET_SCALE,
    Sample,
    simulated_sample,
    train_base_type_network,
    train_demo_detector,
)
from haruspex_engine.nucleic.detection.detect import detect_with_one_network  # noqa: E402
from haruspex_engine.nucleic.detection.preprocess import WorkingMap  # noqa: E402
from haruspex_engine.testing.corpus import corpus_entries, fasta_from_structure, load_reference  # noqa: E402
from haruspex_engine.testing.oracle_maps import base_type  # noqa: E402
from haruspex_engine.testing.rna_models import DEPOSITED_RNA  # noqa: E402
from haruspex_engine.training.scenes import SceneSettings, random_scene  # noqa: E402

STAGES = ("data", "train", "types", "evaluate", "install")
#: Corpus entries trained on (protein–RNA and protein–DNA complexes among them); the others are held out.
TRAIN_ENTRIES = ("1GID", "4P5J", "1D66", "1ASY", "6POM")
HELD_OUT_ENTRIES = ("1EHZ", "1BNA", "3SIU", "1KF1")
#: Scenes: small boxes, every scene with nucleic acid among protein.
SCENES = SceneSettings(edge_A=(35.0, 55.0), elements=(8, 24), nucleic_fraction=1.0)
EVALUATION_RESOLUTION_A, EVALUATION_NOISE = 3.5, 0.25
#: Å: a detected node matches a nucleotide's class centroid this close.
NODE_MATCH_A = 2.0


def make_data(work: Path, scenes: int, corpus_samples: int) -> None:
    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    entries = corpus_entries()
    jobs = [(f"scene-{k:04d}", lambda k=k: random_scene(np.random.default_rng(k), SCENES), k) for k in range(scenes)]
    jobs += [(f"{name}-{k}", lambda name=name: load_reference(entries[name]), 10_000 + 100 * i + k)
             for i, name in enumerate(TRAIN_ENTRIES) for k in range(corpus_samples)]
    for label, structure, seed in jobs:
        path = data / f"{label}.npz"
        if path.exists():
            continue
        sample = simulated_sample(structure(), np.random.default_rng(seed))
        with open(path.with_suffix(".part"), "wb") as handle:
            np.savez_compressed(handle, density=sample.density, targets=sample.targets, origin=sample.origin,
                                resolution_A=sample.resolution_A, density_noise=sample.density_noise)
        path.with_suffix(".part").rename(path)
        print(f"data: {label}: {sample.density.shape} at {sample.resolution_A:.2f} Å", flush=True)


def load_samples(work: Path) -> list[Sample]:
    samples = []
    for path in sorted((work / "data").glob("*.npz")):
        with np.load(path) as f:
            samples.append(Sample(f["density"], f["targets"], tuple(f["origin"].tolist()), float(f["resolution_A"]),
                                  float(f["density_noise"])))
    return samples


def held_out_structures() -> dict[str, object]:
    entries = corpus_entries()
    structures = {name: load_reference(entries[name]) for name in HELD_OUT_ENTRIES}
    structures["6v5b"] = load_reference(DEPOSITED_RNA)
    return structures


def evaluate(work: Path) -> dict:
    predictor = demo_predictor(weights=work / "demo_detector.pt", base_type_weights=work / "demo_base_types.pt")
    results = {}
    for index, (name, structure) in enumerate(held_out_structures().items()):
        rng = np.random.default_rng(20_000 + index)
        sample = simulated_sample(structure, rng, (EVALUATION_RESOLUTION_A,) * 2, (EVALUATION_NOISE,) * 2)
        detection, seconds, records, built = detect_and_build(structure, name, sample, predictor)
        dna = all(record.kind == "DNA" for record in records)
        entry = {"detection_s": round(seconds, 2), "voxels": _voxel_metrics(detection.stage2, sample.targets),
                 "nodes": _node_metrics(detection.stage2, sample.density, sample.origin, structure, dna),
                 "base_types": type_metrics(detection.stage2, sample.origin, structure), **built}
        results[name] = entry
        w = entry["with_sequence"]
        print(f"evaluate: {name}: detection {seconds:.1f} s; with sequence coverage {w['backbone_coverage_3A']:.3f} "
              f"precision {w['backbone_precision_3A']} sequence recall {w['sequence_recall']:.3f}", flush=True)
    return results


def detect_and_build(structure, name: str, sample: Sample, predictor) -> tuple[object, float, list, dict]:
    """The chain on one simulated map of ``structure`` (entry ``name``): detection with ``predictor``, its seconds,
    the sequences (from the structure's own residues), and evaluate-na's figures of the model built with them and
    without them ({"with_sequence": …, "no_sequence": …}; zero coverage when nothing is built)."""
    working = WorkingMap(sample.density, sample.origin, 0.0, (0, 0, 0), sample.density.shape, 1.0)
    t0 = time.perf_counter()
    detection = detect_with_one_network(working, predictor, progress=False)
    seconds = time.perf_counter() - t0
    records = parse_fasta(fasta_from_structure(structure, name), name)
    built = {}
    for label, sequences in (("with_sequence", records), ("no_sequence", None)):
        model = build_nucleic_model(detection.stage2, sample.density, sample.origin, sequences=sequences).structure
        built[label] = (evaluate_model(model, structure) if model is not None
                        else {"backbone_coverage_3A": 0.0, "backbone_precision_3A": None, "sequence_recall": 0.0})
    return detection, seconds, records, built


def _voxel_metrics(predicted: np.ndarray, targets: np.ndarray) -> dict[str, dict[str, float | None]]:
    """Per class, precision and recall of voxels above 0.5 against target voxels above 0.5."""
    metrics = {}
    for channel, name in enumerate(STAGE2_CLASSES):
        called, truth = predicted[channel] > 0.5, targets[channel] > TARGET_SCALE // 2
        hits = int(np.count_nonzero(called & truth))
        metrics[name] = {"precision": round(hits / called.sum(), 3) if called.any() else None,
                         "recall": round(hits / truth.sum(), 3) if truth.any() else None}
    return metrics


def _node_metrics(stage2: np.ndarray, density: np.ndarray, origin, structure,
                  dna: bool) -> dict[str, dict[str, float | None]]:
    """Per class (sugar, phosphate, base), precision and recall of the nodes the builder traces (``build.find_nodes``
    with its default sugar nodes; DNA geometry when ``dna``) against the centroids of each nucleotide's atoms of that
    class: a node counts when a centroid lies within NODE_MATCH_A of it, a centroid when a node does (nearest
    neighbours, not one-to-one)."""
    found = find_nodes(stage2, density, origin, dna=dna)[0].nodes
    metrics = {}
    for name in ("sugar", "phosphate", "base"):
        nodes = found[name].xyz
        truth = _class_centroids(structure, name)[0]
        if not len(nodes) or not len(truth):
            metrics[name] = {"nodes": len(nodes), "precision": None, "recall": None}
            continue
        to_truth = cKDTree(truth).query(nodes)[0]
        to_nodes = cKDTree(nodes).query(truth)[0]
        metrics[name] = {"nodes": len(nodes), "precision": round(float(np.mean(to_truth <= NODE_MATCH_A)), 3),
                         "recall": round(float(np.mean(to_nodes <= NODE_MATCH_A)), 3)}
    return metrics


def _class_centroids(structure, name: str) -> tuple[np.ndarray, list[str | None]]:
    """(N, 3) Å: per nucleotide, the centroid of its sugar, phosphate or base atoms (hydrogens left out); and each
    one's base-type channel (``oracle_maps.base_type``: A, UT, C or G; None for an unknown parent)."""
    points, types = [], []
    for chain in structure[0]:
        for residue in chain:
            if parent_base(residue) is None:
                continue
            atoms = [a for a in residue if a.element.name != "H"
                     and (a.name in SUGAR_ATOMS if name == "sugar" else a.name in PHOSPHATE_ATOMS if name == "phosphate"
                          else a.name not in SUGAR_ATOMS and a.name not in PHOSPHATE_ATOMS)]
            if atoms:
                points.append(np.mean([a.pos.tolist() for a in atoms], axis=0))
                types.append(base_type(residue))
    return np.array(points).reshape(-1, 3), types


def type_metrics(stage2: np.ndarray, origin, structure) -> dict[str, float | int | None]:
    """At each nucleotide's base centroid (nearest voxel), whether the largest of the four base-type maps names its
    base (type accuracy) and its class (purine A/G or pyrimidine C/U/T: purine_pyrimidine accuracy)."""
    centres, types = _class_centroids(structure, "base")
    kept = [k for k, channel in enumerate(types) if channel is not None]
    if not kept:
        return {"bases": 0, "type_accuracy": None, "purine_pyrimidine_accuracy": None}
    called = np.argmax(base_vectors(centres[kept], stage2, origin), axis=1)
    truth = np.array([BASE_TYPES.index(types[k]) for k in kept])
    purines = [BASE_TYPES.index("A"), BASE_TYPES.index("G")]
    return {"bases": len(kept), "type_accuracy": round(float(np.mean(called == truth)), 3),
            "purine_pyrimidine_accuracy": round(float(np.mean(np.isin(called, purines) == np.isin(truth, purines))),
                                                3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="work folder (samples, training state, results)")
    parser.add_argument("--stage", choices=STAGES, action="append", help="stages to run (default: all)")
    parser.add_argument("--scenes", type=int, default=60, help="simulated scenes (default: 60)")
    parser.add_argument("--corpus-samples", type=int, default=2, help="samples per training entry (default: 2)")
    parser.add_argument("--steps", type=int, default=2500, help="training steps (default: 2500)")
    parser.add_argument("--type-steps", type=int, default=2000,
                        help="fine-tuning steps of the base-type network (default: 2000)")
    parser.add_argument("--batch-size", type=int, default=4, help="crops per step (default: 4)")
    parser.add_argument("--crop", type=int, default=40, help="crop edge, voxels, divisible by 8 (default: 40)")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="Adam learning rate (default: 0.001)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    stages = args.stage or list(STAGES)
    work = args.work
    settings = {key: getattr(args, key) for key in ("scenes", "corpus_samples", "steps", "type_steps", "batch_size",
                                                     "crop", "learning_rate", "seed")}
    if "data" in stages:
        make_data(work, args.scenes, args.corpus_samples)
    if "train" in stages:
        samples = load_samples(work)
        network, report = train_demo_detector(samples, work / "train", steps=args.steps,
                                              batch_size=args.batch_size, crop=args.crop,
                                              learning_rate=args.learning_rate, seed=args.seed)
        torch.save(network.state_dict(), work / "demo_detector.pt")
        (work / "training.json").write_text(json.dumps({
            "settings": settings, "samples": len(samples), **_report_figures(report)}, indent=1))
    if "types" in stages:
        samples = load_samples(work)
        network, report = train_base_type_network(samples, work / "train-types",
                                                  load_demo_detector(work / "demo_detector.pt"),
                                                  steps=args.type_steps, batch_size=args.batch_size, crop=args.crop,
                                                  learning_rate=args.learning_rate, seed=args.seed)
        torch.save({name: value.half() if value.is_floating_point() else value
                    for name, value in network.state_dict().items()}, work / "demo_base_types.pt")
        training = json.loads((work / "training.json").read_text())
        training["settings"]["type_steps"] = args.type_steps
        training["base_types"] = _report_figures(report)
        (work / "training.json").write_text(json.dumps(training, indent=1))
    if "evaluate" in stages:
        (work / "evaluation.json").write_text(json.dumps(evaluate(work), indent=1))
    if "install" in stages:
        install(work)


def _report_figures(report) -> dict:
    """What the card keeps of a ``demo_training.TrainingReport``."""
    losses = report.losses
    return {"steps": report.steps, "seconds_this_run": round(report.seconds, 1), "resumed_from": report.resumed_from,
            "peak_rss_gb": round(peak_rss_gb(), 2), "loss_first_100": round(float(np.mean(losses[:100])), 4),
            "loss_last_100": round(float(np.mean(losses[-100:])), 4)}


def install(work: Path) -> None:
    training = json.loads((work / "training.json").read_text())
    settings = training["settings"]
    evaluation = json.loads((work / "evaluation.json").read_text())
    DEMO_DETECTOR_WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
    DEMO_DETECTOR_WEIGHTS.write_bytes((work / "demo_detector.pt").read_bytes())
    DEMO_BASE_TYPE_WEIGHTS.write_bytes((work / "demo_base_types.pt").read_bytes())
    card = {
        "what": "Demo detection network: NOT CryoREAD's published networks. One small U-Net from the working map to "
                "the eight stage-2 classes, and a copy fine-tuned for the base types (P(type | base)), trained by "
                "scipion-em-haruspex on simulated maps, for trying nucleic-acid building without the published "
                "weights.",
        "bytes": DEMO_DETECTOR_WEIGHTS.stat().st_size + DEMO_BASE_TYPE_WEIGHTS.stat().st_size,
        "parameters": sum(p.numel() for p in load_demo_detector().parameters()),
        "base_type_parameters": sum(p.numel() for p in load_base_type_network().parameters()),
        "data": {"scenes": settings["scenes"], "train_entries": list(TRAIN_ENTRIES),
                 "corpus_samples_per_entry": settings["corpus_samples"], "held_out": [*HELD_OUT_ENTRIES, "6v5b"],
                 "resolution_A": [2.5, 5.0], "density_noise": [0.1, 0.5], "target_blob_sigma_A": TARGET_BLOB_SIGMA_A,
                 "positive_weight": POSITIVE_WEIGHT},
        "training": training,
        "evaluation": {"resolution_A": EVALUATION_RESOLUTION_A, "density_noise": EVALUATION_NOISE,
                       "entries": evaluation},
        "command": "scripts/make_demo_detector.py --work WORK " + " ".join(
            f"--{key.replace('_', '-')} {value}" for key, value in settings.items()),
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
    }
    DEMO_DETECTOR_CARD.write_text(json.dumps(card, indent=1) + "\n")
    results = save_results("demo-detector", card)
    type_training = training["base_types"]
    lines = ["", f"## Demo detection network ({card['date']})", "",
             f"`{card['command']}` on {card['machine'].get('cpu', 'this machine')}; raw: `{results}`.",
             f"U-Net {card['parameters']} parameters ({card['bytes'] / 1e6:.2f} MB with the base-type network, "
             f"stored in half precision); {training['steps']} steps of "
             f"{settings['batch_size']} crops of {settings['crop']}³ on {training['samples']} samples; loss "
             f"{training['loss_first_100']} -> {training['loss_last_100']} (means of the first / last 100 steps); "
             f"base-type network {card['base_type_parameters']} parameters, {type_training['steps']} fine-tuning "
             f"steps, loss {type_training['loss_first_100']} -> {type_training['loss_last_100']} (cross-entropy; 1.39 "
             "at chance).",
             "", "Held-out maps at 3.5 Å (density noise 0.25); voxels above 0.5 (precision / recall), the largest "
             "base-type map at each base's centre (base type / purine-pyrimidine right), then the whole chain "
             "detection -> build-na -> evaluate-na:", "",
             "| entry | sugar | phosphate | base | protein | base types | detection s | coverage | precision | "
             "seq. recall | coverage no seq. | seq. recall no seq. |", "|---" * 12 + "|"]
    for name, entry in evaluation.items():
        v, w, n = entry["voxels"], entry["with_sequence"], entry["no_sequence"]
        cells = [" / ".join("–" if x is None else f"{x:.2f}" for x in (v[c]["precision"], v[c]["recall"]))
                 for c in ("sugar", "phosphate", "base", "protein")]
        figures = [w["backbone_coverage_3A"], w["backbone_precision_3A"], w["sequence_recall"],
                   n["backbone_coverage_3A"], n["sequence_recall"]]
        types = entry.get("base_types", {})
        cells.append(" / ".join("–" if types.get(k) is None else f"{types[k]:.2f}"
                                for k in ("type_accuracy", "purine_pyrimidine_accuracy")))
        lines.append(f"| {name} | {' | '.join(cells)} | {entry['detection_s']} | "
                     f"{' | '.join('–' if f is None else f'{f:.3f}' for f in figures)} |")
    append_to_benchmarks(lines)


if __name__ == "__main__":
    main()
