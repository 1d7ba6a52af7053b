"""The token records' techniques after PR #832, brought to bytes (frontier_next.py, DOC_BOUNDARY, MIN_LR,
NS_COEFFICIENTS): each against its published formula written out here, in float64 where it is arithmetic;
causality and document isolation; depth recurrence shares its weights and switches on without a jump."""

import math

import pytest
import torch
import torch.nn.functional as F

import train_byte_model as tbm
from helpers import TINY_ENV, final_summary, log_lines, make_byte_dataset, run_trainer
from test_model import randomized, tiny_config

BOS = 1


def model_of(**overrides) -> tbm.ByteGPT:
    return randomized(tbm.build_model(tiny_config(**overrides)))


def ids_with_documents(rows: int, length: int, starts: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    ids = torch.randint(4, 260, (rows, length), generator=torch.Generator().manual_seed(seed))
    ids[:, list(starts)] = BOS
    return ids


# ---- DOC_BOUNDARY -------------------------------------------------------------------------------------------


def test_a_documents_embedding_does_not_see_the_previous_document():
    """From its BOS on, a document's embedding (byte + bigram, RMSNorm, SmearGate) is the same whatever came
    before; without DOC_BOUNDARY its BOS position blends in the previous document's last byte."""
    ids = ids_with_documents(1, 20, (0, 9))
    other = ids.clone()
    other[0, 1:9] = (ids[0, 1:9] - 4 + 7) % 256 + 4  # another previous document
    fixed = model_of(doc_boundary=1)
    plain = tbm.ByteGPT(tiny_config(doc_boundary=0))
    plain.load_state_dict(fixed.state_dict())
    with torch.no_grad():
        assert torch.equal(fixed.embed(ids)[0, 9:], fixed.embed(other)[0, 9:])
        assert not torch.allclose(plain.embed(ids)[0, 9], plain.embed(other)[0, 9])
        assert torch.equal(plain.embed(ids)[0, 11:], fixed.embed(ids)[0, 11:])  # past the BOS and its smear: unchanged


def test_at_a_bos_smear_sees_zeros_and_the_bigram_hashes_it_as_a_first_position():
    """The written-out value at a BOS: RMSNorm(byte + bigram(0, BOS)) * (1 - sigmoid(gate)), the bucket of the
    pair (0, BOS) by the mix hash, key = (prev * vocab + cur) * 2654435761 mod 2^32, bucket = key * buckets >> 32."""
    model = model_of(doc_boundary=1).double()
    ids = ids_with_documents(1, 12, (0, 5))
    key = (0 * 260 + BOS) * 2654435761 % 2**32
    bucket = key * model.cfg.bigram_hash_buckets >> 32
    bigram = model.bigram.proj.weight @ model.bigram.embed.weight[bucket]
    normed = F.rms_norm(model.tok_emb.weight[BOS] + bigram, (64,))
    expected = normed * (1 - torch.sigmoid(model.smear.gate))
    with torch.no_grad():
        torch.testing.assert_close(model.embed(ids)[0, 5], expected, rtol=1e-12, atol=1e-12)


def test_document_boundary_model_stays_causal():
    """Changing id t (a byte into a BOS, or a BOS into a byte, included) changes no logit before t."""
    model = model_of(doc_boundary=1).eval()
    ids = ids_with_documents(1, 24, (0, 7, 15)).repeat(24, 1)
    changed = ids.clone()
    changed[range(24), range(24)] = torch.where(ids[0] == BOS, 100, BOS)
    with torch.no_grad():
        a, b = model.logits(model.hidden(ids)), model.logits(model.hidden(changed))
    for t in range(24):
        assert torch.equal(a[t, :t], b[t, :t]), f"id {t} leaked backwards"
        assert not torch.allclose(a[t, t:], b[t, t:])


# ---- NS_COEFFICIENTS, MIN_LR --------------------------------------------------------------------------------

PUBLISHED_POLAR_EXPRESS = [  # PR #1787's five (a, b, c), typed in from its train_gpt.py
    (8.156554524902461, -22.48329292557795, 15.878769915207462),
    (4.042929935166739, -2.808917465908714, 0.5000178451051316),
    (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
    (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
    (2.3465413258596377, -1.7097828382687081, 0.42323551169305323),
]


def test_polar_express_is_the_published_iteration_and_orthogonalizes_tighter():
    g = torch.randn(24, 40, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x = g / (torch.linalg.matrix_norm(g) + 1e-7)
    for a, b, c in PUBLISHED_POLAR_EXPRESS:  # X <- a X + (b A + c A^2) X, A = X X^T
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    args = tbm.Hyperparameters({"NS_COEFFICIENTS": "polar_express"})
    muon = tbm.build_optimizers(tbm.ByteGPT(tiny_config()), args)[1]
    assert muon.coefficients == tuple(PUBLISHED_POLAR_EXPRESS)
    ours = tbm.newton_schulz(g, muon.coefficients, torch.float64)
    torch.testing.assert_close(ours, x, rtol=1e-9, atol=1e-9)
    spread = lambda y: (lambda s: (s.max() - s.min()).item())(torch.linalg.svdvals(y))  # noqa: E731
    quintic = tbm.newton_schulz(g, (tbm.NEWTON_SCHULZ_COEFFICIENTS,) * 5, torch.float64)
    assert spread(ours) < spread(quintic)


@pytest.mark.parametrize("step, expected", [(0, 1.0), (70, 1.0), (80, 20 / 25), (95, 0.2), (99, 0.2), (100, 0.2)])
def test_min_lr_floors_the_warmdown(step, expected):
    """max((iterations - step) / warmdown, MIN_LR): a clamp, as PR #1787's lr_mul."""
    args = tbm.Hyperparameters({"ITERATIONS": "100", "WARMDOWN_ITERS": "25", "MIN_LR": "0.2",
                                "MAX_WALLCLOCK_SECONDS": "0"})
    assert tbm.lr_scale(args, step, 0.0) == pytest.approx(expected)


# ---- SKIP_GATES, PARALLEL_START_LAYER, NUM_LOOPS -----------------------------------------------------------


def reference_trunk(model, x: torch.Tensor, looping: bool) -> torch.Tensor:
    """The published trunk, written out: the virtual layer order (the recurrent span 1 + NUM_LOOPS times), U-Net
    halves over it with LIFO skips, x = g x + (1 - g) w s for a gated skip, and from PARALLEL_START_LAYER two
    lanes: a = attention(lane0 mixed with x0), m = MLP(lane1), lane_k = c_k lane_k + w_attn,k a + w_mlp,k m;
    the output is the lanes' mean."""
    cfg, layers = model.cfg, list(range(len(model.blocks)))
    order = layers
    if cfg.num_loops and looping:
        span = layers[cfg.loop_start: cfg.loop_end + 1]
        order = layers[: cfg.loop_start] + span * (cfg.num_loops + 1) + layers[cfg.loop_end + 1:]
    half = len(order) // 2
    pairs = min(half, len(order) - half) if cfg.unet_skips else 0
    x0, lane1, stack = x, None, []
    rms = lambda t, b: F.rms_norm(t, (t.size(-1),)) * b.input_scale  # noqa: E731
    for v, i in enumerate(order):
        b = model.blocks[i]
        if half <= v < half + pairs:
            s = model.skip_weights[v - half] * stack.pop()
            if cfg.skip_gates:
                g = torch.sigmoid(model.skip_gates[v - half])
                x = g * x + (1 - g) * s
            else:
                x = x + s
        if cfg.parallel_start_layer and i >= cfg.parallel_start_layer:
            lane1 = x if lane1 is None else lane1
            w, c = model.lane_writes[i - cfg.parallel_start_layer], model.lane_carries[i - cfg.parallel_start_layer]
            a = b.attn_scale * b.attn(rms(b.resid_mix[0] * x + b.resid_mix[1] * x0, b))
            m = b.mlp_scale * b.mlp(rms(lane1, b))
            x, lane1 = c[0] * x + w[0, 0] * a + w[1, 0] * m, c[1] * lane1 + w[0, 1] * a + w[1, 1] * m
        else:
            x = b(x, x0)
        if v < pairs:
            stack.append(x)
    return x if lane1 is None else (x + lane1) / 2


@pytest.mark.parametrize("overrides", [
    {"skip_gates": 1}, {"parallel_start_layer": 3}, {"parallel_start_layer": 1, "skip_gates": 1},
    {"num_loops": 2, "loop_start": 1, "loop_end": 2}, {"num_loops": 1, "loop_start": 2, "loop_end": 3, "skip_gates": 1,
                                                         "parallel_start_layer": 3}])
@pytest.mark.parametrize("looping", [False, True])
def test_trunk_matches_the_published_formulas_in_float64(overrides, looping):
    model = model_of(**overrides).double()
    for p in [model.skip_gates, model.lane_writes, model.lane_carries]:
        if p is not None:  # away from their initial 0, 1 and 1.1, so every term shows
            p.data.normal_(generator=torch.Generator().manual_seed(5))
    model.looping = looping
    x = torch.randn(2, 12, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model.trunk(x), reference_trunk(model, x, looping), rtol=1e-10, atol=1e-10)


def test_recurrence_runs_the_span_again_with_the_same_weights():
    model = model_of(num_loops=2, loop_start=1, loop_end=2)
    calls = []
    for i, block in enumerate(model.blocks):
        block.register_forward_pre_hook(lambda *_, i=i: calls.append(i))
    ids = torch.randint(4, 260, (1, 16))
    model.hidden(ids)
    assert calls == [0, 1, 2, 1, 2, 1, 2, 3, 4]
    plain = sum(p.numel() for p in tbm.ByteGPT(tiny_config()).parameters())
    extra_skips = (min(9 // 2, 9 - 9 // 2) - 2) * 64  # the virtual stack's U-Net pairs: 4 instead of 2
    assert sum(p.numel() for p in model.parameters()) == plain + extra_skips  # the loop adds no layer weights
    model.zero_grad()
    sum(model(ids, ids)).backward()
    assert all(p.grad is not None for p in model.parameters())  # the loop-off phase too (DDP):
    model.looping = False
    model.zero_grad()
    sum(model(ids, ids)).backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


def test_with_the_loop_off_the_model_is_the_plain_model():
    looped = model_of(num_loops=1, loop_start=1, loop_end=2)
    plain = tbm.ByteGPT(tiny_config())
    state = looped.state_dict()
    state["skip_weights"] = state["skip_weights"][: plain.skip_weights.size(0)]
    plain.load_state_dict(state)
    looped.looping = False
    ids = torch.randint(4, 260, (2, 16))
    with torch.no_grad():
        assert torch.equal(looped.hidden(ids), plain.hidden(ids))


def test_switching_the_loop_on_keeps_the_run_until_the_switch(tmp_path):
    """Trainer.run holds the loop off until ENABLE_LOOPING_AT: the steps before it are the plain model's, bit for
    bit (the same weights, data and optimizer state), and the first step at it runs the loop."""
    data = make_byte_dataset(tmp_path)
    runs = {}
    for loops in ("0", "1"):
        args = tbm.Hyperparameters({**TINY_ENV, "DATA_PATH": str(data), "NUM_LAYERS": "3", "ITERATIONS": "4",
                                    "NUM_LOOPS": loops, "LOOP_START": "1", "LOOP_END": "1", "ENABLE_LOOPING_AT": "0.5"})
        spec, rt = tbm.resolve_data(args), tbm.Runtime(0, 1, torch.device("cpu"), bf16=False, compile=False)
        torch.manual_seed(0)
        model = tbm.build_model(tbm.model_config(args, spec.vocab_size))
        loader = tbm.DistributedTokenLoader(tbm.TokenStream(spec.train_files, spec.vocab_size), 0, 1, rt.device)
        trainer, seen = tbm.Trainer(args, rt, model, model, loader), []
        step = trainer.step
        trainer.step = lambda *a, step=step, seen=seen, model=model: (r := step(*a), seen.append((model.looping,
                                                                                                 r[0].item())))[0]
        trainer.run(tbm.Progress(), tbm.WeightAverages(model, args), lambda progress: None)
        runs[loops] = seen
    assert [looping for looping, _ in runs["1"]] == [False, False, True, True]
    assert [loss for _, loss in runs["1"][:2]] == [loss for _, loss in runs["0"][:2]]
    assert runs["1"][2][1] != runs["0"][2][1]


# ---- ATTN_GATE_SCALE ----------------------------------------------------------------------------------------


def test_attention_gate_scales_each_head_by_its_published_sigmoid():
    model = model_of(attn_gate_scale=0.5).double()
    attn = model.blocks[0].attn
    attn.gate.data.normal_(generator=torch.Generator().manual_seed(2))
    x = torch.randn(2, 10, 64, dtype=torch.float64)
    heads = attn.attend(x)  # (batch, time, heads, head_dim), the ungated heads
    gate = torch.sigmoid(0.5 * torch.einsum("btj,hj->bth", x[..., :12], attn.gate))
    expected = attn.proj((heads * gate[..., None]).reshape(2, 10, 64))
    with torch.no_grad():
        torch.testing.assert_close(attn(x), expected, rtol=1e-12, atol=1e-12)
        attn.gate.zero_()  # as initialized: every head at half
        ungated = tbm.CausalSelfAttention.forward(attn, x)
        torch.testing.assert_close(attn(x), 0.5 * ungated, rtol=1e-12, atol=1e-12)
    assert attn.gate.numel() == 4 * 12


@pytest.mark.parametrize("overrides", [{"attn_gate_scale": 1.0}, {"num_loops": 1, "loop_start": 1, "loop_end": 3},
                                       {"skip_gates": 1, "parallel_start_layer": 2}])
def test_frontier_next_models_stay_causal(overrides):
    from test_model import assert_causal

    assert_causal(tbm.build_model(tiny_config(**overrides)))


# ---- END TO END ---------------------------------------------------------------------------------------------

KNOB_RUNS = [{"DOC_BOUNDARY": "1"}, {"SKIP_GATES": "1"}, {"PARALLEL_START_LAYER": "1"},
             {"NUM_LOOPS": "1", "LOOP_START": "1", "LOOP_END": "1", "ENABLE_LOOPING_AT": "0.5"},
             {"ATTN_GATE_SCALE": "0.5"}, {"NS_COEFFICIENTS": "polar_express"}, {"MIN_LR": "0.1"}]


@pytest.mark.slow
@pytest.mark.parametrize("knobs", KNOB_RUNS, ids=lambda k: next(iter(k)))
def test_each_technique_trains_end_to_end_under_its_knob(knobs, tmp_path):
    data = make_byte_dataset(tmp_path / "bytes", train_bytes=20_000, val_bytes=1_500)
    proc = run_trainer({**TINY_ENV, "DATA_PATH": str(data), "RUN_ID": "knob", "ITERATIONS": "4", **knobs}, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = final_summary(tmp_path, "knob")
    assert math.isfinite(summary["post_quant"]["score_bpb"]) and proc.stdout.strip().splitlines()[-1].startswith("score:")
    counted = next(line for line in log_lines(tmp_path, "knob") if line.startswith("artifact:"))
    model_knob = knobs.keys() & {"SKIP_GATES", "PARALLEL_START_LAYER", "NUM_LOOPS", "ATTN_GATE_SCALE", "NS_COEFFICIENTS"}
    assert ("frontier_next.py" in counted) == bool(model_knob)


@pytest.mark.slow
def test_two_processes_train_the_recurrent_lane_model(tmp_path):
    """DDP (no find_unused_parameters) with the loop off first: every parameter must still get a gradient."""
    data = make_byte_dataset(tmp_path / "bytes", train_bytes=20_000, val_bytes=1_500)
    knobs = {**TINY_ENV, "DATA_PATH": str(data), "RUN_ID": "ddp", "ITERATIONS": "4", "NUM_LOOPS": "1",
             "LOOP_START": "1", "LOOP_END": "1", "ENABLE_LOOPING_AT": "0.5", "SKIP_GATES": "1",
             "PARALLEL_START_LAYER": "2"}
    proc = run_trainer(knobs, tmp_path, nproc=2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert any(line.startswith("replicas:identical") for line in log_lines(tmp_path, "ddp"))
