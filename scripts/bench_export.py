#!/usr/bin/env python3
"""Export benchmark, CPU: python scripts/bench_export.py [--frontier] [--work DIR] [--std-k K ...] [--lqer-rank R]
                                                     [--out FILE] [--plot FILE]

Trains one model with train_byte_model.py (once: its LOG_DIR/RUN_ID.final.pt is reused when it exists), then
exports that same checkpoint every way, QUANT x QUANT_CLIP x EMBED_BITS (and LQER_RANK on top of each
QUANT x QUANT_CLIP at the default EMBED_BITS) x CODEC, with the trainer's own functions (calibrate,
quantize_state, pack_artifact, decode_artifact, Scorer.evaluate), and prints a markdown table: artifact bytes,
bits per parameter (bytes * 8 / parameters), the sliding-window val BPB before and after quantization, the gap,
and the export seconds (quantization + compression; the GPTQ calibration is timed once, apart). Codecs
are lossless, so every codec of one setting scores the same BPB: the script checks that their decoded
weights are equal and evaluates each setting once. "today" is the previous trainer's export (format 2,
whole-file zstd-22, read from git at --baseline-rev) on the same checkpoint.

Default: the CPU model (MODEL_DIM 320, 4 layers, seq 256, every block matrix above the int6 threshold,
the default bigram table and chunk-JEPA), 200 steps of 4,096 tokens on the demo data (python demo_data.py).
--frontier: the 8xH100 default shape (RECIPE=frontier, 24.6M parameters) after a few CPU steps at a small
batch, a size check only (near-initial weights say nothing about BPB): no BPB columns, and a tiny val.
--plot writes bytes vs post-quant BPB (matplotlib) with the Pareto front.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
import run_modes  # noqa: E402
import train_byte_model as tbm  # noqa: E402
from convert_to_bytes import write_shard  # noqa: E402
from demo_data import build_demo_data  # noqa: E402

CPU_KNOBS = {"MODEL_DIM": "320", "NUM_LAYERS": "4", "NUM_HEADS": "5", "NUM_KV_HEADS": "5", "MLP_HIDDEN": "640",
             "TRAIN_SEQ_LEN": "256", "TRAIN_BATCH_TOKENS": "4096", "ITERATIONS": "200", "WARMDOWN_ITERS": "60",
             "MAX_WALLCLOCK_SECONDS": "0", "WARMUP_STEPS": "0", "TRAIN_LOG_EVERY": "10", "VAL_LOSS_EVERY": "0",
             "EMA_DECAY": "0.98", "SWA_EVERY": "10", "HELDOUT_TOKENS": "32768", "VAL_SLIDING_STRIDE": "128",
             "EVAL_BATCH_SEQS": "32", "CHECKPOINT_EVERY": "25", "USE_COMPILE": "0", "BF16": "0", "SEED": "1337",
             "GPTQ_CALIB_TOKENS": "65536"}
FRONTIER_KNOBS = {"RECIPE": "frontier", "TRAIN_SEQ_LEN": "256", "TRAIN_BATCH_TOKENS": "2048", "ITERATIONS": "10",
                  "WARMDOWN_ITERS": "0", "MAX_WALLCLOCK_SECONDS": "0", "WARMUP_STEPS": "0", "TRAIN_LOG_EVERY": "1",
                  "HELDOUT_TOKENS": "2048", "VAL_SLIDING_STRIDE": "256", "EVAL_BATCH_SEQS": "8", "USE_COMPILE": "0",
                  "BF16": "0", "SEED": "1337", "GPTQ_CALIB_TOKENS": "16384"}
CODEC_CHOICES = (*tbm.CODECS, "auto")
DEFAULT_EXPORT = {k: str(getattr(tbm.Hyperparameters({}), k.lower())) for k in ("QUANT", "QUANT_CLIP", "EMBED_BITS", "LQER_RANK", "CODEC")}


def frontier_data(demo: Path, work: Path) -> Path:
    """The demo's train shards with a 4,096-token val: a 24.6M model scores it in seconds on a CPU."""
    root = work / "frontier_data"
    root.mkdir(parents=True, exist_ok=True)
    for shard in demo.glob("fineweb_train_*.bin"):
        if not (root / shard.name).exists():
            (root / shard.name).symlink_to(shard.resolve())
    val = np.fromfile(demo / "fineweb_val_000000.bin", dtype="<u2", offset=1024)[:4096]
    write_shard(root / "fineweb_val_000000.bin", val)
    (root / "conversion.json").write_text((demo / "conversion.json").read_text())
    return root


