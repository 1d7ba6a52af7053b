"""What a record run never does, for train_byte_model.py: resumable checkpoints (CHECKPOINT_EVERY, RESUME)
and token mode (sp1024 shards scored with the baseline's byte formula, for side-by-side studies). The
trainer imports this module only when one of those knobs is set, and then counts its bytes too.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import torch

from train_byte_model import Progress, RunError, require

# -----------------------------
# CHECKPOINTS
# -----------------------------
# Everything that makes a resumed run continue bit for bit: model, optimizers, EMA/SWA, loader position,
# RNG states, elapsed training time. Loading runs no code from the file (weights_only).


def save_checkpoint(path: Path, progress: Progress, trainer, averages) -> None:
    state = {"progress": dataclasses.asdict(progress), "config": dataclasses.asdict(trainer.model.cfg),
             "model": trainer.model.state_dict(), "optimizers": [o.state_dict() for o in trainer.optimizers],
             "averages": averages.state_dict(), "loader": trainer.loader.state(), "rng_cpu": torch.get_rng_state(),
             "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, device: torch.device, trainer, averages) -> Progress:
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:
        raise RunError(f"RESUME {path}: not a readable checkpoint ({type(exc).__name__})") from None
    require(state["config"] == dataclasses.asdict(trainer.model.cfg),
            f"RESUME {path}: checkpoint is for another model config {state['config']}")
    trainer.model.load_state_dict(state["model"])
    for opt, saved in zip(trainer.optimizers, state["optimizers"]):
        opt.load_state_dict(saved)
    averages.load_state_dict(state["averages"])
    trainer.loader.load_state(state["loader"])
    torch.set_rng_state(state["rng_cpu"].cpu())
    if state["rng_cuda"]:
        torch.cuda.set_rng_state_all([s.cpu() for s in state["rng_cuda"]])
    return Progress(**state["progress"])


# -----------------------------
# TOKEN MODE
# -----------------------------

def load_tokenizer(path: str):
    import sentencepiece as spm

    require(bool(path) and Path(path).is_file(), f"TOKENIZER_PATH {path!r}: no such SentencePiece model")
    return spm.SentencePieceProcessor(model_file=path)


def token_byte_tables(tokenizer_path: str, vocab_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The baseline train_gpt.py byte count per target token: base[target] + (leading_space[target] and
    not boundary[previous]); control, unknown and unused pieces count 0 bytes and are boundaries."""
    sp = load_tokenizer(tokenizer_path)
    base, space, boundary = np.zeros(vocab_size, np.int64), np.zeros(vocab_size, bool), np.ones(vocab_size, bool)
    for i in range(vocab_size):
        if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):
            continue
        boundary[i] = False
        piece = sp.id_to_piece(i)
        space[i] = piece.startswith("\u2581")
        base[i] = 1 if sp.is_byte(i) else len(piece.removeprefix("\u2581").encode("utf-8"))
    return base, space, boundary
