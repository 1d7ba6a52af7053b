"""What a record run never does, for train_byte_model.py: other scripts' knob names, resumable checkpoints
(CHECKPOINT_EVERY, RESUME), scoring or exporting a saved model without training (EVAL_ONLY, EXPORT_ONLY),
per-target loss dumps (EVAL_DUMP) and token mode (sp1024 shards scored with the baseline's byte formula, for
side-by-side studies). The trainer imports this module only when one of those knobs is set, and then counts its
bytes too.
"""

from __future__ import annotations

import dataclasses
import io
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from train_byte_model import (KNOB_NAMES, ByteGPT, DataSpec, Hyperparameters, ModelConfig, Progress,
                              RunError, Runtime, Scorer, build_model, code_bytes, code_sha256, decode_artifact,
                              export_and_score, require, size_report, write_atomic)


# -----------------------------
# OTHER SCRIPTS' KNOB NAMES
# -----------------------------
# PR #832's README command, the official train_gpt.py, the token records after PR #832 (the trainer's
# OTHER_SCRIPTS_KNOBS lists these names; a run that uses one imports this module). An alias sets our knob (its knob:
# line names the alias); a switch (0/1) turns ours off, or on at the value given here; a refused name stops the run,
# naming ours. Their other names are ours already.
KNOB_ALIASES = {"MUON_WD": "MUON_WEIGHT_DECAY", "ADAM_WD": "ADAM_WEIGHT_DECAY", "BIGRAM_VOCAB_SIZE": "BIGRAM_HASH_BUCKETS",
                "BIGRAM_DIM": "BIGRAM_HASH_DIM", "EVAL_STRIDE": "VAL_SLIDING_STRIDE", "COMPILE_MODEL": "USE_COMPILE",
                "JEPA_PROJ_HIDDEN": "JEPA_LATENT_DIM", "SPARSE_ATTN_GATE_SCALE": "ATTN_GATE_SCALE"}
KNOB_SWITCHES = {"EMA_ENABLED": ("EMA_DECAY", 0.997), "SWA_ENABLED": ("SWA_EVERY", 50), "SKIP_GATES_ENABLED":
                 ("SKIP_GATES", 1), "SPARSE_ATTN_GATE_ENABLED": ("ATTN_GATE_SCALE", 1.0), "TIE_EMBEDDINGS": (None, 1)}
KNOB_REFUSED = {"VAL_BATCH_SIZE": "EVAL_BATCH_SEQS, windows per evaluation batch and rank",
                "EMBED_LR": "TIED_EMBED_LR, the embedding is tied", "HEAD_LR": "TIED_EMBED_LR, the embedding is tied",
                "EVAL_SEQ_LEN": "TRAIN_SEQ_LEN, also the evaluation context", "VAL_MAX_TOKENS": "VAL_SLIDING_MAX_TOKENS",
                "WARMDOWN_FRAC": "WARMDOWN_ITERS", "EMBED_WD": "ADAM_WEIGHT_DECAY", "TTT_ENABLED": "TTT_STEPS",
                "TTT_EPOCHS": "TTT_STEPS", "GPTQ_RESERVE_SECONDS": "GPTQ_CALIB_TOKENS, the reserve is measured",
                "QAT_ENABLED": "QUANT, GPTQ after training (no QAT)", "LATE_QAT_THRESHOLD": "QUANT (no QAT)"}

