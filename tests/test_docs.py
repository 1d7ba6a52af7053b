"""The docs stay true: README.md stays a short front door whose links resolve, docs/knobs.md's knob block is exactly
`--help`, the commands they show name real files and real options, "Try an idea" names only what exists, the recipe
table and the frontier_next list match RECIPES, and CI runs the README's test command, which installs torch before
requirements.txt."""
import functools
import importlib
import inspect
import re
import shlex
import shutil
import subprocess
import sys

import pytest

import train_byte_model as tbm
from helpers import REPO

from readme_knobs import END, KNOBS_DOC, START, help_output

README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
MAX_README_WORDS = 1500
EXTERNAL_SCRIPTS = {"data/cached_challenge_fineweb.py"}  # openai/parameter-golf's, run in its clone


def prose_and_code(text: str) -> tuple[str, list[str]]:
    """(the text outside fenced code blocks, each code block's lines joined at trailing backslashes)."""
    prose, blocks, parts = [], [], re.split(r"^```[^\n]*\n", text, flags=re.M)
    for i, part in enumerate(parts):
        (blocks if i % 2 else prose).append(part)
    return "".join(prose), [block.replace("\\\n", " ") for block in blocks]


def section(text: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"no section '## {title}'"
    return match.group(1)


def heading_anchors(path) -> set[str]:
    """GitHub's anchors of a markdown file's headings: lower case, punctuation dropped, spaces to hyphens."""
    prose, _ = prose_and_code(path.read_text())
    titles = re.findall(r"^#{1,6} (.+)$", prose, re.M)
    return {re.sub(r"[^\w\- ]", "", title.replace("`", "").strip().lower()).replace(" ", "-") for title in titles}


def local_links(path) -> list[tuple[str, str]]:
    """(target file, anchor) of every relative markdown link outside code blocks."""
    prose, _ = prose_and_code(path.read_text())
    targets = re.findall(r"\]\(([^)\s]+)\)", prose)
    return [tuple(t.split("#", 1)) if "#" in t else (t, "") for t in targets if not re.match(r"[a-z]+:", t)]


def commands(text: str) -> list[str]:
    """Every command of a text: inline code spans and code-block lines."""
    prose, blocks = prose_and_code(text)
    return re.findall(r"`([^`\n]+)`", prose) + [line for block in blocks for line in block.splitlines()]


@functools.cache
def options_of(script: str) -> str:
    """The --help text of one of this repository's argparse scripts."""
    return subprocess.run([sys.executable, str(REPO / script), "--help"], capture_output=True, text=True,
                          check=True, cwd=REPO).stdout


def has_option(script: str, flag: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", options_of(script)) is not None


def script_calls(text: str) -> list[tuple[str, list[str]]]:
    """(script, its --flags) for each `python SCRIPT.py ...` or `bash SCRIPT.sh ...` in a text."""
    calls = []
    for command in commands(text):
        for match in re.finditer(r"(?:python3?|bash) ([\w./-]+\.(?:py|sh))([^|;&#]*)", command):
            flags = re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", match.group(2))
            calls.append((match.group(1), [flag for flag in flags if flag != "--help"]))  # every script has --help
    return calls


def test_knob_block_is_the_help_output():
    assert START + help_output() + END in KNOBS_DOC.read_text(), \
        "docs/knobs.md differs from --help: run python scripts/readme_knobs.py"


def test_readme_is_a_short_front_door():
    words = len(README.read_text().split())  # as `wc -w` counts
    assert words <= MAX_README_WORDS, f"README.md has {words} words; move detail to docs/ (at most {MAX_README_WORDS})"


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda p: p.name)
def test_local_links_resolve(path):
    """Every relative link goes to a file that exists and, with an anchor, to one of its headings."""
    broken = []
    for target, anchor in local_links(path):
        file = (path.parent / target).resolve() if target else path
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in heading_anchors(file):
            broken.append(f"{target}#{anchor}: no such heading")
    assert not broken, broken


def test_readme_links_every_page_of_docs():
    linked = {(README.parent / target).resolve() for target, _ in local_links(README)}
    assert not [doc.name for doc in DOCS if doc not in linked]


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda p: p.name)
def test_commands_run_files_that_exist_with_options_they_have(path):
    wrong = []
    for script, flags in script_calls(path.read_text()):
        if script in EXTERNAL_SCRIPTS:
            continue
        if not (REPO / script).is_file():
            wrong.append(f"{script}: no such file")
        elif flags and "argparse" in (REPO / script).read_text():
            wrong += [f"{script} {flag}" for flag in flags if not has_option(script, flag)]
        elif flags:
            wrong.append(f"{script} takes no options: {flags}")
    assert not wrong, wrong


