"""submission.py: log parsing and refusals, statistics against hand-written formulas, submission.json,
the markdown table and the plot. Synthetic logs (well-formed, with controlled numbers) drive the
statistics; tiny real CPU runs of train_byte_model.py check that the real log format parses."""
from __future__ import annotations

import copy
import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import submission
import convert_to_bytes as ctb

REPO_ROOT = Path(__file__).resolve().parent.parent
LN2 = math.log(2)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CONFIG = {"DATA_LAYOUT": "auto", "NUM_LAYERS": 2, "MODEL_DIM": 32, "ITERATIONS": 6, "VAL_SLIDING_STRIDE": 16}
SEPARATOR = "=" * 100


# -----------------------------
# SYNTHETIC LOGS
# -----------------------------

def make_summary(seed: int, sliding_bpb: float, non_overlap_bpb: float | None = None, layout: str = "byte260",
                 val_targets: int = 2999, val_byte_targets: int = 2960, artifact_bytes: int = 15_900_000,
                 code_bytes: int = 60_000) -> dict:
    """A final_summary with the trainer's keys; losses follow from the BPB as the trainer's formula
    does (loss per target = bpb * ln2 * bytes / targets)."""
    non_overlap_bpb = sliding_bpb + 0.002 if non_overlap_bpb is None else non_overlap_bpb
    per_target = LN2 * val_byte_targets / val_targets

    def evaluation(shift: float) -> dict:
        return {"val_loss": (non_overlap_bpb + shift) * per_target, "val_bpb": non_overlap_bpb + shift,
                "sliding_val_loss": (sliding_bpb + shift) * per_target, "sliding_val_bpb": sliding_bpb + shift,
                "sliding_scored_targets": val_targets, "sliding_targets": val_targets,
                "val_targets": val_targets, "val_byte_targets": val_byte_targets, "score_method": "sliding",
                "score_bpb": sliding_bpb + shift, "score_val_loss": (sliding_bpb + shift) * per_target}

    total = artifact_bytes + code_bytes
    return {"run_id": f"run_seed{seed}", "seed": seed, "layout": layout, "device": "cuda",
            "device_name": "NVIDIA H100 80GB HBM3", "world_size": 8, "iterations": 20000, "steps": 7000 + seed,
            "train_time_ms": 599_500.0, "step_avg_ms": 85.6, "stopped_early": True, "final_weights": "ema",
            "heldout_bpb": {"raw": 1.2, "ema": 1.19}, "pre_quant": evaluation(-0.004), "post_quant": evaluation(0.0),
            "artifact": f"logs/run_seed{seed}.int6.ptz", "sliding_stride": 512, "context": 4096,
            "sliding_full_coverage": True, "artifact_bytes": artifact_bytes, "code_bytes": code_bytes,
            "total_bytes": total, "cap_bytes": 16_000_000, "under_cap": total <= 16_000_000,
            "code_sha256": "ab" * 32, "config": dict(CONFIG)}


def log_text(summary: dict | None, extra_lines: tuple[str, ...] = ()) -> str:
    """A log shaped like the trainer's: source code (with a decoy summary line of another seed, as the
    real source holds the prefix), separators, knobs, progress lines, then the summary."""
    decoy = dict(summary or make_summary(99, 9.0), seed=12345)
    lines = ['"""source of train_byte_model.py"""', '    rt.log("final_summary:" + json.dumps(summary))',
             "final_summary:" + json.dumps(decoy), SEPARATOR, 'environment:{"SEED": "1"}', "versions: python 3.11",
             SEPARATOR, "knob:SEED=1",
             "step:1/20000 train_loss:5.5000 train_time:100ms step_avg:100.00ms",
             "step:2/20000 train_loss:4.2500 train_time:190ms step_avg:95.00ms",
             "step:2/20000 val_loss:2.9000 val_bpb:4.1000 train_time:190ms step_avg:95.00ms",
             "step:3/20000 train_loss:3.7500 train_time:280ms step_avg:93.33ms",
             *extra_lines]
    if summary is not None:
        lines.append("final_summary:" + json.dumps(summary))
    return "\n".join(lines) + "\n"


def write_logs(directory: Path, summaries: list[dict], stem: str = "run") -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in summaries:
        paths.append(directory / f"{stem}_seed{s['seed']}.txt")
        paths[-1].write_text(log_text(s))
    return paths


def run_main(capsys, *argv) -> tuple[int, str, str]:
    code = submission.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -----------------------------
# HAND-WRITTEN STATISTICS (independent of submission.py's scipy calls)
# -----------------------------

def sample_std(values) -> float:
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def one_sample_by_hand(values, reference: float, margin: float) -> tuple[float, float]:
    """t and one-sided p for H1: mean < reference - margin."""
    n = len(values)
    t = (sum(values) / n - (reference - margin)) / (sample_std(values) / math.sqrt(n))
    return t, stats.t.sf(-t, n - 1)


