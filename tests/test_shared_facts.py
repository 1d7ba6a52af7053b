"""Facts that several files state, pinned to one value: train_byte_model.py stays one standalone file, so
it restates the cap, the shard format, the byte260 ids and the summary line instead of importing them.
(The trainer's log lines are parsed from real runs in test_submission.py.)"""
import ast
import inspect
import re

import numpy as np

import convert_to_bytes as ctb
import helpers
import submission
import train_byte_model as tbm
from helpers import REPO

TRAINER_SOURCE = (REPO / "train_byte_model.py").read_text()
TOOLS = sorted(REPO.glob("*.py")) + sorted(REPO.glob("scripts/*.py"))  # not .venv/, whose packages say other things


def test_size_cap():
    assert tbm.SIZE_CAP_BYTES == submission.CAP_BYTES == 16_000_000


def test_no_tool_states_another_cap():
    """Any number near 16 MB in the tools and scripts is the cap itself (not 16 MiB = 16,777,216, say)."""
    near_cap = {(path.name, node.value) for path in TOOLS for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.Constant) and type(node.value) in (int, float) and 15e6 <= node.value <= 17e6}
    assert {name for name, _ in near_cap} >= {"train_byte_model.py", "submission.py"}
    assert {value for _, value in near_cap} == {tbm.SIZE_CAP_BYTES}, near_cap


def test_shard_format():
    trainer = (tbm.SHARD_MAGIC, tbm.SHARD_VERSION, tbm.SHARD_HEADER_INTS)
    assert trainer == (ctb.SHARD_MAGIC, ctb.SHARD_VERSION, ctb.HEADER_INTS) == (20240520, 1, 256)
    defaults = inspect.signature(helpers.write_shard).parameters
    assert (defaults["magic"].default, defaults["version"].default) == (tbm.SHARD_MAGIC, tbm.SHARD_VERSION)


def test_shard_writers_write_what_the_trainer_reads(tmp_path):
    ids = np.array([1, 4, 259, 65535, 0, 7], np.uint16)
    ctb.write_shard(tmp_path / "converter.bin", ids)
    helpers.write_shard(tmp_path / "helpers.bin", ids)
    data = (tmp_path / "converter.bin").read_bytes()
    assert data == (tmp_path / "helpers.bin").read_bytes()
    header = np.frombuffer(data[:4 * tbm.SHARD_HEADER_INTS], "<i4")  # the layout the trainer's constants describe
    assert header[:3].tolist() == [tbm.SHARD_MAGIC, tbm.SHARD_VERSION, ids.size] and not header[3:].any()
    assert np.frombuffer(data[4 * tbm.SHARD_HEADER_INTS:], "<u2").tolist() == ids.tolist()


def test_byte260_ids():
    assert tbm.BYTE260_FIRST_BYTE_ID == ctb.BYTE_OFFSET == 4 and tbm.BOS_ID == ctb.BOS_ID == 1
    assert helpers.byte260_documents(b"ab", 10).tolist() == [ctb.BOS_ID, ord("a") + 4, ord("b") + 4]
    assert f'"{ctb.SIDECAR_NAME}"' in TRAINER_SOURCE  # where the trainer looks for the layout


def test_summary_prefix():
    """submission.py and the tests find the summary by this prefix; the trainer writes it."""
    assert submission.SUMMARY_PREFIX == "final_summary:"
    assert f'"{submission.SUMMARY_PREFIX}"' in TRAINER_SOURCE
    # every string literal that starts with the word, in tools, scripts and tests, spells the prefix the same way
    files = TOOLS + sorted(REPO.glob("tests/*.py"))
    spellings = {m for path in files for m in re.findall(r"""["'](final_summary[^\w\s"'])""", path.read_text())}
    assert spellings == {submission.SUMMARY_PREFIX}
