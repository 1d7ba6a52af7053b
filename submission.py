#!/usr/bin/env python3
"""Several seeds' train_byte_model.py logs -> a Parameter Golf record: statistics (mean, 99% CI, one-sided
t-tests of the record rule per byte and per token), submission.json, a markdown results table and training
curves. Not part of the counted artifact. Usage, formulas and what it refuses: docs/submitting.md.

    python submission.py logs/run_seed*.txt --baseline 1.2244 --name "Byte model" --github-id me --out submission.json
"""
from __future__ import annotations

import argparse
import io
import json
import lzma
import math
import re
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from scipy import stats

from convert_to_bytes import atomic_output

LN2 = math.log(2)
CAP_BYTES = 16_000_000  # the challenge's cap: decimal bytes, code + compressed model
SUMMARY_PREFIX = "final_summary:"
SP1024_BYTES_PER_TOKEN = 2.44
CONFIDENCE = 0.99
STEP_SPREAD = 0.10  # seeds of one configuration on one machine train alike: more spread hints at a disturbed run
RECORD_TRACK, NON_RECORD_TRACK = "10min_16mb", "non_record_16mb"  # records/track_<name> in openai/parameter-golf
METRICS = {  # --metric -> (BPB key, loss key) in the summary's post_quant / pre_quant dicts, description
    "score": ("score_bpb", "score_val_loss", "post-quant sliding-window val_bpb with the run's evaluation-time methods"),
    "sliding": ("sliding_val_bpb", "sliding_val_loss", "post-quant sliding-window val_bpb"),
    "non-overlap": ("val_bpb", "val_loss", "post-quant non-overlapping val_bpb"),
}
RULE_UNITS = ("nats-per-byte", "nats-per-token")
VAL_LOSS_UNITS = {"tokens": "nats per token", "raw256": "nats per byte",
                  "byte260": "nats per predicted id; BOS targets count in the loss but not in the bytes, so val_loss "
                             "is not exactly val_bpb * ln2"}
SUMMARY_TYPES = {  # the summary keys this script reads; `object` where any JSON value will do
    "run_id": object, "seed": int, "layout": object, "device": object, "device_name": object, "world_size": int,
    "iterations": object, "steps": int, "train_time_ms": (int, float), "step_avg_ms": (int, float), "pre_quant": dict,
    "post_quant": dict, "sliding_stride": object, "context": object, "sliding_full_coverage": bool,
    "artifact_bytes": int, "code_bytes": int, "total_bytes": int, "cap_bytes": int, "under_cap": bool,
    "code_sha256": str, "config": dict}
EVAL_KEYS = ("val_loss", "val_bpb", "sliding_val_loss", "sliding_val_bpb", "sliding_scored_targets",
             "sliding_targets", "val_targets", "val_byte_targets", "score_bpb", "score_val_loss")
TRAIN_LINE = re.compile(r"^step:(\d+)/\d+ train_loss:(\S+) train_time:([\d.]+)ms")
VAL_LINE = re.compile(r"^step:(\d+)/\d+ val_loss:(\S+) val_bpb:(\S+) train_time:([\d.]+)ms")


class SubmissionError(Exception):
    """A problem with the inputs or options: reported as `error: <message>`, exit status 2."""


class IncompleteLog(SubmissionError):
    """A log whose last run wrote no summary (crashed, interrupted or still running): skipped when others remain."""


@dataclass
class Run:
    """One log's last run: its final summary and its training curves (train_time in ms)."""

    path: Path
    summary: dict
    train_curve: list[tuple[float, float]]  # (train_time_ms, train_loss)
    val_curve: list[tuple[float, float]]  # (train_time_ms, val_bpb)

    @property
    def seed(self) -> int:
        return self.summary["seed"]

    def post(self, key: str) -> float:
        return self.summary["post_quant"][key]


