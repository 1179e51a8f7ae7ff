"""Train, evaluate and install the bundled Haruspex demo model (haruspex_engine/demo_model/).

The demo model is NOT the published network: it is a narrow network of the published architecture (width 8: a
quarter of the published channels) trained here on maps simulated from random scenes of ideal elements
(``haruspex_engine.training.scenes``), so that ``haruspex annotate --demo-model`` gives meaningful maps without
the published weights. Stages (``--stage``, default all, in this order; each reads the previous one's files):

    data      simulate the training scenes and write their 70³ segments; write the held-out scenes (map + model)
    train     train on the segments (checkpoints in WORK/train)
    evaluate  annotate the held-out scenes and ../shared/data/protein-3j6b with the latest checkpoint and score
              them per residue as `haruspex validate` does (pooled over scenes)
    install   write the latest checkpoint's network tensors to haruspex_engine/demo_model/ and its card (settings,
              size, metrics) to haruspex_engine/demo_model/demo_model.json; append the training time and memory
              and the metrics to BENCHMARKS.md (raw card copy in benchmarks/results/)

Run with the worker environment: ``.venv-worker/bin/python scripts/make_demo_model.py --work /tmp/demo-model``.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from bench_common import append_to_benchmarks, machine, peak_rss_gb, save_results  # noqa: E402

from haruspex_engine.annotation.annotate import annotate_map  # noqa: E402
from haruspex_engine.annotation.checkpoint import (  # noqa: E402
    CHANNELS,
    data_path,
    index_path,
    network_width,
    read_network_weights,
    write_checkpoint,
)
from haruspex_engine.annotation.network import HaruspexNetwork  # noqa: E402
from haruspex_engine.demo_model import DEMO_CARD, DEMO_PREFIX  # noqa: E402
from haruspex_engine.maps import read_map, write_like  # noqa: E402
from haruspex_engine.model_files import read_model  # noqa: E402
from haruspex_engine.training.labels import paint_labels  # noqa: E402
from haruspex_engine.training.scenes import random_scene, scene_map  # noqa: E402
from haruspex_engine.training.segments import load_segments, save_segments, training_segments  # noqa: E402
from haruspex_engine.training.train import kept_checkpoints, train  # noqa: E402
from haruspex_engine.validation.secondary_structure import label_residues  # noqa: E402
from haruspex_engine.validation.validate import residue_metrics, validate_model  # noqa: E402
from haruspex_engine.validation.validate_command import percent  # noqa: E402

HELD_OUT_SEED = 1_000_000  # held-out scenes use seeds from here on; training scenes from 0
REAL_MAP = ROOT.parent / "shared" / "data" / "protein-3j6b"
STAGES = ("data", "train", "evaluate", "install")


def _training_scene(job: tuple[int, Path]) -> int:
    seed, directory = job
    rng = np.random.default_rng(seed)
    structure = random_scene(rng)
    density = scene_map(structure, rng)
    segments = training_segments(density, paint_labels(density, structure, label_residues(structure)), structure,
                                 seed=seed)
    save_segments(segments, directory, f"scene{seed:06d}")
    return len(segments)


def _held_out_scene(job: tuple[int, Path]) -> None:
    seed, directory = job
    rng = np.random.default_rng(seed)
    structure = random_scene(rng)
    density = scene_map(structure, rng)
    write_like(directory / f"scene{seed}.mrc", density.data, density)
    structure.make_mmcif_document().write_file(str(directory / f"scene{seed}.cif"))


def make_data(work: Path, train_scenes: int, test_scenes: int) -> None:
    segments, held_out = work / "segments", work / "heldout"
    for directory in (segments, held_out):
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
    started = time.perf_counter()
    with multiprocessing.Pool() as pool:
        counts = pool.map(_training_scene, [(seed, segments) for seed in range(train_scenes)])
        pool.map(_held_out_scene, [(HELD_OUT_SEED + k, held_out) for k in range(test_scenes)])
    print(f"data: {sum(counts)} segments from {train_scenes} scenes, {test_scenes} held-out scenes, "
          f"{time.perf_counter() - started:.0f} s", flush=True)


def run_training(work: Path, args: argparse.Namespace) -> None:
    """Train into WORK/train; with --resume, continue (or extend to --steps) the run already there, keeping the
    losses and seconds of its earlier part (the result equals one uninterrupted run: ``train(resume=True)``)."""
    folder = work / "train"
    earlier_losses, earlier_seconds = np.empty(0, np.float32), 0.0
    if args.resume and (folder / "losses.npy").is_file():
        earlier_losses = np.load(folder / "losses.npy")
        earlier_seconds = json.loads((folder / "report.json").read_text())["seconds"]
    elif not args.resume:
        shutil.rmtree(folder, ignore_errors=True)
    segments = load_segments(work / "segments")
    report = train(segments, steps=args.steps, batch_size=args.batch_size, width=args.width,
                   learning_rate=args.learning_rate, epsilon=args.epsilon, seed=args.seed, resume=args.resume,
                   output_prefix=folder / "model.ckpt", checkpoint_every=500, keep=3)
    done_before = 0 if report.resumed_from_step is None else report.resumed_from_step - report.first_step
    if len(earlier_losses) < done_before:
        raise RuntimeError(f"{folder / 'losses.npy'}: {len(earlier_losses)} losses for {done_before} earlier steps")
    losses = np.concatenate([earlier_losses[:done_before], np.asarray(report.losses, np.float32)])
    summary = {key: value for key, value in vars(report).items() if key != "losses"}
    summary["seconds"] = report.seconds + (earlier_seconds if done_before else 0.0)
    summary["loss_first_100"] = float(np.mean(losses[:100]))
    summary["loss_last_100"] = float(np.mean(losses[-100:]))
    (folder / "report.json").write_text(json.dumps(summary, indent=1))
    np.save(folder / "losses.npy", losses)
    print(f"train: {len(losses)} steps in {summary['seconds']:.0f} s, loss {summary['loss_first_100']:.3f} -> "
          f"{summary['loss_last_100']:.3f}", flush=True)


def latest_checkpoint(work: Path) -> Path:
    return work / "train" / kept_checkpoints(work / "train")[-1]


def score(network: HaruspexNetwork, map_path: Path, model_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Model and predicted labels of the counted residues (backbone ≥ 1 r.m.s.d.) of one map and its model."""
    density = read_map(map_path)
    annotation = annotate_map(density, network.probabilities, progress=False)
    maps = {name: density.with_data(annotation.channel(name)) for name in CHANNELS}
    validation = validate_model(read_model(model_path), maps, density, model_path=str(model_path))
    return validation.model_label[validation.counted], validation.predicted_label[validation.counted]


