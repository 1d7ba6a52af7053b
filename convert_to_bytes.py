#!/usr/bin/env python3
"""Convert Parameter Golf SentencePiece shards (or raw documents) into byte-level shards.

  python convert_to_bytes.py --src data/datasets/fineweb10B_sp1024 --dst data/datasets/fineweb10B_bytes \
      --tokenizer data/tokenizers/fineweb_1024_bpe.model [--layout byte260|raw256] [--workers N]
  python convert_to_bytes.py --from-docs docs_selected.jsonl --dst DIR [--val-docs N] [--shard-size N]
  python convert_to_bytes.py --verify DIR

Each token becomes exactly the bytes the baseline's BPB lookup table (train_gpt.py) counts for it, so
byte-level and token-level BPB share one denominator; DST/conversion.json records the per-shard counts.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections import Counter
from contextlib import closing, contextmanager
from functools import partial
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# ---- SHARD FORMAT (the official fineweb .bin layout) ----
SHARD_MAGIC, SHARD_VERSION = 20240520, 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
BOS_ID, UNK_ID, BYTE_OFFSET = 1, 3, 4  # byte260: byte b -> b+4; ids 0 (pad) and 2 (eos) stay unused
LAYOUT_VOCAB = {"byte260": 260, "raw256": 256}  # raw256: byte b -> b, BOS and <unk> dropped
SPLITS = ("train", "val")
SIDECAR_NAME = "conversion.json"
PARTIAL_SUFFIX = ".partial"
STAT_KEYS = ("documents", "source_tokens", "output_ids", "bytes", "baseline_bytes", "unk")
CHUNK_TOKENS = 1 << 16  # source tokens per numpy step: the working set (~3 MB) stays in cache
# Real sp1024 text uses ids >= 260 (its merged pieces and characters) within a few dozen tokens; byte260 and
# raw256 shards never do. Past this many ids with none, a source shard is taken for byte shards.
BYTE_SHARD_MIN_IDS = 10_000
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters (malloc.h)
BOUNDARY, LEADING_SPACE = 1, 2  # bit flags per token id: the baseline LUT's is_boundary, has_leading_space


class ConversionError(Exception):
    """An input or output problem; the message is one line that names the file."""


def read_header(path: Path) -> int:
    """Validate a shard's header and size; return its token count."""
    try:
        size = path.stat().st_size
        header = np.fromfile(path, dtype="<i4", count=HEADER_INTS)
    except OSError as e:
        raise ConversionError(f"{path}: cannot read ({e.strerror})") from None
    if size < HEADER_BYTES:
        raise ConversionError(f"{path}: {size} bytes is shorter than the {HEADER_BYTES}-byte header")
    if header[0] != SHARD_MAGIC:
        raise ConversionError(f"{path}: bad magic {header[0]} (expected {SHARD_MAGIC})")
    if header[1] != SHARD_VERSION:
        raise ConversionError(f"{path}: unsupported version {header[1]} (expected {SHARD_VERSION})")
    count = int(header[2])
    if size != HEADER_BYTES + 2 * count:
        raise ConversionError(f"{path}: file size {size} != {HEADER_BYTES + 2 * count} implied by header count {count}")
    return count


def iter_shard_chunks(path: Path, chunk_tokens: int = CHUNK_TOKENS):
    """A validated shard's ids in uint16 chunks, so memory stays bounded for any shard size."""
    count = read_header(path)
    with open(path, "rb") as f:
        f.seek(HEADER_BYTES)
        for start in range(0, count, chunk_tokens):
            yield np.fromfile(f, dtype="<u2", count=min(chunk_tokens, count - start))


def read_shard(path) -> np.ndarray:
    """All ids of a shard as uint16, after checking its header and size."""
    path = Path(path)
    return np.fromfile(path, dtype="<u2", count=read_header(path), offset=HEADER_BYTES)


def shard_header(count: int) -> bytes:
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[:3] = SHARD_MAGIC, SHARD_VERSION, count
    return header.tobytes()


