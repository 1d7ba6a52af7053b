#!/usr/bin/env python3
"""Convert Parameter Golf SentencePiece shards (or raw documents) into byte-level shards.

  python convert_to_bytes.py --src data/datasets/fineweb10B_sp1024 --dst data/datasets/fineweb10B_bytes \
      --tokenizer data/tokenizers/fineweb_1024_bpe.model [--layout byte260|raw256] [--workers N]
  python convert_to_bytes.py --from-docs docs_selected.jsonl --dst DIR [--val-docs N] [--shard-size N]
  python convert_to_bytes.py --verify DIR

Each source token becomes exactly the bytes the baseline's BPB lookup table (train_gpt.py
build_sentencepiece_luts) counts for it, so byte-level BPB and token-level BPB share a denominator.
Layouts: byte260 (byte b -> id b+4, BOS -> 1, <unk> -> 3) and raw256 (byte b -> id b, BOS/<unk> dropped).
A sidecar DST/conversion.json records per-shard counts; every shard is checked against the formula.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# ---- SHARD FORMAT (the official fineweb .bin layout) ----
SHARD_MAGIC, SHARD_VERSION = 20240520, 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
BOS_ID, UNK_ID, BYTE_OFFSET = 1, 3, 4  # byte260 ids; 0 (pad) and 2 (eos) stay unused
LAYOUT_VOCAB = {"byte260": 260, "raw256": 256}
SPLITS = ("train", "val")
SIDECAR_NAME = "conversion.json"
PARTIAL_SUFFIX = ".partial"
STAT_KEYS = ("documents", "source_tokens", "output_ids", "bytes", "baseline_bytes", "unk")
CHUNK_TOKENS = 1 << 20  # ~1M source tokens per step keeps the working set in cache and memory flat
DOCS_PER_BATCH = 4096  # documents turned into ids per numpy call in --from-docs
BOUNDARY, LEADING_SPACE = 1, 2  # bit flags per token id, as in the baseline LUT


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
    """Yield a validated shard's ids in uint16 chunks, so memory stays bounded for any shard size."""
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


def remove_partials(directory: Path) -> None:
    for tmp in directory.glob(f".*{PARTIAL_SUFFIX}"):
        tmp.unlink(missing_ok=True)


@contextmanager
def no_partials_left(directory: Path):
    """Clear temp files a killed run left behind, and any this run leaves on error."""
    remove_partials(directory)
    try:
        yield
    except BaseException:
        remove_partials(directory)
        raise


# ---- PER-TOKEN TABLES ----
@dataclass(frozen=True)
class ByteTables:
    layout: str
    vocab_size: int
    bos_id: int
    unk_id: int
    flags: np.ndarray  # uint8 BOUNDARY / LEADING_SPACE per id (the baseline's is_boundary / has_leading_space)
    base_bytes: np.ndarray  # the baseline's base_bytes per id
    emit_ids: np.ndarray  # every id's output ids end to end; a leading-▁ id's space id sits just before its start
    emit_start: np.ndarray
    emit_len: np.ndarray  # excluding the optional space


def load_tokenizer(path: Path):
    import sentencepiece as spm  # lazy: --verify and --from-docs do not need it

    if not path.is_file():
        raise ConversionError(f"{path}: tokenizer not found")
    try:
        return spm.SentencePieceProcessor(model_file=str(path))
    except (RuntimeError, OSError) as e:
        raise ConversionError(f"{path}: not a SentencePiece model ({str(e).splitlines()[0]})") from None


def is_boundary_id(sp, tid: int) -> bool:
    return sp.is_control(tid) or sp.is_unknown(tid) or sp.is_unused(tid)


