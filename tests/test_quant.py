"""Artifact section, quantization and codecs: GPTQ against a float64 textbook reference, std clipping,
calibration on training data only, every codec's round trip, EXPORT_ONLY against the training run."""

import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import train_byte_model as tbm
from helpers import TINY_ENV, encode_artifact, final_summary, log_lines, make_byte_dataset, run_trainer
from test_artifact import CreatesFileWhenUnpickled
from test_model import randomized, tiny_config


def textbook_gptq(w: np.ndarray, h: np.ndarray, scale: np.ndarray, levels: int, damp: float) -> np.ndarray:
    """Optimal Brain Quantization order of work, no blocks and no Cholesky: round one column, move the
    other unrounded columns by -error / Hinv[j, j] * Hinv[j, :], then remove j from the inverse Hessian
    (Hinv -= Hinv[:, j] Hinv[j, :] / Hinv[j, j]). Columns by decreasing Hessian diagonal; an input that
    calibration never saw gets a unit diagonal; damping adds damp * mean diagonal."""
    w, h = w.astype(np.float64).copy(), h.astype(np.float64).copy()
    diagonal = np.diag(h).copy()
    diagonal[diagonal == 0] = 1
    np.fill_diagonal(h, diagonal + damp * diagonal.mean())
    hinv, q, left = np.linalg.inv(h), np.zeros_like(w), list(np.argsort(-np.diag(h), kind="stable"))
    for j in list(left):
        q[:, j] = np.clip(np.round(w[:, j] / scale), -levels, levels)
        error = (w[:, j] - q[:, j] * scale) / hinv[j, j]
        left.remove(j)
        w[:, left] -= np.outer(error, hinv[j, left])
        hinv -= np.outer(hinv[:, j], hinv[j, :]) / hinv[j, j]
    return q


