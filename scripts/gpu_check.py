#!/usr/bin/env python3
"""GPU check, one H100/H200, no network, about 5 minutes: python scripts/gpu_check.py --out DIR [--work DIR]

Writes byte260 shards of real text (the Python standard library's own source files, which every machine
with Python has), runs train_byte_model.py with the default recipe (RECIPE=frontier) on one GPU for 50
timed steps at the full per-step batch (TRAIN_BATCH_TOKENS=393216 = 8 micro-steps of 12 x 4096 tokens)
with torch.compile, then its end of run (held-out weight choice, non-overlapping and sliding eval,
int6+zstd export, reload, re-eval; ALLOW_OVER_CAP=1, since 50 steps leave near-initial weights that
compress worse than trained ones), and prints a table built from the trainer's log:

  ms per step (steps 10..50, after compilation), tokens/s, achieved TFLOP/s and MFU, peak memory, eval
  targets/s, the projected full-val sliding-eval time on 8 GPUs, the projected 8xH100 step time and steps
  in 600 s, and the int6+zstd round trip.

The table needs only the training part of the log: a run that cannot export (no zstandard) or that
passes the --budget still prints it, then says why it stopped, and exits 1.

FLOPs per trained token (stated so the MFU can be checked): 6 * (matrix parameters of the blocks and
the bigram projection + the tied head's d_model * vocab + the chunk-JEPA matrices / JEPA_CHUNK_SIZE, as
they run once per chunk) + 6 * layers * seq_len * d_model for causal attention (QK^T and AV, each
2 * T * d per token forward at full length, halved for the causal mask, times 3 for forward + backward;
PaLM appendix B counts 12 * L * T * d without the causal halving). MFU is against 989 TFLOP/s, the
H100/H200 SXM dense bf16 peak on NVIDIA's datasheet.

Projected 8xH100 step: on 8 GPUs each rank runs 1 of the 8 micro-steps, so the projection is this GPU's
step / 8 plus a ring all-reduce of the fp32 gradients and of Muon's bf16 updates at an assumed
400 GB/s NVLink bus bandwidth. It is optimistic: the H200's HBM (4.8 TB/s) is faster than the H100's
(3.35 TB/s, same bf16 peak), the all-reduce is not overlapped with the backward, and every rank still
runs the optimizer's elementwise work for all matrices. PR #832 ran this model class at 63 ms per step.
`--smoke` runs a tiny model on the CPU through the same code, to check this script.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from convert_to_bytes import write_shard  # noqa: E402  (numpy only: fine on a bare GPU image)
PEAK_BF16_TFLOPS = 989.0
NVLINK_BUS_GB_PER_S = 400.0
PR832_STEP_MS = 63.0
FULL_VAL_BYTE_IDS = 151.6e6  # sp1024 val: 62,021,846 tokens x ~2.443 bytes/token (public baseline logs), + 50k BOS
MICRO_STEPS = 8  # one GPU: gradient accumulation 8 // WORLD_SIZE
RUN_ID = "gpu_check"

# CODEC=zstd: one wheel to carry to a bare CUDA image, not three (auto wants brotli, constriction). CAP_FIT=0: 50 steps
# leave near-initial weights over the cap at the max clip, and one GPU would try a round's 8 settings in turn (minutes
# of zstd); scripts/bench_cap_fit.py projects the fit's 8xH100 time.
CHECK_KNOBS = {"ITERATIONS": "50", "WARMUP_STEPS": "3", "WARMDOWN_ITERS": "20", "MAX_WALLCLOCK_SECONDS": "0",
               "TRAIN_LOG_EVERY": "10", "USE_COMPILE": "1", "ALLOW_OVER_CAP": "1", "CODEC": "zstd", "CAP_FIT": "0"}
SMOKE_KNOBS = {**CHECK_KNOBS, "ITERATIONS": "4", "WARMUP_STEPS": "1", "WARMDOWN_ITERS": "2", "USE_COMPILE": "0",
               "MODEL_DIM": "64", "NUM_LAYERS": "2", "NUM_HEADS": "4", "NUM_KV_HEADS": "2", "TRAIN_BATCH_TOKENS": "8192",
               "TRAIN_SEQ_LEN": "256", "VAL_SLIDING_STRIDE": "64", "EVAL_BATCH_SEQS": "8", "HELDOUT_TOKENS": "4096",
               "TRAIN_LOG_EVERY": "1", "JEPA_LATENT_DIM": "32"}


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


def model_figures(knobs: dict) -> tuple[float, int, int]:
    """(FLOPs per trained token by the formula above, matrix parameters, all parameters) of the model
    these knobs build."""
    import train_byte_model as tbm

    args = tbm.Hyperparameters(knobs)
    model = tbm.build_model(tbm.model_config(args, 260))
    jepa = {id(m) for m in model.jepa.modules()} if model.jepa is not None else set()
    linears = [m for m in model.modules() if isinstance(m, tbm.CastedLinear)]
    matrices = sum(m.weight.numel() for m in linears)
    jepa_matrices = sum(m.weight.numel() for m in linears if id(m) in jepa)
    per_token = matrices - jepa_matrices + jepa_matrices / max(args.jepa_chunk_size, 1)
    attention = 6 * len(args.block_pattern) * args.train_seq_len * args.model_dim
    return 6 * (per_token + args.model_dim * 260) + attention, matrices, sum(p.numel() for p in model.parameters())


def parse_log(text: str) -> dict:
    """What the table needs from a trainer log, complete or not."""
    steps = re.finditer(r"^step:(\d+)/\d+ train_loss:\S+ train_time:([\d.]+)ms", text, re.M)
    found = {"steps": {int(m[1]): float(m[2]) for m in steps}}
    patterns = {"versions": r"^versions: (.*)$", "kernel": r"^attention_kernel:(.*)$", "memory": r"^peak memory (.*)$",
                "val_tokens": r"^data:.* val_tokens:(\d+)", "plain_ms": r"^pre_quant val_loss:.* eval_time:(\d+)ms",
                "sliding": r"^pre_quant_sliding .* scored_targets:(\d+) .* eval_time:(\d+)ms",
                "summary": r"^final_summary:(.*)$"}
    for key, pattern in patterns.items():
        match = re.findall(pattern, text, re.M)
        found[key] = match[-1] if match else None
    found["summary"] = json.loads(found["summary"]) if found["summary"] else None
    return found


def step_ms(steps: dict[int, float]) -> tuple[float, int, int]:
    """(ms per step, first, last step) over the logged steps after the first fifth, whose first steps
    still pay for compilation and allocator warm-up."""
    last = max(steps)
    first = max((s for s in steps if s <= last // 5), default=0)
    return (steps[last] - steps.get(first, 0.0)) / (last - first), first, last


def table_rows(found: dict, knobs: dict) -> list[tuple[str, str]]:
    ms, first, last = step_ms(found["steps"])
    flops, matrices, params = model_figures(knobs)
    tokens_per_s = int(knobs.get("TRAIN_BATCH_TOKENS", 393216)) / (ms / 1000)
    tflops = flops * tokens_per_s / 1e12
    allreduce_ms = (2 * 7 / 8) * (4 * params + 2 * matrices) / (NVLINK_BUS_GB_PER_S * 1e9) * 1000
    projected = ms / MICRO_STEPS + allreduce_ms
    rows = [("versions", found["versions"] or "n/a"), ("attention kernel", found["kernel"] or "n/a"),
            ("steps timed", f"{first + 1}..{last} (after {knobs['WARMUP_STEPS']} warmup steps that compile)"),
            ("parameters (matrices)", f"{params:,} ({matrices:,}); {flops / 1e6:.0f} MFLOP per trained token"),
            ("ms per step (8 micro-steps)", f"{ms:.1f} ({ms / MICRO_STEPS:.1f} per micro-step)"),
            ("training tokens/s", f"{tokens_per_s:,.0f}"),
            ("achieved TFLOP/s (formula above)", f"{tflops:.1f}"),
            ("MFU vs 989 TFLOP/s bf16 dense", f"{100 * tflops / PEAK_BF16_TFLOPS:.1f}%"),
            ("peak memory", found["memory"] or "n/a (CPU)"),
            ("projected 8xH100 ms per step (step / 8 + all-reduce)",
             f"{projected:.1f} = {ms / MICRO_STEPS:.1f} + {allreduce_ms:.2f} (PR #832: {PR832_STEP_MS:.0f})"),
            ("projected steps in 600 s on 8xH100",
             f"{600_000 / projected:,.0f} (PR #832: {600_000 / PR832_STEP_MS:,.0f})")]
    if found["plain_ms"] and found["sliding"] and found["val_tokens"]:
        sliding_rate = int(found["sliding"][0]) / (int(found["sliding"][1]) / 1000)
        plain_rate = (int(found["val_tokens"]) - 1) / (int(found["plain_ms"]) / 1000)
        rows += [("non-overlapping eval targets/s", f"{plain_rate:,.0f}"),
                 (f"sliding eval targets/s (stride {knobs.get('VAL_SLIDING_STRIDE', 512)})", f"{sliding_rate:,.0f}"),
                 ("projected full-val sliding eval on 8 GPUs",
                  f"{FULL_VAL_BYTE_IDS / (8 * sliding_rate):.0f} s for {FULL_VAL_BYTE_IDS / 1e6:.1f}M targets")]
    if found["summary"]:
        s = found["summary"]
        pre, post = s["pre_quant"], s["post_quant"]
        bits = 8 * s["artifact_bytes"] / params
        rows += [("int6+zstd artifact bytes", f"{s['artifact_bytes']:,} ({bits:.2f} bits per parameter)"),
                 ("val BPB pre -> post quant (non-overlap)", f"{pre['val_bpb']:.4f} -> {post['val_bpb']:.4f}"),
                 ("val BPB pre -> post quant (sliding)",
                  f"{pre['sliding_val_bpb']:.4f} -> {post['sliding_val_bpb']:.4f}")]
    return rows


def run_trainer(knobs: dict, data: Path, work: Path, budget: float) -> str:
    """Runs the trainer with its files in `work`; '' when its log ends in final_summary, else why not."""
    env = {**os.environ, **knobs, "DATA_PATH": str(data), "LOG_DIR": str(work), "RUN_ID": RUN_ID}
    try:
        code = subprocess.run([sys.executable, str(REPO / "train_byte_model.py")], env=env, cwd=REPO,
                              timeout=budget).returncode
    except subprocess.TimeoutExpired:
        return f"the trainer was stopped at the check's budget of {budget:.0f} s"
    log = work / f"{RUN_ID}.txt"
    last = log.read_text().rstrip("\n").rsplit("\n", 1)[-1] if log.is_file() else ""
    return "" if last.startswith("final_summary:") else f"the trainer exited {code}; its log ends: {last[:300]!r}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("gpu_check_out"), help="the table and the log (small files only)")
    p.add_argument("--work", type=Path, default=Path("/tmp/gpu_check_work"),
                   help="the shards, the weights (~98 MB) and the artifact")
    p.add_argument("--budget", type=float, default=280.0, help="seconds the trainer may run (the table comes after)")
    p.add_argument("--smoke", action="store_true", help="tiny CPU run that checks this script")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    knobs = SMOKE_KNOBS if a.smoke else CHECK_KNOBS
    print(f"python {sys.version.split()[0]} ({sys.executable})", flush=True)
    make_data(a.work / "data", train_ids=2_000_000 if a.smoke else 24_000_000, val_ids=50_000 if a.smoke else 1_000_000)
    failure = run_trainer(knobs, a.work / "data", a.work, a.budget)
    log = a.work / f"{RUN_ID}.txt"
    if log.is_file():
        shutil.copy(log, a.out / log.name)
    found = parse_log(log.read_text() if log.is_file() else "")
    if found["steps"]:
        table = "| measure | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in table_rows(found, knobs))
        print("\n" + table)
        (a.out / "gpu_check_table.md").write_text(table + "\n")
    if failure:
        print(f"gpu_check: {failure}" + ("" if found["steps"] else " (no training step logged: no table)"))
    return 1 if failure else 0


if __name__ == "__main__":
    sys.exit(main())
