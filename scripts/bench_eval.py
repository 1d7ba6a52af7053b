#!/usr/bin/env python3
"""Sliding-window eval overhead, CPU: python scripts/bench_eval.py [--tokens N] [--context C] [--stride S]

Scores the same stream with the same small model twice in one run: the non-overlapping eval (stride =
context) and the sliding one. A sliding eval must run `context / stride` times as many window positions
per scored target, so that ratio is its inherent cost; the benchmark prints targets/s of both and the
measured time ratio divided by the inherent one (1.00 = no overhead beyond the extra context).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import train_byte_model as tbm  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=200_000)
    p.add_argument("--context", type=int, default=256)
    p.add_argument("--stride", type=int, default=64)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3, help="best of this many timings of each eval")
    a = p.parse_args()
    torch.manual_seed(0)
    args = tbm.Hyperparameters({"MODEL_DIM": "128", "NUM_LAYERS": "4", "NUM_HEADS": "4", "NUM_KV_HEADS": "4",
                                "MLP_HIDDEN": "256", "BIGRAM_HASH_BUCKETS": "1024", "BIGRAM_HASH_DIM": "16"})
    model = tbm.ByteGPT(tbm.model_config(args, 260)).eval()
    stream = torch.from_numpy(np.random.default_rng(0).integers(4, 260, a.tokens))
    rt = tbm.Runtime(0, 1, torch.device("cpu"), bf16=False, compile=False)
    tables = tbm.byte_count_tables(tbm.DataSpec("byte260", 260, [], [], "bench"), "")
    best = {}
    for name, stride in (("non-overlapping", a.context), ("sliding", a.stride)):
        times = []
        for _ in range(a.repeats):
            started = time.perf_counter()
            result = tbm.evaluate(model, model.hidden, stream, a.context, stride, a.batch, tables, rt)
            times.append(time.perf_counter() - started)
        assert result.scored_targets == a.tokens - 1
        best[name] = min(times)
        print(f"{name:>16}: stride {stride:4d}  {best[name]:7.2f} s  {result.scored_targets / best[name]:10,.0f} targets/s")
    measured, inherent = best["sliding"] / best["non-overlapping"], a.context / a.stride
    print(f"time ratio {measured:.2f}  inherent ratio (context/stride) {inherent:.2f}  "
          f"overhead {measured / inherent:.3f}x (target <= 1.15x)  [{torch.get_num_threads()} threads, {a.tokens:,} tokens]")


if __name__ == "__main__":
    main()
