"""Optimizer section: Muon against an independent float64 reference, the optimizer split, the schedule."""

import pytest
import torch

import train_byte_model as tbm
from test_model import tiny_config


def reference_muon_update(grad: torch.Tensor, buf: torch.Tensor, momentum: float, steps: int) -> torch.Tensor:
    """Float64 Muon update written out from the algorithm: Nesterov momentum, then the quintic
    Newton-Schulz iteration toward the orthogonal polar factor, scaled by sqrt(max(1, rows/cols))."""
    buf = momentum * buf + grad
    g = grad + momentum * buf
    x = g / (torch.linalg.matrix_norm(g) + 1e-7)
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    for _ in range(steps):
        a = x @ x.T
        x = 3.4445 * x + (-4.7750 * a + 2.0315 * a @ a) @ x
    if tall:
        x = x.T
    return x * max(1.0, grad.shape[0] / grad.shape[1]) ** 0.5, buf


def test_muon_two_steps_match_float64_reference():
    """Matrices of one shape are orthogonalized as one batch; each must still get its own update."""
    torch.manual_seed(0)
    shapes = [(16, 8), (8, 24), (12, 12), (16, 8), (16, 8)]
    params = [torch.nn.Parameter(torch.randn(s)) for s in shapes]
    ref_params = [p.detach().double().clone() for p in params]
    ref_bufs = [torch.zeros_like(p) for p in ref_params]
    lr, momentum, wd, steps = 0.05, 0.9, 0.04, 5
    opt = tbm.Muon(params, lr=lr, momentum=momentum, coefficients=(tbm.NEWTON_SCHULZ_COEFFICIENTS,) * steps, weight_decay=wd)
    for _ in range(2):
        grads = [torch.randn(s) for s in shapes]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
        for i, g in enumerate(grads):
            update, ref_bufs[i] = reference_muon_update(g.double(), ref_bufs[i], momentum, steps)
            ref_params[i] = ref_params[i] * (1 - lr * wd) - lr * update
    for p, ref in zip(params, ref_params):
        assert torch.allclose(p.detach().double(), ref, atol=2e-5), (p.detach().double() - ref).abs().max()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_newton_schulz_approximately_orthogonalizes(dtype):
    """In fp32, and in bf16 as a BF16=1 run does on any device (the GPU's numerics, tested on the CPU)."""
    g = torch.randn(32, 16)
    x = tbm.newton_schulz(g, (tbm.NEWTON_SCHULZ_COEFFICIENTS,) * 5, dtype)
    singular = torch.linalg.svdvals(x.float())
    assert x.dtype == dtype and singular.min() > 0.5 and singular.max() < 1.3  # the quintic's band, not exactly 1


def test_muon_allocates_its_momentum_buffers_once(monkeypatch):
    params = [torch.nn.Parameter(torch.randn(8, 8)) for _ in range(3)]
    opt = tbm.Muon(params, lr=0.01, momentum=0.9, coefficients=(tbm.NEWTON_SCHULZ_COEFFICIENTS,) * 2, weight_decay=0)
    calls, real = [], torch.zeros_like
    monkeypatch.setattr(torch, "zeros_like", lambda *a, **k: calls.append(1) or real(*a, **k))
    for _ in range(3):
        for p in params:
            p.grad = torch.randn(8, 8)
        opt.step()
    assert len(calls) == 3  # one per parameter, at the first step only


def test_a_bf16_run_steps_muon_in_bf16():
    model = tbm.ByteGPT(tiny_config())
    muon = tbm.build_optimizers(model, tbm.Hyperparameters({}), bf16=True)[1]
    assert muon.dtype == torch.bfloat16 and tbm.build_optimizers(model, tbm.Hyperparameters({}))[1].dtype == torch.float32


def test_optimizer_split_covers_every_parameter_once():
    model = tbm.ByteGPT(tiny_config())
    args = tbm.Hyperparameters({})
    optimizers, muon = tbm.build_optimizers(model, args)
    groups = [[id(p) for g in opt.param_groups for p in g["params"]] for opt in optimizers]
    flat = [i for group in groups for i in group]
    assert sorted(flat) == sorted(id(p) for p in model.parameters())
    assert len(flat) == len(set(flat))
    embeddings, matrices, scalars, jepa = (set(g) for g in groups)
    assert optimizers[1] is muon
    assert id(model.blocks[0].attn.c_q.weight) in matrices and id(model.bigram.proj.weight) in matrices
    assert id(model.tok_emb.weight) in embeddings and id(model.bigram.embed.weight) in embeddings
    assert id(model.skip_weights) in scalars and id(model.blocks[0].resid_mix) in scalars
    assert jepa == {id(p) for p in model.jepa.parameters()}  # its own Adam, never Muon
    # PR #832: decoupled weight decay 0.04 on the embedding and scalar Adams, none on the JEPA's.
    decay = [opt.param_groups[0]["weight_decay"] for opt in optimizers]
    lrs = [opt.param_groups[0]["lr"] for opt in optimizers]
    assert decay == [0.04, 0.04, 0.04, 0.0] and lrs == [0.035, 0.025, 0.025, 0.001]
    assert len(tbm.build_optimizers(tbm.ByteGPT(tiny_config(jepa_chunk_size=0)), args)[0]) == 3


def test_adam_weight_decay_is_decoupled():
    """AdamW: p <- p * (1 - lr * wd) - lr * adam_step, so a zero gradient still shrinks the weights."""
    model = tbm.ByteGPT(tiny_config(jepa_chunk_size=0))
    args = tbm.Hyperparameters({"ADAM_WEIGHT_DECAY": "0.5", "TIED_EMBED_LR": "0.1"})
    embeddings = tbm.build_optimizers(model, args)[0][0]
    before = model.tok_emb.weight.detach().clone()
    model.tok_emb.weight.grad = torch.zeros_like(before)
    embeddings.step()
    torch.testing.assert_close(model.tok_emb.weight.detach(), before * (1 - 0.1 * 0.5))


def test_jepa_weight_schedule():
    args = tbm.Hyperparameters({})  # 30 % off, ramp over 50 % to 0.001, then off
    weights = [tbm.jepa_weight(args, f) for f in (0.0, 0.29, 0.3, 0.55, 0.79, 0.8, 1.0)]
    assert weights == pytest.approx([0, 0, 0, 0.0005, 0.00098, 0, 0])


def test_lr_warmdown_by_steps_and_by_wallclock():
    args = tbm.Hyperparameters({"ITERATIONS": "100", "WARMDOWN_ITERS": "20", "MAX_WALLCLOCK_SECONDS": "0"})
    assert tbm.lr_scale(args, 0, 0) == 1.0
    assert tbm.lr_scale(args, 90, 0) == 0.5
    assert tbm.lr_scale(args, 100, 0) == 0.0
    capped = tbm.Hyperparameters({"ITERATIONS": "1000", "WARMDOWN_ITERS": "20", "MAX_WALLCLOCK_SECONDS": "10"})
    # 100 ms per step so far, 1 s left = 10 steps of a 20-step warmdown.
    assert abs(tbm.lr_scale(capped, 90, 9000.0) - 0.5) < 1e-9
