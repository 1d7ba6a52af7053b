"""
Byte-level (tokenizer-free) language model for OpenAI's Parameter Golf, in one file.

Byte shards in, a 16,000,000-byte artifact and an exact bits-per-byte score on all of val out:
data loader, byte transformer, Muon + Adam under torchrun (or one CPU process), exact sliding-window
evaluation, int6 artifact. Knobs are environment variables; RECIPE picks a published configuration.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import dataclasses
import difflib
import hashlib
import importlib
import io
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
import types
import uuid
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel as DDP

try:  # FlashAttention 3 (Hopper) when installed; SDPA otherwise.
    from flash_attn_interface import flash_attn_func as fa3_attention
except ImportError:
    fa3_attention = None

SIZE_CAP_BYTES = 16_000_000  # the challenge's cap: decimal bytes, code + compressed model
SHARD_MAGIC, SHARD_VERSION, SHARD_HEADER_INTS = 20240520, 1, 256
BYTE260_FIRST_BYTE_ID, BOS_ID = 4, 1  # byte260: id = byte + 4; 0 pad, 1 BOS, 2 EOS, 3 UNK; sp1024 BOS is 1 too
# A packed record script (submission.py --pack) runs this source with PACKED_SOURCES = {file name: source}.
PACKED_SOURCES = globals().get("PACKED_SOURCES", {})

class RunError(Exception):
    """Bad knob, bad input file or failed run: reported as one line naming the cause, exit status 2."""

def require(ok: bool, message: str) -> None:
    if not ok:
        raise RunError(message)

def optional_module(name: str):
    """A module of this repository that a knob asks for, imported then (from PACKED_SOURCES when packed)."""
    sys.modules.setdefault("train_byte_model", sys.modules[__name__])  # the module they import is this one
    if name not in sys.modules and f"{name}.py" in PACKED_SOURCES:
        module = sys.modules[name] = types.ModuleType(name)
        module.__file__ = __file__
        exec(compile(PACKED_SOURCES[f"{name}.py"], f"{name}.py", "exec"), module.__dict__)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError:
        raise RunError(f"{name}.py: not packed into {Path(__file__).name} and not beside it") from None


# -----------------------------
# HYPERPARAMETERS
# -----------------------------
# Every knob is an environment variable named as the community names it; its default's type is its type.

KNOBS = (
    # data and run
    ("DATA_PATH", "./data/datasets/fineweb10B_bytes", "directory of fineweb_{train,val}_*.bin shards"),
    ("DATA_LAYOUT", "auto", "auto (from DATA_PATH/conversion.json) | byte260 | raw256 | tokens"),
    ("TOKENIZER_PATH", "", "SentencePiece model; token mode (sp1024 shards) needs it for the byte count"),
    ("VOCAB_SIZE", 0, "0 = from the data (260 byte260, 256 raw256, tokenizer size); else must agree"),
    ("RUN_ID", "", "name of the log/artifact files (default: a random uuid, the same on every rank)"),
    ("LOG_DIR", "logs", "where $RUN_ID.txt, the artifact and checkpoints go"),
    ("SEED", 1337, "random seed for initialization"),
    ("RECIPE", "frontier", "frontier | frontier_next | pr832 | pr705: a configuration (see the end of --help)"),
    # model
    ("NUM_LAYERS", 13, "transformer blocks"),
    ("MODEL_DIM", 512, "residual width"),
    ("NUM_HEADS", 8, "query heads"),
    ("NUM_KV_HEADS", 4, "key/value heads (GQA when fewer than NUM_HEADS)"),
    ("MLP_HIDDEN", 0, "MLP hidden width; 0 = MLP_MULT * MODEL_DIM"),
    ("MLP_MULT", 2, "MLP expansion when MLP_HIDDEN=0"),
    ("ROPE_BASE", 10000.0, "rotary embedding base"),
    ("ROPE_DIMS", 16, "head dims that get rotary position (partial RoPE); 0 = all"),
    ("XSA_LAST_N", 4, "exclusive self-attention in the last N layers (0 = off; more than NUM_LAYERS = all)"),
    ("LN_SCALE", 1, "1 = scale layer l's normalized block inputs by 1/sqrt(l+1)"),
    ("ORTHO_INIT", 1, "1 = orthogonal init of the non-zero-initialized matrices of at least 64x64"),
    ("QK_GAIN_INIT", 1.5, "initial per-head query gain"),
    ("LOGIT_SOFTCAP", 30.0, "logits = cap * tanh(logits / cap)"),
    ("TIED_EMBED_INIT_STD", 0.005, "init std of the tied byte embedding"),
    ("SMEAR_GATE", 1, "1 = blend each position with the previous one through a learned per-channel gate"),
    ("BIGRAM_HASH_BUCKETS", 4096, "hashed (previous, current) id embedding buckets; 0 = off"),
    ("BIGRAM_HASH_DIM", 32, "bigram embedding width (projected to MODEL_DIM)"),
    ("BIGRAM_HASH", "mix", "mix = hash of all bits of both ids | seed = PR #705's (prev*256+cur) % buckets"),
    ("BIGRAM_INIT_STD", 0.02, "init std of the bigram table (0 = zeros: with its zero projection it stays 0)"),
    ("BIGRAM_IN_NORM", 1, "1 = RMSNorm(byte + bigram) then SmearGate; 0 = SmearGate(RMSNorm(byte)) + bigram"),
    ("UNET_SKIPS", 1, "1 = U-Net skip connections from encoder to decoder half, with learned weights"),
    ("JEPA_CHUNK_SIZE", 8, "chunk-JEPA: bytes per chunk (0 = off)"),
    ("JEPA_LATENT_DIM", 256, "chunk-JEPA latent and projector width"),
    ("JEPA_LAMBDA_MAX", 0.001, "chunk-JEPA loss weight at the top of its ramp"),
    ("JEPA_PHASE1_FRAC", 0.3, "chunk-JEPA weight is 0 for this first fraction of training"),
    ("JEPA_PHASE2_FRAC", 0.5, "then ramps 0 -> JEPA_LAMBDA_MAX over this fraction, then 0 again"),
    ("JEPA_SIGREG_WEIGHT", 0.02, "weight of the SIGReg anti-collapse term inside the chunk-JEPA loss"),
    ("JEPA_LR", 0.001, "Adam learning rate of the chunk-JEPA modules"),
    ("DOC_BOUNDARY", 0, "1 = a document's BOS neither smears in nor hashes with the previous document's last byte"),
    # after PR #832 (frontier_next.py; RECIPE=frontier_next): the token records' architecture, brought to bytes
    ("SKIP_GATES", 0, "1 = each U-Net skip enters through a learned per-channel sigmoid gate (lerp, PR #1855)"),
    ("PARALLEL_START_LAYER", 0, "two residual lanes (attention, MLP) from this layer on (0 = off; PR #1855: 8)"),
    ("NUM_LOOPS", 0, "depth recurrence: layers LOOP_START..LOOP_END run 1 + NUM_LOOPS times (0 = off)"),
    ("LOOP_START", 3, "first layer of the recurrent span"),
    ("LOOP_END", 5, "last layer of the recurrent span"),
    ("ENABLE_LOOPING_AT", 0.35, "training fraction at which the recurrence switches on"),
    ("ATTN_GATE_SCALE", 0.0, "per-head attention output gate sigmoid(scale * W x[:12]) (0 = off; PR #1855: 0.5)"),
    # research options (research_options.py; no recipe uses them)
    ("BLOCK_PATTERN", "", "one letter per layer: A attention, S Mamba2 SSM, G GLA (default: A * NUM_LAYERS)"),
    ("SCAN_CHUNK", 64, "chunk length of the S and G scans, 1..64"),
    ("PATCH_SIZE", 1, "bytes per backbone position (1 = off); must divide TRAIN_SEQ_LEN"),
    ("PATCH_DECODER", "independent", "independent (earlier patches + offset) | causal_conv (+ patch bytes so far)"),
    # training
    ("ITERATIONS", 20000, "maximum optimizer steps"),
    ("MAX_WALLCLOCK_SECONDS", 600.0, "training-time cap (0 = none); warmdown is timed against it"),
    ("TRAIN_BATCH_TOKENS", 393216, "tokens per optimizer step, all ranks together"),
    ("TRAIN_SEQ_LEN", 4096, "training context; also the evaluation context"),
    ("WARMUP_STEPS", 20, "compile-priming steps whose weights and optimizer state are then discarded"),
    ("WARMDOWN_ITERS", 3000, "linear LR decay over the last this-many steps (estimated from step time)"),
    ("MIN_LR", 0.0, "the warmdown stops at this fraction of each learning rate (PR #1787: 0.1)"),
    ("MATRIX_LR", 0.025, "Muon learning rate for block matrices"),
    ("TIED_EMBED_LR", 0.035, "Adam learning rate for the byte and bigram embeddings"),
    ("SCALAR_LR", 0.025, "Adam learning rate for gains, scales, mixes and skip weights"),
    ("MUON_MOMENTUM", 0.99, "Muon momentum after warmup"),
    ("MUON_MOMENTUM_WARMUP_START", 0.92, "Muon momentum at step 0"),
    ("MUON_MOMENTUM_WARMUP_STEPS", 1500, "steps of linear momentum warmup"),
    ("MUON_BACKEND_STEPS", 5, "Newton-Schulz iterations"),
    ("NS_COEFFICIENTS", "quintic", "quintic = one (a, b, c) each iteration | polar_express = PR #1787's schedule"),
    ("MUON_WEIGHT_DECAY", 0.04, "decoupled weight decay on Muon matrices"),
    ("ADAM_WEIGHT_DECAY", 0.04, "decoupled weight decay on the Adam groups (embeddings and scalars)"),
    ("BETA1", 0.9, "Adam beta1"),
    ("BETA2", 0.95, "Adam beta2"),
    ("ADAM_EPS", 1e-8, "Adam epsilon"),
    ("GRAD_CLIP_NORM", 0.3, "global gradient-norm clip (0 = off)"),
    ("EMA_DECAY", 0.997, "EMA of weights, one update per step (0 = off)"),
    ("SWA_EVERY", 0, "SWA snapshot period in steps (0 = off)"),
    ("SWA_LAST_FRAC", 0.5, "SWA averages snapshots over this last fraction of training"),
    ("HELDOUT_TOKENS", 1048576, "tail of the last train shard, never trained on, that picks raw/EMA/SWA"),
    ("USE_COMPILE", -1, "torch.compile: 1 on, 0 off, -1 auto (on for CUDA, off for CPU)"),
    ("BF16", -1, "bf16 autocast: 1 on, 0 off (fp32), -1 auto (on for CUDA, off for CPU)"),
    # logging, evaluation, artifact
    ("TRAIN_LOG_EVERY", 200, "train-loss log period in steps (the first 10 steps are always logged)"),
    ("VAL_LOSS_EVERY", 0, "validation period in steps (0 = only at the end)"),
    ("VAL_SLIDING_STRIDE", 0, "sliding-window eval stride (TRAIN_SEQ_LEN = non-overlapping; 0 = TRAIN_SEQ_LEN / 8)"),
    ("VAL_SLIDING_MAX_TOKENS", 0, "0 = score all of val; else only its first this-many tokens (printed)"),
    ("EVAL_BATCH_SEQS", 32, "windows per evaluation batch per rank"),
    ("EVAL_DUMP", "", "write every target's final loss (nats, float32, val order) to this .npy"),
    # evaluation-time methods (eval_time.py, off in every recipe): score first, then adapt
    ("TTT_STEPS", 0, "test-time training: adaptation steps after each scored chunk (0 = off)"),
    ("TTT_CHUNK_TOKENS", 32768, "TTT chunk: at least this many targets are scored before each adaptation"),
    ("TTT_PARAMS", "scalars", "what TTT adapts: scalars (gains, scales, mixes, skips) | lora"),
    ("TTT_LORA_RANK", 8, "rank of the TTT adapters on every block matrix (TTT_PARAMS=lora)"),
    ("TTT_LR", 0.001, "Adam learning rate of test-time training"),
    ("TTT_RESET", "never", "never (adaptation carries over) | doc (back to the artifact's weights at each BOS)"),
    ("PPM_ORDER", 0, "PPM-D byte mixture: maximum context order (0 = off; needs numba)"),
    ("PPM_WEIGHT", 0.0, "PPM mixture weight; 0 = adaptive (one weight per confidence bucket, learned online)"),
    ("PPM_LR", 0.02, "adaptive mixture: step size of the per-bucket weight logits"),
    ("SIZE_CAP", SIZE_CAP_BYTES, "bytes that code + artifact may take (the challenge's 16,000,000)"),
    ("CAP_FIT", 1, "1 = an export over SIZE_CAP is redone at the finest coarser setting that fits (cap_fit.py)"),
    ("ALLOW_OVER_CAP", 0, "1 = finish with exit 0 even when code + artifact exceed SIZE_CAP"),
    ("MEMORY_CHECK", 1, "1 = stop at start-up when the estimated peak memory exceeds what the device has free"),
    ("ALLOW_UNKNOWN_KNOBS", 0, "1 = run despite a likely typo of a knob or another script's knob (warned, ignored)"),
    ("CHECKPOINT_EVERY", 0, "write a resumable checkpoint every this-many steps (0 = off)"),
    ("RESUME", "", "checkpoint to continue from"),
    ("EVAL_ONLY", "", "artifact to score on DATA_PATH's val without training (its context and stride by default)"),
    ("EXPORT_ONLY", "", "a training run's LOG_DIR/RUN_ID.final.pt to export and score without training"),
    ("QUANT", "gptq", "rowclip = round to nearest | gptq = GPTQ (Hessians from training batches)"),
    ("QUANT_CLIP", "max", "row clip: max = best of 1.0..0.8 x max|w| | std:K = K x std(row)"),
    ("EMBED_BITS", 8, "bits of the tied embedding and the bigram table: 8, 7 or 6"),
    ("CODEC", "auto", "zstd (22) | brotli (11) | ans (rANS, per-tensor counts) | auto = smallest per group"),
    ("GPTQ_BLOCK", 128, "GPTQ columns per lazy-update block"),
    ("GPTQ_DAMP", 0.01, "GPTQ damping, a fraction of the mean Hessian diagonal"),
    ("GPTQ_CALIB_TOKENS", 262144, "GPTQ calibration tokens (all ranks), timed inside MAX_WALLCLOCK_SECONDS"),
    ("LQER_RANK", 0, "research: rank of an int4 correction of each int6 matrix's error (0 = off)"),
)
KNOB_NAMES = tuple(name for name, _, _ in KNOBS)

# Published configurations, as changes to the defaults (RECIPE=frontier).
RECIPES = {
    # PR #832's stack (1.1908 full-val sliding, 8xH100): the defaults, with its live bigram table.
    "frontier": {},
    # PR #832 as published: its bigram table and projection both start at zero, so they stay zero.
    "pr832": {"BIGRAM_INIT_STD": 0.0, "ITERATIONS": 9000},
    # The token records after PR #832 on our stack (frontier_next.py; docs/recipes.md): a candidate, no GPU run yet.
    "frontier_next": {"DOC_BOUNDARY": 1, "MIN_LR": 0.1, "SKIP_GATES": 1, "PARALLEL_START_LAYER": 8, "QK_GAIN_INIT": 5.0,
                      "XSA_LAST_N": 13, "EMA_DECAY": 0.9965, "MUON_WEIGHT_DECAY": 0.085},
    # PR #705, the seed: 8/8 heads, full RoPE, no XSA/LN scale/ortho init/JEPA, its LRs, EMA + SWA.
    "pr705": {"NUM_KV_HEADS": 8, "ROPE_DIMS": 0, "XSA_LAST_N": 0, "LN_SCALE": 0, "ORTHO_INIT": 0,
              "BIGRAM_HASH": "seed", "BIGRAM_IN_NORM": 0, "JEPA_CHUNK_SIZE": 0, "WARMUP_STEPS": 10,
              "WARMDOWN_ITERS": 3500, "MATRIX_LR": 0.035, "TIED_EMBED_LR": 0.05, "SCALAR_LR": 0.04,
              "MUON_MOMENTUM_WARMUP_STEPS": 2500, "ADAM_WEIGHT_DECAY": 0.0, "SWA_EVERY": 50},
}
QUANT_METHODS = ("rowclip", "gptq")
CODECS = {"zstd": "zstandard", "brotli": "brotli", "ans": "constriction"}  # codec: its package
KNOB_CHOICES = {"DATA_LAYOUT": ("auto", "byte260", "raw256", "tokens"), "BIGRAM_HASH": ("mix", "seed"),
                "NS_COEFFICIENTS": ("quintic", "polar_express"), "TTT_PARAMS": ("scalars", "lora"),
                "TTT_RESET": ("never", "doc"), "QUANT": QUANT_METHODS, "EMBED_BITS": (8, 7, 6),
                "CODEC": (*CODECS, "auto")}
KNOB_MINIMUMS = {"NUM_LAYERS": 1, "NUM_HEADS": 1, "NUM_KV_HEADS": 1, "XSA_LAST_N": 0, "JEPA_CHUNK_SIZE": 0,
                 "JEPA_LATENT_DIM": 1, "JEPA_PHASE1_FRAC": 0, "JEPA_PHASE2_FRAC": 0, "SCAN_CHUNK": 1, "PATCH_SIZE": 1,
                 "ITERATIONS": 0, "TRAIN_BATCH_TOKENS": 1, "VAL_SLIDING_STRIDE": 1, "EVAL_BATCH_SEQS": 1,
                 "TTT_STEPS": 0, "TTT_CHUNK_TOKENS": 1, "TTT_LORA_RANK": 1, "PPM_ORDER": 0, "PPM_WEIGHT": 0,
                 "GPTQ_BLOCK": 1, "GPTQ_CALIB_TOKENS": 1, "LQER_RANK": 0, "NUM_LOOPS": 0, "PARALLEL_START_LAYER": 0,
                 "MIN_LR": 0, "ATTN_GATE_SCALE": 0, "SIZE_CAP": 1}

# Other scripts' knob names and any NAME_ENABLED switch: only a run that uses one imports run_modes.own_names, which
# takes each as ours or refuses it naming ours (tests/test_knobs.py pins these names to its tables).
OTHER_SCRIPTS_KNOBS = frozenset((
    "MUON_WD", "ADAM_WD", "BIGRAM_VOCAB_SIZE", "BIGRAM_DIM", "EVAL_STRIDE", "COMPILE_MODEL", "JEPA_PROJ_HIDDEN",
    "SPARSE_ATTN_GATE_SCALE", "EMA_ENABLED", "SWA_ENABLED", "SKIP_GATES_ENABLED", "SPARSE_ATTN_GATE_ENABLED",
    "TIE_EMBEDDINGS", "VAL_BATCH_SIZE", "EMBED_LR", "HEAD_LR", "EVAL_SEQ_LEN", "VAL_MAX_TOKENS", "WARMDOWN_FRAC",
    "EMBED_WD", "TTT_ENABLED", "TTT_EPOCHS", "GPTQ_RESERVE_SECONDS", "QAT_ENABLED", "LATE_QAT_THRESHOLD"))

def parse_knob(name: str, default, raw):
    """A knob's value from its environment string (or a recipe's typed value)."""
    if not isinstance(raw, str) or isinstance(default, str):
        return raw
    try:
        value = float(raw)
        require(not isinstance(default, int) or value == int(value), "")
        return int(value) if isinstance(default, int) else value
    except (ValueError, RunError):
        raise RunError(f"{name}={raw!r} is not a valid {type(default).__name__}") from None

def needs_research_module(config) -> bool:
    """Mixer letters other than A, or byte patching: models that research_options.py builds."""
    return bool(config.block_pattern.strip("A")) or config.patch_size > 1

def needs_next_module(config) -> bool:
    """Gated skips, parallel lanes, depth recurrence or the attention gate: models that frontier_next.py builds."""
    return bool(config.skip_gates or config.parallel_start_layer or config.num_loops or config.attn_gate_scale)

def uses_eval_methods(args) -> bool:
    """Test-time training or the PPM mixture: eval_time.py runs them after the plain final evaluation."""
    return args.ttt_steps > 0 or args.ppm_order > 0

class Hyperparameters:
    """Knob values as lower-case attributes; `source[NAME]` says env, recipe or default."""

    def __init__(self, env: dict[str, str] | None = None):
        env = dict(os.environ if env is None else env)
        other = [key for key in env if key in OTHER_SCRIPTS_KNOBS or key.endswith("_ENABLED") and key not in KNOB_NAMES]
        env, came_as, switched_on, refused = optional_module("run_modes").own_names(env) if other else (env, {}, {}, [])
        recipe = env.get("RECIPE", "frontier")
        require(recipe in RECIPES, f"RECIPE={recipe!r}: want one of {', '.join(RECIPES)}")
        preset, self.source = RECIPES[recipe], {}
        for name, default, _ in KNOBS:
            origin = "env" if name in env else "recipe" if name in preset else "default"  # (+ the alias it came as)
            raw = env[name] if origin == "env" else preset.get(name, default)
            if name in switched_on and not parse_knob(name, default, raw):  # a switch turned it on
                raw, origin = switched_on[name][0], f"env {switched_on[name][1]}"
            self.source[name] = origin + (f" {came_as[name]}" if name in came_as else "")
            setattr(self, name.lower(), parse_knob(name, default, raw))
        self.block_pattern = self.block_pattern or "A" * self.num_layers
        self.mlp_hidden = self.mlp_hidden or self.mlp_mult * self.model_dim
        self.head_dim = self.model_dim // max(self.num_heads, 1)
        self.rope_dims = self.rope_dims or self.head_dim
        self.val_sliding_stride = self.val_sliding_stride or max(1, self.train_seq_len // 8)
        self.validate()
        names, taken = [*KNOB_NAMES, *OTHER_SCRIPTS_KNOBS], {r.split()[0] for r in refused}
        refused += [f"{key} (did you mean {close[0]}?)" for key in sorted(env) if key.isupper() and key not in names
                    and key not in taken and (close := difflib.get_close_matches(key, names, n=1, cutoff=0.85))]
        require(not refused or self.allow_unknown_knobs, f"not knobs here: {'; '.join(refused)}. "
                "ALLOW_UNKNOWN_KNOBS=1 runs anyway, without them")
        self.warnings = [f"warning: ignored (ALLOW_UNKNOWN_KNOBS=1): {name}" for name in refused]

    def validate(self) -> None:
        """Every knob check, in one place, before anything runs."""
        for name, allowed in KNOB_CHOICES.items():
            value = getattr(self, name.lower())
            require(value in allowed, f"{name}={value!r}: want one of {', '.join(map(str, allowed))}")
        for name, low in KNOB_MINIMUMS.items():
            require(getattr(self, name.lower()) >= low, f"{name}={getattr(self, name.lower())} must be >= {low}")
        require(self.source["NUM_LAYERS"] != "env" or len(self.block_pattern) == self.num_layers,
                f"BLOCK_PATTERN has {len(self.block_pattern)} layers but NUM_LAYERS={self.num_layers}")
        require(self.model_dim % self.num_heads == 0 and self.head_dim % 2 == 0,
                f"MODEL_DIM={self.model_dim} / NUM_HEADS={self.num_heads} = {self.model_dim / self.num_heads:g}:"
                " the head size must be an even integer")
        require(self.num_heads % self.num_kv_heads == 0,
                f"NUM_HEADS={self.num_heads} is not a multiple of NUM_KV_HEADS={self.num_kv_heads}")
        require(0 < self.rope_dims <= self.head_dim and self.rope_dims % 2 == 0,
                f"ROPE_DIMS={self.rope_dims} must be even and at most the head size {self.head_dim}")
        require(self.jepa_chunk_size < self.train_seq_len, f"JEPA_CHUNK_SIZE={self.jepa_chunk_size} >= TRAIN_SEQ_LEN")
        require(self.jepa_phase1_frac + self.jepa_phase2_frac <= 1, "JEPA_PHASE1_FRAC + JEPA_PHASE2_FRAC: 0..1")
        require(self.train_batch_tokens % (8 * self.train_seq_len) == 0,
                f"TRAIN_BATCH_TOKENS={self.train_batch_tokens} must be a multiple of 8 * TRAIN_SEQ_LEN "
                f"({8 * self.train_seq_len}): 8 micro-batches of whole sequences per step")
        require(self.val_sliding_stride <= self.train_seq_len,
                f"VAL_SLIDING_STRIDE={self.val_sliding_stride} must be in 1..TRAIN_SEQ_LEN={self.train_seq_len}")
        k = self.quant_clip.removeprefix("std:")
        std_k = k != self.quant_clip and k.replace(".", "", 1).isdigit() and float(k) > 0
        require(self.quant_clip == "max" or std_k, f"QUANT_CLIP={self.quant_clip!r}: want max or std:K, K > 0")
        require(self.gptq_damp > 0, f"GPTQ_DAMP={self.gptq_damp} must be > 0")
        run_modes = self.eval_only or self.export_only or self.resume or self.checkpoint_every or self.eval_dump
        for module, asked in (("research_options", needs_research_module(self)), ("eval_time", uses_eval_methods(self)),
                              ("frontier_next", needs_next_module(self) or self.ns_coefficients != "quintic"),
                              ("run_modes", run_modes), ("export_research", self.lqer_rank)):
            if asked:  # imported now, so that the start-up projection and the cap fit count its bytes
                getattr(optional_module(module), "check_knobs", lambda args: None)(self)  # its own knob checks

    def items(self) -> list[tuple[str, object]]:
        return [(name, getattr(self, name.lower())) for name in KNOB_NAMES]

def help_text() -> str:
    recipes = [f"  {name:<14}" + (" ".join(f"{k}={v}" for k, v in preset.items()) or "(the defaults)")
               for name, preset in RECIPES.items()]
    return "\n".join([__doc__.strip(), "", "Knobs (environment variables), defaults (RECIPE=frontier):", "",
                      *(f"  {name:<28} {default!r:<36} {meaning}" for name, default, meaning in KNOBS), "",
                      "Recipes (what each changes from the defaults):", *recipes])


# -----------------------------
# RUNTIME: DEVICES, RANKS, LOG
# -----------------------------

@dataclasses.dataclass
class Runtime:
    rank: int
    world_size: int
    device: torch.device
    bf16: bool
    compile: bool
    log_path: Path | None = None

    def __post_init__(self):
        self.distributed, self.master = self.world_size > 1, self.rank == 0

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def log(self, msg: str, console: bool = True) -> None:
        if self.master and console:
            print(msg, flush=True)
        if self.master and self.log_path is not None:
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(msg + "\n")

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def timed(self, fn) -> tuple[object, float]:
        """(fn(), its wall time in ms), the device synchronized before and after."""
        self.sync()
        started = time.perf_counter()
        result = fn()
        self.sync()
        return result, 1000 * (time.perf_counter() - started)

    def max_over_ranks(self, value: float) -> float:
        """The largest of the ranks' values, so that every rank acts on the same number."""
        if not self.distributed:
            return value
        t = torch.tensor(value, dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t.item()

@contextlib.contextmanager
def full_fp32(device_type: str):
    """fp32 matmuls as written (GPTQ's Hessian sums and error feedback): autocast off, and no TF32 on a GPU, whose
    10-bit mantissa the run otherwise allows for speed."""
    tf32, torch.backends.cuda.matmul.allow_tf32 = torch.backends.cuda.matmul.allow_tf32, False
    try:
        with torch.autocast(device_type, enabled=False):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32

def setup_runtime(args: Hyperparameters) -> Runtime:
    world_size, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    require(world_size >= 1 and 8 % world_size == 0,
            f"WORLD_SIZE={world_size} must divide 8 (gradient accumulation is 8 // WORLD_SIZE)")
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    if world_size > 1:
        dist.init_process_group("nccl" if cuda else "gloo", device_id=device if cuda else None)
    auto = lambda knob: knob == 1 or (knob == -1 and cuda)  # noqa: E731
    rt = Runtime(rank, world_size, device, bf16=auto(args.bf16), compile=auto(args.use_compile))
    run_id = [args.run_id or str(uuid.uuid4())]
    if rt.distributed:  # every rank must name the same files
        dist.broadcast_object_list(run_id, src=0)
    args.run_id = run_id[0]
    if rt.master:
        os.makedirs(args.log_dir, exist_ok=True)
        rt.log_path = Path(args.log_dir) / f"{args.run_id}.txt"
    return rt

def device_name(rt: Runtime) -> str:
    return torch.cuda.get_device_name(rt.device) if rt.device.type == "cuda" else f"cpu ({os.cpu_count()} cores)"


# -----------------------------
# DATA LOADING
# -----------------------------
# Shards: 256 little-endian int32 header (magic, version, count), then `count` uint16 ids.
# Byte layouts come from convert_to_bytes.py, whose conversion.json says which one a directory holds.

def shard_length(path: Path) -> int:
    """Checks the header and the file size; every shard is checked at start-up, before any training."""
    header = np.fromfile(path, dtype="<i4", count=SHARD_HEADER_INTS)
    require(header.size == SHARD_HEADER_INTS and header[0] == SHARD_MAGIC and header[1] == SHARD_VERSION,
            f"{path}: bad shard header (want magic {SHARD_MAGIC}, version {SHARD_VERSION})")
    count, size = int(header[2]), path.stat().st_size
    expected = 4 * SHARD_HEADER_INTS + 2 * count
    require(size == expected, f"{path}: {size} bytes, header says {count} ids ({expected} bytes)")
    return count

def map_shard(path: Path) -> np.ndarray:
    """A shard's ids, memory-mapped: only the pages a reader touches are read (the OS reads ahead)."""
    count = shard_length(path)
    return np.memmap(path, "<u2", "r", 4 * SHARD_HEADER_INTS, (count,)) if count else np.zeros(0, "<u2")

def checked(ids: np.ndarray, vocab_size: int, path: Path) -> np.ndarray:
    top = int(ids.max(initial=0))
    require(top < vocab_size, f"{path}: id {top} >= vocab size {vocab_size}")
    return ids

def load_shard(path: Path, vocab_size: int) -> np.ndarray:
    return checked(np.array(map_shard(path)), vocab_size, path)

@dataclasses.dataclass
class DataSpec:
    layout: str  # byte260 | raw256 | tokens
    vocab_size: int
    train_files: list[Path]
    val_files: list[Path]
    note: str  # where the layout came from, for the log

def resolve_data(args: Hyperparameters) -> DataSpec:
    root = Path(args.data_path)
    require(root.is_dir(), f"DATA_PATH {root}: no such directory")
    train, val = (sorted(root.glob(f"fineweb_{split}_*.bin")) for split in ("train", "val"))
    for split, files in (("train", train), ("val", val)):
        require(bool(files), f"DATA_PATH {root}: no fineweb_{split}_*.bin shards")
    layout, note, sidecar = args.data_layout, "DATA_LAYOUT", root / "conversion.json"
    if layout == "auto" and sidecar.is_file():
        layout, note = json.loads(sidecar.read_text())["layout"], str(sidecar)
    elif layout == "auto":
        require(bool(args.tokenizer_path),
                f"{sidecar}: missing; set DATA_LAYOUT=byte260|raw256, or TOKENIZER_PATH for token shards")
        layout, note = "tokens", "TOKENIZER_PATH set and no conversion.json"
    vocabs = {"byte260": 260, "raw256": 256, "tokens": 0}  # token mode: the tokenizer's
    require(layout in vocabs, f"DATA_LAYOUT={layout!r}: want auto, byte260, raw256 or tokens")
    vocab = vocabs[layout] or int(optional_module("run_modes").load_tokenizer(args.tokenizer_path).vocab_size())
    require(not args.vocab_size or args.vocab_size == vocab,
            f"VOCAB_SIZE={args.vocab_size} contradicts the data: {root} is {layout} (vocab {vocab}, from {note}); "
            f"unset VOCAB_SIZE, or convert with --layout {'raw256' if args.vocab_size == 256 else '...'}")
    for shard in train + val:
        shard_length(shard)
    return DataSpec(layout, vocab, train, val, note)

class TokenStream:
    """Shards in order, wrapping around, but for the last `holdout` ids; ids are checked as they are taken.
    Memory-mapped: a stream made for a few batches (GPTQ calibration) reads only those, and leaves no thread."""

    def __init__(self, files: list[Path], vocab_size: int, holdout: int = 0):
        self.files, self.vocab_size, self.holdout = files, vocab_size, holdout
        self.file_idx, self.pos, self.tokens = 0, 0, self._open(0)

    def _open(self, idx: int) -> np.ndarray:
        ids = map_shard(self.files[idx])
        if idx == len(self.files) - 1 and self.holdout:
            require(ids.size > self.holdout,
                    f"{self.files[idx]}: {ids.size} ids, too few to hold out HELDOUT_TOKENS={self.holdout}")
            ids = ids[: ids.size - self.holdout]
        return ids

    def heldout(self) -> Tensor:
        ids = map_shard(self.files[-1])[-self.holdout:] if self.holdout else np.zeros(0, "<u2")
        return torch.from_numpy(checked(np.array(ids), self.vocab_size, self.files[-1]).astype(np.int32))

    def take(self, n: int) -> np.ndarray:
        chunks = []
        while n > 0:
            if self.pos >= self.tokens.size:
                self.seek((self.file_idx + 1) % len(self.files), 0)
                continue
            k = min(n, self.tokens.size - self.pos)
            ids = np.array(self.tokens[self.pos : self.pos + k])
            chunks.append(checked(ids, self.vocab_size, self.files[self.file_idx]))
            self.pos, n = self.pos + k, n - k
        return np.concatenate(chunks)

    def seek(self, file_idx: int, pos: int) -> None:
        if file_idx != self.file_idx:
            self.file_idx, self.tokens = file_idx, self._open(file_idx)
        self.pos = pos

class DistributedTokenLoader:
    """Rank r gets the r-th span of each micro-step's chunk, as in the official loader: data independent of ranks."""

    def __init__(self, stream: TokenStream, rank: int, world_size: int, device: torch.device):
        self.stream, self.rank, self.world_size, self.device = stream, rank, world_size, device

    def next_batch(self, batch_tokens: int, seq_len: int, grad_accum: int) -> tuple[Tensor, Tensor]:
        span = batch_tokens // (self.world_size * grad_accum) + 1
        chunk = self.stream.take(span * self.world_size)
        local = torch.from_numpy(chunk[self.rank * span : (self.rank + 1) * span].astype(np.int64))
        if self.device.type == "cuda":  # from pageable memory the copy would first wait for the GPU's queue
            local = local.pin_memory()
        local = local.to(self.device, non_blocking=True)
        return local[:-1].view(-1, seq_len), local[1:].view(-1, seq_len)

    def state(self) -> dict:
        return {"file_idx": self.stream.file_idx, "pos": self.stream.pos}

    def load_state(self, state: dict) -> None:
        self.stream.seek(state["file_idx"], state["pos"])

def byte_count_tables(spec: DataSpec, tokenizer_path: str) -> tuple[Tensor, Tensor, Tensor]:
    """Bytes a target counts: base[target] + (leading_space[target] and not boundary[previous])."""
    if spec.layout == "tokens":
        tables = optional_module("run_modes").token_byte_tables(tokenizer_path, spec.vocab_size)
        return tuple(map(torch.from_numpy, tables))
    base = torch.zeros(spec.vocab_size, dtype=torch.int64)
    base[BYTE260_FIRST_BYTE_ID if spec.layout == "byte260" else 0 :] = 1
    return base, torch.zeros(spec.vocab_size, dtype=torch.bool), torch.ones(spec.vocab_size, dtype=torch.bool)


# -----------------------------
# TRANSFORMER MODULES
# -----------------------------

# What rebuilds the model (the artifact holds it): the vocab size and these knobs, as lower-case fields of their types.
MODEL_KNOBS = ("BLOCK_PATTERN", "MODEL_DIM", "NUM_HEADS", "NUM_KV_HEADS", "MLP_HIDDEN", "ROPE_BASE", "ROPE_DIMS",
               "XSA_LAST_N", "LN_SCALE", "ORTHO_INIT", "QK_GAIN_INIT", "LOGIT_SOFTCAP", "TIED_EMBED_INIT_STD",
               "SMEAR_GATE", "BIGRAM_HASH_BUCKETS", "BIGRAM_HASH_DIM", "BIGRAM_HASH", "BIGRAM_INIT_STD",
               "BIGRAM_IN_NORM", "UNET_SKIPS", "JEPA_CHUNK_SIZE", "JEPA_LATENT_DIM", "JEPA_SIGREG_WEIGHT",
               "DOC_BOUNDARY", "SKIP_GATES", "PARALLEL_START_LAYER", "NUM_LOOPS", "LOOP_START", "LOOP_END",
               "ATTN_GATE_SCALE", "SCAN_CHUNK", "PATCH_SIZE", "PATCH_DECODER")
ModelConfig = dataclasses.make_dataclass("ModelConfig", [("vocab_size", int)] + [
    (name.lower(), type(default)) for name, default, _ in KNOBS if name in MODEL_KNOBS])

def model_config(args: Hyperparameters, vocab_size: int) -> ModelConfig:
    return ModelConfig(vocab_size, **{name.lower(): getattr(args, name.lower()) for name in MODEL_KNOBS})

class CastedLinear(nn.Linear):
    # Weights stay fp32 for optimizer quality; autocast runs the matmul in bf16 on GPU.
    def __init__(self, in_features: int, out_features: int, zero_init: bool = False):
        super().__init__(in_features, out_features, bias=False)
        self.zero_init = zero_init
        if zero_init:
            nn.init.zeros_(self.weight)

def rotary(x: Tensor, base: float, dims: int) -> Tensor:
    """Rotary position embedding on the first `dims` of the head dims of (batch, time, heads, head_dim)."""
    half = dims // 2
    inv_freq = base ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angles = torch.outer(torch.arange(x.size(1), device=x.device, dtype=torch.float32), inv_freq)
    cos, sin = angles.cos()[None, :, None, :].to(x.dtype), angles.sin()[None, :, None, :].to(x.dtype)
    x1, x2, rest = x[..., :half], x[..., half:dims], x[..., dims:]
    return torch.cat((x1 * cos + x2 * sin, x2 * cos - x1 * sin, rest), dim=-1)

fa3_enabled = False  # set once at start-up by choose_attention

def causal_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """(batch, time, heads, head_dim) in and out, fewer k/v heads allowed; FA3 once enabled, else SDPA."""
    if fa3_enabled:
        out = fa3_attention(q, k, v, causal=True)
        return out[0] if isinstance(out, tuple) else out
    y = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True, enable_gqa=k.size(2) != q.size(2))
    return y.transpose(1, 2)