def test_try_an_idea_names_only_what_exists():
    """The section's Python names exist in train_byte_model (an optional module's own, in the example module it
    names), its files exist, its knob override is a real knob with a valid value, and its benchmark command parses
    with scripts/bench_recipes.py's own parser and options."""
    import bench_recipes

    text = section(README.read_text(), "Try an idea")
    spans = re.findall(r"`([^`\n]+)`", prose_and_code(text)[0])
    example = importlib.import_module(re.search(r"`(\w+)\.py` is an example", text).group(1))
    names = [re.sub(r"\(.*\)$", "", s) for s in spans if re.fullmatch(r"[A-Za-z_][\w.]*(\(.*\))?", s)]
    assert {"KNOBS", "KNOB_CHOICES", "KNOB_MINIMUMS", "Hyperparameters.validate", "optional_module",
            "code_files"} <= set(names) and {"ModelConfig", "MODEL_KNOBS"} & set(names), names
    for name in names:
        if name in ("train_byte_model", "sys.modules") or name.endswith(".py"):
            continue
        obj = tbm if hasattr(tbm, name.split(".")[0]) else example  # an optional module's own names: the example's
        for part in name.split("."):
            assert hasattr(obj, part), f"`{name}`: not in train_byte_model nor in {example.__name__}"
            obj = getattr(obj, part)
    assert "optional_module(" in inspect.getsource(tbm.Hyperparameters.validate)  # "the list that ends" it
    files = [s for s in spans if re.fullmatch(r"[\w./-]+\.(py|md|txt|sh)", s)] + re.findall(r"\]\(([^)#]+)", text)
    assert files and all((REPO / f).exists() for f in files), files

    overrides = re.findall(r"`([A-Z][A-Z0-9_]*)=(\S+) (?:python demo\.py|torchrun [^`]*train_byte_model\.py)`", text)
    assert overrides
    for knob, value in overrides:
        assert knob in tbm.KNOB_NAMES and getattr(tbm.Hyperparameters({knob: value}), knob.lower()) == float(value)

    bench = [c for c in commands(text) if c.startswith("python scripts/bench_recipes.py")]
    assert len(bench) == 1
    argv = shlex.split(bench[0])[2:]
    flags = [a for a in argv if a.startswith("--")] + re.findall(r"`(--[a-z-]+)", text)
    assert {"--recipes", "--variants"} <= set(flags), flags
    assert all(has_option("scripts/bench_recipes.py", flag) for flag in flags), flags
    recipes = argv[argv.index("--recipes") + 1: next(i for i, a in enumerate(argv) if a == "--variants")]
    assert recipes and set(recipes) <= set(bench_recipes.RECIPES) <= set(tbm.RECIPES)
    variants = argv[argv.index("--variants") + 1:][: next(
        (i for i, a in enumerate(argv[argv.index("--variants") + 1:]) if a.startswith("--")), None)]
    for variant in variants:
        name, (base, changes) = bench_recipes.parse_variant(variant, recipes[0])
        assert name and base == recipes[0] and changes and all(re.fullmatch(r"[A-Z][A-Z0-9_]*", k) for k in changes)


