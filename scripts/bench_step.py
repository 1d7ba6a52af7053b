#!/usr/bin/env python3
"""One training step, this tree against a git revision, in one run: python scripts/bench_step.py [--base main]

Loads train_byte_model.py from the working tree and from `git show BASE:train_byte_model.py`, builds the
same small frontier-recipe model (same seed) with each, and runs the same batches of standard-library
text through forward, backward and every optimizer (Muon included), in fp32 and under bf16 autocast.
Prints both versions' losses step by step (fp32: equal to float rounding; bf16: to bf16 rounding), then
a torch.profiler summary of the profiled steps of each: CPU milliseconds per step, operator calls per
step, and the operators with the most self CPU time. On a CPU this shows equivalence and where the
operator calls go; it says nothing about GPU step time, which needs scripts/gpu_check.sh.
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
from gpu_check import stdlib_byte_stream  # noqa: E402

MODEL = {"MODEL_DIM": "128", "NUM_LAYERS": "4", "NUM_HEADS": "4", "NUM_KV_HEADS": "2", "ROPE_DIMS": "16",
         "MLP_HIDDEN": "256", "JEPA_LATENT_DIM": "64", "BIGRAM_HASH_BUCKETS": "512", "XSA_LAST_N": "2"}


def load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def train_steps(tbm, batches: list[torch.Tensor], bf16: bool, profiled: int) -> tuple[list[float], object]:
    """Losses of one optimizer step per batch, and the profile of the last `profiled` steps."""
    args = tbm.Hyperparameters(MODEL)
    torch.manual_seed(0)
    config = getattr(tbm, "model_config", None) or tbm.ModelConfig.from_hparams  # revisions before 2026-12-06
    model = tbm.build_model(config(args, 260))
    optimizers, _ = tbm.build_optimizers(model, args)
    losses, prof = [], profile(activities=[ProfilerActivity.CPU])
    for i, ids in enumerate(batches):
        if i == len(batches) - profiled:
            prof.start()
        with record_function("phase:forward"), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            ce, aux = model(ids[:, :-1], ids[:, 1:])
        with record_function("phase:backward"):
            (ce + 0.001 * aux).backward()
        with record_function("phase:optimizers"):
            for opt in optimizers:
                opt.step()
                opt.zero_grad(set_to_none=True)
        losses.append(ce.item())
    prof.stop()
    return losses, prof


def summary(prof, steps: int, top: int) -> list[str]:
    events = prof.key_averages()
    calls = sum(e.count for e in events if e.key.startswith("aten::"))
    cpu_ms = sum(e.self_cpu_time_total for e in events) / 1000
    phases = ", ".join(f"{e.key[6:]} {e.cpu_time_total / 1000 / steps:.1f}" for e in events if e.key.startswith("phase:"))
    lines = [f"  {cpu_ms / steps:.1f} CPU ms per step ({phases}), {calls / steps:.0f} aten operator calls per step"]
    for e in sorted((e for e in events if e.key.startswith("aten::")), key=lambda e: -e.self_cpu_time_total)[:top]:
        lines.append(f"    {e.key:<40} {e.self_cpu_time_total / 1000 / steps:8.2f} ms {e.count / steps:6.0f} calls")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="main", help="git revision to compare with")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--profiled", type=int, default=3, help="last steps profiled")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--top", type=int, default=8)
    a = p.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        base_file = Path(tmp) / "train_byte_model_base.py"
        base_file.write_text(subprocess.run(["git", "-C", str(REPO), "show", f"{a.base}:train_byte_model.py"],
                                            capture_output=True, text=True, check=True).stdout)
        versions = {a.base: load_module(base_file, "tbm_base"),
                    "tree": load_module(REPO / "train_byte_model.py", "tbm_tree")}
    stream = torch.from_numpy(stdlib_byte_stream(a.steps * a.batch * (a.seq + 1)).astype("int64"))
    batches = list(stream.view(a.steps, a.batch, a.seq + 1))
    print(f"model {MODEL}, batch {a.batch} x {a.seq}, {a.steps} steps ({a.profiled} profiled), 1 CPU thread")
    for bf16 in (False, True):
        runs = {name: train_steps(tbm, batches, bf16, a.profiled) for name, tbm in versions.items()}
        (base_losses, base_prof), (tree_losses, tree_prof) = runs.values()
        print(f"\n{'bf16 autocast' if bf16 else 'fp32'}: loss per step, {a.base} vs tree")
        for i, (x, y) in enumerate(zip(base_losses, tree_losses)):
            print(f"  step {i + 1}: {x:.6f} {y:.6f}  diff {y - x:+.2e}")
        for name, (_, prof) in runs.items():
            print(f" profile, {name}:")
            print("\n".join(summary(prof, a.profiled, a.top)))


if __name__ == "__main__":
    main()