def fa3_probe(device: torch.device, compile: bool) -> str:
    """'' if a tiny bf16 forward + backward runs (compiled if the run compiles: some FA3 builds break it), else why."""
    try:
        q, k, v = (torch.randn(1, 128, heads, 64, device=device, dtype=torch.bfloat16, requires_grad=True)
                   for heads in (4, 2, 2))
        (torch.compile(causal_attention, fullgraph=True) if compile else causal_attention)(q, k, v).sum().backward()
        q.grad.sum().item()  # waits for the device, so an asynchronous kernel error shows here
    except Exception as exc:  # any failure means SDPA, and the log says why
        return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:200]}"
    return ""

def choose_attention(rt: Runtime) -> str:
    """Enables FA3 where it runs (installed, CUDA, bf16: no fp32 kernel, a passing probe); the log line."""
    global fa3_enabled
    fa3_enabled = fa3_attention is not None and rt.device.type == "cuda" and rt.bf16  # on while the probe runs
    error = fa3_probe(rt.device, rt.compile) if fa3_enabled else ""
    why = ("not installed" if fa3_attention is None else f"failed its start-up probe: {error}" if error
           else "needs CUDA and bf16")
    fa3_enabled = fa3_enabled and not error
    return "attention_kernel:fa3" if fa3_enabled else f"attention_kernel:sdpa (FA3 {why})"

