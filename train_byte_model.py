"""
Byte-level (tokenizer-free) language model for OpenAI's Parameter Golf, in one file.

The file's own bytes count toward the 16,000,000-byte artifact, so it holds only what a run needs:
data loading over byte (or sp1024 token) shards, the 13-layer byte transformer, Muon+Adam training
under torchrun (or one CPU process), exact BPB evaluation, and the int6+zstd artifact.
Knobs are environment variables; `python train_byte_model.py --help` lists them all.
"""

from __future__ import annotations

import copy
import dataclasses
import glob
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
import zstandard
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel as DDP

try:  # FlashAttention 3 (Hopper) when installed; SDPA otherwise.
    from flash_attn_interface import flash_attn_func as fa3_attention
except ImportError:
    fa3_attention = None

SIZE_CAP_BYTES = 16_000_000  # the challenge's cap: decimal bytes, code + compressed model
SHARD_MAGIC, SHARD_VERSION, SHARD_HEADER_INTS = 20240520, 1, 256
BYTE260_FIRST_BYTE_ID = 4  # byte260: id = byte + 4; 0 pad, 1 BOS, 2 EOS, 3 UNK

# -----------------------------
# HYPERPARAMETERS
# -----------------------------
# Every knob is an environment variable (the names the community uses). The type of the default
# is the knob's type; -1 means "auto" where stated.

KNOBS = (
    # data and run
    ("DATA_PATH", "./data/datasets/fineweb10B_bytes", "directory of fineweb_{train,val}_*.bin shards"),
    ("DATA_LAYOUT", "auto", "auto (from DATA_PATH/conversion.json) | byte260 | raw256 | tokens"),
    ("TOKENIZER_PATH", "", "SentencePiece model; token mode (sp1024 shards) needs it for the BPB byte formula"),
    ("VOCAB_SIZE", 0, "0 = from the data (260 byte260, 256 raw256, tokenizer size); else must agree"),
    ("RUN_ID", "", "name of the log/artifact files (default: a random uuid)"),
    ("LOG_DIR", "logs", "where $RUN_ID.txt, the artifact and checkpoints go"),
    ("SEED", 1337, "random seed for initialization"),
    # model
    ("BLOCK_PATTERN", "", "one letter per layer: A attention, S Mamba2 SSM, G gated linear attention (default: A * NUM_LAYERS)"),
    ("NUM_LAYERS", 13, "depth when BLOCK_PATTERN is unset"),
    ("MODEL_DIM", 512, "residual width"),
    ("NUM_HEADS", 8, "query heads"),
    ("NUM_KV_HEADS", 8, "key/value heads (GQA when fewer than NUM_HEADS)"),
    ("MLP_HIDDEN", 0, "MLP hidden width; 0 = MLP_MULT * MODEL_DIM"),
    ("MLP_MULT", 2, "MLP expansion when MLP_HIDDEN=0 (2 -> 1024 reproduces the seed's 27.57M params)"),
    ("ROPE_BASE", 10000.0, "rotary embedding base"),
    ("QK_GAIN_INIT", 1.5, "initial per-head query gain"),
    ("LOGIT_SOFTCAP", 30.0, "logits = cap * tanh(logits / cap)"),
    ("TIED_EMBED_INIT_STD", 0.005, "init std of the tied byte embedding"),
    ("SMEAR_GATE", 1, "1 = blend each position with the previous one through a learned per-channel gate"),
    ("BIGRAM_HASH_BUCKETS", 4096, "hashed (previous, current) byte embedding buckets; 0 = off"),
    ("BIGRAM_HASH_DIM", 32, "bigram embedding width (projected to MODEL_DIM)"),
    ("BIGRAM_HASH", "mix", "mix = hash of all bits of both ids | seed = the seed's (prev*256+cur) % buckets"),
    ("UNET_SKIPS", 1, "1 = U-Net skip connections from encoder to decoder half, with learned weights"),
    # research options, off by default
    ("SCAN_CHUNK", 64, "chunk length of the S and G scans, 1..64"),
    ("PATCH_SIZE", 1, "bytes per backbone position (1 = off); must divide TRAIN_SEQ_LEN"),
    ("PATCH_DECODER", "independent", "independent (earlier patches + offset) | causal_conv (+ the patch's earlier bytes)"),
    ("JEPA_K", 4, "JEPA predicts the embedding of the byte this far ahead"),
    ("JEPA_WEIGHT", 0.0, "weight of the JEPA cosine loss (0 = off)"),
    # training
    ("ITERATIONS", 20000, "maximum optimizer steps"),
    ("MAX_WALLCLOCK_SECONDS", 600.0, "training-time cap (0 = none); warmdown is timed against it"),
    ("TRAIN_BATCH_TOKENS", 393216, "tokens per optimizer step, all ranks together"),
    ("TRAIN_SEQ_LEN", 4096, "training context; also the evaluation context"),
    ("WARMUP_STEPS", 10, "compile-priming steps whose weights and optimizer state are then discarded"),
    ("WARMDOWN_ITERS", 3500, "linear LR decay over the last this-many steps (estimated from step time)"),
    ("MATRIX_LR", 0.035, "Muon learning rate for block matrices"),
    ("TIED_EMBED_LR", 0.05, "Adam learning rate for the byte and bigram embeddings"),
    ("SCALAR_LR", 0.04, "Adam learning rate for gains, scales, mixes and skip weights"),
    ("MUON_MOMENTUM", 0.99, "Muon momentum after warmup"),
    ("MUON_MOMENTUM_WARMUP_START", 0.92, "Muon momentum at step 0"),
    ("MUON_MOMENTUM_WARMUP_STEPS", 2500, "steps of linear momentum warmup"),
    ("MUON_BACKEND_STEPS", 5, "Newton-Schulz iterations"),
    ("MUON_WEIGHT_DECAY", 0.04, "decoupled weight decay on Muon matrices"),
    ("BETA1", 0.9, "Adam beta1"),
    ("BETA2", 0.95, "Adam beta2"),
    ("ADAM_EPS", 1e-8, "Adam epsilon"),
    ("GRAD_CLIP_NORM", 0.3, "global gradient-norm clip (0 = off)"),
    ("EMA_DECAY", 0.997, "EMA of weights, one update per step (0 = off)"),
    ("SWA_EVERY", 50, "SWA snapshot period in steps (0 = off)"),
    ("SWA_LAST_FRAC", 0.5, "SWA averages snapshots over this last fraction of training"),
    ("HELDOUT_TOKENS", 1048576, "tail of the last train shard, never trained on, that picks raw/EMA/SWA"),
    ("USE_COMPILE", -1, "torch.compile: 1 on, 0 off, -1 auto (on for CUDA, off for CPU)"),
    ("BF16", -1, "bf16 autocast: 1 on, 0 off (fp32), -1 auto (on for CUDA, off for CPU)"),
    # logging, evaluation, artifact
    ("TRAIN_LOG_EVERY", 200, "train-loss log period in steps (the first 10 steps are always logged)"),
    ("VAL_LOSS_EVERY", 0, "validation period in steps (0 = only at the end)"),
    ("VAL_SLIDING_STRIDE", 512, "sliding-window eval stride (TRAIN_SEQ_LEN = non-overlapping)"),
    ("VAL_SLIDING_MAX_TOKENS", 0, "0 = score all of val; else only its first this-many tokens (printed)"),
    ("EVAL_BATCH_SEQS", 32, "windows per evaluation batch per rank"),
    ("PROJECTED_BITS_PER_PARAM", 4.56, "int6+zstd bits per parameter for the start-up size projection"),
    ("ALLOW_OVER_CAP", 0, "1 = finish with exit 0 even when code + artifact exceed 16,000,000 bytes"),
    ("CHECKPOINT_EVERY", 0, "write a resumable checkpoint every this-many steps (0 = off)"),
    ("RESUME", "", "checkpoint to continue from"),
    ("EVAL_ONLY", "", "artifact to score on DATA_PATH's val without training"),
)


class Hyperparameters:
    """Knob values read from the environment, as attributes named like the knob in lower case."""

    def __init__(self, env: dict[str, str] | None = None):
        env = os.environ if env is None else env
        for name, default, _ in KNOBS:
            raw = env.get(name)
            try:
                value = default if raw is None else type(default)(raw if isinstance(default, str) else float(raw))
                if raw is not None and isinstance(default, int) and value != float(raw):
                    raise ValueError
            except ValueError:
                raise RunError(f"{name}={raw!r} is not a valid {type(default).__name__}") from None
            setattr(self, name.lower(), value)
        self.explicit = {name for name, _, _ in KNOBS if name in env}
        self.run_id = self.run_id or str(uuid.uuid4())
        if not self.block_pattern:
            self.block_pattern = "A" * self.num_layers
        elif "NUM_LAYERS" in self.explicit and len(self.block_pattern) != self.num_layers:
            raise RunError(f"BLOCK_PATTERN has {len(self.block_pattern)} layers but NUM_LAYERS={self.num_layers}")
        self.mlp_hidden = self.mlp_hidden or self.mlp_mult * self.model_dim
        if self.patch_size < 1 or self.train_seq_len % self.patch_size:
            raise RunError(f"PATCH_SIZE={self.patch_size} must be >= 1 and divide TRAIN_SEQ_LEN={self.train_seq_len}")
        if not 0 < self.jepa_k < self.train_seq_len or self.jepa_weight < 0:
            raise RunError(f"JEPA_K={self.jepa_k} must be in 1..TRAIN_SEQ_LEN-1, JEPA_WEIGHT={self.jepa_weight} >= 0")

    def items(self):
        return [(name, getattr(self, name.lower())) for name, _, _ in KNOBS]


