#!/usr/bin/env python3
"""Research options on CPU: python scripts/bench_research.py [--data DIR] [--steps N] [--out FILE] [--only NAME ...]

Trains the demo's small model (MODEL_DIM 128, 4 layers, seq 256, 8192 tokens per step) for the same fixed
number of steps (the LR decaying linearly to 0 over them) with pure attention and with each research option,
one after another in this one run, by running train_byte_model.py itself, and prints a markdown table: parameters, ms per training step (the
trainer's step_avg, evaluation excluded) and val BPB after those steps (raw weights: no EMA or SWA; before
and after the int6 round trip; whole val, non-overlapping windows). Without --data it uses (and if needed
builds) the demo dataset, data/demo/bytes.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from demo import DEMO_KNOBS  # noqa: E402
from demo_data import build_demo_data  # noqa: E402
from bench_common import emit, run_trainer  # noqa: E402

VARIANTS = {  # name -> knobs on top of the demo's
    "attention AAAA": {},
    "S hybrid AASA": {"BLOCK_PATTERN": "AASA"},
    "G hybrid AAGA": {"BLOCK_PATTERN": "AAGA"},
    "patch 2 independent": {"PATCH_SIZE": "2"},
    "patch 2 causal_conv": {"PATCH_SIZE": "2", "PATCH_DECODER": "causal_conv"},
    "patch 4 independent": {"PATCH_SIZE": "4"},
    "patch 4 causal_conv": {"PATCH_SIZE": "4", "PATCH_DECODER": "causal_conv"},
}


def run_variant(knobs: dict[str, str], data: Path, steps: int, log_dir: Path, run_id: str) -> dict:
    env = {**DEMO_KNOBS, "DATA_PATH": str(data),
           "ITERATIONS": str(steps), "WARMDOWN_ITERS": str(steps), "MAX_WALLCLOCK_SECONDS": "0", "EMA_DECAY": "0",
           "SWA_EVERY": "0", "VAL_SLIDING_STRIDE": DEMO_KNOBS["TRAIN_SEQ_LEN"], "TRAIN_LOG_EVERY": "0",
           "USE_COMPILE": "0", "BF16": "0", "SEED": "1337", **knobs}
    summary, _ = run_trainer(env, log_dir, run_id)
    return {"params": summary["params"], "step_ms": summary["step_avg_ms"], "bpb": summary["pre_quant"]["val_bpb"],
            "int6_bpb": summary["post_quant"]["val_bpb"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, help="byte shards (default: the demo data, built if missing)")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--out", type=Path, help="also write the markdown table here")
    p.add_argument("--only", nargs="+", choices=list(VARIANTS), help="run only these variants (attention always runs)")
    a = p.parse_args()
    data = a.data or build_demo_data(REPO / "data" / "demo")
    names = ["attention AAAA"] + [n for n in VARIANTS if n != "attention AAAA" and (not a.only or n in a.only)]
    results = {}
    with tempfile.TemporaryDirectory() as log_dir:
        for i, name in enumerate(names):
            results[name] = run_variant(VARIANTS[name], data, a.steps, Path(log_dir), f"bench{i}")
            r = results[name]
            print(f"{name}: {r['params']:,} params  {r['step_ms']:.0f} ms/step  val_bpb {r['bpb']:.4f}", file=sys.stderr)
    base = results["attention AAAA"]
    lines = [f"CPU benchmark, {time.strftime('%Y-%m-%d')}: {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, "
             f"fp32, torch {torch.__version__}; {a.steps} steps of the demo model (MODEL_DIM 128, 4 layers, seq 256, "
             f"8192 tokens/step) on {data}",
             f"command: python scripts/bench_research.py {' '.join(sys.argv[1:])}".rstrip(), "",
             "| variant | knobs | params | ms/step | vs attention | val BPB | minus attention | int6 val BPB |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name in names:
        r, knobs = results[name], " ".join(f"{k}={v}" for k, v in VARIANTS[name].items()) or "(defaults)"
        lines.append(f"| {name} | {knobs} | {r['params']:,} | {r['step_ms']:.0f} | {r['step_ms'] / base['step_ms']:.2f}x "
                     f"| {r['bpb']:.4f} | {r['bpb'] - base['bpb']:+.4f} | {r['int6_bpb']:.4f} |")
    emit(lines, a.out)


if __name__ == "__main__":
    main()