def exclude_own_value(y: Tensor, v: Tensor) -> Tensor:
    """XSA: removes from each head's output its component along its own position's value (its KV group's)."""
    bsz, seqlen, heads, head_dim = y.shape
    y = y.view(bsz, seqlen, v.size(2), heads // v.size(2), head_dim)
    unit = F.normalize(v, dim=-1).unsqueeze(3)
    return (y - (y * unit).sum(-1, keepdim=True) * unit).view(bsz, seqlen, heads, head_dim)

class CausalSelfAttention(nn.Module):
    fused_input_weights = ("c_q.weight", "c_k.weight", "c_v.weight")  # one matmul on the block's input (GPTQ reads it)

    def __init__(self, cfg: ModelConfig, layer: int):
        super().__init__()
        self.num_heads, self.num_kv_heads = cfg.num_heads, cfg.num_kv_heads
        self.head_dim, self.rope_base, self.rope_dims = cfg.model_dim // cfg.num_heads, cfg.rope_base, cfg.rope_dims
        self.xsa = layer >= len(cfg.block_pattern) - cfg.xsa_last_n
        kv_dim = cfg.num_kv_heads * self.head_dim
        self.c_q, self.c_k, self.c_v = (CastedLinear(cfg.model_dim, out) for out in (cfg.model_dim, kv_dim, kv_dim))
        self.proj = CastedLinear(cfg.model_dim, cfg.model_dim, zero_init=True)
        self.q_gain = nn.Parameter(torch.full((cfg.num_heads,), cfg.qk_gain_init))

    def qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """q, k, v (batch, time, heads, head_dim) from one matmul; three parameters, orthogonalized apart by Muon."""
        qkv = F.linear(x, torch.cat((self.c_q.weight, self.c_k.weight, self.c_v.weight)))
        return qkv.unflatten(-1, (-1, self.head_dim)).split([self.num_heads, self.num_kv_heads, self.num_kv_heads], -2)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(self.attend(x).flatten(2))

    def attend(self, x: Tensor) -> Tensor:
        """Each head's output (batch, time, heads, head_dim), before the output projection."""
        q, k, v = self.qkv(x)
        # RMS-normed q and k; cast back to the matmul dtype so the attention kernel runs in bf16.
        q, k = F.rms_norm(q, (self.head_dim,)), F.rms_norm(k, (self.head_dim,))
        q = (rotary(q, self.rope_base, self.rope_dims) * self.q_gain[None, None, :, None]).to(v.dtype)
        k = rotary(k, self.rope_base, self.rope_dims).to(v.dtype)
        y = causal_attention(q, k, v)
        return exclude_own_value(y, v) if self.xsa else y

class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.fc = CastedLinear(cfg.model_dim, cfg.mlp_hidden)
        self.proj = CastedLinear(cfg.mlp_hidden, cfg.model_dim, zero_init=True)

    def forward(self, x: Tensor) -> Tensor:
        # LeakyReLU(0.5)^2: negative pre-activations still pass a little gradient.
        return self.proj(F.leaky_relu(self.fc(x), negative_slope=0.5).square())

class Block(nn.Module):
    """Pre-norm mixer and MLP with output scales, after a learned mix with the first input; LN_SCALE: 1/sqrt(l+1)."""

    def __init__(self, cfg: ModelConfig, layer: int, mixer: nn.Module):
        super().__init__()
        dim = cfg.model_dim
        self.attn, self.mlp = mixer, MLP(cfg)
        self.attn_scale, self.mlp_scale = nn.Parameter(torch.ones(dim)), nn.Parameter(torch.ones(dim))
        self.resid_mix = nn.Parameter(torch.stack((torch.ones(dim), torch.zeros(dim))))
        self.input_scale = (layer + 1) ** -0.5 if cfg.ln_scale else 1.0

    def forward(self, x: Tensor, x0: Tensor) -> Tensor:
        # The fp32 gains are cast to the stream's dtype, which would otherwise be promoted to fp32.
        mix, attn_scale, mlp_scale = (p.to(x.dtype) for p in (self.resid_mix, self.attn_scale, self.mlp_scale))
        x = mix[0] * x + mix[1] * x0
        x = x + attn_scale * self.attn(F.rms_norm(x, (x.size(-1),)) * self.input_scale)
        return x + mlp_scale * self.mlp(F.rms_norm(x, (x.size(-1),)) * self.input_scale)

class SmearGate(nn.Module):
    """(1 - g) x_t + g x_{t-1}, g = sigmoid(per channel); a position in `cut` (if given) sees zeros before it."""

    def __init__(self, dim: int):
        super().__init__()
        self.gate = nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor, cut: Tensor | None = None) -> Tensor:
        previous = F.pad(x[:, :-1] if cut is None else x[:, :-1].masked_fill(cut[:, 1:, None], 0), (0, 0, 1, 0))
        return torch.lerp(x, previous, torch.sigmoid(self.gate).to(x.dtype))