def print_help() -> None:
    print(__doc__.strip(), "\n\nKnobs (environment variables), with defaults:\n")
    for name, default, meaning in KNOBS:
        print(f"  {name:<28} {default!r:<36} {meaning}")


class RunError(Exception):
    """Bad knob, bad input file or failed run: reported as one line naming the cause, exit status 2."""


# -----------------------------
# DATA LOADING
# -----------------------------
# Shards: 256 little-endian int32 header (magic, version, count), then `count` uint16 ids.
# Byte layouts come from convert_to_bytes.py, whose conversion.json says which one a directory holds.

def shard_length(path: Path) -> int:
    """Checks the header and the file size; every shard is checked at start-up, before any training."""
    header = np.fromfile(path, dtype="<i4", count=SHARD_HEADER_INTS)
    if header.size != SHARD_HEADER_INTS or header[0] != SHARD_MAGIC or header[1] != SHARD_VERSION:
        raise RunError(f"{path}: bad shard header (want magic {SHARD_MAGIC}, version {SHARD_VERSION})")
    count = int(header[2])
    expected = 4 * SHARD_HEADER_INTS + 2 * count
    if path.stat().st_size != expected:
        raise RunError(f"{path}: {path.stat().st_size} bytes, header says {count} ids ({expected} bytes)")
    return count


def load_shard(path: Path, vocab_size: int) -> np.ndarray:
    count = shard_length(path)
    ids = np.fromfile(path, dtype="<u2", count=count, offset=4 * SHARD_HEADER_INTS)
    if count and int(ids.max()) >= vocab_size:
        raise RunError(f"{path}: id {int(ids.max())} >= vocab size {vocab_size}")
    return ids


@dataclasses.dataclass
class DataSpec:
    layout: str  # byte260 | raw256 | tokens
    vocab_size: int
    train_files: list[Path]
    val_files: list[Path]
    note: str  # where the layout came from, for the log


def resolve_data(args: Hyperparameters) -> DataSpec:
    root = Path(args.data_path)
    if not root.is_dir():
        raise RunError(f"DATA_PATH {root}: no such directory")
    train = [Path(p) for p in sorted(glob.glob(str(root / "fineweb_train_*.bin")))]
    val = [Path(p) for p in sorted(glob.glob(str(root / "fineweb_val_*.bin")))]
    if not train:
        raise RunError(f"DATA_PATH {root}: no fineweb_train_*.bin shards")
    if not val:
        raise RunError(f"DATA_PATH {root}: no fineweb_val_*.bin shards")
    layout, note = args.data_layout, "DATA_LAYOUT"
    sidecar = root / "conversion.json"
    if layout == "auto":
        if sidecar.is_file():
            layout, note = json.loads(sidecar.read_text())["layout"], str(sidecar)
        elif args.tokenizer_path:
            layout, note = "tokens", "TOKENIZER_PATH set and no conversion.json"
        else:
            raise RunError(f"{sidecar}: missing; set DATA_LAYOUT=byte260|raw256, or TOKENIZER_PATH for token shards")
    if layout == "tokens":
        vocab = int(load_tokenizer(args.tokenizer_path).vocab_size())
    elif layout in ("byte260", "raw256"):
        vocab = 260 if layout == "byte260" else 256
    else:
        raise RunError(f"DATA_LAYOUT={layout!r}: want auto, byte260, raw256 or tokens")
    if args.vocab_size and args.vocab_size != vocab:
        raise RunError(
            f"VOCAB_SIZE={args.vocab_size} contradicts the data: {root} is {layout} (vocab {vocab}, from {note}); "
            f"unset VOCAB_SIZE, or convert with --layout {'raw256' if args.vocab_size == 256 else '...'}")
    for shard in train + val:
        shard_length(shard)
    return DataSpec(layout, vocab, train, val, note)


def load_tokenizer(path: str):
    import sentencepiece as spm  # token mode only

    if not path or not Path(path).is_file():
        raise RunError(f"TOKENIZER_PATH {path!r}: no such SentencePiece model")
    return spm.SentencePieceProcessor(model_file=path)


class TokenStream:
    """Reads shards in order and wraps around forever; the last `holdout` ids of the last shard are
    never served (they are the held-out slice that picks the final weights)."""

    def __init__(self, files: list[Path], vocab_size: int, holdout: int = 0):
        self.files, self.vocab_size, self.holdout = files, vocab_size, holdout
        self.file_idx, self.pos = 0, 0
        self.tokens = self._load(0)

    def _load(self, idx: int) -> np.ndarray:
        ids = load_shard(self.files[idx], self.vocab_size)
        if idx == len(self.files) - 1 and self.holdout:
            if ids.size <= self.holdout:
                raise RunError(f"{self.files[idx]}: {ids.size} ids, too few to hold out HELDOUT_TOKENS={self.holdout}")
            ids = ids[: ids.size - self.holdout]
        return ids

    def heldout(self) -> Tensor:
        ids = load_shard(self.files[-1], self.vocab_size)[-self.holdout:] if self.holdout else np.zeros(0)
        return torch.from_numpy(ids.astype(np.int32))

    def take(self, n: int) -> np.ndarray:
        chunks = []
        while n > 0:
            if self.pos >= self.tokens.size:
                self.seek((self.file_idx + 1) % len(self.files), 0)
                continue
            k = min(n, self.tokens.size - self.pos)
            chunks.append(self.tokens[self.pos : self.pos + k])
            self.pos, n = self.pos + k, n - k
        return np.concatenate(chunks)

    def seek(self, file_idx: int, pos: int) -> None:
        if file_idx != self.file_idx:
            self.file_idx, self.tokens = file_idx, self._load(file_idx)
        self.pos = pos


class DistributedTokenLoader:
    """Each micro-step takes one contiguous chunk of the stream and gives rank r the r-th span of it,
    like the official loader, so a run's data does not depend on how it is split across ranks."""

    def __init__(self, stream: TokenStream, rank: int, world_size: int, device: torch.device):
        self.stream, self.rank, self.world_size, self.device = stream, rank, world_size, device

    def next_batch(self, batch_tokens: int, seq_len: int, grad_accum: int) -> tuple[Tensor, Tensor]:
        span = batch_tokens // (self.world_size * grad_accum) + 1
        chunk = self.stream.take(span * self.world_size)
        local = torch.from_numpy(chunk[self.rank * span : (self.rank + 1) * span].astype(np.int64))
        local = local.to(self.device, non_blocking=True)
        return local[:-1].view(-1, seq_len), local[1:].view(-1, seq_len)

    def state(self) -> dict:
        return {"file_idx": self.stream.file_idx, "pos": self.stream.pos}

    def load_state(self, state: dict) -> None:
        self.stream.seek(state["file_idx"], state["pos"])


def load_eval_stream(files: list[Path], vocab_size: int) -> np.ndarray:
    return np.concatenate([load_shard(f, vocab_size) for f in files])


def byte_count_tables(spec: DataSpec, tokenizer_path: str) -> tuple[Tensor, Tensor, Tensor]:
    """Per-id tables for the bytes a target counts: base[target] + (leading_space[target] and not
    boundary[previous]). In token mode this is the baseline train_gpt.py formula; in byte260 ids >= 4
    are one byte each (BOS/UNK count 0); in raw256 every id is one byte."""
    base = np.zeros(spec.vocab_size, np.int64)
    space = np.zeros(spec.vocab_size, bool)
    boundary = np.ones(spec.vocab_size, bool)
    if spec.layout == "tokens":
        sp = load_tokenizer(tokenizer_path)
        for i in range(spec.vocab_size):
            if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):
                continue
            boundary[i] = False
            piece = sp.id_to_piece(i)
            space[i] = piece.startswith("\u2581")
            base[i] = 1 if sp.is_byte(i) else len(piece.removeprefix("\u2581").encode("utf-8"))
    else:
        first = BYTE260_FIRST_BYTE_ID if spec.layout == "byte260" else 0
        base[first:] = 1
    return torch.from_numpy(base), torch.from_numpy(space), torch.from_numpy(boundary)


# -----------------------------
# TRANSFORMER MODULES
# -----------------------------

@dataclasses.dataclass
class ModelConfig:
    """Everything needed to rebuild the model; stored in the artifact header."""

    vocab_size: int
    block_pattern: str
    model_dim: int
    num_heads: int
    num_kv_heads: int
    mlp_hidden: int
    rope_base: float
    qk_gain_init: float
    logit_softcap: float
    tied_embed_init_std: float
    smear_gate: bool
    bigram_buckets: int
    bigram_dim: int
    bigram_hash: str
    unet_skips: bool
    # research options; defaults = off, so older artifacts load
    scan_chunk: int = 64
    patch_size: int = 1
    patch_decoder: str = "independent"
    jepa_k: int = 4
    jepa_weight: float = 0.0

    @classmethod
    def from_hparams(cls, args: Hyperparameters, vocab_size: int) -> ModelConfig:
        return cls(
            vocab_size, args.block_pattern, args.model_dim, args.num_heads, args.num_kv_heads, args.mlp_hidden,
            args.rope_base, args.qk_gain_init, args.logit_softcap, args.tied_embed_init_std,
            bool(args.smear_gate), args.bigram_hash_buckets, args.bigram_hash_dim, args.bigram_hash,
            bool(args.unet_skips), args.scan_chunk, args.patch_size, args.patch_decoder, args.jepa_k, args.jepa_weight)