def welch_by_hand(values, ref_values, margin: float) -> tuple[float, float, float]:
    """t, Welch-Satterthwaite df and one-sided p for H1: mean - ref_mean < -margin."""
    v1, v2 = sample_std(values) ** 2 / len(values), sample_std(ref_values) ** 2 / len(ref_values)
    t = (np.mean(values) - np.mean(ref_values) + margin) / math.sqrt(v1 + v2)
    df = (v1 + v2) ** 2 / (v1**2 / (len(values) - 1) + v2**2 / (len(ref_values) - 1))
    return t, df, stats.t.sf(-t, df)


# Mean 1.2194 vs baseline 1.2244: an improvement of 0.005 BPB, above the per-token margin
# (0.005 / (ln2 * 2.44) = 0.00296 BPB) and below the per-byte one (0.005 / ln2 = 0.00721 BPB).
CANDIDATE = [1.2190, 1.2199, 1.2187, 1.2200]
BASELINE = 1.2244


def test_one_sample_statistics_match_hand_computation(tmp_path, capsys):
    logs = write_logs(tmp_path / "logs", [make_summary(seed, v) for seed, v in zip((1, 2, 3, 4), CANDIDATE)])
    out_json = tmp_path / "submission.json"
    code, out, err = run_main(capsys, *logs, "--baseline", BASELINE, "--name", "Byte LM", "--github-id", "golfer",
                              "--blurb", "byte260 model", "--date", "2026-04-01", "--out", out_json)
    assert code == 0, err
    st = json.loads(out_json.read_text())["statistics"]

    mean, std, n = sum(CANDIDATE) / 4, sample_std(CANDIDATE), 4
    assert st["n"] == n and st["seeds"] == [1, 2, 3, 4]
    assert st["per_seed"] == {"1": 1.2190, "2": 1.2199, "3": 1.2187, "4": 1.2200}
    assert st["mean"] == pytest.approx(mean, abs=1e-12)
    assert st["std"] == pytest.approx(std, rel=1e-9)
    half = stats.t.ppf(0.995, n - 1) * std / math.sqrt(n)
    assert st["ci99_mean"] == pytest.approx([mean - half, mean + half], rel=1e-9)

    improvement = BASELINE - mean
    assert st["improvement_bpb"] == pytest.approx(improvement, abs=1e-12)
    assert st["improvement_nats_per_byte"] == pytest.approx(improvement * LN2, rel=1e-9)
    assert st["improvement_nats_per_token"] == pytest.approx(improvement * LN2 * 2.44, rel=1e-9)
    assert st["bytes_per_token"] == 2.44 and "--baseline-bytes-per-token" in st["bytes_per_token_source"]

    t0, p0 = one_sample_by_hand(CANDIDATE, BASELINE, 0.0)
    assert st["t_vs_reference"] == pytest.approx(t0, rel=1e-9) and st["p_vs_reference"] == pytest.approx(p0, rel=1e-6)
    by_unit = st["record_rule"]["by_unit"]
    for unit, margin, expect_met in (("nats-per-byte", 0.005 / LN2, False), ("nats-per-token", 0.005 / (LN2 * 2.44), True)):
        t, p = one_sample_by_hand(CANDIDATE, BASELINE, margin)
        assert by_unit[unit]["required_improvement_bpb"] == pytest.approx(margin, rel=1e-12)
        assert by_unit[unit]["t"] == pytest.approx(t, rel=1e-9)
        assert by_unit[unit]["p"] == pytest.approx(p, rel=1e-6, abs=1e-300)
        assert by_unit[unit]["df"] == n - 1
        assert by_unit[unit]["met"] is expect_met and bool(p < 0.01) is expect_met
    assert st["record_rule"]["unit"] == "nats-per-byte" and st["record_rule"]["met"] is False
    assert "record rule checked in nats-per-byte (--rule-unit): NOT MET" in out
    t, p = one_sample_by_hand(CANDIDATE, BASELINE, 0.005 / (LN2 * 2.44))
    assert (f"record rule in nats-per-token: improvement ≥ 0.005 nats (≥ {0.005 / (LN2 * 2.44):.5f} BPB) at p < 0.01: "
            f"t {t:.3f}, df 3.00, p {p:.3g}: met") in out
    assert f"= {improvement * LN2:+.5f} nats per byte (x ln2)" in out and "2.4400 bytes per token" in out


