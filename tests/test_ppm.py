"""eval_time.py: the PPM-D kernel against a plain-Python reference that builds the full distribution over
all ids at every target from the definition; the reviewers' conditions C1-C3; the mixers."""
from __future__ import annotations

import math
import subprocess
import sys
from collections import Counter, defaultdict

import numpy as np
import pytest

import eval_time
from conftest import REPO_ROOT

TEXT = ("The cat sat on the mat. The dog sat on the log. A cat and a dog sat on a mat and a log.\n"
        "Then the cat ran off the mat, and the dog ran after the cat; the log stayed where it was.\n")


def byte260(docs: list[bytes]) -> np.ndarray:
    """BOS (1) before every document, then its bytes + 4."""
    return np.array([i for doc in docs for i in [1, *(b + 4 for b in doc)]], np.int64)


# ---- the reference: dicts of Counters, the whole distribution by the definition ----
def reference_ppm(ids, order: int, vocab: int) -> tuple[list[list[float]], list[int]]:
    """PPM-D with exclusion: the distribution over all `vocab` ids at every target t >= 0, and the bucket
    (0 with no counts, else 1 + 8 k + 2 bin(total) + [distinct == 1] at the highest order k with counts)."""
    ids = [int(i) for i in ids]
    counts = [defaultdict(Counter) for _ in range(order + 1)]  # counts[k][context][symbol]
    dists, buckets = [], []
    for t, actual in enumerate(ids):
        contexts = [tuple(ids[t - k:t]) for k in range(min(order, t) + 1)]
        with_counts = [k for k, c in enumerate(contexts) if counts[k][c]]
        top = max(with_counts, default=-1)
        if top < 0:
            buckets.append(0)
        else:
            seen = counts[top][contexts[top]]
            total = sum(seen.values())
            total_bin = 0 if total == 1 else 1 if total <= 3 else 2 if total <= 15 else 3
            buckets.append(1 + 8 * top + 2 * total_bin + (len(seen) == 1))
        dist, mass, excluded = [0.0] * vocab, 1.0, set()
        for k in range(top, -1, -1):
            seen = counts[k][contexts[k]]
            fresh = {s: n for s, n in seen.items() if s not in excluded}
            total = sum(fresh.values())
            if total == 0:
                continue
            for s, n in fresh.items():
                dist[s] = mass * (2 * n - 1) / (2 * total)
            mass *= len(fresh) / (2 * total)
            excluded |= set(seen)
        for s in range(vocab):
            if s not in excluded:
                dist[s] = mass / (vocab - len(excluded))
        dists.append(dist)
        for k, c in enumerate(contexts):
            counts[k][c][actual] += 1
    return dists, buckets


def reference_mix_adaptive(p_nn, p_ppm, bucket, lr, init_weight) -> list[float]:
    theta = defaultdict(lambda: math.log(init_weight / (1 - init_weight)))
    out = []
    for pn, pp, b in zip(p_nn, p_ppm, bucket):
        w = 1 / (1 + math.exp(-theta[b]))
        p = (1 - w) * pn + w * pp
        out.append(p)
        theta[b] -= lr * (-(pp - pn) / p) * w * (1 - w)  # d(-log p)/dw * dw/dtheta
    return out


def streams() -> dict[str, tuple[np.ndarray, int]]:
    rng = np.random.default_rng(0)
    text = TEXT.encode()
    return {
        "random, 5 of 8 ids": (rng.integers(0, 5, 700), 8),
        "repeats, byte260": (byte260([text, text[:90], text]), 260),
        "repeats, raw256": (np.frombuffer(text * 2, np.uint8).astype(np.int64), 256),
        "random over 256 ids": (rng.integers(0, 256, 1500), 256),  # about order + 1 new entries a target
        "tokens, 1024 ids": (rng.integers(0, 1024, 400), 1024),
        "shorter than the order": (np.array([7, 7, 9]), 260),
    }


STREAMS = streams()


