"""Model section: shapes, the seed's parameter count, causality, feature switches, GPU-readiness on CPU."""

import dataclasses

import pytest
import torch

import train_byte_model as tbm


def tiny_config(**overrides) -> tbm.ModelConfig:
    cfg = tbm.ModelConfig(
        vocab_size=260, block_pattern="AAAAA", model_dim=32, num_heads=4, num_kv_heads=2, mlp_hidden=64,
        rope_base=10000.0, qk_gain_init=1.5, logit_softcap=30.0, tied_embed_init_std=0.005, smear_gate=True,
        bigram_buckets=64, bigram_dim=8, bigram_hash="mix", unet_skips=True)
    return dataclasses.replace(cfg, **overrides)


def randomized(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Zero-initialized projections make a fresh model blind to most inputs; random weights expose leaks."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return model


def test_default_parameter_count_matches_seed():
    # The seed's log printed 27,571,816 for raw256 (vocab 256) with MLP hidden 1024, 8/8 heads.
    args = tbm.Hyperparameters({})
    assert args.mlp_hidden == 1024 and args.block_pattern == "A" * 13
    raw256 = tbm.ByteGPT(tbm.ModelConfig.from_hparams(args, 256))
    assert sum(p.numel() for p in raw256.parameters()) == 27_571_816
    # byte260 adds exactly four embedding rows (pad, BOS, EOS, UNK).
    byte260 = tbm.ByteGPT(tbm.ModelConfig.from_hparams(args, 260))
    assert sum(p.numel() for p in byte260.parameters()) == 27_571_816 + 4 * 512


def test_seed_mlp_hidden_is_over_the_cap_projection():
    args = tbm.Hyperparameters({"MLP_HIDDEN": "1536", "MLP_MULT": "3"})
    params = sum(p.numel() for p in tbm.ByteGPT(tbm.ModelConfig.from_hparams(args, 256)).parameters())
    assert params > 34_000_000
    assert params * args.projected_bits_per_param / 8 > tbm.SIZE_CAP_BYTES


def test_shapes_and_loss():
    model = tbm.ByteGPT(tiny_config())
    ids = torch.randint(0, 260, (3, 17))
    assert model.hidden(ids).shape == (3, 17, 32)
    assert model.logits(model.hidden(ids)).shape == (3, 17, 260)
    loss = model(ids, ids)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert abs(loss.item() - torch.log(torch.tensor(260.0)).item()) < 0.5  # near-uniform at init


@pytest.mark.parametrize("overrides", [{}, {"smear_gate": False}, {"bigram_buckets": 0}, {"unet_skips": False},
                                       {"bigram_hash": "seed"}, {"num_kv_heads": 4}])
def test_causality(overrides):
    """Changing the byte at position t changes no logit before t (and does change some at or after t)."""
    model = randomized(tbm.ByteGPT(tiny_config(**overrides))).eval()
    ids = torch.randint(4, 260, (2, 24))
    for t in (0, 7, 23):
        changed = ids.clone()
        changed[:, t] = (changed[:, t] + 1 - 4) % 256 + 4
        with torch.no_grad():
            a, b = model.logits(model.hidden(ids)), model.logits(model.hidden(changed))
        assert torch.equal(a[:, :t], b[:, :t]), f"position {t} leaked backwards"
        assert not torch.allclose(a[:, t:], b[:, t:])


def test_feature_switches_change_parameters():
    full = sum(p.numel() for p in tbm.ByteGPT(tiny_config()).parameters())
    assert sum(p.numel() for p in tbm.ByteGPT(tiny_config(smear_gate=False)).parameters()) == full - 32
    assert sum(p.numel() for p in tbm.ByteGPT(tiny_config(bigram_buckets=0)).parameters()) == full - 64 * 8 - 8 * 32
    assert sum(p.numel() for p in tbm.ByteGPT(tiny_config(unet_skips=False)).parameters()) == full - 2 * 32


def test_unet_skips_connect_encoder_to_decoder():
    model = randomized(tbm.ByteGPT(tiny_config()))
    ids = torch.randint(0, 260, (1, 8))
    with torch.no_grad():
        before = model.hidden(ids)
        model.skip_weights.zero_()
        after = model.hidden(ids)
    assert not torch.allclose(before, after)


def test_bigram_hash_mix_uses_every_bit_of_previous_byte():
    bigram = tbm.BigramHash(tiny_config(bigram_buckets=4096))
    seed_hash = tbm.BigramHash(tiny_config(bigram_buckets=4096, bigram_hash="seed"))
    prevs = [torch.tensor([[p, 100]]) for p in (5, 5 + 16, 5 + 128)]  # differ only above bit 4
    seed_buckets = {int(seed_hash.bucket_ids(p)[0, 1]) for p in prevs}
    mix_buckets = {int(bigram.bucket_ids(p)[0, 1]) for p in prevs}
    assert len(seed_buckets) == 1  # the seed's (prev * 256 + cur) % 4096 sees only prev's low 4 bits
    assert len(mix_buckets) == 3
    pairs = torch.cartesian_prod(torch.arange(260), torch.arange(260))  # rows (prev, cur)
    buckets = bigram.bucket_ids(pairs.view(1, -1)).view(-1)[1::2]  # each cur sits right after its prev
    assert buckets.min() >= 0 and buckets.max() < 4096
    assert torch.bincount(buckets, minlength=4096).max() <= 4 * (260 * 260 / 4096)  # spread, not clumped


def test_unknown_block_letter_is_an_error():
    with pytest.raises(tbm.RunError, match="BLOCK_PATTERN"):
        tbm.ByteGPT(tiny_config(block_pattern="AAXA"))


def test_bf16_autocast_path_runs_two_steps_on_cpu():
    """The GPU code path (bf16 autocast, fp32 weights, Muon) on CPU: no dtype errors, finite losses."""
    model = tbm.ByteGPT(tiny_config())
    optimizers, _ = tbm.build_optimizers(model, tbm.Hyperparameters({}))
    ids = torch.randint(0, 260, (2, 16))
    for _ in range(2):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(ids, ids)
        loss.backward()
        for opt in optimizers:
            opt.step()
            opt.zero_grad(set_to_none=True)
        assert torch.isfinite(loss)
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_attention_falls_back_to_sdpa_without_fa3():
    assert tbm.fa3_attention is None  # not installed on CPU machines
    q, k, v = (torch.randn(2, 5, 4, 8) for _ in range(3))
    expected = torch.nn.functional.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
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
        assert torch.allclose(compiled(ids, ids), model(ids, ids), atol=1e-5)
        assert torch.allclose(compiled_hidden(ids), model.hidden(ids), atol=1e-5)