def test_rule_unit_and_bytes_per_token_options(tmp_path, capsys):
    logs = write_logs(tmp_path / "logs", [make_summary(seed, v) for seed, v in zip((1, 2, 3, 4), CANDIDATE)])
    out_json = tmp_path / "s.json"
    code, out, err = run_main(capsys, *logs, "--baseline", BASELINE, "--rule-unit", "nats-per-token",
                              "--baseline-bytes-per-token", "3.0", "--name", "n", "--github-id", "g", "--out", out_json)
    assert code == 0, err
    record = json.loads(out_json.read_text())
    st = record["statistics"]
    assert st["improvement_nats_per_token"] == pytest.approx((BASELINE - np.mean(CANDIDATE)) * LN2 * 3.0, rel=1e-9)
    t, p = one_sample_by_hand(CANDIDATE, BASELINE, 0.005 / (LN2 * 3.0))
    assert st["record_rule"]["by_unit"]["nats-per-token"]["t"] == pytest.approx(t, rel=1e-9)
    assert st["record_rule"]["met"] is True and record["p_value"] == pytest.approx(p, rel=1e-6, abs=1e-300)
    assert "record rule checked in nats-per-token (--rule-unit): MET" in out
    assert record["track"] == "10min_16mb"  # the synthetic logs are 8xH100 runs


def test_welch_comparison_matches_hand_computation(tmp_path, capsys):
    reference = [1.2290, 1.2301, 1.2279]
    logs = write_logs(tmp_path / "new", [make_summary(s, v) for s, v in zip((1, 2, 3, 4), CANDIDATE)])
    other_config = {**CONFIG, "MODEL_DIM": 64}  # the comparison set may be another configuration
    ref_summaries = [{**make_summary(s, v), "config": other_config, "code_sha256": "cd" * 32}
                     for s, v in zip((1, 2, 3), reference)]
    ref_logs = write_logs(tmp_path / "old", ref_summaries)
    out_json = tmp_path / "s.json"
    code, out, err = run_main(capsys, *logs, "--compare", *ref_logs, "--name", "n", "--github-id", "g", "--out", out_json)
    assert code == 0, err
    st = json.loads(out_json.read_text())["statistics"]
    assert st["reference"]["kind"] == "compare" and st["reference"]["bpb"] == pytest.approx(np.mean(reference))
    assert st["reference"]["std"] == pytest.approx(sample_std(reference), rel=1e-9)
    assert "Welch" in st["test"]
    improvement = np.mean(reference) - np.mean(CANDIDATE)
    assert st["improvement_bpb"] == pytest.approx(improvement, abs=1e-12)
    for unit, margin in (("nats-per-byte", 0.005 / LN2), ("nats-per-token", 0.005 / (LN2 * 2.44))):
        t, df, p = welch_by_hand(CANDIDATE, reference, margin)
        got = st["record_rule"]["by_unit"][unit]
        assert got["t"] == pytest.approx(t, rel=1e-9) and got["df"] == pytest.approx(df, rel=1e-9)
        assert got["p"] == pytest.approx(p, rel=1e-6)
        assert got["met"] is bool(p < 0.01)
    _, df, _ = welch_by_hand(CANDIDATE, reference, 0.0)
    half = stats.t.ppf(0.995, df) * math.sqrt(sample_std(CANDIDATE) ** 2 / 4 + sample_std(reference) ** 2 / 3)
    assert st["ci99_improvement_bpb"] == pytest.approx([improvement - half, improvement + half], rel=1e-9)


def test_token_mode_logs_use_measured_bytes_per_token(tmp_path, capsys):
    summaries = [make_summary(s, v, layout="tokens", val_targets=1000, val_byte_targets=2450)
                 for s, v in zip((1, 2, 3), (1.20, 1.21, 1.205))]
    out_json = tmp_path / "s.json"
    code, out, err = run_main(capsys, *write_logs(tmp_path, summaries), "--baseline", BASELINE,
                              "--name", "n", "--github-id", "g", "--out", out_json)
    assert code == 0, err
    st = json.loads(out_json.read_text())["statistics"]
    assert st["bytes_per_token"] == pytest.approx(2.45) and "measured" in st["bytes_per_token_source"]
    # nats per token = dBPB * ln2 / (tokens per byte)
    assert st["improvement_nats_per_token"] == pytest.approx((BASELINE - 1.205) * LN2 / (1000 / 2450), rel=1e-9)
    assert st["val_loss_unit"] == "nats per token"