# ---- READING AND CHECKING LOGS ----
def read_run(path: Path) -> Run:
    """The log's last run: after the last '=====' line (the log starts with the source; a reused RUN_ID appends)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SubmissionError(f"{path}: cannot read ({exc})") from None
    separators = [i for i, line in enumerate(lines) if len(line) >= 20 and set(line) == {"="}]
    if not separators:
        raise SubmissionError(f"{path}: not a train_byte_model.py log (no '=====' separator line)")
    section = lines[separators[-1] + 1:]
    summaries = [line for line in section if line.startswith(SUMMARY_PREFIX)]
    if not summaries:
        raise IncompleteLog(f"{path}: incomplete log (no final_summary line)")
    try:
        summary = json.loads(summaries[-1][len(SUMMARY_PREFIX):])
    except json.JSONDecodeError as exc:
        raise SubmissionError(f"{path}: final_summary is not valid JSON ({exc})") from None
    if not isinstance(summary, dict):
        raise SubmissionError(f"{path}: final_summary is not a JSON object")
    if summary.get("eval_only"):
        raise SubmissionError(f"{path}: EVAL_ONLY re-scoring log (no training); a record needs training logs")
    phases = [p for p in ("pre_quant", "post_quant") if isinstance(summary.get(p), dict)]
    problems = {"lacks": [k for k in SUMMARY_TYPES if k not in summary]
                + [f"{p}.{k}" for p in phases for k in EVAL_KEYS if k not in summary[p]]}
    problems["has wrongly typed"] = [k for k, kind in SUMMARY_TYPES.items() if not isinstance(summary.get(k), kind)]
    problems["has non-finite or non-numeric"] = [
        f"{p}.{k}" for p in phases for k in EVAL_KEYS
        if k in summary[p] and not (isinstance(summary[p][k], (int, float)) and math.isfinite(summary[p][k]))]
    for problem, keys in problems.items():
        if keys:
            raise SubmissionError(f"{path}: final_summary {problem} {', '.join(keys)}")
    check_size(path, summary)
    return Run(path, summary, train_curve=[(float(m[3]), float(m[2])) for m in map(TRAIN_LINE.match, section) if m],
               val_curve=[(float(m[4]), float(m[3])) for m in map(VAL_LINE.match, section) if m])


def check_size(path: Path, s: dict) -> None:
    """The cap verdict is recomputed from the byte counts rather than trusted."""
    if s["cap_bytes"] != CAP_BYTES:
        raise SubmissionError(f"{path}: cap_bytes {s['cap_bytes']} is not the challenge's {CAP_BYTES}")
    if s["total_bytes"] != s["artifact_bytes"] + s["code_bytes"]:
        raise SubmissionError(f"{path}: total_bytes {s['total_bytes']} != artifact_bytes {s['artifact_bytes']} "
                              f"+ code_bytes {s['code_bytes']}")
    if s["total_bytes"] > CAP_BYTES or not s["under_cap"]:
        raise SubmissionError(f"{path}: over the cap: total_bytes {s['total_bytes']:,} > {CAP_BYTES:,} "
                              f"(artifact {s['artifact_bytes']:,} + code {s['code_bytes']:,})")


def check_consistent(runs: list[Run]) -> None:
    """All runs of a set must be seeds of one configuration: same knobs, code, data and hardware."""
    first, seen_seeds = runs[0], {}
    for run in runs:
        a, b = first.summary, run.summary
        if run.seed in seen_seeds:
            raise SubmissionError(f"{run.path}: seed {run.seed} duplicates {seen_seeds[run.seed]}")
        seen_seeds[run.seed] = run.path
        knobs = [(k, a["config"].get(k, "absent"), b["config"].get(k, "absent")) for k in sorted(a["config"] | b["config"])]
        if diffs := [f"{k} ({x} vs {y})" for k, x, y in knobs if x != y]:
            raise SubmissionError(f"{run.path}: mixed configurations: differs from {first.path} in " + ", ".join(diffs))
        if a["code_sha256"] != b["code_sha256"]:
            raise SubmissionError(f"{run.path}: written by a different train_byte_model.py than {first.path} "
                                  f"(code_sha256 {b['code_sha256'][:12]} vs {a['code_sha256'][:12]})")
        for key in ("layout", "world_size", "device_name"):
            if a[key] != b[key]:
                raise SubmissionError(f"{run.path}: {key} {b[key]!r} differs from {first.path} ({a[key]!r})")
        val_a, val_b = ((x["post_quant"]["val_targets"], x["post_quant"]["val_byte_targets"]) for x in (a, b))
        if val_a != val_b:
            raise SubmissionError(f"{run.path}: scored on a different val set than {first.path} "
                                  f"(val_targets/val_byte_targets {val_b[0]}/{val_b[1]} vs {val_a[0]}/{val_a[1]})")


def read_set(paths: list[Path], metric: str) -> tuple[list[Run], list[str]]:
    """The complete logs among `paths`, checked as one set, and a note per incomplete log skipped."""
    runs, incomplete = [], []
    for path in paths:
        try:
            runs.append(read_run(path))
        except IncompleteLog as exc:
            incomplete.append(exc)
    if not runs:
        raise incomplete[0]
    check_consistent(runs)
    if metric != "non-overlap":  # the score is a sliding eval too
        for run in runs:
            if not run.summary["sliding_full_coverage"]:
                raise SubmissionError(f"{run.path}: the sliding eval covered only part of val "
                                      "(VAL_SLIDING_MAX_TOKENS); rerun it or use --metric non-overlap")
    return runs, [f"skipping {exc}" for exc in incomplete]


# ---- STATISTICS ----
def spread_problem(values: np.ndarray, label: str) -> str | None:
    """Why std-based statistics are undefined for this set, or None if they are defined."""
    if values.size < 2:
        return f"{label} has {values.size} log; std, t, p and the CI need at least 2 seeds"
    if np.ptp(values) == 0:
        return f"{label} has no spread across seeds (all values equal); t and p are undefined"
    return None


def bytes_per_token(runs: list[Run], compare: list[Run] | None, option: float) -> tuple[float, str]:
    """Bytes per token for the nats-per-token reading of the rule, and where it came from."""
    for label, group in (("these logs", runs), ("the --compare logs", compare or [])):
        if group and group[0].summary["layout"] == "tokens":
            post = group[0].summary["post_quant"]
            return post["val_byte_targets"] / post["val_targets"], f"measured on {label} (val_byte_targets / val_targets)"
    return option, "--baseline-bytes-per-token (sp1024-token-equivalent)"


def rule_test(values: np.ndarray, reference: float, ref_values: np.ndarray | None, margin_bpb: float,
              alpha: float, undefined: str | None) -> dict:
    """One-sided test that the true mean BPB is below reference - margin_bpb."""
    result = {"required_improvement_bpb": margin_bpb, "t": None, "df": None, "p": None, "met": False}
    if undefined:
        result["undefined"] = undefined
        return result
    if ref_values is None:
        test = stats.ttest_1samp(values, popmean=reference - margin_bpb, alternative="less")
    else:
        test = stats.ttest_ind(values + margin_bpb, ref_values, equal_var=False, alternative="less")
    result.update(t=float(test.statistic), df=float(test.df), p=float(test.pvalue), met=bool(test.pvalue < alpha))
    return result


def reference_entry(reference: float, compare: list[Run] | None, ref_values: np.ndarray | None) -> dict:
    if not compare:
        return {"kind": "baseline", "bpb": reference}
    return {"kind": "compare", "bpb": reference, "n": len(compare), "seeds": [r.seed for r in compare],
            "per_seed": {str(r.seed): float(v) for r, v in zip(compare, ref_values)},
            "std": float(ref_values.std(ddof=1)) if len(compare) > 1 else None, "logs": [str(r.path) for r in compare]}


def compute_statistics(runs: list[Run], compare: list[Run] | None, args: argparse.Namespace) -> dict:
    key = METRICS[args.metric][0]
    values = np.array([run.post(key) for run in runs], dtype=np.float64)
    n, mean = values.size, float(values.mean())
    ref_values = np.array([run.post(key) for run in compare], dtype=np.float64) if compare else None
    reference = float(ref_values.mean()) if compare else args.baseline
    undefined = spread_problem(values, "this set") or (spread_problem(ref_values, "the --compare set") if compare else None)
    std = float(values.std(ddof=1)) if n >= 2 else None
    bpt, bpt_source = bytes_per_token(runs, compare, args.baseline_bytes_per_token)
    improvement = reference - mean
    margins = {"nats-per-byte": args.min_improvement_nats / LN2,
               "nats-per-token": args.min_improvement_nats / (LN2 * bpt)}
    tests = {unit: rule_test(values, reference, ref_values, margin, args.alpha, undefined)
             for unit, margin in margins.items()}
    no_margin = rule_test(values, reference, ref_values, 0.0, args.alpha, undefined)
    ci_mean = ci_improvement = None
    if n >= 2 and std > 0:
        half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * std / math.sqrt(n)
        ci_mean = [mean - half, mean + half]
    if compare and not undefined:
        se = math.sqrt(std**2 / n + ref_values.var(ddof=1) / ref_values.size)
        half = stats.t.ppf(0.5 + CONFIDENCE / 2, no_margin["df"]) * se
        ci_improvement = [improvement - half, improvement + half]
    statistics = {
        "metric": f"post_quant_{METRICS[args.metric][0]}", "metric_description": METRICS[args.metric][2],
        "n": n, "seeds": [run.seed for run in runs], "per_seed": {str(run.seed): float(v) for run, v in zip(runs, values)},
        "mean": mean, "std": std, "ci99_mean": ci_mean,
        "reference": reference_entry(reference, compare, ref_values),
        "test": ("one-sided one-sample t-test (scipy.stats.ttest_1samp, alternative='less')" if not compare else
                 "one-sided Welch two-sample t-test (scipy.stats.ttest_ind, equal_var=False, alternative='less')"),
        "improvement_bpb": improvement, "improvement_nats_per_byte": improvement * LN2,
        "improvement_nats_per_token": improvement * LN2 * bpt, "bytes_per_token": bpt, "bytes_per_token_source": bpt_source,
        "ci99_improvement_bpb": ci_improvement,
        "formula": ("improvement_bpb = reference - mean; nats per byte = improvement_bpb * ln2; "
                    "nats per token = improvement_bpb * ln2 * bytes_per_token"),
        "t_vs_reference": no_margin["t"], "p_vs_reference": no_margin["p"],
        "record_rule": {"min_improvement_nats": args.min_improvement_nats, "alpha": args.alpha, "unit": args.rule_unit,
                        "met": tests[args.rule_unit]["met"], "by_unit": tests,
                        "hypothesis": "H0: mean >= reference - required_improvement_bpb; H1: mean < it"},
        "val_loss_unit": VAL_LOSS_UNITS.get(runs[0].summary["layout"], "nats per predicted id"),
        "undefined": undefined, "warnings": run_warnings(runs),
    }
    val_bytes = [group[0].post("val_byte_targets") for group in (runs, compare) if group]
    if len(set(val_bytes)) > 1:
        statistics["warnings"].append(f"the --compare logs were scored on {val_bytes[1]} val bytes, these on "
                                      f"{val_bytes[0]}: check both used the same val text")
    return statistics


def is_8xh100(summary: dict) -> bool:
    return summary["world_size"] == 8 and "H100" in str(summary["device_name"])


def run_warnings(runs: list[Run]) -> list[str]:
    """Record-track conditions the logs can show (8xH100, <= 600 s), and seeds apart by > STEP_SPREAD."""
    s = runs[0].summary
    warnings = []
    if not is_8xh100(s):
        warnings.append(f"not an 8xH100 run (world_size {s['world_size']}, device {s['device_name']!r})")
    slowest = max(runs, key=lambda r: r.summary["train_time_ms"])
    if slowest.summary["train_time_ms"] > 600_000:
        warnings.append(f"{slowest.path}: training took {slowest.summary['train_time_ms'] / 1000:.1f} s > 600 s")
    for key in ("steps", "step_avg_ms"):
        ordered = sorted(runs, key=lambda r: r.summary[key])
        low, high = ordered[0], ordered[-1]
        if high.summary[key] > low.summary[key] * (1 + STEP_SPREAD):
            warnings.append(f"{key} differs by more than {STEP_SPREAD:.0%} across seeds: {low.summary[key]:g} "
                            f"({low.path}) vs {high.summary[key]:g} ({high.path})")
    return warnings


# ---- OUTPUTS ----
def fmt(value, spec: str = "interval") -> str:
    if value is None:
        return "undefined"
    return f"[{value[0]:.5f}, {value[1]:.5f}]" if spec == "interval" else format(value, spec)


BPB_COLUMNS = {"sliding BPB": ("post_quant", "sliding_val_bpb"), "non-overlap BPB": ("post_quant", "val_bpb"),
               "pre-quant sliding BPB": ("pre_quant", "sliding_val_bpb")}


def seed_table(runs: list[Run]) -> list[str]:
    """Markdown rows: one per log, then the mean and sample std of each BPB column (post-quant unless named)."""
    rows = [["seed", "steps", "ms/step", *BPB_COLUMNS, "artifact bytes", "total bytes"], ["---:"] * 8]
    for run in runs:
        s = run.summary
        rows.append([str(run.seed), str(s["steps"]), f"{s['step_avg_ms']:.1f}",
                     *(f"{s[phase][key]:.5f}" for phase, key in BPB_COLUMNS.values()),
                     f"{s['artifact_bytes']:,}", f"{s['total_bytes']:,}"])
    for label, reduce in (("mean", np.mean), ("std (ddof=1)", lambda v: np.std(v, ddof=1) if len(v) > 1 else None)):
        cells = [fmt(reduce([r.summary[phase][key] for r in runs]), ".5f") for phase, key in BPB_COLUMNS.values()]
        rows.append([label, "", "", *cells, "", ""])
    return ["| " + " | ".join(row) + " |" for row in rows]


def statistic_rows(runs: list[Run], statistics: dict) -> list[tuple[str, str]]:
    """(label, value) of each statistic with its formula and units: console lines or markdown rows."""
    st, rule, ref, s = statistics, statistics["record_rule"], statistics["reference"], runs[0].summary
    coverage = "all of val" if all(r.summary["sliding_full_coverage"] for r in runs) else "only part of val"
    rows = [
        ("logs", f"{st['n']}, seeds {', '.join(map(str, st['seeds']))} ({s['layout']}, world_size {s['world_size']}, "
                 f"{s['device_name']}, code {s['code_sha256'][:12]})"),
        ("metric", f"{st['metric_description']} (sliding eval: stride {s['sliding_stride']}, context {s['context']}, "
                   f"covers {coverage})"),
        ("mean ± std", f"{st['mean']:.5f} ± {fmt(st['std'], '.5f')} BPB (sample std, ddof=1)"),
        ("99% CI of the mean", fmt(st["ci99_mean"])),
        ("reference", f"{ref['bpb']:.5f} BPB " + ("(--baseline, taken as exact)" if ref["kind"] == "baseline" else
                                                  f"(mean of {ref['n']} --compare logs)")),
        ("improvement", f"reference - mean = {st['improvement_bpb']:+.5f} BPB = {st['improvement_nats_per_byte']:+.5f} "
                        f"nats per byte (x ln2) = {st['improvement_nats_per_token']:+.5f} nats per token (x ln2 x "
                        f"{st['bytes_per_token']:.4f} bytes per token, from {st['bytes_per_token_source']})"),
        *([("99% CI of the improvement", fmt(st["ci99_improvement_bpb"]))] if ref["kind"] == "compare" else []),
        ("test", st["test"]),
        ("vs the reference itself (no margin)", f"t {fmt(st['t_vs_reference'], '.3f')}, p {fmt(st['p_vs_reference'], '.3g')}"),
    ]
    for unit, test in rule["by_unit"].items():
        rows.append((f"record rule in {unit}: improvement ≥ {rule['min_improvement_nats']} nats "
                     f"(≥ {test['required_improvement_bpb']:.5f} BPB) at p < {rule['alpha']}",
                     f"t {fmt(test['t'], '.3f')}, df {fmt(test['df'], '.2f')}, p {fmt(test['p'], '.3g')}: "
                     f"{'met' if test['met'] else 'not met'}"))
    rows.append((f"record rule checked in {rule['unit']} (--rule-unit)", "MET" if rule["met"] else "NOT MET"))
    if st["undefined"]:
        rows.append(("note", st["undefined"]))
    return rows


def report(runs: list[Run], statistics: dict, markdown: bool) -> str:
    """The seed table, then the statistics as markdown rows (--table) or as `label: value` lines (console)."""
    rows = statistic_rows(runs, statistics)
    if markdown:
        lines = ["", "| statistic | value |", "|---|---|"] + [f"| {label} | {value} |" for label, value in rows]
    else:
        lines = [""] + [f"{label}: {value}" for label, value in rows]
    return "\n".join(seed_table(runs) + lines) + "\n"


def submission_record(runs: list[Run], statistics: dict, args: argparse.Namespace) -> dict:
    """The official records' submission.json fields, filled from the logs, plus our statistics block."""
    bpb_key, loss_key, _ = METRICS[args.metric]
    seed_results = {str(run.seed): {
        "val_loss": run.post(loss_key), "val_bpb": run.post(bpb_key), "pre_quant_val_loss": run.summary["pre_quant"][loss_key],
        "pre_quant_val_bpb": run.summary["pre_quant"][bpb_key], "post_quant_sliding_val_bpb": run.post("sliding_val_bpb"),
        "post_quant_non_overlap_val_bpb": run.post("val_bpb"), "steps": run.summary["steps"],
        "ms_per_step": run.summary["step_avg_ms"], "wallclock_seconds": run.summary["train_time_ms"] / 1000,
        "bytes_total": run.summary["total_bytes"], "bytes_model_int6_zstd": run.summary["artifact_bytes"],
        "run_id": run.summary["run_id"], "log": run.path.name} for run in runs}
    val_loss = float(np.mean([run.post(loss_key) for run in runs]))
    return {
        "author": args.author or args.github_id, "github_id": args.github_id, "name": args.name, "blurb": args.blurb or "",
        "date": args.date or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "track": args.track or (RECORD_TRACK if is_8xh100(runs[0].summary) else NON_RECORD_TRACK),
        "val_loss": val_loss, "val_bpb": statistics["mean"],
        "pre_quant_val_loss": float(np.mean([r["pre_quant_val_loss"] for r in seed_results.values()])),
        "pre_quant_val_bpb": float(np.mean([r["pre_quant_val_bpb"] for r in seed_results.values()])),
        "wallclock_seconds": max(run.summary["train_time_ms"] for run in runs) / 1000,
        "bytes_total": max(run.summary["total_bytes"] for run in runs),
        "bytes_model_int6_zstd": max(run.summary["artifact_bytes"] for run in runs),
        "bytes_code": runs[0].summary["code_bytes"],
        "seed_results": seed_results, "mean_val_loss": val_loss, "mean_val_bpb": statistics["mean"],
        "p_value": statistics["record_rule"]["by_unit"][args.rule_unit]["p"],
        "statistics": statistics,
    }


