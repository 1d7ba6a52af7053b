"""Shared fixtures: tiny SentencePiece models trained with the official Parameter Golf settings, and
official-format token shards made with them. Everything is built once per session, in seconds."""
from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import convert_to_bytes  # noqa: E402
from demo_data import train_tokenizer  # noqa: E402

REAL_SP1024_MODEL = REPO_ROOT.parent / "shared" / "fineweb_1024_bpe.model"
WORDS = ("the of and to in is that for it as with was on be by this are from at or an have not which "
         "model byte token data train value field shard count piece space file read write").split()
# Symbols the real sp1024 maps to <unk>, plus accents, currency and emoji so that a small vocabulary
# needs <unk> (no byte fallback) or byte pieces (byte fallback).
SNIPPETS = ["*bold*", "__init__", "a = b + c", "#tag", "{key}", "[x]", "<tag>", "~home", "x^2", "user@host",
            "café", "© 2024", "25°C", "€5", "naïve", "😀", "🚀 launch", "1234567", "back\\slash"]
RARE_CHARS = "ĀăĆčĐęĞīĲĶĹŀŁńŒřŚşŤůŸźŽƒǅȘ☃☂★♞♫⚡✈❄㊙中文字日本語한국어ДЖЗЛФЦШЭЮЯ🐍🎉🔥🍕🌍🦀🧪"


def make_documents(n_docs: int, seed: int) -> list[str]:
    """Deterministic English-ish documents with frequent symbols and occasional rare characters."""
    rng = random.Random(seed)
    docs = []
    for _ in range(n_docs):
        words = []
        for _ in range(rng.randint(5, 60)):
            r = rng.random()
            words.append(rng.choice(SNIPPETS) if r < 0.15 else rng.choice(RARE_CHARS) if r < 0.18 else rng.choice(WORDS))
            if rng.random() < 0.05:
                words.append(rng.choice([".\n", ",", ".\n\n", ":"]))
        docs.append(" ".join(words))
    return docs


@pytest.fixture(scope="session")
def tiny_documents() -> list[str]:
    """About 1,500 short documents (~250 KB) rich in ` * _ = # { } é © ° € and emoji."""
    return make_documents(1500, seed=1234)


@pytest.fixture(scope="session")
def tiny_sp_model(tmp_path_factory, tiny_documents) -> Path:
    """A 384-piece BPE with the official settings and no byte fallback, like the real sp1024: rare
    characters become <unk> (id 3)."""
    return train_tokenizer(tiny_documents, tmp_path_factory.mktemp("sp") / "tiny_384_bpe", vocab_size=384)


@pytest.fixture(scope="session")
def tiny_sp_model_byte_fallback(tmp_path_factory, tiny_documents) -> Path:
    """A 420-piece BPE with the official settings and byte fallback: rare characters become <0xNN> pieces."""
    return train_tokenizer(tiny_documents, tmp_path_factory.mktemp("sp") / "tiny_420_bpe_bf",
                           vocab_size=420, byte_fallback=True)


@pytest.fixture(scope="session", params=["no_byte_fallback", "byte_fallback"])
def any_tiny_sp_model(request) -> Path:
    """Each tiny model in turn."""
    name = "tiny_sp_model" if request.param == "no_byte_fallback" else "tiny_sp_model_byte_fallback"
    return request.getfixturevalue(name)


@pytest.fixture(scope="session")
def real_sp1024_model() -> Path:
    """The official fineweb_1024_bpe.model from ../shared (data only, never copied into the repo)."""
    if not REAL_SP1024_MODEL.is_file():
        pytest.skip(f"real sp1024 tokenizer not present at {REAL_SP1024_MODEL}")
    return REAL_SP1024_MODEL


def encode_documents(model: Path, docs: list[str]) -> list[list[int]]:
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=str(model)).encode(docs)


def write_sp_shards(directory: Path, doc_ids: list[list[int]], val_docs: int, shards_per_split: int = 2,
                    bos_id: int = 1) -> list[Path]:
    """Write official-format shards: BOS before each document; the first val_docs documents form the val
    stream, the rest the train stream; each stream is cut into shards_per_split shards of equal token
    count, mid-document, as the official exporter cuts at its shard size. Returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for split, docs in (("val", doc_ids[:val_docs]), ("train", doc_ids[val_docs:])):
        stream = np.array([t for ids in docs for t in (bos_id, *ids)], dtype=np.uint16)
        for i, part in enumerate(np.array_split(stream, shards_per_split)):
            paths.append(directory / f"fineweb_{split}_{i:06d}.bin")
            convert_to_bytes.write_shard(paths[-1], part)
    return paths


@pytest.fixture(scope="session")
def sp_shard_dir(tmp_path_factory, tiny_sp_model, tiny_documents) -> Path:
    """tiny_documents encoded with tiny_sp_model: 2 val shards (first 300 documents) and 2 train shards.
    Read-only for tests: copy it before changing anything."""
    directory = tmp_path_factory.mktemp("sp_shards")
    write_sp_shards(directory, encode_documents(tiny_sp_model, tiny_documents), val_docs=300)
    return directory
