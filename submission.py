#!/usr/bin/env python3
"""Turn train_byte_model.py run logs (one per seed) into a Parameter Golf record: statistics,
submission.json, a markdown results table and training curves. Not part of the counted artifact.

    python submission.py logs/run_seed*.txt --baseline 1.2244 --name "Byte model" --github-id me \\
        --out submission.json --table results.md --plot curves.png

Each log must be complete (its last run section ends in a `final_summary:{json}` line), under the
16,000,000-byte cap, and from the same configuration as the others (same knobs, same script, same data
layout, world size, device and val set); seeds must differ. Any violation stops with one line
`error: FILE: problem` and exit status 2, before anything is written.

Statistics, on the per-seed post-quant BPB (`--metric sliding`, the default, or `non-overlap`):
  * mean and sample std (ddof=1) over seeds; the 99% confidence interval of the mean,
    mean +- t(0.995, n-1) * std / sqrt(n).
  * improvement  dBPB = reference - mean  (positive = better). The reference is `--baseline B` (a BPB
    number) or the mean of `--compare LOGS` (another set of seeds).
  * units: BPB b is total bits / total bytes of val text, so the model spends b*ln2 nats per byte and
        improvement in nats per byte  = dBPB * ln2
        improvement in nats per token = dBPB * ln2 * (bytes per token) = dBPB * ln2 / (tokens per byte)
    Bytes per token is measured (val_byte_targets / val_targets) when the logs (or the --compare logs)
    are token-mode; otherwise it is --baseline-bytes-per-token, default 2.44: the official sp1024 val set,
    val_loss / (val_bpb * ln2) of the official naive baseline (2.0604 / (1.2169 * ln2) = 2.443), so the
    nats-per-token number is "sp1024-token-equivalent".
  * record rule (Parameter Golf): improvement >= 0.005 nats at p < 0.01. The rule's nats are the
    leaderboard's val_loss units, which are nats per sp1024 token; a byte model's val_loss is in nats per
    byte. Both readings are tested, and --rule-unit (default nats-per-byte, the stricter one when a token
    is at least a byte) decides `record_rule_met`. Each reading is a one-sided test of
        H0: mean >= reference - m    against    H1: mean < reference - m,
    where m is 0.005 nats converted to BPB in that unit (m = 0.005 / ln2 per byte, 0.005 / (ln2 * bytes
    per token) per token): a one-sample t-test against --baseline (scipy.stats.ttest_1samp) or a Welch
    two-sample t-test against --compare (scipy.stats.ttest_ind, equal_var=False); a --baseline number is
    taken as exact (no variance of its own). With fewer than 2 logs
    in a set, or no spread across seeds, std-based statistics are reported as undefined.
"""
from __future__ import annotations

import argparse
import io
import json
import math
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from scipy import stats

LN2 = math.log(2)
CAP_BYTES = 16_000_000  # the challenge's cap: decimal bytes, code + compressed model
SUMMARY_PREFIX = "final_summary:"
SP1024_BYTES_PER_TOKEN = 2.44
CONFIDENCE = 0.99
METRICS = {  # --metric -> (BPB key, loss key) in the summary's post_quant / pre_quant dicts
    "sliding": ("sliding_val_bpb", "sliding_val_loss"),
    "non-overlap": ("val_bpb", "val_loss"),
}
METRIC_LABELS = {"sliding": "post-quant sliding-window val_bpb", "non-overlap": "post-quant non-overlapping val_bpb"}
RULE_UNITS = ("nats-per-byte", "nats-per-token")
VAL_LOSS_UNITS = {
    "tokens": "nats per token",
    "raw256": "nats per byte",
    "byte260": "nats per predicted id; BOS targets count in the loss but not in the bytes, so val_loss is "
               "not exactly val_bpb * ln2",
}
SUMMARY_KEYS = ("run_id", "seed", "layout", "device", "device_name", "world_size", "iterations", "steps",
                "train_time_ms", "step_avg_ms", "pre_quant", "post_quant", "sliding_stride", "context",
                "sliding_full_coverage", "artifact_bytes", "code_bytes", "total_bytes", "cap_bytes", "under_cap",
                "code_sha256", "config")