@contextmanager
def atomic_output(path: Path):
    """Write to a hidden temp file beside `path`; rename over it only once complete and synced."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}{PARTIAL_SUFFIX}")
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_shard(path, ids) -> None:
    """Write ids as an official-format shard, atomically."""
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() > 0xFFFF):
        raise ConversionError(f"{path}: ids outside uint16 range")
    with atomic_output(Path(path)) as f:
        f.write(shard_header(ids.size))
        f.write(ids.astype("<u2").tobytes())


@contextmanager
def no_partials_left(directory: Path):
    """Clear temp files a killed run left behind, and any this run leaves on error."""
    def remove_partials():
        for tmp in directory.glob(f".*{PARTIAL_SUFFIX}"):
            tmp.unlink(missing_ok=True)
    remove_partials()
    try:
        yield
    except BaseException:
        remove_partials()
        raise


# ---- PER-TOKEN TABLES ----
@dataclass(frozen=True)
class ByteTables:
    layout: str
    vocab_size: int
    bos_id: int
    unk_id: int
    flags: np.ndarray  # uint8 BOUNDARY | LEADING_SPACE per id
    base_bytes: np.ndarray  # the baseline LUT's base_bytes per id
    emit_ids: np.ndarray  # every id's output ids end to end; a leading-▁ piece's space id sits just before it
    emit_start: np.ndarray  # an id writes emit_ids[emit_start - kept_space : emit_end]
    emit_end: np.ndarray


def build_tables(tokenizer_path: Path, layout: str) -> ByteTables:
    """The baseline LUT (as train_gpt.py builds it) and, from the same pieces, what each id writes."""
    import sentencepiece as spm  # lazy: --verify and --from-docs do not need it

    if not tokenizer_path.is_file():
        raise ConversionError(f"{tokenizer_path}: tokenizer not found")
    try:
        sp = spm.SentencePieceProcessor(model_file=str(tokenizer_path))
    except (RuntimeError, OSError) as e:
        raise ConversionError(f"{tokenizer_path}: not a SentencePiece model ({str(e).splitlines()[0]})") from None
    if sp.bos_id() < 0:
        raise ConversionError(f"{tokenizer_path}: tokenizer has no BOS id, so documents cannot be delimited")
    vocab, byte260 = sp.vocab_size(), layout == "byte260"
    offset = BYTE_OFFSET if byte260 else 0
    flags, base_bytes = np.zeros(vocab, np.uint8), np.zeros(vocab, np.int64)
    emit, emit_start, emit_end = [], np.zeros(vocab, np.intp), np.zeros(vocab, np.intp)
    for tid in range(vocab):
        piece = sp.id_to_piece(tid)
        if sp.is_control(tid) or sp.is_unknown(tid) or sp.is_unused(tid):
            flags[tid] = BOUNDARY
            ids = [BOS_ID] if byte260 and tid == sp.bos_id() else [UNK_ID] if byte260 and sp.is_unknown(tid) else []
        elif sp.is_byte(tid):
            base_bytes[tid] = 1
            ids = [int(piece[3:5], 16) + offset]  # piece is "<0xNN>"
        else:
            if piece.startswith("▁"):
                flags[tid] = LEADING_SPACE
                emit.append(ord(" ") + offset)
                piece = piece[1:]
            if "▁" in piece:
                raise ConversionError(f"{tokenizer_path}: piece {tid} {sp.id_to_piece(tid)!r} has an inner ▁, which "
                                      "the baseline counts as 3 bytes but decodes as a space; unsupported")
            base_bytes[tid] = len(piece.encode("utf-8"))
            ids = [b + offset for b in piece.encode("utf-8")]
        emit_start[tid] = len(emit)
        emit.extend(ids)
        emit_end[tid] = len(emit)
    return ByteTables(layout, vocab, sp.bos_id(), sp.unk_id(), flags, base_bytes,
                      np.array(emit, "<u2"), emit_start, emit_end)


# ---- CONVERSION HOT PATH (numpy only, no per-token Python) ----
def gather_runs(values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Concatenate values[s:e] for every (s, e), vectorized; runs may be empty. Reuses `starts` as scratch."""
    lengths = ends - starts
    out_ends = np.cumsum(lengths)
    # index into `values` for every output: +1 within a run; at a run's first output, the jump from the end of
    # the previous run to its start. Empty runs share that position, and their jumps telescope under add.at.
    index = np.ones(int(out_ends[-1]) + 1, np.intp)  # a spare last slot takes the jumps of trailing empty runs
    index[0] = 0
    jumps = starts
    jumps[1:] -= ends[:-1]
    np.add.at(index, out_ends - lengths, jumps)
    np.cumsum(index, out=index)
    return values[index[:-1]]


