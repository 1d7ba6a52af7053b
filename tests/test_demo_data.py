"""demo_data.py: the no-download demo dataset builds, verifies, and is reused on a second run."""
from __future__ import annotations

import json

import pytest

import convert_to_bytes as ctb
from demo_data import build_demo_data


@pytest.mark.slow
def test_build_verify_and_reuse(tmp_path, capsys):
    root = tmp_path / "demo"
    bytes_dir = build_demo_data(root)
    assert bytes_dir == root / "bytes"
    assert (root / "tokenizer" / "demo_1024_bpe.model").is_file()
    sp_shards = sorted(p.name for p in (root / "sp1024").glob("*.bin"))
    assert sp_shards == ["fineweb_train_000000.bin", "fineweb_train_000001.bin", "fineweb_val_000000.bin"]
    assert sorted(p.name for p in bytes_dir.glob("*.bin")) == sp_shards
    assert ctb.verify_dir(bytes_dir).startswith("OK ")
    sidecar = json.loads((bytes_dir / "conversion.json").read_text())
    assert sidecar["layout"] == "byte260" and sidecar["source"]["tokenizer_file"] == "demo_1024_bpe.model"
    assert sidecar["splits"]["train"]["totals"]["bytes"] > 2_000_000  # a few MB of text, as intended

    files = [p for p in root.rglob("*") if p.is_file()]
    mtimes = {p: p.stat().st_mtime_ns for p in files}
    capsys.readouterr()
    assert build_demo_data(root) == bytes_dir
    assert "0 of 3 shards" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in files} == mtimes
    assert sorted(p for p in root.rglob("*") if p.is_file()) == sorted(files)
