"""Research options for train_byte_model.py, off by default and used by no recipe: BLOCK_PATTERN letters
S (Mamba2-style selective SSM) and G (gated linear attention), both pure-PyTorch chunked scans, and byte
patching (PATCH_SIZE, PATCH_DECODER). The trainer imports this module only when one of these knobs is
set; a run that uses it counts this file's bytes too. docs/research_options.md says what each does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from train_byte_model import MLP, ByteGPT, CastedLinear, CausalSelfAttention, ModelConfig, RunError, require

BLOCK_LETTERS = "ASG"  # A attention; S, G research mixers
PATCH_DECODERS = ("independent", "causal_conv")


def check_knobs(args) -> None:
    """This module's knobs, checked at start-up with the trainer's (Hyperparameters.validate)."""
    require(set(args.block_pattern) <= set(BLOCK_LETTERS),
            f"BLOCK_PATTERN={args.block_pattern!r}: one letter per layer from {BLOCK_LETTERS}")
    require(args.patch_decoder in PATCH_DECODERS, f"PATCH_DECODER={args.patch_decoder!r}: want one of {PATCH_DECODERS}")
    require(args.train_seq_len % args.patch_size == 0, f"PATCH_SIZE={args.patch_size} must divide TRAIN_SEQ_LEN")
    require(args.scan_chunk <= 64, f"SCAN_CHUNK={args.scan_chunk} must be in 1..64")


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
    """Shared shape of the S and G mixers (knob checks: Hyperparameters.validate)."""

    def __init__(self, cfg: ModelConfig, layer: int = 0):
        super().__init__()
        self.heads, self.head_dim, self.chunk = cfg.num_heads, cfg.model_dim // cfg.num_heads, cfg.scan_chunk


class SelectiveSSM(ScanMixer):
    """Mamba2-style (expand 1, one B/C group, state dim = head dim; Mamba names): x, B, C through a 4-tap
    causal conv and SiLU; head h decays by exp(-exp(A_log[h]) dt_t); y = scan(C, dt B, x) + D x, gated by silu(z)."""

    def __init__(self, cfg: ModelConfig, layer: int = 0):
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

    def __init__(self, cfg: ModelConfig, layer: int = 0):
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


MIXERS = {"A": CausalSelfAttention, "S": SelectiveSSM, "G": GatedLinearAttention}  # BLOCK_PATTERN letters


class PatchCodec(nn.Module):
    """A strided encoder makes each K bytes one backbone position. Position t predicts byte u = t + 1 of
    patch u // K from the backbone output of the patches before it (a learned start for patch 0), a learned
    embedding of u's offset and, for causal_conv, a causal conv over that patch's bytes before u; then an MLP."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
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
        super().__init__(cfg, MIXERS)
        self.patch = PatchCodec(cfg)

    def hidden_and_aux(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        x = self.embed(ids)
        return self.final_hidden(self.patch.decode(x, self.trunk(self.patch.encode(x))))


def build_model(cfg: ModelConfig) -> ByteGPT:
    return PatchedByteGPT(cfg) if cfg.patch_size > 1 else ByteGPT(cfg, MIXERS)
