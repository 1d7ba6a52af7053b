#!/usr/bin/env python3
"""How far GPTQ moved each stored matrix from rounding to nearest: python scripts/gptq_moved.py LOG_DIR RUN_ID

Reads a finished run's LOG_DIR/RUN_ID.final.pt (the weights it exported) and LOG_DIR/RUN_ID.int6.ptz (the artifact)
and prints, per int6 matrix, the share of entries that differ from round-to-nearest of the weights at the same row
steps. A matrix whose Hessian GPTQ never saw stays at round-to-nearest (0 %), as q/k/v did before issue 17.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import train_byte_model as tbm  # noqa: E402


def main() -> None:
    log_dir, run_id = Path(sys.argv[1]), sys.argv[2]
    final = torch.load(log_dir / f"{run_id}.final.pt", map_location="cpu", weights_only=True)["model"]
    header, state = tbm.decode_artifact(log_dir / f"{run_id}.int6.ptz")
    print("| matrix | entries moved from round-to-nearest |\n|---|---:|")
    for entry in header["tensors"]:
        if entry["storage"] == "int6":
            w = final[entry["name"]].float()
            scale = tbm.row_scales(w, tbm.QUANT_LEVELS["int6"], header["export"]["quant_clip"])
            nearest = tbm.round_rows(w, scale, tbm.QUANT_LEVELS["int6"]) * scale
            print(f"| {entry['name']} | {100 * (state[entry['name']] != nearest).float().mean().item():.1f} % |")


if __name__ == "__main__":
    main()