def own_names(env: dict[str, str]) -> tuple[dict[str, str], dict[str, str], dict[str, tuple], list[str]]:
    """(env with other scripts' names made ours, {our knob: the alias it came as}, {our knob: (its value if a switch
    turned it on and it is off, the switch)}, why each other name cannot be taken)."""
    ours, came_as, switched_on, refused = dict(env), {}, {}, []
    for name in sorted(key for key in env if key in KNOB_ALIASES or key in KNOB_SWITCHES or key in KNOB_REFUSED
                       or key.endswith("_ENABLED") and key not in KNOB_NAMES):
        knob, value = KNOB_SWITCHES[name][0] if name in KNOB_SWITCHES else KNOB_ALIASES.get(name), env[name]
        if name in KNOB_SWITCHES and value in ("1", "0" if knob else "1"):  # TIE_EMBEDDINGS=1: nothing to do
            if knob and value == "1":
                switched_on[knob] = (KNOB_SWITCHES[name][1], name)
            elif knob:
                ours[knob], came_as[knob] = "0", name
        elif name in KNOB_ALIASES and ours.get(knob, value) == value:
            ours[knob], came_as[knob] = value, name
        elif name in KNOB_ALIASES:
            refused.append(f"{name} ({name}={value!r} and {knob}={ours[knob]!r} disagree)")
        elif name in KNOB_SWITCHES:
            refused.append(f"{name} (this harness takes 1" + (f", or 0 for {knob}=0)" if knob else ": always tied)"))
        else:
            refused.append(f"{name} ({'here: ' + KNOB_REFUSED[name] if name in KNOB_REFUSED else 'no such switch'})")
    return ours, came_as, switched_on, refused


def check_knobs(args: Hyperparameters) -> None:
    """This module's knobs, checked at start-up with the trainer's (Hyperparameters.validate)."""
    require(not (args.eval_only and args.export_only), "EVAL_ONLY or EXPORT_ONLY, not both")


# -----------------------------
# CHECKPOINTS
# -----------------------------
# Everything that makes a resumed run continue bit for bit: model, optimizers, EMA/SWA, loader position,
# RNG states, elapsed training time. Loading runs no code from the file (weights_only).


