"""Benchmark: nucleic-acid model building from oracle detection maps (quality, time, memory), with and without
the sequence.

Run from the repository root with the worker environment:

    .venv-worker/bin/python benchmarks/bench_build_na.py [--skip-assembly]

Oracle maps (haruspex_engine.testing.oracle_maps) of the 78-nt RNA ../shared/data/cryoread-example/6v5b_drna.pdb
with its FASTA (21051.fasta) at four white-noise corruption levels (the presets clean-white, moderate,
realistic-white and harsh-white of oracle_maps.PRESETS): clean (noise σ 0.05), moderate (σ 0.05, 5 % residues
dropped, 15 % base confusion, 2 false blobs / 1000 Å³), the issue's "realistic" (the same with σ 0.15) and harsh
(σ 0.2, 10 % dropped, 25 % confused, 4 false blobs / 1000 Å³), each for seeds 0-2. Each build runs in a fresh
process (peak RSS is its own) with the sequence; the model built without it on the way is scored too. Then a
~3,000-nt assembly: 39 copies of the 78-mer 15 Å apart in one box at realistic corruption, with a 39-record FASTA
(maps made in a separate process, so the peak RSS is the build's). Scores from `evaluate_model` against the
deposited model(s): backbone coverage / precision (C4′ within 3 Å), sequence recall / precision, C4′ and all-atom RMSD.
Results: appended to BENCHMARKS.md and written to benchmarks/results/build-na-<date>.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from bench_common import REPO, append_to_benchmarks, machine, peak_rss_gb, run_child, save_results

DATA = REPO.parent / "shared" / "data" / "cryoread-example"
RNA, FASTA = DATA / "6v5b_drna.pdb", DATA / "21051.fasta"
LEVELS = ("clean", "moderate", "realistic", "harsh")
WHITE_PRESETS = {"clean": "clean-white", "moderate": "moderate", "realistic": "realistic-white", "harsh": "harsh-white"}
SEEDS = (0, 1, 2)
COPIES = 39
KEYS = ("backbone_coverage_3A", "backbone_precision_3A", "sequence_recall", "sequence_precision", "rmsd_c4_A",
        "rmsd_all_atoms_A")


def corruption(level: str, seed: int):
    """The level's white-noise preset of ``oracle_maps.PRESETS`` (this benchmark predates the correlated presets;
    ``bench_na_corpus.py`` runs those)."""
    from haruspex_engine.testing.oracle_maps import preset

    return preset(WHITE_PRESETS[level], seed)


def reference(copies: int):
    import gemmi

    from haruspex_engine.testing.rna_models import assembly

    structure = gemmi.read_structure(str(RNA))
    return structure if copies == 1 else assembly(structure, copies)


def sequences(copies: int):
    from haruspex_engine.nucleic.building.sequences import parse_fasta, read_fasta
    from haruspex_engine.testing.rna_models import assembly_fasta

    records = read_fasta(FASTA)
    return records if copies == 1 else parse_fasta(assembly_fasta(records[0].sequence, copies))


def prepare(level: str, seed: int, copies: int, path: str) -> dict:
    """Oracle maps written to ``path`` (.npz) in this (separate) process."""
    import numpy as np

    from haruspex_engine.testing.oracle_maps import oracle_maps

    maps = oracle_maps(reference(copies), corruption(level, seed))
    np.savez(path, stage2=maps.stage2, density=maps.density, origin=np.asarray(maps.origin))
    return {"shape": list(maps.density.shape), "peak_rss_gb": peak_rss_gb()}


def measure(level: str, seed: int, copies: int, maps_path: str | None) -> dict:
    """One build with the sequence, in this (fresh) process; both models scored."""
    import numpy as np

    from haruspex_engine.nucleic.building.build import build_nucleic_model
    from haruspex_engine.nucleic.building.evaluate import evaluate_model
    from haruspex_engine.testing.oracle_maps import oracle_maps

    ref = reference(copies)
    if maps_path:
        loaded = np.load(maps_path)
        stage2, density, origin = loaded["stage2"], loaded["density"], tuple(loaded["origin"].tolist())
    else:
        maps = oracle_maps(ref, corruption(level, seed))
        stage2, density, origin = maps.stage2, maps.density, maps.origin
    t = time.perf_counter()
    result = build_nucleic_model(stage2, density, origin, sequences=sequences(copies))
    wall = time.perf_counter() - t
    rss = peak_rss_gb()
    out = {"wall_s": wall, "no_sequence_wall_s": wall - result.timings_s.get("sequence", 0.0), "peak_rss_gb": rss,
           "timings_s": result.timings_s, "sugar_nodes": result.node_counts["sugar"],
           "trace_stopped_by": result.trace.stopped_by,
           "assignment_status": result.assignment.selection.status if result.assignment else None,
           "candidates": result.assignment.candidates if result.assignment else 0}
    for name, model in (("with_sequence", result.structure), ("no_sequence", result.unsequenced)):
        scores = evaluate_model(model, ref) if model is not None else {}
        out[name] = {"chains": len(model[0]) if model is not None else 0, **{k: scores.get(k) for k in KEYS}}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--skip-assembly", action="store_true", help="only the 78-nt cases")
    args = parser.parse_args()
    if args.child:
        kind, level, seed, copies, *path = args.child
        fn = prepare if kind == "prepare" else measure
        print(json.dumps(fn(level, int(seed), int(copies), path[0] if path else None)))
        return
    if not (RNA.is_file() and FASTA.is_file()):
        raise SystemExit(f"{RNA} and {FASTA} are needed (../shared beside the project)")
    results: dict = {"machine": machine(), "reference": str(RNA), "fasta": str(FASTA), "runs": {}}
    for level in LEVELS:
        for seed in SEEDS:
            results["runs"][f"{level}/{seed}"] = run = run_child(__file__, ["measure", level, str(seed), "1"])
            print(level, seed, run, flush=True)
    if not args.skip_assembly:
        with tempfile.TemporaryDirectory() as tmp:
            path = str(Path(tmp) / "maps.npz")
            results["assembly_maps"] = run_child(__file__, ["prepare", "realistic", "0", str(COPIES), path])
            results["runs"]["assembly/0"] = run_child(__file__, ["measure", "realistic", "0", str(COPIES), path])
            print("assembly", results["assembly_maps"], results["runs"]["assembly/0"], flush=True)
    _write(results)


def _write(results: dict) -> None:
    raw = save_results("build-na", results)
    lines = [
        f"\n## Nucleic-acid model building, with and without sequence — {results['machine']['date']}",
        f"Machine: {results['machine']['cpu']}, {results['machine']['cores']} cores. Command: "
        f"`.venv-worker/bin/python benchmarks/bench_build_na.py`. Raw: `{raw}`. "
        "Oracle maps of 6v5b (78 nt) and its FASTA; mean over seeds "
        f"{', '.join(map(str, SEEDS))} (min–max in brackets for coverage and recall); scores against the deposited "
        "model. Time = whole build after detection (nodes → model), one process per build.",
        "",
        "| corruption | model | coverage | precision | seq. recall | seq. precision | C4′ RMSD Å | all-atom RMSD Å | s "
        "| peak RSS GB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    groups = [(level, [results["runs"][f"{level}/{s}"] for s in SEEDS]) for level in LEVELS]
    if "assembly/0" in results["runs"]:
        groups.append((f"assembly {COPIES}×78 nt, realistic", [results["runs"]["assembly/0"]]))
    for label, runs in groups:
        for model, wall_key in (("with_sequence", "wall_s"), ("no_sequence", "no_sequence_wall_s")):
            cells = []
            for key in KEYS:
                values = [r[model][key] for r in runs if r[model][key] is not None]
                if not values:
                    cells.append("–")
                elif key in ("backbone_coverage_3A", "sequence_recall") and len(values) > 1:
                    cells.append(f"{statistics.mean(values):.3f} ({min(values):.2f}–{max(values):.2f})")
                else:
                    cells.append(f"{statistics.mean(values):.3f}")
            wall = statistics.mean(r[wall_key] for r in runs)
            rss = max(r["peak_rss_gb"] for r in runs)
            lines.append(f"| {label} | {model.replace('_', ' ')} | " + " | ".join(cells)
                         + f" | {wall:.1f} | {rss:.2f} |")
    append_to_benchmarks(lines)


if __name__ == "__main__":
    main()