def train_once(knobs: dict[str, str], data: Path, work: Path, run_id: str) -> Path:
    final = work / f"{run_id}.final.pt"
    if not final.exists():
        env = {**os.environ, **knobs, "DATA_PATH": str(data), "LOG_DIR": str(work), "RUN_ID": run_id}
        print(f"training {run_id} (once; later runs reuse {final})", file=sys.stderr)
        subprocess.run([sys.executable, str(REPO / "train_byte_model.py")], env=env, cwd=REPO, check=True)
    return final


def settings(std_ks: list[float], lqer_rank: int, frontier: bool) -> list[dict[str, str]]:
    clips = ["max"] + [f"std:{k:g}" for k in std_ks]
    grid = [{"QUANT": q, "QUANT_CLIP": c, "EMBED_BITS": str(e), "LQER_RANK": "0"}
            for q, c, e in itertools.product(tbm.QUANT_METHODS, clips, (8, 7, 6) if not frontier else (8, 7))]
    if lqer_rank and not frontier:
        embed_bits = str(tbm.Hyperparameters({}).embed_bits)
        grid += [{"QUANT": q, "QUANT_CLIP": c, "EMBED_BITS": embed_bits, "LQER_RANK": str(lqer_rank)}
                 for q, c in itertools.product(tbm.QUANT_METHODS, clips)]
    return grid


def previous_trainer(rev: str, work: Path):
    """train_byte_model.py as it was at `rev` (the format-2 export), imported under another name."""
    path = work / f"train_byte_model_{rev}.py"
    path.write_text(subprocess.run(["git", "show", f"{rev}:train_byte_model.py"], cwd=REPO, capture_output=True,
                                   text=True, check=True).stdout)
    spec = importlib.util.spec_from_file_location(f"tbm_{rev}", path)
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # dataclasses look the module up
    spec.loader.exec_module(module)
    return module


def stored_values(header: dict) -> dict[str, int]:
    """Values per group: symbols, and for "floats" the fp16 tensors' values plus one step per quantized row."""
    values = {g["name"]: 0 for g in header["groups"]}
    for e in header["tensors"]:
        values[e["group"]] += int(np.prod(e["shape"]))
        values["floats"] += e["shape"][0] if e["group"] != "floats" else 0
    return values


