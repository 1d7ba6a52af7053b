"""The packed record script (submission.py --pack) behaves exactly like train_byte_model.py, counts its own
bytes as the code bytes, logs the readable source, and stays small."""
import subprocess
import sys

import pytest

from helpers import REPO, TINY_ENV, TRAINER, final_summary, log_lines, make_byte_dataset, run_trainer

# The counted record script's budget: issue #9's 30,000 bytes, raised to 36,000 when the GPU-path fixes, the cap fit's
# hooks, other scripts' knob names and the memory check (issues 17-19) took it to 34,101: 0.04 % of the cap.
PACKED_LIMIT = 36_000


def pack(out, *sources) -> bytes:
    proc = subprocess.run([sys.executable, str(REPO / "submission.py"), "--pack", str(out), *map(str, sources)],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    return out.read_bytes()


def test_packed_trainer_is_small_and_prints_the_same_help(tmp_path):
    packed = pack(tmp_path / "record.py")
    assert len(packed) <= PACKED_LIMIT, f"packed record script is {len(packed):,} bytes"
    help_of = lambda script: subprocess.run([sys.executable, str(script), "--help"], capture_output=True,  # noqa: E731
                                            text=True, check=True).stdout
    assert help_of(tmp_path / "record.py") == help_of(TRAINER)


def test_pack_refuses_a_first_source_that_is_not_the_trainer(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "submission.py"), "--pack", str(tmp_path / "x.py"),
                           str(REPO / "eval_time.py")], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and proc.stderr.startswith("error: --pack: the first source must be train_byte_model.py")
    assert not (tmp_path / "x.py").exists()


@pytest.mark.slow
@pytest.mark.parametrize("methods", [{}, {"PPM_ORDER": "3"}])
def test_packed_script_trains_to_the_same_score(tmp_path, methods):
    """Same data, same knobs: the same BPB; the packed file's bytes are the code bytes, the log opens with
    the readable trainer source and states both sizes. With PPM on, eval_time.py rides in the pack."""
    data = make_byte_dataset(tmp_path / "data", train_bytes=20_000, val_bytes=1_500)
    sources = [TRAINER] + ([REPO / "eval_time.py"] if methods else [])
    record = tmp_path / "record.py"
    packed = pack(record, *sources)
    env = {**TINY_ENV, "DATA_PATH": str(data), "ITERATIONS": "4", **methods}
    results = {}
    for name, script in (("source", TRAINER), ("packed", record)):
        proc = run_trainer({**env, "RUN_ID": name}, tmp_path / "logs", script=script)
        assert proc.returncode == 0, proc.stderr[-3000:]
        results[name] = final_summary(tmp_path / "logs", name)
    assert results["packed"]["post_quant"]["score_bpb"] == results["source"]["post_quant"]["score_bpb"]
    assert results["packed"]["code_bytes"] == len(packed)
    assert results["source"]["code_bytes"] == sum(path.stat().st_size for path in sources)
    assert results["packed"]["code_sha256"] == results["source"]["code_sha256"]  # submission.py pairs their logs
    text = (tmp_path / "logs" / "packed.txt").read_text()
    assert text.startswith(TRAINER.read_text())
    artifact_line = next(line for line in log_lines(tmp_path / "logs", "packed") if line.startswith("artifact:"))
    assert f"code_bytes:{len(packed)} (record.py {len(packed)}; packed from train_byte_model.py" in artifact_line
