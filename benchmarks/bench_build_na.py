"""Benchmark: nucleic-acid model building from oracle detection maps (quality, time, memory), no sequence yet.

Run from the repository root with the worker environment:

    .venv-worker/bin/python benchmarks/bench_build_na.py

Oracle maps (haruspex_engine.testing.oracle_maps) of the 78-nt RNA ../shared/data/cryoread-example/6v5b_drna.pdb
at three corruption levels: clean (noise σ 0.05), moderate (σ 0.05, 5 % residues dropped, 15 % base confusion,
2 false blobs / 1000 Å³) and the issue's "realistic" (the same with σ 0.15). Each build runs in a fresh process
(peak RSS is its own) and is scored with `evaluate_model` against the deposited model: backbone coverage /
precision (C4′ within 3 Å), base recall / precision, RMSD. Sequence assignment is not implemented yet, so these are
the no-sequence figures.
Results: appended to BENCHMARKS.md and written to benchmarks/results/build-na-<date>.json.
"""
from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

from bench_common import machine, peak_rss_gb, run_child

REPO = Path(__file__).resolve().parents[1]
RNA = REPO.parent / "shared" / "data" / "cryoread-example" / "6v5b_drna.pdb"
LEVELS = ("clean", "moderate", "realistic")
KEYS = ("backbone_coverage_3A", "backbone_precision_3A", "sequence_recall", "sequence_precision", "rmsd_A")


def corruption(level: str):
    from haruspex_engine.testing.oracle_maps import CLEAN, REALISTIC, Corruption

    moderate = Corruption(noise_sigma=0.05, drop_fraction=0.05, confusion_fraction=0.15, false_blobs_per_1000_A3=2.0)
    return {"clean": CLEAN, "moderate": moderate, "realistic": REALISTIC}[level]


def measure(level: str) -> dict:
    """One build from oracle maps at ``level``, in this (fresh) process."""
    import gemmi

    from haruspex_engine.nucleic.build import build_without_sequence
    from haruspex_engine.nucleic.evaluate import evaluate_model
    from haruspex_engine.testing.oracle_maps import oracle_maps

    reference = gemmi.read_structure(str(RNA))
    maps = oracle_maps(reference, corruption(level))
    t = time.perf_counter()
    result = build_without_sequence(maps.stage2, maps.density, maps.origin)
    wall = time.perf_counter() - t
    scores = evaluate_model(result.structure, reference) if result.structure is not None else {}
    return {"wall_s": wall, "peak_rss_gb": peak_rss_gb(), "timings_s": result.timings_s,
            "sugar_nodes": result.node_counts["sugar"], "chains": len(result.structure[0]) if result.structure else 0,
            "trace_stopped_by": result.trace.stopped_by, **{k: scores.get(k) for k in KEYS}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0])))
        return
    if not RNA.is_file():
        raise SystemExit(f"{RNA} not found: the 78-nt reference model is needed")
    results = {"machine": machine(), "reference": str(RNA)}
    for level in LEVELS:
        results[level] = run_child(__file__, [level])
        print(level, results[level], flush=True)
    _write(results)


def _write(results: dict) -> None:
    out_dir = REPO / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M")
    (out_dir / f"build-na-{stamp}.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        f"\n## Nucleic-acid model building, no sequence — {results['machine']['date']}",
        f"Machine: {results['machine']['cpu']}, {results['machine']['cores']} cores. Command: "
        f"`.venv-worker/bin/python benchmarks/bench_build_na.py`. Raw: `benchmarks/results/build-na-{stamp}.json`. "
        "Oracle maps of 6v5b (78 nt); scores against the deposited model; trace budget 1000 solutions.",
        "",
        "| corruption | coverage | precision | base recall | base precision | RMSD Å | sugar nodes | chains | s | "
        "peak RSS GB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for level in LEVELS:
        r = results[level]
        cells = [f"{r[k]:.3f}" if r[k] is not None else "–" for k in KEYS]
        lines.append(f"| {level} | " + " | ".join(cells) + f" | {r['sugar_nodes']} | {r['chains']} | "
                     f"{r['wall_s']:.1f} | {r['peak_rss_gb']:.2f} |")
    with open(REPO / "BENCHMARKS.md", "a") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
