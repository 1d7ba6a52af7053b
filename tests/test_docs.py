"""The README stays true: its knob block is exactly `--help`, CI runs the README's test command, and that
command installs torch before requirements.txt."""
import re
import shutil
import subprocess

import pytest

from helpers import REPO

from readme_knobs import END, START, help_output


def test_readme_knob_block_is_the_help_output():
    readme = (REPO / "README.md").read_text()
    assert START + help_output() + END in readme, "README knobs differ from --help: run python scripts/readme_knobs.py"


def test_ci_runs_the_readme_test_command():
    readme, ci = (REPO / "README.md").read_text(), (REPO / ".ci" / "run").read_text()
    assert "make test" in readme and "python -m pytest -q" in readme  # the manual route stays documented
    assert re.search(r"^make test$", ci, re.MULTILINE)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_test_installs_torch_then_requirements_then_runs_the_suite():
    """`make -n -B` prints every recipe line that a fresh clone would run, and runs none of them."""
    plan = subprocess.run(["make", "-n", "-B", "test"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    steps = ["-m venv .venv", '--no-index --no-deps "torch==', '--index-url https://download.pytorch.org/whl/cpu "torch==',
             "-m pip install --quiet -r requirements.txt", "-r requirements-dev.txt", ".venv/bin/python -m pytest -q"]
    positions = [plan.find(step) for step in steps]
    assert -1 not in positions and positions == sorted(positions), plan
    assert plan.count("torch==") == 2 and "--extra-index-url" not in plan  # torch never comes from PyPI's index