def emit_chunk(tables: ByteTables, tok: np.ndarray, prev_is_boundary: bool) -> tuple[np.ndarray, int, bool]:
    """Output ids for a chunk of token ids (intp), how many leading spaces it kept, and whether its last
    token is a boundary."""
    flags = tables.flags[tok]
    boundary = flags & BOUNDARY
    prev_boundary = np.empty_like(boundary)
    prev_boundary[0] = prev_is_boundary
    prev_boundary[1:] = boundary[:-1]
    # the baseline's `has_leading_space[t] and not is_boundary[p]`: the only context-dependent byte
    space = (flags >> 1) & (prev_boundary ^ 1)
    starts = tables.emit_start[tok]
    starts -= space
    out = gather_runs(tables.emit_ids, starts, tables.emit_end[tok])
    return out, int(np.count_nonzero(space)), bool(boundary[-1])


def output_summary(ids: np.ndarray, layout: str) -> Counter:
    """Sidecar counts readable back from output ids alone; the converter and --verify both count this way."""
    if layout == "raw256":
        return Counter(output_ids=ids.size, bytes=ids.size)
    return Counter(output_ids=ids.size, bytes=int(np.count_nonzero(ids >= BYTE_OFFSET)),
                   documents=int(np.count_nonzero(ids == BOS_ID)), unk=int(np.count_nonzero(ids == UNK_ID)))


def keep_freed_memory() -> None:
    """Stop glibc from returning freed chunk arrays to the OS after every chunk: faulting fresh pages back in
    cost as much as the conversion itself (measured 2x slower). No-op without glibc."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)
    libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)


def looks_like_byte_shard(counts: np.ndarray) -> bool:
    """counts: a shard's ids so far, by id. Cheap enough per chunk: it reads the per-id counts, not the ids."""
    past_bytes = LAYOUT_VOCAB["byte260"]  # the first id that no byte layout uses
    return counts.size > past_bytes and not counts[past_bytes:].any() and counts.sum() >= BYTE_SHARD_MIN_IDS


def convert_shard(t: ByteTables, job: tuple[Path, Path, int | None]) -> dict[str, int]:
    """Convert one shard, check the invariants, and return its sidecar entry.
    job: (source path, output path, last token of the previous shard in this split or None)."""
    src, dst, prev_token = job
    keep_freed_memory()
    source_counts, written, kept_spaces = np.zeros(t.vocab_size, np.int64), output_summary(np.empty(0), t.layout), 0
    prev_is_boundary = prev_token is None or bool(t.flags[prev_token] & BOUNDARY)
    with atomic_output(dst) as f:
        f.write(shard_header(0))  # placeholder until the output count is known
        for tokens in iter_shard_chunks(src):
            tok = tokens.astype(np.intp)
            counts = np.bincount(tok, minlength=t.vocab_size)  # also the id range check
            if counts.size > t.vocab_size:
                pos = int(np.argmax(tok >= t.vocab_size))
                raise ConversionError(f"{src}: token id {tok[pos]} at position {int(source_counts.sum()) + pos} "
                                      f"is >= the tokenizer's vocab size {t.vocab_size}")
            source_counts += counts
            if looks_like_byte_shard(source_counts):
                raise ConversionError(f"{src}: its first {int(source_counts.sum()):,} ids are all < "
                                      f"{LAYOUT_VOCAB['byte260']}, which sp1024 text never is: byte shards? "
                                      "--src must be the sp1024 token shards")
            out, spaces, prev_is_boundary = emit_chunk(t, tok, prev_is_boundary)
            f.write(out)
            written.update(output_summary(out, t.layout))
            kept_spaces += spaces
        # invariants: bytes written == the baseline formula's count; BOS == documents, UNK == <unk> (byte260)
        expected = {"output_ids": written["output_ids"], "bytes": int(source_counts @ t.base_bytes) + kept_spaces,
                    "documents": int(source_counts[t.bos_id]), "unk": int(source_counts[t.unk_id])}
        for key, value in written.items():
            if value != expected[key]:
                raise ConversionError(f"{src}: wrote {value} {key} but the source and baseline formula give {expected[key]}")
        f.seek(0)
        f.write(shard_header(written["output_ids"]))
    return expected | {"source_tokens": int(source_counts.sum()), "baseline_bytes": expected["bytes"]}


