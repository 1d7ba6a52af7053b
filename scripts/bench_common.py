"""What the benchmark scripts share: running the trainer as a user does, reading its log, printing a table."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOG_SEPARATOR = "=" * 100 + "\n"  # the trainer's log: its sources, then this line, then the run


def last_run(log_path: Path) -> tuple[dict, list[str]]:
    """(final summary, lines) of the last run in a trainer log; its model_params goes into the summary."""
    lines = log_path.read_text().split(LOG_SEPARATOR)[-1].splitlines()
    summary = json.loads(lines[-1].removeprefix("final_summary:"))
    summary["params"] = next(int(line.removeprefix("model_params:")) for line in lines if line.startswith("model_params:"))
    return summary, lines


def run_trainer(env: dict[str, str], log_dir: Path, run_id: str) -> tuple[dict, list[str]]:
    """Runs train_byte_model.py with these knobs over the environment's; (final summary, log lines)."""
    proc = subprocess.run([sys.executable, str(REPO / "train_byte_model.py")], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **env, "LOG_DIR": str(log_dir), "RUN_ID": run_id})
    if proc.returncode != 0:
        raise SystemExit(f"{run_id} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return last_run(log_dir / f"{run_id}.txt")


def emit(lines: list[str], out: Path | None) -> None:
    """Prints the table and, with --out, writes it there too."""
    table = "\n".join(lines)
    print(table)
    if out:
        out.write_text(table + "\n")