def load_pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise SubmissionError(f"--plot needs matplotlib ({exc}); pip install matplotlib, or drop --plot") from None
    return plt


def render_curves(plt, runs: list[Run], metric: str, image_format: str) -> bytes:
    """Train loss and val BPB against training time per log; the star is the final post-quant metric."""
    fig, (ax_loss, ax_bpb) = plt.subplots(1, 2, figsize=(12, 4.5))
    for run in runs:
        label = f"seed {run.seed}"
        if run.train_curve:
            t, loss = zip(*run.train_curve)
            ax_loss.plot(np.array(t) / 1000, loss, label=label)
        line = None
        if run.val_curve:
            t, bpb = zip(*run.val_curve)
            (line,) = ax_bpb.plot(np.array(t) / 1000, bpb, marker="o", label=label)
        ax_bpb.plot([run.summary["train_time_ms"] / 1000], [run.post(METRICS[metric][0])], marker="*", markersize=12,
                    linestyle="none", color=line.get_color() if line else None,
                    label=None if line else f"{label} (post-quant)")
    ax_loss.set(title="train loss", xlabel="training time (s)", ylabel="train loss (nats per id)")
    ax_bpb.set(title=f"val BPB (star: final {METRICS[metric][2]})", xlabel="training time (s)", ylabel="val_bpb")
    for ax in (ax_loss, ax_bpb):
        ax.ticklabel_format(useOffset=False)  # a single eval point and its star sit milliseconds apart
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format=image_format, dpi=120)
    plt.close(fig)
    return buffer.getvalue()


