"""The README's one-command demo runs end to end (data build, training, eval, export, round trip), and its
result depends on its knobs, not on the machine's speed."""
import os
import re
import subprocess
import sys

import pytest

from convert_to_bytes import read_shard
import train_byte_model as tbm
from demo import DEMO_KNOBS, FULL_SCALE_STEPS, demo_knobs
from helpers import REPO, final_summary, make_byte_dataset


def run_demo(tmp_path, run_id: str, **env) -> subprocess.Popen:
    full_env = {k: v for k, v in os.environ.items() if k != "DATA_PATH"}
    full_env.update(LOG_DIR=str(tmp_path / "logs"), RUN_ID=run_id, OMP_NUM_THREADS="1", **env)
    return subprocess.Popen([sys.executable, str(REPO / "demo.py"), "--root", str(tmp_path / "demo")], env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)


def finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-4000:]
    return out


def test_demo_runs_a_fixed_number_of_steps():
    """A wall-clock cap would make the step count, and so the result, depend on the machine."""
    assert float(DEMO_KNOBS["MAX_WALLCLOCK_SECONDS"]) == 0
    assert int(DEMO_KNOBS["ITERATIONS"]) % int(DEMO_KNOBS["VAL_LOSS_EVERY"]) == 0  # the last step is validated


@pytest.mark.slow
def test_demo_command_runs(tmp_path):
    out = finish(run_demo(tmp_path, "demo_test", ITERATIONS="8"))
    assert re.search(r"demo finished \(exit 0\)\n  log: +.*demo_test\.txt\n  artifact: +.*demo_test\.int6\.ptz", out)
    summary = final_summary(tmp_path / "logs", "demo_test")
    assert summary["under_cap"] and summary["post_quant"]["sliding_scored_targets"] == summary["post_quant"]["sliding_targets"]
    assert summary["config"]["MODEL_DIM"] == 128  # the demo's small model, not the 8xH100 default
    assert (tmp_path / "demo" / "bytes" / "conversion.json").is_file()


@pytest.mark.slow
def test_demo_on_data_path_gives_the_same_result_twice(tmp_path):
    """Two shortened demos on DATA_PATH, run side by side so they compete for the CPU, score the same BPB."""
    data = make_byte_dataset(tmp_path / "data", train_bytes=120_000)
    short = {"DATA_PATH": str(data), "ITERATIONS": "6", "TRAIN_BATCH_TOKENS": "2048", "HELDOUT_TOKENS": "8192"}
    procs = [run_demo(tmp_path, f"same_{i}", **short) for i in range(2)]
    outputs = [finish(proc) for proc in procs]
    assert all(f"demo: training on DATA_PATH={data} from the environment" in out for out in outputs)
    assert not (tmp_path / "demo").exists()  # the demo data was not built
    summaries = [final_summary(tmp_path / "logs", f"same_{i}") for i in range(2)]
    val_targets = read_shard(data / "fineweb_val_000000.bin").size - 1  # scored on DATA_PATH's val
    assert [(s["steps"], s["post_quant"]["val_targets"]) for s in summaries] == [(6, val_targets)] * 2
    assert summaries[0]["post_quant"]["sliding_val_bpb"] == summaries[1]["post_quant"]["sliding_val_bpb"]


@pytest.mark.slow
def test_a_recipe_from_the_environment_runs_at_the_demos_shape(tmp_path):
    """RECIPE=frontier_next python demo.py: the recipe's layer indices (parallel lanes from layer 8 of 13) are
    shrunk to the demo's 4 layers, and the run ends with its score."""
    data = make_byte_dataset(tmp_path / "data", train_bytes=60_000)
    short = {"DATA_PATH": str(data), "ITERATIONS": "3", "TRAIN_BATCH_TOKENS": "2048", "HELDOUT_TOKENS": "4096"}
    out = finish(run_demo(tmp_path, "next", RECIPE="frontier_next", **short))
    summary = final_summary(tmp_path / "logs", "next")
    assert summary["recipe"] == "frontier_next" and summary["config"]["PARALLEL_START_LAYER"] == 2
    assert re.search(r"^score: [\d.]+ BPB", out, re.M)


def test_an_unknown_recipe_stops_the_demo_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "demo.py"), "--root", str(tmp_path)], capture_output=True,
                          text=True, env={**os.environ, "RECIPE": "frontir"}, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"error: RECIPE=frontir: the demo knows {', '.join(FULL_SCALE_STEPS)}"]
    assert not (tmp_path / "bytes").exists()


@pytest.mark.parametrize("recipe", ["frontier", "pr832", "pr705"])
def test_every_recipe_shrinks_to_a_valid_demo_configuration(recipe):
    knobs = demo_knobs(recipe)
    args = tbm.Hyperparameters(knobs)
    full = tbm.Hyperparameters({"RECIPE": recipe})
    assert args.source["RECIPE"] == "env" and args.matrix_lr == full.matrix_lr  # the recipe's own LRs
    assert args.num_heads // args.num_kv_heads == full.num_heads // full.num_kv_heads
    assert args.rope_dims / args.head_dim == full.rope_dims / full.head_dim
    assert args.warmdown_iters / args.iterations == pytest.approx(full.warmdown_iters / FULL_SCALE_STEPS[recipe], abs=0.01)
    tbm.build_model(tbm.model_config(args, 260))


@pytest.mark.parametrize("recipe", list(FULL_SCALE_STEPS))
def test_print_command_is_the_trainer_at_the_demos_shape(recipe):
    """`python demo.py --print-command` (the README's demo-scale trainer command): the demo's knobs, every one a
    knob, the recipe's layer indices inside the demo's 4 layers; the knobs parse, so the command starts."""
    proc = subprocess.run([sys.executable, str(REPO / "demo.py"), "--print-command"], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "RECIPE": recipe}, check=True)
    *pairs, python, script = proc.stdout.split()
    knobs = dict(pair.split("=", 1) for pair in pairs)
    assert (python, script) == ("python", "train_byte_model.py") and knobs == {**demo_knobs(recipe), "DATA_PATH": "data/demo/bytes"}
    args = tbm.Hyperparameters(knobs)
    assert set(knobs) <= set(tbm.KNOB_NAMES) and args.recipe == recipe and args.warnings == []
    if args.num_loops:
        assert 0 <= args.loop_start <= args.loop_end < args.num_layers
