"""Evaluation section: every target scored exactly once, and BPB equal to a slow float64 reference
loop written independently here, in each data mode, on 1 and 2 processes."""

import math
import os
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import train_byte_model as tbm
from test_model import randomized, tiny_config

CONTEXT = 32


def reference_bpb(model: tbm.ByteGPT, stream: np.ndarray, context: int, stride: int, target_bytes) -> tuple[float, float]:
    """One forward per target, in float64. Target t (1..N-1) is predicted from stream[c:t], where c is
    0 while t fits in the first window, else the start of the first window whose last `stride`
    positions reach t (a multiple of stride), but never past N-1-context (the tail window)."""
    model = model.double().eval()
    n = stream.size
    loss, nbytes = 0.0, 0
    with torch.no_grad():
        for t in range(1, n):
            c = 0 if t <= context else min(n - 1 - context, stride * math.ceil((t - context) / stride))
            assert 0 <= c < t and t - c <= context
            ids = torch.from_numpy(stream[c:t].astype(np.int64))[None]
            logits = model.logits(model.hidden(ids))[0, -1].double()
            loss -= torch.log_softmax(logits, dim=-1)[int(stream[t])].item()
            nbytes += target_bytes(int(stream[t - 1]), int(stream[t]))
    model.float()
    return loss / (n - 1), loss / math.log(2) / nbytes


def byte260_bytes(prev: int, target: int) -> int:
    return int(target >= 4)  # pad/BOS/EOS/UNK count no bytes


def baseline_token_bytes(sp: spm.SentencePieceProcessor):
    """The baseline train_gpt.py per-token byte count, written out token by token."""
    def count(prev: int, target: int) -> int:
        if sp.is_control(target) or sp.is_unknown(target) or sp.is_unused(target):
            return 0
        if sp.is_byte(target):
            return 1
        piece = sp.id_to_piece(target)
        prev_is_boundary = sp.is_control(prev) or sp.is_unknown(prev) or sp.is_unused(prev)
        if piece.startswith("\u2581"):
            return len(piece[1:].encode()) + (0 if prev_is_boundary else 1)
        return len(piece.encode())
    return count


def cpu_runtime(rank: int = 0, world_size: int = 1) -> tbm.Runtime:
    return tbm.Runtime(rank, world_size, torch.device("cpu"), bf16=False, compile=False)


def byte_tables(layout: str, tokenizer: str = "", vocab: int = 260):
    return tbm.byte_count_tables(tbm.DataSpec(layout, vocab, [], [], "test"), tokenizer)


def run_eval(model, stream, stride, tables, rt=None, batch=4):
    ids = torch.from_numpy(stream.astype(np.int64))
    return tbm.evaluate(model.eval(), model.hidden, ids, CONTEXT, stride, batch, tables, rt or cpu_runtime())


