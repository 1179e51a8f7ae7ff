"""Benchmark: `build-na` over the nucleic-acid corpus on oracle detection maps — quality against the deposited
models, with and without the sequence, time and peak memory — and the issue's bars checked automatically.

Corpus (``haruspex_engine.testing.corpus``, read from ../shared/data, never copied into the project): the ten
deposited entries of na-corpus/ (tRNAs with modified nucleotides, DNA duplexes, a G-quadruplex, protein–RNA/DNA
complexes, a cryo-EM riboswitch, the 1,530-nt 16S rRNA 3JBV_A) and the 78-nt RNA 6v5b. Each reference is the
entry's first model without waters, hydrogens or alternative conformations; its FASTA is written from the model
(parent bases of modified nucleotides, identical chains in one PDB-style record).

Per entry × preset × seed: oracle maps (``oracle_maps.oracle_maps`` with ``oracle_maps.preset(name, seed)``; presets
clean and realistic by default, any preset name oracle_maps knows is accepted) made in a child process and cached
as .npz in benchmarks/.cache/na-corpus/, keyed by entry, preset, seed and a hash of the sources that shape the maps
(stale maps are never reused); then ONE build with the FASTA in a fresh process (its peak RSS and wall time are the
build's own), giving the model with the sequence and the one built without it on the way; both are scored with
``evaluate_model`` against the reference: backbone coverage / precision (C4′ within 3 Å, one-to-one), sequence
recall / precision, register recall, reversed residues, C4′ and all-atom RMSD.

Run from the repository root with the worker environment:

    .venv-worker/bin/python benchmarks/bench_na_corpus.py [--entries 1EHZ 6v5b ...] [--presets clean realistic]
        [--seeds 0 1 2] [--jobs N] [--no-append]

--jobs N runs N builds at once (default 1; with N > 1 the builds share the cores, so the times and the time bars
are pessimistic). Results: benchmarks/results/na-corpus-<date>-<time>.json (every run, every key), and a section
appended to BENCHMARKS.md (unless --no-append; it is printed either way): per preset one row per entry (mean over
seeds, min over seeds in brackets), a mean row, and PASS/FAIL per bar.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

from bench_common import REPO, append_to_benchmarks, machine, peak_rss_gb, run_child, save_results

from haruspex_engine.nucleic.building import SUGAR_NODE_SOURCES

PRESETS = ("clean", "realistic")
SEEDS = (0, 1, 2)
CACHE = REPO / "benchmarks" / ".cache" / "na-corpus"
#: Sources whose change makes cached maps stale (relative to the repository).
MAP_SOURCES = ("haruspex_engine/testing/oracle_maps.py", "haruspex_engine/testing/corpus.py",
               "haruspex_engine/simulate.py", "haruspex_engine/nucleic/detection/preprocess.py")
METRICS = ("backbone_coverage_3A", "backbone_precision_3A", "sequence_recall", "sequence_precision",
           "register_recall", "reversed_residues", "reversed_fraction", "rmsd_c4_A", "rmsd_all_atoms_A")
MODELS = ("with_sequence", "no_sequence")
COVERAGE, PRECISION, RECALL, REGISTER = ("backbone_coverage_3A", "backbone_precision_3A", "sequence_recall",
                                         "register_recall")
#: Quality bars per preset on the model built with the sequence: (over what, metric, at least). "mean" is the mean
#: over entries of each entry's mean over seeds; "every entry" is each entry's minimum over seeds.
QUALITY_BARS = {
    "clean": (("mean", COVERAGE, 0.97), ("mean", PRECISION, 0.97), ("mean", RECALL, 0.95), ("mean", REGISTER, 0.93),
              ("every entry", COVERAGE, 0.90), ("every entry", REGISTER, 0.80)),
    "realistic": (("mean", COVERAGE, 0.90), ("mean", PRECISION, 0.90), ("mean", RECALL, 0.80),
                  ("mean", REGISTER, 0.75), ("every entry", COVERAGE, 0.80)),
}
#: The scores of an empty model: nothing covered or recalled, nothing reversed (the other metrics are undefined).
NOTHING_BUILT = {COVERAGE: 0.0, RECALL: 0.0, REGISTER: 0.0, "reversed_residues": 0}
MAX_REVERSED_FRACTION = 0.02
MAX_S_PER_NT = 0.1
#: Wall-time bars (s) of single entries, and the peak-memory bar (GB) of the rRNA.
MAX_ENTRY_S = {"3JBV_A": 180.0, "6v5b": 8.0}
RRNA, MAX_RRNA_GB = "3JBV_A", 2.0


# --- child processes ----------------------------------------------------------------------------------------------

def reference(entry: str):
    """The entry's reference model (see ``corpus.load_reference``)."""
    from haruspex_engine.testing.corpus import corpus_entries, load_reference

    return load_reference(corpus_entries()[entry])


