#!/usr/bin/env python3
"""Per-layer cost of the sequence mixers: python scripts/gpu_layers.py [--device cuda|cpu] [--seq 4096] [--batch 12]

Times forward + backward of one Block per BLOCK_PATTERN letter (A attention, S Mamba2-style SSM, G gated
linear attention) at the seed's width (MODEL_DIM 512, 8 heads, MLP hidden 1024) on its per-GPU micro-batch
(393,216 tokens / 8 GPUs = 12 sequences of 4096), eager and under torch.compile(fullgraph=True), after
warmup; CUDA events on a GPU (bf16 autocast), perf_counter on CPU (fp32). Prints ms per layer and the
ratios S/A and G/A. CPU smoke test: python scripts/gpu_layers.py --device cpu --seq 256 --batch 2
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import train_byte_model as tbm  # noqa: E402
from research_options import MIXERS  # noqa: E402


def time_layer(block: torch.nn.Module, x: torch.Tensor, autocast, warmup: int, iters: int) -> tuple[float, float]:
    """(ms of the first call, which includes any compilation; mean ms per forward + backward after warmup)."""
    grad = torch.randn_like(x)

    def step() -> None:
        with autocast():
            y = block(x, x)
        y.backward(grad)

    cuda = x.is_cuda
    started = time.perf_counter()
    step()
    if cuda:
        torch.cuda.synchronize()
    first_ms = 1000 * (time.perf_counter() - started)
    for _ in range(warmup):
        step()
    if cuda:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            step()
        end.record()
        torch.cuda.synchronize()
        return first_ms, start.elapsed_time(end) / iters
    started = time.perf_counter()
    for _ in range(iters):
        step()
    return first_ms, 1000 * (time.perf_counter() - started) / iters


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seq", type=int, default=4096)
    p.add_argument("--batch", type=int, default=12)
    p.add_argument("--letters", default="ASG")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--no-compile", action="store_true", help="eager only")
    a = p.parse_args()
    device = torch.device(a.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda)  # noqa: E731
    cfg = tbm.model_config(tbm.Hyperparameters({}), 256)
    kernel = tbm.choose_attention(tbm.Runtime(0, 1, device, bf16=cuda, compile=not a.no_compile))
    print(f"device {torch.cuda.get_device_name(device) if cuda else 'cpu'}  torch {torch.__version__}  "
          f"{'bf16 autocast' if cuda else 'fp32'}  batch {a.batch} x seq {a.seq} x dim {cfg.model_dim}, "
          f"{cfg.num_heads} heads, MLP {cfg.mlp_hidden}, SCAN_CHUNK {cfg.scan_chunk}\nA {kernel}")
    modes = ["eager"] + ([] if a.no_compile else ["compiled"])
    results: dict[tuple[str, str], float] = {}
    for letter in a.letters:
        for mode in modes:
            torch.manual_seed(0)
            block = tbm.Block(cfg, 0, MIXERS[letter](cfg, 0)).to(device)
            layer = torch.compile(block, dynamic=False, fullgraph=True) if mode == "compiled" else block
            x = torch.randn(a.batch, a.seq, cfg.model_dim, device=device, requires_grad=True)
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            first_ms, ms = time_layer(layer, x, autocast, a.warmup, a.iters)
            results[letter, mode] = ms
            memory = f"  peak {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB" if cuda else ""
            print(f"{letter} {mode:>8}: {ms:9.2f} ms/layer fwd+bwd  (first call {first_ms / 1000:.1f} s){memory}", flush=True)
            del layer, block, x
            if cuda:
                torch.cuda.empty_cache()
    if "A" in a.letters:
        for mode in modes:
            ratios = "  ".join(f"{letter}/A {results[letter, mode] / results['A', mode]:.2f}x" for letter in a.letters if letter != "A")
            print(f"{mode:>8}: {ratios}")


if __name__ == "__main__":
    main()
