#!/usr/bin/env python3
"""One-command demo, no download: python demo.py

Builds (or reuses) a small dataset from the standard library's docstrings (demo_data.py: a 1024-piece
SentencePiece BPE with the official settings, sp1024-format shards, converted to byte260 shards by
convert_to_bytes.py), then runs train_byte_model.py on it with a small model for a fixed number of
steps, so the result does not depend on the machine's speed: evaluation, int6+zstd export, reload and
re-evaluation included. Any knob below can be overridden from the environment, e.g. ITERATIONS=30
python demo.py; DATA_PATH set in the environment trains on that data instead of the demo's.
python demo.py --print-command prints the trainer command it runs, to copy and change (the data must be built).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import train_byte_model as tbm
from demo_data import build_demo_data

REPO = Path(__file__).resolve().parent
DEMO_STEPS = 360  # a fixed number of steps, not a wall-clock cap, so the result does not depend on the machine
# The 8xH100 shape (13 x 512, 8 heads, seq 4096) shrunk to what 2 CPU cores train in minutes.
DEMO_SHAPE = {"MODEL_DIM": 128, "NUM_LAYERS": 4, "NUM_HEADS": 4, "MLP_HIDDEN": 256, "BIGRAM_HASH_BUCKETS": 1024,
              "BIGRAM_HASH_DIM": 16, "TRAIN_SEQ_LEN": 256, "TRAIN_BATCH_TOKENS": 8192}
DEMO_RUN = {"MAX_WALLCLOCK_SECONDS": 0, "WARMUP_STEPS": 0, "TRAIN_LOG_EVERY": 20, "VAL_LOSS_EVERY": 120,
            "HELDOUT_TOKENS": 32768, "VAL_SLIDING_STRIDE": 128, "EVAL_BATCH_SEQS": 32, "GPTQ_CALIB_TOKENS": 32768}
# Optimizer steps of each recipe's 600 s on 8xH100: PR #832 ran 9,000 at 63 ms; PR #705 ran ~83 ms per step.
FULL_SCALE_STEPS = {"frontier": 9000, "frontier_next": 9000, "pr832": 9000, "pr705": 7200}


def demo_knobs(recipe: str = "frontier", steps: int = DEMO_STEPS) -> dict[str, str]:
    """The recipe at the demo's shape: its KV-head, RoPE, XSA and JEPA sizes and its layer indices (recurrent span,
    parallel lanes) kept in proportion to the model, its step-count knobs (warmdown, momentum warmup, EMA horizon, SWA
    period) scaled from its full-scale run length to `steps`."""
    full = tbm.Hyperparameters({"RECIPE": recipe})
    shrink, head_dim = steps / FULL_SCALE_STEPS[recipe], DEMO_SHAPE["MODEL_DIM"] // DEMO_SHAPE["NUM_HEADS"]
    layer = lambda i: min(DEMO_SHAPE["NUM_LAYERS"] - 1, round(i * DEMO_SHAPE["NUM_LAYERS"] / full.num_layers))  # noqa: E731
    knobs = {**DEMO_SHAPE, **DEMO_RUN, "RECIPE": recipe, "ITERATIONS": steps,
             "NUM_KV_HEADS": max(1, DEMO_SHAPE["NUM_HEADS"] * full.num_kv_heads // full.num_heads),
             "ROPE_DIMS": 2 * max(1, round(full.rope_dims / full.head_dim * head_dim / 2)),
             "XSA_LAST_N": round(full.xsa_last_n * DEMO_SHAPE["NUM_LAYERS"] / full.num_layers),
             **({"LOOP_START": layer(full.loop_start), "LOOP_END": layer(full.loop_end)} if full.num_loops else {}),
             **({"PARALLEL_START_LAYER": layer(full.parallel_start_layer)} if full.parallel_start_layer else {}),
             "JEPA_LATENT_DIM": full.jepa_latent_dim * DEMO_SHAPE["MODEL_DIM"] // full.model_dim,
             "WARMDOWN_ITERS": round(full.warmdown_iters * shrink),
             "MUON_MOMENTUM_WARMUP_STEPS": round(full.muon_momentum_warmup_steps * shrink),
             "EMA_DECAY": round(1 - (1 - full.ema_decay) / shrink, 4) if full.ema_decay else 0,
             "SWA_EVERY": max(1, round(full.swa_every * shrink)) if full.swa_every else 0}
    return {k: str(v) for k, v in knobs.items()}


DEMO_KNOBS = demo_knobs()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO / "data" / "demo", help="where the demo data lives")
    parser.add_argument("--print-command", action="store_true", help="print the trainer command, run nothing")
    args = parser.parse_args()
    recipe = os.environ.get("RECIPE", "frontier")
    if recipe not in FULL_SCALE_STEPS:
        print(f"error: RECIPE={recipe}: the demo knows {', '.join(FULL_SCALE_STEPS)}", file=sys.stderr)
        sys.exit(2)
    knobs = demo_knobs(recipe)  # the recipe's own proportions: its layer indices must fit the demo's 4 layers
    if args.print_command:
        knobs["DATA_PATH"] = os.path.relpath(args.root / "bytes", REPO)
        print(" ".join(f"{k}={v}" for k, v in sorted(knobs.items())) + " python train_byte_model.py")
        return
    data = os.environ.get("DATA_PATH")
    if data:
        print(f"demo: training on DATA_PATH={data} from the environment (the demo data is not built)")
    else:
        data = str(build_demo_data(args.root))
    run_id = os.environ.get("RUN_ID") or time.strftime("demo_%Y%m%d_%H%M%S")
    env = {**knobs, **os.environ, "DATA_PATH": data, "RUN_ID": run_id}
    code = subprocess.call([sys.executable, str(REPO / "train_byte_model.py")], env=env, cwd=REPO)
    log_dir = REPO / env.get("LOG_DIR", "logs")
    artifact = log_dir / (run_id + ".int6.ptz")
    print(f"\ndemo finished (exit {code})\n  log:      {log_dir / (run_id + '.txt')}\n"
          f"  artifact: {artifact if code == 0 and artifact.is_file() else 'none (the run did not finish)'}\n"
          f"  data:     {data}")
    sys.exit(code)


if __name__ == "__main__":
    main()