class CastedLinear(nn.Linear):
    # Weights stay fp32 for optimizer quality; autocast runs the matmul in bf16 on GPU.
    def __init__(self, in_features: int, out_features: int, zero_init: bool = False):
        super().__init__(in_features, out_features, bias=False)
        if zero_init:
            nn.init.zeros_(self.weight)


def rotary(x: Tensor, base: float) -> Tensor:
    """Rotary position embedding on (batch, time, heads, head_dim)."""
    half = x.size(-1) // 2
    inv_freq = base ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angles = torch.outer(torch.arange(x.size(1), device=x.device, dtype=torch.float32), inv_freq)
    cos, sin = angles.cos()[None, :, None, :].to(x.dtype), angles.sin()[None, :, None, :].to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos + x2 * sin, x2 * cos - x1 * sin), dim=-1)


def causal_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """(batch, time, heads, head_dim) in and out; FA3 on GPU when installed, else PyTorch SDPA."""
    if fa3_attention is not None and q.is_cuda:
        out = fa3_attention(q, k, v, causal=True)
        return out[0] if isinstance(out, tuple) else out
    y = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True,
        enable_gqa=k.size(2) != q.size(2))
    return y.transpose(1, 2)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.model_dim % cfg.num_heads or cfg.num_heads % cfg.num_kv_heads:
            raise RunError("MODEL_DIM must divide by NUM_HEADS, and NUM_HEADS by NUM_KV_HEADS")
        self.num_heads, self.num_kv_heads = cfg.num_heads, cfg.num_kv_heads
        self.head_dim, self.rope_base = cfg.model_dim // cfg.num_heads, cfg.rope_base
        kv_dim = cfg.num_kv_heads * self.head_dim
        self.c_q = CastedLinear(cfg.model_dim, cfg.model_dim)
        self.c_k = CastedLinear(cfg.model_dim, kv_dim)
        self.c_v = CastedLinear(cfg.model_dim, kv_dim)
        self.proj = CastedLinear(cfg.model_dim, cfg.model_dim, zero_init=True)
        self.q_gain = nn.Parameter(torch.full((cfg.num_heads,), cfg.qk_gain_init))

    def forward(self, x: Tensor) -> Tensor:
        bsz, seqlen, dim = x.shape
        v = self.c_v(x).view(bsz, seqlen, self.num_kv_heads, self.head_dim)
        # RMS-normed q and k; cast back to the matmul dtype so the attention kernel runs in bf16.
        q = F.rms_norm(self.c_q(x).view(bsz, seqlen, self.num_heads, self.head_dim), (self.head_dim,))
        k = F.rms_norm(self.c_k(x).view(bsz, seqlen, self.num_kv_heads, self.head_dim), (self.head_dim,))
        q = (rotary(q, self.rope_base) * self.q_gain[None, None, :, None]).to(v.dtype)
        k = rotary(k, self.rope_base).to(v.dtype)
        return self.proj(causal_attention(q, k, v).reshape(bsz, seqlen, dim))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.fc = CastedLinear(cfg.model_dim, cfg.mlp_hidden)
        self.proj = CastedLinear(cfg.mlp_hidden, cfg.model_dim, zero_init=True)

    def forward(self, x: Tensor) -> Tensor:
        # LeakyReLU(0.5)^2: negative pre-activations still pass a little gradient.
        return self.proj(F.leaky_relu(self.fc(x), negative_slope=0.5).square())


class Block(nn.Module):
    """Pre-norm residual block: a sequence mixer (attention by default) and an MLP, each with a learned
    per-channel output scale, after a learned mix of the stream with the first layer's input."""

    def __init__(self, cfg: ModelConfig, mixer: nn.Module):
        super().__init__()
        dim = cfg.model_dim
        self.attn, self.mlp = mixer, MLP(cfg)
        self.attn_scale = nn.Parameter(torch.ones(dim))
        self.mlp_scale = nn.Parameter(torch.ones(dim))
        self.resid_mix = nn.Parameter(torch.stack((torch.ones(dim), torch.zeros(dim))))

    def forward(self, x: Tensor, x0: Tensor) -> Tensor:
        x = self.resid_mix[0] * x + self.resid_mix[1] * x0
        x = x + self.attn_scale * self.attn(F.rms_norm(x, (x.size(-1),)))
        return x + self.mlp_scale * self.mlp(F.rms_norm(x, (x.size(-1),)))


class SmearGate(nn.Module):
    """Blends each position with the previous one: (1 - g) * x_t + g * x_{t-1}, g = sigmoid(per channel)."""

    def __init__(self, dim: int):
        super().__init__()
        self.gate = nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor) -> Tensor:
        return torch.lerp(x, F.pad(x[:, :-1], (0, 0, 1, 0)), torch.sigmoid(self.gate).to(x.dtype))


class BigramHash(nn.Module):
    """Embedding of the hashed (previous id, current id) pair, projected to the model width."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.vocab_size, self.buckets, self.hash = cfg.vocab_size, cfg.bigram_buckets, cfg.bigram_hash
        if self.hash not in ("mix", "seed"):
            raise RunError(f"BIGRAM_HASH={self.hash!r}: want mix or seed")
        self.embed = nn.Embedding(cfg.bigram_buckets, cfg.bigram_dim)
        nn.init.normal_(self.embed.weight, std=0.02)
        self.proj = CastedLinear(cfg.bigram_dim, cfg.model_dim, zero_init=True)

    def bucket_ids(self, ids: Tensor) -> Tensor:
        prev = F.pad(ids[:, :-1], (1, 0))  # id 0 stands before the first position
        if self.hash == "seed":  # the seed's hash: only the low bits of prev reach the bucket
            return (prev * 256 + ids) % self.buckets
        # Multiplicative (Fibonacci) hashing: the high half of the 32-bit product, which depends on
        # every bit of the pair, scaled to [0, buckets).
        key = (prev * self.vocab_size + ids) * 2654435761 & 0xFFFFFFFF
        return key * self.buckets >> 32

    def forward(self, ids: Tensor) -> Tensor:
        return self.proj(self.embed(self.bucket_ids(ids)))


BLOCK_MIXERS = {"A": CausalSelfAttention}  # BLOCK_PATTERN letter -> sequence mixer


class ByteGPT(nn.Module):
    """Tied byte embedding -> RMSNorm -> SmearGate -> + bigram hash -> blocks with U-Net skips
    -> RMSNorm -> tied head with logit softcap."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        unknown = sorted(set(cfg.block_pattern) - set(BLOCK_MIXERS))
        if unknown or not cfg.block_pattern:
            raise RunError(f"BLOCK_PATTERN={cfg.block_pattern!r}: unknown letters {unknown}; known {sorted(BLOCK_MIXERS)}")
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.model_dim)
        nn.init.normal_(self.tok_emb.weight, std=cfg.tied_embed_init_std)
        self.smear = SmearGate(cfg.model_dim) if cfg.smear_gate else nn.Identity()
        self.bigram = BigramHash(cfg) if cfg.bigram_buckets else None
        self.blocks = nn.ModuleList(Block(cfg, BLOCK_MIXERS[letter](cfg)) for letter in cfg.block_pattern)
        self.num_encoder_layers = len(self.blocks) // 2
        num_skips = min(self.num_encoder_layers, len(self.blocks) - self.num_encoder_layers) if cfg.unet_skips else 0
        self.skip_weights = nn.Parameter(torch.ones(num_skips, cfg.model_dim))

    def hidden(self, ids: Tensor) -> Tensor:
        return self.trunk(self.embed(ids))

    def embed(self, ids: Tensor) -> Tensor:
        x = self.smear(F.rms_norm(self.tok_emb(ids), (self.cfg.model_dim,)))
        return x + self.bigram(ids) if self.bigram is not None else x

    def trunk(self, x: Tensor) -> Tensor:
        x0, skips = x, []
        for i, block in enumerate(self.blocks):
            decoder_index = i - self.num_encoder_layers
            if 0 <= decoder_index < len(self.skip_weights):
                x = x + self.skip_weights[decoder_index] * skips.pop()
            x = block(x, x0)
            if i < len(self.skip_weights):
                skips.append(x)
        return F.rms_norm(x, (self.cfg.model_dim,))

    def logits(self, hidden: Tensor) -> Tensor:
        cap = self.cfg.logit_softcap
        return cap * torch.tanh(F.linear(hidden, self.tok_emb.weight.to(hidden.dtype)).float() / cap)

    def forward(self, ids: Tensor, targets: Tensor) -> Tensor:
        """Mean cross-entropy (nats) over all positions."""
        logits = self.logits(self.hidden(ids))
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())

    def log_fields(self) -> str:
        """Extra fields for train-loss log lines."""
        return ""


def parameter_report(model: ByteGPT, bits_per_param: float) -> list[str]:
    """Parameters and projected bytes per component; S and G mixers on their own lines."""
    groups: dict[str, int] = {}
    for name, p in model.named_parameters():
        key, *rest = name.split(".")
        if key == "blocks" and rest[1] == "attn" and model.cfg.block_pattern[int(rest[0])] != "A":
            key = f"blocks_{model.cfg.block_pattern[int(rest[0])]}_mixers"
        groups[key] = groups.get(key, 0) + p.numel()
    return [f"model_params:{sum(groups.values())}"] + [
        f"  params.{k}:{v} projected_bytes:{int(v * bits_per_param / 8)}" for k, v in groups.items()]


