"""Benchmark: Haruspex training speed and memory on this machine (seconds per step, peak RSS), by batch size.

Run from the repository root with the worker environment:

    .venv-worker/bin/python benchmarks/bench_train.py [--batch-sizes 1 4 8 16] [--steps 4]

Training data: 70³ segments of a map simulated (4 Å) from an ideal scene of nine helices and a sheet, labelled by
`haruspex_engine.training` (the paper's rules). Each batch size runs in a fresh process (its peak RSS is its own)
for --steps steps; the reported step time is the median over the steps (the first one also traces the graph, so
the median is the steady-state cost when --steps ≥ 3). The published schedule (40,000 steps of batch 100) is
extrapolated from it.
Results: appended to BENCHMARKS.md and written to benchmarks/results/train-<date>.json.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time

from bench_common import append_to_benchmarks, machine, peak_rss_gb, run_child, save_results

PUBLISHED_STEPS, PUBLISHED_BATCH = 40_000, 100


def segments():
    """Training segments of a simulated scene (labels painted from the model)."""
    from haruspex_engine import structures
    from haruspex_engine.maps import DensityMap
    from haruspex_engine.simulate import simulate_map
    from haruspex_engine.training.labels import paint_labels
    from haruspex_engine.training.segments import training_segments
    from haruspex_engine.validation.secondary_structure import label_residues

    chains = [structures.ideal_alpha_helix(24, chain_id="ABCDEFGHI"[k], start=(10.0 * (k % 3), 10.0 * (k // 3), 0.0))
              for k in range(9)]
    chains += structures.beta_sheet(4, 9, chain_ids=list("JKLM"), start=(32.0, 0.0, 5.0), strand_axis=(0, 0, 1))
    structure = structures.assemble(chains)
    data, origin = simulate_map(structure, voxel_size=1.1, resolution=4.0)
    density = DensityMap(data=data, voxel_size=(1.1,) * 3, origin=origin)
    labels = paint_labels(density, structure, label_residues(structure))
    return training_segments(density, labels, structure, size=70, stride=10)


def measure(batch_size: int, steps: int) -> dict:
    """``steps`` training steps at ``batch_size`` in this (fresh) process."""
    from haruspex_engine.training.train import train

    pool = segments()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        report = train(pool, steps=steps, batch_size=batch_size, output_prefix=f"{tmp}/model.ckpt",
                       checkpoint_every=steps, keep=1, progress=False)
        wall = time.perf_counter() - t
    return {"batch_size": batch_size, "steps": steps, "segments": len(pool), "wall_s": wall,
            "median_step_s": report.seconds_per_step, "peak_rss_gb": peak_rss_gb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(int(args.child[0]), int(args.child[1]))))
        return
    results = {"machine": machine(), "runs": []}
    for batch in args.batch_sizes:
        run = run_child(__file__, [str(batch), str(args.steps)])
        results["runs"].append(run)
        print(run, flush=True)
    raw = save_results("train", results)
    lines = [
        f"\n## Haruspex training speed — {results['machine']['date']}",
        f"Machine: {results['machine']['cpu']}, {results['machine']['cores']} cores, CPU only. Command: "
        f"`.venv-worker/bin/python benchmarks/bench_train.py --batch-sizes {' '.join(map(str, args.batch_sizes))} "
        f"--steps {args.steps}`. Raw: `{raw}`. 70³ segments of a simulated helix/sheet scene (a batch may repeat a "
        "segment under other rotations and crops, which costs the same); step time = median over the steps "
        "(TrainingReport.seconds_per_step); each batch size in its own process.",
        "",
        "| batch | s / step | s / segment | peak RSS GB | published schedule (40,000 × 100) at this rate |",
        "|---|---|---|---|---|",
    ]
    for run in results["runs"]:
        per_segment = run["median_step_s"] / run["batch_size"]
        days = per_segment * PUBLISHED_BATCH * PUBLISHED_STEPS / 86400
        lines.append(f"| {run['batch_size']} | {run['median_step_s']:.2f} | {per_segment:.2f} | "
                     f"{run['peak_rss_gb']:.2f} | {days:.0f} days |")
    append_to_benchmarks(lines)


if __name__ == "__main__":
    main()
