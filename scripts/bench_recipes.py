#!/usr/bin/env python3
"""The recipes at the demo's size, CPU: python scripts/bench_recipes.py [--steps 360 | --seconds 150] [--seeds 1 2 3]

Each recipe (demo.demo_knobs: the demo's shape with the recipe's proportions, LRs and schedule) trains on
the demo data with each seed, either for the same number of steps (default: the result does not depend on
the machine's load; the table's ms/step says what each step costs) or for the same wall-clock seconds
(--seconds, on a quiet machine). Runs go seed by seed, so a drift of the machine hits every recipe alike,
and the seeds pair the runs (same data order, same seed). Prints a markdown table: parameters, steps,
ms/step, pre- and post-quant sliding BPB as mean ± std over seeds with the paired difference against the
first recipe. A few CPU minutes cannot rank recipes for 10 minutes on 8xH100; a recipe clearly worse here
is a reason to look for a bug, not a verdict.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from demo import demo_knobs  # noqa: E402
from demo_data import build_demo_data  # noqa: E402
from bench_common import emit, last_run, run_trainer  # noqa: E402

RECIPES = ("frontier", "pr832", "pr705")


def train(recipe: str, seed: int, steps: int, seconds: float, data: Path, log_dir: Path) -> dict:
    """One run of `steps` steps, or capped at `seconds` (then its schedule assumes 0.5 s per step); its summary."""
    run_id = f"{recipe}_seed{seed}"
    knobs = {**demo_knobs(recipe, steps=int(seconds / 0.5) if seconds else steps), "VAL_LOSS_EVERY": "0",
             "SEED": str(seed), "DATA_PATH": str(data)}
    if seconds:
        knobs.update(ITERATIONS="100000", MAX_WALLCLOCK_SECONDS=str(seconds))
    log_path = log_dir / f"{run_id}.txt"
    if log_path.is_file() and log_path.read_text().splitlines()[-1].startswith("final_summary:"):
        print(f"{run_id}: reusing the finished run in {log_path}", file=sys.stderr)
        return last_run(log_path)[0]
    return run_trainer(knobs, log_dir, run_id)[0]


def mean_std(values: list[float], digits: int = 4) -> str:
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}" if len(values) > 1 else f"{values[0]:.{digits}f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=360, help="training steps per run (the demo's)")
    p.add_argument("--seconds", type=float, default=0.0, help="instead, training seconds per run (MAX_WALLCLOCK_SECONDS)")
    p.add_argument("--log-dir", type=Path, help="keep the runs' logs and artifacts here (default: a temporary folder); "
                   "a finished run's log found there is reused, not rerun")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=RECIPES)
    p.add_argument("--out", type=Path, help="also write the table here")
    a = p.parse_args()
    data = build_demo_data(REPO / "data" / "demo")
    runs: dict[str, list[dict]] = {r: [] for r in a.recipes}
    with tempfile.TemporaryDirectory() as tmp:
        log_dir = a.log_dir or Path(tmp)
        log_dir.mkdir(parents=True, exist_ok=True)
        for seed in a.seeds:
            for recipe in a.recipes:
                s = train(recipe, seed, a.steps, a.seconds, data, log_dir)
                runs[recipe].append(s)
                print(f"{recipe} seed {seed}: {s['steps']} steps, {s['step_avg_ms']:.0f} ms/step, "
                      f"post-quant sliding {s['post_quant']['sliding_val_bpb']:.4f}", file=sys.stderr, flush=True)
    bpb = {r: [s["post_quant"]["sliding_val_bpb"] for s in runs[r]] for r in a.recipes}
    pre = {r: [s["pre_quant"]["sliding_val_bpb"] for s in runs[r]] for r in a.recipes}
    base = a.recipes[0]
    budget = f"{a.seconds:.0f} s of training per run" if a.seconds else f"{a.steps} steps per run"
    lines = [f"CPU benchmark {time.strftime('%Y-%m-%d')}: {os.cpu_count()} cores, fp32, the demo's shape (dim 128, 4 layers, "
             f"seq 256, 8,192 tokens/step), {budget}, seeds {a.seeds}, demo data; "
             f"command: python scripts/bench_recipes.py {' '.join(sys.argv[1:])}".rstrip(), "",
             f"| recipe | params | steps | ms/step | pre-quant sliding BPB | post-quant sliding BPB | paired diff vs {base} |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in a.recipes:
        diffs = [x - y for x, y in zip(bpb[r], bpb[base])]
        lines.append(f"| {r} | {runs[r][0]['params']:,} | {np.mean([s['steps'] for s in runs[r]]):.0f} | "
                     f"{np.mean([s['step_avg_ms'] for s in runs[r]]):.0f} | {mean_std(pre[r])} | {mean_std(bpb[r])} | "
                     f"{'—' if r == base else mean_std(diffs)} |")
    emit(lines, a.out)


if __name__ == "__main__":
    main()
