#!/usr/bin/env python3
"""What each recipe should cost on 8xH100, projected (no GPU needed): python scripts/project_recipes.py [--recipes ...]

For each recipe at its full shape: parameters, training FLOPs per token, the projected step time and steps in
600 s, and the projected artifact under SIZE_CAP (the trainer's own start-up projection, with the clip its cap fit
would probably choose). Stated assumptions:

- FLOPs per trained token = 6 x (the matrix parameters each token passes through: every block's matrices once per
  virtual layer, so a recurrent span counts 1 + NUM_LOOPS times once it is on; the bigram projection; the tied
  head; the chunk-JEPA's matrices / JEPA_CHUNK_SIZE) + 6 x virtual layers x TRAIN_SEQ_LEN x MODEL_DIM for causal
  attention (scripts/gpu_check.py states the same formula).
- Step time is proportional to FLOPs per token, anchored at PR #832's 63 ms per step on 8xH100 for its stack (our
  frontier shape, its own log). Depth recurrence switches on at ENABLE_LOOPING_AT of the run, so its step time is
  the time-weighted mix of the two phases. Small parameters (gates, lane weights) and elementwise work are ignored.
- Steps in 600 s use the whole 600 s (the GPTQ and held-out reserve, a few seconds, is left out).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
import train_byte_model as tbm  # noqa: E402

PR832_STEP_MS, BUDGET_S = 63.0, 600.0


def flops_per_token(args: tbm.Hyperparameters, model: tbm.ByteGPT, looping: bool) -> float:
    layers = list(range(len(model.blocks)))
    if args.num_loops and looping:
        span = layers[args.loop_start: args.loop_end + 1]
        layers = layers[: args.loop_start] + span * (1 + args.num_loops) + layers[args.loop_end + 1:]
    block = lambda i: sum(m.weight.numel() for m in model.blocks[i].modules() if isinstance(m, tbm.CastedLinear))  # noqa: E731
    jepa = sum(m.weight.numel() for m in model.jepa.modules() if isinstance(m, tbm.CastedLinear)) if model.jepa else 0
    bigram = model.bigram.proj.weight.numel() if model.bigram is not None else 0
    per_token = sum(block(i) for i in layers) + bigram + model.tok_emb.weight.numel() + jepa / max(args.jepa_chunk_size, 1)
    return 6 * per_token + 6 * len(layers) * args.train_seq_len * args.model_dim


def project(recipe: str) -> dict:
    args = tbm.Hyperparameters({"RECIPE": recipe})
    model = tbm.build_model(tbm.model_config(args, 260))
    before, after = flops_per_token(args, model, False), flops_per_token(args, model, True)
    switch = args.enable_looping_at if args.num_loops else 0.0
    base = tbm.Hyperparameters({"RECIPE": "frontier"})
    reference = flops_per_token(base, tbm.build_model(tbm.model_config(base, 260)), True)
    step_ms = PR832_STEP_MS * (switch * before + (1 - switch) * after) / reference
    report = tbm.size_report(model, len((REPO / "train_byte_model.py").read_bytes()), args)
    projected = next(line for line in report if line.startswith("projected_total_bytes:"))
    fit = next((line.split("; ", 1)[1] for line in report if line.startswith("WARNING: the configured export")), "fits")
    return {"recipe": recipe, "params": sum(p.numel() for p in model.parameters()), "gflop": after / 1e9,
            "step_ms": step_ms, "steps": int(BUDGET_S * 1000 / step_ms),
            "bytes": int(projected.split(":")[1].split()[0]), "fit": fit}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipes", nargs="+", default=list(tbm.RECIPES), choices=list(tbm.RECIPES))
    a = p.parse_args()
    rows = [project(r) for r in a.recipes]
    print("| recipe | parameters | GFLOP per trained token (loop on) | projected ms/step on 8xH100 | steps in 600 s | "
          "projected total bytes at the configured clip | cap fit |\n|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['recipe']} | {r['params']:,} | {r['gflop']:.2f} | {r['step_ms']:.0f} | {r['steps']:,} | "
              f"{r['bytes']:,} | {r['fit']} |")


if __name__ == "__main__":
    main()