SUMMARY_TYPES = {"seed": int, "steps": int, "world_size": int, "artifact_bytes": int, "code_bytes": int,
                 "total_bytes": int, "cap_bytes": int, "train_time_ms": (int, float), "step_avg_ms": (int, float),
                 "under_cap": bool, "sliding_full_coverage": bool, "code_sha256": str, "config": dict}
EVAL_KEYS = ("val_loss", "val_bpb", "sliding_val_loss", "sliding_val_bpb", "sliding_scored_targets",
             "sliding_targets", "val_targets", "val_byte_targets")
TRAIN_LINE = re.compile(r"^step:(\d+)/\d+ train_loss:(\S+) train_time:([\d.]+)ms")
VAL_LINE = re.compile(r"^step:(\d+)/\d+ val_loss:(\S+) val_bpb:(\S+) train_time:([\d.]+)ms")


class SubmissionError(Exception):
    """A problem with the inputs or options: reported as `error: <message>`, exit status 2."""


@dataclass
class Run:
    """One log's last run: its final summary and its training curves (train_time in ms)."""

    path: Path
    summary: dict
    train_curve: list[tuple[float, float]] = field(default_factory=list)  # (train_time_ms, train_loss)
    val_curve: list[tuple[float, float]] = field(default_factory=list)  # (train_time_ms, val_bpb)

    @property
    def seed(self) -> int:
        return self.summary["seed"]

    def post(self, key: str) -> float:
        return self.summary["post_quant"][key]

    def pre(self, key: str) -> float:
        return self.summary["pre_quant"][key]


# -----------------------------
# READING AND CHECKING LOGS
# -----------------------------

