"""What the token records learned after PR #832, brought to bytes, for train_byte_model.py (RECIPE=frontier_next;
off in every other recipe). The trainer imports this module only when one of these knobs is on, and then counts its
bytes too. Published forms (read from the records; our own code):

- SKIP_GATES (PR #1855): a U-Net skip enters as lerp(w * skip, x, sigmoid(g)), g per channel from 0, so each skip
  starts as an even blend instead of x + w * skip.
- PARALLEL_START_LAYER (PR #1529, #1855): from that layer on two residual lanes; attention reads lane 0 (mixed with
  x0 as usual), the MLP reads lane 1, and both write to both lanes through learned scalars (writes from 1, carries
  from 1.1); skips enter lane 0; the trunk's output is the lanes' mean.
- NUM_LOOPS, LOOP_START, LOOP_END (PR #1493, #1855): layers LOOP_START..LOOP_END run 1 + NUM_LOOPS times, with the
  same weights; the U-Net halves split the longer virtual stack. The trainer switches the loop on at the training
  fraction ENABLE_LOOPING_AT (PR #1855: 0.35) and compiles both graphs before the clock starts.
- ATTN_GATE_SCALE (PR #1787, #1855): each head's output times sigmoid(scale * W x[:12]), x the block's normed
  attention input, W (heads x 12) from zero: every head starts at half.
- NS_COEFFICIENTS=polar_express (PR #1787, from PR #1344): Muon's Newton-Schulz with one (a, b, c) per iteration.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from train_byte_model import ByteGPT, CausalSelfAttention, ModelConfig, needs_research_module, require

# Polar Express: minimax-optimal (a, b, c) for each of up to 5 Newton-Schulz iterations (PR #1787's values).
POLAR_EXPRESS_COEFFICIENTS = (
    (8.156554524902461, -22.48329292557795, 15.878769915207462),
    (4.042929935166739, -2.808917465908714, 0.5000178451051316),
    (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
    (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
    (2.3465413258596377, -1.7097828382687081, 0.42323551169305323),
)
GATE_WINDOW = 12  # input dims the attention output gate reads
LANE_CARRY_INIT = 1.1  # PR #1855's initial weight of a lane's own carry


def check_knobs(args) -> None:
    """This module's knobs, checked at start-up with the trainer's (Hyperparameters.validate)."""
    require(not needs_research_module(args), "the frontier_next knobs need BLOCK_PATTERN of A only and PATCH_SIZE=1")
    require(not args.num_loops or 0 <= args.loop_start <= args.loop_end < args.num_layers,
            f"LOOP_START={args.loop_start}..LOOP_END={args.loop_end} must be layers 0..{args.num_layers - 1}")
    require(args.parallel_start_layer < args.num_layers,
            f"PARALLEL_START_LAYER={args.parallel_start_layer} must be a layer 1..{args.num_layers - 1} (0 = off)")
    require(args.ns_coefficients == "quintic" or args.muon_backend_steps <= len(POLAR_EXPRESS_COEFFICIENTS),
            f"NS_COEFFICIENTS=polar_express has 5 iterations; MUON_BACKEND_STEPS={args.muon_backend_steps}")


class GatedAttention(CausalSelfAttention):
    """Attention whose heads' outputs are scaled by sigmoid(scale * W x[:GATE_WINDOW]) before the projection."""

    def __init__(self, cfg: ModelConfig, layer: int):
        super().__init__(cfg, layer)
        self.gate_scale = cfg.attn_gate_scale
        self.gate = nn.Parameter(torch.zeros(cfg.num_heads, GATE_WINDOW))

    def forward(self, x: Tensor) -> Tensor:
        gate = torch.sigmoid(self.gate_scale * F.linear(x[..., :GATE_WINDOW], self.gate.to(x.dtype)))
        return self.proj((self.attend(x) * gate[..., None]).flatten(2))


