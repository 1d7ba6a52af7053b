"""Evaluation-time methods (eval_time.py) in the trainer: score-first TTT and the PPM mixture obey the
reviewers' conditions, proven on the per-target losses that EVAL_DUMP writes."""

import os
import shutil

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import eval_time
import run_modes
import train_byte_model as tbm
from helpers import TINY_ENV, make_byte_dataset, run_trainer, write_shard
from test_model import randomized, tiny_config

METHODS = {"TTT_STEPS": "2", "TTT_CHUNK_TOKENS": "200", "TTT_LR": "0.01", "PPM_ORDER": "4"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained for a few steps and its artifact."""
    root = tmp_path_factory.mktemp("eval_time")
    data = make_byte_dataset(root / "data", train_bytes=20_000, val_bytes=1_500)
    proc = run_trainer({**TINY_ENV, "DATA_PATH": str(data), "RUN_ID": "base", "ITERATIONS": "8"}, root / "logs")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return data, root / "logs" / "base.int6.ptz"


def perturbed_after(data, root, t: int):
    """A copy of the dataset whose val ids after position t are all replaced."""
    copy = root / f"after{t}"
    shutil.copytree(data, copy)
    val = tbm.load_shard(copy / "fineweb_val_000000.bin", 260).astype(np.int64)
    val[t + 1 :] = 4 + (val[t + 1 :] - 4 + 97) % 256
    write_shard(copy / "fineweb_val_000000.bin", val)
    return copy


def eval_only_dumps(rank: int, world_size: int, runs: list, artifact: str, knobs: dict, port: int = 0) -> list[dict]:
    """The trainer's EVAL_ONLY path in this process (so numba compiles once): for each (data, dump) the
    post-quant results, the per-target losses landing in `dump`."""
    if world_size > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world_size)
    rt = tbm.Runtime(rank, world_size, torch.device("cpu"), bf16=False, compile=False)
    results = []
    for data, dump in runs:
        args = tbm.Hyperparameters({"DATA_PATH": str(data), "EVAL_ONLY": artifact, "EVAL_DUMP": str(dump), **knobs})
        results.append(run_modes.eval_only(args, rt, tbm.resolve_data(args))["post_quant"])
    return results


def spawned(rank: int, runs: list, artifact: str, knobs: dict, port: int) -> None:
    eval_only_dumps(rank, 2, runs, artifact, knobs, port)
    tbm.leave_process(0)  # as the trainer leaves: a spawned gloo process can abort while finalizing


@pytest.mark.slow
@pytest.mark.parametrize("nproc", [1, 2])
def test_scores_depend_only_on_earlier_bytes(trained, tmp_path, nproc):
    """C1/C3: with TTT and PPM on, changing every id after position t leaves the losses of targets <= t
    bit-identical (target j is dump[j - 1]); C4: every target scored exactly once."""
    data, artifact = trained
    cuts = (150, 700, 1300)  # inside the first TTT chunk, later ones; rank 1's share starts near 750
    runs = [(data, tmp_path / "base.npy")] + [(perturbed_after(data, tmp_path, t), tmp_path / f"t{t}.npy") for t in cuts]
    if nproc == 1:
        post = eval_only_dumps(0, 1, runs, str(artifact), METHODS)[0]
    else:
        mp.spawn(spawned, args=(runs, str(artifact), METHODS, 29500 + os.getpid() % 1000), nprocs=2, join=True)
    base = np.load(tmp_path / "base.npy")
    if nproc == 1:
        assert base.dtype == np.float32 and base.size == post["sliding_targets"] == post["methods"]["ttt"]["scored_targets"]
        assert post["score_method"] == "ttt+ppm"
        assert base.astype(np.float64).mean() == pytest.approx(post["methods"]["ttt+ppm"]["val_loss"], rel=1e-6)
    for t in cuts:
        changed = np.load(tmp_path / f"t{t}.npy")
        assert changed.size == base.size
        assert np.array_equal(changed[:t], base[:t]), f"a change after position {t} moved an earlier score"
        assert not np.array_equal(changed[t:], base[t:])


@pytest.mark.slow
def test_methods_off_dump_is_the_plain_sliding_eval(trained, tmp_path):
    data, artifact = trained
    post = eval_only_dumps(0, 1, [(data, tmp_path / "plain.npy")], str(artifact), {})[0]
    plain = np.load(tmp_path / "plain.npy")
    assert post["score_method"] == "sliding" and "methods" not in post
    assert plain.astype(np.float64).mean() == pytest.approx(post["sliding_val_loss"], rel=1e-6)


def test_window_groups_partition_the_windows_in_order():
    windows = tbm.eval_windows(1000, 64, 16)
    groups = eval_time.window_groups(windows, 100)
    assert np.array_equal(np.concatenate(groups), windows)
    scored = [int((g[:, 2] - g[:, 1]).sum()) for g in groups]
    assert all(s >= 100 for s in scored[:-1]) and all(s - 16 < 100 for s in scored[1:-1])


@pytest.mark.parametrize("what", ["scalars", "lora"])
def test_ttt_adapts_only_what_it_says_and_leaves_the_artifact_weights(what):
    model = randomized(tbm.ByteGPT(tiny_config()))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ids = torch.randint(4, 260, (1, 24))
    with torch.no_grad():
        plain = model.hidden(ids)
    adapted = eval_time.attach_adapted(model, what, rank=2)
    saved = [p.detach().clone() for p in adapted]
    with torch.no_grad():
        assert torch.equal(model.hidden(ids), plain)  # LoRA starts at zero: the artifact's model
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    if what == "lora":  # the factors of every block matrix, nothing else
        assert trainable and all(".parametrizations.weight.0." in name for name in trainable)
    else:  # block vectors and mixes, skip weights; no matrix, embedding or JEPA parameter
        assert "skip_weights" in trainable and "blocks.0.attn.q_gain" in trainable and "blocks.0.resid_mix" in trainable
        assert not any(name.endswith(".weight") or name.startswith(("tok_emb", "jepa", "bigram")) for name in trainable)
    optimizer = torch.optim.Adam(adapted, lr=0.1)
    rt = tbm.Runtime(0, 1, torch.device("cpu"), bf16=False, compile=False)
    eval_time.adapt(model, torch.randint(4, 260, (50,)), 16, 2, optimizer, rt)
    with torch.no_grad():
        assert not torch.equal(model.hidden(ids), plain)
    eval_time.detach_adapted(model, saved, adapted, what)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters())


def test_lora_factors_are_the_same_on_every_run():
    """The score may depend only on the artifact and the text: LoRA's random A comes from a fixed seed."""
    model = randomized(tbm.ByteGPT(tiny_config()))
    factors = []
    for _ in range(2):
        torch.manual_seed(len(factors))  # a different global RNG state each time
        adapted = eval_time.attach_adapted(model, "lora", rank=2)
        factors.append([p.detach().clone() for p in adapted])
        eval_time.detach_adapted(model, [p.detach().clone() for p in adapted], adapted, "lora")
    assert all(torch.equal(a, b) for a, b in zip(*factors))
