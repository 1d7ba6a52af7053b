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

import numpy as np

MAX_ORDER = 14  # the largest order whose buckets fit int8
NUM_BUCKETS = 8 * MAX_ORDER + 9
MAX_ROWS = 1 << 30  # row indices and context ids are int32

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
