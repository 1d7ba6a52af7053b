#!/usr/bin/env python3
"""PPM throughput and quality, one core: python scripts/bench_ppm.py [--megabytes M] [--orders 2,3,...]

The stream is real text available offline: the standard library's .py and .txt files (sorted by path,
site-packages left out) as byte260 ids, BOS before each file, cut at --megabytes. For each order it
prints ppm_probabilities' throughput in millions of targets per second (numba compile time excluded),
the PPM's own bits per byte over the byte targets, and the peak numpy memory of its tables per target.
Last, mixing: a stand-in "network" (PPM of --stand-in-order, weaker than the real network, so only the
mechanics carry over) mixed with the PPM of --mix-order, at the best fixed weight chosen in hindsight
and with the adaptive mixer.
"""
from __future__ import annotations

import argparse
import os
import sys
import sysconfig
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import eval_time  # noqa: E402

BOS, FIRST_BYTE_ID, VOCAB = 1, 4, 260


def stdlib_stream(megabytes: float) -> np.ndarray:
    root = Path(sysconfig.get_paths()["stdlib"])
    pieces, size = [], 0
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".txt") and "site-packages" not in p.parts):
        data = np.frombuffer(path.read_bytes(), np.uint8).astype(np.uint16) + FIRST_BYTE_ID
        pieces += [np.array([BOS], np.uint16), data]
        size += data.size + 1
        if size >= megabytes * 1e6:
            break
    return np.concatenate(pieces)[: int(megabytes * 1e6)]


def bits_per_byte(p: np.ndarray, targets: np.ndarray) -> float:
    is_byte = targets >= FIRST_BYTE_ID
    return float(-np.log2(p[is_byte]).sum() / is_byte.sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--megabytes", type=float, default=16.0)
    ap.add_argument("--orders", default="2,3,4,5,6,7,8")
    ap.add_argument("--mix-order", type=int, default=5)
    ap.add_argument("--stand-in-order", type=int, default=2)
    ap.add_argument("--lr", type=float, default=0.02)
    a = ap.parse_args()
    ids = stdlib_stream(a.megabytes)
    targets = ids[1:]
    print(f"{ids.size:,} ids from the standard library; {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.2f}")
    eval_time.ppm_probabilities(ids[:20_000], 2, VOCAB)  # compile
    print("\n| order | M targets/s (wall) | M targets/CPU-s | PPM bits/byte | peak numpy bytes/target |\n"
          "|---|---|---|---|---|")
    by_order = {}
    for order in map(int, a.orders.split(",")):
        tracemalloc.start()
        wall, cpu = time.perf_counter(), time.process_time()
        by_order[order] = eval_time.ppm_probabilities(ids, order, VOCAB)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"| {order} | {targets.size / wall / 1e6:.2f} | {targets.size / cpu / 1e6:.2f} | "
              f"{bits_per_byte(by_order[order][0], targets):.4f} | {peak / ids.size:.0f} |")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")

    def ppm(order: int) -> tuple[np.ndarray, np.ndarray]:
        return by_order[order] if order in by_order else eval_time.ppm_probabilities(ids, order, VOCAB)

    p_nn, _ = ppm(a.stand_in_order)
    p_ppm, bucket = ppm(a.mix_order)
    fixed = {w: bits_per_byte(eval_time.mix_fixed(p_nn, p_ppm, w), targets) for w in np.linspace(0, 1, 21)}
    best = min(fixed, key=fixed.get)
    adaptive = bits_per_byte(eval_time.mix_adaptive(p_nn, p_ppm, bucket, a.lr, 0.5), targets)
    print(f"\nmixing, bits/byte: stand-in network (PPM order {a.stand_in_order}) {fixed[0.0]:.4f}, "
          f"PPM order {a.mix_order} {fixed[1.0]:.4f}, best fixed weight {best:.2f} (hindsight) {fixed[best]:.4f}, "
          f"adaptive (lr {a.lr}, from 0.5) {adaptive:.4f}")


if __name__ == "__main__":
    main()
