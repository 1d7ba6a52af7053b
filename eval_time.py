"""
Evaluation-time methods for train_byte_model.py, off by default (the trainer imports this module only when
TTT_STEPS or PPM_ORDER is set, and then counts its bytes): score-first test-time training, and an adaptive
PPM-D byte predictor mixed with the network's probabilities. score_methods() runs them after the plain
final evaluation and reports each next to it.

The network gives p_nn(t), its probability of the actual id at target t (predict ids[t] from ids[:t]).
This module gives p_ppm(t) from a PPM-D model over the same id stream, and the mixture
    p_mix(t) = (1 - w_t) p_nn(t) + w_t p_ppm(t),
with w_t fixed, or learned online from targets already scored. Both components are normalized
distributions over all V ids and w_t does not look at ids[t], so the mixture is one too.

PPM-D with exclusion, maximum order N. The order-k context at t is ids[t-k:t] (t >= k); n_k(c, s) counts
the earlier targets j (j >= k) with context c and ids[j] = s, and every order 0..N is updated after each
target ("full update"). To predict, walk from the highest order whose context has counts down to order 0,
then order -1, with an exclusion set E (initially empty). At order k with T' = the count of the context's
symbols not in E and d' = their number: if T' = 0 go down at no cost; else each such symbol s gets
mass * (2 n_k(c, s) - 1) / (2 T'), the escape gets d' / (2 T'), E grows by the context's symbols and the mass
is multiplied by the escape. Order -1 spreads the mass evenly over the V - |E| ids not in E. Every id gets
a positive probability and they sum to 1.

The reviewers' conditions hold by construction: C1 a score depends only on the ids before it (and fixed
parameters); C2 it is the probability of a full normalized distribution with no zero; C3 the counts and
mixing weights take ids[t] only after target t is scored; C4 one left-to-right pass.

Confidence bucket, computed before seeing ids[t] (it selects the adaptive mixer's weight):
    0                                  no context has counts (only the first target of a stream)
    1 + 8 k + 2 total_bin + (d == 1)   k the highest order with counts; total_bin 0..3 for its context's
                                       count total 1, 2-3, 4-15, 16+; d its number of distinct symbols
so buckets lie in [0, 8 N + 8] (int8: N <= 14).

Implementation: one open-addressing hash table keyed exactly by (context id, symbol), kept at most half
full and doubled when needed; a row holds an entry's count and the counts of the context it leads to
(36 bytes). Source code makes about 0.26 entries per id at order 5 and 0.95 at order 8, so memory is
roughly 50 and 85 bytes per id (scripts/bench_ppm.py). Scoring a slice [a, b) of a stream that is split
across processes: ppm_probabilities(ids[:b], order, V, start=a) gives exactly the single-pass numbers;
the unscored prefix only updates, about three times faster than scoring.

The kernels need numba (requirements-eval.txt), imported only when a PPM function runs, so that
`import eval_time` works without it.
"""

from __future__ import annotations

import functools
import math
import time

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.utils import parametrize

from train_byte_model import BOS_ID, CastedLinear, require, score_windows, target_range

MAX_ORDER = 14  # the largest order whose buckets fit int8
NUM_BUCKETS = 8 * MAX_ORDER + 9
MAX_ROWS = 1 << 30  # row indices and context ids are int32


def check_knobs(args) -> None:
    """This module's knobs, checked at start-up with the trainer's (Hyperparameters.validate)."""
    require(args.ppm_order <= MAX_ORDER, f"PPM_ORDER={args.ppm_order} must be in 0..{MAX_ORDER}")
    require(args.ppm_weight < 1, f"PPM_WEIGHT={args.ppm_weight} must be in [0, 1)")

