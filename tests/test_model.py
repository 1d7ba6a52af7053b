"""Model section: the recipes' parameter counts, causality of every feature, and each feature's own
property (XSA, partial RoPE, LN scale, orthogonal init, GQA, chunk-JEPA) against an independent check."""

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import train_byte_model as tbm


def tiny_config(**overrides) -> tbm.ModelConfig:
    """The frontier recipe's model at toy size: GQA, XSA on the last 2 of 5 layers, RoPE on 8 of 16 head
    dims, LN scale, orthogonal init, chunk-JEPA on chunks of 4."""
    cfg = tbm.model_config(tbm.Hyperparameters({
        "NUM_LAYERS": "5", "MODEL_DIM": "64", "NUM_HEADS": "4", "NUM_KV_HEADS": "2", "MLP_HIDDEN": "128",
        "ROPE_DIMS": "8", "XSA_LAST_N": "2", "BIGRAM_HASH_BUCKETS": "64", "BIGRAM_HASH_DIM": "8",
        "JEPA_CHUNK_SIZE": "4", "JEPA_LATENT_DIM": "16"}), 260)
    return dataclasses.replace(cfg, **overrides)


def randomized(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Zero-initialized projections make a fresh model blind to most inputs; random weights expose leaks."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return model


def param_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def recipe_model(vocab: int, **env) -> tbm.ByteGPT:
    return tbm.build_model(tbm.model_config(tbm.Hyperparameters(env), vocab))


def test_recipe_parameter_counts_match_the_published_logs():
    # PR #832 logged 24,625,001 (459,008 of them JEPA); our bigram has no learned output scalar (-1).
    assert abs(param_count(recipe_model(260)) - 24_625_001) <= 64
    assert abs(param_count(recipe_model(260, JEPA_CHUNK_SIZE="0")) - 24_165_993) <= 16
    assert param_count(recipe_model(260).jepa) == 459_008
    assert param_count(recipe_model(260, RECIPE="pr832")) == param_count(recipe_model(260))
    # PR #705 logged 27,571,816 at vocab 256; byte260 adds four embedding rows (pad, BOS, EOS, UNK).
    assert param_count(recipe_model(256, RECIPE="pr705")) == 27_571_816
    assert param_count(recipe_model(260, RECIPE="pr705")) == 27_571_816 + 4 * 512


def test_recipes_set_what_they_publish_and_the_environment_overrides_them():
    frontier, seed = tbm.Hyperparameters({}), tbm.Hyperparameters({"RECIPE": "pr705"})
    assert (frontier.num_kv_heads, frontier.rope_dims, frontier.xsa_last_n, frontier.ln_scale) == (4, 16, 4, 1)
    assert (frontier.matrix_lr, frontier.ema_decay, frontier.swa_every, frontier.jepa_chunk_size) == (0.025, 0.997, 0, 8)
    assert (seed.num_kv_heads, seed.rope_dims, seed.xsa_last_n, seed.jepa_chunk_size) == (8, 64, 0, 0)
    assert (seed.matrix_lr, seed.swa_every, seed.source["MATRIX_LR"]) == (0.035, 50, "recipe")
    mine = tbm.Hyperparameters({"RECIPE": "pr705", "MATRIX_LR": "0.01"})
    assert mine.matrix_lr == 0.01 and mine.source["MATRIX_LR"] == "env" and mine.source["SEED"] == "default"
    with pytest.raises(tbm.RunError, match="RECIPE='gpt5'"):
        tbm.Hyperparameters({"RECIPE": "gpt5"})


def test_pr832_bigram_stays_zero_as_published():
    """PR #832 zero-initializes both the bigram table and its projection, so neither ever gets a gradient."""
    model = recipe_model(260, RECIPE="pr832", NUM_LAYERS="2", MODEL_DIM="64", NUM_HEADS="4", JEPA_CHUNK_SIZE="0")
    ids = torch.randint(4, 260, (2, 16))
    model(ids, ids)[0].backward()
    assert not model.bigram.embed.weight.any() and not model.bigram.embed.weight.grad.any()
    assert not model.bigram.proj.weight.grad.any()


def test_shapes_and_loss():
    model = tbm.ByteGPT(tiny_config())
    ids = torch.randint(0, 260, (3, 17))
    assert model.hidden(ids).shape == (3, 17, 64)
    assert model.logits(model.hidden(ids)).shape == (3, 17, 260)
    ce, aux = model(ids, ids)
    assert ce.ndim == 0 and aux.ndim == 0 and torch.isfinite(ce) and aux > 0
    assert abs(ce.item() - math.log(260)) < 0.5  # near-uniform at init


FEATURES = [{}, {"smear_gate": 0}, {"bigram_hash_buckets": 0}, {"unet_skips": 0}, {"bigram_hash": "seed"},
            {"bigram_in_norm": 0}, {"num_kv_heads": 4}, {"num_kv_heads": 1}, {"xsa_last_n": 5}, {"rope_dims": 16},
            {"ln_scale": 0}, {"jepa_chunk_size": 0}, {"jepa_chunk_size": 5}]


def assert_causal(model: torch.nn.Module, length: int = 24) -> None:
    """Changing the byte at position t changes no logit before t (position t - 1 predicts byte t), and
    some at or after t. Row t of a batch changes byte t and is compared with the same row of the
    original, since float rounding may differ between rows."""
    model = randomized(model).eval()
    ids = torch.randint(4, 260, (1, length)).repeat(length, 1)
    changed = ids.clone()
    changed[range(length), range(length)] = (ids[0] - 4 + 1) % 256 + 4
    with torch.no_grad():
        a, b = model.logits(model.hidden(ids)), model.logits(model.hidden(changed))
    for t in range(length):
        assert torch.equal(a[t, :t], b[t, :t]), f"byte {t} leaked backwards"
        assert not torch.allclose(a[t, t:], b[t, t:])


@pytest.mark.parametrize("overrides", FEATURES)
def test_causality(overrides):
    assert_causal(tbm.ByteGPT(tiny_config(**overrides)))


def test_xsa_output_is_orthogonal_to_the_own_value_vector():
    torch.manual_seed(0)
    y, v = torch.randn(2, 7, 8, 16, dtype=torch.float64), torch.randn(2, 7, 2, 16, dtype=torch.float64)
    out = tbm.exclude_own_value(y, v)
    for head in range(8):
        own = v[:, :, head // 4]  # heads 0-3 read KV head 0, heads 4-7 KV head 1
        assert (out[:, :, head] * own).sum(-1).abs().max() < 1e-6 * own.norm(dim=-1).max()
        # the rest of y is untouched: out + its removed projection = y
        removed = (y[:, :, head] * own).sum(-1, keepdim=True) / own.square().sum(-1, keepdim=True) * own
        torch.testing.assert_close(out[:, :, head] + removed, y[:, :, head], rtol=0, atol=1e-12)


def test_xsa_runs_in_exactly_the_last_n_layers():
    model = tbm.ByteGPT(tiny_config(xsa_last_n=2))
    assert [block.attn.xsa for block in model.blocks] == [False, False, False, True, True]
    assert all(block.attn.xsa for block in tbm.ByteGPT(tiny_config(xsa_last_n=9)).blocks)


def test_partial_rope_leaves_the_other_dims_unchanged():
    x = torch.randn(2, 11, 3, 16)
    out = tbm.rotary(x, 10000.0, 6)
    assert torch.equal(out[..., 6:], x[..., 6:])
    assert torch.equal(out[:, 0], x[:, 0])  # position 0 is not rotated
    # Rotation per frequency pair (i, i + 3): norms are kept and the angle is position * base^(-i/3).
    for i in range(3):
        angle = torch.atan2(out[..., i + 3], out[..., i]) - torch.atan2(x[..., i + 3], x[..., i])
        expected = -torch.arange(11.0)[None, :, None] * 10000.0 ** (-i / 3)
        assert torch.allclose(torch.remainder(angle - expected + math.pi, 2 * math.pi) - math.pi, torch.zeros(1), atol=1e-4)
    assert torch.allclose(out[..., :6].norm(dim=-1), x[..., :6].norm(dim=-1), atol=1e-5)
    torch.testing.assert_close(tbm.rotary(x, 10000.0, 16)[..., :0], x[..., :0])


def test_ln_scale_multiplies_layer_l_inputs_by_one_over_sqrt_l_plus_1():
    model = randomized(tbm.ByteGPT(tiny_config()))
    seen = {}
    for layer, block in enumerate(model.blocks):
        for name in ("attn", "mlp"):
            getattr(block, name).register_forward_hook(
                lambda m, inputs, out, key=(layer, name): seen.__setitem__(key, inputs[0].square().mean(-1).sqrt()))
    with torch.no_grad():
        model.hidden(torch.randint(4, 260, (2, 9)))
    for (layer, name), rms in seen.items():
        torch.testing.assert_close(rms, torch.full_like(rms, (layer + 1) ** -0.5), rtol=1e-4, atol=0)
    assert [b.input_scale for b in tbm.ByteGPT(tiny_config(ln_scale=0)).blocks] == [1.0] * 5


def test_orthogonal_init_of_every_large_nonzero_matrix():
    model = tbm.ByteGPT(tiny_config(ortho_init=1, jepa_latent_dim=64))
    checked = 0
    for name, m in model.named_modules():
        if not isinstance(m, tbm.CastedLinear):
            continue
        w = m.weight.double()
        if m.zero_init:
            assert not w.any(), name
        elif min(w.shape) >= 64:
            small = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
            torch.testing.assert_close(small, torch.eye(min(w.shape), dtype=torch.float64), rtol=0, atol=1e-5)
            checked += 1
    assert checked == 5 * 2 + 4  # c_q and mlp.fc per block (c_k, c_v are 32 x 64), four JEPA matrices


def reference_gqa_attention(q, k, v):
    """Each query head h reads KV head h // (heads / kv_heads); causal softmax attention in float64."""
    group = q.size(2) // k.size(2)
    k, v = k.repeat_interleave(group, dim=2), v.repeat_interleave(group, dim=2)
    scores = torch.einsum("bthd,bshd->bhts", q, k) / q.size(-1) ** 0.5
    mask = torch.ones(q.size(1), q.size(1), dtype=torch.bool).tril()
    return torch.einsum("bhts,bshd->bthd", scores.masked_fill(~mask, -math.inf).softmax(-1), v)


def test_gqa_through_sdpa_matches_the_reference():
    q, k, v = torch.randn(2, 9, 8, 16).double(), torch.randn(2, 9, 2, 16).double(), torch.randn(2, 9, 2, 16).double()
    torch.testing.assert_close(tbm.causal_attention(q, k, v), reference_gqa_attention(q, k, v))


def test_gqa_reaches_fa3_with_its_own_kv_heads(monkeypatch):
    """Once FA3 is enabled, k and v go to the kernel with NUM_KV_HEADS heads (FA3 does the grouping
    itself); here a stand-in kernel records what it gets."""
    calls = []

    def fake_fa3(q, k, v, causal):
        calls.append((q.shape, k.shape, causal))
        return reference_gqa_attention(q, k, v), None

    monkeypatch.setattr(tbm, "fa3_attention", fake_fa3)
    monkeypatch.setattr(tbm, "fa3_enabled", True)
    q, k, v = torch.randn(1, 5, 4, 8), torch.randn(1, 5, 2, 8), torch.randn(1, 5, 2, 8)
    out = tbm.causal_attention(q, k, v)
    assert calls == [((1, 5, 4, 8), (1, 5, 2, 8), True)]
    torch.testing.assert_close(out, reference_gqa_attention(q, k, v))


def cuda_runtime(bf16: bool) -> tbm.Runtime:
    """A Runtime that names a CUDA device (nothing here touches it: the probe is a stand-in)."""
    return tbm.Runtime(0, 1, torch.device("cuda", 0), bf16=bf16, compile=True)


def test_fa3_needs_installation_cuda_bf16_and_a_passing_probe(monkeypatch):
    monkeypatch.setattr(tbm, "fa3_enabled", False)
    monkeypatch.setattr(tbm, "fa3_probe", lambda device, compile: "")
    monkeypatch.setattr(tbm, "fa3_attention", None)
    assert tbm.choose_attention(cuda_runtime(True)) == "attention_kernel:sdpa (FA3 not installed)"
    monkeypatch.setattr(tbm, "fa3_attention", lambda q, k, v, causal: q)
    assert tbm.choose_attention(cuda_runtime(False)) == "attention_kernel:sdpa (FA3 needs CUDA and bf16)"
    assert not tbm.fa3_enabled
    cpu = tbm.Runtime(0, 1, torch.device("cpu"), bf16=True, compile=False)
    assert tbm.choose_attention(cpu) == "attention_kernel:sdpa (FA3 needs CUDA and bf16)"
    assert tbm.choose_attention(cuda_runtime(True)) == "attention_kernel:fa3" and tbm.fa3_enabled
    monkeypatch.setattr(tbm, "fa3_probe", lambda device, compile: "RuntimeError: boom")
    line = tbm.choose_attention(cuda_runtime(True))
    assert line == "attention_kernel:sdpa (FA3 failed its start-up probe: RuntimeError: boom)" and not tbm.fa3_enabled


def test_fa3_probe_reports_a_kernel_that_fails_and_passes_one_that_works(monkeypatch):
    """The probe runs the real causal_attention with FA3 enabled: a kernel that raises (a build for
    another torch, no bf16 support, ...) is reported, so the run falls back to SDPA."""
    def broken(q, k, v, causal):
        raise RuntimeError("FlashAttention only supports Hopper\nsecond line")

    monkeypatch.setattr(tbm, "fa3_enabled", True)
    monkeypatch.setattr(tbm, "fa3_attention", broken)
    assert tbm.fa3_probe(torch.device("cpu"), compile=False) == "RuntimeError: FlashAttention only supports Hopper"
    monkeypatch.setattr(tbm, "fa3_attention", lambda q, k, v, causal: reference_gqa_attention(q, k, v))
    assert tbm.fa3_probe(torch.device("cpu"), compile=False) == ""


@pytest.mark.slow
def test_fa3_probe_catches_a_kernel_that_breaks_fullgraph_compile(monkeypatch):
    """An FA3 build that torch.compile cannot trace (here: a stand-in with a graph break) fails the
    compiled probe, as it would fail the first compiled training step."""
    def untraceable(q, k, v, causal):
        torch._dynamo.graph_break()
        return reference_gqa_attention(q, k, v)

    torch._dynamo.reset()
    monkeypatch.setattr(tbm, "fa3_enabled", True)
    monkeypatch.setattr(tbm, "fa3_attention", untraceable)
    assert tbm.fa3_probe(torch.device("cpu"), compile=False) == ""
    assert tbm.fa3_probe(torch.device("cpu"), compile=True).startswith("Unsupported: ")


def test_chunk_jepa_gradients_go_where_pr832_sends_them():
    """The byte loss trains the injection but not the projector/predictor; the JEPA loss trains the
    projector/predictor but reaches neither the injection nor the trunk (its inputs are detached)."""
    model = randomized(tbm.ByteGPT(tiny_config()))
    ids = torch.randint(4, 260, (2, 16))
    ce, aux = model(ids, ids)
    ce.backward(retain_graph=True)
    jepa = model.jepa
    assert jepa.inject.weight.grad.any()
    assert all(p.grad is None or not p.grad.any() for p in [*jepa.project.parameters(), *jepa.predict.parameters()])
    model.zero_grad(set_to_none=True)
    aux.backward()
    assert jepa.project[0].weight.grad.any() and jepa.predict[0].weight.grad.any() and jepa.start.grad.any()
    assert jepa.inject.weight.grad is None and model.blocks[0].mlp.fc.weight.grad is None


def test_chunk_jepa_loss_is_mse_plus_weighted_sigreg():
    model = randomized(tbm.ByteGPT(tiny_config(jepa_sigreg_weight=0.5)))
    x = torch.randn(2, 14, 64)
    out, loss = model.jepa(x)
    jepa = model.jepa
    with torch.no_grad():
        latents = jepa.project(x[:, :12].view(2, 3, 4, 64).mean(2))  # 3 whole chunks, then 2 positions
        predicted = jepa.predict(torch.cat((jepa.start.expand(2, 1, -1), latents), dim=1))  # chunks 0..3
        expected = F.mse_loss(predicted[:, :3], latents) + 0.5 * tbm.sigreg(latents.flatten(0, 1), jepa.directions, jepa.knots)
        injected = jepa.inject(predicted).repeat_interleave(4, dim=1)[:, :14]  # the partial chunk 3 too
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(out, x + injected)


def test_sigreg_matches_the_epps_pulley_statistic_written_out():
    torch.manual_seed(0)
    directions = F.normalize(torch.randn(16, tbm.SIGREG_PROJECTIONS), dim=0).double()
    z = torch.randn(300, 16, dtype=torch.float64) * 3 + 1
    standardized = ((z - z.mean(0)) / z.std(0, correction=0)).numpy()
    total = 0.0
    for m in range(directions.shape[1]):
        p = standardized @ directions[:, m].numpy()
        for t in np.linspace(0.2, 3.0, 17):
            total += abs(np.exp(1j * t * p).mean() - np.exp(-t * t / 2)) ** 2
    knots = tbm.ChunkJepa(tiny_config()).knots  # the model's own knots (float32)
    assert tbm.sigreg(z, directions, knots).item() == pytest.approx(total / (directions.shape[1] * 17), rel=1e-6)
    # Gaussian latents score near 0; collapsed ones (two values per dimension) far above.
    gaussian = tbm.sigreg(torch.randn(4096, 16, dtype=torch.float64), directions, knots)
    collapsed = torch.randn(4096, 1, dtype=torch.float64).sign().expand(4096, 16)  # one bit shared by every dim
    assert gaussian < 1e-3 and tbm.sigreg(collapsed, directions, knots) > 20 * gaussian


def test_feature_switches_change_parameters():
    full = sum(p.numel() for p in tbm.ByteGPT(tiny_config()).parameters())
    assert sum(p.numel() for p in tbm.ByteGPT(tiny_config(smear_gate=0)).parameters()) == full - 64
    assert sum(p.numel() for p in tbm.ByteGPT(tiny_config(bigram_hash_buckets=0)).parameters()) == full - 64 * 8 - 8 * 64
    assert sum(p.numel() for p in tbm.ByteGPT(tiny_config(unet_skips=0)).parameters()) == full - 2 * 64
    jepa = 64 * 16 + 16 * 16 + 2 * 16 * 16 + 16 + 16 * 64  # projector, predictor, start, injection
    assert sum(p.numel() for p in tbm.ByteGPT(tiny_config(jepa_chunk_size=0)).parameters()) == full - jepa


def test_unet_skips_connect_encoder_to_decoder():
    model = randomized(tbm.ByteGPT(tiny_config()))
    ids = torch.randint(0, 260, (1, 8))
    with torch.no_grad():
        before = model.hidden(ids)
        model.skip_weights.zero_()
        after = model.hidden(ids)
    assert not torch.allclose(before, after)


@pytest.mark.parametrize("overrides", [{}, {"unet_skips": 0}, {"block_pattern": "A"}])
def test_every_parameter_gets_a_gradient(overrides):
    """DDP (without find_unused_parameters) fails at step 2 on a parameter that gets no gradient, as an
    empty skip-weight tensor did with UNET_SKIPS=0 or one layer."""
    model = tbm.ByteGPT(tiny_config(**overrides))
    ids = torch.randint(4, 260, (2, 16))
    sum(model(ids, ids)).backward()
    assert [name for name, p in model.named_parameters() if p.grad is None] == []


def test_fused_qkv_matmul_matches_three_projections():
    """q, k and v come from one matmul over the concatenated weights; values and each weight's gradient
    must be those of the three separate projections (nn.Linear's own forward)."""
    attn = randomized(tbm.CausalSelfAttention(tiny_config(), 0)).double()
    x = torch.randn(2, 7, 64, dtype=torch.float64)
    cotangents = [torch.randn(2, 7, heads, 16, dtype=torch.float64) for heads in (4, 2, 2)]
    fused = attn.qkv(x)
    grads = torch.autograd.grad(fused, [attn.c_q.weight, attn.c_k.weight, attn.c_v.weight], cotangents)
    separate = [nn_linear(x).view(2, 7, -1, 16) for nn_linear in (attn.c_q, attn.c_k, attn.c_v)]
    expected = torch.autograd.grad(separate, [attn.c_q.weight, attn.c_k.weight, attn.c_v.weight], cotangents)
    for got, want in zip([*fused, *grads], [*separate, *expected]):
        torch.testing.assert_close(got, want)


def test_residual_stream_runs_in_bf16_under_autocast_and_stays_close_to_fp32():
    """Under autocast the stream between blocks is bf16 (the fp32 gains would otherwise promote it to
    fp32); without autocast it is fp32. The loss stays within bf16 rounding of the fp32 loss."""
    model = randomized(tbm.ByteGPT(tiny_config()), seed=1)
    seen = []
    for block in model.blocks:
        block.register_forward_hook(lambda module, inputs, out: seen.append(out.dtype))
    ids = torch.randint(4, 260, (2, 32))
    with torch.no_grad():
        fp32_loss = model(ids, ids)[0]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16_loss = model(ids, ids)[0]
            assert model.hidden(ids).dtype == torch.float32  # the final norm hands the head fp32 all the same
    assert seen == [torch.float32] * 5 + [torch.bfloat16] * 10
    assert bf16_loss.item() == pytest.approx(fp32_loss.item(), rel=0.02)


def test_bigram_hash_mix_uses_every_bit_of_previous_byte():
    bigram = tbm.BigramHash(tiny_config(bigram_hash_buckets=4096))
    seed_hash = tbm.BigramHash(tiny_config(bigram_hash_buckets=4096, bigram_hash="seed"))
    prevs = [torch.tensor([[p, 100]]) for p in (5, 5 + 16, 5 + 128)]  # differ only above bit 4
    uncut = torch.zeros(1, 2, dtype=torch.bool)
    seed_buckets = {int(seed_hash.bucket_ids(p, uncut)[0, 1]) for p in prevs}
    mix_buckets = {int(bigram.bucket_ids(p, uncut)[0, 1]) for p in prevs}
    assert len(seed_buckets) == 1  # PR #705's (prev * 256 + cur) % 4096 sees only prev's low 4 bits
    assert len(mix_buckets) == 3
    pairs = torch.cartesian_prod(torch.arange(260), torch.arange(260))  # rows (prev, cur)
    buckets = bigram.bucket_ids(pairs.view(1, -1), torch.zeros(1, pairs.numel(), dtype=torch.bool)).view(-1)[1::2]
    assert buckets.min() >= 0 and buckets.max() < 4096
    assert torch.bincount(buckets, minlength=4096).max() <= 4 * (260 * 260 / 4096)  # spread, not clumped


def test_bigram_placement_follows_the_recipe():
    """BIGRAM_IN_NORM=1 (PR #832): SmearGate(RMSNorm(byte + bigram)); 0 (PR #705): SmearGate(RMSNorm(byte)) + bigram."""
    ids = torch.randint(4, 260, (2, 9))
    for in_norm in (0, 1):
        model = randomized(tbm.ByteGPT(tiny_config(bigram_in_norm=in_norm)))
        uncut = torch.zeros_like(ids, dtype=torch.bool)
        with torch.no_grad():
            byte, bigram = model.tok_emb(ids), model.bigram(ids, uncut)
            expected = (model.smear(F.rms_norm(byte + bigram, (64,)), uncut) if in_norm
                        else model.smear(F.rms_norm(byte, (64,)), uncut) + bigram)
            torch.testing.assert_close(model.embed(ids), expected)


@pytest.mark.parametrize("env, message", [
    ({"MODEL_DIM": "100", "NUM_HEADS": "4"}, "MODEL_DIM=100 / NUM_HEADS=4 = 25: the head size must be an even integer"),
    ({"NUM_HEADS": "8", "NUM_KV_HEADS": "3"}, "NUM_HEADS=8 is not a multiple of NUM_KV_HEADS=3"),
    ({"ROPE_DIMS": "80"}, "ROPE_DIMS=80"), ({"ROPE_DIMS": "7"}, "ROPE_DIMS=7"),
    ({"BLOCK_PATTERN": "AAXA"}, "BLOCK_PATTERN='AAXA'"), ({"JEPA_CHUNK_SIZE": "4096"}, "JEPA_CHUNK_SIZE=4096"),
    ({"TRAIN_BATCH_TOKENS": "1000"}, "TRAIN_BATCH_TOKENS=1000"), ({"MATRIX_LR": "fast"}, "MATRIX_LR='fast'"),
    ({"NUM_LAYERS": "2.5"}, "NUM_LAYERS='2.5' is not a valid int"), ({"BIGRAM_HASH": "xor"}, "BIGRAM_HASH='xor'")])
def test_bad_knobs_are_one_line_start_up_errors(env, message):
    with pytest.raises(tbm.RunError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        tbm.Hyperparameters(env)
    assert "\n" not in str(info.value)


def test_bf16_autocast_path_runs_two_steps_on_cpu():
    """The GPU code path (bf16 autocast, fp32 weights, Muon) on CPU: no dtype errors, finite losses."""
    model = tbm.ByteGPT(tiny_config())
    optimizers, _ = tbm.build_optimizers(model, tbm.Hyperparameters({}))
    ids = torch.randint(0, 260, (2, 16))
    for _ in range(2):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            ce, aux = model(ids, ids)
        (ce + 0.001 * aux).backward()
        for opt in optimizers:
            opt.step()
            opt.zero_grad(set_to_none=True)
        assert torch.isfinite(ce) and torch.isfinite(aux)
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_attention_uses_sdpa_without_fa3_or_off_cuda():
    q, k, v = (torch.randn(2, 5, 4, 8) for _ in range(3))
    expected = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
    assert torch.allclose(tbm.causal_attention(q, k, v), expected.transpose(1, 2), atol=1e-6)


@pytest.mark.slow
def test_compile_fullgraph_matches_eager():
    """GPU-readiness: the model compiles as one graph (fullgraph=True raises on any graph break)."""
    torch._dynamo.reset()
    model = randomized(tbm.ByteGPT(tiny_config()))
    ids = torch.randint(0, 260, (2, 16))
    compiled = torch.compile(model, dynamic=False, fullgraph=True)
    compiled_hidden = torch.compile(model.hidden, dynamic=False, fullgraph=True)
    with torch.no_grad():
        for got, want in zip(compiled(ids, ids), model(ids, ids)):
            assert torch.allclose(got, want, atol=1e-5)
        assert torch.allclose(compiled_hidden(ids), model.hidden(ids), atol=1e-5)


def test_the_compiled_step_reads_no_module_level_tensor():
    """A tensor held in a global is lifted as a graph input that stays on the CPU: on a GPU every compiled step
    would copy it over from pageable memory (a stream sync). Parameters, buffers and the ids only."""
    model, inputs = tbm.ByteGPT(tiny_config()), []

    def record_inputs(graph, example_inputs):
        inputs.extend(node.target for node in graph.graph.nodes if node.op == "placeholder")
        return graph.forward

    ids = torch.randint(0, 260, (2, 16))
    torch.compile(model, backend=record_inputs, fullgraph=True, dynamic=False)(ids, ids.roll(1))
    assert inputs and not [name for name in inputs if name.startswith("G_")], inputs