def test_submission_json_fields(tmp_path, capsys):
    summaries = [make_summary(s, v, artifact_bytes=15_800_000 + s) for s, v in zip((1, 2, 3, 4), CANDIDATE)]
    out_json = tmp_path / "out" / "submission.json"
    code, _, err = run_main(capsys, *write_logs(tmp_path, summaries), "--baseline", BASELINE, "--name", "Byte LM",
                            "--github-id", "golfer", "--author", "A. Golfer", "--blurb", "bytes!",
                            "--date", "2026-04-01T00:00:00Z", "--metric", "non-overlap", "--out", out_json)
    assert code == 0, err
    record = json.loads(out_json.read_text())
    assert {k: record[k] for k in ("author", "github_id", "name", "blurb", "date", "track")} == {
        "author": "A. Golfer", "github_id": "golfer", "name": "Byte LM", "blurb": "bytes!",
        "date": "2026-04-01T00:00:00Z", "track": "10min_16mb"}
    non_overlap = [s["post_quant"]["val_bpb"] for s in summaries]
    assert record["val_bpb"] == record["mean_val_bpb"] == pytest.approx(np.mean(non_overlap))
    assert record["val_loss"] == record["mean_val_loss"] == pytest.approx(np.mean([s["post_quant"]["val_loss"] for s in summaries]))
    assert record["pre_quant_val_bpb"] == pytest.approx(np.mean([s["pre_quant"]["val_bpb"] for s in summaries]))
    assert record["bytes_total"] == 15_800_004 + 60_000 and record["bytes_model_int6_zstd"] == 15_800_004
    assert record["bytes_code"] == 60_000 and record["wallclock_seconds"] == pytest.approx(599.5)
    assert set(record["seed_results"]) == {"1", "2", "3", "4"}
    seed2 = record["seed_results"]["2"]
    assert seed2["val_bpb"] == pytest.approx(summaries[1]["post_quant"]["val_bpb"])
    assert seed2["post_quant_sliding_val_bpb"] == pytest.approx(CANDIDATE[1])
    assert seed2["steps"] == 7002 and seed2["ms_per_step"] == 85.6 and seed2["bytes_total"] == 15_860_002
    assert record["statistics"]["metric"] == "post_quant_val_bpb"
    assert record["p_value"] == record["statistics"]["record_rule"]["by_unit"]["nats-per-byte"]["p"]
    assert record["statistics"]["warnings"] == []  # synthetic logs claim 8xH100 and 599.5 s
    assert [p.name for p in out_json.parent.iterdir()] == ["submission.json"]  # no temporary file left


def test_table_lists_each_seed_then_statistics(tmp_path, capsys):
    summaries = [make_summary(s, v) for s, v in zip((3, 1, 2), CANDIDATE)]
    table_path = tmp_path / "results.md"
    code, out, err = run_main(capsys, *write_logs(tmp_path, summaries), "--baseline", BASELINE, "--table", table_path)
    assert code == 0, err
    rows = table_path.read_text().splitlines()
    assert rows[0] == ("| seed | steps | ms/step | sliding BPB | non-overlap BPB | pre-quant sliding BPB | artifact bytes | "
                       "total bytes |")
    assert rows[2:5] == [f"| {s['seed']} | {7000 + s['seed']} | 85.6 | {s['post_quant']['sliding_val_bpb']:.5f} | "
                         f"{s['post_quant']['val_bpb']:.5f} | {s['pre_quant']['sliding_val_bpb']:.5f} | 15,900,000 | "
                         f"15,960,000 |" for s in summaries]
    mean = np.mean(CANDIDATE[:3])
    assert rows[5] == f"| mean |  |  | {mean:.5f} | {mean + 0.002:.5f} | {mean - 0.004:.5f} |  |  |"
    assert rows[6].startswith(f"| std (ddof=1) |  |  | {sample_std(CANDIDATE[:3]):.5f} |")
    assert rows[8:10] == ["| statistic | value |", "|---|---|"]
    assert f"| mean ± std | {mean:.5f} ± {sample_std(CANDIDATE[:3]):.5f} BPB (sample std, ddof=1) |" in rows
    assert "| record rule checked in nats-per-byte (--rule-unit) | NOT MET |" in rows
    # the console shows the same seed rows, and each statistic as a `label: value` line
    assert "\n".join(rows[:8]) in out and f"mean ± std: {mean:.5f} ± " in out
    assert "record rule checked in nats-per-byte (--rule-unit): NOT MET" in out


def test_fewer_than_two_logs_reports_undefined(tmp_path, capsys):
    out_json, table = tmp_path / "s.json", tmp_path / "t.md"
    code, out, err = run_main(capsys, *write_logs(tmp_path, [make_summary(1, 1.20)]), "--baseline", BASELINE,
                              "--name", "n", "--github-id", "g", "--out", out_json, "--table", table)
    assert code == 0, err
    st = json.loads(out_json.read_text())["statistics"]
    assert st["std"] is None and st["ci99_mean"] is None and st["p_vs_reference"] is None
    assert st["record_rule"]["met"] is False and st["record_rule"]["by_unit"]["nats-per-byte"]["p"] is None
    assert "at least 2 seeds" in st["undefined"] and "at least 2 seeds" in out
    assert st["improvement_bpb"] == pytest.approx(BASELINE - 1.20)  # no std needed
    assert "| std (ddof=1) |  |  | undefined | undefined | undefined |  |  |" in table.read_text()


def test_identical_values_report_undefined_not_infinite(tmp_path, capsys):
    out_json = tmp_path / "s.json"
    code, _, err = run_main(capsys, *write_logs(tmp_path, [make_summary(1, 1.2), make_summary(2, 1.2)]),
                            "--baseline", BASELINE, "--name", "n", "--github-id", "g", "--out", out_json)
    assert code == 0, err
    st = json.loads(out_json.read_text())["statistics"]
    assert st["std"] == 0.0 and st["ci99_mean"] is None and st["record_rule"]["by_unit"]["nats-per-token"]["t"] is None
    assert "no spread" in st["undefined"]


