#!/usr/bin/env python3
"""GPU check, one H100/H200, no network, well under 8 minutes: python scripts/gpu_check.py --out DIR

Writes byte260 shards of real text (the Python standard library's own source files, which every machine
with Python has), runs train_byte_model.py with the default 27.6M-parameter model for 100 steps at the
seed's per-GPU batch (TRAIN_BATCH_TOKENS=393216 on one GPU = 8 micro-steps of 12 x 4096 tokens) with
torch.compile, then its full end of run (held-out weight choice, non-overlapping and sliding eval,
int6+zstd export, reload, re-eval), and prints:

  ms per micro-step, tokens/s, achieved TFLOP/s and MFU, peak memory, eval targets/s, the projected
  full-val sliding-eval time on 8 GPUs, and the int6+zstd round trip (artifact bytes, BPB before/after).

FLOPs per trained token (stated so the MFU can be checked): 6 * (matrix parameters in the blocks and the
bigram projection + the tied head's d_model * vocab) + 6 * layers * seq_len * d_model for causal
attention (QK^T and AV, each 2 * T * d per token forward at full length, halved for the causal mask, times
3 for forward + backward; PaLM appendix B counts 12 * L * T * d without the causal halving).
MFU is against 989 TFLOP/s, the H100/H200 SXM dense bf16 peak on NVIDIA's datasheet.
`--smoke` runs a tiny model on the CPU to check this script itself.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from convert_to_bytes import write_shard  # noqa: E402  (numpy only: fine on a bare GPU image)
PEAK_BF16_TFLOPS = 989.0
FULL_VAL_BYTE_IDS = 151.6e6  # sp1024 val: 62,021,846 tokens x ~2.443 bytes/token (public baseline logs), + 50k BOS
MICRO_STEPS = 8  # one GPU: gradient accumulation 8 // WORLD_SIZE

CHECK_KNOBS = {"ITERATIONS": "100", "WARMUP_STEPS": "2", "WARMDOWN_ITERS": "30", "MAX_WALLCLOCK_SECONDS": "0",
               "TRAIN_LOG_EVERY": "10", "VAL_LOSS_EVERY": "0", "SWA_EVERY": "10", "USE_COMPILE": "1",
               "TRAIN_BATCH_TOKENS": "393216", "TRAIN_SEQ_LEN": "4096", "VAL_SLIDING_STRIDE": "512",
               "EVAL_BATCH_SEQS": "32", "HELDOUT_TOKENS": "1048576"}
SMOKE_KNOBS = {**CHECK_KNOBS, "ITERATIONS": "4", "WARMDOWN_ITERS": "2", "USE_COMPILE": "0", "MODEL_DIM": "64",
               "NUM_LAYERS": "2", "TRAIN_BATCH_TOKENS": "8192", "TRAIN_SEQ_LEN": "256", "VAL_SLIDING_STRIDE": "64",
               "EVAL_BATCH_SEQS": "8", "HELDOUT_TOKENS": "4096", "TRAIN_LOG_EVERY": "1"}


def stdlib_byte_stream(total: int) -> np.ndarray:
    """byte260 ids of the standard library's .py files, BOS before each file, tiled up to `total` ids."""
    parts, size = [], 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        data = np.frombuffer(path.read_bytes(), np.uint8).astype(np.uint16) + 4
        parts += [np.array([1], np.uint16), data]
        size += data.size + 1
        if size >= total:
            break
    stream = np.concatenate(parts)
    return np.tile(stream, -(-total // stream.size))[:total]


def make_data(root: Path, train_ids: int, val_ids: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    stream = stdlib_byte_stream(train_ids + val_ids)
    write_shard(root / "fineweb_val_000000.bin", stream[:val_ids])
    half = val_ids + train_ids // 2
    write_shard(root / "fineweb_train_000000.bin", stream[val_ids:half])
    write_shard(root / "fineweb_train_000001.bin", stream[half:])
    (root / "conversion.json").write_text(json.dumps({"layout": "byte260", "vocab_size": 260}))


def training_flops_per_token(knobs: dict) -> tuple[float, int]:
    """(FLOPs per trained token by the formula above, matrix parameters) of the model these knobs build."""
    import train_byte_model as tbm

    args = tbm.Hyperparameters(knobs)
    model = tbm.ByteGPT(tbm.ModelConfig.from_hparams(args, 260))
    matrices = sum(m.weight.numel() for m in model.modules() if isinstance(m, tbm.CastedLinear))
    attention = 6 * len(args.block_pattern) * args.train_seq_len * args.model_dim
    return 6 * (matrices + args.model_dim * 260) + attention, matrices


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("gpu_check_out"))
    p.add_argument("--data", type=Path, default=Path("/tmp/gpu_check_data"), help="where the synthetic shards go")
    p.add_argument("--smoke", action="store_true", help="tiny CPU run that checks this script")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    knobs = SMOKE_KNOBS if a.smoke else CHECK_KNOBS
    data = a.data
    make_data(data, train_ids=2_000_000 if a.smoke else 60_000_000, val_ids=50_000 if a.smoke else 2_000_000)
    env = {**os.environ, **knobs, "DATA_PATH": str(data), "LOG_DIR": str(a.out), "RUN_ID": "gpu_check"}
    proc = subprocess.run([sys.executable, str(REPO / "train_byte_model.py")], env=env, cwd=REPO)
    log = (a.out / "gpu_check.txt").read_text().split("=" * 100 + "\n")[-1].splitlines()
    if proc.returncode != 0 or not log or not log[-1].startswith("final_summary:"):
        sys.exit(f"trainer failed with exit {proc.returncode}; see {a.out / 'gpu_check.txt'}")
    s = json.loads(log[-1].removeprefix("final_summary:"))
    params = int(next(line for line in log if line.startswith("model_params:")).split(":")[1])
    memory = next((line for line in log if line.startswith("peak memory")), "peak memory n/a (CPU)")
    micro_ms = s["step_avg_ms"] / MICRO_STEPS
    tokens_per_s = int(knobs["TRAIN_BATCH_TOKENS"]) / (s["step_avg_ms"] / 1000)
    flops, matrices = training_flops_per_token(knobs)
    tflops = flops * tokens_per_s / 1e12
    post, pre = s["post_quant"], s["pre_quant"]
    sliding_rate = post["sliding_scored_targets"] / (post["sliding_eval_ms"] / 1000)
    plain_rate = post["val_targets"] / (post["eval_ms"] / 1000)
    rows = [
        ("device", f"{s['device_name']} (world size {s['world_size']})"),
        ("steps timed", f"{s['steps']} (after {knobs['WARMUP_STEPS']} compile warmup steps)"),
        ("parameters (matrices)", f"{params:,} ({matrices:,}); {flops / 1e6:.0f} MFLOP per trained token"),
        ("ms per micro-step", f"{micro_ms:.1f}"),
        ("ms per step (8 micro-steps)", f"{s['step_avg_ms']:.1f}"),
        ("training tokens/s", f"{tokens_per_s:,.0f}"),
        ("achieved TFLOP/s (formula above)", f"{tflops:.1f}"),
        ("MFU vs 989 TFLOP/s bf16 dense", f"{100 * tflops / PEAK_BF16_TFLOPS:.1f}%"),
        ("peak memory", memory.removeprefix("peak memory ")),
        ("non-overlapping eval targets/s", f"{plain_rate:,.0f}"),
        ("sliding eval targets/s (stride 512, context 4096)", f"{sliding_rate:,.0f}"),
        ("projected full-val sliding eval on 8 GPUs", f"{FULL_VAL_BYTE_IDS / (8 * sliding_rate):.0f} s for {FULL_VAL_BYTE_IDS / 1e6:.1f}M targets"),
        ("int6+zstd artifact bytes", f"{s['artifact_bytes']:,} ({8 * s['artifact_bytes'] / params:.2f} bits per parameter)"),
        ("val BPB pre -> post quant (non-overlap)", f"{pre['val_bpb']:.4f} -> {post['val_bpb']:.4f}"),
        ("val BPB pre -> post quant (sliding)", f"{pre['sliding_val_bpb']:.4f} -> {post['sliding_val_bpb']:.4f}"),
        ("sliding targets scored / expected", f"{post['sliding_scored_targets']:,} / {post['sliding_targets']:,}"),
    ]
    table = "| measure | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
    print("\n" + table)
    (a.out / "gpu_check_table.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