def build_tables(sp, layout: str, tokenizer_path: Path) -> ByteTables:
    vocab = sp.vocab_size()
    flags = np.zeros(vocab, np.uint8)
    base_bytes = np.zeros(vocab, np.int32)
    for tid in range(vocab):  # the baseline LUT, as train_gpt.py builds it
        if is_boundary_id(sp, tid):
            flags[tid] = BOUNDARY
        elif sp.is_byte(tid):
            base_bytes[tid] = 1
        else:
            piece = sp.id_to_piece(tid)
            flags[tid] = LEADING_SPACE if piece.startswith("▁") else 0
            base_bytes[tid] = len(piece.removeprefix("▁").encode("utf-8"))
    offset = BYTE_OFFSET if layout == "byte260" else 0
    byte260 = layout == "byte260"
    emit: list[int] = []
    emit_start = np.zeros(vocab, np.intp)
    emit_len = np.zeros(vocab, np.intp)
    for tid in range(vocab):  # what each id writes, from its piece text (separately from the counts above)
        piece = sp.id_to_piece(tid)
        if is_boundary_id(sp, tid):
            ids = [BOS_ID] if byte260 and tid == sp.bos_id() else [UNK_ID] if byte260 and sp.is_unknown(tid) else []
        elif sp.is_byte(tid):
            ids = [int(piece[3:5], 16) + offset]  # piece is "<0xNN>"
        else:
            if piece.startswith("▁"):
                emit.append(ord(" ") + offset)
                piece = piece[1:]
            if "▁" in piece:
                raise ConversionError(f"{tokenizer_path}: piece {tid} {sp.id_to_piece(tid)!r} has an inner ▁, "
                                      "which the baseline counts as 3 bytes but decodes as a space; unsupported")
            ids = [b + offset for b in piece.encode("utf-8")]
        emit_start[tid], emit_len[tid] = len(emit), len(ids)
        emit.extend(ids)
    return ByteTables(layout, vocab, sp.bos_id(), sp.unk_id(), flags, base_bytes,
                      np.array(emit, "<u2"), emit_start, emit_len)


