#!/usr/bin/env python3
"""Evaluation-time methods on trained demo models, CPU: python scripts/bench_eval_time.py [--steps 360]

Trains the demo model (RECIPE=frontier at the demo's shape) for 1/4, 1/2 and all of --steps (three runs of
a fixed length, each ending in its own warmdown: models of rising quality), then re-scores each artifact
with EVAL_ONLY and each method: score-first TTT (block scalars, LoRA), the PPM-D mixture (adaptive, fixed
weight) and TTT + PPM. Prints a markdown table: plain post-quant sliding BPB, each method's gain, eval
seconds, PPM throughput and the projected 8xH100 evaluation time. A weak CPU model gains more from PPM
than a strong one will: the rows show the gain against model quality.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from demo import demo_knobs  # noqa: E402
from demo_data import build_demo_data  # noqa: E402
from bench_common import emit, run_trainer  # noqa: E402

TTT = {"TTT_STEPS": "1", "TTT_CHUNK_TOKENS": "4096", "TTT_LR": "0.003"}
PPM = {"PPM_ORDER": "5"}
SCORINGS = {  # name -> knobs of one EVAL_ONLY run; its summary gives each method it ran
    "ttt scalars + ppm adaptive": {**TTT, **PPM},
    "ttt lora": {**TTT, "TTT_PARAMS": "lora", "TTT_LR": "0.001"},
    "ppm fixed 0.1": {**PPM, "PPM_WEIGHT": "0.1"},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=360, help="the longest run (the demo's length)")
    p.add_argument("--out", type=Path, help="also write the table here")
    a = p.parse_args()
    data = str(build_demo_data(REPO / "data" / "demo"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        log_dir = Path(tmp)
        for steps in (a.steps // 4, a.steps // 2, a.steps):
            trained, _ = run_trainer({**demo_knobs("frontier", steps), "DATA_PATH": data}, log_dir, f"train{steps}")
            plain = trained["post_quant"]
            row = {"steps": steps, "plain": plain["sliding_val_bpb"], "plain_s": plain["sliding_eval_ms"] / 1000}
            for i, (name, knobs) in enumerate(SCORINGS.items()):
                summary, log = run_trainer({"DATA_PATH": data, "EVAL_ONLY": trained["artifact"], **knobs}, log_dir, f"s{steps}_{i}")
                for method, result in summary["post_quant"]["methods"].items():
                    row[f"{name}:{method}"] = result
                projected = next(line for line in log if line.startswith("projected_eval_8xH100"))
                row[f"{name}:projected"] = int(re.match(r"projected_eval_8xH100: (\d+)s", projected).group(1))
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    columns = [("TTT scalars", "ttt scalars + ppm adaptive:ttt"), ("TTT LoRA", "ttt lora:ttt"),
               ("PPM adaptive", "ttt scalars + ppm adaptive:ppm"), ("PPM fixed 0.1", "ppm fixed 0.1:ppm"),
               ("TTT scalars + PPM adaptive", "ttt scalars + ppm adaptive:ttt+ppm")]
    lines = [f"CPU benchmark {time.strftime('%Y-%m-%d')}: {os.cpu_count()} cores, fp32, demo data, RECIPE=frontier at the "
             f"demo's shape; TTT {TTT} (LoRA: rank 8, lr 0.001), PPM order {PPM['PPM_ORDER']}; "
             f"command: python scripts/bench_eval_time.py {' '.join(sys.argv[1:])}".rstrip(), "",
             "| training steps | plain sliding BPB (s) | " + " | ".join(f"{label}: gain (s)" for label, _ in columns)
             + " | PPM M ids/s | projected 8xH100 s (TTT+PPM) |",
             "|---:|---:|" + "---:|" * len(columns) + "---:|---:|"]
    for row in rows:
        cells = [f"{row[key]['val_bpb'] - row['plain']:+.4f} ({row[key]['eval_ms'] / 1000:.1f})" for _, key in columns]
        lines.append(f"| {row['steps']} | {row['plain']:.4f} ({row['plain_s']:.1f}) | " + " | ".join(cells)
                     + f" | {row['ttt scalars + ppm adaptive:ppm']['ppm_ids_per_s'] / 1e6:.2f} | "
                     f"{row['ttt scalars + ppm adaptive:projected']} |")
    emit(lines, a.out)


if __name__ == "__main__":
    main()
