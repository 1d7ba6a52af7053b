#!/usr/bin/env python3
"""One-command demo, no download: python demo.py

Builds (or reuses) a small dataset from the standard library's docstrings (demo_data.py: a 1024-piece
SentencePiece BPE with the official settings, sp1024-format shards, converted to byte260 shards by
convert_to_bytes.py), then runs train_byte_model.py on it with a small model for a fixed number of
steps, so the result does not depend on the machine's speed: evaluation, int6+zstd export, reload and
re-evaluation included. Any knob below can be overridden from the environment, e.g. ITERATIONS=30
python demo.py; DATA_PATH set in the environment trains on that data instead of the demo's.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from demo_data import build_demo_data

REPO = Path(__file__).resolve().parent
# A model a laptop CPU trains in minutes (the defaults are the 8xH100 configuration), for a fixed number of
# steps rather than a wall-clock cap: 360 steps take ~160 s at the 0.45 s/step measured on 2 idle CPU cores.
DEMO_KNOBS = {
    "MODEL_DIM": "128", "NUM_LAYERS": "4", "NUM_HEADS": "4", "NUM_KV_HEADS": "4", "MLP_HIDDEN": "256",
    "BIGRAM_HASH_BUCKETS": "1024", "BIGRAM_HASH_DIM": "16", "TRAIN_SEQ_LEN": "256", "TRAIN_BATCH_TOKENS": "8192",
    "ITERATIONS": "360", "WARMDOWN_ITERS": "60", "MAX_WALLCLOCK_SECONDS": "0", "WARMUP_STEPS": "0",
    "TRAIN_LOG_EVERY": "20", "VAL_LOSS_EVERY": "120", "EMA_DECAY": "0.98", "SWA_EVERY": "10", "HELDOUT_TOKENS": "32768",
    "VAL_SLIDING_STRIDE": "128", "EVAL_BATCH_SEQS": "32",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO / "data" / "demo", help="where the demo data lives")
    args = parser.parse_args()
    data = os.environ.get("DATA_PATH")
    if data:
        print(f"demo: training on DATA_PATH={data} from the environment (the demo data is not built)")
    else:
        data = str(build_demo_data(args.root))
    run_id = os.environ.get("RUN_ID") or time.strftime("demo_%Y%m%d_%H%M%S")
    env = {**DEMO_KNOBS, **os.environ, "DATA_PATH": data, "RUN_ID": run_id}
    code = subprocess.call([sys.executable, str(REPO / "train_byte_model.py")], env=env, cwd=REPO)
    log_dir = REPO / env.get("LOG_DIR", "logs")
    print(f"\ndemo finished (exit {code})\n  log:      {log_dir / (run_id + '.txt')}\n"
          f"  artifact: {log_dir / (run_id + '.int6.ptz')}\n  data:     {data}")
    sys.exit(code)


if __name__ == "__main__":
    main()