def random_byte260_stream(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    stream = rng.integers(4, 260, n)
    stream[rng.random(n) < 0.05] = 1  # BOS
    stream[rng.random(n) < 0.02] = 3  # UNK
    stream[-1] = 100  # at least one byte target, however short the stream
    return stream.astype(np.uint16)


@pytest.mark.parametrize("n", [2, 20, CONTEXT, CONTEXT + 1, 100, 141])
@pytest.mark.parametrize("stride", [1, 5, 8, CONTEXT])
def test_windows_score_each_target_exactly_once(n, stride):
    windows = tbm.eval_windows(n, CONTEXT, stride)
    hits = np.zeros(n, int)
    for start, lo, hi in windows:
        assert 0 <= lo <= hi <= CONTEXT and start >= 0
        assert start + hi <= n - 1  # inputs never read past the stream (short streams are padded)
        hits[start + lo + 1 : start + hi + 1] += 1
    assert hits[0] == 0 and (hits[1:] == 1).all()


@pytest.mark.parametrize("n,stride", [(141, 8), (141, 7), (20, 8), (CONTEXT + 1, 8), (97, CONTEXT), (2, 4)])
def test_byte260_eval_matches_float64_reference(n, stride):
    torch.manual_seed(0)
    model = randomized(tbm.ByteGPT(tiny_config()), seed=1)
    stream = random_byte260_stream(n)
    ref_loss, ref_bpb = reference_bpb(model, stream, CONTEXT, stride, byte260_bytes)
    result = run_eval(model, stream, stride, byte_tables("byte260"))
    assert result.scored_targets == result.targets == n - 1
    assert result.byte_count == int((stream[1:] >= 4).sum())
    assert result.val_loss == pytest.approx(ref_loss, rel=1e-5)
    assert result.val_bpb == pytest.approx(ref_bpb, rel=1e-5)


def test_raw256_counts_every_target_as_a_byte():
    model = randomized(tbm.ByteGPT(tiny_config(vocab_size=256)), seed=2)
    stream = np.random.default_rng(3).integers(0, 256, 77).astype(np.uint16)
    ref_loss, ref_bpb = reference_bpb(model, stream, CONTEXT, 8, lambda prev, target: 1)
    result = run_eval(model, stream, 8, byte_tables("raw256", vocab=256))
    assert result.byte_count == 76
    assert result.val_bpb == pytest.approx(ref_bpb, rel=1e-5)
    assert result.val_bpb == pytest.approx(result.val_loss / math.log(2), rel=1e-12)  # one byte per target


def test_token_mode_uses_the_baseline_byte_formula(tiny_sp_model, sp_shard_dir):
    sp = spm.SentencePieceProcessor(model_file=str(tiny_sp_model))
    vocab = sp.vocab_size()
    val = tbm.load_shard(sorted(Path(sp_shard_dir).glob("fineweb_val_*.bin"))[0], vocab)
    first_unk = int(np.flatnonzero(val == 3)[0])
    stream = val[max(0, first_unk - 100) : first_unk + 50]
    assert (stream == 3).any() and (stream == 1).any()  # <unk> and BOS both occur
    model = randomized(tbm.ByteGPT(tiny_config(vocab_size=vocab)), seed=4)
    ref_loss, ref_bpb = reference_bpb(model, stream, CONTEXT, 8, baseline_token_bytes(sp))
    result = run_eval(model, stream, 8, byte_tables("tokens", str(tiny_sp_model), vocab))
    assert result.val_loss == pytest.approx(ref_loss, rel=1e-5)
    assert result.val_bpb == pytest.approx(ref_bpb, rel=1e-5)


def test_stride_equal_to_context_is_the_non_overlapping_eval_including_the_tail():
    model = randomized(tbm.ByteGPT(tiny_config()), seed=5)
    stream = random_byte260_stream(3 * CONTEXT + 11)  # 3 full windows and an 10-target tail
    result = run_eval(model, stream, CONTEXT, byte_tables("byte260"))
    # Independent non-overlapping computation: blocks of CONTEXT targets, the tail with full context.
    losses = []
    with torch.no_grad():
        for start in range(0, 3 * CONTEXT, CONTEXT):
            ids = torch.from_numpy(stream[start : start + CONTEXT + 1].astype(np.int64))[None]
            losses.append(torch.nn.functional.cross_entropy(model.logits(model.hidden(ids[:, :-1]))[0], ids[0, 1:], reduction="none"))
        tail = torch.from_numpy(stream[-CONTEXT - 1 :].astype(np.int64))[None]
        losses.append(torch.nn.functional.cross_entropy(model.logits(model.hidden(tail[:, :-1]))[0], tail[0, 1:], reduction="none")[-10:])
    losses = torch.cat(losses)
    assert losses.numel() == stream.size - 1
    assert result.val_loss == pytest.approx(losses.double().mean().item(), rel=1e-5)


def test_batch_size_does_not_change_the_result():
    model = randomized(tbm.ByteGPT(tiny_config()), seed=6)
    stream = random_byte260_stream(200)
    one = run_eval(model, stream, 8, byte_tables("byte260"), batch=1)
    many = run_eval(model, stream, 8, byte_tables("byte260"), batch=7)
    assert one.val_bpb == pytest.approx(many.val_bpb, rel=1e-6)


def _two_process_eval(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.manual_seed(0)
    model = randomized(tbm.ByteGPT(tiny_config()), seed=1)
    result = run_eval(model, random_byte260_stream(141), 7, byte_tables("byte260"), rt=cpu_runtime(rank, 2))
    if rank == 0:
        Path(out).write_text(f"{result.val_loss!r} {result.val_bpb!r} {result.scored_targets}")
    dist.destroy_process_group()


def test_two_processes_match_the_reference(tmp_path):
    out = tmp_path / "result.txt"
    mp.spawn(_two_process_eval, args=(29500 + os.getpid() % 1000, str(out)), nprocs=2, join=True)
    loss, bpb, scored = out.read_text().split()
    model = randomized(tbm.ByteGPT(tiny_config()), seed=1)
    ref_loss, ref_bpb = reference_bpb(model, random_byte260_stream(141), CONTEXT, 7, byte260_bytes)
    assert int(scored) == 140
    assert float(loss) == pytest.approx(ref_loss, rel=1e-5)
    assert float(bpb) == pytest.approx(ref_bpb, rel=1e-5)


def test_bad_stride_and_empty_stream_are_errors():
    with pytest.raises(tbm.RunError, match="VAL_SLIDING_STRIDE"):
        tbm.eval_windows(100, CONTEXT, CONTEXT + 1)
    with pytest.raises(tbm.RunError, match="at least 2"):
        tbm.eval_windows(1, CONTEXT, 8)


def test_window_starts_and_scored_positions_go_to_the_device_once_per_evaluation(monkeypatch):
    """A pageable host-to-device copy waits for the GPU's queue; per batch it would stall every batch."""
    model = randomized(tbm.ByteGPT(tiny_config())).eval()
    stream = torch.randint(4, 260, (2000,), dtype=torch.int32)
    windows = tbm.eval_windows(stream.numel(), CONTEXT, 8)
    made, real = [], torch.from_numpy
    monkeypatch.setattr(torch, "from_numpy", lambda a: made.append(a.shape) or real(a))
    losses = tbm.score_windows(model, model.hidden, stream, windows, CONTEXT, 4, cpu_runtime())
    assert len(windows) > 100 and losses.numel() == stream.numel() - 1 and len(made) == 1
