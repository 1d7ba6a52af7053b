"""Shared fixtures: tiny SentencePiece models trained with the official Parameter Golf settings, and
official-format token shards made with them. Everything is built once per session, in seconds.
To write shards of your own: demo_data.encode_documents and demo_data.write_sp_shards."""
from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from demo_data import encode_documents, train_tokenizer, write_sp_shards  # noqa: E402

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


@pytest.fixture(scope="session")
def sp_shard_dir(tmp_path_factory, tiny_sp_model, tiny_documents) -> Path:
    """tiny_documents encoded with tiny_sp_model: 2 val shards (first 300 documents) and 2 train shards.
    Read-only for tests: copy it before changing anything."""
    directory = tmp_path_factory.mktemp("sp_shards")
    write_sp_shards(directory, encode_documents(tiny_sp_model, tiny_documents), val_docs=300, val_shards=2, train_shards=2)
    return directory