def correlated_inputs(rows: int, cols: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(rows, cols, generator=gen, dtype=torch.float64) @ torch.randn(cols, cols, generator=gen,
                                                                                    dtype=torch.float64)


@pytest.mark.parametrize("block", [1, 5, 128])
def test_gptq_equals_the_float64_textbook_algorithm(block):
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(12, 40, generator=gen, dtype=torch.float64)
    x = correlated_inputs(300, 40, seed=1)
    x[:, 7] = 0  # an input the calibration never saw
    h = x.T @ x
    scale = tbm.row_scales(w, 7, "std:2.5").double()  # a tight clip: some values are clipped
    ours = tbm.gptq_rows(w, h, scale, 7, block, 0.01)
    reference = textbook_gptq(w.numpy(), h.numpy(), scale.numpy().ravel(), 7, 0.01)
    assert np.array_equal(ours.numpy(), reference)
    assert (ours.abs() == 7).any() and not np.array_equal(ours.numpy(), np.round(w.numpy() / scale.numpy()).clip(-7, 7))


def test_gptq_lowers_the_output_error_that_rounding_leaves():
    """tr(E H E^T) = ||E X^T||^2 is the error GPTQ minimizes greedily; on correlated inputs it must beat
    rounding every weight to nearest with the same steps."""
    w = torch.randn(64, 96, generator=torch.Generator().manual_seed(2))
    h = (x := correlated_inputs(2000, 96, seed=3).float()).T @ x
    for levels, clip in ((31, "std:12"), (31, "max"), (7, "max")):
        scale = tbm.row_scales(w, levels, clip)
        weighted = lambda q: torch.trace((w - q * scale) @ h @ (w - q * scale).T)  # noqa: E731
        gptq, nearest = weighted(tbm.gptq_rows(w, h, scale, levels, 32, 0.01)), weighted(tbm.round_rows(w, scale, levels))
        assert gptq < 0.8 * nearest, (levels, clip)


def test_std_clip_is_k_standard_deviations_per_row():
    gen = torch.Generator().manual_seed(4)
    w = torch.randn(50, 300, generator=gen) * torch.linspace(0.01, 3, 50)[:, None]
    w[0, :5] = 40.0  # an outlier row: its std grows, the clip cuts the outliers
    q, scale = tbm.quantize_rows(w, 31, "std:4")
    step = scale.float()[:, None]
    std = w.double().numpy().std(axis=1)  # numpy's population std, independently
    np.testing.assert_allclose((step[:, 0] * 31).numpy(), 4 * std, rtol=2**-10)  # the step is stored in fp16
    clip = step * 31
    inside = w.abs() <= clip
    assert ((q.float() * step - w).abs() <= step / 2 + 1e-6)[inside].all()
    assert torch.equal(q[~inside].float(), 31 * torch.sign(w[~inside])) and (~inside[0]).sum() >= 5
    wide, _ = tbm.quantize_rows(w, 31, "std:12")
    assert wide.float().std() < q.float().std()  # a wider clip, a coarser step: fewer distinct symbols used


@pytest.mark.parametrize("codec", ["zstd", "brotli", "ans"])
def test_every_codec_restores_its_streams_bit_exactly(codec):
    rng = np.random.default_rng(5)
    streams = [np.clip(np.round(rng.standard_normal(5000) * 6), -31, 31).astype(np.int8),
               np.zeros(3000, np.int8),  # one symbol only (ans needs a two-symbol alphabet)
               rng.integers(-128, 128, 4096).astype(np.int8), np.array([-128, 127], np.int8)]
    blob, counts, cost = tbm.compress_streams(codec, streams)
    raw = b"".join(s.tobytes() for s in streams)
    group = {"name": "matrices", "codec": codec, "lengths": [s.size for s in streams],
             "crc32": tbm.zlib.crc32(raw), "counts": counts}
    assert tbm.decompress_group(group, blob) == raw and cost >= len(blob)
    if codec == "ans":  # within 1 % of the streams' empirical (order-0, per stream) entropy
        entropy = sum(-(p := np.bincount(s.astype(np.int64) + 128) / s.size)[p > 0] @ np.log2(p[p > 0]) * s.size
                      for s in streams) / 8
        assert len(blob) <= 1.01 * entropy + 8


def test_auto_keeps_each_groups_smallest_codec(tmp_path):
    """Smallest by what a group costs: its payload, plus for ans the symbol counts the header carries."""
    model = randomized(tbm.ByteGPT(tiny_config(mlp_hidden=1088, bigram_hash_buckets=2100, bigram_hash_dim=32)))
    groups = {}
    for codec in ("zstd", "brotli", "ans", "auto"):
        path = tmp_path / f"{codec}.ptz"
        path.write_bytes(encode_artifact(model.state_dict(), model.cfg, "byte260", "0" * 64, None,
                                             tbm.Hyperparameters({"CODEC": codec})))
        header, state = tbm.decode_artifact(path)
        groups[codec] = {g["name"]: g for g in header["groups"]}
        assert all(torch.equal(state[k], v) for k, v in tbm.decode_artifact(tmp_path / "zstd.ptz")[1].items())
    for name, group in groups["auto"].items():
        costs = {c: groups[c][name]["tried"][c] for c in ("zstd", "brotli", "ans")}
        assert group["tried"] == costs and group["codec"] == min(costs, key=costs.get)
        assert group["nbytes"] == groups[group["codec"]][name]["nbytes"]
    assert len({g["codec"] for g in groups["auto"].values()}) > 1  # this model's groups differ in their best codec


def test_gptq_artifact_holds_what_gptq_rows_computes(tmp_path):
    """Through encode_artifact and the file: the stored symbols are gptq_rows' for the given Hessian."""
    model = randomized(tbm.ByteGPT(tiny_config(mlp_hidden=1088)))
    name = "blocks.1.mlp.proj.weight"  # 64 x 1088
    w = model.state_dict()[name]
    h = (x := correlated_inputs(3000, 1088, seed=6).float()).T @ x
    args = tbm.Hyperparameters({"QUANT": "gptq", "QUANT_CLIP": "std:10", "GPTQ_BLOCK": "64", "CODEC": "ans"})
    path = tmp_path / "g.ptz"
    path.write_bytes(encode_artifact(model.state_dict(), model.cfg, "byte260", "0" * 64, None, args, {name: h}))
    scale = tbm.row_scales(w, 31, "std:10")
    expected = tbm.gptq_rows(w, h, scale, 31, 64, 0.01) * scale
    state = tbm.decode_artifact(path)[1]
    assert torch.equal(state[name], expected)
    assert not torch.equal(state["blocks.0.mlp.proj.weight"], expected)  # no Hessian: rounded to nearest


@pytest.fixture(scope="module")
def distinct_val(tmp_path_factory):
    """Train and val from different generators: a Hessian from val would not match one from train."""
    return make_byte_dataset(tmp_path_factory.mktemp("bytes"), train_bytes=40_000, val_bytes=4_000, seed=7)


def test_calibration_reads_training_shards_only_and_sums_their_inputs(distinct_val, monkeypatch):
    env = {"DATA_PATH": str(distinct_val), "TRAIN_SEQ_LEN": "64", "TRAIN_BATCH_TOKENS": "1024",
           "HELDOUT_TOKENS": "512", "GPTQ_CALIB_TOKENS": "256", "EMBED_BITS": "7", "VAL_SLIDING_STRIDE": "16"}
    args = tbm.Hyperparameters(env)
    spec = tbm.resolve_data(args)
    model = randomized(tbm.ByteGPT(tiny_config(model_dim=264, num_kv_heads=4, mlp_hidden=288, block_pattern="AA",
                                               bigram_hash_buckets=2100, bigram_hash_dim=32)))
    opened, real_map = [], tbm.map_shard
    monkeypatch.setattr(tbm, "map_shard", lambda path: opened.append(path) or real_map(path))
    rt = tbm.Runtime(0, 1, torch.device("cpu"), bf16=False, compile=False)
    rounds = tbm.calibration_rounds(args)
    hessians = tbm.calibrate(args, rt, spec, model, rounds)
    assert rounds == 2 and opened and set(opened) <= set(spec.train_files)
    # Independently: the first shard's ids as the loader's contiguous spans, through the model with our own hooks.
    ids = np.fromfile(spec.train_files[0], dtype="<u2", offset=1024).astype(np.int64)
    span = 1024 // 8 + 1
    batch = torch.from_numpy(np.stack([ids[r * span : r * span + span - 1] for r in range(rounds)])).view(-1, 64)
    inputs = {}

    def keep(key: str, x: torch.Tensor) -> None:  # a hook that returned a tensor would replace the output
        inputs[key] = x.double().flatten(0, 1)

    def attention_input(block, x, x0):  # q, k, v run as one fused matmul: their input written out from the block's
        return F.rms_norm(block.resid_mix[0] * x + block.resid_mix[1] * x0, (x.size(-1),)) * block.input_scale

    hooks = [m.register_forward_hook(lambda _, i, __, key=n: keep(key, i[0]))
             for n, m in model.named_modules() if isinstance(m, tbm.CastedLinear)]
    hooks += [block.register_forward_hook(lambda m, i, __, key=f"blocks.{b}.attn.c_q": keep(key, attention_input(m, *i)))
              for b, block in enumerate(model.blocks)]
    with torch.no_grad():
        hidden = model.hidden(batch).double().flatten(0, 1)
    for hook in hooks:
        hook.remove()
    for b in range(2):
        inputs[f"blocks.{b}.attn.c_k"] = inputs[f"blocks.{b}.attn.c_v"] = inputs[f"blocks.{b}.attn.c_q"]
    quantized = {name for name, t in model.state_dict().items() if tbm.storage_for(name, t) != "fp16"}
    expected = {f"{n}.weight": x.T @ x for n, x in inputs.items() if f"{n}.weight" in quantized}
    proj = model.bigram.proj.weight.double()
    expected.update({"tok_emb.weight": hidden.T @ hidden, "bigram.embed.weight": proj.T @ proj})
    assert set(hessians) == set(expected) == quantized and "blocks.1.attn.c_v.weight" in expected
    for name, h in expected.items():
        assert hessians[name].dtype == torch.float32
        torch.testing.assert_close(hessians[name].double(), h, rtol=1e-4, atol=1e-3 * h.abs().max().item(), msg=name)


def test_lqer_correction_lowers_the_error_and_the_file_adds_it_back(tmp_path):
    """LQER_RANK (research): W is stored as Q(W) + A^T B; the decoder folds it back in."""
    model = randomized(tbm.ByteGPT(tiny_config(mlp_hidden=1088)))
    name = "blocks.0.mlp.fc.weight"
    w = model.state_dict()[name]
    h = (x := correlated_inputs(3000, 64, seed=8).float()).T @ x
    plain, corrected = (tmp_path / "plain.ptz"), (tmp_path / "lqer.ptz")
    for path, rank in ((plain, "0"), (corrected, "4")):
        args = tbm.Hyperparameters({"LQER_RANK": rank, "QUANT_CLIP": "std:12"})
        path.write_bytes(encode_artifact(model.state_dict(), model.cfg, "byte260", "0" * 64, None, args, {name: h}))
    header, state = tbm.decode_artifact(corrected)
    factors = [e for e in header["tensors"] if e["name"].startswith(name + ".lqer")]
    assert [(e["storage"], e["shape"]) for e in factors] == [("int4", [4, 1088]), ("int4", [4, 64])]
    weighted = lambda deq: torch.trace((w - deq) @ h @ (w - deq).T)  # noqa: E731
    assert weighted(state[name]) < 0.9 * weighted(tbm.decode_artifact(plain)[1][name])
    assert set(state) == set(model.state_dict())


def test_export_only_of_a_pickle_is_refused_without_running_it(tmp_path):
    victim = tmp_path / "pwned.txt"
    evil = tmp_path / "evil.final.pt"
    evil.write_bytes(pickle.dumps(CreatesFileWhenUnpickled(str(victim))))
    dataset = make_byte_dataset(tmp_path / "bytes", train_bytes=4000, val_bytes=400)
    proc = run_trainer({**TINY_ENV, "DATA_PATH": str(dataset), "RUN_ID": "evil", "EXPORT_ONLY": str(evil)}, tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "evil.final.pt" in proc.stderr
    assert not victim.exists()


GPTQ_ENV = {**TINY_ENV, "MLP_HIDDEN": "2080", "BIGRAM_HASH_BUCKETS": "2100", "BIGRAM_HASH_DIM": "32",
            "QUANT": "gptq", "QUANT_CLIP": "std:8", "EMBED_BITS": "7", "CODEC": "auto", "GPTQ_CALIB_TOKENS": "4096",
            "MAX_WALLCLOCK_SECONDS": "600"}


@pytest.mark.slow
def test_export_only_reproduces_the_training_runs_export(tmp_path):
    dataset = make_byte_dataset(tmp_path / "bytes", train_bytes=40_000, val_bytes=3_000)
    trained = run_trainer({**GPTQ_ENV, "DATA_PATH": str(dataset), "RUN_ID": "trained"}, tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    lines = log_lines(tmp_path, "trained")
    assert any(line.startswith("end_of_training_reserve:") and " gptq:" in line for line in lines)
    assert any(line.startswith("gptq_calibration:") and " matrices:7 tokens:4096" in line for line in lines)
    assert any(line.startswith("export_time:") for line in lines)
    again = run_trainer({**GPTQ_ENV, "DATA_PATH": str(dataset), "RUN_ID": "again",
                         "EXPORT_ONLY": str(tmp_path / "trained.final.pt")}, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (tmp_path / "again.int6.ptz").read_bytes() == (tmp_path / "trained.int6.ptz").read_bytes()
    first, second = final_summary(tmp_path, "trained"), final_summary(tmp_path, "again")
    assert second["post_quant"] == {**first["post_quant"], "eval_ms": second["post_quant"]["eval_ms"],
                                    "sliding_eval_ms": second["post_quant"]["sliding_eval_ms"]}
    assert second["pre_quant"]["sliding_val_bpb"] == first["pre_quant"]["sliding_val_bpb"]
    assert again.stdout.strip().splitlines()[-1].startswith("score: ")
    # Another codec: other bytes, the same weights, so the same score.
    zstd = run_trainer({**GPTQ_ENV, "DATA_PATH": str(dataset), "RUN_ID": "zstd", "CODEC": "zstd",
                        "EXPORT_ONLY": str(tmp_path / "trained.final.pt")}, tmp_path)
    assert zstd.returncode == 0, zstd.stderr[-3000:]
    assert final_summary(tmp_path, "zstd")["post_quant"]["sliding_val_bpb"] == first["post_quant"]["sliding_val_bpb"]
    assert (tmp_path / "zstd.int6.ptz").read_bytes() != (tmp_path / "trained.int6.ptz").read_bytes()


def test_at_the_default_shape_under_bf16_every_stored_integer_tensor_gets_an_fp32_hessian(tmp_path):
    """The record run's path: bf16 autocast, the default recipe's full shape, a forward pass over a few ids. The set
    that must be covered comes from the state dict and the storage rule, not from the hooks that collect them."""
    dataset = make_byte_dataset(tmp_path, train_bytes=8000, val_bytes=1000)
    args = tbm.Hyperparameters({"DATA_PATH": str(dataset), "TRAIN_SEQ_LEN": "64", "TRAIN_BATCH_TOKENS": "512",
                                "HELDOUT_TOKENS": "512", "VAL_SLIDING_STRIDE": "64"})
    model = tbm.build_model(tbm.model_config(args, 260))
    state = model.state_dict()
    stored = {name for name, t in state.items() if tbm.storage_for(name, t, args.embed_bits) != "fp16"}
    assert {f"blocks.12.attn.c_{m}.weight" for m in "qkv"} <= stored and "tok_emb.weight" in stored
    rt = tbm.Runtime(0, 1, torch.device("cpu"), bf16=True, compile=False)
    hessians = tbm.calibrate(args, rt, tbm.resolve_data(args), model, 1)
    assert set(hessians) == stored
    for name, h in hessians.items():  # (the bigram table's is P^T P of its projection, zero at initialization)
        assert h.dtype == torch.float32 and h.shape == (state[name].shape[1],) * 2, name
        assert h.diagonal().gt(0).any() or name == "bigram.embed.weight", name
    q, _ = tbm.quantize_rows(state["blocks.0.attn.c_k.weight"], 31, "max", hessians["blocks.0.attn.c_k.weight"])
    assert q.abs().max() <= 31