# ---- SIDECAR ----
def split_of(name: str) -> str:
    return "val" if name.startswith("fineweb_val_") else "train"


def write_sidecar(dst: Path, layout: str, source: dict, entries: dict[str, dict]) -> None:
    splits = {}
    for split in SPLITS:
        shards = {name: entries[name] for name in sorted(entries) if split_of(name) == split}
        splits[split] = {"shards": shards, "totals": {k: sum(e[k] for e in shards.values()) for k in STAT_KEYS}}
    sidecar = {"format_version": 1, "layout": layout, "vocab_size": LAYOUT_VOCAB[layout], "source": source, "splits": splits}
    with atomic_output(dst / SIDECAR_NAME) as f:
        f.write((json.dumps(sidecar, indent=1, sort_keys=True) + "\n").encode())


def load_sidecar(directory: Path) -> dict | None:
    path = directory / SIDECAR_NAME
    try:
        sidecar = json.loads(path.read_text()) if path.exists() else None
        if sidecar is not None and not {"layout", "vocab_size", "source", "splits"} <= set(sidecar):
            raise ValueError("missing top-level keys")
    except (ValueError, TypeError, OSError) as e:
        raise ConversionError(f"{path}: unreadable sidecar ({e})") from None
    return sidecar


def reusable_entries(dst: Path, layout: str, source: dict) -> dict[str, dict]:
    """Sidecar entries of an earlier run into dst whose output file is complete (cheap check: the size its
    entry implies). Refuses a dst written by a different conversion rather than mixing the two."""
    old = load_sidecar(dst)
    if old is None:
        return {}
    if old.get("layout") != layout or old.get("source") != source:
        raise ConversionError(f"{dst / SIDECAR_NAME}: written by a different conversion "
                              f"({old.get('layout')}, {old.get('source')}); use another --dst")
    entries = {name: e for split in old["splits"].values() for name, e in split["shards"].items()}
    return {name: e for name, e in entries.items()
            if (dst / name).is_file() and (dst / name).stat().st_size == HEADER_BYTES + 2 * e["output_ids"]}


