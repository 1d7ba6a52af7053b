#!/usr/bin/env python3
"""The recipes at the demo's size, CPU: python scripts/bench_recipes.py [--steps 360 | --seconds 150] [--seeds 1 2 3]
    [--recipes frontier pr705] [--variants NAME:KNOB=VALUE,KNOB=VALUE ...] [--jobs 2]

Each recipe (demo.demo_knobs: the demo's shape with the recipe's proportions, LRs and schedule) trains on
the demo data with each seed, either for the same number of steps (default: the result does not depend on
the machine's load; the table's ms/step says what each step costs) or for the same wall-clock seconds
(--seconds, on a quiet machine). Runs go seed by seed, so a drift of the machine hits every recipe alike,
and the seeds pair the runs (same data order, same seed). Prints a markdown table: parameters, steps,
ms/step, pre- and post-quant sliding BPB as mean ± std over seeds with the paired difference against the
first recipe. A few CPU minutes cannot rank recipes for 10 minutes on 8xH100; a recipe clearly worse here
is a reason to look for a bug, not a verdict.

--variants: the first recipe with these knobs changed (e.g. `qk5:QK_GAIN_INIT=5.0`), each paired with it like a
recipe; the table adds each row's step-time ratio and its parameter and artifact deltas against the first row.
--jobs N: N runs at once, each with 2 // N threads (the pairing does not change: every run is deterministic).
"""
from __future__ import annotations

import argparse
import concurrent.futures
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

RECIPES = ("frontier", "frontier_next", "pr832", "pr705")


def train(name: str, recipe: str, changes: dict, seed: int, steps: int, seconds: float, data: Path, log_dir: Path,
          threads: int) -> dict:
    """One run of `steps` steps, or capped at `seconds` (then its schedule assumes 0.5 s per step); its summary."""
    run_id = f"{name}_seed{seed}"
    knobs = {**demo_knobs(recipe, steps=int(seconds / 0.5) if seconds else steps), "VAL_LOSS_EVERY": "0",
             "SEED": str(seed), "DATA_PATH": str(data), "OMP_NUM_THREADS": str(threads), **changes}
    if seconds:
        knobs.update(ITERATIONS="100000", MAX_WALLCLOCK_SECONDS=str(seconds))
    log_path = log_dir / f"{run_id}.txt"
    if log_path.is_file() and log_path.read_text().splitlines()[-1].startswith("final_summary:"):
        print(f"{run_id}: reusing the finished run in {log_path}", file=sys.stderr)
        return last_run(log_path)[0]
    return run_trainer(knobs, log_dir, run_id)[0]


def parse_variant(text: str, base: str) -> tuple[str, tuple[str, dict]]:
    name, _, changes = text.partition(":")
    return name, (base, dict(change.split("=", 1) for change in changes.split(",") if change))


def mean_std(values: list[float], digits: int = 4) -> str:
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}" if len(values) > 1 else f"{values[0]:.{digits}f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=360, help="training steps per run (the demo's)")
    p.add_argument("--seconds", type=float, default=0.0, help="instead, training seconds per run (MAX_WALLCLOCK_SECONDS)")
    p.add_argument("--log-dir", type=Path, help="keep the runs' logs and artifacts here (default: a temporary folder); "
                   "a finished run's log found there is reused, not rerun")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--recipes", nargs="+", default=["frontier", "pr832", "pr705"], choices=RECIPES)
    p.add_argument("--variants", nargs="*", default=[], help="NAME:KNOB=VALUE,... over the first recipe")
    p.add_argument("--jobs", type=int, default=1, choices=(1, 2), help="runs at once")
    p.add_argument("--out", type=Path, help="also write the table here")
    a = p.parse_args()
    data = build_demo_data(REPO / "data" / "demo")
    rows = {r: (r, {}) for r in a.recipes} | dict(parse_variant(v, a.recipes[0]) for v in a.variants)
    runs: dict[str, list[dict]] = {name: [] for name in rows}
    with tempfile.TemporaryDirectory() as tmp, concurrent.futures.ThreadPoolExecutor(a.jobs) as pool:
        log_dir = a.log_dir or Path(tmp)
        log_dir.mkdir(parents=True, exist_ok=True)
        jobs = [(name, seed, pool.submit(train, name, *rows[name], seed, a.steps, a.seconds, data, log_dir, 2 // a.jobs))
                for seed in a.seeds for name in rows]
        for name, seed, job in jobs:
            s = job.result()
            runs[name].append(s)
            print(f"{name} seed {seed}: {s['steps']} steps, {s['step_avg_ms']:.0f} ms/step, "
                  f"post-quant sliding {s['post_quant']['sliding_val_bpb']:.4f}", file=sys.stderr, flush=True)
    emit(table(runs, rows, a), a.out)


def table(runs: dict[str, list[dict]], rows: dict, a) -> list[str]:
    bpb = {r: [s["post_quant"]["sliding_val_bpb"] for s in runs[r]] for r in rows}
    pre = {r: [s["pre_quant"]["sliding_val_bpb"] for s in runs[r]] for r in rows}
    base = next(iter(rows))
    mean = lambda r, key: np.mean([s[key] for s in runs[r]])  # noqa: E731
    budget = f"{a.seconds:.0f} s of training per run" if a.seconds else f"{a.steps} steps per run"
    lines = [f"CPU benchmark {time.strftime('%Y-%m-%d')}: {os.cpu_count()} cores, fp32, the demo's shape (dim 128, 4 layers, "
             f"seq 256, 8,192 tokens/step), {budget}, seeds {a.seeds}, demo data, {a.jobs} run(s) at a time; "
             f"command: python scripts/bench_recipes.py {' '.join(sys.argv[1:])}".rstrip(), "",
             f"| run | changes | params (Δ) | steps | ms/step (ratio) | artifact bytes (Δ) | pre-quant sliding BPB | "
             f"post-quant sliding BPB | paired diff vs {base} |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r, (recipe, changes) in rows.items():
        diffs = [x - y for x, y in zip(bpb[r], bpb[base])]
        what = " ".join(f"{k}={v}" for k, v in changes.items()) or f"RECIPE={recipe}"
        params, size = runs[r][0]["params"], mean(r, "artifact_bytes")
        lines.append(f"| {r} | {what} | {params:,} ({params - runs[base][0]['params']:+,}) | {mean(r, 'steps'):.0f} | "
                     f"{mean(r, 'step_avg_ms'):.0f} ({mean(r, 'step_avg_ms') / mean(base, 'step_avg_ms'):.2f}) | "
                     f"{size:,.0f} ({size - mean(base, 'artifact_bytes'):+,.0f}) | {mean_std(pre[r])} | "
                     f"{mean_std(bpb[r])} | {'—' if r == base else mean_std(diffs)} |")
    return lines


if __name__ == "__main__":
    main()
