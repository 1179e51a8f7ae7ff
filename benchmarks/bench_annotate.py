"""Benchmark: Haruspex engine vs the upstream stored TF1 graph, per tile and for a whole map.

Run from the repository root with the worker environment:

    .venv-worker/bin/python benchmarks/bench_annotate.py [--tiles 100] [--map-size 200] [--skip-map]

Every measurement runs in a fresh subprocess (so peak RSS is that measurement's own) on the same tiles cut from a
smooth synthetic map, with random weights in the published layout (speed does not depend on the weight values).
Reports seconds per tile, peak RSS, the ratio engine/upstream throughput, agreement (max |Δ probability|, argmax
agreement), FLOPs per tile and the fraction of this machine's fp32 matrix-multiply rate (measured here).
The whole-map run (`haruspex annotate`, which predicts every voxel: ceil(S/20)³ tiles) is compared with the upstream
graph's cost for the same map: its seconds per tile × the original tool's tile count ceil((S - 20) / 20)³.
Needs ../shared/models/haruspex/model.ckpt-40000.meta for the upstream graph.
Results: appended to BENCHMARKS.md and written to benchmarks/results/annotate-<date>.json.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_common import REPO, append_to_benchmarks, machine, peak_rss_gb, run_child, save_results, timed

META = REPO.parent / "shared" / "models" / "haruspex" / "model.ckpt-40000.meta"
UPSTREAM_BATCH = 100  # baked into the published graph; the original tool feeds batches of up to 128
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # quiet TensorFlow in this process and the measuring children


def synthetic_map(size: int, seed: int = 0) -> np.ndarray:
    """Smooth random density (z, y, x) with map-like statistics: blurred noise, positive features."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(size=(size,) * 3).astype(np.float32), 2.0)
    return np.maximum(field / field.std() - 0.5, 0.0).astype(np.float32)