class BigramHash(nn.Module):
    """Embedding of the hashed (previous id, current id) pair, projected to the model width."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.vocab_size, self.buckets, self.hash = cfg.vocab_size, cfg.bigram_hash_buckets, cfg.bigram_hash
        self.embed = nn.Embedding(cfg.bigram_hash_buckets, cfg.bigram_hash_dim)
        nn.init.normal_(self.embed.weight, std=cfg.bigram_init_std)
        self.proj = CastedLinear(cfg.bigram_hash_dim, cfg.model_dim, zero_init=True)

    def bucket_ids(self, ids: Tensor, cut: Tensor | None = None) -> Tensor:  # id 0 stands before a start or a cut
        prev = F.pad(ids[:, :-1] if cut is None else ids[:, :-1].masked_fill(cut[:, 1:], 0), (1, 0))
        if self.hash == "seed":  # PR #705's hash: only the low bits of prev reach the bucket
            return (prev * 256 + ids) % self.buckets
        # Fibonacci hashing: the high half of the 32-bit product depends on every bit of the pair.
        key = (prev * self.vocab_size + ids) * 2654435761 & 0xFFFFFFFF
        return key * self.buckets >> 32

    def forward(self, ids: Tensor, cut: Tensor | None = None) -> Tensor:
        return self.proj(self.embed(self.bucket_ids(ids, cut)))

SIGREG_KNOTS, SIGREG_PROJECTIONS = (0.2, 3.0, 17), 256  # linspace of the knots t; random directions

def sigreg(z: Tensor, directions: Tensor, t: Tensor) -> Tensor:
    """Epps-Pulley statistic of standardized latents against N(0, 1) along fixed random directions:
    the squared distance of the empirical characteristic function from exp(-t^2 / 2) at the knots t."""
    z = (z - z.mean(0)) / z.std(0, correction=0).clamp_min(1e-6)
    projected = (z @ directions)[..., None] * t
    return ((projected.cos().mean(0) - torch.exp(-0.5 * t**2)).square() + projected.sin().mean(0).square()).mean()

class ChunkJepa(nn.Module):
    """Chunk-level latent prediction (PR #832): chunk c-1's latent (pooled detached hidden states) predicts
    chunk c's, injected into chunk c's positions, which have all seen chunk c-1. Its loss (MSE + SIGReg)
    trains the projector and predictor; the zero-initialized injection learns from the byte loss."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        dim, latent = cfg.model_dim, cfg.jepa_latent_dim
        self.chunk, self.sigreg_weight = cfg.jepa_chunk_size, cfg.jepa_sigreg_weight
        norm = lambda: nn.RMSNorm(latent, elementwise_affine=False)  # noqa: E731
        self.project = nn.Sequential(CastedLinear(dim, latent), norm(), nn.SiLU(), CastedLinear(latent, latent))
        self.predict = nn.Sequential(CastedLinear(latent, latent), norm(), nn.SiLU(), CastedLinear(latent, latent))
        self.start = nn.Parameter(torch.randn(latent) * 0.02)
        self.inject = CastedLinear(latent, dim, zero_init=True)
        # Buffers, not module-level tensors: they move with the model, so a compiled step copies nothing to the GPU.
        self.register_buffer("directions", F.normalize(torch.randn(latent, SIGREG_PROJECTIONS), dim=0),
                             persistent=False)
        self.register_buffer("knots", torch.linspace(*SIGREG_KNOTS), persistent=False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(x + injected predictions, JEPA loss); a partial last chunk too: no output depends on what follows."""
        bsz, seqlen, dim = x.shape
        chunks = seqlen // self.chunk  # complete chunks: the ones with a latent
        pooled = x[:, : chunks * self.chunk].detach().view(bsz, chunks, self.chunk, dim).mean(2)
        latents = self.project(pooled)
        previous = torch.cat((self.start.to(latents.dtype).expand(bsz, 1, -1), latents), dim=1)
        predicted = self.predict(previous[:, : -(-seqlen // self.chunk)])
        x = x + self.inject(predicted.detach()).repeat_interleave(self.chunk, dim=1)[:, :seqlen]
        if chunks == 0:  # shorter than one chunk (only in tests): nothing to predict
            return x, x.new_zeros(())
        dtype = self.directions.dtype  # fp32 under autocast: the cosines need it
        loss = F.mse_loss(predicted[:, :chunks].to(dtype), latents.detach().to(dtype))
        return x, loss + self.sigreg_weight * sigreg(latents.flatten(0, 1).to(dtype), self.directions, self.knots)

class ByteGPT(nn.Module):
    """Tied byte embedding (+ bigram), RMSNorm, SmearGate, blocks with U-Net skips, chunk-JEPA, softcapped head."""

    def __init__(self, cfg: ModelConfig, mixers: dict | None = None):
        super().__init__()
        self.cfg, mixers = cfg, mixers or {"A": CausalSelfAttention}
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.model_dim)
        nn.init.normal_(self.tok_emb.weight, std=cfg.tied_embed_init_std)
        self.smear = SmearGate(cfg.model_dim) if cfg.smear_gate else lambda x, cut=None: x
        self.bigram = BigramHash(cfg) if cfg.bigram_hash_buckets else None
        self.blocks = nn.ModuleList(Block(cfg, i, mixers[letter](cfg, i)) for i, letter in enumerate(cfg.block_pattern))
        self.num_encoder_layers = len(self.blocks) // 2
        num_skips = min(self.num_encoder_layers, len(self.blocks) - self.num_encoder_layers) if cfg.unet_skips else 0
        # None, not an empty parameter: DDP fails at step 2 on a parameter that gets no gradient.
        self.skip_weights = nn.Parameter(torch.ones(num_skips, cfg.model_dim)) if num_skips else None
        self.jepa = ChunkJepa(cfg) if cfg.jepa_chunk_size else None
        if cfg.ortho_init:  # output projections are zero-initialized, so PR #832's 1/sqrt(2L) scale has no effect
            for m in self.modules():
                if isinstance(m, CastedLinear) and not m.zero_init and min(m.weight.shape) >= 64:
                    nn.init.orthogonal_(m.weight)

    def embed(self, ids: Tensor) -> Tensor:
        """Byte (+ bigram) embedding, SmearGate; with DOC_BOUNDARY nothing reaches a document's BOS from before it."""
        cut = ids == BOS_ID if self.cfg.doc_boundary else None  # without it, no mask work on the hot path
        x, dim = self.tok_emb(ids), (self.cfg.model_dim,)
        bigram = self.bigram(ids, cut) if self.bigram is not None else 0
        if self.cfg.bigram_in_norm:
            return self.smear(F.rms_norm(x + bigram, dim), cut)
        return self.smear(F.rms_norm(x, dim), cut) + bigram

    def trunk(self, x: Tensor) -> Tensor:
        """The residual stream runs in autocast's dtype (bf16 on GPU): half the bytes of fp32."""
        if torch.is_autocast_enabled(x.device.type):
            x = x.to(torch.get_autocast_dtype(x.device.type))
        x0, skips, weights = x, [], () if self.skip_weights is None else self.skip_weights.to(x.dtype)
        for i, block in enumerate(self.blocks):
            decoder_index = i - self.num_encoder_layers
            if 0 <= decoder_index < len(weights):
                x = x + weights[decoder_index] * skips.pop()
            x = block(x, x0)
            if i < len(weights):
                skips.append(x)
        return x

    def final_hidden(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(the residual stream after the chunk-JEPA injection, normalized; the auxiliary loss, else 0)."""
        x, aux = self.jepa(x) if self.jepa is not None else (x, torch.zeros((), device=x.device))
        return F.rms_norm(x.float(), (self.cfg.model_dim,)), aux  # fp32, so the eval head stays fp32

    def hidden_and_aux(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        return self.final_hidden(self.trunk(self.embed(ids)))

    def hidden(self, ids: Tensor) -> Tensor:
        return self.hidden_and_aux(ids)[0]

    def logits(self, hidden: Tensor) -> Tensor:
        cap = self.cfg.logit_softcap
        return cap * torch.tanh(F.linear(hidden, self.tok_emb.weight.to(hidden.dtype)).float() / cap)

    def forward(self, ids: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """(mean cross-entropy in nats over all positions, auxiliary loss)."""
        hidden, aux = self.hidden_and_aux(ids)
        return F.cross_entropy(self.logits(hidden).flatten(0, 1), targets.flatten()), aux

def build_model(cfg: ModelConfig) -> ByteGPT:
    if needs_research_module(cfg):
        return optional_module("research_options").build_model(cfg)
    return optional_module("frontier_next").NextByteGPT(cfg) if needs_next_module(cfg) else ByteGPT(cfg)


# -----------------------------
# MUON OPTIMIZER
# -----------------------------
# Muon (https://kellerjordan.github.io/posts/muon/): momentum, then the update matrix is replaced by
# the nearest semi-orthogonal one (Newton-Schulz iteration), scaled for non-square shapes.

NEWTON_SCHULZ_COEFFICIENTS = (3.4445, -4.7750, 2.0315)  # (a, b, c) of every iteration

def newton_schulz(g: Tensor, coefficients: tuple, dtype: torch.dtype) -> Tensor:
    """Orthogonalizes each matrix of g (..., rows, cols): a batch of same-shape matrices in one matmul chain, one
    iteration per (a, b, c) of `coefficients`, in `dtype` (bf16 in a bf16 run, as on GPU; fp32 in an fp32 run)."""
    x = g.to(dtype)
    x = x / (x.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    transposed = x.size(-2) > x.size(-1)
    if transposed:
        x = x.mT
    for a, b, c in coefficients:
        gram = x @ x.mT
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.mT if transposed else x

class Muon(torch.optim.Optimizer):
    """Every rank keeps every momentum buffer; rank r orthogonalizes parameters r, r + world, ... (one batch per
    shape), and one all-reduce shares the updates (in `dtype`: each slot has one writer, so the sum is exact)."""

    def __init__(self, params, lr: float, momentum: float, coefficients: tuple, weight_decay: float,
                 orthogonalize=newton_schulz, dtype: torch.dtype = torch.float32):
        super().__init__(params, dict(lr=lr, base_lr=lr, momentum=momentum, weight_decay=weight_decay))
        self.coefficients, self.dtype = tuple(coefficients), dtype
        self.orthogonalize = orthogonalize  # torch.compile(newton_schulz) on GPU: one fused kernel chain

    @torch.no_grad()
    def step(self, closure=None):
        distributed = dist.is_available() and dist.is_initialized()
        world_size, rank = (dist.get_world_size(), dist.get_rank()) if distributed else (1, 0)
        for group in self.param_groups:
            params, momentum = group["params"], group["momentum"]
            if not params:
                continue
            fresh = [p for p in params if "momentum_buffer" not in self.state[p]]  # once, not a setdefault every step
            self.state.update({p: {"momentum_buffer": torch.zeros_like(p)} for p in fresh})
            bufs = [self.state[p]["momentum_buffer"] for p in params]
            torch._foreach_mul_(bufs, momentum)
            torch._foreach_add_(bufs, [p.grad for p in params])
            sizes = [p.numel() for p in params]
            flat = torch.zeros(sum(sizes), device=params[0].device, dtype=self.dtype)
            slots, mine = flat.split(sizes), collections.defaultdict(list)
            for i in range(rank, len(params), world_size):
                mine[params[i].shape].append(i)
            for (rows, cols), batch in mine.items():
                nesterov = torch._foreach_add([params[i].grad for i in batch], [bufs[i] for i in batch], alpha=momentum)
                update = self.orthogonalize(torch.stack(nesterov), self.coefficients, self.dtype)
                update *= max(1.0, rows / cols) ** 0.5
                torch._foreach_copy_([slots[i] for i in batch], list(update.flatten(1)))
            if distributed:
                dist.all_reduce(flat)
            torch._foreach_mul_(params, 1.0 - group["lr"] * group["weight_decay"])
            updates = [u.view_as(p) for u, p in zip(flat.float().split(sizes), params)]
            torch._foreach_add_(params, updates, alpha=-group["lr"])

def build_optimizers(model: ByteGPT, args: Hyperparameters, compile: bool = False,
                     bf16: bool = False) -> tuple[list, Muon]:
    """Muon for the matrices; AdamW for embeddings, scalars, and (no weight decay, as PR #832) the chunk-JEPA."""
    jepa = list(model.jepa.parameters()) if model.jepa is not None else []
    embeddings = [model.tok_emb.weight] + ([model.bigram.embed.weight] if model.bigram is not None else [])
    taken = {id(p) for p in jepa + embeddings}
    matrices = [m.weight for m in model.modules() if isinstance(m, CastedLinear) and id(m.weight) not in taken]
    taken |= {id(p) for p in matrices}
    scalars = [p for p in model.parameters() if id(p) not in taken]

    def adam(params: list[Tensor], lr: float, weight_decay: float) -> torch.optim.AdamW:
        return torch.optim.AdamW([{"params": params, "lr": lr, "base_lr": lr}], betas=(args.beta1, args.beta2),
                                 eps=args.adam_eps, weight_decay=weight_decay, fused=params[0].is_cuda)

    coefficients = ((NEWTON_SCHULZ_COEFFICIENTS,) * args.muon_backend_steps if args.ns_coefficients == "quintic"
                    else optional_module("frontier_next").POLAR_EXPRESS_COEFFICIENTS[: args.muon_backend_steps])
    muon = Muon(matrices, args.matrix_lr, args.muon_momentum, coefficients, args.muon_weight_decay,
                torch.compile(newton_schulz) if compile else newton_schulz, torch.bfloat16 if bf16 else torch.float32)
    optimizers = [adam(embeddings, args.tied_embed_lr, args.adam_weight_decay), muon,
                  adam(scalars, args.scalar_lr, args.adam_weight_decay)]
    return optimizers + ([adam(jepa, args.jepa_lr, 0.0)] if jepa else []), muon


# -----------------------------
# EVALUATION
# -----------------------------
# BPB = (sum of the losses of all scored targets, BOS/UNK included) / ln 2 / (bytes those targets count),
# in float64 summed over ranks; stride = context is the non-overlapping eval, a shorter one the sliding eval.

def eval_windows(num_tokens: int, context: int, stride: int) -> np.ndarray:
    """Rows (start, lo, hi): a window reads stream[start : start + context], position p predicts stream[start + p + 1]
    and positions lo..hi-1 are scored: each target 1..num_tokens-1 once, in order, by the first window to see it."""
    targets = num_tokens - 1
    require(targets >= 1, f"evaluation stream has {num_tokens} tokens; need at least 2")
    require(0 < stride <= context, f"VAL_SLIDING_STRIDE={stride} must be in 1..TRAIN_SEQ_LEN={context}")
    if targets <= context:
        return np.array([[0, 0, targets]])
    starts = np.arange(0, targets - context + 1, stride)
    lo = np.where(starts == 0, 0, context - stride)  # the first window scores all its positions
    windows = np.stack([starts, lo, np.full(starts.size, context)], axis=1)
    covered = int(starts[-1]) + context
    if covered < targets:
        windows = np.vstack([windows, [targets - context, context - (targets - covered), context]])
    return windows

def target_range(windows: np.ndarray) -> tuple[int, int]:
    """The targets [first, last) that a run of consecutive windows scores."""
    if not len(windows):
        return 0, 0
    return int(windows[0, 0] + windows[0, 1] + 1), int(windows[-1, 0] + windows[-1, 2] + 1)

@torch.inference_mode()
def score_windows(model: ByteGPT, hidden_fn, tokens: Tensor, windows: np.ndarray, context: int, batch_seqs: int,
                  rt: Runtime) -> Tensor:
    """Losses (nats, float32) of the windows' targets in order, in fixed-shape batches (no recompiles); window starts
    and scored positions go to the device once (a pageable copy per batch would wait for the GPU)."""
    padded = np.zeros((-(-len(windows) // batch_seqs) * batch_seqs, 3), np.int64)
    padded[: len(windows)] = windows
    positions = np.arange(context)
    picks = [np.flatnonzero((positions >= batch[:, 1:2]) & (positions < batch[:, 2:3]))
             for batch in padded.reshape(-1, batch_seqs, 3)]
    bounds = np.cumsum([0] + [p.size for p in picks]).tolist()
    on_device = torch.from_numpy(np.concatenate([padded[:, 0], *picks])).to(rt.device)
    starts, all_picks = on_device[: len(padded), None], on_device[len(padded) :]
    offsets, losses = torch.arange(context + 1, device=rt.device), []
    for i in range(len(picks)):
        rows = tokens[starts[i * batch_seqs : (i + 1) * batch_seqs] + offsets].long()
        with rt.autocast():
            hidden = hidden_fn(rows[:, :-1])
        pick = all_picks[bounds[i] : bounds[i + 1]]
        logits = model.logits(hidden.flatten(0, 1)[pick])
        losses.append(F.cross_entropy(logits, rows[:, 1:].flatten()[pick], reduction="none").float())
    return torch.cat(losses) if losses else torch.zeros(0, device=rt.device)

@dataclasses.dataclass
class EvalResult:
    val_loss: float  # nats per scored target
    val_bpb: float
    scored_targets: int
    targets: int
    byte_count: int
    eval_ms: float
    losses: Tensor  # this rank's per-target losses, in stream order from target `first_target`
    first_target: int

def evaluate(model: ByteGPT, hidden_fn, stream: Tensor, context: int, stride: int, batch_seqs: int,
             byte_tables: tuple[Tensor, Tensor, Tensor], rt: Runtime, score=score_windows) -> EvalResult:
    """Scores every target of `stream` once, rank r the r-th share of the windows; `score` gives their losses."""
    started, num_tokens = time.perf_counter(), stream.numel()
    mine = np.array_split(eval_windows(num_tokens, context, stride), rt.world_size)[rt.rank]
    tokens = stream.to(rt.device, torch.int32)
    if num_tokens < context + 1:  # shorter than one window: padding is never scored, causality keeps it inert
        tokens = F.pad(tokens, (0, context + 1 - num_tokens))
    first, last = target_range(mine)
    losses = score(model, hidden_fn, tokens, mine, context, batch_seqs, rt)
    base, space, boundary = (t.to(rt.device) for t in byte_tables)  # target j = tokens[j], read after tokens[j - 1]
    target, prev = tokens[first:last].long(), tokens[max(first - 1, 0) : max(last - 1, 0)].long()
    byte_count = base[target] + (space[target] & ~boundary[prev])
    totals = torch.stack([losses.double().sum(), byte_count.double().sum(),
                          torch.tensor(float(losses.numel()), dtype=torch.float64, device=rt.device)])
    if rt.distributed:
        dist.all_reduce(totals)
    loss_total, bytes_total, scored_total = totals.tolist()
    require(bytes_total > 0, "evaluation stream holds no byte targets")
    return EvalResult(loss_total / scored_total, loss_total / math.log(2) / bytes_total, int(scored_total),
                      num_tokens - 1, int(bytes_total), 1000 * (time.perf_counter() - started), losses, first)

class Scorer:
    """Scores a model on val with the non-overlapping eval (stride = context) and the sliding one."""

    def __init__(self, args: Hyperparameters, rt: Runtime, spec: DataSpec):
        self.args, self.rt, self.spec = args, rt, spec
        val = np.concatenate([load_shard(f, spec.vocab_size) for f in spec.val_files])
        self.val_sha256 = hashlib.sha256(val.tobytes()).hexdigest()
        self.val = torch.from_numpy(val.astype(np.int32)).to(rt.device)  # on the device once, for every eval
        self.byte_tables = byte_count_tables(spec, args.tokenizer_path)
        cap = args.val_sliding_max_tokens
        self.sliding_val = self.val[:cap] if 0 < cap < val.size else self.val
        self.coverage = "full" if self.sliding_val.numel() == val.size else f"capped_first_{cap}_of_{val.size}_tokens"
        rt.log(f"data:{args.data_path} layout:{spec.layout} (from {spec.note}) vocab:{spec.vocab_size} "
               f"train_shards:{len(spec.train_files)} val_tokens:{val.size} heldout_tokens:{args.heldout_tokens}")

    def hidden_fn(self, model: ByteGPT):
        return torch.compile(model.hidden, dynamic=False, fullgraph=True) if self.rt.compile else model.hidden

    def evaluate(self, model: ByteGPT, hidden_fn, stream: Tensor, stride: int, score=score_windows) -> EvalResult:
        model.eval()
        result = evaluate(model, hidden_fn, stream, self.args.train_seq_len, stride, self.args.eval_batch_seqs,
                          self.byte_tables, self.rt, score)
        model.train()
        return result

    def report(self, label: str, model: ByteGPT, hidden_fn) -> tuple[dict, EvalResult]:
        args, log = self.args, self.rt.log
        plain = self.evaluate(model, hidden_fn, self.val, args.train_seq_len)
        log(f"{label} val_loss:{plain.val_loss:.4f} val_bpb:{plain.val_bpb:.4f} eval_time:{plain.eval_ms:.0f}ms")
        slide = self.evaluate(model, hidden_fn, self.sliding_val, args.val_sliding_stride)
        log(f"{label}_sliding val_loss:{slide.val_loss:.4f} val_bpb:{slide.val_bpb:.4f} "
            f"stride:{args.val_sliding_stride} context:{args.train_seq_len} scored_targets:{slide.scored_targets} "
            f"targets:{slide.targets} coverage:{self.coverage} eval_time:{slide.eval_ms:.0f}ms")
        return {"val_loss": plain.val_loss, "val_bpb": plain.val_bpb, "sliding_val_loss": slide.val_loss,
                "sliding_val_bpb": slide.val_bpb, "sliding_scored_targets": slide.scored_targets,
                "sliding_targets": slide.targets, "val_targets": plain.targets, "val_byte_targets": plain.byte_count,
                "eval_ms": plain.eval_ms, "sliding_eval_ms": slide.eval_ms, "score_method": "sliding",
                "score_bpb": slide.val_bpb, "score_val_loss": slide.val_loss}, slide

    def final_report(self, model: ByteGPT, hidden_fn) -> dict:
        """The post-quant scores and each evaluation-time method's: THE score is the sliding eval with all of them."""
        result, slide = self.report("final_int6_zstd22_roundtrip", model, hidden_fn)
        losses = slide.losses
        if uses_eval_methods(self.args):
            result["methods"], losses = optional_module("eval_time").score_methods(self, model, hidden_fn, slide)
            result["score_method"], last = list(result["methods"].items())[-1]
            result.update(score_bpb=last["val_bpb"], score_val_loss=last["val_loss"])
        if self.args.eval_dump:
            optional_module("run_modes").dump_losses(self.args.eval_dump, self.rt, losses, result["score_method"])
        return result


# -----------------------------
# ARTIFACT: QUANTIZATION AND CODECS
# -----------------------------
# Matrices of more than QUANT_MIN_NUMEL values are int6 symbols with an fp16 step per row (the tied embedding
# and bigram table int{EMBED_BITS}), the rest fp16. File: ARTIFACT_MAGIC, 4-byte length, zstd-22 JSON header
# (config, layout, eval context, code sha256, export knobs, per group codec, lengths and crc32, per tensor
# storage, shape, group and offsets), then one payload per group. Loading never executes the file (no pickle).

ARTIFACT_MAGIC, ARTIFACT_FORMAT_VERSION, ARTIFACT_MAX_RAW_BYTES = b"BYTEGOLF", 3, 1 << 30
QUANT_MIN_NUMEL = 65_536  # smaller tensors (gains, scales, mixes, norms) stay fp16
QUANT_LEVELS = {"int4": 7, "int6": 31, "int7": 63, "int8": 127}
CLIP_RATIOS = (1.0, 0.95, 0.9, 0.85, 0.8)
CAP_FIT_CLIPS = tuple(round(2.5 * 2 ** (i / 16), 3) for i in range(60))  # the cap fit's std:K, 2.5 to 32 (cap_fit.py)
EMBEDDING_TABLES = ("tok_emb.weight", "bigram.embed.weight")
EXPORT_KNOBS = ("QUANT", "QUANT_CLIP", "EMBED_BITS", "CODEC", "GPTQ_BLOCK", "GPTQ_DAMP", "GPTQ_CALIB_TOKENS",
                "LQER_RANK")
# Compressed bits per stored value for the size projection; int6: PR #832's at max clip, a Gaussian at std:K.
PROJECTED_BITS = {"int6": 4.5, "int7": 6.0, "int8": 7.0, "fp16": 15.0}

def projected_bits(storage: str, clip: str) -> float:
    if storage != "int6" or clip == "max":
        return PROJECTED_BITS[storage]
    return min(PROJECTED_BITS["int6"], 0.5 * math.log2(2 * math.pi * math.e) + math.log2(31 / float(clip[4:])) + 0.15)

def codec_module(codec: str):
    """Imported only to write or read an artifact: a run without them still trains."""
    try:
        return importlib.import_module(CODECS[codec])
    except ImportError:
        raise RunError(f"the artifact needs the {CODECS[codec]} package (pip install {CODECS[codec]})") from None

def export_codecs(args: Hyperparameters) -> tuple[str, ...]:
    """The codecs CODEC tries, each imported (zstd also packs the header)."""
    codecs = tuple(CODECS) if args.codec == "auto" else ("zstd", args.codec)
    for codec in codecs:
        codec_module(codec)
    return codecs if args.codec == "auto" else (args.codec,)

def storage_for(name: str, t: Tensor, embed_bits: int = 8) -> str:
    if t.ndim == 2 and t.numel() > QUANT_MIN_NUMEL:
        return f"int{embed_bits}" if name in EMBEDDING_TABLES else "int6"  # embeddings are more sensitive
    return "fp16"

def component(model: nn.Module, name: str) -> str:
    """A parameter's report group: blocks.<mixer class>, blocks.mlp, blocks.scales, or its top-level module."""
    parts = name.split(".")
    if parts[0] != "blocks":
        return parts[0]
    if parts[2] == "attn":
        return f"blocks.{type(model.blocks[int(parts[1])].attn).__name__}"
    return f"blocks.{parts[2]}" if len(parts) > 3 else "blocks.scales"

def projected_bits_by_group(model: nn.Module, embed_bits: int, clip: str) -> dict[str, list]:
    """Per report group: [parameters, storages, projected compressed bits]."""
    groups = collections.defaultdict(lambda: [0, set(), 0.0])
    for name, p in model.named_parameters():
        storage, group = storage_for(name, p, embed_bits), groups[component(model, name)]
        group[0], group[2] = group[0] + p.numel(), group[2] + p.numel() * projected_bits(storage, clip)
        group[1].add(storage)
    return groups

def size_report(model: nn.Module, code_bytes: int, args: Hyperparameters) -> list[str]:
    """Parameters, storage and projected artifact bytes per component, the projected total against SIZE_CAP, and
    when it is over, the cap fit's likely choice."""
    groups = projected_bits_by_group(model, args.embed_bits, args.quant_clip)
    total = int(sum(g[2] for g in groups.values()) / 8) + code_bytes
    lines = [f"model_params:{sum(g[0] for g in groups.values())}"]
    lines += [f"  params.{key}:{n} storage:{'+'.join(sorted(s))} projected_bytes:{int(bits / 8)}"
              for key, (n, s, bits) in groups.items()]
    bits = {k: round(projected_bits(k, args.quant_clip), 2) for k in PROJECTED_BITS}
    lines.append(f"projected_total_bytes:{total} (compressed bits per value {bits} at QUANT_CLIP={args.quant_clip}, "
                 f"code so far {code_bytes}; SIZE_CAP {args.size_cap}: {'fits' if total <= args.size_cap else 'OVER'})")
    if total > args.size_cap:
        fitting = [k for k in CAP_FIT_CLIPS if code_bytes + sum(
            g[2] for g in projected_bits_by_group(model, args.embed_bits, f"std:{k:g}").values()) / 8 <= args.size_cap]
        lines.append("WARNING: the configured export is projected over SIZE_CAP; " + (
            f"the cap fit will probably choose QUANT_CLIP=std:{fitting[0]:g}" if args.cap_fit and fitting else
            "CAP_FIT=0, so the run will end over the cap" if fitting else "no clip of the cap fit is projected to fit"))
    return lines

def round_rows(w: Tensor, scale: Tensor, levels: int) -> Tensor:
    return torch.clamp(torch.round(w / scale), -levels, levels)

def row_scales(w: Tensor, levels: int, clip: str) -> Tensor:
    """Each row's step (rows x 1, fp16-representable): its clip / levels."""
    as_stored = lambda clip_value: (clip_value / levels).clamp_min(2**-24).half().to(w.dtype)  # noqa: E731
    if clip.startswith("std:"):
        return as_stored(float(clip[4:]) * w.std(dim=1, correction=0, keepdim=True))
    amax = w.abs().amax(dim=1, keepdim=True)
    scales = torch.stack([as_stored(amax * ratio) for ratio in CLIP_RATIOS])
    errors = torch.stack([(round_rows(w, s, levels) * s - w).square().sum(1) for s in scales])
    return scales[errors.argmin(0), torch.arange(w.size(0))]  # the first minimum: ties keep the larger clip

def damped(hessian: Tensor, damp: float) -> Tensor:
    """Positive definite: a unit diagonal where calibration never reached an input, + damp * mean diagonal."""
    h = hessian.clone()
    h.diagonal()[h.diagonal() == 0] = 1
    h.diagonal().add_(damp * h.diagonal().mean())
    return h

def gptq_rows(w: Tensor, hessian: Tensor, scale: Tensor, levels: int, block: int, damp: float) -> Tensor:
    """GPTQ (Frantar et al., 2022), columns by decreasing Hessian diagonal, lazy updates per block."""
    h = damped(hessian.double(), damp)  # factorized in fp64: cheap next to the column loop, and never bf16
    order = torch.argsort(h.diagonal(), descending=True)
    u = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h[order][:, order])), upper=True).to(w.dtype)
    w, scale = w[:, order].clone(), scale.to(w).flatten()
    q = torch.zeros_like(w)
    for start in range(0, w.size(1), block):
        end = min(start + block, w.size(1))
        err = torch.zeros_like(w[:, start:end])
        for i in range(start, end):
            q[:, i] = round_rows(w[:, i], scale, levels)
            err[:, i - start] = (w[:, i] - q[:, i] * scale) / u[i, i]
            w[:, i + 1 : end] -= torch.outer(err[:, i - start], u[i, i + 1 : end])
        w[:, end:] -= err @ u[start:end, end:]
    return q[:, torch.argsort(order)]

def quantize_rows(w: Tensor, levels: int, clip: str = "max", hessian: Tensor | None = None, block: int = 128,
                  damp: float = 0.01) -> tuple[Tensor, Tensor]:
    """(int8 symbols, fp16 row steps): GPTQ when a Hessian is given, else rounding to nearest."""
    w = w.detach().float()
    with full_fp32(w.device.type):
        scale = row_scales(w, levels, clip)
        q = round_rows(w, scale, levels) if hessian is None else gptq_rows(w, hessian, scale, levels, block, damp)
    return q.cpu().to(torch.int8), scale.cpu().half().flatten()

def calibration_rounds(args: Hyperparameters) -> int:  # micro-batches of one GPU's training shape, shared by ranks
    return -(-args.gptq_calib_tokens // (args.train_batch_tokens // 8))

def hessian_readers(model: nn.Module) -> dict[nn.Module, list[str]]:
    """Each module whose input GPTQ needs: the quantized weights that multiply it. A fused matmul (attention's q, k, v)
    names its matrices in `fused_input_weights`: their own modules never run, so hooks on them would never fire."""
    readers, fused = {}, set()
    for name, m in model.named_modules():
        own = [(f"{name}.{w}", m.get_parameter(w)) for w in getattr(m, "fused_input_weights", ())]
        fused.update(key for key, _ in own)
        if not own and isinstance(m, nn.Linear) and f"{name}.weight" not in fused:
            own = [(f"{name}.weight", m.weight)]
        if weights := [key for key, w in own if storage_for(key, w) != "fp16"]:
            readers[m] = weights
    return readers

@torch.no_grad()
def calibrate(args: Hyperparameters, rt: Runtime, spec: DataSpec, model: ByteGPT, rounds: int) -> dict[str, Tensor]:
    """GPTQ's Hessians: sum x x^T of each quantized matrix's inputs in full fp32 (a bf16 one has no Cholesky) over
    `rounds` micro-batches of training data, rank r taking r, r + world size, ...; the head's inputs for the tied
    embedding, P^T P for bigrams. Each micro-batch's product is summed in fp64, where any order gives the same sum: the
    Hessians, and so the export and its cap fit, are one rank's whatever the world size."""
    readers, head = hessian_readers(model), storage_for("tok_emb.weight", model.tok_emb.weight) != "fp16"
    keys = [names[0] for names in readers.values()] + ["tok_emb.weight"] * head  # all on every rank, idle ones too
    sums = {k: torch.zeros(2 * [model.get_parameter(k).size(1)], dtype=torch.float64, device=rt.device) for k in keys}

    def accumulate(key: str, x: Tensor) -> None:
        with full_fp32(rt.device.type):
            x = x.detach().reshape(-1, x.size(-1)).float()
            sums[key] += (x.T @ x).double()

    hooks = [m.register_forward_hook(lambda _, inputs, __, key=names[0]: accumulate(key, inputs[0]))
             for m, names in readers.items()]
    loader = DistributedTokenLoader(TokenStream(spec.train_files, spec.vocab_size, args.heldout_tokens), 0, 1,
                                    rt.device)
    for i in range(rounds if sums else 0):
        ids = loader.next_batch(args.train_batch_tokens, args.train_seq_len, 8)[0]  # every rank reads, one computes
        if i % rt.world_size == rt.rank:
            with rt.autocast():
                hidden = model.hidden(ids)
            if head:
                accumulate("tok_emb.weight", hidden)
    for hook in hooks:
        hook.remove()
    for key in sorted(sums) if rt.distributed else ():
        dist.all_reduce(sums[key])
    hessians = {name: sums[names[0]].float() for names in [*readers.values(), ["tok_emb.weight"] * head]
                for name in names}
    if model.bigram is not None and storage_for("bigram.embed.weight", model.bigram.embed.weight) != "fp16":
        proj = model.bigram.proj.weight.detach().float()
        hessians["bigram.embed.weight"] = proj.T @ proj
    return hessians

def quantize_state(state: dict[str, Tensor], args: Hyperparameters, hessians: dict[str, Tensor]) -> list[tuple]:
    """(name, storage, int8 symbols or fp16 values, fp16 row steps or None) per tensor."""
    out = []
    for name, t in state.items():
        storage = storage_for(name, t, args.embed_bits)
        if storage == "fp16":
            out.append((name, storage, t.detach().cpu().half(), None))
            continue
        q, scale = quantize_rows(t, QUANT_LEVELS[storage], args.quant_clip, hessians.get(name), args.gptq_block,
                                 args.gptq_damp)
        out.append((name, storage, q, scale))
        if args.lqer_rank and storage == "int6":
            deq = q.float() * scale.float()[:, None]
            out += optional_module("export_research").low_rank_correction(name, t, deq, hessians.get(name), args)
    return out

def group_streams(quantized: list[tuple]) -> tuple[dict[str, list[np.ndarray]], list[dict]]:
    """Each group's int8 streams; each tensor's header entry (offsets into its group's raw bytes)."""
    parts, entries = {"matrices": [], "embeddings": [], "floats": []}, []
    for name, storage, values, scale in quantized:
        group = "floats" if scale is None else "embeddings" if name in EMBEDDING_TABLES else "matrices"
        entry = {"name": name, "storage": storage, "shape": list(values.shape), "group": group}
        for key, part, array in (("offset", group, values), ("scale_offset", "floats", scale)):
            if array is not None:
                entry[key] = sum(a.size for a in parts[part])
                parts[part].append(array.numpy().reshape(-1).view(np.int8))
        entries.append(entry)
    floats = np.concatenate(parts.pop("floats")).reshape(-1, 2)  # fp16 low bytes compress apart from high
    return {**{k: v for k, v in parts.items() if v}, "floats": [floats[:, 0].copy(), floats[:, 1].copy()]}, entries

def zstd22(data: bytes) -> bytes:
    return codec_module("zstd").ZstdCompressor(level=22).compress(data)

def ans_model(counts: list[int]):
    return codec_module("ans").stream.model.Categorical(np.array(counts[1:], np.float64), perfect=False)

def compress_streams(codec: str, streams: list[np.ndarray]) -> tuple[bytes, list | None, int]:
    """(payload, ans: [lowest symbol, counts...] per stream, cost in bytes with the counts)."""
    if codec != "ans":
        data = b"".join(s.tobytes() for s in streams)
        blob = zstd22(data) if codec == "zstd" else codec_module(codec).compress(data, quality=11, lgwin=24)
        return blob, None, len(blob)
    coder = codec_module(codec).stream.stack.AnsCoder()
    counts = [[int(s.min())] + np.bincount(s.astype(np.int64) - s.min(), minlength=2).tolist() for s in streams]
    for s, c in zip(reversed(streams), reversed(counts)):  # a stack: the first stream is decoded first
        coder.encode_reverse(s.astype(np.int32) - c[0], ans_model(c))
    blob = coder.get_compressed().tobytes()
    return blob, counts, len(blob) + len(zstd22(json.dumps(counts).encode()))

def pack_artifact(quantized: list[tuple], cfg: ModelConfig, layout: str, code_sha256: str, eval_context: dict | None,
                  args: Hyperparameters, codecs: dict | None = None) -> bytes:
    """The file from quantize_state's tensors: each group with the smallest of CODEC's (or `codecs[group]`)."""
    streams, entries = group_streams(quantized)
    groups, blobs = [], []
    for name, group in streams.items():
        tried = {c: compress_streams(c, group) for c in (codecs or {}).get(name, export_codecs(args))}
        best = min(tried, key=lambda c: tried[c][2])
        blob, counts, _ = tried[best]
        groups.append({"name": name, "codec": best, "nbytes": len(blob), "lengths": [s.size for s in group],
                       "crc32": zlib.crc32(b"".join(s.tobytes() for s in group)),
                       "tried": {c: cost for c, (_, _, cost) in tried.items()},
                       **({"counts": counts} if counts else {})})
        blobs.append(blob)
    export = {k.lower(): getattr(args, k.lower()) for k in EXPORT_KNOBS}
    header = zstd22(json.dumps({
        "format_version": ARTIFACT_FORMAT_VERSION, "config": dataclasses.asdict(cfg), "layout": layout,
        "eval": eval_context or {}, "code_sha256": code_sha256, "export": export, "groups": groups,
        "tensors": entries}).encode())
    return ARTIFACT_MAGIC + len(header).to_bytes(4, "little") + header + b"".join(blobs)

def decompress_group(group: dict, blob: bytes) -> bytes:
    size, codec = sum(group["lengths"]), group["codec"]
    if size > ARTIFACT_MAX_RAW_BYTES or codec not in CODECS:
        raise ValueError(f"group {group['name']}: codec {codec!r}, {size} bytes")
    if codec == "zstd":
        raw = codec_module(codec).ZstdDecompressor().decompress(blob, max_output_size=size)
    elif codec == "brotli":
        raw = codec_module(codec).Decompressor().process(blob, output_buffer_limit=size)
    else:
        coder = codec_module(codec).stream.stack.AnsCoder(np.frombuffer(blob, np.uint32).copy())
        raw = b"".join((coder.decode(ans_model(c), n) + c[0]).astype(np.int8).tobytes()
                       for n, c in zip(group["lengths"], group["counts"]))
        if not coder.is_empty():
            raise ValueError(f"group {group['name']}: the ans payload has data left after its symbols")
    if len(raw) != size or zlib.crc32(raw) != group["crc32"]:
        raise ValueError(f"group {group['name']}: the {codec} payload does not match its length and crc32")
    if group["name"] == "floats":  # undo the byte shuffle
        raw = np.frombuffer(raw, np.uint8).reshape(2, -1).T.tobytes()
    return raw

def decode_tensor(entry: dict, raw: dict[str, bytes]) -> Tensor:
    shape, numel = entry["shape"], math.prod(entry["shape"])
    if entry["storage"] == "fp16":
        values = np.frombuffer(raw["floats"], np.float16, numel, entry["offset"])
        return torch.from_numpy(values.astype(np.float32)).view(shape)
    if entry["storage"] not in QUANT_LEVELS:
        raise ValueError(f"tensor {entry['name']}: unknown storage {entry['storage']!r}")
    q = np.frombuffer(raw[entry["group"]], np.int8, numel, entry["offset"]).astype(np.float32).reshape(shape[0], -1)
    scale = np.frombuffer(raw["floats"], np.float16, shape[0], entry["scale_offset"]).astype(np.float32)
    return torch.from_numpy(q * scale[:, None]).view(shape)

def artifact_header(data: bytes) -> tuple[dict, int]:
    """An artifact's header, and where its first group starts."""
    start = len(ARTIFACT_MAGIC) + 4
    end = start + int.from_bytes(data[len(ARTIFACT_MAGIC) : start], "little")
    return json.loads(codec_module("zstd").ZstdDecompressor().decompress(data[start:end], max_output_size=1 << 26)), end

def decode_artifact(path: Path) -> tuple[dict, dict[str, Tensor]]:
    """(header, dequantized float32 state dict); RunError naming the file for anything malformed."""
    data = path.read_bytes()
    require(data.startswith(ARTIFACT_MAGIC),
            f"{path}: not a byte-model artifact (bad magic; pickles and other files are refused)")
    try:
        header, end = artifact_header(data)
        if header.get("format_version") != ARTIFACT_FORMAT_VERSION:
            raise ValueError(f"format_version {header.get('format_version')!r}, want {ARTIFACT_FORMAT_VERSION}")
        bounds = np.cumsum([end] + [g["nbytes"] for g in header["groups"]]).tolist()
        if bounds[-1] != len(data):
            raise ValueError(f"{len(data)} bytes, the header accounts for {bounds[-1]}")
        raw = {g["name"]: decompress_group(g, data[a:b]) for g, a, b in zip(header["groups"], bounds, bounds[1:])}
        state = {e["name"]: decode_tensor(e, raw) for e in header["tensors"]}
        if any(name.endswith(".lqer_a") for name in state):  # LQER_RANK's corrections, added back
            state = optional_module("export_research").fold_corrections(state)
    except RunError:
        raise
    except Exception as exc:  # whatever a malformed file makes a parser raise
        raise RunError(f"{path}: corrupt artifact ({type(exc).__name__}: {exc})") from None
    return header, state

def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# -----------------------------
# TRAINING
# -----------------------------

class WeightAverages:
    """fp32 EMA of the weights (every step) and SWA (a snapshot every SWA_EVERY steps in the last SWA_LAST_FRAC)."""

    def __init__(self, model: nn.Module, args: Hyperparameters):
        self.params = list(model.parameters())
        self.ema_decay, self.swa_every, self.swa_last_frac = args.ema_decay, args.swa_every, args.swa_last_frac
        self.ema = [p.detach().clone() for p in self.params] if self.ema_decay > 0 else []
        self.swa_sum = [torch.zeros_like(p) for p in self.params] if self.swa_every > 0 else []
        self.swa_count = 0

    @torch.no_grad()
    def update(self, step: int, progress: float) -> None:
        if self.ema:
            torch._foreach_lerp_(self.ema, self.params, 1.0 - self.ema_decay)
        if self.swa_sum and step % self.swa_every == 0 and progress >= 1.0 - self.swa_last_frac:
            torch._foreach_add_(self.swa_sum, self.params)
            self.swa_count += 1

    def candidates(self) -> dict[str, list[Tensor]]:
        return {"raw": [p.detach().clone() for p in self.params], **({"ema": self.ema} if self.ema else {}),
                **({"swa": [s / self.swa_count for s in self.swa_sum]} if self.swa_count else {})}

@dataclasses.dataclass
class Progress:
    step: int = 0
    training_ms: float = 0.0

def lr_scale(args: Hyperparameters, step: int, elapsed_ms: float) -> float:
    """Linear warmdown over the last WARMDOWN_ITERS steps, of ITERATIONS or of the time left, whichever ends first,
    down to MIN_LR."""
    if args.warmdown_iters <= 0:
        return 1.0
    scale = min(1.0, max(args.iterations - step, 0) / args.warmdown_iters)
    if args.max_wallclock_seconds > 0:
        step_ms = elapsed_ms / max(step, 1)
        remaining_ms = max(1000 * args.max_wallclock_seconds - elapsed_ms, 0.0)
        scale = min(scale, remaining_ms / max(args.warmdown_iters * step_ms, 1e-9))
    return max(scale, args.min_lr)

def training_fraction(args: Hyperparameters, step: int, elapsed_ms: float) -> float:
    by_time = elapsed_ms / (1000 * args.max_wallclock_seconds) if args.max_wallclock_seconds > 0 else 0.0
    return max(step / max(args.iterations, 1), by_time)

def jepa_weight(args: Hyperparameters, fraction: float) -> float:
    """Chunk-JEPA loss weight: 0, then a linear ramp to JEPA_LAMBDA_MAX, then 0 again (PR #832)."""
    ramp = (fraction - args.jepa_phase1_frac) / max(args.jepa_phase2_frac, 1e-9)
    return args.jepa_lambda_max * ramp if 0 <= ramp < 1 else 0.0

# Activation bytes per token, layer and unit of MODEL_DIM + MLP_HIDDEN / 2: fp32 measured on CPU, bf16 GPU assumed.
ACTIVATION_BYTES = {"fp32": 50, "bf16": 35}

def check_memory(args: Hyperparameters, rt: Runtime, model: ByteGPT) -> None:
    """Stops a run whose rough peak (six fp32 copies of the weights: weights, gradients, optimizer and average states;
    one micro-batch's activations and logits) exceeds what the device has free."""
    tokens, kind = args.train_batch_tokens // 8, "bf16" if rt.bf16 and rt.device.type == "cuda" else "fp32"
    layers, width = len(model.blocks) * (1 + args.num_loops), args.model_dim + args.mlp_hidden / 2
    needed = (24 * sum(p.numel() for p in model.parameters()) + 12 * tokens * model.cfg.vocab_size
              + tokens * layers * width * ACTIVATION_BYTES[kind])
    meminfo = Path("/proc/meminfo").read_text().splitlines() if Path("/proc/meminfo").is_file() else []
    free = torch.cuda.mem_get_info(rt.device)[0] if rt.device.type == "cuda" else next(
        (1024 * int(line.split()[1]) for line in meminfo if line.startswith("MemAvailable:")), math.inf)
    rt.log(f"peak_memory_estimate:{needed / 2**30:.1f}GiB free:{free / 2**30:.1f}GiB ({rt.device.type})")
    require(not args.memory_check or needed <= free, f"this run needs about {needed / 2**30:.1f} GiB at its peak and "
            f"the {rt.device.type} has {free / 2**30:.1f} GiB free; on a CPU take the demo's shape (python demo.py "
            "--print-command), or lower TRAIN_BATCH_TOKENS; MEMORY_CHECK=0 skips this check")

class Trainer:
    """One optimizer step = 8 // WORLD_SIZE micro-steps of TRAIN_BATCH_TOKENS / 8 tokens per rank."""

    def __init__(self, args: Hyperparameters, rt: Runtime, model: ByteGPT, train_model: nn.Module,
                 loader: DistributedTokenLoader):
        self.args, self.rt, self.model, self.train_model, self.loader = args, rt, model, train_model, loader
        self.grad_accum = 8 // rt.world_size
        self.optimizers, self.muon = build_optimizers(model, args, rt.compile, rt.bf16)

    def step(self, step: int, lr_mult: float, aux_weight: float) -> tuple[Tensor, Tensor]:
        """One optimizer step; (mean cross-entropy, mean auxiliary loss) of its micro-batches."""
        args, losses = self.args, torch.zeros(2, device=self.rt.device)
        for micro in range(self.grad_accum):
            if self.rt.distributed:  # all-reduce gradients only on the last micro-step
                self.train_model.require_backward_grad_sync = micro == self.grad_accum - 1
            x, y = self.loader.next_batch(args.train_batch_tokens, args.train_seq_len, self.grad_accum)
            with self.rt.autocast():
                ce, aux = self.train_model(x, y)
            ((ce + aux_weight * aux) / self.grad_accum).backward()
            losses += torch.stack([ce.detach(), aux.detach()]) / self.grad_accum
        warm = min(step / args.muon_momentum_warmup_steps, 1.0) if args.muon_momentum_warmup_steps > 0 else 1.0
        for group in self.muon.param_groups:
            group["momentum"] = (1 - warm) * args.muon_momentum_warmup_start + warm * args.muon_momentum
        for group in (group for opt in self.optimizers for group in opt.param_groups):
            group["lr"] = group["base_lr"] * lr_mult
        if args.grad_clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), args.grad_clip_norm)
        for opt in self.optimizers:
            opt.step()
            opt.zero_grad(set_to_none=True)
        return losses[0], losses[1]

    def prime(self) -> None:
        """WARMUP_STEPS real steps compile and warm every path (each graph of a depth recurrence), when something is
        compiled; then weights, optimizers and data are put back."""
        if self.args.warmup_steps <= 0 or not self.rt.compile:
            self.rt.log(f"warmup_steps:0 ({'nothing is compiled' if not self.rt.compile else 'WARMUP_STEPS=0'})")
            return
        weights, opt_states = copy.deepcopy((self.model.state_dict(), [o.state_dict() for o in self.optimizers]))
        data_position = self.loader.state()
        phases = (False, True) if self.model.cfg.num_loops else (True,)  # a depth recurrence compiles two graphs
        for looping in phases:
            self.model.looping, tag = looping, f" loop:{'on' if looping else 'off'}" if len(phases) > 1 else ""
            for i in range(self.args.warmup_steps):
                self.step(0, 1.0, 0.0)
                self.rt.log(f"warmup_step:{i + 1}/{self.args.warmup_steps}{tag}")
        self.model.load_state_dict(weights)
        for opt, state in zip(self.optimizers, opt_states):
            opt.load_state_dict(state)
        self.loader.load_state(data_position)

    def log_step(self, progress: Progress, train_loss: float, aux_loss: float, final: bool) -> None:
        args, elapsed = self.args, progress.training_ms
        if args.train_log_every > 0 and (progress.step <= 10 or progress.step % args.train_log_every == 0 or final):
            jepa = f" jepa_loss:{aux_loss:.4f}" if self.model.jepa is not None else ""
            self.rt.log(f"step:{progress.step}/{args.iterations} train_loss:{train_loss:.4f} "
                        f"train_time:{elapsed:.0f}ms step_avg:{elapsed / progress.step:.2f}ms{jepa}")

    def agree(self, progress: Progress, train_loss: Tensor, aux_loss: Tensor, clock_ms: float) -> tuple[float, float]:
        """One all-reduce per step: mean losses, any non-finite loss, and the mean clock that every rank then uses."""
        flags = torch.stack([train_loss.double(), aux_loss.double(), (~torch.isfinite(train_loss)).double(),
                             train_loss.new_tensor(clock_ms, dtype=torch.float64)])
        if self.rt.distributed:
            dist.all_reduce(flags)
        loss_sum, aux_sum, nonfinite, clock_sum = flags.tolist()
        require(not nonfinite,
                f"non-finite train loss at step {progress.step}; stopping (try a lower LR or GRAD_CLIP_NORM)")
        progress.training_ms = clock_sum / self.rt.world_size
        return loss_sum / self.rt.world_size, aux_sum / self.rt.world_size

    def run(self, progress: Progress, averages: WeightAverages, validate) -> Progress:
        """Trains until ITERATIONS or the wallclock cap; validating or checkpointing is not training time."""
        args, rt = self.args, self.rt
        cap_ms = 1000 * args.max_wallclock_seconds if args.max_wallclock_seconds > 0 else math.inf
        rt.sync()
        t0 = time.perf_counter()

        def pause(action) -> None:  # the clock stops while this rank takes part in `action`
            nonlocal t0
            t0 += rt.timed(action)[1] / 1000

        while True:
            last = progress.step >= args.iterations or progress.training_ms >= cap_ms
            if last:  # the last step's GPU tail counts too; nothing reads the clock after this
                rt.sync()
                progress.training_ms += 1000 * (time.perf_counter() - t0)
            if last or (args.val_loss_every > 0 and progress.step % args.val_loss_every == 0):
                pause(lambda: validate(progress))
            if last:
                break
            lr = lr_scale(args, progress.step, progress.training_ms)
            fraction = training_fraction(args, progress.step, progress.training_ms)
            self.model.looping = fraction >= args.enable_looping_at  # a depth recurrence's switch (frontier_next.py)
            train_loss, aux_loss = self.step(progress.step, lr, jepa_weight(args, fraction))
            progress.step += 1
            measured = time.perf_counter()  # before the step's GPU work ends: the rest counts in the next step
            losses = self.agree(progress, train_loss, aux_loss, progress.training_ms + 1000 * (measured - t0))
            t0 = measured  # the clock runs on from the agreed time
            averages.update(progress.step, training_fraction(args, progress.step, progress.training_ms))
            stop = progress.training_ms >= cap_ms
            self.log_step(progress, *losses, stop)
            if args.checkpoint_every > 0 and (progress.step % args.checkpoint_every == 0 or stop
                                              or progress.step >= args.iterations):
                pause(lambda: optional_module("run_modes").checkpoint(self, progress, averages))
        if progress.step < args.iterations:
            rt.log(f"stopping_early: wallclock_cap train_time:{progress.training_ms:.0f}ms "
                   f"step:{progress.step}/{args.iterations}")
        return progress

def check_replicas(rt: Runtime, model: nn.Module) -> None:
    """Logs whether the ranks ended training with the same weights, as they must (one clock, one LR)."""
    if rt.distributed:
        digests = [None] * rt.world_size
        weights = b"".join(p.detach().cpu().numpy().tobytes() for p in model.parameters())
        dist.all_gather_object(digests, hashlib.sha256(weights).hexdigest()[:16])
        rt.log(f"replicas:{'identical' if len(set(digests)) == 1 else 'DIFFERENT'} weights on {rt.world_size} ranks, "
               f"sha256 {' '.join(dict.fromkeys(digests))}")

def train(args: Hyperparameters, rt: Runtime, scorer: Scorer, model: ByteGPT, hidden_fn,
          stream: TokenStream) -> tuple[Progress, WeightAverages]:
    """Trains `model` in place on `stream`."""
    train_model = torch.compile(model, dynamic=False, fullgraph=True) if rt.compile else model
    if rt.distributed:
        train_model = DDP(train_model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None,
                          broadcast_buffers=False)
    trainer = Trainer(args, rt, model, train_model, DistributedTokenLoader(stream, rt.rank, rt.world_size, rt.device))
    trainer.prime()
    averages, progress = WeightAverages(model, args), Progress()
    if args.resume:
        progress = optional_module("run_modes").load_checkpoint(Path(args.resume), rt.device, trainer, averages)
        rt.log(f"resumed:{args.resume} step:{progress.step} train_time:{progress.training_ms:.0f}ms")

    def validate(p: Progress) -> None:
        r = scorer.evaluate(model, hidden_fn, scorer.val, args.train_seq_len)
        rt.log(f"step:{p.step}/{args.iterations} val_loss:{r.val_loss:.4f} val_bpb:{r.val_bpb:.4f} "
               f"train_time:{p.training_ms:.0f}ms step_avg:{p.training_ms / max(p.step, 1):.2f}ms")

    progress = trainer.run(progress, averages, validate)
    if model.cfg.num_loops and not model.looping:
        rt.log("warning: training ended before ENABLE_LOOPING_AT; the model is scored (and saved) with its loop on")
    model.looping = True  # the artifact's model, as EVAL_ONLY rebuilds it
    check_replicas(rt, model)
    if rt.device.type == "cuda":  # the GPU check's table reads this line
        rt.log(f"peak memory allocated: {torch.cuda.max_memory_allocated() // 2**20} MiB reserved: "
               f"{torch.cuda.max_memory_reserved() // 2**20} MiB")
    return progress, averages

def choose_final_weights(rt: Runtime, scorer: Scorer, model: ByteGPT, hidden_fn, averages: WeightAverages,
                         heldout: Tensor) -> tuple[str, dict]:
    """Picks raw, EMA or SWA weights by BPB on the held-out training slice (never on val)."""
    candidates = averages.candidates()
    if heldout.numel() < 2 or len(candidates) == 1:
        rt.log("final_weights:raw (no held-out slice or no averages to choose among)")
        return "raw", {}
    scores = {}
    with torch.no_grad():
        for name, tensors in candidates.items():
            torch._foreach_copy_(averages.params, tensors)
            scores[name] = scorer.evaluate(model, hidden_fn, heldout, scorer.args.train_seq_len).val_bpb
        best = min(scores, key=scores.get)
        torch._foreach_copy_(averages.params, candidates[best])
    rt.log(f"final_weights:{best} heldout_bpb " + " ".join(f"{k}:{v:.4f}" for k, v in scores.items())
           + (f" {best}_minus_raw:{scores[best] - scores['raw']:+.4f}" if best != "raw" else ""))
    return best, scores

def reserve_end_of_training(args: Hyperparameters, rt: Runtime, spec: DataSpec, scorer: Scorer, model: ByteGPT,
                            hidden_fn, heldout: Tensor) -> tuple[Hyperparameters, dict[str, float]]:
    """Work on training data after the last step (GPTQ calibration, scoring the weight candidates on the held-out
    slice) comes off MAX_WALLCLOCK_SECONDS, timed now: the second of two tries (the first compiles), slowest rank's."""
    timed = lambda fn: rt.max_over_ranks([rt.timed(fn)[1] for _ in range(2)][-1])  # noqa: E731
    reserve, rounds, candidates = {}, calibration_rounds(args), 1 + (args.ema_decay > 0) + (args.swa_every > 0)
    if args.quant == "gptq":
        reserve["gptq"] = -(-rounds // rt.world_size) * timed(lambda: calibrate(args, rt, spec, model, 1))
    if candidates > 1 and heldout.numel() >= 2:
        reserve["heldout"] = candidates * timed(lambda: scorer.evaluate(model, hidden_fn, heldout, args.train_seq_len))
    total, capped = sum(reserve.values()), copy.copy(args)
    rt.log(f"end_of_training_reserve:{total:.0f}ms gptq:{reserve.get('gptq', 0):.0f}ms ({rounds} calibration rounds) "
           f"heldout:{reserve.get('heldout', 0):.0f}ms ({candidates} weight candidates)")
    if args.max_wallclock_seconds > 0 and total:
        require(total < 1000 * args.max_wallclock_seconds, f"the end-of-training reserve ({total:.0f}ms) exceeds "
                "MAX_WALLCLOCK_SECONDS; lower GPTQ_CALIB_TOKENS or HELDOUT_TOKENS")
        capped.max_wallclock_seconds -= total / 1000
    return capped, reserve


# -----------------------------
# MAIN: TRAIN, EXPORT, SCORE
# -----------------------------

def code_files() -> dict[str, bytes]:
    """Counted code: the script that runs (a packed one holds its sources) and every module of this repository that
    the run has imported from disk, as sys.modules says: no list of conditions that a new option could miss."""
    script, names = Path(__file__).resolve(), [getattr(m, "__file__", None) or "" for m in list(sys.modules.values())]
    modules = {Path(name).resolve() for name in names if os.path.isabs(name)}  # some report relative stand-ins
    imported = sorted(p for p in modules if p.parent == script.parent and p.suffix == ".py" and p != script)
    return {script.name: script.read_bytes(), **{p.name: p.read_bytes() for p in imported}}

def code_bytes() -> int:
    return sum(map(len, code_files().values()))

def code_sha256() -> str:
    """sha256 of the readable trainer source: a packed record script and the file packed into it agree."""
    source = PACKED_SOURCES.get("train_byte_model.py")  # a packed script's own name is record.py or so
    return hashlib.sha256(source.encode() if source else Path(__file__).read_bytes()).hexdigest()

def log_header(rt: Runtime, args: Hyperparameters) -> None:
    """The script's source, environment, versions, then every knob and its origin: a log alone reproduces its run
    (modules imported later are logged at its end)."""
    sources = dict(PACKED_SOURCES) or {Path(__file__).name: Path(__file__).read_text()}
    for i, (name, code) in enumerate(sources.items()):
        rt.log(code if i == 0 else f"# ---- {name} ----\n{code}", console=False)
    rt.log("=" * 100, console=False)
    env = {k: v for k, v in sorted(os.environ.items())
           if k in KNOB_NAMES or k.startswith(("CUDA", "NCCL", "TORCH", "OMP", "WORLD_SIZE", "LOCAL_"))}
    rt.log(f"environment:{json.dumps(env)}", console=False)
    rt.log(f"versions: python {platform.python_version()} torch {torch.__version__} numpy {np.__version__} "
           f"platform {platform.platform()}", console=False)
    if rt.master and rt.device.type == "cuda" and shutil.which("nvidia-smi"):
        rt.log(subprocess.run(["nvidia-smi"], capture_output=True, text=True, check=False).stdout, console=False)
    rt.log("=" * 100, console=False)
    rt.log("\n".join(f"knob:{name}={value} ({args.source[name]})" for name, value in args.items()), console=False)
    for warning in args.warnings:
        rt.log(warning)
    rt.log(f"recipe:{args.recipe} device:{rt.device.type} name:{device_name(rt)} world_size:{rt.world_size} "
           f"grad_accum_steps:{8 // rt.world_size} bf16:{rt.bf16} compile:{rt.compile}")
    rt.log(choose_attention(rt))
    try:
        export_codecs(args)
    except RunError as exc:  # said at the start, not only after ten minutes of training
        rt.log(f"warning: {exc}; without it this run stops where it writes or reads the artifact")

def eval_context(args: Hyperparameters) -> dict:
    return {"context": args.train_seq_len, "stride": args.val_sliding_stride}

def save_final_weights(args: Hyperparameters, rt: Runtime, spec: DataSpec, model: ByteGPT) -> None:
    """LOG_DIR/RUN_ID.final.pt for EXPORT_ONLY: the chosen pre-quant weights and what rebuilds and scores them."""
    if rt.master:
        buffer = io.BytesIO()
        torch.save({"config": dataclasses.asdict(model.cfg), "layout": spec.layout, "eval": eval_context(args),
                    "model": {k: v.detach().cpu() for k, v in model.state_dict().items()}}, buffer)
        write_atomic(Path(args.log_dir) / f"{args.run_id}.final.pt", buffer.getvalue())

def encode_within_cap(args: Hyperparameters, rt: Runtime, model: ByteGPT, hessians: dict, pack) -> tuple[bytes, dict]:
    """The configured export (rank 0); if code + artifact exceed SIZE_CAP and CAP_FIT=1, cap_fit.py's finest coarser
    setting that fits, tried on every rank."""
    blob = pack(quantize_state(model.state_dict(), args, hessians), args) if rt.master else b""
    total = int(rt.max_over_ranks(len(blob))) + code_bytes()  # rank 0's size, on every rank
    if total <= args.size_cap or not args.cap_fit:
        return blob, {}
    return optional_module("cap_fit").fit(args, rt, model, hessians, pack, blob, total)

def export_and_score(args: Hyperparameters, rt: Runtime, spec: DataSpec, scorer: Scorer, model: ByteGPT, hidden_fn,
                     reserve_ms: float = 0.0) -> dict:
    hessians, calibration_ms = {}, 0.0
    if args.quant == "gptq":
        rounds = calibration_rounds(args)
        hessians, calibration_ms = rt.timed(lambda: calibrate(args, rt, spec, model, rounds))
        over = " OVER_RESERVE" if 0 < reserve_ms < calibration_ms and args.max_wallclock_seconds > 0 else ""
        rt.log(f"gptq_calibration:{calibration_ms:.0f}ms reserved:{reserve_ms:.0f}ms{over} matrices:{len(hessians)} "
               f"tokens:{rounds * (args.train_batch_tokens // 8)}")
    artifact, context = Path(args.log_dir) / f"{args.run_id}.int6.ptz", eval_context(args)
    pack = lambda q, a, codecs=None: pack_artifact(q, model.cfg, spec.layout, code_sha256(), context, a, codecs)  # noqa
    (blob, fit), export_ms = rt.timed(lambda: encode_within_cap(args, rt, model, hessians, pack))
    if rt.master:
        write_atomic(artifact, blob)
    if rt.distributed:
        dist.barrier()
    header, state = decode_artifact(artifact)
    groups = {g["name"]: [g["codec"], g["nbytes"]] for g in header["groups"]}
    stored = collections.Counter(e["storage"] for e in header["tensors"])  # the names in the log stay int6, zstd22
    chosen = f" cap_fit:{fit['chosen'] or 'nothing fits'} (configured {fit['configured']})" if fit else ""
    rt.log(f"export_time:{export_ms:.0f}ms " + " ".join(f"{k}:{v}" for k, v in header["export"].items())
           + "".join(f" {name}:{codec}:{size}" for name, (codec, size) in groups.items()) + " stored:"
           + ",".join(f"{k}x{n}" for k, n in sorted(stored.items())) + chosen
           + (f" (no tensor over {QUANT_MIN_NUMEL:,} values: none quantized)" if set(stored) == {"fp16"} else ""))
    model.load_state_dict(state)
    post_quant = scorer.final_report(model, hidden_fn)
    export = {**header["export"], "groups": groups, "calibration_ms": calibration_ms, "export_ms": export_ms,
              "cap_fit": fit or None}
    return {"post_quant": post_quant, "artifact": str(artifact), "export": export}

def train_and_export(args: Hyperparameters, rt: Runtime, spec: DataSpec) -> dict:
    scorer = Scorer(args, rt, spec)
    torch.manual_seed(args.seed)
    model = build_model(model_config(args, spec.vocab_size)).to(rt.device)
    rt.log("\n".join(size_report(model, code_bytes(), args)))
    check_memory(args, rt, model)
    stream, hidden_fn = TokenStream(spec.train_files, spec.vocab_size, args.heldout_tokens), scorer.hidden_fn(model)
    heldout = stream.heldout().to(rt.device)
    capped, reserve = reserve_end_of_training(args, rt, spec, scorer, model, hidden_fn, heldout)
    progress, averages = train(capped, rt, scorer, model, hidden_fn, stream)
    (chosen, heldout_scores), choice_ms = rt.timed(
        lambda: choose_final_weights(rt, scorer, model, hidden_fn, averages, heldout))
    save_final_weights(args, rt, spec, model)
    pre_quant = scorer.report("pre_quant", model, hidden_fn)[0]
    exported = export_and_score(args, rt, spec, scorer, model, hidden_fn, reserve.get("gptq", 0.0))
    return {"steps": progress.step, "train_time_ms": progress.training_ms,
            "step_avg_ms": progress.training_ms / max(progress.step, 1),
            "stopped_early": progress.step < args.iterations, "final_weights": chosen, "heldout_bpb": heldout_scores,
            "final_weights_ms": choice_ms, "end_of_training_reserve_ms": reserve, "pre_quant": pre_quant,
            **exported}

def finish(args: Hyperparameters, rt: Runtime, spec: DataSpec, result: dict) -> int:
    """Size verdict, the final lines and the JSON summary; the exit status."""
    files = code_files()
    for name, code in list(files.items())[1:]:  # the modules the run imported from disk, counted
        rt.log(f"# ---- {name} ----\n{code.decode()}", console=False)
    code_total, artifact_bytes = sum(map(len, files.values())), Path(result["artifact"]).stat().st_size
    total = artifact_bytes + code_total
    under_cap = total <= args.size_cap
    sizes = ", ".join(f"{k} {len(v)}" for k, v in files.items()) + ("; packed from " + ", ".join(
        f"{k} {len(v.encode())}" for k, v in PACKED_SOURCES.items()) if PACKED_SOURCES else "")
    rt.log(f"artifact:{result['artifact']} artifact_bytes:{artifact_bytes} code_bytes:{code_total} "
           f"({sizes}) total_bytes:{total} cap_bytes:{args.size_cap} "
           f"verdict:{'UNDER_CAP' if under_cap else 'OVER_CAP'}")
    post = result["post_quant"]
    rt.log(f"final_int6_zstd22_roundtrip_exact val_loss:{post['val_loss']:.8f} val_bpb:{post['val_bpb']:.8f} "
           f"sliding_val_bpb:{post['sliding_val_bpb']:.8f}")
    if not under_cap:  # the kept weights can be exported again, coarser
        weights = Path(args.export_only or Path(args.log_dir) / f"{args.run_id}.final.pt")
        redo = f"; EXPORT_ONLY={weights} QUANT_CLIP=std:K (coarser) re-exports them" if weights.is_file() else ""
        rt.log(f"OVER CAP: total {total:,} bytes > SIZE_CAP {args.size_cap:,} (artifact {artifact_bytes:,} + code "
               f"{code_total:,}); " + ("ALLOW_OVER_CAP=1: exiting 0" if args.allow_over_cap else
                                       "ALLOW_OVER_CAP=1 accepts it" + redo))
    private = {"SEED", "RUN_ID", "LOG_DIR", "RESUME", "EVAL_ONLY", "EXPORT_ONLY", "DATA_PATH", "TOKENIZER_PATH"}
    coverage = result.pop("coverage", None) or "full"
    summary = {"run_id": args.run_id, "seed": args.seed, "recipe": args.recipe, "layout": spec.layout,
               "device": rt.device.type, "device_name": device_name(rt), "world_size": rt.world_size,
               "iterations": args.iterations, **result, "sliding_stride": args.val_sliding_stride,
               "context": args.train_seq_len, "sliding_full_coverage": coverage == "full",
               "artifact_bytes": artifact_bytes, "code_bytes": code_total, "total_bytes": total,
               "cap_bytes": args.size_cap, "under_cap": under_cap, "code_sha256": code_sha256(),
               "config": {name: value for name, value in args.items() if name not in private}}
    scope = "all of val" if coverage == "full" else f"a capped val ({coverage}): NOT a full-val score"
    methods = "" if post["score_method"] == "sliding" else f" + {post['score_method']}"
    rt.log(f"score: {post['score_bpb']:.8f} BPB (post-quant sliding window{methods} on {scope}, "
           f"{post['sliding_scored_targets']:,} targets, stride {args.val_sliding_stride}, "
           f"context {args.train_seq_len}); log: {rt.log_path}")
    rt.log("final_summary:" + json.dumps(summary), console=False)  # the log's last line
    return 0 if under_cap or args.allow_over_cap else 1

def main() -> int:
    if any(a in ("-h", "--help") for a in sys.argv[1:]):
        print(help_text())
        return 0
    args = Hyperparameters()
    rt = setup_runtime(args)
    try:
        log_header(rt, args)
        spec = resolve_data(args)
        mode = (getattr(optional_module("run_modes"), "eval_only" if args.eval_only else "export_only")
                if args.eval_only or args.export_only else train_and_export)
        return finish(args, rt, spec, mode(args, rt, spec))
    except KeyboardInterrupt:
        rt.log("interrupted: the run was stopped by Ctrl-C (SIGINT); no final score", console=False)
        raise
    except BaseException as exc:
        rt.log(f"error: {exc}" if isinstance(exc, RunError) else f"error: {type(exc).__name__}: {exc}", console=False)
        raise

def leave_process(exit_code: int) -> None:
    """Exit, under torch.distributed without finalizing: a gloo thread freeing its last tensors aborts it."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(exit_code)
    sys.exit(exit_code)


if __name__ == "__main__":
    try:
        exit_code = main()
    except RunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        exit_code = 2
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C): no final score; the log says where the run stopped", file=sys.stderr)
        exit_code = 130
    leave_process(exit_code)