def test_warnings_for_runs_that_cannot_be_records(tmp_path, capsys):
    summaries = [dict(make_summary(s, v), world_size=1, device_name="cpu") for s, v in zip((1, 2), CANDIDATE)]
    summaries[1]["train_time_ms"] = 700_000.0
    code, _, err = run_main(capsys, *write_logs(tmp_path, summaries), "--baseline", BASELINE)
    assert code == 0
    assert "warning: not an 8xH100 run (world_size 1, device 'cpu')\n" in err
    assert "training took 700.0 s > 600 s\n" in err


@pytest.mark.parametrize("key, low, high, warned", [
    ("steps", 7000, 7700, False),  # max/min - 1 = 10 %: within the spread seeds of one configuration show
    ("steps", 7000, 7701, True),
    ("step_avg_ms", 85.0, 93.5, False),
    ("step_avg_ms", 85.0, 93.6, True),
])
def test_warning_when_seeds_trained_unlike_each_other(tmp_path, capsys, key, low, high, warned):
    summaries = [dict(make_summary(s, v), steps=7300, step_avg_ms=88.0) for s, v in zip((1, 2, 3), CANDIDATE)]
    summaries[0][key], summaries[2][key] = high, low  # seed 2 lies between them
    logs = write_logs(tmp_path, summaries)
    out_json = tmp_path / "s.json"
    code, _, err = run_main(capsys, *logs, "--baseline", BASELINE, "--name", "n", "--github-id", "g", "--out", out_json)
    assert code == 0 and out_json.exists()
    expected = f"{key} differs by more than 10% across seeds: {low:g} ({logs[2]}) vs {high:g} ({logs[0]})"
    assert (f"warning: {expected}\n" in err) is warned and err.count("\n") == int(warned), err
    assert (expected in json.loads(out_json.read_text())["statistics"]["warnings"]) is warned


def test_incomplete_logs_are_skipped_when_complete_ones_remain(tmp_path, capsys):
    """A glob over logs/ also matches a crashed or interrupted run's log: skip it, say so, use the rest."""
    logs = write_logs(tmp_path, [make_summary(1, 1.219), make_summary(2, 1.2195)])
    crashed, rerun = tmp_path / "crashed.txt", tmp_path / "rerun.txt"
    crashed.write_text(log_text(None))
    rerun.write_text(log_text(make_summary(3, 1.2199)) + log_text(None))  # a reused RUN_ID that did not finish
    out_json = tmp_path / "s.json"
    code, out, err = run_main(capsys, crashed, *logs, rerun, "--baseline", BASELINE, "--name", "n", "--github-id", "g",
                              "--out", out_json)
    assert code == 0, err
    assert err.splitlines()[:2] == [f"skipping {crashed}: incomplete log (no final_summary line)",
                                    f"skipping {rerun}: incomplete log (no final_summary line)"]
    st = json.loads(out_json.read_text())["statistics"]
    assert st["seeds"] == [1, 2] and st["mean"] == pytest.approx((1.219 + 1.2195) / 2)
    code, out, err = run_main(capsys, crashed, rerun, "--baseline", BASELINE)
    assert code == 2 and out == "" and err == f"error: {crashed}: incomplete log (no final_summary line)\n"


@pytest.mark.parametrize("world_size, device_name, track", [
    (8, "NVIDIA H100 80GB HBM3", "10min_16mb"),
    (8, "NVIDIA A100-SXM4-80GB", "non_record_16mb"),
    (1, "NVIDIA H100 80GB HBM3", "non_record_16mb"),
    (1, "cpu (2 cores)", "non_record_16mb"),
])
def test_track_defaults_to_record_only_for_8xh100(tmp_path, capsys, world_size, device_name, track):
    summaries = [dict(make_summary(s, v), world_size=world_size, device_name=device_name) for s, v in zip((1, 2), CANDIDATE)]
    logs = write_logs(tmp_path, summaries)
    out_json = tmp_path / "s.json"
    common = (*logs, "--baseline", BASELINE, "--name", "n", "--github-id", "g", "--out", out_json)
    assert run_main(capsys, *common)[0] == 0
    assert json.loads(out_json.read_text())["track"] == track
    assert run_main(capsys, *common, "--track", "my_track")[0] == 0
    assert json.loads(out_json.read_text())["track"] == "my_track"


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_keep_the_umask(tmp_path, capsys, umask):
    pytest.importorskip("matplotlib")
    logs = write_logs(tmp_path / "logs", [make_summary(1, 1.219), make_summary(2, 1.2195)])
    outputs = [tmp_path / "out" / name for name in ("submission.json", "results.md", "curves.png")]
    old = os.umask(umask)
    try:
        code, _, err = run_main(capsys, *logs, "--baseline", BASELINE, "--name", "n", "--github-id", "g",
                                "--out", outputs[0], "--table", outputs[1], "--plot", outputs[2])
    finally:
        os.umask(old)
    assert code == 0, err
    assert [oct(p.stat().st_mode & 0o777) for p in outputs] == [oct(0o666 & ~umask)] * 3


