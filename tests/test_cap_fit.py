"""The export's fit to SIZE_CAP (cap_fit.py): the ladder, a search whose tries do not depend on the number of ranks,
and whole runs that land under a cap their configured export misses, or say what to do when nothing fits."""

import json

import pytest

import cap_fit
import train_byte_model as tbm
from helpers import final_summary, log_lines, make_byte_dataset, run_trainer
from test_quant import GPTQ_ENV

FIT_ENV = {**GPTQ_ENV, "QUANT_CLIP": "max", "EMBED_BITS": "8", "CODEC": "zstd", "NUM_LAYERS": "1"}


def test_the_ladder_goes_only_coarser_clips_first_then_embedding_bits():
    ladder = cap_fit.ladder(tbm.Hyperparameters({}))
    assert ladder[0] == ("std:2.5", 8) and ladder[-3:] == [("std:32.21", 8), ("std:32.21", 7), ("std:32.21", 6)]
    ks = [float(clip[4:]) for clip, _ in ladder[:-2]]
    assert ks == sorted(ks) and len(ks) == 60 and ks[1] / ks[0] == pytest.approx(2 ** (1 / 16), rel=1e-3)
    configured = cap_fit.ladder(tbm.Hyperparameters({"QUANT_CLIP": "std:12.85", "EMBED_BITS": "7"}))
    assert float(configured[0][0][4:]) > 12.85 and configured[-2:] == [("std:32.21", 7), ("std:32.21", 6)]


def fake_fit(monkeypatch, sizes: list[int], errors: list[float], cap: int) -> dict:
    """cap_fit.fit on one process with tries that cost `sizes[i]` bytes (the ladder's i-th setting), no encoding."""
    args = tbm.Hyperparameters({"SIZE_CAP": str(cap)})
    settings = cap_fit.ladder(args)
    monkeypatch.setattr(cap_fit, "code_bytes", lambda: 0)
    monkeypatch.setattr(cap_fit, "configured_codecs", lambda rt, blob: {})
    monkeypatch.setattr(cap_fit, "try_setting", lambda setting, *_: (
        {"setting": f"{setting}", "artifact_bytes": sizes[settings.index(setting)],
         "error": errors[settings.index(setting)], "ms": 0.0}, b"%d" % settings.index(setting)))
    rt = tbm.Runtime(0, 1, tbm.torch.device("cpu"), bf16=False, compile=False)
    blob, report = cap_fit.fit(args, rt, None, {}, None, b"configured", 10**9)
    report["blob"] = blob
    return report


def test_the_search_finds_the_first_setting_that_fits_in_two_rounds(monkeypatch):
    sizes = list(range(1000, 1000 - 62 * 10, -10))  # falling along the ladder
    report = fake_fit(monkeypatch, sizes, [float(i) for i in range(62)], cap=800)
    first = sizes.index(800)
    assert report["blob"] == b"%d" % first and report["rounds"] == 2 and len(report["tries"]) <= 16
    assert report["chosen"] == f"{cap_fit.ladder(tbm.Hyperparameters({}))[first]}"


def test_of_the_settings_that_fit_the_smallest_error_wins_and_nothing_fitting_keeps_the_configured(monkeypatch):
    sizes = list(range(1000, 1000 - 62 * 10, -10))
    errors = [100.0 - i for i in range(62)]  # here a coarser setting happens to err less
    report = fake_fit(monkeypatch, sizes, errors, cap=800)
    fitting = [t for t in report["tries"] if t["fits"]]
    assert report["chosen"] == min(fitting, key=lambda t: t["error"])["setting"]
    none = fake_fit(monkeypatch, sizes, errors, cap=10)
    assert none["chosen"] is None and none["blob"] == b"configured" and none["rounds"] >= 2