# ---- CONVERSION HOT PATH (numpy only, no per-token Python) ----
def gather_runs(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenate values[s:s+n] for every (s, n), vectorized."""
    if not lengths.all():
        keep = lengths > 0
        starts, lengths = starts[keep], lengths[keep]
    if lengths.size == 0:
        return values[:0]
    ends = np.cumsum(lengths)
    # index into `values` for every output: +1 inside a run, a jump to the next run's start at each run end
    index = np.ones(int(ends[-1]), np.intp)
    index[0] = starts[0]
    index[ends[:-1]] = starts[1:] - (starts[:-1] + lengths[:-1] - 1)
    np.cumsum(index, out=index)
    return values[index]


def emit_chunk(tables: ByteTables, tokens: np.ndarray, prev_is_boundary: bool) -> tuple[np.ndarray, int, bool]:
    """Output ids for a chunk, the baseline byte count for it, and whether its last token is a boundary."""
    tok = tokens.astype(np.intp)
    flags = tables.flags[tok]
    boundary = flags & BOUNDARY
    prev_boundary = np.empty_like(boundary)
    prev_boundary[0] = prev_is_boundary
    prev_boundary[1:] = boundary[:-1]
    # the baseline's has_leading_space[t] and not is_boundary[p]: the only context-dependent byte
    space = (flags >> 1) & (prev_boundary ^ 1)
    baseline = int(tables.base_bytes[tok].sum(dtype=np.int64)) + int(np.count_nonzero(space))
    out = gather_runs(tables.emit_ids, tables.emit_start[tok] - space, tables.emit_len[tok] + space)
    return out, baseline, bool(boundary[-1])


@dataclass(frozen=True)
class ShardJob:
    src: Path
    dst: Path
    prev_token: int | None  # last token of the previous shard in this split; None for the first
    tables: ByteTables


def convert_shard(job: ShardJob) -> dict[str, int]:
    """Convert one shard, check the invariants, and return its sidecar entry."""
    t = job.tables
    stats = dict.fromkeys(STAT_KEYS, 0)
    out_bos = out_unk = 0
    prev_is_boundary = job.prev_token is None or bool(t.flags[job.prev_token] & BOUNDARY)
    with atomic_output(job.dst) as f:
        f.write(shard_header(0))  # placeholder until the output count is known
        for tokens in iter_shard_chunks(job.src):
            if tokens.max() >= t.vocab_size:
                pos = int(np.argmax(tokens >= t.vocab_size))
                raise ConversionError(f"{job.src}: token id {tokens[pos]} at position {stats['source_tokens'] + pos} "
                                      f"is >= the tokenizer's vocab size {t.vocab_size}")
            out, baseline, prev_is_boundary = emit_chunk(t, tokens, prev_is_boundary)
            f.write(out.tobytes())
            stats["documents"] += int(np.count_nonzero(tokens == t.bos_id))
            stats["unk"] += int(np.count_nonzero(tokens == t.unk_id))
            stats["source_tokens"] += tokens.size
            stats["output_ids"] += out.size
            stats["baseline_bytes"] += baseline
            if t.layout == "byte260":
                out_bos += int(np.count_nonzero(out == BOS_ID))
                out_unk += int(np.count_nonzero(out == UNK_ID))
                stats["bytes"] += out.size - int(np.count_nonzero(out < BYTE_OFFSET))
            else:
                stats["bytes"] += out.size
        if stats["bytes"] != stats["baseline_bytes"]:
            raise ConversionError(f"{job.src}: wrote {stats['bytes']} bytes but the baseline formula counts {stats['baseline_bytes']}")
        if t.layout == "byte260" and (out_bos, out_unk) != (stats["documents"], stats["unk"]):
            raise ConversionError(f"{job.src}: wrote {out_bos} BOS / {out_unk} UNK for {stats['documents']} documents / {stats['unk']} <unk>")
        f.seek(0)
        f.write(shard_header(stats["output_ids"]))
    return stats


# ---- SIDECAR ----
def split_of(name: str) -> str:
    return "val" if name.startswith("fineweb_val_") else "train"


def build_sidecar(layout: str, source: dict, entries: dict[str, dict]) -> dict:
    splits = {}
    for split in SPLITS:
        shards = {name: entries[name] for name in sorted(entries) if split_of(name) == split}
        totals = {k: sum(e[k] for e in shards.values()) for k in STAT_KEYS}
        splits[split] = {"shards": shards, "totals": totals}
    return {"format_version": 1, "layout": layout, "vocab_size": LAYOUT_VOCAB[layout], "source": source, "splits": splits}


def write_sidecar(dst: Path, sidecar: dict) -> None:
    with atomic_output(dst / SIDECAR_NAME) as f:
        f.write((json.dumps(sidecar, indent=1, sort_keys=True) + "\n").encode())


def load_sidecar(directory: Path) -> dict | None:
    path = directory / SIDECAR_NAME
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (ValueError, OSError) as e:
        raise ConversionError(f"{path}: unreadable sidecar ({e})") from None


def reusable_entries(dst: Path, layout: str, source: dict) -> dict[str, dict]:
    """Entries of a previous run into dst whose output file is complete; refuse a different conversion."""
    old = load_sidecar(dst)
    if old is None:
        return {}
    if old.get("layout") != layout or old.get("source") != source:
        raise ConversionError(f"{dst / SIDECAR_NAME}: written by a different conversion "
                              f"({old.get('layout')}, {old.get('source')}); use another --dst")
    entries = {name: e for split in old["splits"].values() for name, e in split["shards"].items()}
    return {name: e for name, e in entries.items() if output_complete(dst / name, e)}


def output_complete(path: Path, entry: dict) -> bool:
    """Cheap completeness check: the file exists with exactly the size its sidecar entry implies."""
    return path.is_file() and path.stat().st_size == HEADER_BYTES + 2 * entry["output_ids"]


# ---- DRIVERS ----
def list_source_shards(src: Path) -> list[Path]:
    if not src.is_dir():
        raise ConversionError(f"{src}: --src is not a directory")
    val = sorted(src.glob("fineweb_val_*.bin"))
    train = sorted(src.glob("fineweb_train_*.bin"))
    if not val and not train:
        raise ConversionError(f"{src}: no fineweb_train_*.bin or fineweb_val_*.bin shards")
    if not val:
        raise ConversionError(f"{src}: no fineweb_val_*.bin shard")
    return train + val


def progress_bar(total: int, unit: str, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, unit_scale=True, disable=quiet or not sys.stderr.isatty())


def convert_sp_shards(src: Path, dst: Path, tokenizer: Path, layout: str, workers: int, quiet: bool) -> str:
    if src.resolve() == dst.resolve():
        raise ConversionError(f"{dst}: --dst must differ from --src")
    shards = list_source_shards(src)
    counts = {p: read_header(p) for p in shards}
    sp = load_tokenizer(tokenizer)
    tables = build_tables(sp, layout, tokenizer)
    source = {"kind": "sp_shards", "tokenizer_file": tokenizer.name,
              "tokenizer_sha256": hashlib.sha256(tokenizer.read_bytes()).hexdigest(),
              "tokenizer_vocab_size": tables.vocab_size}
    dst.mkdir(parents=True, exist_ok=True)
    with no_partials_left(dst):
        entries = reusable_entries(dst, layout, source)
        jobs, prev = [], {}
        for path in shards:  # each split is one stream: a shard's predecessor is the last token before it
            prev_token = prev.get(split_of(path.name))
            done = entries.get(path.name)
            if done is None or done["source_tokens"] != counts[path]:
                jobs.append(ShardJob(path, dst / path.name, prev_token, tables))
            if counts[path]:
                last = int(np.fromfile(path, "<u2", count=1, offset=HEADER_BYTES + 2 * (counts[path] - 1))[0])
                if last >= tables.vocab_size:
                    raise ConversionError(f"{path}: last token id {last} is >= the tokenizer's vocab size {tables.vocab_size}")
                prev[split_of(path.name)] = last
        bar = progress_bar(sum(counts[j.src] for j in jobs), "tok", quiet)
        with closing(run_jobs(jobs, workers)) as results:  # closing stops the pool before partials are swept
            for job, stats in zip(jobs, results):
                entries[job.dst.name] = stats
                write_sidecar(dst, build_sidecar(layout, source, entries))
                bar.update(stats["source_tokens"])
                bar.set_postfix_str(f"shard {job.dst.name}")
        bar.close()
    return f"converted {len(jobs)} of {len(shards)} shards ({len(shards) - len(jobs)} already complete) into {dst}"


def run_jobs(jobs: list[ShardJob], workers: int):
    """Results in job order; shards are independent, so a pool may run them in parallel."""
    if workers <= 1 or len(jobs) <= 1:
        yield from map(convert_shard, jobs)
        return
    import multiprocessing

    with multiprocessing.Pool(min(workers, len(jobs))) as pool:
        yield from pool.imap(convert_shard, jobs)


def iter_docs(path: Path):
    """Each document's raw UTF-8 bytes (official docs_selected.jsonl: one {"text": ...} per line)."""
    with open(path, "rb") as f:
        for line_no, line in enumerate(f, 1):
            try:
                text = json.loads(line)["text"]
                if not isinstance(text, str):
                    raise TypeError("'text' is not a string")
            except (ValueError, KeyError, TypeError) as e:
                raise ConversionError(f"{path}:{line_no}: malformed JSONL line ({type(e).__name__}: {e})") from None
            yield text.encode("utf-8", errors="replace")  # as the official pure-byte exporter does


def docs_to_ids(docs: list[bytes]) -> np.ndarray:
    """BOS then byte+4 for every document, end to end."""
    lengths = np.fromiter(map(len, docs), np.intp, len(docs)) + 1
    ids = np.empty(int(lengths.sum()), "<u2")
    is_bos = np.zeros(ids.size, bool)
    is_bos[np.cumsum(lengths) - lengths] = True
    ids[is_bos] = BOS_ID
    ids[~is_bos] = np.frombuffer(b"".join(docs), np.uint8) + BYTE_OFFSET
    return ids


def convert_docs(docs_path: Path, dst: Path, val_docs: int, shard_size: int, quiet: bool) -> str:
    if not docs_path.is_file():
        raise ConversionError(f"{docs_path}: documents file not found")
    source = {"kind": "docs", "tokenizer_file": None, "tokenizer_sha256": None,
              "docs_file": docs_path.name, "docs_bytes": docs_path.stat().st_size,
              "val_docs": val_docs, "shard_size": shard_size}
    dst.mkdir(parents=True, exist_ok=True)
    with no_partials_left(dst):
        entries = reusable_entries(dst, "byte260", source)
        written: dict[str, dict] = {}
        shard_index = {"train": 0, "val": 0}
        pending: list[np.ndarray] = []

        def add(split: str, ids: np.ndarray, final: bool) -> None:
            """Queue ids; write every full shard, and the remainder too when the split ends."""
            pending.append(ids)
            size = sum(p.size for p in pending)
            while size >= shard_size or (final and size):
                buf = np.concatenate(pending)
                pending[:] = [buf[shard_size:]]
                size = pending[0].size
                write_docs_shard(dst, f"fineweb_{split}_{shard_index[split]:06d}.bin", buf[:shard_size], entries, written)
                write_sidecar(dst, build_sidecar("byte260", source, written))
                shard_index[split] += 1

        bar = progress_bar(source["docs_bytes"], "B", quiet)
        split, batch, n_docs = "val", [], 0
        for doc in iter_docs(docs_path):
            doc_split = "val" if n_docs < val_docs else "train"
            if doc_split != split or len(batch) >= DOCS_PER_BATCH:
                add(split, docs_to_ids(batch), final=doc_split != split)
                bar.update(sum(map(len, batch)))
                split, batch = doc_split, []
            batch.append(doc)
            n_docs += 1
        add(split, docs_to_ids(batch), final=True)
        bar.close()
        if shard_index["val"] == 0:
            raise ConversionError(f"{docs_path}: no documents, so no val shard")
    return f"wrote {n_docs} documents into {shard_index['val']} val and {shard_index['train']} train shards in {dst}"


def write_docs_shard(dst: Path, name: str, ids: np.ndarray, entries: dict, written: dict) -> None:
    """Write one docs shard unless an earlier run already completed it (the output is deterministic)."""
    entry = entries.get(name)
    if entry is None or entry["output_ids"] != ids.size:
        documents = int(np.count_nonzero(ids == BOS_ID))
        n_bytes = ids.size - documents
        entry = {"documents": documents, "source_tokens": n_bytes, "output_ids": ids.size,
                 "bytes": n_bytes, "baseline_bytes": n_bytes, "unk": 0}
        write_shard(dst / name, ids)
    written[name] = entry


def verify_dir(directory: Path) -> str:
    """Re-read every shard and check it against the sidecar; return a one-line summary."""
    sidecar = load_sidecar(directory)
    if sidecar is None:
        raise ConversionError(f"{directory / SIDECAR_NAME}: sidecar not found")
    layout = sidecar["layout"]
    vocab = LAYOUT_VOCAB[layout]
    on_disk = {p.name for p in directory.glob("fineweb_*_*.bin")}
    parts = []
    for split in SPLITS:
        entries = sidecar["splits"][split]["shards"]
        for name in sorted(on_disk - set(entries)):
            if split_of(name) == split:
                raise ConversionError(f"{directory / name}: shard has no sidecar entry")
        for name, entry in entries.items():
            path = directory / name
            if not path.exists():
                raise ConversionError(f"{path}: listed in the sidecar but missing")
            counts = np.zeros(vocab, np.int64)
            for ids in iter_shard_chunks(path):
                if ids.max() >= vocab:
                    raise ConversionError(f"{path}: id {int(ids.max())} is out of range for {layout}")
                counts += np.bincount(ids, minlength=vocab)
            found = {"output_ids": int(counts.sum()), "bytes": int(counts.sum())}
            if layout == "byte260":
                found |= {"documents": int(counts[BOS_ID]), "unk": int(counts[UNK_ID]), "bytes": int(counts[BYTE_OFFSET:].sum())}
                if counts[0] or counts[2]:
                    raise ConversionError(f"{path}: contains unused ids 0 or 2")
            for key, value in found.items():
                if entry[key] != value:
                    raise ConversionError(f"{path}: {key} is {value} but the sidecar says {entry[key]}")
        totals = sidecar["splits"][split]["totals"]
        if any(totals[k] != sum(e[k] for e in entries.values()) for k in STAT_KEYS):
            raise ConversionError(f"{directory / SIDECAR_NAME}: {split} totals do not match its shards")
        parts.append(f"{split} {len(entries)} shards {totals['bytes']:,} bytes")
    if not sidecar["splits"]["val"]["shards"]:
        raise ConversionError(f"{directory}: no val shard")
    return f"OK {directory}: {layout}, " + ", ".join(parts)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--src", type=Path, help="directory of fineweb_{train,val}_*.bin SentencePiece shards")
    p.add_argument("--dst", type=Path, help="output directory for byte shards and conversion.json")
    p.add_argument("--tokenizer", type=Path, help="the SentencePiece .model the source shards were made with")
    p.add_argument("--layout", choices=sorted(LAYOUT_VOCAB), default="byte260")
    p.add_argument("--workers", type=int, default=1, help="shards converted in parallel")
    p.add_argument("--from-docs", type=Path, help="docs_selected.jsonl to write byte260 shards from directly")
    p.add_argument("--val-docs", type=int, default=50_000, help="with --from-docs: first N documents go to val")
    p.add_argument("--shard-size", type=int, default=100_000_000, help="with --from-docs: ids per shard")
    p.add_argument("--verify", type=Path, metavar="DIR", help="check an output directory against its sidecar")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.verify is None and args.dst is None:
        p.error("--dst is required (unless --verify)")
    if args.verify is None and args.from_docs is None and (args.src is None or args.tokenizer is None):
        p.error("--src and --tokenizer are required (unless --from-docs or --verify)")
    if args.from_docs is not None and args.layout != "byte260":
        p.error("--from-docs writes byte260 only")
    if args.shard_size <= 0 or args.val_docs < 0:
        p.error("--shard-size must be positive and --val-docs non-negative")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    try:
        if args.verify is not None:
            summary = verify_dir(args.verify)
        elif args.from_docs is not None:
            summary = convert_docs(args.from_docs, args.dst, args.val_docs, args.shard_size, args.quiet)
        else:
            summary = convert_sp_shards(args.src, args.dst, args.tokenizer, args.layout, args.workers, args.quiet)
    except ConversionError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(summary)


if __name__ == "__main__":
    main()
