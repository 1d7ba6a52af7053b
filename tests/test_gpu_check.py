"""scripts/gpu_check.sh and gpu_check.py, the unattended GPU check: its arithmetic against figures written
out here, and whole runs with a tiny CPU model (--smoke, GPU_CHECK_SMOKE=1) through the same trainer
log parsing as on the GPU."""

import os
import shutil
import subprocess
import sys

import pytest

import gpu_check
from helpers import REPO


def test_step_time_leaves_out_the_first_fifth_of_the_steps():
    """The first logged steps still pay for compilation: 50 steps are timed from step 10 on."""
    assert gpu_check.step_ms({1: 900.0, 2: 1000.0, 10: 1800.0, 20: 2800.0, 50: 5800.0}) == (100.0, 10, 50)
    assert gpu_check.step_ms({1: 300.0, 2: 500.0, 3: 700.0, 4: 900.0}) == (225.0, 0, 4)  # --smoke: all 4


def test_flops_per_token_of_the_default_recipe_written_out():
    d, kv, hidden, layers, latent, seq, vocab = 512, 256, 1024, 13, 256, 4096, 260
    block = 2 * d * d + 2 * d * kv + 2 * d * hidden  # q, out; k, v; MLP in and out
    jepa = d * latent + 3 * latent * latent + latent * d  # projector (2), predictor (2), injection: once per 8 bytes
    matrices = layers * block + 32 * d + jepa  # + the bigram projection
    flops, counted, _ = gpu_check.model_figures(gpu_check.CHECK_KNOBS)
    assert counted == matrices
    assert flops == pytest.approx(6 * (layers * block + 32 * d + jepa / 8 + d * vocab) + 6 * layers * seq * d)


@pytest.mark.slow
def test_smoke_check_prints_the_whole_table(tmp_path):
    command = [sys.executable, str(REPO / "scripts" / "gpu_check.py"), "--smoke", "--out", str(tmp_path / "out"),
               "--work", str(tmp_path / "work")]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    table = (tmp_path / "out" / "gpu_check_table.md").read_text()
    assert table in proc.stdout
    for row in ("| versions | python ", "| attention kernel | sdpa (FA3 not installed) |", "| steps timed | 1..4 ",
                "| ms per step (8 micro-steps) | ", "| projected 8xH100 ms per step (step / 8 + all-reduce) | ",
                "| projected steps in 600 s on 8xH100 | ", "| sliding eval targets/s (stride 64) | ",
                "| projected full-val sliding eval on 8 GPUs | ", "| int6+zstd artifact bytes | ",
                "| val BPB pre -> post quant (sliding) | "):
        assert row in table, row


@pytest.mark.slow
def test_check_script_without_zstandard_says_what_to_carry_and_still_prints_the_timing_table(tmp_path):
    """The whole shell script as the GPU machine runs it, on a copy of the tree with no .whl/ and with
    zstandard hidden: it names the wheel to carry, the trainer trains and says why it cannot export,
    the table comes from the training part of the log, and the layer timing runs after it."""
    tree = tmp_path / "tree"
    for name in ("train_byte_model.py", "research_options.py", "convert_to_bytes.py", "scripts/gpu_check.sh",
                 "scripts/gpu_check.py", "scripts/gpu_layers.py", "scripts/gpu_wheels.txt"):
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, tree / name)
    hidden = tmp_path / "hide" / "zstandard"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('zstandard hidden by the test')\n")
    env = {**os.environ, "GPU_CHECK_SMOKE": "1", "PYTHONPATH": str(hidden.parent), "TMPDIR": str(tmp_path),
           "OMP_NUM_THREADS": "1", "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    proc = subprocess.run(["bash", str(tree / "scripts" / "gpu_check.sh"), str(tmp_path / "out")], env=env,
                          capture_output=True, text=True, timeout=900)
    out = proc.stdout
    assert proc.returncode == 1, out[-3000:] + proc.stderr[-2000:]
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert out.startswith(f"python {version}: ")
    assert f"zstandard: not installed and no wheel for Python {version} in .whl/ (run bash scripts/fetch_gpu_wheels.sh" in out
    assert "warning: the artifact needs the zstandard package (pip install zstandard); without it" in out
    assert "| ms per step (8 micro-steps) | " in out and "| sliding eval targets/s (stride 64) | " in out
    assert "| int6+zstd artifact bytes |" not in out
    assert ("gpu_check: the trainer exited 2; its log ends: 'error: the artifact needs the zstandard package "
            "(pip install zstandard)'") in out
    assert out.index("gpu_check: the trainer exited 2") < out.index("A    eager: ")  # layers after the table
    # OUT_DIR holds what comes back from a lent GPU: small files, the log among them; the weights stay behind.
    files = {p.name: p.stat().st_size for p in (tmp_path / "out").iterdir()}
    assert {"device.txt", "gpu_check_console.txt", "gpu_check.txt", "gpu_check_table.md", "layers.txt"} <= set(files)
    assert max(files.values()) < 1_000_000 and (tmp_path / "gpu_check_work" / "gpu_check.final.pt").is_file()