def save_checkpoint(path: Path, progress: Progress, trainer, averages) -> None:
    state = {"progress": dataclasses.asdict(progress), "config": dataclasses.asdict(trainer.model.cfg),
             "model": trainer.model.state_dict(), "optimizers": [o.state_dict() for o in trainer.optimizers],
             "averages": {"ema": averages.ema, "swa_sum": averages.swa_sum, "swa_count": averages.swa_count},
             "loader": trainer.loader.state(), "rng_cpu": torch.get_rng_state(),
             "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomic(path, buffer.getvalue())


def checkpoint(trainer, progress: Progress, averages) -> None:
    """Rank 0 writes while the other ranks wait for it: every rank's clock stops for the save."""
    if trainer.rt.master:
        save_checkpoint(Path(trainer.args.log_dir) / f"{trainer.args.run_id}.ckpt", progress, trainer, averages)
    if trainer.rt.distributed:
        dist.barrier()


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
    saved_averages = state["averages"]
    for mine, saved in zip(averages.ema + averages.swa_sum, saved_averages["ema"] + saved_averages["swa_sum"]):
        mine.copy_(saved)
    averages.swa_count = saved_averages["swa_count"]
    trainer.loader.load_state(state["loader"])
    torch.set_rng_state(state["rng_cpu"].cpu())
    if state["rng_cuda"]:
        torch.cuda.set_rng_state_all([s.cpu() for s in state["rng_cuda"]])
    return Progress(**state["progress"])


# -----------------------------
# SAVED MODELS: EVAL_ONLY, EXPORT_ONLY
# -----------------------------

def model_from_state(path: Path, config: dict, state: dict[str, Tensor]) -> ByteGPT:
    try:
        model = build_model(ModelConfig(**config))
        model.load_state_dict(state, strict=True)
    except (TypeError, RuntimeError) as exc:
        raise RunError(f"{path}: does not fit its model config ({str(exc).splitlines()[0]})") from None
    return model


def load_artifact_model(path: Path) -> tuple[dict, ByteGPT]:
    header, state = decode_artifact(path)
    return header, model_from_state(path, header["config"], state)


def saved_model_scorer(args: Hyperparameters, rt: Runtime, spec: DataSpec, path: Path, kind: str, saved: dict,
                       model: ByteGPT) -> Scorer:
    """Checks the data, takes the saved context and stride unless set in the environment."""
    require(saved["layout"] == spec.layout and model.cfg.vocab_size == spec.vocab_size,
            f"{path}: {kind} is for {saved['layout']} (vocab {model.cfg.vocab_size}) but DATA_PATH holds "
            f"{spec.layout} (vocab {spec.vocab_size})")
    for knob, key in (("TRAIN_SEQ_LEN", "context"), ("VAL_SLIDING_STRIDE", "stride")):  # the run's own, unless set
        if args.source[knob] != "env" and key in saved["eval"]:
            setattr(args, knob.lower(), saved["eval"][key])
    rt.log(f"eval_context:{args.train_seq_len} ({args.source['TRAIN_SEQ_LEN']}) stride:{args.val_sliding_stride} "
           f"({args.source['VAL_SLIDING_STRIDE']}); {kind}'s: {saved['eval']}")
    scorer = Scorer(args, rt, spec)
    model.to(rt.device)
    rt.log("\n".join(size_report(model, code_bytes(), args)))
    return scorer


def eval_only(args: Hyperparameters, rt: Runtime, spec: DataSpec) -> dict:
    artifact = Path(args.eval_only)
    require(artifact.is_file(), f"EVAL_ONLY {artifact}: no such file")
    header, model = load_artifact_model(artifact)
    if header["code_sha256"] != code_sha256():
        rt.log("note: the artifact was written by a different train_byte_model.py (code_sha256 differs)")
    scorer = saved_model_scorer(args, rt, spec, artifact, "artifact", header, model)
    post_quant = scorer.final_report(model, scorer.hidden_fn(model))
    return {"eval_only": True, "post_quant": post_quant, "artifact": str(artifact), "coverage": scorer.coverage,
            "val_sha256": scorer.val_sha256}


def export_only(args: Hyperparameters, rt: Runtime, spec: DataSpec) -> dict:
    """Exports and scores a run's LOG_DIR/RUN_ID.final.pt, or the weights of a resumable checkpoint (.ckpt: its raw
    weights at that step, its layout and context taken from DATA_PATH and the knobs)."""
    path = Path(args.export_only)
    require(zipfile.is_zipfile(path), f"EXPORT_ONLY {path}: no such file, or not one that torch.save wrote")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)  # no code runs from the file
        config, state = saved["config"], saved["model"]
    except Exception as exc:  # whatever a malformed file makes the unpickler raise
        raise RunError(f"EXPORT_ONLY {path}: not a final-weights file or checkpoint ({type(exc).__name__})") from None
    if "progress" in saved:
        rt.log(f"export_only: {path} is a checkpoint at step {saved['progress']['step']}: its raw weights (no held-out "
               "choice of EMA/SWA); layout and context from DATA_PATH and the knobs")
        saved = {**saved, "layout": spec.layout, "eval": {}}
    model = model_from_state(path, config, state)
    scorer = saved_model_scorer(args, rt, spec, path, "checkpoint" if "progress" in saved else "weights", saved, model)
    hidden_fn = scorer.hidden_fn(model)
    pre_quant = scorer.report("pre_quant", model, hidden_fn)[0]
    return {"export_only": str(path), "pre_quant": pre_quant, **export_and_score(args, rt, spec, scorer, model, hidden_fn),
            "coverage": scorer.coverage, "val_sha256": scorer.val_sha256}


def gather_losses(losses: Tensor, rt: Runtime) -> np.ndarray | None:
    """Every rank's per-target losses in stream order, on rank 0 (None elsewhere)."""
    if not rt.distributed:
        return losses.cpu().numpy()
    sizes = [torch.zeros((), dtype=torch.int64, device=rt.device) for _ in range(rt.world_size)]
    dist.all_gather(sizes, torch.tensor(losses.numel(), device=rt.device))
    padded = [torch.zeros(int(max(sizes)), device=rt.device) for _ in range(rt.world_size)]
    dist.all_gather(padded, F.pad(losses, (0, int(max(sizes)) - losses.numel())))
    return torch.cat([p[: int(n)] for p, n in zip(padded, sizes)]).cpu().numpy() if rt.master else None


def dump_losses(path: str, rt: Runtime, losses: Tensor, method: str) -> None:
    """EVAL_DUMP: the final score's per-target losses (nats, float32, val order) as .npy, written by rank 0."""
    everything = gather_losses(losses, rt)
    if everything is not None:
        buffer = io.BytesIO()
        np.save(buffer, everything.astype(np.float32))
        write_atomic(Path(path), buffer.getvalue())
        rt.log(f"eval_dump:{path} targets:{everything.size} ({method})")


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