def last_run_section(path: Path) -> list[str]:
    """Lines after the last all-'=' separator. The log starts with the trainer's source code (which
    contains strings like "final_summary:"), and a reused RUN_ID appends a whole new run to the file,
    so only the last section describes the run that the summary belongs to."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SubmissionError(f"{path}: cannot read ({exc})") from None
    separators = [i for i, line in enumerate(lines) if len(line) >= 20 and set(line) == {"="}]
    if not separators:
        raise SubmissionError(f"{path}: not a train_byte_model.py log (no '=====' separator line)")
    return lines[separators[-1] + 1:]


def read_run(path: Path) -> Run:
    section = last_run_section(path)
    summaries = [line for line in section if line.startswith(SUMMARY_PREFIX)]
    if not summaries:
        raise SubmissionError(f"{path}: incomplete log (no final_summary line)")
    try:
        summary = json.loads(summaries[-1][len(SUMMARY_PREFIX):])
    except json.JSONDecodeError as exc:
        raise SubmissionError(f"{path}: final_summary is not valid JSON ({exc})") from None
    if not isinstance(summary, dict):
        raise SubmissionError(f"{path}: final_summary is not a JSON object")
    if summary.get("eval_only"):
        raise SubmissionError(f"{path}: EVAL_ONLY re-scoring log (no training); a record needs training logs")
    missing = [k for k in SUMMARY_KEYS if k not in summary]
    for phase in ("pre_quant", "post_quant"):
        if isinstance(summary.get(phase), dict):
            missing += [f"{phase}.{k}" for k in EVAL_KEYS if k not in summary[phase]]
        elif phase in summary:
            missing.append(f"{phase} (not an object)")
    if missing:
        raise SubmissionError(f"{path}: final_summary lacks {', '.join(missing)}")
    wrong_type = [k for k, kind in SUMMARY_TYPES.items() if not isinstance(summary[k], kind)]
    if wrong_type:
        raise SubmissionError(f"{path}: final_summary has wrongly typed {', '.join(wrong_type)}")
    for phase in ("pre_quant", "post_quant"):
        bad = [k for k in EVAL_KEYS if not isinstance(summary[phase][k], (int, float))
               or not math.isfinite(summary[phase][k])]
        if bad:
            raise SubmissionError(f"{path}: {phase} has non-finite or non-numeric {', '.join(bad)}")
    check_size(path, summary)
    run = Run(path, summary)
    for line in section:
        if m := TRAIN_LINE.match(line):
            run.train_curve.append((float(m[3]), float(m[2])))
        elif m := VAL_LINE.match(line):
            run.val_curve.append((float(m[4]), float(m[3])))
    return run


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


def knob_differences(a: dict, b: dict) -> list[str]:
    absent = "absent"
    return [f"{k} ({a.get(k, absent)} vs {b.get(k, absent)})" for k in sorted(a.keys() | b.keys())
            if a.get(k, absent) != b.get(k, absent)]


def check_consistent(runs: list[Run]) -> None:
    """All runs of a set must be seeds of one configuration: same knobs, code, data and hardware."""
    first = runs[0]
    seen_seeds = {}
    for run in runs:
        a, b = first.summary, run.summary
        if run.seed in seen_seeds:
            raise SubmissionError(f"{run.path}: seed {run.seed} duplicates {seen_seeds[run.seed]}")
        seen_seeds[run.seed] = run.path
        if diffs := knob_differences(a["config"], b["config"]):
            raise SubmissionError(f"{run.path}: mixed configurations: differs from {first.path} in "
                                  + ", ".join(diffs))
        if a["code_sha256"] != b["code_sha256"]:
            raise SubmissionError(f"{run.path}: written by a different train_byte_model.py than {first.path} "
                                  f"(code_sha256 {b['code_sha256'][:12]} vs {a['code_sha256'][:12]})")
        for key in ("layout", "world_size", "device_name"):
            if a[key] != b[key]:
                raise SubmissionError(f"{run.path}: {key} {b[key]!r} differs from {first.path} ({a[key]!r})")
        val_a = (a["post_quant"]["val_targets"], a["post_quant"]["val_byte_targets"])
        val_b = (b["post_quant"]["val_targets"], b["post_quant"]["val_byte_targets"])
        if val_a != val_b:
            raise SubmissionError(f"{run.path}: scored on a different val set than {first.path} "
                                  f"(val_targets/val_byte_targets {val_b[0]}/{val_b[1]} vs {val_a[0]}/{val_a[1]})")


def read_set(paths: list[Path], metric: str) -> list[Run]:
    runs = [read_run(p) for p in paths]
    check_consistent(runs)
    if metric == "sliding":
        for run in runs:
            if not run.summary["sliding_full_coverage"]:
                raise SubmissionError(f"{run.path}: the sliding eval covered only part of val "
                                      "(VAL_SLIDING_MAX_TOKENS); rerun it or use --metric non-overlap")
    return runs


# -----------------------------
# STATISTICS
# -----------------------------

def metric_values(runs: list[Run], metric: str) -> np.ndarray:
    return np.array([run.post(METRICS[metric][0]) for run in runs], dtype=np.float64)


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
    result.update(t=float(test.statistic), df=float(test.df), p=float(test.pvalue))
    result["met"] = result["p"] < alpha
    return result


def compute_statistics(runs: list[Run], compare: list[Run] | None, args: argparse.Namespace) -> dict:
    values = metric_values(runs, args.metric)
    n, mean = values.size, float(values.mean())
    ref_values = metric_values(compare, args.metric) if compare else None
    reference = float(ref_values.mean()) if compare else args.baseline
    undefined = spread_problem(values, "this set")
    if compare and not undefined:
        undefined = spread_problem(ref_values, "the --compare set")
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
        "metric": f"post_quant_{METRICS[args.metric][0]}",
        "metric_description": METRIC_LABELS[args.metric],
        "n": n,
        "seeds": [run.seed for run in runs],
        "per_seed": {str(run.seed): float(v) for run, v in zip(runs, values)},
        "mean": mean,
        "std": std,
        "ci99_mean": ci_mean,
        "reference": ({"kind": "baseline", "bpb": reference} if not compare else
                      {"kind": "compare", "bpb": reference, "n": len(compare), "seeds": [r.seed for r in compare],
                       "per_seed": {str(r.seed): float(v) for r, v in zip(compare, ref_values)},
                       "std": float(ref_values.std(ddof=1)) if len(compare) >= 2 else None,
                       "logs": [str(r.path) for r in compare]}),
        "test": ("one-sided one-sample t-test (scipy.stats.ttest_1samp, alternative='less')" if not compare else
                 "one-sided Welch two-sample t-test (scipy.stats.ttest_ind, equal_var=False, alternative='less')"),
        "improvement_bpb": improvement,
        "improvement_nats_per_byte": improvement * LN2,
        "improvement_nats_per_token": improvement * LN2 * bpt,
        "bytes_per_token": bpt,
        "bytes_per_token_source": bpt_source,
        "ci99_improvement_bpb": ci_improvement,
        "formula": ("improvement_bpb = reference - mean; nats per byte = improvement_bpb * ln2; "
                    "nats per token = improvement_bpb * ln2 * bytes_per_token"),
        "t_vs_reference": no_margin["t"],
        "p_vs_reference": no_margin["p"],
        "record_rule": {"min_improvement_nats": args.min_improvement_nats, "alpha": args.alpha,
                        "unit": args.rule_unit, "met": tests[args.rule_unit]["met"],
                        "hypothesis": "H0: mean >= reference - required_improvement_bpb; H1: mean < it",
                        "by_unit": tests},
        "val_loss_unit": VAL_LOSS_UNITS.get(runs[0].summary["layout"], "nats per predicted id"),
        "undefined": undefined,
        "warnings": eligibility_warnings(runs),
    }
    if compare and compare[0].summary["post_quant"]["val_byte_targets"] != runs[0].summary["post_quant"]["val_byte_targets"]:
        statistics["warnings"].append(
            f"the --compare logs were scored on {compare[0].summary['post_quant']['val_byte_targets']} val bytes, "
            f"these on {runs[0].summary['post_quant']['val_byte_targets']}: check both used the same val text")
    return statistics


def eligibility_warnings(runs: list[Run]) -> list[str]:
    """Record-track conditions the logs can show: 8xH100 and at most 10 minutes of training."""
    s = runs[0].summary
    warnings = []
    if s["world_size"] != 8 or "H100" not in str(s["device_name"]):
        warnings.append(f"not an 8xH100 run (world_size {s['world_size']}, device {s['device_name']!r})")
    slowest = max(runs, key=lambda r: r.summary["train_time_ms"])
    if slowest.summary["train_time_ms"] > 600_000:
        warnings.append(f"{slowest.path}: training took {slowest.summary['train_time_ms'] / 1000:.1f} s > 600 s")
    return warnings


# -----------------------------
# OUTPUTS
# -----------------------------

def fmt(value, spec: str) -> str:
    return "undefined" if value is None else format(value, spec)


def fmt_interval(interval: list[float] | None) -> str:
    return "undefined" if interval is None else f"[{interval[0]:.5f}, {interval[1]:.5f}]"


def run_line(run: Run) -> str:
    s, pre, post = run.summary, run.summary["pre_quant"], run.summary["post_quant"]
    return (f"  seed {run.seed}: {s['steps']}/{s['iterations']} steps, step_avg {s['step_avg_ms']:.2f} ms, "
            f"train {s['train_time_ms'] / 1000:.1f} s; BPB sliding/non-overlap pre-quant "
            f"{pre['sliding_val_bpb']:.5f}/{pre['val_bpb']:.5f}, post-quant {post['sliding_val_bpb']:.5f}/"
            f"{post['val_bpb']:.5f} (val_loss {post['val_loss']:.5f}); bytes {s['artifact_bytes']:,} + code "
            f"{s['code_bytes']:,} = {s['total_bytes']:,} {'UNDER_CAP' if s['under_cap'] else 'OVER_CAP'}  [{run.path}]")


def report_lines(runs: list[Run], statistics: dict) -> list[str]:
    """Plain-text runs and statistics for stdout, with the formulas and the units the rule was checked in."""
    st, rule = statistics, statistics["record_rule"]
    s = runs[0].summary
    ref = st["reference"]
    ref_text = (f"baseline {ref['bpb']:.5f} BPB (--baseline, taken as exact)" if ref["kind"] == "baseline" else
                f"--compare set mean {ref['bpb']:.5f} BPB over {ref['n']} seeds")
    coverage = "covers all of val" if all(r.summary["sliding_full_coverage"] for r in runs) else "covers only part of val"
    lines = [
        f"logs: {len(runs)} ({s['layout']}, world_size {s['world_size']}, {s['device_name']}, "
        f"code {s['code_sha256'][:12]})",
        *map(run_line, runs),
        f"metric: {st['metric_description']} (sliding eval: stride {s['sliding_stride']}, context {s['context']}, "
        f"{coverage})",
        f"mean {st['mean']:.5f} BPB, std {fmt(st['std'], '.5f')} (sample, ddof=1), "
        f"99% CI of the mean {fmt_interval(st['ci99_mean'])}",
        f"reference: {ref_text}",
        f"improvement = reference - mean = {st['improvement_bpb']:+.5f} BPB"
        + (f", 99% CI {fmt_interval(st['ci99_improvement_bpb'])}" if ref["kind"] == "compare" else ""),
        f"  = {st['improvement_nats_per_byte']:+.5f} nats per byte (x ln2)",
        f"  = {st['improvement_nats_per_token']:+.5f} nats per token (x ln2 x {st['bytes_per_token']:.4f} bytes per "
        f"token, from {st['bytes_per_token_source']})",
        f"{st['test']}:",
        f"  vs the reference itself: t {fmt(st['t_vs_reference'], '.3f')}, p {fmt(st['p_vs_reference'], '.3g')}",
    ]
    for unit, test in rule["by_unit"].items():
        lines.append(f"  record rule in {unit}: improvement >= {rule['min_improvement_nats']} nats "
                     f"(= {test['required_improvement_bpb']:.5f} BPB) at p < {rule['alpha']}: "
                     f"t {fmt(test['t'], '.3f')}, df {fmt(test['df'], '.2f')}, p {fmt(test['p'], '.3g')} -> "
                     f"{'MET' if test['met'] else 'not met'}")
    lines.append(f"record rule checked in {rule['unit']} (--rule-unit): {'MET' if rule['met'] else 'NOT MET'}")
    if st["undefined"]:
        lines.append(f"note: {st['undefined']}")
    lines += [f"warning: {w}" for w in st["warnings"]]
    return lines


def markdown_table(runs: list[Run], statistics: dict) -> str:
    st, rule = statistics, statistics["record_rule"]
    rows = ["| seed | sliding BPB (post-quant) | non-overlap BPB (post-quant) | artifact bytes | total bytes | under cap |",
            "|---:|---:|---:|---:|---:|:---:|"]
    for run in runs:
        rows.append(f"| {run.seed} | {run.post('sliding_val_bpb'):.5f} | {run.post('val_bpb'):.5f} | "
                    f"{run.summary['artifact_bytes']:,} | {run.summary['total_bytes']:,} | "
                    f"{'yes' if run.summary['under_cap'] else 'no'} |")
    for label, reduce in (("mean", np.mean), ("std (ddof=1)", lambda v: np.std(v, ddof=1) if len(v) > 1 else None)):
        cells = [fmt(reduce(np.array([r.post(k) for r in runs])), ".5f") for k in ("sliding_val_bpb", "val_bpb")]
        rows.append(f"| {label} | {cells[0]} | {cells[1]} | | | |")
    ref = st["reference"]
    ref_label = "baseline" if ref["kind"] == "baseline" else f"mean of {ref['n']} --compare logs"
    if st["ci99_improvement_bpb"]:
        ref_label += f"; 99% CI of the improvement {fmt_interval(st['ci99_improvement_bpb'])} BPB"
    stat_rows = [
        ("metric", st["metric_description"]),
        ("n (seeds)", f"{st['n']} ({', '.join(map(str, st['seeds']))})"),
        ("mean ± std", f"{st['mean']:.5f} ± {fmt(st['std'], '.5f')}"),
        ("99% CI of the mean", fmt_interval(st["ci99_mean"])),
        ("reference", f"{ref['bpb']:.5f} ({ref_label})"),
        ("improvement", f"{st['improvement_bpb']:+.5f} BPB = {st['improvement_nats_per_byte']:+.5f} nats/byte "
                        f"= {st['improvement_nats_per_token']:+.5f} nats/token ({st['bytes_per_token']:.3f} bytes/token)"),
        ("test", st["test"]),
        ("vs the reference itself (no margin)", f"t {fmt(st['t_vs_reference'], '.3f')}, p {fmt(st['p_vs_reference'], '.3g')}"),
    ]
    for unit, test in rule["by_unit"].items():
        stat_rows.append((f"rule ≥ {rule['min_improvement_nats']} {unit.replace('-', ' ')} "
                          f"(≥ {test['required_improvement_bpb']:.5f} BPB)",
                          f"t {fmt(test['t'], '.3f')}, p {fmt(test['p'], '.3g')}: {'met' if test['met'] else 'not met'}"))
    stat_rows.append((f"record rule (p < {rule['alpha']}, in {rule['unit']})", "**MET**" if rule["met"] else "**not met**"))
    table = ["| statistic | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in stat_rows]
    return "\n".join(rows) + "\n\n" + "\n".join(table) + "\n"


def submission_record(runs: list[Run], statistics: dict, args: argparse.Namespace) -> dict:
    """The official records' submission.json fields (README of openai/parameter-golf and its
    records/track_10min_16mb/*/submission.json), filled from the logs, plus our statistics block."""
    bpb_key, loss_key = METRICS[args.metric]
    mean = lambda values: float(np.mean(values))  # noqa: E731
    seed_results = {
        str(run.seed): {
            "val_loss": run.post(loss_key), "val_bpb": run.post(bpb_key),
            "pre_quant_val_loss": run.pre(loss_key), "pre_quant_val_bpb": run.pre(bpb_key),
            "post_quant_sliding_val_bpb": run.post("sliding_val_bpb"),
            "post_quant_non_overlap_val_bpb": run.post("val_bpb"),
            "steps": run.summary["steps"], "ms_per_step": run.summary["step_avg_ms"],
            "wallclock_seconds": run.summary["train_time_ms"] / 1000,
            "bytes_total": run.summary["total_bytes"], "bytes_model_int6_zstd": run.summary["artifact_bytes"],
            "run_id": run.summary["run_id"], "log": run.path.name,
        }
        for run in runs
    }
    val_loss = mean([run.post(loss_key) for run in runs])
    return {
        "author": args.author or args.github_id,
        "github_id": args.github_id,
        "name": args.name,
        "blurb": args.blurb,
        "date": args.date or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "track": args.track,
        "val_loss": val_loss,
        "val_bpb": statistics["mean"],
        "pre_quant_val_loss": mean([run.pre(loss_key) for run in runs]),
        "pre_quant_val_bpb": mean([run.pre(bpb_key) for run in runs]),
        "wallclock_seconds": max(run.summary["train_time_ms"] for run in runs) / 1000,
        "bytes_total": max(run.summary["total_bytes"] for run in runs),
        "bytes_model_int6_zstd": max(run.summary["artifact_bytes"] for run in runs),
        "bytes_code": runs[0].summary["code_bytes"],
        "seed_results": seed_results,
        "mean_val_loss": val_loss,
        "mean_val_bpb": statistics["mean"],
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
    """Train loss and val BPB against training time, one line per log; the star is the final
    post-quant metric value, which the in-training val points (pre-quant, raw weights) lead to."""
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
    ax_bpb.set(title=f"val BPB (star: final {METRIC_LABELS[metric]})", xlabel="training time (s)", ylabel="val_bpb")
    for ax in (ax_loss, ax_bpb):
        ax.ticklabel_format(useOffset=False)  # a single eval point and its star sit milliseconds apart
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format=image_format, dpi=120)
    plt.close(fig)
    return buffer.getvalue()


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False) as f:
        f.write(data)
    os.replace(f.name, path)


# -----------------------------
# COMMAND LINE
# -----------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="Formulas and the record rule: see the module docstring (python -c "
                                       "'import submission; help(submission)').")
    p.add_argument("logs", nargs="+", type=Path, help="run logs of one configuration, one per seed")
    ref = p.add_mutually_exclusive_group(required=True)
    ref.add_argument("--baseline", type=float, help="reference BPB for a one-sample test (e.g. 1.2244)")
    ref.add_argument("--compare", nargs="+", type=Path, metavar="LOG",
                     help="logs of the reference configuration, for a Welch two-sample test (give it after "
                          "the logs: it takes every path that follows it)")
    p.add_argument("--metric", choices=sorted(METRICS), default="sliding", help="post-quant BPB to test (default sliding)")
    p.add_argument("--baseline-bytes-per-token", type=float, default=SP1024_BYTES_PER_TOKEN,
                   help="bytes per sp1024 token of the official val set, for nats per token (default 2.44)")
    p.add_argument("--min-improvement-nats", type=float, default=0.005, help="record margin (default 0.005)")
    p.add_argument("--alpha", type=float, default=0.01, help="significance level (default 0.01)")
    p.add_argument("--rule-unit", choices=RULE_UNITS, default="nats-per-byte",
                   help="unit of the record margin that decides record_rule_met (default nats-per-byte)")
    p.add_argument("--name", help="submission name (submission.json)")
    p.add_argument("--github-id", help="GitHub ID (submission.json)")
    p.add_argument("--author", help="author name (default: the GitHub ID)")
    p.add_argument("--blurb", default="", help="one-paragraph description (submission.json)")
    p.add_argument("--date", help="submission date (default: now, UTC, ISO 8601)")
    p.add_argument("--track", default="10min_16mb", help="records track (default 10min_16mb)")
    p.add_argument("--out", type=Path, help="write submission.json here")
    p.add_argument("--table", type=Path, help="write the markdown results table here")
    p.add_argument("--plot", type=Path, help="draw train loss and val BPB against training time here (PNG)")
    args = p.parse_args(argv)
    if args.out and not (args.name and args.github_id):
        raise SubmissionError("--out needs --name and --github-id (the official submission.json carries both)")
    if args.baseline_bytes_per_token <= 0:
        raise SubmissionError("--baseline-bytes-per-token must be positive")
    if not 0 < args.alpha < 1:
        raise SubmissionError("--alpha must be between 0 and 1")
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        plt = load_pyplot() if args.plot else None
        runs = read_set(args.logs, args.metric)
        compare = read_set(args.compare, args.metric) if args.compare else None
        statistics = compute_statistics(runs, compare, args)
        table = markdown_table(runs, statistics)
        outputs = []
        if args.plot:
            outputs.append((args.plot, render_curves(plt, runs, args.metric, args.plot.suffix.lstrip(".") or "png")))
        if args.table:
            outputs.append((args.table, table.encode("utf-8")))
        if args.out:
            record = submission_record(runs, statistics, args)
            outputs.append((args.out, (json.dumps(record, indent=2) + "\n").encode("utf-8")))
        for path, data in outputs:
            write_atomic(path, data)
    except SubmissionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(report_lines(runs, statistics)))
    print()
    print(table, end="")
    for path, _ in outputs:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