# -----------------------------
# RESEARCH OPTIONS
# -----------------------------
# The seed's study as switches, all off by default: BLOCK_PATTERN letters S (Mamba2-style SSM) and G
# (gated linear attention), byte patching and a JEPA loss. build_model() picks the class once.

def causal_depthwise_conv(x: Tensor, taps: Tensor, mask: Tensor | None = None) -> Tensor:
    """y_t = sum_i taps[i] * x_{t-i} on (batch, time, channels); mask (time, taps) drops taps."""
    y = torch.zeros_like(x)
    for i in range(taps.size(0)):
        term = F.pad(x[:, : x.size(1) - i], (0, 0, i, 0)) * taps[i].to(x.dtype)
        y = y + (term if mask is None else term * mask[:, i, None])
    return y


def chunked_scan(q: Tensor, k: Tensor, v: Tensor, log_decay: Tensor, chunk: int) -> Tensor:
    """o_t = S_t^T q_t, S_t = diag(exp(log_decay_t)) S_{t-1} + k_t v_t^T on (batch, time, heads, dim), all
    chunks at once. log_decay (<= 0, fp32) is per key channel, or per head (last dim 1). In a chunk a
    per-head decay uses exact exp(cum_t - cum_s); a per-channel one q e^cum . k e^-cum, in fp32/bf16 range
    while a chunk's total log decay is > -80. Across chunks every exponent is <= 0."""
    bsz, seqlen, heads, _ = v.shape

    def split(t: Tensor) -> Tensor:  # (B, T, H, X) -> (B, H, chunks, chunk, X); zero padding decays nothing
        t = F.pad(t, (0, 0, 0, 0, 0, -seqlen % chunk))
        return t.view(bsz, -1, chunk, heads, t.size(-1)).permute(0, 3, 1, 2, 4)

    q, k, v, cum = split(q), split(k), split(v), split(log_decay).cumsum(3)
    causal = torch.ones(chunk, chunk, dtype=torch.bool, device=v.device).tril()
    if cum.size(-1) == 1:
        scores = q @ k.transpose(3, 4) * (cum - cum.transpose(3, 4)).masked_fill(~causal, -math.inf).exp()
    else:
        scores = ((q * cum.exp()) @ (k * (-cum).exp()).transpose(3, 4)).masked_fill(~causal, 0)
    total = cum[:, :, :, -1]  # each chunk's log decay
    states = (k * (total[:, :, :, None] - cum).exp()).transpose(3, 4) @ v  # each chunk's own state at its end
    through = total.cumsum(2)
    before = F.pad(through[:, :, :-1], (0, 0, 1, 0))  # not through - total, whose rounding reaches back a chunk
    earlier = torch.ones(through.size(2), through.size(2), dtype=torch.bool, device=v.device).tril(-1)
    weights = (before[:, :, :, None] - through[:, :, None]).masked_fill(~earlier[..., None], -math.inf).exp()
    entering = torch.einsum("bhcdk,bhdkv->bhckv", weights.expand(*weights.shape[:4], k.size(-1)).to(v.dtype), states)
    out = scores.to(v.dtype) @ v + (q * cum.exp()).to(v.dtype) @ entering
    return out.permute(0, 2, 3, 1, 4).reshape(bsz, -1, heads, v.size(-1))[:, :seqlen]


class ScanMixer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.model_dim % (2 * cfg.num_heads) or not 1 <= cfg.scan_chunk <= 64:
            raise RunError(f"S/G need MODEL_DIM divisible by 2 * NUM_HEADS and SCAN_CHUNK={cfg.scan_chunk} in 1..64")
        self.heads, self.head_dim, self.chunk = cfg.num_heads, cfg.model_dim // cfg.num_heads, cfg.scan_chunk


