"""Shared test helpers: tiny byte datasets written with numpy, and running the trainer as a process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import convert_to_bytes as ctb
import train_byte_model as tbm

REPO = Path(__file__).resolve().parent.parent
TRAINER = REPO / "train_byte_model.py"

# A model small enough for a CPU step in well under a second.
TINY_ENV = {
    "MODEL_DIM": "32", "NUM_LAYERS": "3", "NUM_HEADS": "2", "NUM_KV_HEADS": "1", "MLP_HIDDEN": "64",
    "TRAIN_SEQ_LEN": "64", "TRAIN_BATCH_TOKENS": "2048", "ITERATIONS": "6", "WARMDOWN_ITERS": "2",
    "WARMUP_STEPS": "1", "TRAIN_LOG_EVERY": "1", "BIGRAM_HASH_BUCKETS": "64", "BIGRAM_HASH_DIM": "8",
    "SWA_EVERY": "2", "HELDOUT_TOKENS": "512", "VAL_SLIDING_STRIDE": "16", "EVAL_BATCH_SEQS": "8",
    "MAX_WALLCLOCK_SECONDS": "0", "SEED": "1", "JEPA_CHUNK_SIZE": "4", "JEPA_LATENT_DIM": "16",
    "GPTQ_CALIB_TOKENS": "1024",
}


def write_shard(path: Path, ids, magic: int = ctb.SHARD_MAGIC, version: int = ctb.SHARD_VERSION,
                count: int | None = None) -> None:
    """Official shard format; magic/version/count can be falsified to make bad inputs (convert_to_bytes.write_shard
    writes only good ones)."""
    ids = np.asarray(ids, dtype="<u2")
    header = np.zeros(ctb.HEADER_INTS, dtype="<i4")
    header[:3] = magic, version, ids.size if count is None else count
    path.write_bytes(header.tobytes() + ids.tobytes())


def sample_text(num_bytes: int, seed: int = 0) -> bytes:
    """Learnable text: words drawn from a small vocabulary with a Zipf-like law."""
    rng = np.random.default_rng(seed)
    words = [w.encode() for w in "the of and to in is was for on that with as by at from his her it be are".split()]
    weights = 1.0 / np.arange(1, len(words) + 1)
    out = bytearray()
    while len(out) < num_bytes:
        out += b" ".join(words[i] for i in rng.choice(len(words), 12, p=weights / weights.sum())) + b".\n"
    return bytes(out[:num_bytes])


def byte260_documents(text: bytes, doc_len: int) -> np.ndarray:
    """BOS (1) before every doc_len bytes; byte b -> id b + 4."""
    ids = np.frombuffer(text, np.uint8).astype(np.int64) + ctb.BYTE_OFFSET
    return np.insert(ids, np.arange(0, ids.size, doc_len), ctb.BOS_ID)


def make_byte_dataset(root: Path, train_bytes: int = 60_000, val_bytes: int = 3_000, shards: int = 2,
                      layout: str = "byte260", seed: int = 0) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if layout == "byte260":
        encode = lambda text: byte260_documents(text, 500)  # noqa: E731
    else:
        encode = lambda text: np.frombuffer(text, np.uint8)  # noqa: E731
    write_shard(root / "fineweb_val_000000.bin", encode(sample_text(val_bytes, seed + 1000)))
    for i in range(shards):
        write_shard(root / f"fineweb_train_{i:06d}.bin", encode(sample_text(train_bytes // shards, seed + i)))
    (root / ctb.SIDECAR_NAME).write_text(json.dumps({"layout": layout, "vocab_size": ctb.LAYOUT_VOCAB[layout]}))
    return root


def run_trainer(env: dict[str, str], log_dir: Path, nproc: int = 1, timeout: float = 600,
                args: tuple[str, ...] = (), script: Path = TRAINER) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    full_env.update({"LOG_DIR": str(log_dir), "OMP_NUM_THREADS": "1", **env})
    if nproc == 1:
        cmd = [sys.executable, str(script), *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", str(script), *args]
    return subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=timeout, cwd=REPO)


def log_lines(log_dir: Path, run_id: str) -> list[str]:
    """The run's log after its header (the header repeats the script source)."""
    text = (log_dir / f"{run_id}.txt").read_text()
    return text.split("=" * 100 + "\n")[-1].splitlines()


def final_summary(log_dir: Path, run_id: str) -> dict:
    lines = [line for line in log_lines(log_dir, run_id) if line.startswith("final_summary:")]
    return json.loads(lines[-1].removeprefix("final_summary:"))


def encode_artifact(state: dict, cfg, layout: str, code_sha256: str, eval_context: dict | None = None,
                    args=None, hessians: dict | None = None) -> bytes:
    """The trainer's export of `state` as a run writes it: quantize_state, then pack_artifact."""
    args = args or tbm.Hyperparameters({})
    return tbm.pack_artifact(tbm.quantize_state(state, args, hessians or {}), cfg, layout, code_sha256, eval_context,
                             args)