# ---- DRIVERS ----
def convert_sp_shards(src: Path, dst: Path, tokenizer: Path, layout: str, workers: int, quiet: bool) -> str:
    if src.resolve() == dst.resolve():
        raise ConversionError(f"{dst}: --dst must differ from --src")
    if not src.is_dir():
        raise ConversionError(f"{src}: --src is not a directory")
    if (src / SIDECAR_NAME).exists():
        raise ConversionError(f"{src / SIDECAR_NAME}: {src} holds byte shards written by convert_to_bytes.py; "
                              "--src must be the sp1024 token shards")
    shards = sorted(src.glob("fineweb_train_*.bin")) + sorted(src.glob("fineweb_val_*.bin"))
    if not shards:
        raise ConversionError(f"{src}: no fineweb_train_*.bin or fineweb_val_*.bin shards")
    if split_of(shards[-1].name) != "val":
        raise ConversionError(f"{src}: no fineweb_val_*.bin shard")
    counts = {p: read_header(p) for p in shards}
    tables = build_tables(tokenizer, layout)
    source = {"kind": "sp_shards", "tokenizer_file": tokenizer.name,
              "tokenizer_sha256": hashlib.sha256(tokenizer.read_bytes()).hexdigest(), "tokenizer_vocab_size": tables.vocab_size}
    dst.mkdir(parents=True, exist_ok=True)
    with no_partials_left(dst):
        entries = reusable_entries(dst, layout, source)
        jobs, last_token = [], {}
        for path in shards:  # each split is one stream: a shard's predecessor is the last token before it
            done = entries.get(path.name)
            if done is None or done["source_tokens"] != counts[path]:
                jobs.append((path, dst / path.name, last_token.get(split_of(path.name))))
            if counts[path]:  # an id out of range here fails this shard's own conversion, reported first
                last_token[split_of(path.name)] = int(np.fromfile(path, "<u2", count=1, offset=HEADER_BYTES + 2 * counts[path] - 2)[0])
        from tqdm import tqdm

        bar = tqdm(total=sum(counts[job[0]] for job in jobs), unit="tok", unit_scale=True,
                   disable=quiet or not sys.stderr.isatty())
        # closing() stops a pool on error before no_partials_left sweeps its temp files
        with closing(run_jobs(partial(convert_shard, tables), jobs, workers)) as results:
            for (_, out_path, _), stats in zip(jobs, results):
                entries[out_path.name] = stats
                write_sidecar(dst, layout, source, entries)
                bar.update(stats["source_tokens"])
                bar.set_postfix_str(out_path.name)
        bar.close()
    return f"converted {len(jobs)} of {len(shards)} shards ({len(shards) - len(jobs)} already complete) into {dst}"


def run_jobs(convert, jobs: list, workers: int):
    """Results in job order; shards are independent, so a pool may run them in parallel."""
    if workers <= 1 or len(jobs) <= 1:
        yield from map(convert, jobs)
        return
    import multiprocessing

    with multiprocessing.Pool(min(workers, len(jobs))) as pool:
        yield from pool.imap(convert, jobs)


def iter_docs_shards(path: Path, val_docs: int, shard_size: int):
    """(split, ids) per shard from docs_selected.jsonl (one {"text": ...} per line): BOS then byte+4 for each
    document, the first val_docs documents to val, each split cut every shard_size ids, mid-document, as the
    official exporter cuts."""
    buf, fill, split = np.empty(shard_size, "<u2"), 0, "val"
    with open(path, "rb") as f:
        for n, line in enumerate(f):
            try:  # raw UTF-8, no normalization, as the official pure-byte exporter
                doc = json.loads(line)["text"].encode("utf-8", errors="replace")
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise ConversionError(f"{path}:{n + 1}: malformed JSONL line ({type(e).__name__}: {e})") from None
            if n == val_docs and fill:
                yield split, buf[:fill].copy()
                fill = 0
            split = "val" if n < val_docs else "train"
            ids = np.empty(len(doc) + 1, "<u2")
            ids[0] = BOS_ID
            ids[1:] = np.frombuffer(doc, np.uint8) + BYTE_OFFSET
            while ids.size:
                take = min(shard_size - fill, ids.size)
                buf[fill:fill + take] = ids[:take]
                ids, fill = ids[take:], fill + take
                if fill == shard_size:
                    yield split, buf.copy()
                    fill = 0
    if fill:
        yield split, buf[:fill].copy()


def convert_docs(docs_path: Path, dst: Path, val_docs: int, shard_size: int) -> str:
    if not docs_path.is_file():
        raise ConversionError(f"{docs_path}: documents file not found")
    source = {"kind": "docs", "tokenizer_file": None, "tokenizer_sha256": None, "docs_file": docs_path.name,
              "docs_bytes": docs_path.stat().st_size, "val_docs": val_docs, "shard_size": shard_size}
    dst.mkdir(parents=True, exist_ok=True)
    with no_partials_left(dst):
        entries, written, index = reusable_entries(dst, "byte260", source), {}, {"train": 0, "val": 0}
        for split, ids in iter_docs_shards(docs_path, val_docs, shard_size):
            name = f"fineweb_{split}_{index[split]:06d}.bin"
            index[split] += 1
            summary = output_summary(ids, "byte260")
            written[name] = dict(summary, source_tokens=summary["bytes"], baseline_bytes=summary["bytes"])
            if entries.get(name) != written[name]:  # the output is deterministic: an equal entry means done
                write_shard(dst / name, ids)
                write_sidecar(dst, "byte260", source, written)
        if not index["val"]:
            raise ConversionError(f"{docs_path}: no documents for val (--val-docs {val_docs})")
    return f"wrote {index['val']} val and {index['train']} train shards from {docs_path} into {dst}"