def make_maps(entry: str, preset_name: str, seed: int, path: str) -> dict:
    """Oracle maps of ``entry`` written to ``path`` (.npz, atomically) in this process."""
    import numpy as np

    from haruspex_engine.testing.oracle_maps import oracle_maps, preset

    t = time.perf_counter()
    maps = oracle_maps(reference(entry), preset(preset_name, seed))
    partial = f"{path}.partial"
    with open(partial, "wb") as fh:
        np.savez(fh, stage2=maps.stage2, density=maps.density, origin=np.asarray(maps.origin))
    os.replace(partial, path)
    return {"shape": list(maps.density.shape), "seconds": time.perf_counter() - t, "dropped": len(maps.dropped),
            "confused": len(maps.confused), "protein_calls": len(maps.protein_calls)}


def measure(entry: str, path: str, sugar_nodes: str) -> dict:
    """One build with the entry's FASTA on the maps in ``path``, in this (fresh) process, its sugar nodes from
    ``sugar_nodes`` (``build_nucleic_model``); both models scored."""
    import numpy as np

    from haruspex_engine.nucleic.building.build import build_nucleic_model
    from haruspex_engine.nucleic.building.sequences import parse_fasta
    from haruspex_engine.testing.corpus import fasta_from_structure

    ref = reference(entry)
    records = parse_fasta(fasta_from_structure(ref, entry), entry)
    loaded = np.load(path)
    stage2, density, origin = loaded["stage2"], loaded["density"], tuple(loaded["origin"].tolist())
    t = time.perf_counter()
    result = build_nucleic_model(stage2, density, origin, sequences=records,
                                 dna=all(r.kind == "DNA" for r in records), sugar_nodes=sugar_nodes)
    wall = time.perf_counter() - t
    builder = _summary(result)
    return {"build_s": wall, "no_sequence_s": wall - result.timings_s.get("sequence", 0.0),
            "peak_rss_gb": peak_rss_gb(), "builder": builder,
            "assignment_status": ((builder.get("assignment") or {}).get("selection") or {}).get("status"),
            **{name: _scores(model, ref) for name, model in zip(MODELS, (result.structure, result.unsequenced))}}


def _scores(model, ref) -> dict:
    """The METRICS of ``model`` against ``ref`` (None where evaluate_model gives none; NOTHING_BUILT when there is
    no model), built residues, chains, backward jumps (steps)."""
    from haruspex_engine.nucleic.building.evaluate import evaluate_model

    scores = evaluate_model(model, ref) if model is not None else NOTHING_BUILT
    residues = sum(len(chain) for chain in model[0]) if model is not None else 0
    return {**{key: scores.get(key) for key in METRICS}, "built_residues": residues,
            "chains": len(model[0]) if model is not None else 0,
            "backward_jump_steps": scores.get("counts", {}).get("backward_jump_steps", 0)}


_SKIP = object()


