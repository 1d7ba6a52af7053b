"""Training loop and end of run, as a user runs them: real CPU processes on tiny models."""

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers import REPO, TINY_ENV, TRAINER, final_summary, log_lines, make_byte_dataset, run_trainer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_byte_dataset(tmp_path_factory.mktemp("bytes"))


@pytest.fixture(scope="module")
def finished_run(dataset, tmp_path_factory):
    """One tiny run to the end: 20 steps, validation every 10, sliding eval, export, round trip."""
    log_dir = tmp_path_factory.mktemp("logs")
    env = {**TINY_ENV, "DATA_PATH": str(dataset), "RUN_ID": "e2e", "ITERATIONS": "20", "WARMDOWN_ITERS": "5",
           "VAL_LOSS_EVERY": "10", "TRAIN_LOG_EVERY": "5"}
    proc = run_trainer(env, log_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return env, log_dir, proc


def test_log_has_every_required_line(finished_run):
    env, log_dir, proc = finished_run
    text = (log_dir / "e2e.txt").read_text()
    assert text.startswith(TRAINER.read_text())  # the script's source heads the log
    lines = log_lines(log_dir, "e2e")
    for pattern in [r"knob:TRAIN_SEQ_LEN=64 \(env\)", r"knob:MATRIX_LR=0.025 \(default\)", r"recipe:frontier device:cpu ",
                    r"attention_kernel:sdpa",
                    r"model_params:\d+", r"projected_total_bytes:\d+", r"warmup_steps:0 \(nothing is compiled\)",
                    r"end_of_training_reserve:\d+ms gptq:\d+ms \(\d+ calibration rounds\) heldout:\d+ms \(3 weight candidates\)",
                    r"step:1/20 train_loss:[\d.]+ train_time:\d+ms step_avg:[\d.]+ms",
                    r"step:10/20 val_loss:[\d.]+ val_bpb:[\d.]+ train_time:\d+ms step_avg:[\d.]+ms",
                    r"step:20/20 val_loss:[\d.]+ val_bpb:[\d.]+",
                    r"final_weights:(raw|ema|swa) heldout_bpb raw:[\d.]+ ema:[\d.]+ swa:[\d.]+",
                    r"pre_quant val_loss:[\d.]+ val_bpb:[\d.]+", r"pre_quant_sliding .* coverage:full",
                    r"final_int6_zstd22_roundtrip val_loss:[\d.]+ val_bpb:[\d.]+",
                    r"final_int6_zstd22_roundtrip_sliding val_loss:[\d.]+ val_bpb:[\d.]+ stride:16 context:64",
                    r"artifact:.* artifact_bytes:\d+ code_bytes:\d+ \(train_byte_model.py \d+\) total_bytes:\d+ "
                    r"cap_bytes:16000000 verdict:UNDER_CAP",
                    r"final_int6_zstd22_roundtrip_exact val_loss:[\d.]+ val_bpb:[\d.]+ sliding_val_bpb:[\d.]+",
                    r"final_summary:\{", r"score: [\d.]+ BPB \(post-quant sliding window on all of val, "]:
        assert any(re.match(pattern, line) for line in lines), pattern
    assert "environment:" in text and "versions: python" in text
    # The console ends with the one line that names the score; the JSON summary stays in the log.
    assert proc.stdout.strip().splitlines()[-1].startswith("score: ") and "final_summary:" not in proc.stdout


def test_summary_is_consistent(finished_run):
    env, log_dir, _ = finished_run
    summary = final_summary(log_dir, "e2e")
    post = summary["post_quant"]
    val_ids = (Path(env["DATA_PATH"]) / "fineweb_val_000000.bin").stat().st_size // 2 - 512
    assert post["sliding_scored_targets"] == post["sliding_targets"] == post["val_targets"] == val_ids - 1
    assert summary["artifact_bytes"] == (log_dir / "e2e.int6.ptz").stat().st_size
    assert summary["code_bytes"] == TRAINER.stat().st_size
    assert summary["total_bytes"] == summary["artifact_bytes"] + summary["code_bytes"] and summary["under_cap"]
    assert summary["steps"] == 20 and summary["config"]["TRAIN_SEQ_LEN"] == 64 and summary["seed"] == 1
    # Quantization costs a little, not a lot.
    assert abs(post["val_bpb"] - summary["pre_quant"]["val_bpb"]) < 0.05


def test_loss_falls_on_learnable_text(finished_run):
    _, log_dir, _ = finished_run
    losses = [float(m.group(1)) for line in log_lines(log_dir, "e2e") if (m := re.match(r"step:\d+/20 train_loss:([\d.]+)", line))]
    assert losses[0] > 5.0  # ~ln(260) at init
    assert losses[-1] < losses[0] - 2.0


def test_eval_only_rescores_the_artifact_identically(finished_run, tmp_path):
    """With no knobs but the data: the artifact's own context and stride (64 and 16, not the defaults)."""
    env, log_dir, _ = finished_run
    env = {"DATA_PATH": env["DATA_PATH"], "RUN_ID": "rescore", "EVAL_ONLY": str(log_dir / "e2e.int6.ptz")}
    proc = run_trainer(env, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trained, rescored = final_summary(log_dir, "e2e"), final_summary(tmp_path, "rescore")
    assert rescored["eval_only"] is True
    for key in ("val_loss", "val_bpb", "sliding_val_bpb", "sliding_scored_targets"):
        assert rescored["post_quant"][key] == pytest.approx(trained["post_quant"][key], rel=1e-9)
    assert "final_int6_zstd22_roundtrip_exact" in proc.stdout
    assert "eval_context:64 (default) stride:16 (default); artifact's: {'context': 64, 'stride': 16}" in proc.stdout


def test_two_cpu_processes_match_one_process_first_step(dataset, tmp_path):
    """torchrun --nproc_per_node=2 (gloo, grad accumulation 4) sees the same 8 micro-batches as one
    process with accumulation 8, so the first step's loss (before any update) agrees to float
    rounding; the logged loss has 4 decimals, hence the tolerance."""
    env = {**TINY_ENV, "DATA_PATH": str(dataset), "ITERATIONS": "1", "WARMUP_STEPS": "0", "HELDOUT_TOKENS": "0"}
    first_losses = []
    for nproc in (1, 2):
        proc = run_trainer({**env, "RUN_ID": f"procs{nproc}"}, tmp_path, nproc=nproc)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert f"world_size:{nproc} grad_accum_steps:{8 // nproc}" in proc.stdout
        first_losses.append(float(re.search(r"step:1/1 train_loss:([\d.]+)", proc.stdout).group(1)))
    assert first_losses[0] == pytest.approx(first_losses[1], abs=1.5e-4)


def test_two_ranks_on_one_clock_end_with_identical_weights_through_checkpoints(dataset, tmp_path):
    """Under a wallclock cap the LR warmdown follows the clock (WARMDOWN_ITERS far above the steps that
    fit, so every step's LR is set by the time left). Each rank used to run its own clock, and only rank
    0 paused it while writing a checkpoint, so the ranks applied different LRs to the same all-reduced
    gradients. Now they agree on the clock every step and wait together while rank 0 writes."""
    env = {**TINY_ENV, "DATA_PATH": str(dataset), "RUN_ID": "clock", "ITERATIONS": "100000", "WARMDOWN_ITERS": "100000",
           "MAX_WALLCLOCK_SECONDS": "3", "CHECKPOINT_EVERY": "2", "HELDOUT_TOKENS": "0", "VAL_SLIDING_STRIDE": "64"}
    proc = run_trainer(env, tmp_path, nproc=2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "stopping_early: wallclock_cap" in proc.stdout and (tmp_path / "clock.ckpt").is_file()
    assert re.search(r"^replicas:identical weights on 2 ranks, sha256 [0-9a-f]{16}$", proc.stdout, re.M), proc.stdout


@pytest.mark.parametrize("knobs", [{"UNET_SKIPS": "0"}, {"NUM_LAYERS": "1"}])
def test_ddp_trains_without_skip_connections(dataset, tmp_path, knobs):
    """Without skips (UNET_SKIPS=0, or one layer) DDP used to fail at step 2 on the empty skip weights."""
    env = {**TINY_ENV, **knobs, "DATA_PATH": str(dataset), "RUN_ID": "noskip", "ITERATIONS": "3", "WARMUP_STEPS": "0",
           "HELDOUT_TOKENS": "0", "VAL_SLIDING_STRIDE": "64"}
    proc = run_trainer(env, tmp_path, nproc=2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "step:3/3 train_loss:" in proc.stdout and "replicas:identical weights on 2 ranks" in proc.stdout


def test_inductor_compiled_training_step_matches_eager(dataset):
    """What runs on GPU and nowhere else: Trainer.step through the model as train() compiles it (Inductor,
    fullgraph, forward and backward) and Muon with the compiled Newton-Schulz. Two steps (16 micro-steps)
    on a 2-layer model give the eager losses and weights (fp32 on CPU)."""
    import train_byte_model as tbm

    args = tbm.Hyperparameters({**TINY_ENV, "DATA_PATH": str(dataset), "NUM_LAYERS": "2", "TRAIN_SEQ_LEN": "32",
                                "TRAIN_BATCH_TOKENS": "256"})
    spec = tbm.resolve_data(args)
    torch._dynamo.reset()
    results = []
    for compile in (False, True):
        rt = tbm.Runtime(0, 1, torch.device("cpu"), bf16=False, compile=compile)
        torch.manual_seed(0)
        model = tbm.build_model(tbm.model_config(args, spec.vocab_size))
        train_model = torch.compile(model, dynamic=False, fullgraph=True) if compile else model
        loader = tbm.DistributedTokenLoader(tbm.TokenStream(spec.train_files, spec.vocab_size), 0, 1, rt.device)
        trainer = tbm.Trainer(args, rt, model, train_model, loader)
        weights = lambda: torch.cat([p.detach().flatten() for p in model.parameters()])  # noqa: E731
        initial = weights()
        losses = torch.stack([torch.stack(trainer.step(i, 1.0, 0.01)) for i in range(2)])
        results.append((losses, weights()))
    (eager_losses, eager_weights), (compiled_losses, compiled_weights) = results
    torch.testing.assert_close(compiled_losses, eager_losses, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(compiled_weights, eager_weights, rtol=1e-3, atol=1e-4)
    assert (eager_weights - initial).abs().max() > 1e-3  # the steps did move the weights


def test_killed_run_resumes_to_identical_weights(dataset, tmp_path):
    env = {**TINY_ENV, "DATA_PATH": str(dataset), "ITERATIONS": "12", "WARMDOWN_ITERS": "4", "CHECKPOINT_EVERY": "3",
           "VAL_SLIDING_STRIDE": "64"}
    straight = run_trainer({**env, "RUN_ID": "straight"}, tmp_path / "a")
    assert straight.returncode == 0, straight.stderr[-3000:]
    # The same run, killed (SIGKILL) as soon as its first checkpoint lands, then resumed from it.
    killed_dir = tmp_path / "b"
    killed_dir.mkdir()
    checkpoint = killed_dir / "interrupted.ckpt"
    proc = subprocess.Popen([sys.executable, str(TRAINER)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**dict(__import__("os").environ), **env, "RUN_ID": "interrupted", "LOG_DIR": str(killed_dir), "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 300
    while not checkpoint.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["progress"]["step"] < 12, "the run finished before it could be interrupted"
    resumed = run_trainer({**env, "RUN_ID": "interrupted", "RESUME": str(checkpoint)}, killed_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed:{checkpoint} step:{saved['progress']['step']}" in resumed.stdout
    a = torch.load(tmp_path / "a" / "straight.ckpt", weights_only=True)
    b = torch.load(checkpoint, weights_only=True)
    assert a["progress"]["step"] == b["progress"]["step"] == 12
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    for x, y in zip(a["averages"]["ema"] + a["averages"]["swa_sum"], b["averages"]["ema"] + b["averages"]["swa_sum"]):
        assert torch.equal(x, y)
    assert (tmp_path / "a" / "straight.int6.ptz").read_bytes() == (killed_dir / "interrupted.int6.ptz").read_bytes()


def test_non_finite_loss_stops_the_run_naming_the_step(dataset, tmp_path):
    proc = run_trainer({**TINY_ENV, "DATA_PATH": str(dataset), "RUN_ID": "nan", "QK_GAIN_INIT": "nan", "WARMUP_STEPS": "0"}, tmp_path)
    message = "error: non-finite train loss at step 1; stopping (try a lower LR or GRAD_CLIP_NORM)"
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [message]
    assert not list(tmp_path.glob("*.ptz"))
    assert log_lines(tmp_path, "nan")[-1] == message  # a failed run's log ends with its error


def test_ctrl_c_is_one_line_exit_130_and_the_log_says_so(dataset, tmp_path):
    env = {**dict(__import__("os").environ), **TINY_ENV, "DATA_PATH": str(dataset), "RUN_ID": "stopped",
           "ITERATIONS": "100000", "LOG_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(TRAINER)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not ((tmp_path / "stopped.txt").exists()
                                          and "step:2/" in (tmp_path / "stopped.txt").read_text()):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert stderr.strip().splitlines() == ["interrupted (Ctrl-C): no final score; the log says where the run stopped"]
    assert log_lines(tmp_path, "stopped")[-1].startswith("interrupted: the run was stopped by Ctrl-C")


def test_torchrun_without_run_id_agrees_on_one_name(dataset, tmp_path):
    """Every rank must write and read the same artifact name when RUN_ID is not set (the official usage)."""
    env = {**TINY_ENV, "DATA_PATH": str(dataset), "ITERATIONS": "2", "HELDOUT_TOKENS": "0", "VAL_SLIDING_STRIDE": "64"}
    proc = run_trainer(env, tmp_path, nproc=2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list(tmp_path.glob("*.int6.ptz"))) == 1 and len(list(tmp_path.glob("*.txt"))) == 1


def test_token_mode_trains_on_sp_shards_with_the_baseline_byte_formula(sp_shard_dir, tiny_sp_model, tmp_path):
    """Side-by-side studies: the same model and loop on sp shards; BPB's bytes come from the tokenizer."""
    env = {**TINY_ENV, "DATA_PATH": str(sp_shard_dir), "TOKENIZER_PATH": str(tiny_sp_model), "RUN_ID": "tokens",
           "HELDOUT_TOKENS": "256"}
    proc = run_trainer(env, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "layout:tokens (from TOKENIZER_PATH set and no conversion.json) vocab:384" in proc.stdout
    summary = final_summary(tmp_path, "tokens")
    post = summary["post_quant"]
    assert summary["layout"] == "tokens" and post["sliding_scored_targets"] == post["sliding_targets"]
    assert post["val_byte_targets"] > 1.5 * post["val_targets"]  # a BPE token is several bytes


def test_a_run_too_big_for_the_machine_stops_at_start_up_naming_the_demo_command(dataset, tmp_path):
    """The 8xH100 shape with a batch no CPU holds: one line, before any step, instead of the OS killing it later."""
    env = {"DATA_PATH": str(dataset), "RUN_ID": "huge", "TRAIN_BATCH_TOKENS": str(8 * 4096 * 64), "HELDOUT_TOKENS": "512",
           "MAX_WALLCLOCK_SECONDS": "0"}
    proc = run_trainer(env, tmp_path, timeout=300)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr[-2000:]
    assert "at its peak" in proc.stderr and "python demo.py --print-command" in proc.stderr
    assert not any(line.startswith("step:") for line in log_lines(tmp_path, "huge"))