def verify_dir(directory: Path) -> str:
    """Re-read every shard and check it against the sidecar; return a one-line summary."""
    sidecar = load_sidecar(directory)
    if sidecar is None:
        raise ConversionError(f"{directory / SIDECAR_NAME}: sidecar not found")
    layout, vocab = sidecar["layout"], sidecar["vocab_size"]
    entries = {name: e for split in sidecar["splits"].values() for name, e in split["shards"].items()}
    for path in sorted(directory.glob("fineweb_*.bin")):
        if path.name not in entries:
            raise ConversionError(f"{path}: shard has no sidecar entry")
    for name, entry in entries.items():
        path, found = directory / name, output_summary(np.empty(0), layout)
        for ids in iter_shard_chunks(path):
            if ids.max() >= vocab or (layout == "byte260" and np.count_nonzero((ids == 0) | (ids == 2))):
                raise ConversionError(f"{path}: holds ids outside {layout}'s range (or the unused ids 0, 2)")
            found.update(output_summary(ids, layout))
        for key, value in found.items():
            if entry[key] != value:
                raise ConversionError(f"{path}: {key} is {value} but the sidecar says {entry[key]}")
    for split, part in sidecar["splits"].items():
        if part["totals"] != {k: sum(e[k] for e in part["shards"].values()) for k in STAT_KEYS}:
            raise ConversionError(f"{directory / SIDECAR_NAME}: {split} totals do not match its shards")
    if not sidecar["splits"]["val"]["shards"]:
        raise ConversionError(f"{directory}: no val shard")
    summary = ", ".join(f"{split} {len(part['shards'])} shards {part['totals']['bytes']:,} bytes"
                        for split, part in sidecar["splits"].items())
    return f"OK {directory}: {layout}, {summary}"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--src", type=Path, help="directory of fineweb_{train,val}_*.bin SentencePiece shards")
    mode.add_argument("--from-docs", type=Path, help="docs_selected.jsonl to write byte260 shards from directly")
    mode.add_argument("--verify", type=Path, metavar="DIR", help="check an output directory against its sidecar")
    p.add_argument("--dst", type=Path, help="output directory for byte shards and conversion.json")
    p.add_argument("--tokenizer", type=Path, help="the SentencePiece .model the source shards were made with")
    p.add_argument("--layout", choices=sorted(LAYOUT_VOCAB), default="byte260")
    p.add_argument("--workers", type=int, default=1, help="shards converted in parallel")
    p.add_argument("--val-docs", type=int, default=50_000, help="with --from-docs: first N documents go to val")
    p.add_argument("--shard-size", type=int, default=100_000_000, help="with --from-docs: ids per shard")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.verify is None and args.dst is None:
        p.error("--dst is required with --src or --from-docs")
    if args.src is not None and args.tokenizer is None:
        p.error("--tokenizer is required with --src")
    if args.from_docs is not None and (args.layout != "byte260" or args.shard_size <= 0 or args.val_docs < 0):
        p.error("--from-docs writes byte260 only, with a positive --shard-size and --val-docs >= 0")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    try:
        if args.verify is not None:
            summary = verify_dir(args.verify)
        elif args.from_docs is not None:
            summary = convert_docs(args.from_docs, args.dst, args.val_docs, args.shard_size)
        else:
            summary = convert_sp_shards(args.src, args.dst, args.tokenizer, args.layout, args.workers, args.quiet)
    except ConversionError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(summary)


if __name__ == "__main__":
    main()
