"""Research options (research_options.py): S/G mixers against naive recurrences, causality of every
option, compile, artifact round trip, and short runs of the real trainer that count both files' bytes."""

import re

import pytest
import torch
import torch.nn.functional as F

import research_options as ro
import run_modes
import train_byte_model as tbm
from helpers import REPO, TINY_ENV, TRAINER, encode_artifact, final_summary, log_lines, make_byte_dataset, run_trainer
from test_model import assert_causal, randomized, tiny_config

TOLERANCE = dict(rtol=1e-9, atol=1e-9)  # float64 chunked scan vs float64 sequential loop


def naive_ssm(mixer: ro.SelectiveSSM, x: torch.Tensor) -> torch.Tensor:
    """Mamba2 recurrence one step at a time: h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t^T, y_t = h_t C_t + D x_t."""
    bsz, seqlen, dim = x.shape
    heads, head_dim, state = mixer.heads, mixer.head_dim, mixer.state_dim
    z, xbc, dt = (x @ mixer.in_proj.weight.T).split([dim, dim + 2 * state, heads], dim=-1)
    conv = torch.zeros_like(xbc)
    for t in range(seqlen):
        for i in range(min(4, t + 1)):
            conv[:, t] += mixer.conv[i] * xbc[:, t - i]
    xs, b, c = F.silu(conv).split([dim, state, state], dim=-1)
    xs = xs.view(bsz, seqlen, heads, head_dim)
    dt = F.softplus(dt + mixer.dt_bias)
    h = torch.zeros(bsz, heads, head_dim, state, dtype=x.dtype)
    ys = []
    for t in range(seqlen):
        decay = torch.exp(-torch.exp(mixer.A_log) * dt[:, t])[:, :, None, None]
        h = decay * h + (dt[:, t, :, None] * xs[:, t])[..., None] * b[:, t, None, None, :]
        ys.append((h * c[:, t, None, None, :]).sum(-1) + mixer.D[:, None] * xs[:, t])
    y = torch.stack(ys, dim=1).reshape(bsz, seqlen, dim) * F.silu(z)
    return F.rms_norm(y, (dim,)) @ mixer.proj.weight.T


