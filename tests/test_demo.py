"""The README's one-command demo runs end to end (data build, training, eval, export, round trip)."""
import os
import re
import subprocess
import sys

import pytest

from helpers import REPO, final_summary


@pytest.mark.slow
def test_demo_command_runs(tmp_path):
    env = {**os.environ, "MAX_WALLCLOCK_SECONDS": "5", "LOG_DIR": str(tmp_path / "logs"), "RUN_ID": "demo_test"}
    proc = subprocess.run([sys.executable, str(REPO / "demo.py"), "--root", str(tmp_path / "demo")], env=env,
                          capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert re.search(r"demo finished \(exit 0\)\n  log: +.*demo_test\.txt\n  artifact: +.*demo_test\.int6\.ptz", proc.stdout)
    summary = final_summary(tmp_path / "logs", "demo_test")
    assert summary["under_cap"] and summary["post_quant"]["sliding_scored_targets"] == summary["post_quant"]["sliding_targets"]
    assert summary["config"]["MODEL_DIM"] == 128  # the demo's small model, not the 8xH100 default