@pytest.fixture(scope="module")
def references():
    return {(name, order): reference_ppm(ids, order, vocab)
            for name, (ids, vocab) in STREAMS.items() for order in (1, 3, 5)}


@pytest.mark.parametrize("order", [1, 3, 5])
@pytest.mark.parametrize("name", STREAMS)
def test_kernel_equals_the_reference(references, name, order, monkeypatch):
    ids, vocab = STREAMS[name]
    grown, grow = [], eval_time._Table.grow

    def counting_grow(table, *args):
        grown.append(table.bits)
        grow(table, *args)

    monkeypatch.setattr(eval_time._Table, "grow", counting_grow)
    p, bucket = eval_time.ppm_probabilities(ids, order, vocab, start=0)  # from the very first target
    dists, ref_buckets = references[name, order]
    assert p.dtype == np.float64 and bucket.dtype == np.int8 and p.shape == bucket.shape == ids.shape
    np.testing.assert_allclose(p, [d[i] for d, i in zip(dists, ids)], rtol=1e-12, atol=0)
    assert bucket.tolist() == ref_buckets
    if name == "random over 256 ids" and order == 5:
        assert grown, "this stream is meant to outgrow the first table"


@pytest.mark.parametrize("order", [0, 2, 4])
def test_other_orders_and_id_dtypes(order):
    ids, vocab = STREAMS["repeats, byte260"]
    dists, _ = reference_ppm(ids, order, vocab)
    for dtype in (np.uint16, np.int32, np.uint64):
        p, _ = eval_time.ppm_probabilities(ids.astype(dtype), order, vocab)
        np.testing.assert_allclose(p, [d[i] for d, i in zip(dists[1:], ids[1:])], rtol=1e-12, atol=0)


def test_reference_distributions_are_normalized_without_zeros(references):  # C2
    for dists, _ in references.values():
        d = np.array(dists)
        assert np.abs(d.sum(1) - 1).max() < 1e-12 and d.min() > 0


def test_mixture_is_a_normalized_distribution_without_zeros(references):  # C2
    """The adaptive weight at t comes from the past only, so swapping in each candidate id at t (its network
    and PPM probabilities) and reading p_mix(t) gives the whole mixed distribution."""
    ids, vocab = STREAMS["repeats, byte260"]
    dists, buckets = references["repeats, byte260", 3]
    rng = np.random.default_rng(1)
    q_nn = rng.dirichlet(np.full(vocab, 0.3), ids.size)
    p_nn = q_nn[np.arange(ids.size), ids]
    p_ppm = np.array([d[i] for d, i in zip(dists, ids)])
    bucket = np.array(buckets, np.int8)
    for t in (0, 1, 50, 200, ids.size - 1):
        mixed = []
        for v in range(vocab):
            pn, pp = p_nn.copy(), p_ppm.copy()
            pn[t], pp[t] = q_nn[t, v], dists[t][v]
            mixed.append(eval_time.mix_adaptive(pn[:t + 1], pp[:t + 1], bucket[:t + 1], 0.5, 0.3)[t])
        assert abs(sum(mixed) - 1) < 1e-9 and min(mixed) > 0
    fixed = eval_time.mix_fixed(q_nn, np.array(dists), 0.3)
    assert np.abs(fixed.sum(1) - 1).max() < 1e-9 and fixed.min() > 0


@pytest.mark.parametrize("t", [1, 2, 40, 333, 598])
def test_scores_and_buckets_depend_only_on_the_past(t):  # C1, C3
    ids, vocab = byte260([TEXT.encode() * 4])[:600], 260
    rng = np.random.default_rng(t)
    changed = ids.copy()
    changed[t:] = rng.integers(4, 260, ids.size - t)
    p_nn, changed_nn = rng.uniform(0.01, 0.9, (2, ids.size))
    changed_nn[:t] = p_nn[:t]
    p, bucket = eval_time.ppm_probabilities(ids, 4, vocab, start=0)
    q, changed_bucket = eval_time.ppm_probabilities(changed, 4, vocab, start=0)
    assert np.array_equal(p[:t], q[:t]) and not np.array_equal(p[t:], q[t:])
    assert np.array_equal(bucket[:t + 1], changed_bucket[:t + 1])  # the bucket of target t comes before ids[t]
    mixed = eval_time.mix_adaptive(p_nn, p, bucket, 0.3, 0.2)
    changed_mixed = eval_time.mix_adaptive(changed_nn, q, changed_bucket, 0.3, 0.2)
    assert np.array_equal(mixed[:t], changed_mixed[:t])