# A row of the hash table is one entry (context, symbol) and, inline, the context "context + symbol" it
# leads to: the next target's context one order up, whose data is then at hand in the row the update has
# just touched. LOWER is the entry of the same symbol one order down (it exists: full updates), so
# exclusion totals need no look-ups; NEXT links a context's entries, starting at its HEAD.
CONTEXT, SYM, COUNT, NEXT, LOWER, CHILD, TOTAL, DISTINCT, HEAD = range(9)
#   CHILD: id of the context led to (the hash key is context id and symbol); TOTAL, DISTINCT: its count
#   total and number of symbols. The root (order-0) context's row sits after the hashed rows.
EMPTY = -1
HASH_MULTIPLIER = -7046029254386353131  # 0x9E3779B97F4A7C15 as int64 (Fibonacci hashing)


# -----------------------------
# KERNELS (numba)
# -----------------------------

@functools.cache
def _kernels():
    """Compile the kernels once per process; they call each other, so they are built together."""
    try:
        import numba
    except ImportError:
        raise RuntimeError("PPM_ORDER needs numba (pip install -r requirements-eval.txt)") from None
    njit = numba.njit(cache=False, nogil=True)

    @njit
    def probe(rows, bits, context, sym, vocab):
        """The row holding (context, sym), or the empty row where it belongs (linear probing)."""
        mask = (1 << bits) - 1
        i = (((context * vocab + sym) * HASH_MULTIPLIER) >> (64 - bits)) & mask
        while rows[i, CONTEXT] != EMPTY and (rows[i, CONTEXT] != context or rows[i, SYM] != sym):
            i = (i + 1) & mask
        return i

    @njit
    def excluded_total(rows, entry):
        """Count total, one order down, of the symbols in the list that starts at `entry`."""
        total = 0
        while entry != EMPTY:
            total += rows[rows[entry, LOWER], COUNT]
            entry = rows[entry, NEXT]
        return total

    @njit
    def bucket_of(rows, ctx, top):
        if top < 0:
            return 0
        total = rows[ctx[top], TOTAL]
        total_bin = 0 if total == 1 else 1 if total < 4 else 2 if total < 16 else 3
        return 1 + 8 * top + 2 * total_bin + (1 if rows[ctx[top], DISTINCT] == 1 else 0)

    @njit
    def predict(rows, bits, ctx, top, sym, vocab):
        """p_ppm of `sym`, walking down from order `top` (the highest whose context has counts)."""
        mass = 1.0
        for k in range(top, -1, -1):
            here = ctx[k]
            total = rows[here, TOTAL]
            distinct = rows[here, DISTINCT]
            if k < top:
                # E is the symbol set of the order-(k+1) context: full updates make every set a subset
                # of the next shorter context's, so E only ever grows to the last context visited.
                above = ctx[k + 1]
                distinct -= rows[above, DISTINCT]
                if distinct == 0:
                    continue  # T' = 0: sym is not here either (it was not above); free escape
                total -= excluded_total(rows, rows[above, HEAD])
            i = probe(rows, bits, rows[here, CHILD], sym, vocab)
            if rows[i, CONTEXT] != EMPTY:
                return mass * (2 * rows[i, COUNT] - 1) / (2.0 * total)
            mass *= distinct / (2.0 * total)
        excluded = rows[ctx[0], DISTINCT] if top >= 0 else 0
        return mass / (vocab - excluded)

    @njit
    def update(rows, bits, sizes, ctx, order, sym, vocab):
        """Count sym in every available context, then move ctx on to the next target's contexts."""
        root = ctx[0]
        lower = EMPTY
        for k in range(order + 1):
            here = ctx[k]
            # The next target's order-k context is what this one's order-(k-1) context leads to.
            ctx[k] = root if k == 0 else lower
            if here == EMPTY:  # this target has no order-k context; the next one has none of order k+1
                lower = EMPTY
                continue
            i = probe(rows, bits, rows[here, CHILD], sym, vocab)
            if rows[i, CONTEXT] == EMPTY:
                rows[i, CONTEXT] = rows[here, CHILD]
                rows[i, SYM] = sym
                rows[i, COUNT] = 0
                rows[i, NEXT] = rows[here, HEAD]
                rows[i, LOWER] = lower
                rows[i, CHILD] = EMPTY  # order N leads nowhere
                if k < order:
                    rows[i, CHILD] = sizes[1]
                    sizes[1] += 1
                rows[i, TOTAL] = 0
                rows[i, DISTINCT] = 0
                rows[i, HEAD] = EMPTY
                rows[here, HEAD] = i
                rows[here, DISTINCT] += 1
                sizes[0] += 1
            rows[i, COUNT] += 1
            rows[here, TOTAL] += 1
            lower = i

    @njit
    def run(ids, t, score_from, order, vocab, rows, bits, sizes, ctx, out_p, out_bucket):
        """Process targets from t on: score those >= score_from, update with all. Returns where it
        stopped: len(ids), or earlier when the next target could push the table past half full."""
        limit = 1 << (bits - 1)
        while t < ids.shape[0]:
            if sizes[0] + order + 1 > limit:
                return t
            if t >= score_from:
                top = order
                while top >= 0 and (ctx[top] == EMPTY or rows[ctx[top], TOTAL] == 0):
                    top -= 1
                out_p[t - score_from] = predict(rows, bits, ctx, top, ids[t], vocab)
                out_bucket[t - score_from] = bucket_of(rows, ctx, top)
            update(rows, bits, sizes, ctx, order, ids[t], vocab)
            t += 1
        return t

    @njit
    def rehash(old, old_bits, new, new_bits, vocab, ctx):
        """Move every entry into the larger table, the root row to its end, and translate the row
        indices that point at rows (NEXT, LOWER, HEAD, ctx)."""
        moved = np.empty(old.shape[0], np.int64)
        for i in range(1 << old_bits):
            if old[i, CONTEXT] != EMPTY:
                moved[i] = probe(new, new_bits, old[i, CONTEXT], old[i, SYM], vocab)
                new[moved[i]] = old[i]
        moved[1 << old_bits] = 1 << new_bits
        new[1 << new_bits] = old[1 << old_bits]
        for j in range(new.shape[0]):
            if j == 1 << new_bits or new[j, CONTEXT] != EMPTY:
                for col in (NEXT, LOWER, HEAD):
                    if new[j, col] != EMPTY:
                        new[j, col] = moved[new[j, col]]
        for k in range(ctx.shape[0]):
            if ctx[k] != EMPTY:
                ctx[k] = moved[ctx[k]]

    @njit
    def mix_adaptive(p_nn, p_ppm, bucket, lr, theta):
        """One weight sigmoid(theta[b]) per bucket, stepped on -log p_mix after each target is scored."""
        out = np.empty(p_nn.shape[0])
        for t in range(p_nn.shape[0]):
            b = bucket[t]
            w = 1.0 / (1.0 + math.exp(-theta[b]))
            p = (1.0 - w) * p_nn[t] + w * p_ppm[t]
            out[t] = p
            theta[b] += lr * w * (1.0 - w) * (p_ppm[t] - p_nn[t]) / p  # -d(-log p)/d theta
        return out

    return run, rehash, mix_adaptive


