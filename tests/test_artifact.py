"""Artifact section: int6/int8 quantization, the zstd file round trip, refusal of anything else."""

import json
import pickle
import zlib

import numpy as np
import pytest
import torch
import zstandard

import train_byte_model as tbm
from helpers import TINY_ENV, make_byte_dataset, run_trainer
from test_model import randomized, tiny_config


def artifact_for(model: tbm.ByteGPT, path) -> None:
    path.write_bytes(tbm.encode_artifact(model.state_dict(), model.cfg, "byte260", "0" * 64))


def test_round_trip_equals_the_dequantized_weights(tmp_path):
    model = randomized(tbm.ByteGPT(tiny_config(mlp_hidden=1088, bigram_hash_buckets=2100, bigram_hash_dim=32)))
    path = tmp_path / "m.ptz"
    artifact_for(model, path)
    header, state = tbm.decode_artifact(path)
    assert header["config"] == tbm.dataclasses.asdict(model.cfg) and header["layout"] == "byte260"
    storages = {e["name"]: e["storage"] for e in header["tensors"]}
    assert storages["blocks.0.mlp.fc.weight"] == "int6"  # 1088 x 64 > 65,536 values
    assert storages["bigram.embed.weight"] == "int8" and storages["blocks.0.attn.c_q.weight"] == "fp16"
    for name, original in model.state_dict().items():
        if storages[name] == "fp16":
            expected = original.half().float()
        else:  # dequantize independently: q in [-levels, levels] times the stored fp16 row scale
            levels = 31 if storages[name] == "int6" else 127
            q, scale = tbm.quantize_rows(original, levels)
            assert q.abs().max() <= levels and scale.dtype == torch.float16
            expected = q.float() * scale.float()[:, None]
            # Each value is within half a step of the original unless its row's clip cut it.
            clip = scale.float()[:, None] * levels
            inside = original.abs() <= clip
            assert ((expected - original).abs() <= scale.float()[:, None] / 2 + 1e-7)[inside].all()
        assert torch.equal(state[name], expected), name
    rebuilt_header, rebuilt = tbm.load_artifact_model(path)
    assert all(torch.equal(rebuilt.state_dict()[k], v) for k, v in state.items())


def test_int6_clip_search_is_no_worse_than_plain_max_scaling():
    torch.manual_seed(0)
    w = torch.randn(64, 200) * torch.linspace(0.1, 2, 64)[:, None]
    q, scale = tbm.quantize_rows(w, 31)
    searched = ((q.float() * scale.float()[:, None] - w) ** 2).sum(1)
    plain_scale = (w.abs().amax(1, keepdim=True) / 31).half().float()
    plain = ((torch.round(w / plain_scale).clamp(-31, 31) * plain_scale - w) ** 2).sum(1)
    assert (searched <= plain + 1e-6).all()
    assert (searched < plain * 0.99).sum() > 8  # clipping the largest values pays on many Gaussian rows


class CreatesFileWhenUnpickled:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("wrapping", ["raw", "zstd", "zlib", "magic+zstd"])
def test_pickle_payload_is_refused_without_running_it(tmp_path, wrapping):
    victim = tmp_path / "pwned.txt"
    payload = pickle.dumps(CreatesFileWhenUnpickled(str(victim)))
    data = {"raw": payload, "zstd": zstandard.ZstdCompressor().compress(payload), "zlib": zlib.compress(payload),
            "magic+zstd": tbm.ARTIFACT_MAGIC + zstandard.ZstdCompressor().compress(payload)}[wrapping]
    path = tmp_path / "evil.ptz"
    path.write_bytes(data)
    with pytest.raises(tbm.RunError, match="evil.ptz"):
        tbm.load_artifact_model(path)
    assert not victim.exists()


def tampered(kind: str, good: bytes) -> bytes:
    magic = tbm.ARTIFACT_MAGIC
    raw = zstandard.ZstdDecompressor().decompress(good[len(magic):])
    header_len = int.from_bytes(raw[:4], "little")
    header = json.loads(raw[4 : 4 + header_len])
    if kind == "bad_zstd":
        return magic + bytes(b ^ 0x5A for b in good[len(magic):])
    if kind == "truncated":
        return good[: len(good) // 2]
    if kind == "wrong_version":
        header["format_version"] = 99
    elif kind == "shape_mismatch":
        header["config"]["model_dim"] = 48
    elif kind == "bad_json":
        return magic + zstandard.ZstdCompressor().compress(raw[:4] + b"{not json" + raw[4 + 9 :])
    blob = json.dumps(header).encode()
    return magic + zstandard.ZstdCompressor().compress(len(blob).to_bytes(4, "little") + blob + raw[4 + header_len :])


@pytest.mark.parametrize("kind,message", [("bad_zstd", "corrupt artifact"), ("truncated", "corrupt artifact"),
                                          ("wrong_version", "format_version 99"), ("bad_json", "corrupt artifact"),
                                          ("shape_mismatch", "does not fit its model config")])
def test_tampered_artifact_is_a_clear_error(tmp_path, kind, message):
    good = tmp_path / "good.ptz"
    artifact_for(tbm.ByteGPT(tiny_config()), good)
    bad = tmp_path / f"{kind}.ptz"
    bad.write_bytes(tampered(kind, good.read_bytes()))
    with pytest.raises(tbm.RunError, match=message) as info:
        tbm.load_artifact_model(bad)
    assert str(bad) in str(info.value) and "\n" not in str(info.value)


@pytest.fixture(scope="module")
def small_val(tmp_path_factory):
    return make_byte_dataset(tmp_path_factory.mktemp("bytes"), train_bytes=4000, val_bytes=400)


@pytest.mark.slow
def test_eval_only_of_a_pickle_is_a_one_line_error(small_val, tmp_path):
    victim = tmp_path / "pwned.txt"
    evil = tmp_path / "evil.ptz"
    evil.write_bytes(pickle.dumps(CreatesFileWhenUnpickled(str(victim))))
    proc = run_trainer({**TINY_ENV, "DATA_PATH": str(small_val), "RUN_ID": "evil", "EVAL_ONLY": str(evil)}, tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "evil.ptz" in proc.stderr
    assert not victim.exists()


@pytest.mark.slow
def test_over_cap_fails_unless_allowed(small_val, tmp_path):
    """A 17M-value bigram table of random weights compresses to more than 16,000,000 bytes."""
    env = {**TINY_ENV, "BIGRAM_HASH_BUCKETS": "540000", "BIGRAM_HASH_DIM": "32"}
    model = randomized(tbm.ByteGPT(tbm.ModelConfig.from_hparams(tbm.Hyperparameters(env), 260)))
    big = tmp_path / "big.ptz"
    artifact_for(model, big)
    assert big.stat().st_size > tbm.SIZE_CAP_BYTES
    env.update(DATA_PATH=str(small_val), EVAL_ONLY=str(big))
    refused = run_trainer({**env, "RUN_ID": "over"}, tmp_path)
    assert refused.returncode == 1 and "verdict:OVER_CAP" in refused.stdout
    assert "OVER CAP: total" in refused.stdout.strip().splitlines()[-2]  # final_summary stays last
    allowed = run_trainer({**env, "RUN_ID": "allowed", "ALLOW_OVER_CAP": "1"}, tmp_path)
    assert allowed.returncode == 0 and "ALLOW_OVER_CAP=1" in allowed.stdout
