"""The README stays true: its knob block is exactly `--help`, and CI runs the README's test command."""
from helpers import REPO

from readme_knobs import END, START, help_output


def test_readme_knob_block_is_the_help_output():
    readme = (REPO / "README.md").read_text()
    assert START + help_output() + END in readme, "README knobs differ from --help: run python scripts/readme_knobs.py"


def test_ci_runs_the_readme_test_command():
    readme, ci = (REPO / "README.md").read_text(), (REPO / ".ci" / "run").read_text()
    assert "python -m pytest -q" in readme and "python3 -m pytest -q" in ci
    assert "pip install --quiet torch==2.13.0" in ci and "-r requirements.txt" in ci