# -----------------------------
# REFUSALS
# -----------------------------

def broken(mutate):
    """The summary of seed 2 after `mutate` edits it in place (returning nothing) or replaces it."""
    summary = make_summary(2, 1.2195)
    return mutate(summary) or summary


def without(path: str):
    def mutate(summary):
        *parents, leaf = path.split(".")
        target = summary
        for key in parents:
            target = target[key]
        del target[leaf]
    return mutate


MALFORMED = {
    "truncated_json": (lambda p: p.write_text(log_text(make_summary(2, 1.2195))[:-40] + "\n"),
                       "final_summary is not valid JSON"),
    "no_separator": (lambda p: p.write_text("step:1/6 train_loss:5.0 train_time:1ms step_avg:1ms\n"),
                     "not a train_byte_model.py log"),
    "empty_file": (lambda p: p.write_text(""), "not a train_byte_model.py log"),
    "missing_key": (lambda p: p.write_text(log_text(broken(without("post_quant.sliding_val_bpb")))),
                    "final_summary lacks post_quant.sliding_val_bpb"),
    "missing_config": (lambda p: p.write_text(log_text(broken(without("config")))), "final_summary lacks config"),
    "wrong_type": (lambda p: p.write_text(log_text(broken(lambda s: s.update(total_bytes="15960000"))))
                   , "wrongly typed total_bytes"),
    "non_finite": (lambda p: p.write_text(log_text(broken(lambda s: s["post_quant"].update(val_bpb=float("nan"))))),
                   "final_summary has non-finite or non-numeric post_quant.val_bpb"),
    "eval_only": (lambda p: p.write_text(log_text({"eval_only": True, "seed": 2})), "EVAL_ONLY re-scoring log"),
    "over_cap": (lambda p: p.write_text(log_text(make_summary(2, 1.2195, artifact_bytes=15_940_001))),
                 "over the cap: total_bytes 16,000,001 > 16,000,000"),
    "verdict_contradicts_bytes": (
        lambda p: p.write_text(log_text(broken(lambda s: s.update(under_cap=False)))), "over the cap"),
    "inconsistent_total": (
        lambda p: p.write_text(log_text(broken(lambda s: s.update(total_bytes=100)))),
        "total_bytes 100 != artifact_bytes 15900000 + code_bytes 60000"),
    "wrong_cap": (lambda p: p.write_text(log_text(broken(lambda s: s.update(cap_bytes=16_777_216)))),
                  "cap_bytes 16777216 is not the challenge's 16000000"),
    "mixed_config": (lambda p: p.write_text(log_text(broken(lambda s: s["config"].update(MODEL_DIM=64, NUM_LAYERS=3)))),
                     "mixed configurations: differs from {first} in MODEL_DIM (32 vs 64), NUM_LAYERS (2 vs 3)"),
    "extra_knob": (lambda p: p.write_text(log_text(broken(lambda s: s["config"].update(NEW_KNOB=1)))),
                   "NEW_KNOB (absent vs 1)"),
    "other_code": (lambda p: p.write_text(log_text(broken(lambda s: s.update(code_sha256="cd" * 32)))),
                   "written by a different train_byte_model.py than {first} (code_sha256 cdcdcdcdcdcd vs abababababab)"),
    "other_world_size": (lambda p: p.write_text(log_text(broken(lambda s: s.update(world_size=1)))),
                         "world_size 1 differs from {first} (8)"),
    "other_layout": (lambda p: p.write_text(log_text(broken(lambda s: s.update(layout="raw256")))),
                     "layout 'raw256' differs"),
    "other_val_set": (lambda p: p.write_text(log_text(make_summary(2, 1.2195, val_targets=5000))),
                      "scored on a different val set than {first}"),
    "duplicate_seed": (lambda p: p.write_text(log_text(make_summary(1, 1.2195))), "seed 1 duplicates {first}"),
    "partial_sliding": (lambda p: p.write_text(log_text(broken(lambda s: s.update(sliding_full_coverage=False)))),
                        "the sliding eval covered only part of val"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_log_is_refused_with_one_line_and_nothing_written(tmp_path, capsys, case):
    make_bad, expected = MALFORMED[case]
    good = write_logs(tmp_path / "logs", [make_summary(1, 1.2190)])[0]
    bad = tmp_path / "logs" / "bad.txt"
    make_bad(bad)
    outputs = [tmp_path / "submission.json", tmp_path / "results.md", tmp_path / "curves.png"]
    code, out, err = run_main(capsys, good, bad, "--baseline", BASELINE, "--name", "n", "--github-id", "g",
                              "--out", outputs[0], "--table", outputs[1], "--plot", outputs[2])
    assert code == 2 and out == ""
    assert err.startswith(f"error: {bad}: ") and expected.format(first=good) in err and err.count("\n") == 1, err
    assert not any(p.exists() for p in outputs) and not list(tmp_path.glob(".*"))  # nor a temporary file


def test_partial_sliding_coverage_is_fine_for_the_non_overlap_metric(tmp_path, capsys):
    summaries = [make_summary(1, 1.219), make_summary(2, 1.2195)]
    for s in summaries:
        s["sliding_full_coverage"] = False
    code, out, err = run_main(capsys, *write_logs(tmp_path, summaries), "--baseline", BASELINE, "--metric", "non-overlap")
    assert code == 0, err
    assert "post-quant non-overlapping val_bpb" in out


def test_compare_set_is_checked_too(tmp_path, capsys):
    logs = write_logs(tmp_path / "new", [make_summary(1, 1.219), make_summary(2, 1.2195)])
    ref_logs = write_logs(tmp_path / "old", [make_summary(1, 1.23)])
    dup = tmp_path / "old" / "dup.txt"
    dup.write_text(log_text(make_summary(1, 1.231)))
    code, _, err = run_main(capsys, *logs, "--compare", *ref_logs, dup)
    assert code == 2 and err == f"error: {dup}: seed 1 duplicates {ref_logs[0]}\n"


def test_last_run_of_an_appended_log_is_used(tmp_path, capsys):
    """A reused RUN_ID appends a new run to the same file; its summary, not the first, counts."""
    path = tmp_path / "run.txt"
    path.write_text(log_text(make_summary(5, 1.25)) + log_text(make_summary(6, 1.22)))
    run = submission.read_run(path)
    assert run.seed == 6 and run.post("sliding_val_bpb") == 1.22
    assert run.train_curve == [(100.0, 5.5), (190.0, 4.25), (280.0, 3.75)] and run.val_curve == [(190.0, 4.1)]


def test_option_errors(tmp_path, capsys):
    logs = write_logs(tmp_path, [make_summary(1, 1.219), make_summary(2, 1.2195)])
    code, _, err = run_main(capsys, *logs, "--baseline", BASELINE, "--out", tmp_path / "s.json")
    assert code == 2 and err == "error: --out needs --name and --github-id (the official submission.json carries both)\n"
    code, _, err = run_main(capsys, *logs, "--baseline", BASELINE, "--baseline-bytes-per-token", "0")
    assert code == 2 and "--baseline-bytes-per-token must be positive" in err
    code, _, err = run_main(capsys, tmp_path / "missing.txt", "--baseline", BASELINE)
    assert code == 2 and err.startswith(f"error: {tmp_path / 'missing.txt'}: cannot read")
    with pytest.raises(SystemExit):  # argparse: a reference is required
        submission.main([str(p) for p in logs])
    assert not (tmp_path / "s.json").exists()


# -----------------------------
# PLOT
# -----------------------------

def test_plot_is_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "curves.png"
    code, out, err = run_main(capsys, *write_logs(tmp_path, [make_summary(1, 1.219), make_summary(2, 1.2195)]),
                              "--baseline", BASELINE, "--plot", plot)
    assert code == 0, err
    assert plot.read_bytes()[:8] == PNG_MAGIC and f"wrote {plot}" in out


def test_without_matplotlib_plot_fails_clearly_and_the_rest_works(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` raise ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    logs = write_logs(tmp_path, [make_summary(1, 1.219), make_summary(2, 1.2195)])
    table = tmp_path / "t.md"
    code, out, err = run_main(capsys, *logs, "--baseline", BASELINE, "--table", table, "--plot", tmp_path / "c.png")
    assert code == 2 and err.startswith("error: --plot needs matplotlib") and err.count("\n") == 1
    assert not table.exists() and not (tmp_path / "c.png").exists()
    code, _, err = run_main(capsys, *logs, "--baseline", BASELINE, "--table", table)
    assert code == 0 and table.exists(), err


# -----------------------------
# REAL TINY RUNS OF THE TRAINER
# -----------------------------

def tiny_documents(n_docs: int, seed: int) -> list[str]:
    """Short English-ish documents with some non-ASCII, deterministic."""
    rng = random.Random(seed)
    words = "the of and to in is that for it as with was on be by this café 25°C € 😀".split()
    return [" ".join(rng.choice(words) for _ in range(rng.randint(5, 40))) for _ in range(n_docs)]


def byte260_stream(docs: list[str]) -> np.ndarray:
    """BOS (1) before each document, byte b as id b + 4."""
    return np.array([i for d in docs for i in (ctb.BOS_ID, *(b + ctb.BYTE_OFFSET for b in d.encode()))])


TINY_RUN = {"MODEL_DIM": "32", "NUM_LAYERS": "2", "NUM_HEADS": "2", "NUM_KV_HEADS": "2", "TRAIN_SEQ_LEN": "64",
            "TRAIN_BATCH_TOKENS": "2048", "ITERATIONS": "6", "WARMDOWN_ITERS": "2", "WARMUP_STEPS": "0",
            "TRAIN_LOG_EVERY": "2", "BIGRAM_HASH_BUCKETS": "64", "BIGRAM_HASH_DIM": "8", "SWA_EVERY": "2",
            "HELDOUT_TOKENS": "1024", "VAL_SLIDING_STRIDE": "16", "EVAL_BATCH_SEQS": "8", "MAX_WALLCLOCK_SECONDS": "0",
            "VAL_LOSS_EVERY": "3"}
REAL_SEEDS = (1, 2)


@pytest.fixture(scope="session")
def real_logs(tmp_path_factory) -> list[Path]:
    """Logs of tiny CPU trainer runs, one per seed, run side by side with one thread each."""
    root = tmp_path_factory.mktemp("real_runs")
    data = root / "data"
    data.mkdir()
    ctb.write_shard(data / "fineweb_val_000000.bin", byte260_stream(tiny_documents(60, seed=1))[:3000])
    ctb.write_shard(data / "fineweb_train_000000.bin", byte260_stream(tiny_documents(600, seed=2)))
    (data / "conversion.json").write_text(json.dumps({"layout": "byte260", "vocab_size": 260}))
    procs = []
    for seed in REAL_SEEDS:
        env = {**os.environ, **TINY_RUN, "DATA_PATH": str(data), "LOG_DIR": str(root / "logs"),
               "RUN_ID": f"tiny_seed{seed}", "SEED": str(seed), "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, str(REPO_ROOT / "train_byte_model.py")], env=env,
                                      cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    for proc in procs:
        output, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, output[-3000:]
    return [root / "logs" / f"tiny_seed{seed}.txt" for seed in REAL_SEEDS]


def exact_line_values(path: Path) -> dict[str, float]:
    """The trainer's human-readable `final_int6_zstd22_roundtrip_exact` line, parsed independently."""
    line = [text for text in path.read_text().splitlines() if text.startswith("final_int6_zstd22_roundtrip_exact ")][-1]
    return {k: float(v) for k, v in (field.split(":") for field in line.split()[1:])}


@pytest.mark.slow
def test_real_trainer_logs_make_a_submission(real_logs, tmp_path, capsys):
    out_json, table, plot = tmp_path / "submission.json", tmp_path / "results.md", tmp_path / "curves.png"
    code, out, err = run_main(capsys, *real_logs, "--baseline", 5.0, "--name", "tiny", "--github-id", "golfer",
                              "--out", out_json, "--table", table, "--plot", plot)
    assert code == 0, err
    record = json.loads(out_json.read_text())
    exact = [exact_line_values(p) for p in real_logs]
    assert set(record["seed_results"]) == {str(s) for s in REAL_SEEDS}
    for seed, values in zip(REAL_SEEDS, exact):
        result = record["seed_results"][str(seed)]
        assert result["val_bpb"] == pytest.approx(values["sliding_val_bpb"], abs=1e-8)
        assert result["post_quant_non_overlap_val_bpb"] == pytest.approx(values["val_bpb"], abs=1e-8)
        assert result["steps"] == 6
    sliding = [v["sliding_val_bpb"] for v in exact]
    assert record["val_bpb"] == pytest.approx(np.mean(sliding), abs=1e-8)
    assert record["statistics"]["std"] == pytest.approx(sample_std(sliding), abs=1e-7)
    assert record["bytes_code"] == (REPO_ROOT / "train_byte_model.py").stat().st_size
    assert record["bytes_total"] < 16_000_000 and record["statistics"]["n"] == 2
    assert "not an 8xH100 run" in err and record["track"] == "non_record_16mb"
    assert plot.read_bytes()[:8] == PNG_MAGIC and table.read_text().split("\n\n")[0] in out

    runs = [submission.read_run(p) for p in real_logs]
    assert [len(r.train_curve) for r in runs] == [6, 6]  # steps 1..6: the first 10 are always logged
    assert [len(r.val_curve) for r in runs] == [3, 3]  # VAL_LOSS_EVERY=3: steps 0, 3 and 6


@pytest.mark.slow
def test_real_logs_with_changed_knob_are_refused(real_logs, tmp_path, capsys):
    """A real log edited the way a different run would differ: its summary's config and seed."""
    text = real_logs[1].read_text()
    head, summary_line = text.rstrip("\n").rsplit("\n", 1)
    summary = json.loads(summary_line.removeprefix("final_summary:"))
    changed = copy.deepcopy(summary)
    changed["config"]["MATRIX_LR"] = 0.02
    other = tmp_path / "other.txt"
    other.write_text(head + "\nfinal_summary:" + json.dumps(changed) + "\n")
    code, _, err = run_main(capsys, real_logs[0], other, "--baseline", 5.0)
    assert code == 2 and err == f"error: {other}: mixed configurations: differs from {real_logs[0]} in MATRIX_LR (0.025 vs 0.02)\n"