@pytest.mark.parametrize("start", [1, 2, 17, 400, 1500])
def test_scoring_a_slice_after_prefeeding_equals_one_pass(start):
    ids, vocab = STREAMS["random over 256 ids"]
    p, bucket = eval_time.ppm_probabilities(ids, 3, vocab)
    tail_p, tail_bucket = eval_time.ppm_probabilities(ids, 3, vocab, start=start)
    assert np.array_equal(tail_p, p[start - 1:]) and np.array_equal(tail_bucket, bucket[start - 1:])


def test_adaptive_mixer_follows_its_update_rule():
    rng = np.random.default_rng(2)
    p_nn, p_ppm = rng.uniform(1e-4, 1, (2, 3000))
    bucket = rng.integers(0, eval_time.NUM_BUCKETS, 3000).astype(np.int8)
    got = eval_time.mix_adaptive(p_nn, p_ppm, bucket, 0.05, 0.25)
    np.testing.assert_allclose(got, reference_mix_adaptive(p_nn, p_ppm, bucket, 0.05, 0.25), rtol=1e-12, atol=0)
    np.testing.assert_allclose(eval_time.mix_fixed(p_nn, p_ppm, 0.25), 0.75 * p_nn + 0.25 * p_ppm, rtol=1e-15)


def test_adaptive_mixing_beats_either_component_on_repeated_text():
    """A unigram 'network' is better on the text's first pass, the PPM on its repeats: the learned
    weights must beat both fixed extremes."""
    ids = byte260([TEXT.encode()] * 6)
    unigram = np.bincount(ids, minlength=260) / ids.size
    p_ppm, bucket = eval_time.ppm_probabilities(ids, 5, 260)
    p_nn = unigram[ids[1:]]
    loss = {name: -np.log(p).sum() for name, p in {
        "network": eval_time.mix_fixed(p_nn, p_ppm, 0.0), "ppm": eval_time.mix_fixed(p_nn, p_ppm, 1.0),
        "adaptive": eval_time.mix_adaptive(p_nn, p_ppm, bucket, 0.5, 0.5)}.items()}
    assert loss["adaptive"] < min(loss["network"], loss["ppm"]), loss


@pytest.mark.parametrize("call, message", [
    (lambda: eval_time.ppm_probabilities(np.array([1, 300]), 3, 260), "must lie in"),
    (lambda: eval_time.ppm_probabilities(np.array([1, 5]), 15, 260), "order must be in"),
    (lambda: eval_time.ppm_probabilities(np.array([1.0, 5.0]), 3, 260), "integer array"),
    (lambda: eval_time.ppm_probabilities(np.array([1, 5]), 3, 260, start=3), "outside the stream"),
    (lambda: eval_time.mix_fixed(np.ones(2), np.ones(2), 1.5), r"in \[0, 1\]"),
    (lambda: eval_time.mix_adaptive(np.ones(2), np.ones(2), np.zeros(2, np.int8), 0.1, 1.0), r"in \(0, 1\)"),
    (lambda: eval_time.mix_adaptive(np.ones(2), np.ones(3), np.zeros(2, np.int8), 0.1, 0.5), "one length"),
])
def test_bad_arguments_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_import_works_without_numba_and_the_kernel_says_what_is_missing():
    script = ("import sys; sys.modules['numba'] = None\n"
              "import numpy as np, eval_time\n"
              "try:\n    eval_time.ppm_probabilities(np.array([1, 5, 6]), 2, 260)\n"
              "except RuntimeError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "PPM_ORDER needs numba (pip install -r requirements-eval.txt)"