class SelectiveSSM(ScanMixer):
    """Mamba2-style (expand 1, one B/C group, state dim = head dim; Mamba names): x, B, C through a 4-tap
    causal conv and SiLU; head h decays by exp(-exp(A_log[h]) dt_t); y = scan(C, dt B, x) + D x, gated by silu(z)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        dim, self.state_dim = cfg.model_dim, self.head_dim
        self.in_proj = CastedLinear(dim, 2 * dim + 2 * self.state_dim + self.heads)  # z, x, B, C, dt
        self.conv = nn.Parameter(torch.empty(4, dim + 2 * self.state_dim).uniform_(-0.5, 0.5))  # 1/sqrt(taps)
        dt = torch.logspace(-3, -1, self.heads)  # Mamba2's initial dt range
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        self.A_log = nn.Parameter(torch.log(torch.linspace(1, 16, self.heads)))
        self.D = nn.Parameter(torch.ones(self.heads))
        self.proj = CastedLinear(dim, dim, zero_init=True)

    def forward(self, x: Tensor) -> Tensor:
        bsz, seqlen, dim = x.shape
        z, xbc, dt = self.in_proj(x).split([dim, dim + 2 * self.state_dim, self.heads], dim=-1)
        xs, b, c = F.silu(causal_depthwise_conv(xbc, self.conv)).split([dim, self.state_dim, self.state_dim], dim=-1)
        dt = F.softplus(dt + self.dt_bias)  # fp32 (dt_bias is), as the decay needs
        xs = xs.view(bsz, seqlen, self.heads, self.head_dim)
        per_head = lambda t: t[:, :, None].expand(-1, -1, self.heads, -1)  # noqa: E731
        y = chunked_scan(per_head(c), per_head(b) * dt[..., None], xs, (-self.A_log.exp() * dt)[..., None], self.chunk)
        y = (y + self.D[:, None].to(y.dtype) * xs).reshape(bsz, seqlen, dim)
        return self.proj(F.rms_norm(y * F.silu(z), (dim,)))


class GatedLinearAttention(ScanMixer):
    """GLA (Yang et al., 2023): key dim = head dim / 2; per key channel decay sigmoid(g)^(1/16), floored at
    1/e so a 64-step chunk stays in range; per-head RMS-normed output gated by silu(r)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        dim, keys = cfg.model_dim, cfg.model_dim // 2
        self.c_q, self.c_k, self.c_gate = CastedLinear(dim, keys), CastedLinear(dim, keys), CastedLinear(dim, keys)
        self.gate_bias = nn.Parameter(torch.zeros(keys))  # fp32: the decay is fp32 under autocast
        self.c_v, self.c_out_gate = CastedLinear(dim, dim), CastedLinear(dim, dim)
        self.proj = CastedLinear(dim, dim, zero_init=True)

    def forward(self, x: Tensor) -> Tensor:
        bsz, seqlen, dim = x.shape
        per_head = lambda t: t.view(bsz, seqlen, self.heads, -1)  # noqa: E731
        log_decay = (F.logsigmoid(self.c_gate(x) + self.gate_bias) / 16).clamp_min(-1.0)
        q = per_head(self.c_q(x)) * (self.head_dim // 2) ** -0.5
        o = chunked_scan(q, per_head(self.c_k(x)), per_head(self.c_v(x)), per_head(log_decay), self.chunk)
        return self.proj(F.rms_norm(o, (self.head_dim,)).reshape(bsz, seqlen, dim) * F.silu(self.c_out_gate(x)))


BLOCK_MIXERS.update(S=SelectiveSSM, G=GatedLinearAttention)
PATCH_DECODERS = ("independent", "causal_conv")


class PatchCodec(nn.Module):
    """A strided encoder makes each K bytes one backbone position. Position t predicts byte u = t + 1 of
    patch u // K from the backbone output of the patches before it (a learned start for patch 0), a learned
    embedding of u's offset and, for causal_conv, a causal conv over that patch's bytes before u; then an MLP."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.patch_decoder not in PATCH_DECODERS:
            raise RunError(f"PATCH_DECODER={cfg.patch_decoder!r}: want one of {', '.join(PATCH_DECODERS)}")
        self.size, dim = cfg.patch_size, cfg.model_dim
        self.encoder = CastedLinear(self.size * dim, dim)
        self.start = nn.Parameter(torch.zeros(dim))
        self.offsets = nn.Parameter(torch.zeros(self.size, dim))
        self.taps = nn.Parameter(torch.zeros(self.size - 1, dim)) if cfg.patch_decoder == "causal_conv" else None
        self.decoder = MLP(cfg)

    def encode(self, x: Tensor) -> Tensor:
        if x.size(1) % self.size:
            raise RunError(f"sequence length {x.size(1)} does not divide by PATCH_SIZE={self.size}")
        return self.encoder(x.reshape(x.size(0), -1, self.size * x.size(2)))

    def decode(self, x: Tensor, patches: Tensor) -> Tensor:
        bsz, seqlen, dim = x.shape
        shifted = torch.cat((self.start.to(patches.dtype).expand(bsz, 1, dim), patches), dim=1)
        state = shifted.repeat_interleave(self.size, dim=1)[:, 1 : seqlen + 1]
        seen = torch.arange(1, seqlen + 1, device=x.device) % self.size  # bytes of u's patch before u
        state = state + self.offsets[seen].to(state.dtype)
        if self.taps is not None:  # tap i reads x_{t-i}, in u's patch while i < seen
            own_patch = torch.arange(self.size - 1, device=x.device) < seen[:, None]
            state = state + causal_depthwise_conv(x, self.taps, own_patch.to(x.dtype))
        return state + self.decoder(F.rms_norm(state, (dim,)))


class PatchedByteGPT(ByteGPT):
    """Blocks run on patches of PATCH_SIZE bytes (from each window's start); hidden and logits stay per byte."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.patch = PatchCodec(cfg)

    def hidden(self, ids: Tensor) -> Tensor:
        x = self.embed(ids)
        return F.rms_norm(self.patch.decode(x, self.trunk(self.patch.encode(x))), (self.cfg.model_dim,))


class JepaLoss:
    """Mixin: a CastedLinear predicts from the hidden state at t the (stop-gradient) embedding of the byte
    JEPA_K ahead; aux = 1 - cosine similarity; forward returns CE + JEPA_WEIGHT * aux. aux goes to the log
    through a non-persistent buffer: the compiled graph stays whole, no second forward, nothing saved."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.jepa = CastedLinear(cfg.model_dim, cfg.model_dim)
        self.register_buffer("jepa_loss", torch.zeros(()), persistent=False)

    def forward(self, ids: Tensor, targets: Tensor) -> Tensor:
        hidden, ahead = self.hidden(ids), self.cfg.jepa_k
        wanted = self.tok_emb(targets[:, ahead - 1 :]).detach()  # targets[t + K - 1]: the byte K ahead of t
        predicted = self.jepa(hidden[:, : hidden.size(1) - ahead + 1])
        aux = 1 - F.cosine_similarity(predicted.float(), wanted.float(), dim=-1).mean()
        self.jepa_loss.copy_(aux.detach())
        return F.cross_entropy(self.logits(hidden).flatten(0, 1), targets.flatten()) + self.cfg.jepa_weight * aux

    def log_fields(self) -> str:
        return f" jepa_loss:{self.jepa_loss.item():.4f}"  # rank 0's last micro-batch


class JepaByteGPT(JepaLoss, ByteGPT):
    pass


class JepaPatchedByteGPT(JepaLoss, PatchedByteGPT):
    pass


def build_model(cfg: ModelConfig) -> ByteGPT:
    if cfg.jepa_weight > 0:
        return (JepaPatchedByteGPT if cfg.patch_size > 1 else JepaByteGPT)(cfg)
    return (PatchedByteGPT if cfg.patch_size > 1 else ByteGPT)(cfg)


# -----------------------------
# MUON OPTIMIZER
# -----------------------------
# Muon (https://kellerjordan.github.io/posts/muon/): momentum, then the update matrix is replaced by
# the nearest semi-orthogonal one (Newton-Schulz iteration), scaled for non-square shapes.

def newton_schulz(g: Tensor, steps: int) -> Tensor:
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g.to(torch.bfloat16 if g.is_cuda else torch.float32)  # bf16 is fast on GPU, slow on CPU
    x = x / (x.norm() + 1e-7)
    transposed = x.size(0) > x.size(1)
    if transposed:
        x = x.T
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if transposed else x


class Muon(torch.optim.Optimizer):
    """Every rank keeps every momentum buffer (so checkpoints need only rank 0's state); rank r
    orthogonalizes parameters r, r + world, ...; one all-reduce shares the updates."""

    def __init__(self, params, lr: float, momentum: float, backend_steps: int, weight_decay: float,
                 orthogonalize=newton_schulz):
        super().__init__(params, dict(lr=lr, momentum=momentum, backend_steps=backend_steps, weight_decay=weight_decay))
        self.orthogonalize = orthogonalize  # torch.compile(newton_schulz) on GPU: one fused kernel chain

    @torch.no_grad()
    def step(self, closure=None):
        distributed = dist.is_available() and dist.is_initialized()
        world_size, rank = (dist.get_world_size(), dist.get_rank()) if distributed else (1, 0)
        for group in self.param_groups:
            params = group["params"]
            if not params:
                continue
            flat = torch.zeros(sum(p.numel() for p in params), device=params[0].device,
                               dtype=torch.bfloat16 if params[0].is_cuda else torch.float32)
            offset = 0
            for i, p in enumerate(params):
                buf = self.state[p].setdefault("momentum_buffer", torch.zeros_like(p))
                buf.mul_(group["momentum"]).add_(p.grad)
                if i % world_size == rank:
                    update = self.orthogonalize(p.grad.add(buf, alpha=group["momentum"]), group["backend_steps"])
                    update *= max(1.0, p.size(0) / p.size(1)) ** 0.5
                    flat[offset : offset + p.numel()] = update.flatten()
                offset += p.numel()
            if distributed:
                dist.all_reduce(flat)
            offset = 0
            for p in params:
                p.mul_(1.0 - group["lr"] * group["weight_decay"])
                p.add_(flat[offset : offset + p.numel()].view_as(p).to(p.dtype), alpha=-group["lr"])
                offset += p.numel()


def build_optimizers(model: ByteGPT, args: Hyperparameters, compile: bool = False) -> tuple[list[torch.optim.Optimizer], Muon]:
    """Muon for every CastedLinear matrix (blocks, bigram projection); Adam for the embeddings
    (byte and bigram tables) and for every vector, gain, mix and skip weight."""
    embeddings = [model.tok_emb.weight] + ([model.bigram.embed.weight] if model.bigram is not None else [])
    matrices = [m.weight for m in model.modules() if isinstance(m, CastedLinear)]
    taken = {id(p) for p in embeddings + matrices}
    scalars = [p for p in model.parameters() if id(p) not in taken]

    def adam(params: list[Tensor], lr: float) -> torch.optim.Adam:
        return torch.optim.Adam([{"params": params, "lr": lr, "base_lr": lr}], betas=(args.beta1, args.beta2),
                                eps=args.adam_eps, fused=params[0].is_cuda)

    muon = Muon(matrices, args.matrix_lr, args.muon_momentum, args.muon_backend_steps, args.muon_weight_decay,
                torch.compile(newton_schulz) if compile else newton_schulz)
    for group in muon.param_groups:
        group["base_lr"] = args.matrix_lr
    return [adam(embeddings, args.tied_embed_lr), muon, adam(scalars, args.scalar_lr)], muon


# -----------------------------
# EVALUATION
# -----------------------------
# BPB = (sum of the losses of all scored targets, BOS/UNK included) / ln 2 / (bytes those targets
# count), accumulated in float64 and summed over ranks. One function serves the non-overlapping
# eval (stride = context) and the sliding-window eval.

def eval_windows(num_tokens: int, context: int, stride: int) -> np.ndarray:
    """Rows (start, lo, hi): a window reads stream[start : start + context], its position p predicts
    stream[start + p + 1], and positions lo..hi-1 are scored. The first window scores all its positions,
    each later one only those no earlier window scored (its last `stride`, fewer at the tail), so the
    windows score targets 1..num_tokens-1 exactly once."""
    targets = num_tokens - 1
    if targets < 1:
        raise RunError(f"evaluation stream has {num_tokens} tokens; need at least 2")
    if not 0 < stride <= context:
        raise RunError(f"VAL_SLIDING_STRIDE={stride} must be in 1..TRAIN_SEQ_LEN={context}")
    if targets <= context:
        return np.array([[0, 0, targets]])
    starts = np.arange(0, targets - context + 1, stride)
    lo = np.full(starts.size, context - stride)
    lo[0] = 0
    windows = np.stack([starts, lo, np.full(starts.size, context)], axis=1)
    covered = int(starts[-1]) + context
    if covered < targets:
        windows = np.vstack([windows, [targets - context, context - (targets - covered), context]])
    return windows


@dataclasses.dataclass
class EvalResult:
    val_loss: float  # nats per scored target
    val_bpb: float
    scored_targets: int
    targets: int
    byte_count: int
    eval_ms: float


@torch.inference_mode()
def evaluate(model: ByteGPT, hidden_fn, stream: Tensor, context: int, stride: int, batch_seqs: int,
             byte_tables: tuple[Tensor, Tensor, Tensor], rt: Runtime) -> EvalResult:
    """Scores every target of the 1-D id tensor `stream` once; rank r takes the r-th share of the
    windows. Batches have a fixed shape (padding windows score nothing) so a compiled `hidden_fn` never
    recompiles, and the head runs only on scored positions."""
    started = time.perf_counter()
    num_tokens = stream.numel()
    windows = eval_windows(num_tokens, context, stride)
    mine = np.array_split(windows, rt.world_size)[rt.rank]
    tokens = stream.to(rt.device, torch.int32)
    if num_tokens < context + 1:  # shorter than one window: padding is never scored, causality keeps it inert
        tokens = F.pad(tokens, (0, context + 1 - num_tokens))
    base, space, boundary = (t.to(rt.device) for t in byte_tables)
    positions = np.arange(context)
    offsets = torch.arange(context + 1, device=rt.device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=rt.device)
    byte_sum = torch.zeros((), dtype=torch.float64, device=rt.device)
    scored = 0
    for first in range(0, len(mine), batch_seqs):
        batch = np.zeros((batch_seqs, 3), np.int64)
        batch[: len(mine[first : first + batch_seqs])] = mine[first : first + batch_seqs]
        scored_flat = np.flatnonzero((positions >= batch[:, 1:2]) & (positions < batch[:, 2:3]))
        scored += scored_flat.size
        rows = tokens[torch.from_numpy(batch[:, 0]).to(rt.device)[:, None] + offsets].long()
        with rt.autocast():
            hidden = hidden_fn(rows[:, :-1])
        pick = torch.from_numpy(scored_flat).to(rt.device)
        prev, target = rows[:, :-1].flatten()[pick], rows[:, 1:].flatten()[pick]
        logits = model.logits(hidden.flatten(0, 1)[pick])
        loss_sum += F.cross_entropy(logits, target, reduction="none").double().sum()
        byte_sum += (base[target] + (space[target] & ~boundary[prev])).double().sum()
    totals = torch.stack([loss_sum, byte_sum, torch.tensor(float(scored), dtype=torch.float64, device=rt.device)])
    if rt.distributed:
        dist.all_reduce(totals)
    loss_total, bytes_total, scored_total = totals.tolist()
    if bytes_total <= 0:
        raise RunError("evaluation stream holds no byte targets")
    return EvalResult(loss_total / scored_total, loss_total / math.log(2) / bytes_total, int(scored_total),
                      num_tokens - 1, int(bytes_total), 1000 * (time.perf_counter() - started))


# -----------------------------
# ARTIFACT: INT6 + ZSTD-22
# -----------------------------
# File = ARTIFACT_MAGIC, then zstd (level 22) of: 4-byte little-endian header length, a UTF-8 JSON
# header, the tensor bytes. Header: format_version, model config, layout, code_sha256, and per tensor
# its name, storage (int6 | int8 | fp16), shape and byte offset. int6/int8 tensors store one int8 per
# value, followed by one fp16 scale per row. Loading parses JSON and numpy buffers; it never executes
# anything from the file (no pickle).

ARTIFACT_MAGIC = b"BYTEGOLF"
ARTIFACT_FORMAT_VERSION = 1
ARTIFACT_MAX_RAW_BYTES = 1 << 30
QUANT_MIN_NUMEL = 65_536  # smaller tensors (gains, scales, mixes, norms) stay fp16
QUANT_LEVELS = {"int6": 31, "int8": 127}
CLIP_RATIOS = (1.0, 0.95, 0.9, 0.85, 0.8)


def quantize_rows(w: Tensor, levels: int) -> tuple[Tensor, Tensor]:
    """Symmetric per-row quantization; each row's clip (a fraction of its max |w|) is the one of
    CLIP_RATIOS with the least squared error."""
    w = w.float()
    amax = w.abs().amax(dim=1, keepdim=True).clamp_min(1e-12)
    best_q, best_scale, best_err = None, None, None
    for ratio in CLIP_RATIOS:
        scale = (amax * ratio / levels).clamp_min(2**-24).half().float()  # the scale as stored
        q = torch.clamp(torch.round(w / scale), -levels, levels)
        err = (q * scale - w).square().sum(dim=1, keepdim=True)
        if best_err is None:
            best_q, best_scale, best_err = q, scale, err
        else:
            better = err < best_err
            best_q, best_scale, best_err = torch.where(better, q, best_q), torch.where(better, scale, best_scale), torch.minimum(err, best_err)
    return best_q.to(torch.int8), best_scale.half().flatten()


EMBEDDING_TABLES = ("tok_emb.weight", "bigram.embed.weight")


def storage_for(name: str, t: Tensor) -> str:
    if t.ndim == 2 and t.numel() > QUANT_MIN_NUMEL:
        return "int8" if name in EMBEDDING_TABLES else "int6"  # embeddings are more sensitive
    return "fp16"


def encode_artifact(state: dict[str, Tensor], cfg: ModelConfig, layout: str, code_sha256: str) -> bytes:
    entries, chunks, offset = [], [], 0
    for name, t in state.items():
        storage = storage_for(name, t)
        if storage == "fp16":
            blob = t.detach().cpu().half().numpy().tobytes()
        else:
            q, scale = quantize_rows(t.detach().cpu(), QUANT_LEVELS[storage])
            blob = q.numpy().tobytes() + scale.numpy().tobytes()
        entries.append({"name": name, "storage": storage, "shape": list(t.shape), "offset": offset, "nbytes": len(blob)})
        chunks.append(blob)
        offset += len(blob)
    header = json.dumps({"format_version": ARTIFACT_FORMAT_VERSION, "config": dataclasses.asdict(cfg),
                         "layout": layout, "code_sha256": code_sha256, "tensors": entries}).encode()
    raw = len(header).to_bytes(4, "little") + header + b"".join(chunks)
    return ARTIFACT_MAGIC + zstandard.ZstdCompressor(level=22).compress(raw)


def decode_artifact(path: Path) -> tuple[dict, dict[str, Tensor]]:
    """(header, dequantized float32 state dict); RunError naming the file for anything malformed."""
    data = path.read_bytes()
    if not data.startswith(ARTIFACT_MAGIC):
        raise RunError(f"{path}: not a byte-model artifact (bad magic; pickles and other files are refused)")
    try:
        raw = zstandard.ZstdDecompressor().decompress(data[len(ARTIFACT_MAGIC):], max_output_size=ARTIFACT_MAX_RAW_BYTES)
        header_len = int.from_bytes(raw[:4], "little")
        header = json.loads(raw[4 : 4 + header_len])
        body = memoryview(raw)[4 + header_len :]
        if header.get("format_version") != ARTIFACT_FORMAT_VERSION:
            raise ValueError(f"format_version {header.get('format_version')!r}, want {ARTIFACT_FORMAT_VERSION}")
        state = {}
        for e in header["tensors"]:
            blob = np.frombuffer(body[e["offset"] : e["offset"] + e["nbytes"]], dtype=np.uint8)
            numel = math.prod(e["shape"])
            if e["storage"] == "fp16":
                values = torch.from_numpy(blob.view(np.float16).astype(np.float32))
            elif e["storage"] in QUANT_LEVELS:
                q = torch.from_numpy(blob[:numel].view(np.int8).astype(np.float32)).view(e["shape"][0], -1)
                values = q * torch.from_numpy(blob[numel:].view(np.float16).astype(np.float32))[:, None]
            else:
                raise ValueError(f"tensor {e['name']}: unknown storage {e['storage']!r}")
            if values.numel() != numel:
                raise ValueError(f"tensor {e['name']}: {values.numel()} values for shape {e['shape']}")
            state[e["name"]] = values.reshape(e["shape"])
    except (zstandard.ZstdError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise RunError(f"{path}: corrupt artifact ({exc})") from None
    return header, state


def load_artifact_model(path: Path) -> tuple[dict, ByteGPT]:
    header, state = decode_artifact(path)
    try:
        model = build_model(ModelConfig(**header["config"]))
        model.load_state_dict(state, strict=True)
    except (TypeError, RuntimeError) as exc:
        raise RunError(f"{path}: artifact does not fit its model config ({str(exc).splitlines()[0]})") from None
    return header, model


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# -----------------------------
# RUNTIME, WEIGHT AVERAGES, CHECKPOINTS
# -----------------------------

@dataclasses.dataclass
class Runtime:
    rank: int
    world_size: int
    device: torch.device
    bf16: bool
    compile: bool
    log_path: Path | None = None

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def master(self) -> bool:
        return self.rank == 0

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def log(self, msg: str, console: bool = True) -> None:
        if not self.master:
            return
        if console:
            print(msg, flush=True)
        if self.log_path is not None:
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(msg + "\n")

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()


def setup_runtime(args: Hyperparameters) -> Runtime:
    world_size, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    if world_size < 1 or 8 % world_size:
        raise RunError(f"WORLD_SIZE={world_size} must divide 8 (gradient accumulation is 8 // WORLD_SIZE)")
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if world_size > 1:
        dist.init_process_group("nccl" if cuda else "gloo", device_id=device if cuda else None)
    auto = lambda knob: knob == 1 or (knob == -1 and cuda)  # noqa: E731
    rt = Runtime(rank, world_size, device, bf16=auto(args.bf16), compile=auto(args.use_compile))
    if rt.master:
        os.makedirs(args.log_dir, exist_ok=True)
        rt.log_path = Path(args.log_dir) / f"{args.run_id}.txt"
    return rt


def device_name(rt: Runtime) -> str:
    return torch.cuda.get_device_name(rt.device) if rt.device.type == "cuda" else f"cpu ({os.cpu_count()} cores)"


def log_header(rt: Runtime, args: Hyperparameters, code: bytes) -> None:
    """The log starts with this script's source, the relevant environment and versions, then one line
    per knob, so a log alone reproduces its run."""
    rt.log(code.decode("utf-8"), console=False)
    rt.log("=" * 100, console=False)
    knob_names = {name for name, _, _ in KNOBS}
    env = {k: v for k, v in sorted(os.environ.items()) if k in knob_names or k.startswith(("CUDA", "NCCL", "TORCH", "OMP", "WORLD_SIZE", "LOCAL_"))}
    rt.log(f"environment:{json.dumps(env)}", console=False)
    rt.log(f"versions: python {platform.python_version()} torch {torch.__version__} numpy {np.__version__} "
           f"zstandard {zstandard.__version__} platform {platform.platform()}", console=False)
    if rt.device.type == "cuda":
        smi = subprocess.run(["nvidia-smi"], capture_output=True, text=True, check=False).stdout
        rt.log(smi, console=False)
    rt.log("=" * 100, console=False)
    for name, value in args.items():
        rt.log(f"knob:{name}={value}", console=False)
    rt.log(f"device:{rt.device.type} name:{device_name(rt)} world_size:{rt.world_size} grad_accum_steps:{8 // rt.world_size} "
           f"bf16:{rt.bf16} compile:{rt.compile}")
    kernel = "fa3" if fa3_attention is not None and rt.device.type == "cuda" else "sdpa"
    rt.log(f"attention_kernel:{kernel}" + ("" if kernel == "fa3" else " (flash_attn_interface not used)"))


class WeightAverages:
    """fp32 EMA of the weights (every step) and SWA (mean of snapshots every SWA_EVERY steps once
    training is past 1 - SWA_LAST_FRAC of its length)."""

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
        found = {"raw": [p.detach().clone() for p in self.params]}
        if self.ema:
            found["ema"] = self.ema
        if self.swa_count:
            found["swa"] = [s / self.swa_count for s in self.swa_sum]
        return found

    def state_dict(self) -> dict:
        return {"ema": self.ema, "swa_sum": self.swa_sum, "swa_count": self.swa_count}

    def load_state_dict(self, state: dict) -> None:
        for mine, saved in zip(self.ema + self.swa_sum, state["ema"] + state["swa_sum"]):
            mine.copy_(saved)
        self.swa_count = state["swa_count"]


@dataclasses.dataclass
class Progress:
    step: int = 0
    training_ms: float = 0.0


def save_checkpoint(path: Path, progress: Progress, model: ByteGPT, optimizers, averages: WeightAverages,
                    loader: DistributedTokenLoader) -> None:
    state = {"progress": dataclasses.asdict(progress), "config": dataclasses.asdict(model.cfg),
             "model": model.state_dict(), "optimizers": [o.state_dict() for o in optimizers],
             "averages": averages.state_dict(), "loader": loader.state(), "rng_cpu": torch.get_rng_state(),
             "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, rt: Runtime, model: ByteGPT, optimizers, averages: WeightAverages,
                    loader: DistributedTokenLoader) -> Progress:
    try:
        state = torch.load(path, map_location=rt.device, weights_only=True)  # no code runs from the file
    except Exception as exc:
        raise RunError(f"RESUME {path}: not a readable checkpoint ({type(exc).__name__})") from None
    if state["config"] != dataclasses.asdict(model.cfg):
        raise RunError(f"RESUME {path}: checkpoint is for another model config {state['config']}")
    model.load_state_dict(state["model"])
    for opt, saved in zip(optimizers, state["optimizers"]):
        opt.load_state_dict(saved)
    averages.load_state_dict(state["averages"])
    loader.load_state(state["loader"])
    torch.set_rng_state(state["rng_cpu"].cpu())
    if state["rng_cuda"]:
        torch.cuda.set_rng_state_all([s.cpu() for s in state["rng_cuda"]])
    return Progress(**state["progress"])


# -----------------------------
# TRAINING
# -----------------------------

def lr_scale(args: Hyperparameters, step: int, elapsed_ms: float) -> float:
    """Linear warmdown over the last WARMDOWN_ITERS steps, of ITERATIONS or, under a wallclock cap,
    of the time left at the mean step time so far, whichever ends first."""
    if args.warmdown_iters <= 0:
        return 1.0
    scale = min(1.0, max(args.iterations - step, 0) / args.warmdown_iters)
    if args.max_wallclock_seconds > 0:
        step_ms = elapsed_ms / max(step, 1)
        remaining_ms = max(1000 * args.max_wallclock_seconds - elapsed_ms, 0.0)
        scale = min(scale, remaining_ms / max(args.warmdown_iters * step_ms, 1e-9))
    return scale


def training_fraction(args: Hyperparameters, step: int, elapsed_ms: float) -> float:
    by_time = elapsed_ms / (1000 * args.max_wallclock_seconds) if args.max_wallclock_seconds > 0 else 0.0
    return max(step / args.iterations, by_time)


class Trainer:
    """One optimizer step = 8 // WORLD_SIZE micro-steps of TRAIN_BATCH_TOKENS / 8 tokens per rank."""

    def __init__(self, args: Hyperparameters, rt: Runtime, model: ByteGPT, train_model: nn.Module,
                 loader: DistributedTokenLoader):
        self.args, self.rt, self.model, self.train_model, self.loader = args, rt, model, train_model, loader
        self.grad_accum = 8 // rt.world_size
        self.optimizers, self.muon = build_optimizers(model, args, compile=rt.compile)

    def step(self, step: int, lr_mult: float) -> Tensor:
        args = self.args
        train_loss = torch.zeros((), device=self.rt.device)
        for micro in range(self.grad_accum):
            if self.rt.distributed:  # all-reduce gradients only on the last micro-step
                self.train_model.require_backward_grad_sync = micro == self.grad_accum - 1
            x, y = self.loader.next_batch(args.train_batch_tokens, args.train_seq_len, self.grad_accum)
            with self.rt.autocast():
                loss = self.train_model(x, y)
            (loss / self.grad_accum).backward()
            train_loss += loss.detach() / self.grad_accum
        warm = min(step / args.muon_momentum_warmup_steps, 1.0) if args.muon_momentum_warmup_steps > 0 else 1.0
        for group in self.muon.param_groups:
            group["momentum"] = (1 - warm) * args.muon_momentum_warmup_start + warm * args.muon_momentum
        for opt in self.optimizers:
            for group in opt.param_groups:
                group["lr"] = group["base_lr"] * lr_mult
        if args.grad_clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), args.grad_clip_norm)
        for opt in self.optimizers:
            opt.step()
            opt.zero_grad(set_to_none=True)
        return train_loss

    def prime(self) -> None:
        """WARMUP_STEPS real steps compile and warm every path; weights, optimizer state and data
        position are then put back, so training starts from the true initialization."""
        if self.args.warmup_steps <= 0:
            return
        weights = copy.deepcopy(self.model.state_dict())
        opt_states = [copy.deepcopy(o.state_dict()) for o in self.optimizers]
        data_position = self.loader.state()
        for i in range(self.args.warmup_steps):
            self.step(0, 1.0)
            self.rt.log(f"warmup_step:{i + 1}/{self.args.warmup_steps}")
        self.model.load_state_dict(weights)
        for opt, state in zip(self.optimizers, opt_states):
            opt.load_state_dict(state)
        self.loader.load_state(data_position)

    def run(self, progress: Progress, averages: WeightAverages, validate) -> Progress:
        """Trains until ITERATIONS or the wallclock cap; time spent validating or checkpointing is not
        training time. A non-finite loss ends the run with the step that produced it."""
        args, rt = self.args, self.rt
        cap_ms = 1000 * args.max_wallclock_seconds if args.max_wallclock_seconds > 0 else math.inf
        checkpoint = Path(args.log_dir) / f"{args.run_id}.ckpt"
        stop = False
        rt.sync()
        t0 = time.perf_counter()

        def pause(action) -> None:
            nonlocal t0
            rt.sync()
            progress.training_ms += 1000 * (time.perf_counter() - t0)
            action()
            rt.sync()
            t0 = time.perf_counter()

        while True:
            last = progress.step >= args.iterations or stop
            if last or (args.val_loss_every > 0 and progress.step % args.val_loss_every == 0):
                pause(lambda: validate(progress))
            if last:
                break
            elapsed = progress.training_ms + 1000 * (time.perf_counter() - t0)
            train_loss = self.step(progress.step, lr_scale(args, progress.step, elapsed))
            progress.step += 1
            elapsed = progress.training_ms + 1000 * (time.perf_counter() - t0)
            averages.update(progress.step, training_fraction(args, progress.step, elapsed))
            # One small all-reduce per step: the rank-mean loss, any non-finite loss, any rank at the cap.
            flags = torch.stack([train_loss, (~torch.isfinite(train_loss)).float(),
                                 torch.tensor(float(elapsed >= cap_ms), device=rt.device)])
            if rt.distributed:
                dist.all_reduce(flags)
            loss_sum, nonfinite, at_cap = flags.tolist()
            train_loss, stop = loss_sum / rt.world_size, at_cap > 0
            if nonfinite:
                raise RunError(f"non-finite train loss at step {progress.step}; stopping (try a lower LR or GRAD_CLIP_NORM)")
            if args.train_log_every > 0 and (progress.step <= 10 or progress.step % args.train_log_every == 0 or stop):
                rt.log(f"step:{progress.step}/{args.iterations} train_loss:{train_loss:.4f} "
                       f"train_time:{elapsed:.0f}ms step_avg:{elapsed / progress.step:.2f}ms{self.model.log_fields()}")
            ends = stop or progress.step >= args.iterations
            if args.checkpoint_every > 0 and (progress.step % args.checkpoint_every == 0 or ends) and rt.master:
                pause(lambda: save_checkpoint(checkpoint, progress, self.model, self.optimizers, averages, self.loader))
        if stop and progress.step < args.iterations:
            rt.log(f"stopping_early: wallclock_cap train_time:{progress.training_ms:.0f}ms step:{progress.step}/{args.iterations}")
        return progress


# -----------------------------
# SCORING, EXPORT AND MAIN
# -----------------------------

class Scorer:
    """Scores a model on val with the non-overlapping eval (stride = context) and the sliding one."""

    def __init__(self, args: Hyperparameters, rt: Runtime, spec: DataSpec):
        self.args, self.rt, self.spec = args, rt, spec
        val = load_eval_stream(spec.val_files, spec.vocab_size)
        self.val_sha256 = hashlib.sha256(val.tobytes()).hexdigest()
        self.val = torch.from_numpy(val.astype(np.int32)).to(rt.device)  # on the device once, for every eval
        self.byte_tables = byte_count_tables(spec, args.tokenizer_path)
        cap = args.val_sliding_max_tokens
        self.sliding_val = self.val[:cap] if 0 < cap < val.size else self.val
        self.coverage = "full" if self.sliding_val.numel() == val.size else f"capped_first_{cap}_of_{val.size}_tokens"

    def hidden_fn(self, model: ByteGPT):
        return torch.compile(model.hidden, dynamic=False, fullgraph=True) if self.rt.compile else model.hidden

    def evaluate(self, model: ByteGPT, hidden_fn, stream: Tensor, stride: int) -> EvalResult:
        model.eval()
        result = evaluate(model, hidden_fn, stream, self.args.train_seq_len, stride, self.args.eval_batch_seqs,
                          self.byte_tables, self.rt)
        model.train()
        return result

    def report(self, label: str, model: ByteGPT, hidden_fn) -> dict:
        args, log = self.args, self.rt.log
        plain = self.evaluate(model, hidden_fn, self.val, args.train_seq_len)
        log(f"{label} val_loss:{plain.val_loss:.4f} val_bpb:{plain.val_bpb:.4f} eval_time:{plain.eval_ms:.0f}ms")
        slide = self.evaluate(model, hidden_fn, self.sliding_val, args.val_sliding_stride)
        log(f"{label}_sliding val_loss:{slide.val_loss:.4f} val_bpb:{slide.val_bpb:.4f} stride:{args.val_sliding_stride} "
            f"context:{args.train_seq_len} scored_targets:{slide.scored_targets} targets:{slide.targets} "
            f"coverage:{self.coverage} eval_time:{slide.eval_ms:.0f}ms")
        return {"val_loss": plain.val_loss, "val_bpb": plain.val_bpb, "sliding_val_loss": slide.val_loss,
                "sliding_val_bpb": slide.val_bpb, "sliding_scored_targets": slide.scored_targets,
                "sliding_targets": slide.targets, "val_targets": plain.targets, "val_byte_targets": plain.byte_count,
                "eval_ms": plain.eval_ms, "sliding_eval_ms": slide.eval_ms}


def log_projection(rt: Runtime, args: Hyperparameters, model: ByteGPT, code_bytes: int) -> None:
    params = sum(p.numel() for p in model.parameters())
    projected = int(params * args.projected_bits_per_param / 8) + code_bytes
    rt.log(f"projected_total_bytes:{projected} (params {params} x {args.projected_bits_per_param} bits/param "
           f"int6+zstd + code {code_bytes}; cap {SIZE_CAP_BYTES})")
    if projected > SIZE_CAP_BYTES:
        rt.log(f"WARNING: projected total {projected:,} bytes exceeds the {SIZE_CAP_BYTES:,}-byte cap (MLP_HIDDEN="
               f"{args.mlp_hidden}, MODEL_DIM={args.model_dim}, {len(args.block_pattern)} layers); the seed's "
               f"27.57M-parameter model uses MLP_HIDDEN=1024")


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


def train_and_export(args: Hyperparameters, rt: Runtime, spec: DataSpec, scorer: Scorer, code: bytes) -> dict:
    torch.manual_seed(args.seed)
    model = build_model(ModelConfig.from_hparams(args, spec.vocab_size)).to(rt.device)
    for line in parameter_report(model, args.projected_bits_per_param):
        rt.log(line)
    log_projection(rt, args, model, len(code))
    train_model = torch.compile(model, dynamic=False, fullgraph=True) if rt.compile else model
    if rt.distributed:
        train_model = DDP(train_model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None,
                          broadcast_buffers=False)
    stream = TokenStream(spec.train_files, spec.vocab_size, args.heldout_tokens)
    trainer = Trainer(args, rt, model, train_model, DistributedTokenLoader(stream, rt.rank, rt.world_size, rt.device))
    trainer.prime()
    averages = WeightAverages(model, args)
    progress = Progress()
    if args.resume:
        progress = load_checkpoint(Path(args.resume), rt, model, trainer.optimizers, averages, trainer.loader)
        rt.log(f"resumed:{args.resume} step:{progress.step} train_time:{progress.training_ms:.0f}ms")
    hidden_fn = scorer.hidden_fn(model)

    def validate(p: Progress) -> None:
        r = scorer.evaluate(model, hidden_fn, scorer.val, args.train_seq_len)
        rt.log(f"step:{p.step}/{args.iterations} val_loss:{r.val_loss:.4f} val_bpb:{r.val_bpb:.4f} "
               f"train_time:{p.training_ms:.0f}ms step_avg:{p.training_ms / max(p.step, 1):.2f}ms")

    progress = trainer.run(progress, averages, validate)
    if rt.device.type == "cuda":
        rt.log(f"peak memory allocated: {torch.cuda.max_memory_allocated() // 2**20} MiB "
               f"reserved: {torch.cuda.max_memory_reserved() // 2**20} MiB")
    chosen, heldout_scores = choose_final_weights(rt, scorer, model, hidden_fn, averages, stream.heldout())
    pre_quant = scorer.report("pre_quant", model, hidden_fn)
    artifact = Path(args.log_dir) / f"{args.run_id}.int6.ptz"
    if rt.master:
        write_atomic(artifact, encode_artifact(model.state_dict(), model.cfg, spec.layout, hashlib.sha256(code).hexdigest()))
    if rt.distributed:
        dist.barrier()
    model.load_state_dict(decode_artifact(artifact)[1])
    post_quant = scorer.report("final_int6_zstd22_roundtrip", model, hidden_fn)
    return {"steps": progress.step, "train_time_ms": progress.training_ms,
            "step_avg_ms": progress.training_ms / max(progress.step, 1),
            "stopped_early": progress.step < args.iterations, "final_weights": chosen,
            "heldout_bpb": heldout_scores, "pre_quant": pre_quant, "post_quant": post_quant, "artifact": str(artifact)}


def eval_only(args: Hyperparameters, rt: Runtime, spec: DataSpec, scorer: Scorer, code: bytes) -> dict:
    artifact = Path(args.eval_only)
    if not artifact.is_file():
        raise RunError(f"EVAL_ONLY {artifact}: no such file")
    header, model = load_artifact_model(artifact)
    if header["layout"] != spec.layout or model.cfg.vocab_size != spec.vocab_size:
        raise RunError(f"{artifact}: artifact is for {header['layout']} (vocab {model.cfg.vocab_size}) but "
                       f"DATA_PATH holds {spec.layout} (vocab {spec.vocab_size})")
    if header["code_sha256"] != hashlib.sha256(code).hexdigest():
        rt.log("note: the artifact was written by a different train_byte_model.py (code_sha256 differs)")
    model.to(rt.device)
    for line in parameter_report(model, args.projected_bits_per_param):
        rt.log(line)
    post_quant = scorer.report("final_int6_zstd22_roundtrip", model, scorer.hidden_fn(model))
    return {"eval_only": True, "post_quant": post_quant, "artifact": str(artifact)}


def main() -> int:
    if any(a in ("-h", "--help") for a in sys.argv[1:]):
        print_help()
        return 0
    args = Hyperparameters()
    rt = setup_runtime(args)
    code = Path(__file__).read_bytes()
    log_header(rt, args, code)
    spec = resolve_data(args)
    scorer = Scorer(args, rt, spec)
    rt.log(f"data:{args.data_path} layout:{spec.layout} (from {spec.note}) vocab:{spec.vocab_size} "
           f"train_shards:{len(spec.train_files)} val_tokens:{scorer.val.numel()} heldout_tokens:{args.heldout_tokens}")
    result = (eval_only if args.eval_only else train_and_export)(args, rt, spec, scorer, code)
    artifact_bytes = Path(result["artifact"]).stat().st_size
    total = artifact_bytes + len(code)
    under_cap = total <= SIZE_CAP_BYTES
    rt.log(f"artifact:{result['artifact']} artifact_bytes:{artifact_bytes} code_bytes:{len(code)} total_bytes:{total} "
           f"cap_bytes:{SIZE_CAP_BYTES} verdict:{'UNDER_CAP' if under_cap else 'OVER_CAP'}")
    post = result["post_quant"]
    rt.log(f"final_int6_zstd22_roundtrip_exact val_loss:{post['val_loss']:.8f} val_bpb:{post['val_bpb']:.8f} "
           f"sliding_val_bpb:{post['sliding_val_bpb']:.8f}")
    if not under_cap:
        rt.log(f"OVER CAP: total {total:,} bytes > {SIZE_CAP_BYTES:,} (artifact {artifact_bytes:,} + code {len(code):,})"
               + ("; ALLOW_OVER_CAP=1, exiting 0" if args.allow_over_cap else "; set ALLOW_OVER_CAP=1 to accept"))
    private = {"SEED", "RUN_ID", "LOG_DIR", "RESUME", "EVAL_ONLY", "DATA_PATH", "TOKENIZER_PATH"}
    summary = {"run_id": args.run_id, "seed": args.seed, "layout": spec.layout, "device": rt.device.type,
               "device_name": device_name(rt), "world_size": rt.world_size, "iterations": args.iterations, **result,
               "val_sha256": scorer.val_sha256,
               "sliding_stride": args.val_sliding_stride, "context": args.train_seq_len,
               "sliding_full_coverage": scorer.coverage == "full", "artifact_bytes": artifact_bytes,
               "code_bytes": len(code), "total_bytes": total, "cap_bytes": SIZE_CAP_BYTES, "under_cap": under_cap,
               "code_sha256": hashlib.sha256(code).hexdigest(),
               "config": {name: value for name, value in args.items() if name not in private}}
    rt.log("final_summary:" + json.dumps(summary))
    return 0 if under_cap or args.allow_over_cap else 1


if __name__ == "__main__":
    try:
        exit_code = main()
    except RunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        exit_code = 2
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    sys.exit(exit_code)