def test_readme_recipe_table_is_the_recipes_with_their_parameter_counts():
    rows = re.findall(r"^\| `(\w+)`[^|]*\|[^|]*\| ([\d,]+) \|$", section(README.read_text(), "Recipes"), re.M)
    assert [name for name, _ in rows] == ["frontier", "frontier_next", "pr832", "pr705"]
    assert set(tbm.RECIPES) == {name for name, _ in rows}
    for name, count in rows:
        with tbm.torch.device("meta"):  # shapes only: no memory, no initialization
            model = tbm.build_model(tbm.model_config(tbm.Hyperparameters({"RECIPE": name}), 260))
        assert sum(p.numel() for p in model.parameters()) == int(count.replace(",", "")), name


def test_readme_figures_of_the_demo_and_the_full_run_are_the_codes():
    import demo

    text = README.read_text()
    shape = re.search(r"width (\d+), (\d+) layers, context (\d+), ([\d,]+) parameters\) for a fixed (\d+) steps", text)
    knobs = tbm.Hyperparameters(demo.DEMO_KNOBS)
    with tbm.torch.device("meta"):
        params = sum(p.numel() for p in tbm.build_model(tbm.model_config(knobs, 260)).parameters())
    assert shape and [int(g.replace(",", "")) for g in shape.groups()] == [
        knobs.model_dim, knobs.num_layers, knobs.train_seq_len, params, demo.DEMO_STEPS]
    full = re.search(r"`score: X BPB \(post-quant sliding window on all of val, N targets, "
                     r"stride (\d+), context (\d+)\)", text)
    default = tbm.Hyperparameters({})
    assert full and [int(g) for g in full.groups()] == [default.val_sliding_stride, default.train_seq_len]


def test_frontier_next_doc_lists_exactly_its_recipe():
    """One bullet per part, opening with its `KNOB=VALUE` (several for one part); together exactly the recipe's."""
    text = section((REPO / "docs" / "recipes.md").read_text(), "frontier_next")
    openings = [re.match(r"- ((?:`[A-Z][A-Z0-9_]*=[^`\s]+`(?:, )?)+)", line) for line in text.splitlines()]
    pairs = [pair for m in openings if m for pair in re.findall(r"`([A-Z][A-Z0-9_]*)=([^`\s]+)`", m.group(1))]
    assert len(pairs) == len(tbm.RECIPES["frontier_next"]), pairs
    defaults = {name: default for name, default, _ in tbm.KNOBS}
    assert {k: tbm.parse_knob(k, defaults[k], v) for k, v in pairs} == tbm.RECIPES["frontier_next"]


def test_ci_runs_the_readme_test_command():
    readme, ci = README.read_text(), (REPO / ".ci" / "run").read_text()
    assert "make test" in readme and "python -m pytest -q" in readme
    assert re.search(r"^make test$", ci, re.MULTILINE)
    manual = (REPO / "docs" / "install.md").read_text()  # the manual route stays documented, torch first
    steps = ["--index-url https://download.pytorch.org/whl/cpu", "pip install -r requirements.txt",
             "pip install -r requirements-dev.txt", "python -m pytest -q"]
    positions = [manual.find(step) for step in steps]
    assert -1 not in positions and positions == sorted(positions), positions


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_test_installs_torch_then_requirements_then_runs_the_suite():
    """`make -n -B` prints every recipe line that a fresh clone would run, and runs none of them."""
    plan = subprocess.run(["make", "-n", "-B", "test"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    steps = ["-m venv .venv", '--no-index --no-deps "torch==', '--index-url https://download.pytorch.org/whl/cpu "torch==',
             "-m pip install --quiet -r requirements.txt", "-r requirements-dev.txt", ".venv/bin/python -m pytest -q"]
    positions = [plan.find(step) for step in steps]
    assert -1 not in positions and positions == sorted(positions), plan
    assert plan.count("torch==") == 2 and "--extra-index-url" not in plan  # torch never comes from PyPI's index
