"""
Evaluation-time PPM: an adaptive PPM-D byte predictor, and its mixture with the network's probabilities.

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

The kernels need numba (requirements-eval.txt), imported only when a PPM function runs, so that
`import eval_time` works without it.
"""

from __future__ import annotations

import functools
import math

import numpy as np

MAX_ORDER = 14  # the largest order whose buckets fit int8
NUM_BUCKETS = 8 * MAX_ORDER + 9
MAX_SLOTS = 1 << 31  # slot and node indices are int32

# Hash-table slot: one (context node, symbol) entry. `lower` is the entry of the same symbol in the
# context one order shorter (it exists: full updates), so exclusion totals need no hash look-ups;
# `succ` is the context node "context + symbol", the next target's context one order up.
NODE, SYM, COUNT, NEXT, LOWER, SUCC = range(6)
# Context node: count total, distinct symbols, first entry of its symbol list (linked by NEXT).
TOTAL, DISTINCT, HEAD = range(3)
EMPTY = -1
ROOT = 0  # the order-0 context
HASH_MULTIPLIER = -7046029254386353131  # 0x9E3779B97F4A7C15 as int64 (Fibonacci hashing)


# -----------------------------
# KERNELS (numba)
# -----------------------------

@functools.cache
def _kernels():
    """Compile the kernels once per process; they close over each other, so they are built together."""
    try:
        import numba
    except ImportError:
        raise RuntimeError("PPM_ORDER needs numba (pip install -r requirements-eval.txt)") from None
    njit = numba.njit(cache=False, nogil=True)

    @njit
    def probe(slots, bits, node, sym, vocab):
        """The slot holding (node, sym), or the empty slot where it belongs (linear probing)."""
        mask = slots.shape[0] - 1
        i = (((node * vocab + sym) * HASH_MULTIPLIER) >> (64 - bits)) & mask
        while slots[i, NODE] != EMPTY and (slots[i, NODE] != node or slots[i, SYM] != sym):
            i = (i + 1) & mask
        return i

    @njit
    def excluded_total(slots, entry):
        """Count total, one order down, of the symbols in the list that starts at `entry`."""
        total = 0
        while entry != EMPTY:
            total += slots[slots[entry, LOWER], COUNT]
            entry = slots[entry, NEXT]
        return total

    @njit
    def bucket_of(nodes, ctx, top):
        if top < 0:
            return 0
        total = nodes[ctx[top], TOTAL]
        total_bin = 0 if total == 1 else 1 if total < 4 else 2 if total < 16 else 3
        return 1 + 8 * top + 2 * total_bin + (1 if nodes[ctx[top], DISTINCT] == 1 else 0)

    @njit
    def predict(slots, bits, nodes, ctx, top, sym, vocab):
        """p_ppm of `sym`, walking down from order `top` (the highest whose context has counts)."""
        mass = 1.0
        for k in range(top, -1, -1):
            node = ctx[k]
            total = nodes[node, TOTAL]
            distinct = nodes[node, DISTINCT]
            if k < top:
                # E is the symbol set of the order-(k+1) context: full updates make every set a subset
                # of the next shorter context's, so E only ever grows to the last context visited.
                above = ctx[k + 1]
                distinct -= nodes[above, DISTINCT]
                if distinct == 0:
                    continue  # T' = 0: sym is not here either (it was not above); free escape
                total -= excluded_total(slots, nodes[above, HEAD])
            i = probe(slots, bits, node, sym, vocab)
            if slots[i, NODE] != EMPTY:
                return mass * (2 * slots[i, COUNT] - 1) / (2.0 * total)
            mass *= distinct / (2.0 * total)
        excluded = nodes[ROOT, DISTINCT] if top >= 0 else 0
        return mass / (vocab - excluded)

    @njit
    def update(slots, bits, nodes, sizes, ctx, order, sym, vocab):
        """Count sym in every available context, then move ctx on to the next target's contexts."""
        successor = ROOT  # the next target's context of order k is the successor of this one's order k-1
        lower = EMPTY
        for k in range(order + 1):
            node = ctx[k]
            ctx[k] = successor
            if node == EMPTY:  # this target has no order-k context; the next one has none of order k+1
                successor = EMPTY
                continue
            i = probe(slots, bits, node, sym, vocab)
            if slots[i, NODE] == EMPTY:
                slots[i, NODE] = node
                slots[i, SYM] = sym
                slots[i, COUNT] = 0
                slots[i, NEXT] = nodes[node, HEAD]
                slots[i, LOWER] = lower
                slots[i, SUCC] = EMPTY
                if k < order:
                    slots[i, SUCC] = sizes[1]
                    nodes[sizes[1], TOTAL] = 0
                    nodes[sizes[1], DISTINCT] = 0
                    nodes[sizes[1], HEAD] = EMPTY
                    sizes[1] += 1
                nodes[node, HEAD] = i
                nodes[node, DISTINCT] += 1
                sizes[0] += 1
            slots[i, COUNT] += 1
            nodes[node, TOTAL] += 1
            lower = i
            successor = slots[i, SUCC]

    @njit
    def run(ids, t, score_from, order, vocab, slots, bits, nodes, sizes, ctx, out_p, out_bucket):
        """Process targets from t on: score those >= score_from, update with all. Returns where it
        stopped: len(ids), or earlier when the next target could push the table past half full."""
        limit = slots.shape[0] >> 1
        while t < ids.shape[0]:
            if sizes[0] + order + 1 > limit:
                return t
            top = order
            while top >= 0 and (ctx[top] == EMPTY or nodes[ctx[top], TOTAL] == 0):
                top -= 1
            sym = ids[t]
            p = predict(slots, bits, nodes, ctx, top, sym, vocab)
            if t >= score_from:
                out_p[t - score_from] = p
                out_bucket[t - score_from] = bucket_of(nodes, ctx, top)
            update(slots, bits, nodes, sizes, ctx, order, sym, vocab)
            t += 1
        return t

    @njit
    def rehash(old, new, new_bits, vocab, nodes, num_nodes):
        """Move every entry into the larger table and translate the slot indices that point at entries."""
        moved = np.empty(old.shape[0], np.int64)
        for i in range(old.shape[0]):
            if old[i, NODE] != EMPTY:
                j = probe(new, new_bits, old[i, NODE], old[i, SYM], vocab)
                new[j] = old[i]
                moved[i] = j
        for j in range(new.shape[0]):
            if new[j, NODE] != EMPTY:
                for col in (NEXT, LOWER):
                    if new[j, col] != EMPTY:
                        new[j, col] = moved[new[j, col]]
        for v in range(num_nodes):
            if nodes[v, HEAD] != EMPTY:
                nodes[v, HEAD] = moved[nodes[v, HEAD]]

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
    """The counts: open-addressing slots (kept at most half full) and context nodes."""

    def __init__(self, bits: int):
        self.bits = bits
        self.slots = np.full((1 << bits, 6), EMPTY, np.int32)
        # Each entry below order N makes one node, so this many always suffice for a half-full table.
        self.nodes = np.empty(((1 << bits) // 2 + 1, 3), np.int32)
        self.nodes[ROOT] = 0, 0, EMPTY
        self.sizes = np.array([0, 1], np.int64)  # entries, nodes

    def grow(self, rehash, vocab: int) -> None:
        if (2 << self.bits) > MAX_SLOTS:
            raise RuntimeError(f"PPM table would exceed {MAX_SLOTS} slots; use a lower PPM_ORDER or fewer ids")
        bigger = _Table(self.bits + 1)
        bigger.nodes[: self.sizes[1]] = self.nodes[: self.sizes[1]]
        rehash(self.slots, bigger.slots, bigger.bits, vocab, bigger.nodes, self.sizes[1])
        self.bits, self.slots, self.nodes = bigger.bits, bigger.slots, bigger.nodes


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
    if not 0 <= start <= ids.size:
        raise ValueError(f"start {start} is outside the stream of {ids.size} ids")
    if ids.size >= MAX_SLOTS:
        raise ValueError(f"{ids.size} ids: counts are int32, at most {MAX_SLOTS - 1}")
    if ids.size and not (ids.min() >= 0 and ids.max() < vocab):
        raise ValueError(f"ids must lie in [0, {vocab}), found [{ids.min()}, {ids.max()}]")
    if ids.dtype == np.uint64:
        ids = ids.astype(np.int64)  # numba would mix uint64 with the int64 node ids into float64
    run, rehash, _ = _kernels()
    # Text makes about one new entry per id at order 5 (measured: scripts/bench_ppm.py); the table doubles
    # when it needs more, so this start only saves rehashing.
    table = _Table(max(10, int(4 * ids.size * (order + 1) / 6 + 1).bit_length()))
    ctx = np.full(order + 1, EMPTY, np.int64)
    ctx[0] = ROOT
    p = np.empty(ids.size - start)
    bucket = np.empty(ids.size - start, np.int8)
    t = 0
    while True:
        t = run(ids, t, start, order, vocab, table.slots, table.bits, table.nodes, table.sizes, ctx, p, bucket)
        if t == ids.size:
            return p, bucket
        table.grow(rehash, vocab)


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
    bucket = np.ascontiguousarray(bucket)
    if bucket.size and not (bucket.min() >= 0 and bucket.max() < NUM_BUCKETS):
        raise ValueError(f"buckets must lie in [0, {NUM_BUCKETS})")
    theta = np.full(NUM_BUCKETS, math.log(init_weight / (1.0 - init_weight)))
    _, _, mix = _kernels()
    return mix(np.ascontiguousarray(p_nn, np.float64), np.ascontiguousarray(p_ppm, np.float64), bucket, float(lr), theta)