def test_tries_depend_on_results_only_not_on_the_ranks():
    """Each round's indices come from (lo, hi) alone: two ranks split the same list that one rank walks."""
    assert cap_fit.next_round(0, 62) == [6, 13, 20, 27, 34, 41, 48, 55]
    assert cap_fit.next_round(21, 27) == [21, 22, 23, 24, 25, 26]
    one_rank = cap_fit.next_round(0, 62)
    assert sorted(one_rank[0::2] + one_rank[1::2]) == one_rank


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """The tiny GPTQ model exported at its configured max clip, under the default cap."""
    log_dir = tmp_path_factory.mktemp("fit")
    env = {**FIT_ENV, "DATA_PATH": str(make_byte_dataset(log_dir / "bytes", train_bytes=40_000, val_bytes=3_000))}
    proc = run_trainer({**env, "RUN_ID": "reference"}, log_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return env, log_dir, final_summary(log_dir, "reference")


@pytest.mark.slow
def test_a_run_over_its_cap_ends_under_it_with_the_ladder_in_its_log(reference_run):
    env, log_dir, reference = reference_run
    cap = reference["code_bytes"] + int(0.8 * reference["artifact_bytes"])
    proc = run_trainer({**env, "RUN_ID": "fitted", "SIZE_CAP": str(cap)}, log_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary, lines = final_summary(log_dir, "fitted"), log_lines(log_dir, "fitted")
    fit = summary["export"]["cap_fit"]
    assert summary["under_cap"] and summary["total_bytes"] <= cap == summary["cap_bytes"]
    assert fit["configured"] == "QUANT_CLIP=max EMBED_BITS=8" and fit["chosen"].startswith("QUANT_CLIP=std:")
    assert sum(line.startswith("cap_fit_try: ") for line in lines) == len(fit["tries"]) >= 2
    assert any(line.startswith("export_time:") and f" cap_fit:{fit['chosen']} (configured " in line for line in lines)
    assert any("WARNING: the configured export is projected over SIZE_CAP; the cap fit will probably choose "
               "QUANT_CLIP=std:" in line for line in lines)
    assert "cap_fit.py" in next(line for line in lines if line.startswith("artifact:"))
    header, _ = tbm.decode_artifact(log_dir / "fitted.int6.ptz")
    assert f"QUANT_CLIP={header['export']['quant_clip']} EMBED_BITS={header['export']['embed_bits']}" == fit["chosen"]
    post, ref = summary["post_quant"]["sliding_val_bpb"], reference["post_quant"]["sliding_val_bpb"]
    assert abs(post - ref) < 0.02 and proc.stdout.strip().splitlines()[-1].startswith("score: ")


@pytest.mark.slow
def test_a_cap_nothing_reaches_ends_the_run_saying_what_to_run(reference_run):
    env, log_dir, reference = reference_run
    proc = run_trainer({**env, "RUN_ID": "hopeless", "SIZE_CAP": str(reference["code_bytes"] + 1000)}, log_dir)
    assert proc.returncode == 1
    over = [line for line in proc.stdout.splitlines() if line.startswith("OVER CAP:")]
    assert len(over) == 1 and f"EXPORT_ONLY={log_dir / 'hopeless.final.pt'} QUANT_CLIP=std:K" in over[0]
    assert (log_dir / "hopeless.final.pt").is_file() and final_summary(log_dir, "hopeless")["export"]["cap_fit"]["chosen"] is None


@pytest.mark.slow
def test_export_only_fits_a_smaller_cap_and_two_ranks_choose_what_one_does(reference_run):
    """Re-exporting a finished run's weights under a smaller SIZE_CAP gives a file under it; on two gloo processes the
    calibration is shared out, and the tries and the choice are one process's."""
    env, log_dir, reference = reference_run
    cap = reference["code_bytes"] + int(0.75 * reference["artifact_bytes"])
    fits = {}
    for nproc in (1, 2):
        run = f"again_{nproc}"
        knobs = {**env, "RUN_ID": run, "SIZE_CAP": str(cap), "EXPORT_ONLY": str(log_dir / "reference.final.pt")}
        proc = run_trainer(knobs, log_dir, nproc=nproc)
        assert proc.returncode == 0, proc.stderr[-3000:]
        summary = final_summary(log_dir, run)
        assert summary["under_cap"] and summary["total_bytes"] <= cap
        fits[nproc] = summary["export"]["cap_fit"]
    assert fits[1]["chosen"] == fits[2]["chosen"]
    same = lambda fit: [(t["setting"], t["artifact_bytes"], t["error"]) for t in fit["tries"]]  # noqa: E731
    assert same(fits[1]) == same(fits[2])  # the Hessians are one rank's: each try's file and error, to the bit
    assert {t["rank"] for t in fits[2]["tries"]} == {0, 1}


@pytest.mark.slow
def test_export_only_takes_a_resumable_checkpoint(reference_run, tmp_path):
    env, _, _ = reference_run
    knobs = {**env, "RUN_ID": "crashed", "CHECKPOINT_EVERY": "3", "ITERATIONS": "3"}
    assert run_trainer(knobs, tmp_path).returncode == 0
    proc = run_trainer({**env, "RUN_ID": "rescued", "EXPORT_ONLY": str(tmp_path / "crashed.ckpt")}, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert any(line.startswith(f"export_only: {tmp_path / 'crashed.ckpt'} is a checkpoint at step 3")
               for line in log_lines(tmp_path, "rescued"))
    assert json.loads(json.dumps(final_summary(tmp_path, "rescued")["export_only"])).endswith("crashed.ckpt")