def _rounded(metrics: dict) -> dict:
    return json.loads(json.dumps(metrics), parse_float=lambda text: round(float(text), 4))


def evaluate(work: Path, prefix: Path) -> dict:
    network = HaruspexNetwork(read_network_weights(prefix), algorithm="direct")  # the function as trained
    pairs = [score(network, path, path.with_suffix(".cif")) for path in sorted((work / "heldout").glob("*.mrc"))]
    result = {"checkpoint": str(prefix),
              "held_out_scenes": _rounded({"scenes": len(pairs),
                                           **residue_metrics(np.concatenate([p[0] for p in pairs]),
                                                             np.concatenate([p[1] for p in pairs]))})}
    if REAL_MAP.is_dir():
        result["protein_3j6b"] = _rounded(residue_metrics(*score(network, REAL_MAP / "2566_3J6B_9.mrc",
                                                                 REAL_MAP / "3J6B_9.pdb")))
    (work / "evaluation.json").write_text(json.dumps(result, indent=1))
    for name in ("held_out_scenes", "protein_3j6b"):
        if name in result:
            overall = result[name]["overall"]
            classes = ", ".join(f"{c} {m['recall']}/{m['precision']}" for c, m in result[name]["per_class"].items())
            print(f"evaluate {name}: {result[name]['residues']} residues, recall {overall['recall']}, precision "
                  f"{overall['precision']} (per class recall/precision: {classes})", flush=True)
    return result


