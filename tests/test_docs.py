"""The README stays true: every knob is documented and CI runs the README's test command."""
from helpers import REPO

import train_byte_model as tbm


def test_readme_names_every_knob():
    readme = (REPO / "README.md").read_text()
    missing = [name for name, _, _ in tbm.KNOBS if name not in readme]
    assert not missing, f"README.md does not mention {missing}"


def test_ci_runs_the_readme_test_command():
    readme, ci = (REPO / "README.md").read_text(), (REPO / ".ci" / "run").read_text()
    assert "python -m pytest -q" in readme and "python3 -m pytest -q" in ci
    assert "pip install --quiet torch==2.13.0" in ci and "-r requirements.txt" in ci
