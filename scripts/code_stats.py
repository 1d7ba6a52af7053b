#!/usr/bin/env python3
"""The code-size targets, measured: python scripts/code_stats.py [--shares N]

Prints a markdown table: lines and bytes of each source file, the trainer's longest function, the functions
over 50 lines, and the bytes of the packed record script (submission.py --pack) for the default run and for
a run with the evaluation-time methods. Targets: the trainer <= 1,800 lines (the project's standard) with no
function over 50 lines, the packed record script <= 36,000 bytes (issue #9's 30,000, raised by issues 17-19),
convert_to_bytes.py and submission.py <= 500 lines each (issue #9). --shares N adds the N top-level blocks of the
trainer that cost the packed script the most: its packed size less the packed size without that block.
"""
from __future__ import annotations

import argparse
import ast
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from submission import pack_record_script  # noqa: E402

SOURCES = ("train_byte_model.py", "eval_time.py", "research_options.py", "export_research.py", "run_modes.py",
           "convert_to_bytes.py", "submission.py")
MAX_FUNCTION_LINES = 50


def function_lengths(path: Path) -> list[tuple[int, str]]:
    """(lines, qualified name) of every function and method."""
    found = []

    def visit(node, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.append((child.end_lineno - child.lineno + 1, prefix + child.name))
                visit(child, prefix + child.name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")

    visit(ast.parse(path.read_text()), "")
    return sorted(found, reverse=True)


def packed_shares(path: Path, top: int) -> list[str]:
    """The `top` costliest top-level blocks of `path` in the packed script, each measured by leaving it out."""
    text = path.read_text()
    rows, source = [], text.splitlines(keepends=True)
    with tempfile.TemporaryDirectory() as tmp:
        def packed(code: str) -> int:
            (Path(tmp) / path.name).write_text(code)
            return len(pack_record_script([Path(tmp) / path.name]))

        whole = packed(text)
        for node in ast.parse(text).body:
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]) - 1
            name = getattr(node, "name", None) or ast.unparse(node).split("=")[0].strip()[:40]
            rows.append((whole - packed("".join(source[:first] + source[node.end_lineno:])), name))
    return ["", "| top-level block | packed bytes it costs |", "|---|---:|"] + [
        f"| `{name}` | {cost:,} |" for cost, name in sorted(rows, reverse=True)[:top]]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shares", type=int, default=0, help="list the trainer's N costliest top-level blocks")
    shares = p.parse_args().shares
    lines = ["| file | lines | bytes | longest function | functions over 50 lines |", "|---|---:|---:|---|---:|"]
    for name in SOURCES:
        path = REPO / name
        lengths = function_lengths(path)
        over = sum(n > MAX_FUNCTION_LINES for n, _ in lengths)
        lines.append(f"| `{name}` | {len(path.read_text().splitlines()):,} | {path.stat().st_size:,} | "
                     f"{lengths[0][1]} ({lengths[0][0]}) | {over} |")
    default = len(pack_record_script([REPO / "train_byte_model.py"]))
    methods = len(pack_record_script([REPO / "train_byte_model.py", REPO / "eval_time.py"]))
    lines += ["", f"packed record script (`python submission.py --pack record.py`): {default:,} bytes; "
              f"with eval_time.py: {methods:,} bytes"]
    lines += packed_shares(REPO / "train_byte_model.py", shares) if shares else []
    print("\n".join(lines))


if __name__ == "__main__":
    main()