def _summary(value: object) -> object:
    """The JSON-friendly part of a build result: numbers, strings and dicts/dataclasses of them (arrays, lists and
    structures left out), so that summary fields the builder adds are recorded without naming them here."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy scalar
        return value.item()
    if dataclasses.is_dataclass(value):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        kept = {str(k): _summary(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v is not _SKIP}
    return _SKIP


# --- the driver ---------------------------------------------------------------------------------------------------

def maps_version() -> str:
    """Hash of MAP_SOURCES: cached maps made by other sources are never reused."""
    digest = hashlib.sha256()
    for source in MAP_SOURCES:
        digest.update((REPO / source).read_bytes())
    return digest.hexdigest()[:12]


def run_one(entry: str, preset_name: str, seed: int, version: str, sugar_nodes: str) -> dict:
    """Maps (cached or made in a child) and one build in a fresh child. A child that fails gives a run with an
    ``error`` (its message) and no scores, so that one failure does not lose the other runs."""
    path = CACHE / f"{entry}-{preset_name}-{seed}-{version}.npz"
    run = {"entry": entry, "preset": preset_name, "seed": seed, "maps": {"cached": path.is_file()}}
    try:
        if not run["maps"]["cached"]:
            for stale in CACHE.glob(f"{entry}-{preset_name}-{seed}-*.npz"):  # made by older sources
                stale.unlink()
            run["maps"].update(run_child(__file__, ["maps", entry, preset_name, str(seed), str(path)]))
        run.update(run_child(__file__, ["build", entry, str(path), sugar_nodes]))
    except RuntimeError as exc:
        run["error"] = str(exc)
    return run


def run_all(entries: list[str], presets: list[str], seeds: list[int], jobs: int, nts: dict[str, int],
            sugar_nodes: str) -> dict:
    """Every entry × preset × seed, ``jobs`` at a time, with a progress line (and ETA by nucleotides) per run."""
    CACHE.mkdir(parents=True, exist_ok=True)
    version = maps_version()
    tasks = [(e, p, s) for e in entries for p in presets for s in seeds]
    total_nt, done_nt, runs = sum(nts[e] for e, _, _ in tasks), 0, {}
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(run_one, *task, version, sugar_nodes): task for task in tasks}
        for future in as_completed(futures):
            entry, preset_name, seed = futures[future]
            run = future.result()
            run["reference_nt"] = nts[entry]
            if "build_s" in run:
                run["s_per_nt"] = run["build_s"] / nts[entry]
            runs[f"{entry}/{preset_name}/{seed}"] = run
            done_nt += nts[entry]
            elapsed = time.perf_counter() - start
            print(f"[{len(runs)}/{len(tasks)}] {entry} {preset_name} seed {seed}: {_progress(run)} — "
                  f"elapsed {elapsed:.0f} s, ETA {elapsed * (total_nt - done_nt) / done_nt:.0f} s", flush=True)
    return {key: runs[key] for key in (f"{e}/{p}/{s}" for e, p, s in tasks)}


def _progress(run: dict) -> str:
    """What one run gave, in a few words."""
    if "error" in run:
        return "FAILED: " + run["error"].strip().splitlines()[-1]
    return (f"coverage {_fmt(_get(run, 'with_sequence', COVERAGE))}, recall {_fmt(_get(run, 'with_sequence', RECALL))}"
            f", {run['build_s']:.1f} s, {run['peak_rss_gb']:.2f} GB, {run['assignment_status']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--entries", nargs="+", help="entry ids (default: all 11)")
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), help="oracle-map presets")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--jobs", type=int, default=1, help="builds at once (> 1: they share the cores)")
    parser.add_argument("--sugar-nodes", choices=SUGAR_NODE_SOURCES, default=SUGAR_NODE_SOURCES[0],
                        help="where the builds' sugar nodes come from (build-na --sugar-nodes)")
    parser.add_argument("--no-append", action="store_true", help="print the report, do not append to BENCHMARKS.md")
    args = parser.parse_args()
    if args.child:
        kind, entry, *rest = args.child
        out = make_maps(entry, rest[0], int(rest[1]), rest[2]) if kind == "maps" else measure(entry, *rest)
        print(json.dumps(out))
        return

    from haruspex_engine.testing.corpus import CorpusMissingError, corpus_entries, load_reference, nucleic_chains
    from haruspex_engine.testing.oracle_maps import PRESETS as KNOWN_PRESETS

    try:
        paths = corpus_entries()
    except CorpusMissingError as exc:
        raise SystemExit(str(exc)) from None
    entries = args.entries or list(paths)
    unknown = sorted(set(entries) - set(paths))
    if unknown:
        raise SystemExit(f"unknown entries {unknown}; the corpus has {list(paths)}")
    unknown = sorted(set(args.presets) - set(KNOWN_PRESETS))
    if unknown:
        raise SystemExit(f"unknown presets {unknown}; oracle_maps has {list(KNOWN_PRESETS)}")
    nts = {e: sum(len(c.sequence) for c in nucleic_chains(load_reference(paths[e])).values()) for e in entries}
    command = " ".join([".venv-worker/bin/python", "benchmarks/bench_na_corpus.py", *sys.argv[1:]])
    results = {"machine": machine(), "command": command, "jobs": args.jobs, "presets": args.presets,
               "seeds": args.seeds, "entries": {e: {"path": str(paths[e]), "nt": nts[e]} for e in entries},
               "sugar_nodes": args.sugar_nodes,
               "runs": run_all(entries, args.presets, args.seeds, args.jobs, nts, args.sugar_nodes)}
    results["bars"] = bars(results)
    raw = save_results("na-corpus", results)
    lines = report(results, raw)
    if args.no_append:
        print("\n".join(lines))
    else:
        append_to_benchmarks(lines)


# --- the report ---------------------------------------------------------------------------------------------------

def _runs_of(results: dict, entry: str, preset_name: str) -> list[dict]:
    return [results["runs"][f"{entry}/{preset_name}/{s}"] for s in results["seeds"]]


def _get(run: dict, *path: str) -> object:
    """run[path[0]][path[1]]...; None where a failed run or a missing metric has no value."""
    value: object = run
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _values(runs: list[dict], *path: str) -> list[float] | None:
    """The value at ``path`` (see ``_get``) of every run; None when some run lacks it."""
    values = [_get(run, *path) for run in runs]
    return None if any(v is None for v in values) else values


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _cell(values: list[float] | None, digits: int = 3, worst=min) -> str:
    """Mean, and the worst over seeds in brackets when there are several."""
    if values is None:
        return "–"
    text = _fmt(statistics.mean(values), digits)
    return text + (f" ({_fmt(worst(values), digits)})" if len(values) > 1 else "")


def _pair(runs: list[dict], key: str) -> str:
    return f"{_cell(_values(runs, 'with_sequence', key))} / {_cell(_values(runs, 'no_sequence', key))}"


def _row(label: str, nt: str, runs: list[dict]) -> str:
    """One table row over ``runs`` (one entry's seeds, or every run of a preset for the mean row)."""
    reversed_pct = _values(runs, "with_sequence", "reversed_fraction")
    peak = _values(runs, "peak_rss_gb")
    cells = [label, nt, _pair(runs, COVERAGE), _pair(runs, PRECISION), _pair(runs, RECALL),
             _cell(_values(runs, "with_sequence", REGISTER)),
             _cell([100 * v for v in reversed_pct] if reversed_pct else None, 1, worst=max),
             _cell(_values(runs, "with_sequence", "backward_jump_steps"), 1, worst=max),
             _cell(_values(runs, "with_sequence", "built_residues"), 0),
             _cell(_values(runs, "with_sequence", "chains"), 1),
             _cell(_values(runs, "build_s"), 1, worst=max), _cell(_values(runs, "s_per_nt"), 3, worst=max),
             _fmt(max(peak) if peak else None, 2)]
    return "| " + " | ".join(cells) + " |"


def report(results: dict, raw: str) -> list[str]:
    """The BENCHMARKS.md section: machine, command, one table per preset, the bars."""
    m = results["machine"]
    shared = (f" With --jobs {results['jobs']} the builds shared the cores: times are pessimistic."
              if results["jobs"] > 1 else "")
    lines = [f"\n## Nucleic-acid model building over the corpus (oracle maps) — {m['date']}",
             f"Machine: {m['cpu']}, {m['cores']} cores. Command: `{results['command']}`. Raw: `{raw}`. "
             f"Seeds {', '.join(map(str, results['seeds']))}: each cell is the mean over seeds with the worst seed in "
             "brackets (min for scores, max for reversed %, back jumps, s, s/nt); \"seq / no seq\": the model built "
             "with the FASTA / without it (same build). Reversed %: residues in steps one to three residues back "
             "(built 3′→5′); back jumps: steps further back (the trace went on to an earlier part of its chain). "
             "s: the whole build (nodes → model with sequence) in a fresh process; "
             f"peak GB: its peak RSS (max over seeds).{shared}"]
    header = ("| entry | nt | coverage seq / no seq | precision seq / no seq | seq. recall seq / no seq | "
              "register recall | reversed % | back jumps | built res. | chains | s | s/nt | peak GB |")
    for preset_name in results["presets"]:
        lines += ["", f"**{preset_name}**", "", header, "|---" * 13 + "|"]
        every = []
        for entry, info in results["entries"].items():
            runs = _runs_of(results, entry, preset_name)
            every += runs
            lines.append(_row(entry, str(info["nt"]), runs))
        lines.append(_row("**all runs**", str(sum(i["nt"] for i in results["entries"].values())), every))
    lines += ["", "Bars (model with sequence unless stated):", ""]
    lines += [f"- {b['status']}: {b['bar']} — {b['detail']}" for b in results["bars"]]
    return lines


# --- the bars -----------------------------------------------------------------------------------------------------

def _bar(label: str, values: dict[str, float | None], limit: float, at_least: bool) -> dict:
    """PASS when every named value is at least (or at most) ``limit``; n/a when some value is missing."""
    if not values or any(v is None for v in values.values()):
        missing = [k for k, v in values.items() if v is None]
        return {"bar": label, "status": "n/a", "detail": f"missing for {', '.join(missing) or 'every run'}"}
    name, worst = (min if at_least else max)(values.items(), key=lambda item: item[1])
    ok = worst >= limit if at_least else worst <= limit
    return {"bar": label, "status": "PASS" if ok else "FAIL", "detail": f"worst {name}: {worst:.3f}"}


def _entry_means(results: dict, preset_name: str, key: str, reduce=statistics.mean) -> dict[str, float | None]:
    """Per entry: ``reduce`` over seeds of a with-sequence metric (None when missing)."""
    out = {}
    for entry in results["entries"]:
        values = _values(_runs_of(results, entry, preset_name), "with_sequence", key)
        out[entry] = reduce(values) if values else None
    return out


def _quality_bars(results: dict, preset_name: str) -> list[dict]:
    out = []
    for over, key, limit in QUALITY_BARS.get(preset_name, ()):
        if over == "mean":
            means = _entry_means(results, preset_name, key)
            value = None if None in means.values() else statistics.mean(means.values())
            out.append(_bar(f"{preset_name}: mean {key} ≥ {limit}", {"mean over entries": value}, limit, True))
        else:
            out.append(_bar(f"{preset_name}: {key} ≥ {limit} for every entry (its worst seed)",
                            _entry_means(results, preset_name, key, min), limit, True))
    return out


def _run_bars(results: dict, preset_name: str) -> list[dict]:
    """Bars every run of a preset must meet: sequence helps, few reversed residues, time per nucleotide."""
    runs = {key: run for key, run in results["runs"].items() if run["preset"] == preset_name}

    def gain(run: dict, key: str) -> float | None:
        with_seq, without = _get(run, "with_sequence", key), _get(run, "no_sequence", key)
        return None if with_seq is None or without is None else with_seq - without

    out = [_bar(f"{preset_name}: with sequence ≥ without, {key}, every run",
                {k: gain(r, key) for k, r in runs.items()}, 0.0, True) for key in (COVERAGE, RECALL)]
    out += [_bar(f"{preset_name}: reversed residues ≤ {MAX_REVERSED_FRACTION:.0%}, {model}, every run",
                 {k: _get(r, model, "reversed_fraction") for k, r in runs.items()}, MAX_REVERSED_FRACTION, False)
            for model in MODELS]
    out.append(_bar(f"{preset_name}: ≤ {MAX_S_PER_NT} s per reference nt, every run",
                    {k: _get(r, "s_per_nt") for k, r in runs.items()}, MAX_S_PER_NT, False))
    return out


def bars(results: dict) -> list[dict]:
    """Every bar that the runs made can be checked against, in report order; first, that every run completed."""
    failed = [key for key, run in results["runs"].items() if "error" in run]
    out = [{"bar": "every run completed", "status": "FAIL" if failed else "PASS",
            "detail": f"failed: {', '.join(failed)}" if failed else f"{len(results['runs'])} runs"}]
    for preset_name in results["presets"]:
        out += _quality_bars(results, preset_name) + _run_bars(results, preset_name)
    for entry, limit in MAX_ENTRY_S.items():
        if entry in results["entries"]:
            times = {k: _get(r, "build_s") for k, r in results["runs"].items() if r["entry"] == entry}
            out.append(_bar(f"{entry} build ≤ {limit:.0f} s, every run", times, limit, False))
    if RRNA in results["entries"]:
        out.append(_bar(f"{RRNA} peak RSS ≤ {MAX_RRNA_GB} GB, every run",
                        {k: _get(r, "peak_rss_gb") for k, r in results["runs"].items() if r["entry"] == RRNA},
                        MAX_RRNA_GB, False))
    return out


if __name__ == "__main__":
    main()