# ---- THE PACKED RECORD SCRIPT ----
PACK_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]
PACK_ESCAPES = {0x5C: "\\\\", 0x27: "\\'", 0x0A: "\\n", 0x0D: "\\r", 0x00: "\\x00"}  # what a '...' literal cannot hold raw


def pack_record_script(sources: list[Path]) -> bytes:
    """The record script the challenge counts: train_byte_model.py (and the modules after it) as lzma of the
    readable sources in a latin-1 string literal (raw bytes cost ~2 % there, base85 25 %), run exactly as
    train_byte_model.py runs (its PACKED_SOURCES); the readable sources head every log it writes."""
    files = {path.name: path.read_text(encoding="utf-8") for path in sources}
    if next(iter(files)) != "train_byte_model.py":
        raise SubmissionError(f"--pack: the first source must be train_byte_model.py, not {sources[0]}")
    blob = lzma.compress(json.dumps(files).encode(), format=lzma.FORMAT_RAW, filters=PACK_FILTERS)
    return ("# -*- coding: latin-1 -*-\n# train_byte_model.py packed by submission.py --pack: lzma of its readable source\n"
            "import json,lzma\nPACKED_SOURCES=json.loads(lzma.decompress('" + blob.decode("latin-1").translate(PACK_ESCAPES)
            + "'.encode('latin-1'),lzma.FORMAT_RAW,filters=[{'id':lzma.FILTER_LZMA2}]))\n"
            "exec(compile(PACKED_SOURCES['train_byte_model.py'],'train_byte_model.py','exec'))\n").encode("latin-1")