def naive_gla(mixer: ro.GatedLinearAttention, x: torch.Tensor) -> torch.Tensor:
    """GLA recurrence one step at a time: S_t = diag(alpha_t) S_{t-1} + k_t v_t^T, o_t = q_t S_t."""
    bsz, seqlen, dim = x.shape
    heads, head_dim = mixer.heads, mixer.head_dim
    per_head = lambda t: t.view(bsz, seqlen, heads, -1)  # noqa: E731
    q = per_head(x @ mixer.c_q.weight.T) / (head_dim // 2) ** 0.5
    k, v = per_head(x @ mixer.c_k.weight.T), per_head(x @ mixer.c_v.weight.T)
    alpha = per_head(torch.exp(torch.clamp(F.logsigmoid(x @ mixer.c_gate.weight.T + mixer.gate_bias) / 16, min=-1)))
    s = torch.zeros(bsz, heads, head_dim // 2, head_dim, dtype=x.dtype)
    outs = []
    for t in range(seqlen):
        s = alpha[:, t, :, :, None] * s + k[:, t, :, :, None] * v[:, t, :, None, :]
        outs.append(torch.einsum("bhk,bhkv->bhv", q[:, t], s))
    o = F.rms_norm(torch.stack(outs, dim=1), (head_dim,)).reshape(bsz, seqlen, dim)
    return (o * F.silu(x @ mixer.c_out_gate.weight.T)) @ mixer.proj.weight.T


NAIVE = {"S": naive_ssm, "G": naive_gla}


@pytest.mark.parametrize("letter", ["S", "G"])
@pytest.mark.parametrize("seqlen, chunk", [(24, 8), (21, 8), (21, 64), (7, 1)])
def test_mixer_matches_naive_recurrence(letter, seqlen, chunk):
    """Lengths that divide the chunk and lengths that leave a padded last chunk, in float64."""
    mixer = randomized(ro.MIXERS[letter](tiny_config(scan_chunk=chunk), 0)).double()
    x = torch.randn(2, seqlen, 64, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(mixer(x), NAIVE[letter](mixer, x), **TOLERANCE)


def test_gla_float32_stays_accurate_at_the_decay_floor():
    """Gates driven to the floor (alpha = 1/e every step) over a full 64-step chunk: the in-chunk factors
    reach e^64, still in float32 range; the result matches the float64 loop to 1e-4 relative."""
    mixer = randomized(ro.GatedLinearAttention(tiny_config(scan_chunk=64)))
    with torch.no_grad():
        mixer.gate_bias.fill_(-40.0)
        x = torch.randn(2, 70, 64)
        expected = naive_gla(mixer.double(), x.double())
        got = mixer.float()(x)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got.double(), expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())


RESEARCH_CONFIGS = {
    "S": dict(block_pattern="ASAS"), "G": dict(block_pattern="AGAG"),
    "patch2_independent": dict(patch_size=2), "patch4_independent": dict(patch_size=4),
    "patch2_causal_conv": dict(patch_size=2, patch_decoder="causal_conv"),
    "patch4_causal_conv": dict(patch_size=4, patch_decoder="causal_conv"),
    "all": dict(block_pattern="SGASG", patch_size=4, patch_decoder="causal_conv"),  # with the chunk-JEPA
}


@pytest.mark.parametrize("name", RESEARCH_CONFIGS)
def test_causality(name):
    assert_causal(tbm.build_model(tiny_config(scan_chunk=8, **RESEARCH_CONFIGS[name])))


def test_patched_prediction_uses_exactly_the_allowed_bytes():
    """independent: position t sees only whole patches before byte t + 1's patch; causal_conv also sees
    that patch's bytes up to t. Probed by changing one byte and listing the positions that change."""
    for decoder in ro.PATCH_DECODERS:  # without the chunk-JEPA, whose chunk summaries reach further
        model = randomized(tbm.build_model(tiny_config(patch_size=4, patch_decoder=decoder, smear_gate=0,
                                                       bigram_hash_buckets=0, jepa_chunk_size=0))).eval()
        ids = torch.randint(4, 260, (1, 16))
        changed = ids.clone()
        changed[0, 5] += 1  # byte 5: patch 1 (bytes 4..7)
        with torch.no_grad():
            moved = (model.hidden(ids) - model.hidden(changed)).abs().amax(-1)[0] > 0
        # Bytes 6, 7 are predicted by positions 5, 6 (same patch, after byte 5); patch 2 onward from position 7.
        expected = [t >= 7 or (decoder == "causal_conv" and t in (5, 6)) for t in range(16)]
        assert moved.tolist() == expected, decoder


def test_patched_model_rejects_a_length_not_divisible_by_the_patch():
    model = tbm.build_model(tiny_config(patch_size=4))
    with pytest.raises(tbm.RunError, match="PATCH_SIZE=4"):
        model.hidden(torch.zeros(1, 10, dtype=torch.long))


def test_default_model_needs_no_research_module_and_knob_errors_name_the_knob():
    assert type(tbm.build_model(tbm.model_config(tbm.Hyperparameters({}), 260))) is tbm.ByteGPT
    assert not tbm.needs_research_module(tbm.Hyperparameters({}))
    for env, message in [({"PATCH_SIZE": "3"}, "PATCH_SIZE=3"), ({"PATCH_SIZE": "0"}, "PATCH_SIZE=0"),
                         ({"PATCH_SIZE": "2", "PATCH_DECODER": "conv"}, "PATCH_DECODER='conv'"),
                         ({"BLOCK_PATTERN": "AS", "NUM_LAYERS": "2", "SCAN_CHUNK": "65"}, "SCAN_CHUNK=65")]:
        with pytest.raises(tbm.RunError, match=message):
            tbm.Hyperparameters(env)


def test_size_report_lists_research_components():
    model = tbm.build_model(tiny_config(**RESEARCH_CONFIGS["all"]))
    report = tbm.size_report(model, 0, tbm.Hyperparameters({}))
    groups = {m.group(1): int(m.group(2)) for line in report if (m := re.fullmatch(r"  params\.([\w.]+):(\d+) .*", line))}
    assert report[0] == f"model_params:{sum(groups.values())}"
    assert groups["blocks.SelectiveSSM"] == sum(p.numel() for b in (0, 3) for p in model.blocks[b].attn.parameters())
    assert groups["blocks.GatedLinearAttention"] == sum(p.numel() for b in (1, 4) for p in model.blocks[b].attn.parameters())
    assert groups["patch"] == sum(p.numel() for p in model.patch.parameters())


def test_big_research_matrices_are_stored_int6():
    assert tbm.storage_for("patch.encoder.weight", torch.zeros(512, 2048)) == "int6"
    assert tbm.storage_for("tok_emb.weight", torch.zeros(256, 512)) == "int8"


def test_artifact_round_trip_rebuilds_the_research_model(tmp_path):
    cfg = tiny_config(**RESEARCH_CONFIGS["all"])
    model = randomized(tbm.build_model(cfg))
    path = tmp_path / "model.int6.ptz"
    path.write_bytes(encode_artifact(model.state_dict(), cfg, "byte260", "sha"))
    header, loaded = run_modes.load_artifact_model(path)
    assert type(loaded) is ro.PatchedByteGPT and loaded.cfg == cfg
    model.load_state_dict(tbm.decode_artifact(path)[1])
    ids = torch.randint(4, 260, (2, 16))
    with torch.no_grad():
        assert torch.equal(loaded.hidden(ids), model.hidden(ids))


@pytest.mark.slow
def test_compile_fullgraph_matches_eager():
    """Every option at once (S, G, patching with the causal conv, with the chunk-JEPA) is one graph, forward
    and backward. aot_eager traces exactly what inductor gets (dynamo capture, autograd) without its
    minutes of CPU code generation; scripts/gpu_layers.py compiles S and G with inductor."""
    torch._dynamo.reset()
    model = randomized(tbm.build_model(tiny_config(scan_chunk=8, **RESEARCH_CONFIGS["all"])))
    ids = torch.randint(4, 260, (2, 24))
    compiled = torch.compile(model, dynamic=False, fullgraph=True, backend="aot_eager")
    loss, aux = compiled(ids, ids)
    expected, expected_aux = model(ids, ids)
    assert torch.allclose(loss, expected, atol=1e-5) and torch.allclose(aux, expected_aux, atol=1e-5)
    (loss + aux).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    with torch.no_grad():
        hidden = torch.compile(model.hidden, dynamic=False, fullgraph=True, backend="aot_eager")(ids)
        assert torch.allclose(hidden, model.hidden(ids), atol=1e-5)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_byte_dataset(tmp_path_factory.mktemp("bytes"))


TRAINER_OPTIONS = {
    "S": {"BLOCK_PATTERN": "SAS", "SCAN_CHUNK": "16"}, "G": {"BLOCK_PATTERN": "GAG", "SCAN_CHUNK": "16"},
    "patch2_independent": {"PATCH_SIZE": "2"}, "patch4_causal_conv": {"PATCH_SIZE": "4", "PATCH_DECODER": "causal_conv"},
}
REPORT_LINE = {"S": "params.blocks.SelectiveSSM", "G": "params.blocks.GatedLinearAttention",
               "patch2_independent": "params.patch", "patch4_causal_conv": "params.patch"}


@pytest.mark.slow
@pytest.mark.parametrize("option", TRAINER_OPTIONS)
def test_trainer_runs_scores_exports_and_reloads(option, dataset, tmp_path):
    env = {**TINY_ENV, "DATA_PATH": str(dataset), "RUN_ID": option, **TRAINER_OPTIONS[option]}
    proc = run_trainer(env, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = log_lines(tmp_path, option)
    assert any(re.match(rf"  {REPORT_LINE[option]}:\d+ storage:\S+ projected_bytes:\d+", line) for line in lines)
    summary = final_summary(tmp_path, option)
    module_bytes = (REPO / "research_options.py").stat().st_size
    assert summary["code_bytes"] == TRAINER.stat().st_size + module_bytes
    assert any(f"research_options.py {module_bytes}" in line for line in lines)
    post = summary["post_quant"]
    assert post["sliding_scored_targets"] == post["val_targets"] and 0 < post["sliding_val_bpb"] < 8
    header, model = run_modes.load_artifact_model(tmp_path / f"{option}.int6.ptz")
    assert model.cfg == tbm.model_config(tbm.Hyperparameters(env), 260)
    if option == "patch4_causal_conv":  # EVAL_ONLY rebuilds the research model and scores it identically
        rescore = run_trainer({**env, "RUN_ID": "rescore", "EVAL_ONLY": str(tmp_path / f"{option}.int6.ptz")}, tmp_path)
        assert rescore.returncode == 0, rescore.stderr[-3000:]
        assert final_summary(tmp_path, "rescore")["post_quant"]["val_bpb"] == post["val_bpb"]
