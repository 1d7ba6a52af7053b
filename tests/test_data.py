"""Data section: shard checks, layout resolution, the streaming loader; each bad input is a one-line
error naming the file, with a non-zero exit."""

import json
import shutil
import threading

import numpy as np
import pytest
import torch

import train_byte_model as tbm
from helpers import TINY_ENV, make_byte_dataset, run_trainer, write_shard


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_byte_dataset(tmp_path_factory.mktemp("bytes"))


def test_stream_wraps_and_holds_out_the_tail(tmp_path):
    a, b = np.arange(10, 20), np.arange(20, 35)
    write_shard(tmp_path / "a.bin", a)
    write_shard(tmp_path / "b.bin", b)
    stream = tbm.TokenStream([tmp_path / "a.bin", tmp_path / "b.bin"], 260, holdout=5)
    served = stream.take(10 + 10 + 3)
    assert served.tolist() == list(range(10, 30)) + [10, 11, 12]  # b's last 5 never served; wraps to a
    assert stream.heldout().tolist() == list(range(30, 35))


def test_stream_maps_shards_reads_what_it_takes_and_leaves_no_thread(tmp_path, monkeypatch):
    """A stream made for a few batches (GPTQ calibration) must not read whole shards or leave a reader behind."""
    files = [tmp_path / f"{name}.bin" for name in "abc"]
    for i, path in enumerate(files):
        write_shard(path, np.arange(10 * i, 10 * i + 10))
    opened, real_map = [], tbm.map_shard
    monkeypatch.setattr(tbm, "map_shard", lambda path: opened.append(path.name) or real_map(path))
    threads = threading.active_count()
    stream = tbm.TokenStream(files, 260)
    assert stream.take(15).tolist() == list(range(15))
    assert opened == ["a.bin", "b.bin"] and isinstance(stream.tokens, np.memmap)  # c is not touched
    stream.seek(0, 3)  # a jump (a resume) back to another shard
    assert stream.take(9).tolist() == [3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert threading.active_count() == threads


def test_stream_names_the_shard_of_an_id_out_of_range(tmp_path):
    write_shard(tmp_path / "a.bin", np.arange(10))
    write_shard(tmp_path / "b.bin", [5, 6, 300])
    stream = tbm.TokenStream([tmp_path / "a.bin", tmp_path / "b.bin"], 260)
    assert stream.take(10).tolist() == list(range(10))
    with pytest.raises(tbm.RunError, match=r"b\.bin: id 300 >= vocab size 260"):
        stream.take(3)


def test_loader_gives_each_rank_its_span_of_one_chunk(tmp_path):
    write_shard(tmp_path / "a.bin", np.arange(100))
    spans = []
    for rank in range(2):
        loader = tbm.DistributedTokenLoader(tbm.TokenStream([tmp_path / "a.bin"], 260), rank, 2, torch.device("cpu"))
        spans.append(loader.next_batch(32, 4, 2))  # 32 tokens / (2 ranks * 2 accum) = 8 per rank + 1
    (x0, y0), (x1, y1) = spans
    assert x0.flatten().tolist() == list(range(0, 8)) and y0.flatten().tolist() == list(range(1, 9))
    assert x1.flatten().tolist() == list(range(9, 17)) and y1.flatten().tolist() == list(range(10, 18))
    # One process with twice the accumulation reads the same spans in order.
    single = tbm.DistributedTokenLoader(tbm.TokenStream([tmp_path / "a.bin"], 260), 0, 1, torch.device("cpu"))
    assert single.next_batch(32, 4, 4)[0].flatten().tolist() == list(range(0, 8))
    assert single.next_batch(32, 4, 4)[0].flatten().tolist() == list(range(9, 17))


def test_loader_state_round_trips(tmp_path):
    write_shard(tmp_path / "a.bin", np.arange(50))
    write_shard(tmp_path / "b.bin", np.arange(50, 90))
    files = [tmp_path / "a.bin", tmp_path / "b.bin"]
    loader = tbm.DistributedTokenLoader(tbm.TokenStream(files, 260), 0, 1, torch.device("cpu"))
    loader.next_batch(48, 8, 1)
    state = loader.state()
    expected = loader.next_batch(48, 8, 1)[0]
    fresh = tbm.DistributedTokenLoader(tbm.TokenStream(files, 260), 0, 1, torch.device("cpu"))
    fresh.load_state(state)
    assert torch.equal(fresh.next_batch(48, 8, 1)[0], expected)


def test_layout_comes_from_the_sidecar(dataset):
    spec = tbm.resolve_data(tbm.Hyperparameters({"DATA_PATH": str(dataset)}))
    assert (spec.layout, spec.vocab_size, len(spec.train_files), len(spec.val_files)) == ("byte260", 260, 2, 1)


def test_seed_command_line_env_vars_parse():
    seed_env = dict(item.split("=") for item in (
        "BLOCK_PATTERN=AAAAAAAAAAAAA TRAIN_BATCH_TOKENS=393216 TRAIN_SEQ_LEN=4096 VOCAB_SIZE=256 MODEL_DIM=512 "
        "NUM_HEADS=8 NUM_KV_HEADS=8 MLP_MULT=3 MLP_HIDDEN=1536 WARMDOWN_ITERS=3500 MATRIX_LR=0.035 TIED_EMBED_LR=0.05 "
        "SCALAR_LR=0.04 MUON_MOMENTUM=0.99 MUON_MOMENTUM_WARMUP_START=0.92 MUON_MOMENTUM_WARMUP_STEPS=2500 "
        "ITERATIONS=20000 MAX_WALLCLOCK_SECONDS=600 VAL_LOSS_EVERY=0 TRAIN_LOG_EVERY=1000 WARMUP_STEPS=10 "
        "USE_COMPILE=1 SEED=1337 SMEAR_GATE=1 SWA_EVERY=50 SWA_LAST_FRAC=0.5 GRAD_CLIP_NORM=0.3 "
        "BIGRAM_HASH_BUCKETS=4096 BIGRAM_HASH_DIM=32 VAL_SLIDING_STRIDE=512 VAL_SLIDING_MAX_TOKENS=10000000 "
        "DATA_PATH=./data/datasets/fineweb10B_bytes").split())
    args = tbm.Hyperparameters(seed_env)
    assert {k for k, v in args.source.items() if v == "env"} == set(seed_env)  # each of PR #705's knobs is ours
    assert not args.warnings
    assert (args.mlp_hidden, args.vocab_size, args.train_seq_len, args.val_sliding_max_tokens) == (1536, 256, 4096, 10_000_000)
    assert args.max_wallclock_seconds == 600.0 and args.matrix_lr == 0.035 and args.use_compile == 1


def test_help_lists_every_knob():
    import subprocess
    import sys
    out = subprocess.run([sys.executable, str(tbm.__file__), "--help"], capture_output=True, text=True, check=True).stdout
    for name, default, _ in tbm.KNOBS:
        assert name in out and repr(default) in out


def bad_dataset(kind: str, root):
    """A copy of a good dataset broken in one way; returns (env overrides, text the error must name)."""
    make_byte_dataset(root, train_bytes=6000, val_bytes=1000)
    shard = root / "fineweb_train_000001.bin"
    if kind == "bad_magic":
        write_shard(shard, np.arange(4, 100), magic=12345)
    elif kind == "bad_version":
        write_shard(shard, np.arange(4, 100), version=7)
    elif kind == "truncated":
        shard.write_bytes(shard.read_bytes()[:-10])
    elif kind == "id_over_vocab":
        write_shard(shard, [4, 5, 260])
    elif kind == "no_val":
        (root / "fineweb_val_000000.bin").unlink()
        return {}, "no fineweb_val_"
    elif kind == "empty_dir":
        shutil.rmtree(root)
        root.mkdir()
        return {}, "no fineweb_train_"
    elif kind == "missing_dir":
        shutil.rmtree(root)
        return {}, "no such directory"
    elif kind == "vocab_contradiction":
        return {"VOCAB_SIZE": "256"}, "VOCAB_SIZE=256 contradicts"
    elif kind == "no_sidecar":
        (root / "conversion.json").unlink()
        return {}, "conversion.json: missing"
    return {}, shard.name


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["bad_magic", "bad_version", "truncated", "id_over_vocab", "no_val", "empty_dir",
                                  "missing_dir", "vocab_contradiction", "no_sidecar"])
def test_bad_data_is_a_one_line_error(kind, tmp_path):
    env, named = bad_dataset(kind, tmp_path / "data")
    proc = run_trainer({**TINY_ENV, "DATA_PATH": str(tmp_path / "data"), "RUN_ID": "bad", **env}, tmp_path / "logs")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], proc.stderr
    assert not list((tmp_path / "logs").glob("*.ptz")) and not list((tmp_path / "logs").glob("*.tmp"))


def test_sidecar_layout_unknown_is_an_error(tmp_path):
    make_byte_dataset(tmp_path)
    (tmp_path / "conversion.json").write_text(json.dumps({"layout": "byte999"}))
    with pytest.raises(tbm.RunError, match="byte999"):
        tbm.resolve_data(tbm.Hyperparameters({"DATA_PATH": str(tmp_path)}))