def write_packed(out: Path, sources: list[Path]) -> int:
    data = pack_record_script(sources)
    with atomic_output(out) as f:
        f.write(data)
    print(f"wrote {out}: {len(data):,} bytes, packing " + ", ".join(f"{p.name} {p.stat().st_size:,}" for p in sources))
    return 0


# ---- COMMAND LINE ----
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="Formulas, the record rule and what is refused: docs/submitting.md.")
    p.add_argument("logs", nargs="*", type=Path,
                   help="run logs of one configuration, one per seed (with --pack: the sources, the trainer first)")
    p.add_argument("--pack", type=Path, metavar="OUT.py", help="write the packed record script instead")
    ref = p.add_mutually_exclusive_group()
    ref.add_argument("--baseline", type=float, help="reference BPB for a one-sample test (e.g. 1.2244)")
    ref.add_argument("--compare", nargs="+", type=Path, metavar="LOG",
                     help="logs of the reference configuration, for a Welch two-sample test (give it after "
                          "the logs: it takes every path that follows it)")
    p.add_argument("--metric", choices=sorted(METRICS), default="score",
                   help="post-quant BPB to test (default score: the sliding eval with the run's evaluation-time methods)")
    p.add_argument("--baseline-bytes-per-token", type=float, default=SP1024_BYTES_PER_TOKEN,
                   help="bytes per sp1024 token of the official val set, for nats per token (default 2.44)")
    p.add_argument("--min-improvement-nats", type=float, default=0.005, help="record margin (default 0.005)")
    p.add_argument("--alpha", type=float, default=0.01, help="significance level (default 0.01)")
    p.add_argument("--rule-unit", choices=RULE_UNITS, default="nats-per-byte",
                   help="unit of the record margin that decides record_rule_met (default nats-per-byte)")
    for flag, meaning in (("--name", "name"), ("--github-id", "GitHub ID"), ("--author", "author (default: the GitHub ID)"),
                          ("--blurb", "one-paragraph description"), ("--date", "date (default: now, UTC, ISO 8601)"),
                          ("--track", f"track (default: {RECORD_TRACK} for 8xH100 logs, else {NON_RECORD_TRACK})")):
        p.add_argument(flag, help=f"submission.json's {meaning}")
    p.add_argument("--out", type=Path, help="write submission.json here")
    p.add_argument("--table", type=Path, help="write the markdown results table here")
    p.add_argument("--plot", type=Path, help="draw train loss and val BPB against training time here (PNG)")
    args = p.parse_args(argv)
    if args.pack:
        args.logs = args.logs or [Path(__file__).with_name("train_byte_model.py")]
    elif not (args.logs and (args.baseline is not None or args.compare)):
        p.error("give the logs and one of --baseline or --compare (or --pack OUT.py)")
    if args.out and not (args.name and args.github_id):
        raise SubmissionError("--out needs --name and --github-id (the official submission.json carries both)")
    if args.baseline_bytes_per_token <= 0 or not 0 < args.alpha < 1:
        raise SubmissionError("--baseline-bytes-per-token must be positive and --alpha between 0 and 1")
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        if args.pack:
            return write_packed(args.pack, args.logs)
        plt = load_pyplot() if args.plot else None
        runs, notes = read_set(args.logs, args.metric)
        compare, compare_notes = read_set(args.compare, args.metric) if args.compare else (None, [])
        statistics = compute_statistics(runs, compare, args)
        outputs = [(args.plot, lambda: render_curves(plt, runs, args.metric, args.plot.suffix.lstrip(".") or "png")),
                   (args.table, lambda: report(runs, statistics, markdown=True).encode("utf-8")),
                   (args.out, lambda: (json.dumps(submission_record(runs, statistics, args), indent=2) + "\n").encode())]
        outputs = [(path, make()) for path, make in outputs if path]
        for path, data in outputs:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_output(path) as f:
                f.write(data)
    except SubmissionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in notes + compare_notes + [f"warning: {w}" for w in statistics["warnings"]]:
        print(line, file=sys.stderr)
    print(report(runs, statistics, markdown=False), end="")
    for path, _ in outputs:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