def install(work: Path, args: argparse.Namespace) -> None:
    prefix = latest_checkpoint(work)
    weights = read_network_weights(prefix)
    report = json.loads((work / "train" / "report.json").read_text())
    for stale in DEMO_PREFIX.parent.glob(DEMO_PREFIX.name + ".*"):
        stale.unlink()
    write_checkpoint(DEMO_PREFIX, weights, global_step=report["final_step"], optimizer=False)
    card = {
        "what": "Haruspex demo model: NOT the published network. A narrow network of the published architecture "
                "trained by scipion-em-haruspex on maps simulated from random scenes of ideal elements, for trying "
                "the tool without the published weights.",
        "width": network_width(weights),
        "parameters": int(sum(w.size for w in weights.values())),
        "bytes": data_path(DEMO_PREFIX).stat().st_size + index_path(DEMO_PREFIX).stat().st_size,
        "training": {"scenes": args.train_scenes, "segments": report["segments"], "steps": report["final_step"],
                     "batch_size": report["batch_size"], "learning_rate": report["learning_rate"],
                     "epsilon": report["epsilon"], "seed": report["seed"], "seconds": round(report["seconds"]),
                     "peak_rss_gb": round(report["peak_rss_bytes"] / 1e9, 2),
                     "loss_first_100": round(report["loss_first_100"], 4),
                     "loss_last_100": round(report["loss_last_100"], 4)},
        "evaluation": json.loads((work / "evaluation.json").read_text()),
        "command": (f"scripts/make_demo_model.py --work {work} --train-scenes {args.train_scenes} --test-scenes "
                    f"{args.test_scenes} --steps {report['steps']} --batch-size {report['batch_size']} --width "
                    f"{network_width(weights)} --learning-rate {report['learning_rate']} --epsilon "
                    f"{report['epsilon']} --seed {report['seed']}"),
        "date": time.strftime("%Y-%m-%d"),
    }
    card["evaluation"].pop("checkpoint", None)
    DEMO_CARD.write_text(json.dumps(card, indent=1) + "\n")
    print(f"install: {DEMO_PREFIX} ({card['parameters']:,} parameters, {card['bytes']:,} bytes), card {DEMO_CARD}")
    report_benchmarks(card, args)


def report_benchmarks(card: dict, args: argparse.Namespace) -> None:
    """Append the demo model's training cost and metrics to BENCHMARKS.md."""
    host = machine()
    raw = save_results("demo-model", {"machine": host, **card})
    t = card["training"]
    lines = [
        f"\n## Haruspex demo model — {host['date']}",
        f"Machine: {host['cpu']}, {host['cores']} cores, CPU only. Command: `.venv-worker/bin/python "
        f"{card['command']}`. Raw: `{raw}`.",
        f"Training: {t['scenes']} simulated scenes → {t['segments']} segments of 70³; {t['steps']} steps of batch "
        f"{t['batch_size']} (lr {t['learning_rate']}, Adam ε {t['epsilon']}), width {card['width']}: "
        f"{t['seconds'] / 60:.0f} min ({t['seconds'] / t['steps']:.2f} s / step, "
        f"{t['seconds'] / t['steps'] / t['batch_size']:.3f} s / segment-step{args.time_note}), peak RSS "
        f"{t['peak_rss_gb']} GB; "
        f"loss (mean of 100 steps) {t['loss_first_100']} → {t['loss_last_100']}.",
        f"Model: {card['parameters']:,} parameters, {card['bytes'] / 2**20:.2f} MiB on disk (network tensors only).",
        "Per-residue scores as `haruspex validate` counts them (residues with backbone density ≥ 1 r.m.s.d.; "
        "recall / precision over helix, sheet and nucleic acid):",
        "",
        "| data | residues | recall | precision | F1 | helix R / P | sheet R / P | nucleic R / P |",
        "|---|---|---|---|---|---|---|---|",
    ]
    names = {"held_out_scenes": "held-out simulated scenes", "protein_3j6b": "EMD-2566 / 3J6B chain 9 (real)"}
    for key, label in names.items():
        if key not in card["evaluation"]:
            continue
        m = card["evaluation"][key]
        per = m["per_class"]
        cells = [f"{percent(per[c]['recall'])} / {percent(per[c]['precision'])}" for c in ("helix", "sheet", "nucleic")]
        overall = m["overall"]
        lines.append(f"| {label} | {m['residues']} | {percent(overall['recall'])} | {percent(overall['precision'])} | "
                     f"{percent(overall['f1'])} | {' | '.join(cells)} |")
    append_to_benchmarks(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="working directory (segments, checkpoints)")
    parser.add_argument("--stage", choices=STAGES + ("all",), default="all")
    parser.add_argument("--train-scenes", type=int, default=200)
    parser.add_argument("--test-scenes", type=int, default=12)
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--epsilon", type=float, default=1e-7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true",
                        help="train stage: continue the run in WORK/train, or extend it to --steps")
    parser.add_argument("--time-note", default="", help="appended to the training time in BENCHMARKS.md, e.g. "
                        "'; the machine was shared with other jobs'")
    args = parser.parse_args()
    stages = STAGES if args.stage == "all" else (args.stage,)
    if "data" in stages:
        make_data(args.work, args.train_scenes, args.test_scenes)
    if "train" in stages:
        run_training(args.work, args)
    if "evaluate" in stages:
        evaluate(args.work, latest_checkpoint(args.work))
    if "install" in stages:
        install(args.work, args)
    print(f"peak RSS {peak_rss_gb():.2f} GB", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