def measure(final: Path, knobs: dict[str, str], data: Path, grid: list[dict], evaluate: bool, rev: str,
            work: Path) -> tuple[list[dict], dict]:
    base = tbm.Hyperparameters({**knobs, "DATA_PATH": str(data)})
    rt = tbm.Runtime(0, 1, torch.device("cpu"), bf16=False, compile=False)
    spec = tbm.resolve_data(base)
    saved = torch.load(final, map_location="cpu", weights_only=True)
    model = run_modes.model_from_state(final, saved["config"], saved["model"])
    params = sum(p.numel() for p in model.parameters())
    scorer = tbm.Scorer(base, rt, spec) if evaluate else None
    score = lambda: scorer.evaluate(model, model.hidden, scorer.sliding_val, base.val_sliding_stride).val_bpb  # noqa: E731
    pre = score() if evaluate else None
    rounds = tbm.calibration_rounds(base)
    started = time.perf_counter()
    hessians = tbm.calibrate(base, rt, spec, model, rounds)
    logged = (work / f"{final.name.removesuffix('.final.pt')}.txt").read_text().splitlines()[-1].removeprefix("final_summary:")
    info = {"params": params, "pre": pre, "saved_pre": json.loads(logged)["pre_quant"]["sliding_val_bpb"],
            "calibration_s": time.perf_counter() - started, "coverage": scorer.coverage if evaluate else "", "calibration_tokens": rounds * (base.train_batch_tokens // 8)}
    old = previous_trainer(rev, work)
    old_fields = {f.name for f in dataclasses.fields(old.ModelConfig)}  # knobs added since `rev` are at their off values
    old_config = old.ModelConfig(**{k: v for k, v in saved["config"].items() if k in old_fields})
    today = old.encode_artifact(saved["model"], old_config, saved["layout"], "bench")
    (work / "today.ptz").write_bytes(today)
    today_state = old.decode_artifact(work / "today.ptz")[1]
    rows = []
    for setting in grid:
        states = []
        for codec in CODEC_CHOICES:
            args = tbm.Hyperparameters({**knobs, **setting, "CODEC": codec})
            started = time.perf_counter()
            quantized = tbm.quantize_state(saved["model"], args, hessians if args.quant == "gptq" else {})
            blob = tbm.pack_artifact(quantized, model.cfg, saved["layout"], "bench", None, args)
            seconds = time.perf_counter() - started
            (work / "bench.ptz").write_bytes(blob)
            header, state = tbm.decode_artifact(work / "bench.ptz")
            values = stored_values(header)
            states.append(state)
            rows.append({**setting, "CODEC": codec, "bytes": len(blob), "bits": 8 * len(blob) / params, "seconds": seconds,
                         "groups": {g["name"]: (g["codec"], g["nbytes"], round(8 * g["nbytes"] / values[g["name"]], 3))
                                    for g in header["groups"]}})
        assert all(torch.equal(s[k], states[0][k]) for s in states[1:] for k in s), "codecs must be lossless"
        if setting == {"QUANT": "rowclip", "QUANT_CLIP": "max", "EMBED_BITS": "8", "LQER_RANK": "0"}:
            assert all(torch.equal(today_state[k], states[0][k]) for k in today_state), "rowclip/max/8 is today's"
        if evaluate:
            model.load_state_dict(states[0])
            post = score()
            model.load_state_dict(saved["model"])
            for row in rows[-len(CODEC_CHOICES):]:
                row.update(pre=pre, post=post)
        print(f"{setting}: {[r['bytes'] for r in rows[-len(CODEC_CHOICES):]]} bytes"
              + (f", post-quant {rows[-1]['post']:.4f}" if evaluate else ""), file=sys.stderr, flush=True)
    today_row = {"QUANT": "today (format 2)", "QUANT_CLIP": "max", "EMBED_BITS": "8", "LQER_RANK": "0",
                 "CODEC": "zstd (whole file)", "bytes": len(today), "bits": 8 * len(today) / params, "seconds": float("nan")}
    if evaluate:
        today_row.update(pre=pre, post=next(r["post"] for r in rows if r["QUANT"] == "rowclip" and r["QUANT_CLIP"] == "max"
                                            and r["EMBED_BITS"] == "8" and r["LQER_RANK"] == "0"))
    return [today_row] + rows, info


def table(rows: list[dict], evaluate: bool) -> list[str]:
    head = "| QUANT | QUANT_CLIP | EMBED_BITS | LQER_RANK | CODEC | bytes | vs today | bits/param |"
    head += " pre BPB | post BPB | gap | export s |" if evaluate else " export s |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    today = rows[0]["bytes"]
    for r in rows:
        cells = [r["QUANT"], r["QUANT_CLIP"], r["EMBED_BITS"], r["LQER_RANK"], r["CODEC"], f"{r['bytes']:,}",
                 f"{100 * (r['bytes'] / today - 1):+.1f}%", f"{r['bits']:.3f}"]
        if evaluate:
            cells += [f"{r['pre']:.4f}", f"{r['post']:.4f}", f"{r['post'] - r['pre']:+.4f}"]
        lines.append("| " + " | ".join(cells + [f"{r['seconds']:.1f}"]) + " |")
    return lines


def plot(rows: list[dict], path: Path, title: str, default: dict[str, str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pre, top = rows[0]["pre"], rows[0]["pre"] + 0.03
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for quant, marker in (("rowclip", "o"), ("gptq", "s")):
        for codec, color in zip(CODEC_CHOICES, ("tab:blue", "tab:orange", "tab:green", "tab:red")):
            pts = [(r["bytes"], r["post"]) for r in rows if r["QUANT"] == quant and r["CODEC"] == codec and r["post"] <= top]
            ax.scatter(*zip(*pts), marker=marker, color=color, s=18, alpha=0.7, label=f"{quant} {codec}")
    ax.scatter([rows[0]["bytes"]], [rows[0]["post"]], marker="*", s=160, color="black", label="today (format 2)")
    chosen = next(r for r in rows if all(r[k] == v for k, v in default.items()))
    ax.scatter([chosen["bytes"]], [chosen["post"]], marker="D", s=70, facecolors="none", edgecolors="black",
               label="new default " + " ".join(default.values()))
    front, best = [], float("inf")
    for r in sorted(rows, key=lambda r: (r["bytes"], r["post"])):
        if r["post"] < best:
            front.append((r["bytes"], r["post"]))
            best = r["post"]
    ax.plot(*zip(*front), color="gray", lw=1, drawstyle="steps-post", label="Pareto front")
    ax.axhline(pre, color="gray", ls=":", lw=1, label="pre-quant")
    above = sum(r["post"] > top for r in rows)
    ax.set_ylim(pre - 0.002, top)
    ax.ticklabel_format(useOffset=False)
    ax.set_xlabel("artifact bytes")
    ax.set_ylabel("post-quant sliding val BPB" + (f" ({above} points above the plot)" if above else ""))
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=130)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frontier", action="store_true", help="the 24.6M default shape, briefly trained: a size check")
    p.add_argument("--work", type=Path, default=REPO / "data" / "bench_export", help="checkpoint and scratch files")
    p.add_argument("--std-k", type=float, nargs="+", default=[10.0, 12.85, 16.0], help="the K of each QUANT_CLIP=std:K")
    p.add_argument("--lqer-rank", type=int, default=4, help="LQER_RANK of the LQER rows (0: none)")
    p.add_argument("--baseline-rev", default="bce9af7", help="the git revision whose export is 'today'")
    p.add_argument("--val-tokens", type=int, default=0, help="score only the first N val tokens (0: all; printed)")
    p.add_argument("--out", type=Path, help="also write the table here")
    p.add_argument("--plot", type=Path, help="bytes vs post-quant BPB, PNG (not with --frontier)")
    a = p.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    demo = build_demo_data(REPO / "data" / "demo")
    knobs, run_id, data = (FRONTIER_KNOBS, "frontier_model", frontier_data(demo, a.work)) if a.frontier else \
        (CPU_KNOBS, "bench_model", demo)
    final = train_once(knobs, data, a.work, run_id)
    grid = settings(a.std_k, a.lqer_rank, a.frontier)
    rows, info = measure(final, {**knobs, "VAL_SLIDING_MAX_TOKENS": str(a.val_tokens)}, data, grid, not a.frontier,
                         a.baseline_rev, a.work)
    what = ("RECIPE=frontier shape, briefly trained (size check only: says nothing about BPB)" if a.frontier else
            "CPU model (MODEL_DIM 320, 4 layers, seq 256), 200 steps of 4,096 tokens on the demo data")
    lines = [f"Export benchmark, {time.strftime('%Y-%m-%d')}: {os.cpu_count()} CPU cores (shared with other jobs: "
             f"seconds depend on load, bytes and BPB do not), torch {torch.__version__}; {what}; "
             f"{info['params']:,} parameters; checkpoint {final}",
             f"command: python scripts/bench_export.py {' '.join(sys.argv[1:])}".rstrip(),
             f"GPTQ calibration: {info['calibration_tokens']:,} training tokens in {info['calibration_s']:.1f} s"
             + (f"; BPB: sliding window (stride {knobs['VAL_SLIDING_STRIDE']}) on {info['coverage']} val; the training run "
                f"logged {info['saved_pre']:.4f} pre-quant on all of val" if info["pre"] is not None else ""), ""]
    lines += table(rows, not a.frontier)
    print("\n".join(lines))
    groups = {f"{r['QUANT']} {r['QUANT_CLIP']} {r['EMBED_BITS']} {r['LQER_RANK']} {r['CODEC']}": r["groups"] for r in rows[1:]}
    print("per group: (codec, bytes, bits per stored value)\n" + json.dumps(groups, indent=0), file=sys.stderr)
    if a.out:
        a.out.write_text("\n".join(lines) + "\n")
    if a.plot and not a.frontier:
        plot(rows, a.plot, f"one CPU checkpoint ({info['params']:,} parameters) exported every way", DEFAULT_EXPORT)


if __name__ == "__main__":
    main()
