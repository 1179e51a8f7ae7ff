"""Benchmark: CryoREAD detection networks per 64³ box, and `haruspex detect-na` on a whole map, on this CPU.

Run from the repository root with the worker environment:

    .venv-worker/bin/python benchmarks/bench_detect_na.py [--boxes 3] [--map-edge 150] [--skip-map]

Every measurement runs in a fresh subprocess (so peak RSS is that measurement's own), with random weights in the
published layout (speed does not depend on the weight values), batch 1, after one warm-up box. Kinds per stage:
- "original": the published module as the original runs it at inference: fp32, all three deep-supervision heads
  (d1, d2, d3) computed, although only d1 is used — the same-run baseline;
- "fp32": the engine's default path (only the full-resolution head; outputs bit-identical to the original's d1);
- "bf16": the engine's reduced-precision path.
Agreement of bf16 with fp32: max |Δ probability| and the Dice coefficient of each class thresholded at 0.5. Stage-1
boxes are cut from a map simulated (gemmi) from the 78-nt RNA ../shared/data/cryoread-example/6v5b_drna.pdb when it
is present, else from a synthetic map; stage-2 boxes are the fp32 stage-1 outputs of those boxes. FLOPs per box
come from the modules; the fraction of this machine's matrix-multiply rate is measured in the same run.
The whole-map run is `haruspex detect-na` on a cube of --map-edge Å at 1 Å holding copies of that RNA, in fp32 and
bf16: wall time, boxes run, peak RSS.
Results: appended to BENCHMARKS.md and written to benchmarks/results/detect-na-<date>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_common import REPO, append_to_benchmarks, machine, peak_rss_gb, run_child, save_results, timed

RNA = REPO.parent / "shared" / "data" / "cryoread-example" / "6v5b_drna.pdb"
KINDS = ("original", "fp32", "bf16")



# ---------------------------------------------------------------- test data

def rna_scene(edge: float, copies: int, seed: int = 0):
    """A gemmi structure in an edge³ Å P1 cell holding ``copies`` randomly rotated copies of the RNA (or, without
    ../shared, ideal α-helices) spread over the cell."""
    import gemmi

    from haruspex_engine.structures import assemble, example_scene

    rng = np.random.default_rng(seed)
    if RNA.is_file():
        template = gemmi.read_structure(str(RNA))[0][0]
    else:
        template = example_scene()[0][0]
    chains = []
    for i in range(copies):
        chain = template.clone()
        chain.name = chr(ord("A") + i)
        rotation = gemmi.Mat33(_random_rotation(rng).tolist())
        centre = gemmi.Position(*np.mean([a.pos.tolist() for r in chain for a in r], axis=0))
        shift = gemmi.Position(*rng.uniform(0.2 * edge, 0.8 * edge, 3))
        for residue in chain:
            for atom in residue:
                atom.pos = gemmi.Position(rotation.multiply(atom.pos - centre)) + shift
        chains.append(chain)
    structure = assemble(chains, cell_padding_A=0.0)
    structure.cell = gemmi.UnitCell(edge, edge, edge, 90, 90, 90)
    return structure


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def write_scene_map(path: Path, edge: int, copies: int) -> Path:
    from haruspex_engine.maps import write_map
    from haruspex_engine.simulate import simulate_map

    data, origin = simulate_map(rna_scene(edge, copies), voxel_size=1.0, resolution=3.7, noise_sigma=0.1)
    write_map(path, data, (1.0, 1.0, 1.0), origin)
    return path


def stage1_boxes(n: int, workdir: Path) -> np.ndarray:
    """n normalised 64³ boxes (n, 64, 64, 64) from the working map of a simulated 100 Å RNA scene."""
    from haruspex_engine.maps import read_map
    from haruspex_engine.nucleic.detection.preprocess import prepare_map

    working = prepare_map(read_map(write_scene_map(workdir / "boxes.mrc", 100, 2)), contour=0.0).data
    starts = [(z, y, x) for z in (0, 32) for y in (0, 32) for x in (0, 32)]
    out = []
    for z, y, x in (starts * n)[:n]:
        box = np.zeros((64, 64, 64), np.float32)
        part = working[z:z + 64, y:y + 64, x:x + 64]
        box[:part.shape[0], :part.shape[1], :part.shape[2]] = part
        out.append(box)
    return np.stack(out)


# ---------------------------------------------------------------- measurements (each in its own process)

def measure_matmul_rate() -> dict:
    """Best sustained fp32 and bf16 GEMM rate of PyTorch on this CPU, GFLOP/s."""
    import torch

    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a = torch.randn(4096, 4096).to(dtype)
        a @ a
        best = min(timed(lambda m=a: m @ m) for _ in range(5))
        out[f"{name}_gflops"] = 2 * 4096**3 / best / 1e9
    return out


def measure_boxes(kind: str, stage: int, weight_dir: str, inputs: str, outputs: str) -> dict:
    """Seconds per box (best and mean over the boxes after a warm-up one, batch 1) and peak RSS of one kind and
    stage. Ratios use the best box: the least disturbed by other work on a shared machine."""
    import torch

    from haruspex_engine.nucleic.detection.checkpoint import load_stage
    from haruspex_engine.nucleic.detection.networks import DetectionNetwork

    os.environ["HARUSPEX_ALLOW_TEST_WEIGHTS"] = "1"
    boxes = np.load(inputs)
    module = load_stage(Path(weight_dir) / f"stage{stage}_network.pth", stage)
    if kind == "original":
        predict = _all_heads(module, stage)
    else:
        predict = DetectionNetwork(module, stage, precision=kind, merge_ut=False)
    predict(boxes[:1])
    results, seconds = [], []
    for i in range(len(boxes)):
        t = time.perf_counter()
        results.append(predict(boxes[i:i + 1]))
        seconds.append(time.perf_counter() - t)
    np.save(outputs, np.concatenate(results))
    return {"s_per_box": float(np.mean(seconds)), "s_per_box_min": float(np.min(seconds)),
            "peak_rss_gb": peak_rss_gb(), "boxes": len(boxes), "threads": torch.get_num_threads()}


def _all_heads(module, stage: int):
    """The original's inference computation: every head of every U-Net (d2, d3 upsampled), fp32, d1 returned."""
    import torch

    from haruspex_engine.nucleic.detection.networks import upsample

    module.eval()

    def heads(net, x, merged=None):
        hd1, hd2, hd3 = net.features(x, merged)
        d1 = net.outconv1(hd1)
        _unused = (upsample(net.outconv2(hd2), 2), upsample(net.outconv3(hd3), 4))  # computed, as upstream
        return d1, (hd1, hd2, hd3)

    def predict(boxes: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(boxes)
            if stage == 1:
                chain, features = heads(module.chain_net, x[:, None])
                base, _ = heads(module.base_net, x[:, None], features)
                logits = torch.cat([chain, base], dim=1)
            else:
                logits, _ = heads(module, x)
            return torch.sigmoid(logits).numpy()

    return predict


def measure_map(weight_dir: str, path: str, precision: str, out: str) -> dict:
    """`haruspex detect-na` end to end in this (fresh) process: wall time, boxes run, peak RSS."""
    from haruspex_engine.cli import main as haruspex

    os.environ["HARUSPEX_ALLOW_TEST_WEIGHTS"] = "1"
    t = time.perf_counter()
    status = haruspex(["detect-na", path, "--resolution", "3.7", "--weights-dir", weight_dir, "-o", out, "-q",
                       "--device", "cpu", "--precision", precision, "--contour", "0.1"])
    if status:
        raise RuntimeError(f"haruspex detect-na failed ({status})")
    wall = time.perf_counter() - t
    summary = json.loads((Path(out) / f"{Path(path).stem}_summary.json").read_text())
    return {"wall_s": wall, "stages": summary["stages"], "timings_s": summary["timings_s"],
            "working_shape_zyx": summary["working_grid"]["shape_zyx"], "peak_rss_gb": peak_rss_gb()}



# ---------------------------------------------------------------- agreement

def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice coefficient of two boolean masks (1.0 when both are empty)."""
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def agreement(reference: np.ndarray, other: np.ndarray, classes: tuple[str, ...]) -> dict:
    """max |Δ| over everything, and per-class Dice of the 0.5-thresholded maps; arrays (B, C, z, y, x)."""
    return {
        "max_abs_diff": float(np.abs(reference - other).max()),
        "dice_at_0.5": {c: dice(reference[:, i] > 0.5, other[:, i] > 0.5) for i, c in enumerate(classes)},
        "fraction_above_0.5": {c: float((reference[:, i] > 0.5).mean()) for i, c in enumerate(classes)},
    }


# ---------------------------------------------------------------- orchestration

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--boxes", type=int, default=3, help="timed boxes per measurement (default 3)")
    parser.add_argument("--map-edge", type=int, default=150, help="edge of the end-to-end map, Å (default 150)")
    parser.add_argument("--map-copies", type=int, default=6, help="RNA copies in the end-to-end map (default 6)")
    parser.add_argument("--skip-map", action="store_true", help="skip the end-to-end map")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "matmul":
            result = measure_matmul_rate()
        elif kind == "map":
            result = measure_map(*rest)
        else:
            result = measure_boxes(kind, int(rest[0]), *rest[1:])
        print(json.dumps(result))
        return

    from haruspex_engine.nucleic.classes import STAGE1_RAW_CLASSES, STAGE2_CLASSES, merge_ut
    from haruspex_engine.nucleic.detection.networks import macs_per_box
    from haruspex_engine.testing.random_cryoread_weights import make_test_weight_set

    work = Path(tempfile.mkdtemp(prefix="detect-na-bench-"))
    weight_dir = str(make_test_weight_set(work / "weights", seed=0))
    results: dict = {"machine": machine(), "boxes": args.boxes, "rna_source": str(RNA) if RNA.is_file() else
                     "ideal helices (../shared absent)"}
    results["matmul"] = run_child(__file__, ["matmul"])
    print("matmul", results["matmul"], flush=True)
    inputs = {1: work / "stage1_in.npy", 2: work / "stage2_in.npy"}
    np.save(inputs[1], stage1_boxes(args.boxes + 1, work))
    classes = {1: STAGE1_RAW_CLASSES, 2: STAGE2_CLASSES}
    for stage in (1, 2):
        gflop = 2 * macs_per_box(stage) / 1e9
        block: dict = {"gflop_per_box": gflop}
        outs = {kind: work / f"stage{stage}_{kind}.npy" for kind in KINDS}
        for kind in KINDS:
            block[kind] = run_child(__file__, [kind, str(stage), weight_dir, str(inputs[stage]), str(outs[kind])])
            rate = gflop / block[kind]["s_per_box_min"]
            block[kind]["gflops"] = rate
            peak = results["matmul"]["bf16_gflops" if kind == "bf16" else "fp32_gflops"]
            block[kind]["fraction_of_matmul_rate"] = rate / peak
            print(f"stage {stage}", kind, block[kind], flush=True)
        probs = {kind: np.load(path) for kind, path in outs.items()}
        block["fp32_identical_to_original"] = bool(np.array_equal(probs["fp32"], probs["original"]))
        for kind in ("fp32", "bf16"):
            block[kind]["speedup_vs_original"] = block["original"]["s_per_box_min"] / block[kind]["s_per_box_min"]
        block["bf16"]["speedup_vs_fp32"] = block["fp32"]["s_per_box_min"] / block["bf16"]["s_per_box_min"]
        block["bf16_vs_fp32"] = agreement(probs["fp32"], probs["bf16"], classes[stage])
        results[f"stage{stage}"] = block
        if stage == 1:  # stage 2 reads the merged fp32 stage-1 probabilities of the same boxes (warm-up box first)
            np.save(inputs[2], merge_ut(np.concatenate([probs["fp32"][:1], probs["fp32"]]), axis=1))
    if not args.skip_map:
        path = write_scene_map(work / f"rna{args.map_edge}.mrc", args.map_edge, args.map_copies)
        results["map"] = {"edge_A": args.map_edge, "copies": args.map_copies}
        for precision in ("fp32", "bf16"):
            results["map"][precision] = run_child(
                __file__, ["map", weight_dir, str(path), precision, str(work / precision)])
            print("map", precision, results["map"][precision], flush=True)
        results["map"]["bf16_speedup"] = results["map"]["fp32"]["wall_s"] / results["map"]["bf16"]["wall_s"]
    _write(results)


def _write(results: dict) -> None:
    raw = save_results("detect-na", results)
    names = {"original": "original computation (fp32, all heads) — baseline", "fp32": "engine fp32 (default)",
             "bf16": "engine bf16"}
    lines = [
        f"\n## CryoREAD detect-na — {results['machine']['date']}",
        f"Machine: {results['machine']['cpu']}, {results['machine']['cores']} cores (PyTorch threads = cores). "
        f"Command: `.venv-worker/bin/python benchmarks/bench_detect_na.py --boxes {results['boxes']}"
        f"{'' if 'map' in results else ' --skip-map'}`. "
        f"Raw: `{raw}`. Random weights in the published layout, batch 1, "
        f"steady state. Matrix-multiply rate measured here: fp32 {results['matmul']['fp32_gflops']:.0f} GFLOP/s, "
        f"bf16 {results['matmul']['bf16_gflops']:.0f} GFLOP/s.",
        "",
        "| stage | path | s / box: best (mean) | peak RSS GB | GFLOP/s (fraction of GEMM rate) | vs baseline |",
        "|---|---|---|---|---|---|",
    ]
    for stage in (1, 2):
        block = results[f"stage{stage}"]
        for kind, name in names.items():
            r = block[kind]
            ratio = "1.00×" if kind == "original" else f"{r['speedup_vs_original']:.2f}×"
            lines.append(f"| {stage} ({block['gflop_per_box']:.0f} GFLOP/box) | {name} | "
                         f"{r['s_per_box_min']:.2f} ({r['s_per_box']:.2f}) | "
                         f"{r['peak_rss_gb']:.2f} | {r['gflops']:.0f} ({r['fraction_of_matmul_rate']:.0%}) | {ratio} |")
    lines.append("")
    for stage in (1, 2):
        block = results[f"stage{stage}"]
        agree = block["bf16_vs_fp32"]
        worst = min(agree["dice_at_0.5"].items(), key=lambda kv: kv[1])
        lines.append(
            f"- Stage {stage}: fp32 output identical to the original computation: "
            f"{block['fp32_identical_to_original']}; bf16 {block['bf16']['speedup_vs_fp32']:.2f}× fp32, max |Δp| "
            f"{agree['max_abs_diff']:.2e}, Dice at 0.5 per class "
            + ", ".join(f"{c} {d:.4f}" for c, d in agree["dice_at_0.5"].items())
            + f" (lowest: {worst[0]})."
        )
    if "map" in results:
        m = results["map"]
        for precision in ("fp32", "bf16"):
            r = m[precision]
            lines.append(
                f"- {m['edge_A']} Å cube ({m['copies']} RNA copies, simulated 3.7 Å, 1 Å voxels, contour 0.1), "
                f"{precision}: {r['wall_s']:.0f} s wall; stage 1 ran {r['stages']['stage1']['run']} of "
                f"{r['stages']['stage1']['boxes']} boxes ({r['stages']['stage1']['seconds']:.0f} s), stage 2 "
                f"{r['stages']['stage2']['run']} ({r['stages']['stage2']['seconds']:.0f} s); peak RSS "
                f"{r['peak_rss_gb']:.2f} GB.")
        lines.append(f"- Whole map: bf16 {m['bf16_speedup']:.2f}× fp32.")
    append_to_benchmarks(lines)


if __name__ == "__main__":
    main()
