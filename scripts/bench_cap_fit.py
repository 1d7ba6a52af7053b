#!/usr/bin/env python3
"""What the cap fit costs, CPU: python scripts/bench_cap_fit.py [--work DIR] [--size-cap BYTES] [--codecs auto zstd]

On the 8xH100 default shape (RECIPE=frontier, 24.6M parameters, briefly trained on the demo data by
scripts/bench_export.py --frontier's recipe: a size check, its weights say nothing about BPB), with the trainer's own
functions: the GPTQ calibration once, then one setting of the ladder (QUANT_CLIP=std:12.85) timed in its parts: GPTQ
(quantize_state), each codec of --codecs (pack_artifact), and a fit try's compression (each group with the codec the
first of --codecs chose for it, as cap_fit's tries do); then the fit itself (cap_fit.fit on one process).
Prints a markdown table and the projection to 8xH100 (stated there: the codecs run on one CPU core per rank, GPTQ
on the GPU).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))
import cap_fit  # noqa: E402
import run_modes  # noqa: E402
import train_byte_model as tbm  # noqa: E402
from bench_export import FRONTIER_KNOBS, frontier_data, train_once  # noqa: E402
from demo_data import build_demo_data  # noqa: E402

# GPTQ on an H100, per try: its column loop is bound by kernel launches, not FLOPs. Each quantized column costs
# about 6 small kernels of ~8 us; the block updates are matmuls at a conservative 20 TFLOP/s (fp32, no TF32).
LAUNCH_US, KERNELS_PER_COLUMN, GPU_FP32_TFLOPS = 8.0, 6, 20.0


def gpu_gptq_seconds(model: torch.nn.Module, block: int) -> float:
    columns = flops = 0
    for name, t in model.state_dict().items():
        if tbm.storage_for(name, t) != "fp16":
            rows, cols = t.shape
            columns += cols
            flops += 2 * rows * cols * cols / 2 + 2 * rows * cols * block  # lazy block updates + in-block updates
    return columns * KERNELS_PER_COLUMN * LAUNCH_US / 1e6 + flops / (GPU_FP32_TFLOPS * 1e12)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=REPO / "data" / "bench_export")
    p.add_argument("--size-cap", type=int, default=tbm.SIZE_CAP_BYTES)
    p.add_argument("--codecs", nargs="+", default=["auto", "zstd"], help="CODECs to time; the first is the fit's")
    p.add_argument("--no-fit", action="store_true", help="time one try only")
    a = p.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    data = frontier_data(build_demo_data(REPO / "data" / "demo"), a.work)
    final = train_once(FRONTIER_KNOBS, data, a.work, "frontier_model")
    saved = torch.load(final, map_location="cpu", weights_only=True)
    model = run_modes.model_from_state(final, saved["config"], saved["model"])
    base = tbm.Hyperparameters({**FRONTIER_KNOBS, "DATA_PATH": str(data), "SIZE_CAP": str(a.size_cap)})
    rt = tbm.Runtime(0, 1, torch.device("cpu"), bf16=False, compile=False)
    started = time.perf_counter()
    hessians = tbm.calibrate(base, rt, tbm.resolve_data(base), model, tbm.calibration_rounds(base))
    calibration_s = time.perf_counter() - started
    pack = lambda quantized, args, codecs=None: tbm.pack_artifact(  # noqa: E731
        quantized, model.cfg, "byte260", "bench", None, args, codecs)
    trial = tbm.Hyperparameters({**FRONTIER_KNOBS, "QUANT_CLIP": "std:12.85"})
    started = time.perf_counter()
    quantized = tbm.quantize_state(model.state_dict(), trial, hessians)
    gptq_s = time.perf_counter() - started
    rows = [("GPTQ calibration (once per export)", f"{calibration_s:.1f} s"),
            ("GPTQ of every int matrix, one try (quantize_state)", f"{gptq_s:.1f} s"),
            ("the same on an H100, estimated (see the script)", f"{gpu_gptq_seconds(model, trial.gptq_block):.1f} s")]
    codec_s = {}
    for codec in a.codecs:
        trial.codec = codec
        started = time.perf_counter()
        blob = pack(quantized, trial)
        codec_s[codec] = time.perf_counter() - started
        rows.append((f"CODEC={codec}: compress (pack_artifact)", f"{codec_s[codec]:.1f} s, {len(blob):,} bytes"))
    trial.codec = a.codecs[0]
    winners = cap_fit.configured_codecs(rt, pack(quantized, trial))  # what a fit's tries use
    started = time.perf_counter()
    size = len(pack(quantized, trial, winners))
    try_s = time.perf_counter() - started
    rows.append((f"a fit try's compression (each group with CODEC={a.codecs[0]}'s choice: {winners})",
                 f"{try_s:.1f} s, {size:,} bytes"))
    gpu_s = gpu_gptq_seconds(model, trial.gptq_block)
    rows.append(("projected 8xH100 fit, 2 rounds of 8 tries (one per rank)",
                 f"{2 * (gpu_s + try_s):.0f} s = 2 x ({gpu_s:.1f} s GPTQ + {try_s:.1f} s compression on one core)"))
    if not a.no_fit:
        configured = pack(tbm.quantize_state(model.state_dict(), base, hessians), base)
        started = time.perf_counter()
        _, report = cap_fit.fit(base, rt, model, hessians, pack, configured, len(configured) + tbm.code_bytes())
        chosen = next(t for t in report["tries"] if t["setting"] == report["chosen"])
        rows.append((f"cap_fit.fit on this CPU at SIZE_CAP {a.size_cap:,} (configured {len(configured):,} bytes)",
                     f"{time.perf_counter() - started:.0f} s, {len(report['tries'])} tries in {report['rounds']} rounds, "
                     f"chose {report['chosen']}: {chosen['artifact_bytes']:,} bytes + {report['code_bytes']:,} code"))
        rows += [(f"  try: {t['setting']}", f"{t['artifact_bytes']:,} bytes, fits {t['fits']}, error {t['error']:.4g}, "
                  f"{t['ms'] / 1000:.1f} s") for t in report["tries"]]
    print(f"Cap fit cost, {time.strftime('%Y-%m-%d')}: {os.cpu_count()} CPU cores, torch {torch.__version__}, "
          f"{sum(p.numel() for p in model.parameters()):,} parameters (RECIPE=frontier shape, briefly trained); "
          f"command: python scripts/bench_cap_fit.py {' '.join(sys.argv[1:])}".rstrip() + "\n")
    print("| measure | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows))


if __name__ == "__main__":
    main()