def tiles(n: int, seed: int = 0) -> np.ndarray:
    """n boxes of 40³ cut from a synthetic map at stride 20, float32 (n, 40, 40, 40)."""
    volume = synthetic_map(100, seed)
    starts = [(z, y, x) for z in range(0, 61, 20) for y in range(0, 61, 20) for x in range(0, 61, 20)]
    return np.stack([volume[z:z + 40, y:y + 40, x:x + 40] for z, y, x in (starts * (n // len(starts) + 1))[:n]])



# ---------------------------------------------------------------- measurements (each in its own process)

def measure_matmul_rate() -> dict:
    """Best sustained fp32 and bf16 GEMM rate of TensorFlow on this CPU, GFLOP/s."""
    from haruspex_engine.devices import import_tensorflow

    tf = import_tensorflow()
    out = {}
    for name, dtype in (("fp32", tf.float32), ("bf16", tf.bfloat16)):
        a = tf.cast(tf.random.normal((4096, 4096), dtype=tf.float32), dtype)
        tf.linalg.matmul(a, a).numpy()
        best = min(timed(lambda m=a: tf.linalg.matmul(m, m).numpy()) for _ in range(5))
        out[f"{name}_gflops"] = 2 * 4096**3 / best / 1e9
    return out


def measure_network(kind: str, checkpoint: str, n_tiles: int, batch: int, out_npy: str) -> dict:
    """Seconds per tile (steady state: best of 3 passes over n_tiles after a warm-up batch) and peak RSS."""
    boxes = tiles(n_tiles)
    if kind == "upstream":
        from haruspex_engine.testing.upstream_graph import UpstreamGraph

        runner = UpstreamGraph(str(META), checkpoint, batch)
        predict = runner.probabilities_any
    else:
        from haruspex_engine.annotation.checkpoint import read_network_weights
        from haruspex_engine.annotation.network import HaruspexNetwork

        os.environ["HARUSPEX_ALLOW_TEST_WEIGHTS"] = "1"
        precision, _, algorithm = kind.partition("-")  # e.g. "fp32" (default algorithm) or "fp32-direct"
        network = HaruspexNetwork(read_network_weights(checkpoint), precision=precision, algorithm=algorithm or None)
        predict = network.probabilities

    def run_all() -> np.ndarray:
        return np.concatenate([predict(boxes[i:i + batch]) for i in range(0, n_tiles, batch)])

    predict(boxes[:batch])
    passes = 1 if kind == "upstream" else 3
    best, result = float("inf"), None
    for _ in range(passes):
        t = time.perf_counter()
        result = run_all()
        best = min(best, time.perf_counter() - t)
    np.save(out_npy, result)
    return {"s_per_tile": best / n_tiles, "peak_rss_gb": peak_rss_gb(), "batch": batch, "tiles": n_tiles}



def measure_map(checkpoint: str, size: int, precision: str, workdir: str) -> dict:
    """`haruspex annotate` on a size³ map at 1.1 Å, end to end, in this (fresh) process: wall time, peak RSS."""
    from haruspex_engine.cli import main as haruspex
    from haruspex_engine.maps import write_map

    path = Path(workdir) / f"map{size}.mrc"
    if not path.exists():
        write_map(path, synthetic_map(size, seed=1), (1.1, 1.1, 1.1))
    os.environ.update({"HARUSPEX_CHECKPOINT": checkpoint, "HARUSPEX_ALLOW_TEST_WEIGHTS": "1"})
    out = Path(workdir) / precision
    t = time.perf_counter()
    if haruspex(["annotate", str(path), "-o", str(out), "-q", "--device", "cpu", "--precision", precision]):
        raise RuntimeError("haruspex annotate failed")
    wall = time.perf_counter() - t
    summary = json.loads((out / f"map{size}_summary.json").read_text())
    return {"size": size, "tiles": summary["tiles"], "wall_s": wall, "timings_s": summary["timings_s"],
            "peak_rss_gb": peak_rss_gb()}


# ---------------------------------------------------------------- orchestration

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiles", type=int, default=100, help="tiles per network measurement (default 100)")
    parser.add_argument("--batch", type=int, default=8, help="engine batch size (default 8, as the CLI)")
    parser.add_argument("--map-size", type=int, default=200, help="edge of the end-to-end map, voxels (default 200)")
    parser.add_argument("--skip-map", action="store_true", help="skip the end-to-end map")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "matmul":
            result = measure_matmul_rate()
        elif kind == "map":
            result = measure_map(rest[0], int(rest[1]), rest[2], rest[3])
        else:
            result = measure_network(kind, rest[0], int(rest[1]), int(rest[2]), rest[3])
        print(json.dumps(result))
        return
    if not META.exists():
        sys.exit(f"{META} not found: the upstream graph is needed for the comparison")

    from haruspex_engine.annotation.network import MACS_PER_TILE
    from haruspex_engine.testing.random_weights import make_test_checkpoint

    work = Path(tempfile.mkdtemp(prefix="haruspex-bench-"))
    checkpoint = str(make_test_checkpoint(work / "weights"))
    n = args.tiles
    results: dict = {"machine": machine(), "tiles": n, "gflop_per_tile": 2 * MACS_PER_TILE / 1e9}
    results["matmul"] = run_child(__file__, ["matmul"])
    outputs = {}
    engine_kinds = ("fp32", "fp32-direct", "bf16", "bf16-direct")
    for kind, batch in (("upstream", UPSTREAM_BATCH),) + tuple((k, args.batch) for k in engine_kinds):
        outputs[kind] = str(work / f"{kind}.npy")
        results[kind] = run_child(__file__, [kind, checkpoint, str(n), str(batch), outputs[kind]])
        print(kind, results[kind], flush=True)
    probs = {kind: np.load(path) for kind, path in outputs.items()}
    for kind in engine_kinds:
        results[kind]["speedup_vs_upstream"] = results["upstream"]["s_per_tile"] / results[kind]["s_per_tile"]
        results[kind]["max_abs_diff_vs_upstream"] = float(np.abs(probs[kind] - probs["upstream"]).max())
        results[kind]["argmax_agreement_vs_upstream"] = float(
            (probs[kind].argmax(-1) == probs["upstream"].argmax(-1)).mean())
        flops = 2 * MACS_PER_TILE / results[kind]["s_per_tile"] / 1e9
        results[kind]["achieved_gflops_dense_equivalent"] = flops
        results[kind]["fraction_of_matmul_rate"] = flops / results["matmul"][f"{kind[:4]}_gflops"]
    for kind in ("bf16", "bf16-direct"):
        results[kind]["max_abs_diff_vs_fp32"] = float(np.abs(probs[kind] - probs["fp32-direct"]).max())
        results[kind]["argmax_agreement_vs_fp32"] = float(
            (probs[kind].argmax(-1) == probs["fp32-direct"].argmax(-1)).mean())
    if not args.skip_map:
        results["map"] = {p: run_child(__file__, ["map", checkpoint, str(args.map_size), p, str(work)])
                          for p in ("fp32", "bf16")}
        original_tiles = math.ceil((args.map_size - 20) / 20) ** 3
        for m in results["map"].values():
            m["upstream_tiles"] = original_tiles
            m["upstream_estimate_s"] = results["upstream"]["s_per_tile"] * original_tiles
            m["speedup_vs_upstream"] = m["upstream_estimate_s"] / m["wall_s"]
    _write(results)


def _write(results: dict) -> None:
    raw = save_results("annotate", results)
    up, f32, b16 = results["upstream"], results["fp32"], results["bf16"]
    names = {"fp32": "engine fp32, Winograd (default)", "fp32-direct": "engine fp32, direct",
             "bf16": "engine bf16, Winograd", "bf16-direct": "engine bf16, direct"}
    lines = [
        f"\n## Haruspex annotate — {results['machine']['date']}",
        f"Machine: {results['machine']['cpu']}, {results['machine']['cores']} cores. "
        f"Command: `.venv-worker/bin/python benchmarks/bench_annotate.py --tiles {results['tiles']}`. "
        f"Raw: `{raw}`.",
        "",
        "| path | batch | s / tile | peak RSS GB | throughput vs upstream | max abs Δ vs upstream | argmax agreement |",
        "|---|---|---|---|---|---|---|",
        f"| upstream stored TF1 graph | {up['batch']} | {up['s_per_tile']:.3f} | {up['peak_rss_gb']:.2f} "
        "| 1.00× | – | – |",
    ]
    for kind, name in names.items():
        r = results[kind]
        lines.append(f"| {name} | {r['batch']} | {r['s_per_tile']:.3f} | {r['peak_rss_gb']:.2f} | "
                     f"{r['speedup_vs_upstream']:.2f}× | {r['max_abs_diff_vs_upstream']:.2e} | "
                     f"{r['argmax_agreement_vs_upstream']:.4%} |")
    lines += [
        "",
        f"FLOPs per tile: {results['gflop_per_tile']:.1f} GFLOP (dense). Measured GEMM rate here: "
        f"fp32 {results['matmul']['fp32_gflops']:.0f} GFLOP/s, bf16 {results['matmul']['bf16_gflops']:.0f} GFLOP/s. "
        f"Engine fp32 runs at {f32['achieved_gflops_dense_equivalent']:.0f} dense-equivalent GFLOP/s "
        f"({f32['fraction_of_matmul_rate']:.0%} of the fp32 GEMM rate; direct: "
        f"{results['fp32-direct']['fraction_of_matmul_rate']:.0%}); bf16 at "
        f"{b16['achieved_gflops_dense_equivalent']:.0f} ({b16['fraction_of_matmul_rate']:.0%} of the bf16 rate). "
        f"bf16 vs fp32 direct: max |Δ| {b16['max_abs_diff_vs_fp32']:.2e}, argmax agreement "
        f"{b16['argmax_agreement_vs_fp32']:.4%} (Winograd); {results['bf16-direct']['max_abs_diff_vs_fp32']:.2e}, "
        f"{results['bf16-direct']['argmax_agreement_vs_fp32']:.4%} (direct); random weights.",
    ]
    if "map" in results:
        for precision, m in results["map"].items():
            lines.append(f"- {m['size']}³ map end to end ({m['tiles']} tiles), {precision}: {m['wall_s']:.1f} s wall "
                         f"(inference {m['timings_s']['inference']:.1f} s), peak RSS {m['peak_rss_gb']:.2f} GB; the "
                         f"upstream graph would take {m['upstream_estimate_s']:.1f} s for the original's "
                         f"{m['upstream_tiles']} tiles ({m['speedup_vs_upstream']:.2f}×)")
    append_to_benchmarks(lines)


if __name__ == "__main__":
    main()