class NextByteGPT(ByteGPT):
    """ByteGPT with gated skips, parallel residual lanes and depth recurrence in its trunk."""

    looping = True  # the depth recurrence runs its loop when True; training holds it off until ENABLE_LOOPING_AT

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg, {"A": GatedAttention if cfg.attn_gate_scale else CausalSelfAttention})
        layers, dim = len(self.blocks), cfg.model_dim
        looped = self.layer_order(looping=True)
        skips = min(len(looped) // 2, len(looped) - len(looped) // 2) if cfg.unet_skips else 0
        self.skip_weights = nn.Parameter(torch.ones(skips, dim)) if skips else None
        self.skip_gates = nn.Parameter(torch.zeros(skips, dim)) if skips and cfg.skip_gates else None
        self.parallel_from = cfg.parallel_start_layer or layers
        lanes = layers - self.parallel_from
        self.lane_writes = nn.Parameter(torch.ones(lanes, 2, 2)) if lanes else None  # [attention, MLP] -> lanes
        self.lane_carries = nn.Parameter(torch.full((lanes, 2), LANE_CARRY_INIT)) if lanes else None

    def layer_order(self, looping: bool | None = None) -> list[int]:
        """The physical layer of each virtual layer: the recurrent span repeated while the loop is on."""
        cfg, layers = self.cfg, list(range(len(self.blocks)))
        if not cfg.num_loops or not (self.looping if looping is None else looping):
            return layers
        span = layers[cfg.loop_start : cfg.loop_end + 1]
        return layers[: cfg.loop_start] + span * (1 + cfg.num_loops) + layers[cfg.loop_end + 1 :]

    def add_skip(self, x: Tensor, index: int, skip: Tensor) -> Tensor:
        skip = self.skip_weights[index].to(x.dtype) * skip
        if self.skip_gates is None:
            return x + skip
        return torch.lerp(skip, x, torch.sigmoid(self.skip_gates[index]).to(x.dtype))

    def parallel_block(self, i: int, lane0: Tensor, lane1: Tensor, x0: Tensor) -> tuple[Tensor, Tensor]:
        """Layer i on two lanes: attention reads lane 0, the MLP lane 1; each writes to both."""
        block, dtype = self.blocks[i], lane0.dtype
        writes, carries = (p[i - self.parallel_from].to(dtype) for p in (self.lane_writes, self.lane_carries))
        mix, attn_scale, mlp_scale = (p.to(dtype) for p in (block.resid_mix, block.attn_scale, block.mlp_scale))
        normed = lambda t: F.rms_norm(t, (t.size(-1),)) * block.input_scale  # noqa: E731
        attn = attn_scale * block.attn(normed(mix[0] * lane0 + mix[1] * x0))
        mlp = mlp_scale * block.mlp(normed(lane1))
        return (carries[0] * lane0 + writes[0, 0] * attn + writes[1, 0] * mlp,
                carries[1] * lane1 + writes[0, 1] * attn + writes[1, 1] * mlp)

    def trunk(self, x: Tensor) -> Tensor:
        if torch.is_autocast_enabled(x.device.type):
            x = x.to(torch.get_autocast_dtype(x.device.type))
        order = self.layer_order()
        encoder = len(order) // 2
        used = min(encoder, len(order) - encoder) if self.skip_weights is not None else 0
        x0, lane1, skips = x, None, []
        for v, i in enumerate(order):
            if 0 <= v - encoder < used:
                x = self.add_skip(x, v - encoder, skips.pop())  # lane 0 when there are two
            if i >= self.parallel_from:
                x, lane1 = self.parallel_block(i, x, x if lane1 is None else lane1, x0)
            else:
                x = self.blocks[i](x, x0)
            if v < used:
                skips.append(x)
        return (x if lane1 is None else 0.5 * (x + lane1)) + self.idle_skips(used)

    def idle_skips(self, used: int) -> Tensor | float:
        """0 times the skip parameters the loop-off layout leaves unused: DDP wants a gradient for every parameter."""
        idle = [p[used:].sum() for p in (self.skip_weights, self.skip_gates) if p is not None and p.size(0) > used]
        return 0.0 if not idle else 0 * sum(idle)