# -----------------------------
# PPM-D PROBABILITIES
# -----------------------------

class _Table:
    """The counts: 2**bits hashed rows, kept at most half full, then the root context's row."""

    def __init__(self, bits: int):
        self.bits = bits
        self.rows = np.full(((1 << bits) + 1, 9), EMPTY, np.int32)
        self.rows[self.root, CHILD] = 0  # context ids: the root is 0
        self.rows[self.root, TOTAL] = self.rows[self.root, DISTINCT] = 0
        self.sizes = np.array([0, 1], np.int64)  # entries, context ids given out

    @property
    def root(self) -> int:
        return 1 << self.bits

    def grow(self, rehash, vocab: int, ctx: np.ndarray) -> None:
        if (2 << self.bits) > MAX_ROWS:
            raise RuntimeError(f"PPM table would exceed {MAX_ROWS} rows; use a lower PPM_ORDER or fewer ids")
        bigger = np.full(((2 << self.bits) + 1, 9), EMPTY, np.int32)
        rehash(self.rows, self.bits, bigger, self.bits + 1, vocab, ctx)
        self.bits, self.rows = self.bits + 1, bigger


def ppm_probabilities(ids: np.ndarray, order: int, vocab: int, start: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """p_ppm (float64) of the actual id and the confidence bucket (int8) of every target t in
    [start, len(ids)). Targets before `start` are not scored but do update the counts, so a process
    scoring a later slice of a stream warms its model on what comes before and gets exactly the numbers
    a single pass would. To warm on less, pass a slice: the model's history starts at ids[0]."""
    ids = np.ascontiguousarray(ids)
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        raise ValueError(f"ids must be a 1-D integer array, got {ids.dtype} with shape {ids.shape}")
    if not 0 <= order <= MAX_ORDER:
        raise ValueError(f"PPM order must be in 0..{MAX_ORDER}, got {order}")
    if not 1 <= vocab < 2**31:
        raise ValueError(f"vocab must be in 1..2**31-1 (symbols are int32), got {vocab}")
    if not 0 <= start <= ids.size:
        raise ValueError(f"start {start} is outside the stream of {ids.size} ids")
    if ids.size >= 2**31:
        raise ValueError(f"{ids.size} ids: counts are int32, at most {2**31 - 1}")
    if ids.size and not (ids.min() >= 0 and ids.max() < vocab):
        raise ValueError(f"ids must lie in [0, {vocab}), found [{ids.min()}, {ids.max()}]")
    if ids.dtype == np.uint64:
        ids = ids.astype(np.int64)  # numba would mix uint64 with the int64 node ids into float64
    run, rehash, _ = _kernels()
    # Room for n * order / 10 entries at half load: more than source code needs (about 0.26 per id at order
    # 5, 0.95 at 8: scripts/bench_ppm.py). The table doubles when full, so a low guess costs only rehashing.
    table = _Table(max(10, (ids.size * order // 5).bit_length()))
    ctx = np.full(order + 1, EMPTY, np.int64)  # the rows of the current target's contexts, by order
    ctx[0] = table.root
    p = np.empty(ids.size - start)
    bucket = np.empty(ids.size - start, np.int8)
    t = 0
    while True:
        t = run(ids, t, start, order, vocab, table.rows, table.bits, table.sizes, ctx, p, bucket)
        if t == ids.size:
            return p, bucket
        table.grow(rehash, vocab, ctx)


def compile_ppm(order: int, vocab: int, dtype=np.int64) -> None:
    """Compile every kernel for ids of `dtype` (numba compiles once per type; rehash runs only when a table
    fills) so that timings measure the work alone."""
    ppm_probabilities(np.arange(4, dtype=dtype), order, vocab)
    run, rehash, mix = _kernels()
    _Table(1).grow(rehash, vocab, np.full(order + 1, EMPTY, np.int64))
    mix_adaptive(np.full(1, 0.5), np.full(1, 0.5), np.zeros(1, np.int8), 0.0, 0.5)


# -----------------------------
# MIXING
# -----------------------------

def mix_fixed(p_nn: np.ndarray, p_ppm: np.ndarray, weight: float) -> np.ndarray:
    """(1 - weight) p_nn + weight p_ppm, float64."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"mixing weight must be in [0, 1], got {weight}")
    return (1.0 - weight) * np.asarray(p_nn, np.float64) + weight * np.asarray(p_ppm, np.float64)


def mix_adaptive(p_nn: np.ndarray, p_ppm: np.ndarray, bucket: np.ndarray, lr: float, init_weight: float) -> np.ndarray:
    """Online mixture, float64: target t uses w = sigmoid(theta[bucket[t]]) (every theta starts at
    logit(init_weight)), then that theta takes a gradient step of size lr on -log p_mix(t)."""
    if not 0.0 < init_weight < 1.0:
        raise ValueError(f"init_weight must be in (0, 1), got {init_weight}")
    p_nn, p_ppm = np.ascontiguousarray(p_nn, np.float64), np.ascontiguousarray(p_ppm, np.float64)
    bucket = np.ascontiguousarray(bucket)
    if p_nn.ndim != 1 or not p_nn.shape == p_ppm.shape == bucket.shape:  # the kernel does not check bounds
        raise ValueError(f"p_nn, p_ppm and bucket must be 1-D of one length: {p_nn.shape}, {p_ppm.shape}, {bucket.shape}")
    if bucket.size and not (bucket.min() >= 0 and bucket.max() < NUM_BUCKETS):
        raise ValueError(f"buckets must lie in [0, {NUM_BUCKETS})")
    theta = np.full(NUM_BUCKETS, math.log(init_weight / (1.0 - init_weight)))
    _, _, mix = _kernels()
    return mix(p_nn, p_ppm, bucket, float(lr), theta)


# -----------------------------
# SCORE-FIRST TEST-TIME TRAINING
# -----------------------------
# Each rank walks its own contiguous share of the windows in order, in groups that score at least
# TTT_CHUNK_TOKENS targets: a group is scored with the current weights, then the model takes TTT_STEPS
# Adam steps on the group's text, which is all already scored (C3). Nothing else is read, so a target's
# loss depends only on the artifact and the ids before it (C1), and each target is scored once (C4).
# With TTT_RESET=doc the adapted weights go back to the artifact's at every document start (BOS), and
# adaptation reads only the current document's text.


class LowRankDelta(nn.Module):
    """Parametrization W -> W + B A (B starts at zero, so the model starts as the artifact's). A comes from a
    fixed-seed generator: the score depends on the artifact and the text only, the same on every run."""

    def __init__(self, weight: Tensor, rank: int, generator: torch.Generator):
        super().__init__()
        a = torch.randn(rank, weight.size(1), generator=generator) / weight.size(1) ** 0.5
        self.a = nn.Parameter(a.to(weight.device))
        self.b = nn.Parameter(torch.zeros(weight.size(0), rank, device=weight.device))

    def forward(self, weight: Tensor) -> Tensor:
        return weight + (self.b @ self.a).to(weight.dtype)


def attach_adapted(model: nn.Module, what: str, rank: int) -> list[Tensor]:
    """Freezes the model and returns the parameters TTT adapts: the block scalars (gains, scales, mixes,
    q gains) and skip weights, or new LoRA factors on every block matrix."""
    for p in model.parameters():
        p.requires_grad_(False)
    if what == "lora":
        linears = [m for m in model.blocks.modules() if isinstance(m, CastedLinear)]
        generator = torch.Generator().manual_seed(0)
        for m in linears:
            parametrize.register_parametrization(m, "weight", LowRankDelta(m.weight, rank, generator))
        adapted = [p for m in linears for p in m.parametrizations.weight[0].parameters()]
    else:
        adapted = [p for name, p in model.named_parameters()
                   if name.startswith(("blocks.", "skip_weights")) and not name.endswith(".weight")]
    for p in adapted:
        p.requires_grad_(True)
    return adapted


def detach_adapted(model: nn.Module, saved: list[Tensor], adapted: list[Tensor], what: str) -> None:
    """Puts the artifact's weights back and unfreezes the model."""
    if what == "lora":
        for m in model.blocks.modules():
            if parametrize.is_parametrized(m, "weight"):
                parametrize.remove_parametrizations(m, "weight", leave_parametrized=False)
    else:
        with torch.no_grad():
            torch._foreach_copy_(adapted, saved)
    for p in model.parameters():
        p.requires_grad_(True)


def window_groups(windows: np.ndarray, chunk_tokens: int) -> list[np.ndarray]:
    """Consecutive windows, cut as soon as a group scores at least chunk_tokens targets."""
    scored = np.cumsum(windows[:, 2] - windows[:, 1]) if len(windows) else np.zeros(0, np.int64)
    cuts, done = [], 0
    for i, total in enumerate(scored):
        if total - done >= chunk_tokens:
            cuts.append(i + 1)
            done = total
    return [g for g in np.split(windows, cuts) if len(g)]


def adapt(model: nn.Module, text: Tensor, context: int, steps: int, optimizer, rt) -> None:
    """`steps` Adam steps on the cross-entropy of `text` (already scored ids), cut into rows of at most
    `context` targets that end at its last id."""
    length = min(context, text.numel() - 1)
    if length < 1:
        return
    rows = (text.numel() - 1) // length
    span = text[text.numel() - 1 - rows * length :].long()
    x, y = span[:-1].view(rows, length), span[1:].view(rows, length)
    for _ in range(steps):
        with rt.autocast():
            loss = model(x, y)[0]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def ttt_score(model: nn.Module, hidden_fn, tokens: Tensor, windows: np.ndarray, context: int, batch_seqs: int,
              rt, args) -> Tensor:
    """Losses of the windows' targets in stream order, each group scored before the model adapts on it."""
    adapted = attach_adapted(model, args.ttt_params, args.ttt_lora_rank)
    saved = [p.detach().clone() for p in adapted]
    optimizer = torch.optim.Adam(adapted, lr=args.ttt_lr)
    hidden = torch.compile(model.hidden, dynamic=False) if rt.compile else model.hidden
    losses = []
    try:
        for group in window_groups(windows, args.ttt_chunk_tokens):
            losses.append(score_windows(model, hidden, tokens, group, context, batch_seqs, rt))
            first, last = target_range(group)
            text = tokens[first - 1 : last]
            starts = (text[1:] == BOS_ID).nonzero()
            if args.ttt_reset == "doc" and len(starts):  # a new document began: forget the previous one
                with torch.no_grad():
                    torch._foreach_copy_(adapted, saved)
                optimizer = torch.optim.Adam(adapted, lr=args.ttt_lr)
                text = text[int(starts[-1]) + 1 :]
            model.train()
            with torch.enable_grad():
                adapt(model, text, context, args.ttt_steps, optimizer, rt)
            model.eval()
    finally:
        detach_adapted(model, saved, adapted, args.ttt_params)
    return torch.cat(losses) if losses else torch.zeros(0, device=rt.device)


# -----------------------------
# THE METHODS AFTER THE FINAL EVALUATION
# -----------------------------

FULL_VAL_TARGETS = 151_130_112  # byte260 FineWeb val ids - 1 (PR #832's log: 151,130,112 val tokens)
# PR #832's 8xH100 eval times for this model class (seed 7 log): non-overlapping 12.3 s, sliding 53.8 s
# (stride 512, context 4096). The projection scales from these until a GPU check of ours exists.
H100X8_PLAIN_SECONDS, H100X8_SLIDING_SECONDS, H100X8_STRIDE, H100X8_CONTEXT = 12.3, 53.8, 512, 4096
PREFEED_SPEEDUP = 3.0  # updating the PPM without scoring is about 3x faster (scripts/bench_ppm.py)
ADAPTIVE_INIT_WEIGHT = 0.2


def mixed_result(losses: Tensor, plain, rt, seconds: float) -> dict:
    """BPB of per-target losses over the same targets (and bytes) as the plain evaluation."""
    total = losses.double().sum()
    if rt.distributed:
        dist.all_reduce(total)
    return {"val_loss": total.item() / plain.scored_targets, "val_bpb": total.item() / math.log(2) / plain.byte_count,
            "eval_ms": 1000 * seconds}


def ppm_mixtures(scorer, bases: dict, args, rt) -> tuple[dict, dict, float]:
    """Each base evaluation's losses mixed with the PPM-D; (results, mixed losses, PPM seconds)."""
    plain = bases[""]
    first, count = plain.first_target, plain.losses.numel()
    ids = scorer.sliding_val[: first + count].cpu().numpy()
    compile_ppm(args.ppm_order, scorer.spec.vocab_size, ids.dtype)
    started = time.perf_counter()
    p_ppm, bucket = ppm_probabilities(ids, args.ppm_order, scorer.spec.vocab_size, start=first)
    ppm_seconds = time.perf_counter() - started
    results, mixed_losses = {}, {}
    for name, base in bases.items():
        p_nn = np.exp(-base.losses.double().cpu().numpy())
        p_mix = (mix_fixed(p_nn, p_ppm, args.ppm_weight) if args.ppm_weight
                 else mix_adaptive(p_nn, p_ppm, bucket, args.ppm_lr, ADAPTIVE_INIT_WEIGHT))
        key = f"{name}+ppm" if name else "ppm"
        mixed_losses[key] = torch.from_numpy(-np.log(p_mix)).float().to(rt.device)
        results[key] = mixed_result(mixed_losses[key], plain, rt, time.perf_counter() - started)
    rate = ids.size / ppm_seconds
    rt.log(f"ppm: order {args.ppm_order}, {ids.size - first:,} targets scored after {first:,} prefed in "
           f"{ppm_seconds:.2f}s ({rate / 1e6:.2f}M ids/s on this rank)")
    worst_rank = FULL_VAL_TARGETS * (7 / 8 / PREFEED_SPEEDUP + 1 / 8) / rate  # prefeeds 7/8, scores 1/8
    for r in results.values():
        r["ppm_ids_per_s"] = rate
    return results, mixed_losses, worst_rank


def projected_eval_seconds(args, ppm_seconds: float) -> str:
    """Projected 8xH100 evaluation time of the final evaluations with these methods."""
    sliding = H100X8_SLIDING_SECONDS * (H100X8_STRIDE / args.val_sliding_stride) * (args.train_seq_len / H100X8_CONTEXT)
    ttt = sliding * (1 + 3 * args.ttt_steps * args.val_sliding_stride / args.train_seq_len) if args.ttt_steps else 0.0
    total = H100X8_PLAIN_SECONDS + sliding + ttt + ppm_seconds
    line = (f"projected_eval_8xH100: {total:.0f}s = non-overlapping {H100X8_PLAIN_SECONDS:.0f}s + sliding {sliding:.0f}s"
            f" + ttt {ttt:.0f}s + ppm {ppm_seconds:.0f}s (GPU parts scaled from PR #832's 8xH100 log, TTT as 3 forward"
            f"-equivalents per target per step, PPM at this machine's measured rate on the busiest rank)")
    return line + (f"\nWARNING: projected evaluation {total:.0f}s exceeds the 600s evaluation budget" if total > 600 else "")


def score_methods(scorer, model: nn.Module, hidden_fn, plain) -> tuple[dict, Tensor]:
    """Runs the methods that are on after the plain sliding evaluation `plain`; logs each one's BPB next
    to the plain one. Returns (results by method, in order, the last using every method; its losses)."""
    args, rt = scorer.args, scorer.rt
    results, bases, losses, ppm_seconds = {}, {"": plain}, plain.losses, 0.0
    if args.ttt_steps:
        ttt = scorer.evaluate(model, hidden_fn, scorer.sliding_val, args.val_sliding_stride,
                              functools.partial(ttt_score, args=args))
        bases["ttt"], losses = ttt, ttt.losses
        results["ttt"] = {"val_loss": ttt.val_loss, "val_bpb": ttt.val_bpb, "eval_ms": ttt.eval_ms,
                          "scored_targets": ttt.scored_targets}
    if args.ppm_order:
        mixtures, mixed_losses, ppm_seconds = ppm_mixtures(scorer, bases, args, rt)
        results.update(mixtures)
        losses = mixed_losses[list(mixtures)[-1]]
    for name, r in results.items():
        rt.log(f"final_sliding+{name} val_loss:{r['val_loss']:.4f} val_bpb:{r['val_bpb']:.4f} "
               f"plain_sliding_bpb:{plain.val_bpb:.4f} gain:{r['val_bpb'] - plain.val_bpb:+.4f} "
               f"eval_time:{r['eval_ms']:.0f}ms")
    rt.log(projected_eval_seconds(args, ppm_seconds))
    return results, losses
