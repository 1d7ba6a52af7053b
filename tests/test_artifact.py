"""Artifact section: int6/int8 quantization, the zstd file round trip, refusal of anything else."""

import json
import pickle
import zlib

import pytest
import torch
import zstandard

import run_modes
import train_byte_model as tbm
from helpers import TINY_ENV, encode_artifact, make_byte_dataset, run_trainer
from test_model import randomized, tiny_config


def artifact_for(model: tbm.ByteGPT, path, **knobs) -> None:
    args = tbm.Hyperparameters(knobs)
    path.write_bytes(encode_artifact(model.state_dict(), model.cfg, "byte260", "0" * 64, None, args))


@pytest.mark.parametrize("codec", ["zstd", "brotli", "ans", "auto"])
def test_round_trip_equals_the_dequantized_weights(tmp_path, codec):
    model = randomized(tbm.ByteGPT(tiny_config(mlp_hidden=1088, bigram_hash_buckets=2100, bigram_hash_dim=32)))
    path = tmp_path / "m.ptz"
    artifact_for(model, path, CODEC=codec, EMBED_BITS="7")
    header, state = tbm.decode_artifact(path)
    assert header["config"] == tbm.dataclasses.asdict(model.cfg) and header["layout"] == "byte260"
    assert {g["codec"] for g in header["groups"]} <= ({"zstd", "brotli", "ans"} if codec == "auto" else {codec})
    storages = {e["name"]: e["storage"] for e in header["tensors"]}
    assert storages["blocks.0.mlp.fc.weight"] == "int6"  # 1088 x 64 > 65,536 values
    assert storages["bigram.embed.weight"] == "int7" and storages["blocks.0.attn.c_q.weight"] == "fp16"
    for name, original in model.state_dict().items():
        if storages[name] == "fp16":
            expected = original.half().float()
        else:  # dequantize independently: q in [-levels, levels] times the stored fp16 row scale
            levels = {"int6": 31, "int7": 63}[storages[name]]
            q, scale = tbm.quantize_rows(original, levels)
            assert q.abs().max() <= levels and scale.dtype == torch.float16
            expected = q.float() * scale.float()[:, None]
            # Each value is within half a step of the original unless its row's clip cut it.
            clip = scale.float()[:, None] * levels
            inside = original.abs() <= clip
            assert ((expected - original).abs() <= scale.float()[:, None] / 2 + 1e-7)[inside].all()
        assert torch.equal(state[name], expected), name
    rebuilt_header, rebuilt = run_modes.load_artifact_model(path)
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
        run_modes.load_artifact_model(path)
    assert not victim.exists()


def split(data: bytes) -> tuple[dict, bytes]:
    """(header, the group payloads) of an artifact, read independently of the trainer."""
    start = len(tbm.ARTIFACT_MAGIC) + 4
    end = start + int.from_bytes(data[len(tbm.ARTIFACT_MAGIC) : start], "little")
    return json.loads(zstandard.ZstdDecompressor().decompress(data[start:end])), data[end:]


def joined(header: dict, payloads: bytes) -> bytes:
    blob = zstandard.ZstdCompressor().compress(json.dumps(header).encode())
    return tbm.ARTIFACT_MAGIC + len(blob).to_bytes(4, "little") + blob + payloads


def tampered(kind: str, good: bytes) -> bytes:
    header, payloads = split(good)
    if kind == "bad_header_zstd":
        start = len(tbm.ARTIFACT_MAGIC) + 4
        return good[:start] + bytes(b ^ 0x5A for b in good[start : start + 40]) + good[start + 40 :]
    if kind == "truncated":
        return good[:-100]
    if kind == "wrong_version":
        header["format_version"] = 99
    elif kind == "shape_mismatch":
        header["config"]["model_dim"] = 48
    elif kind == "bad_json":
        blob = zstandard.ZstdCompressor().compress(b"{not json")
        return tbm.ARTIFACT_MAGIC + len(blob).to_bytes(4, "little") + blob + payloads
    elif kind == "unknown_codec":
        header["groups"][0]["codec"] = "lzma"
    return joined(header, payloads)


@pytest.mark.parametrize("kind,message", [("bad_header_zstd", "corrupt artifact"), ("truncated", "corrupt artifact"),
                                          ("wrong_version", "format_version 99"), ("bad_json", "corrupt artifact"),
                                          ("unknown_codec", "codec 'lzma'"),
                                          ("shape_mismatch", "does not fit its model config")])
def test_tampered_artifact_is_a_clear_error(tmp_path, kind, message):
    good = tmp_path / "good.ptz"
    artifact_for(tbm.ByteGPT(tiny_config()), good)
    bad = tmp_path / f"{kind}.ptz"
    bad.write_bytes(tampered(kind, good.read_bytes()))
    with pytest.raises(tbm.RunError, match=message) as info:
        run_modes.load_artifact_model(bad)
    assert str(bad) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("codec", ["zstd", "brotli", "ans"])
def test_a_changed_payload_byte_is_a_clear_error_for_every_codec(tmp_path, codec):
    """Each group's payload is checked (its decoder's own errors, then its length and crc32): an ans stream
    decodes garbage without complaint, so the checksum is what catches it."""
    good = tmp_path / "good.ptz"
    artifact_for(randomized(tbm.ByteGPT(tiny_config(mlp_hidden=1088, bigram_hash_buckets=2100, bigram_hash_dim=32))),
                 good, CODEC=codec)
    header, payloads = split(good.read_bytes())
    assert [g["name"] for g in header["groups"]] == ["matrices", "embeddings", "floats"]
    start = 0
    for group in header["groups"]:
        for position in (start, start + group["nbytes"] // 2, start + group["nbytes"] - 1):
            changed = bytearray(payloads)
            changed[position] ^= 0x10
            bad = tmp_path / f"{group['name']}_{position}.ptz"
            bad.write_bytes(joined(header, bytes(changed)))
            with pytest.raises(tbm.RunError, match="corrupt artifact") as info:
                tbm.decode_artifact(bad)
            assert str(bad) in str(info.value) and "\n" not in str(info.value)
        start += group["nbytes"]


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
    model = randomized(tbm.ByteGPT(tbm.model_config(tbm.Hyperparameters(env), 260)))
    big = tmp_path / "big.ptz"
    artifact_for(model, big)
    assert big.stat().st_size > tbm.SIZE_CAP_BYTES
    env.update(DATA_PATH=str(small_val), EVAL_ONLY=str(big))
    refused = run_trainer({**env, "RUN_ID": "over"}, tmp_path)
    assert refused.returncode == 1 and "verdict:OVER_CAP" in refused.stdout
    assert "OVER CAP: total" in refused.stdout.strip().splitlines()[-2]  # final_summary stays last
    allowed = run_trainer({**env, "RUN_ID": "allowed", "ALLOW_OVER_CAP": "1"}, tmp_path)
    assert allowed.returncode == 0 and "ALLOW_OVER_CAP=1" in allowed.stdout
