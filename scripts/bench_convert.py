#!/usr/bin/env python3
"""Benchmark convert_to_bytes.py against the per-document sp.decode approach on one large sp1024 shard.

  python scripts/bench_convert.py [--tokens 100000000] [--tokenizer PATH] [--workdir DIR]

The shard is real text (the demo corpus: standard-library docstrings and comments) encoded once and
repeated in a deterministic shuffled order, BOS before each document, until it holds --tokens tokens.
The converter runs as the real CLI in a fresh subprocess (one worker), so its time includes start-up and
the final fsync; tokens per CPU second is also shown, as wall time depends on what else the machine runs. The decode approach decodes every document of
the same shard with sp.decode, as public converters do, in this process.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import sentencepiece as spm

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import convert_to_bytes as ctb  # noqa: E402
from demo_data import stdlib_documents, train_tokenizer  # noqa: E402

REAL_SP1024_MODEL = REPO_ROOT.parent / "shared" / "fineweb_1024_bpe.model"


def build_shard(sp, docs: list[str], n_tokens: int, path: Path) -> int:
    """Write an n_tokens shard of shuffled repeats of the encoded documents; return its document count."""
    encoded = [np.array([sp.bos_id(), *ids], np.uint16) for ids in sp.encode(docs, num_threads=os.cpu_count())]
    rng, parts, total, n_docs = np.random.default_rng(0), [], 0, 0
    while total < n_tokens:
        order = rng.permutation(len(encoded))
        sizes = np.cumsum([encoded[i].size for i in order])
        take = int(np.searchsorted(sizes, n_tokens - total)) + 1  # enough documents to reach n_tokens
        parts.append(np.concatenate([encoded[i] for i in order[:take]]))
        total, n_docs = total + parts[-1].size, n_docs + min(take, len(order))
    ctb.write_shard(path, np.concatenate(parts)[:n_tokens])
    return n_docs


def run_converter(src: Path, dst: Path, tokenizer: Path) -> tuple[float, float, int]:
    """Convert with the CLI in a fresh process; return (wall seconds, CPU seconds, its peak RSS in bytes).

    Peak RSS is the child's VmHWM, polled from /proc: getrusage would report this benchmark's own (larger)
    peak, which Linux carries into a child across fork and exec."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(REPO_ROOT / "convert_to_bytes.py"), "--src", str(src), "--dst",
                             str(dst), "--tokenizer", str(tokenizer), "--workers", "1", "--quiet"], stdout=subprocess.DEVNULL)
    peak_kib = 0
    while True:
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
            peak_kib = max([peak_kib] + [int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")])
        except OSError:
            pass
        pid, wait_status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        time.sleep(0.005)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(wait_status) != 0:
        sys.exit("converter failed")
    return seconds, usage.ru_utime + usage.ru_stime, peak_kib * 1024


def decode_per_document(sp, ids: np.ndarray) -> tuple[float, int]:
    """The decode approach: split at BOS, sp.decode each document, UTF-8 encode, shift to byte260 ids.
    Returns (seconds, decoded byte count)."""
    start = time.perf_counter()
    doc_starts = np.flatnonzero(ids == sp.bos_id())
    n_bytes = 0
    for doc in np.split(ids, doc_starts[1:]):
        text = sp.decode(doc[1:].tolist()).encode("utf-8")
        n_bytes += (np.frombuffer(text, np.uint8).astype(np.uint16) + ctb.BYTE_OFFSET).size
    return time.perf_counter() - start, n_bytes


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tokens", type=int, default=100_000_000)
    p.add_argument("--tokenizer", type=Path, help=f"default: {REAL_SP1024_MODEL} if present, else a demo-trained one")
    p.add_argument("--workdir", type=Path, help="default: a temporary directory, removed afterwards")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        docs = stdlib_documents()
        tokenizer = args.tokenizer or (REAL_SP1024_MODEL if REAL_SP1024_MODEL.is_file() else
                                       train_tokenizer(docs, work / "demo_1024_bpe"))
        sp = spm.SentencePieceProcessor(model_file=str(tokenizer))
        src, dst = work / "sp", work / "bytes"
        src.mkdir(parents=True, exist_ok=True)
        n_docs = build_shard(sp, docs, args.tokens, src / "fineweb_val_000000.bin")
        if dst.exists():
            for f in dst.iterdir():
                f.unlink()
        convert_s, convert_cpu_s, peak_rss = run_converter(src, dst, tokenizer)
        totals = json.loads((dst / ctb.SIDECAR_NAME).read_text())["splits"]["val"]["totals"]
        decode_s, decoded_bytes = decode_per_document(sp, ctb.read_shard(src / "fineweb_val_000000.bin"))
    ours, theirs = args.tokens / convert_s, args.tokens / decode_s
    print(f"shard: {args.tokens:,} tokens, {n_docs:,} documents, {totals['unk']:,} <unk>; tokenizer {tokenizer.name}; "
          f"{os.cpu_count()} CPUs")
    print(f"{'':28}{'tokens/s':>14}{'seconds':>10}")
    print(f"{'convert_to_bytes (1 worker)':28}{ours:>14,.0f}{convert_s:>10.2f}   peak RSS {peak_rss / 2**20:,.0f} MiB, "
          f"{args.tokens / convert_cpu_s:,.0f} tokens per CPU second")
    print(f"{'sp.decode per document':28}{theirs:>14,.0f}{decode_s:>10.2f}")
    print(f"{'speed-up':28}{ours / theirs:>13.1f}x")
    print(f"bytes: baseline formula {totals['baseline_bytes']:,} (= written {totals['bytes']:,}); "
          f"sp.decode {decoded_bytes:,} ({decoded_bytes / totals['baseline_bytes'] - 1:+.2%})")


if __name__ == "__main__":
    main()
