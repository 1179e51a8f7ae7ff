"""The demo detector on 6v5b's simulated map with its deposited B-factors and with every B-factor set to one value.

6v5b's deposited B-factors (median 174 Å²) are added to the simulation's 3.5 Å blur (``simulate.resolution_blur``),
so its map shows bases at the detail of a 7.5 Å map; a sharpened 3.5 Å reconstruction of the same model would not.
Per B-factor (the deposited ones, then each of --b-factors) and noise seed k (the card's seed + 1000·k): base type
and class right at the base centres (``make_demo_detector.type_metrics``), then detect -> build-na with and without
the sequence -> evaluate-na. The figures go to BENCHMARKS.md and benchmarks/results/demo-sharpness-*.json.

Run with the worker environment: ``.venv-worker/bin/python benchmarks/bench_demo_sharpness.py``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from bench_common import append_to_benchmarks, machine, save_results  # noqa: E402
from make_demo_detector import (  # noqa: E402
    EVALUATION_NOISE,
    EVALUATION_RESOLUTION_A,
    detect_and_build,
    held_out_structures,
    type_metrics,
)

from haruspex_engine.nucleic.detection.demo_network import demo_predictor  # noqa: E402
from haruspex_engine.nucleic.detection.demo_training import simulated_sample  # noqa: E402

ENTRY = "6v5b"
FIGURES = ("backbone_coverage_3A", "backbone_precision_3A", "sequence_recall", "register_recall")


def run_case(structure, index: int, b_factor: float | None, k: int, predictor) -> dict:
    """One map: ``structure`` with every B-factor set to ``b_factor`` (None: as deposited), noise seed k."""
    model = structure.clone()
    if b_factor is not None:
        for chain in model[0]:
            for residue in chain:
                for atom in residue:
                    atom.b_iso = b_factor
    rng = np.random.default_rng(20_000 + index + 1000 * k)  # k = 0: the card's map
    sample = simulated_sample(model, rng, (EVALUATION_RESOLUTION_A,) * 2, (EVALUATION_NOISE,) * 2)
    detection, _, _, built = detect_and_build(structure, ENTRY, sample, predictor)
    case = {"b_factor": b_factor, "k": k, "base_types": type_metrics(detection.stage2, sample.origin, structure)}
    for label, scores in built.items():
        case[label] = {name: scores.get(name) or 0.0 for name in FIGURES}
    return case


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--b-factors", type=float, nargs="+", default=[80.0, 60.0, 40.0],
                        help="uniform B-factors to try, Å² (default: 80 60 40)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3], help="noise seeds k (default: 0-3)")
    args = parser.parse_args()
    structures = held_out_structures()
    index, structure = list(structures).index(ENTRY), structures[ENTRY]
    median_b = float(np.median([a.b_iso for ch in structure[0] for r in ch for a in r]))
    predictor = demo_predictor()
    cases = []
    for b_factor in [None, *args.b_factors]:
        for k in args.seeds:
            cases.append(run_case(structure, index, b_factor, k, predictor))
            print(f"B {b_factor or 'deposited'} k {k}: {cases[-1]}", flush=True)
    command = "benchmarks/bench_demo_sharpness.py " + " ".join(
        ["--b-factors", *map(str, args.b_factors), "--seeds", *map(str, args.seeds)])
    results = save_results("demo-sharpness", {"machine": machine(), "command": command, "cases": cases})
    lines = ["", f"## Demo detector on 6v5b by sharpness ({machine()['date']})", "",
             f"`{command}` on {machine()['cpu']}; raw: `{results}`. 6v5b at {EVALUATION_RESOLUTION_A} Å, density "
             f"noise {EVALUATION_NOISE}, with its deposited B-factors (median {median_b:.0f} Å²) and with every "
             "B-factor set to one value; base type / class right at the base centres, then the chain with the "
             "sequence (and sequence recall without it).", "",
             "| B (Å²) | k | base type / class | coverage | precision | seq. recall | register | seq. recall no seq. |",
             "|---" * 8 + "|"]
    for case in cases:
        types, w, n = case["base_types"], case["with_sequence"], case["no_sequence"]
        lines.append(f"| {case['b_factor'] or 'deposited'} | {case['k']} | {types['type_accuracy']:.2f} / "
                     f"{types['purine_pyrimidine_accuracy']:.2f} | "
                     + " | ".join(f"{w[name]:.3f}" for name in FIGURES) + f" | {n['sequence_recall']:.3f} |")
    append_to_benchmarks(lines)


if __name__ == "__main__":
    main()
