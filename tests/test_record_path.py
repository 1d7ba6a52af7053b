"""The record run's numeric path, on the CPU: bf16 autocast and torch.compile (Inductor) through train -> GPTQ
calibration -> export -> reload -> sliding eval with TTT and PPM -> score, then EVAL_ONLY and EXPORT_ONLY of what
it wrote. An fp32 eager suite let through an export crash (bf16 Hessians) that every GPU run would have hit, and
GPTQ skipping q/k/v; at this width every block matrix, q/k/v included, is stored int6. RECIPE=frontier_next, the
candidate for the next GPU run, takes the same path with every option of frontier_next.py on."""

import numpy as np
import pytest
import torch

import train_byte_model as tbm
from helpers import TINY_ENV, final_summary, log_lines, make_byte_dataset, run_trainer

pytestmark = pytest.mark.slow

RECORD_PATH_ENV = {**TINY_ENV, "MODEL_DIM": "264", "NUM_LAYERS": "2", "NUM_HEADS": "4", "NUM_KV_HEADS": "4",
                   "MLP_HIDDEN": "264", "ITERATIONS": "4", "BF16": "1", "USE_COMPILE": "1", "TTT_STEPS": "1",
                   "TTT_CHUNK_TOKENS": "1024", "PPM_ORDER": "3", "GPTQ_CALIB_TOKENS": "2048"}


@pytest.fixture(scope="module")
def record_run(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("logs")
    env = {**RECORD_PATH_ENV, "DATA_PATH": str(make_byte_dataset(log_dir / "bytes")), "RUN_ID": "record"}
    proc = run_trainer(env, log_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return env, log_dir, proc


def test_bf16_compiled_run_ends_with_its_score(record_run):
    env, log_dir, proc = record_run
    lines = log_lines(log_dir, "record")
    assert any(" bf16:True compile:True" in line for line in lines) and "warmup_step:1/1" in lines
    assert any(line.startswith("final_sliding+ttt+ppm val_loss:") for line in lines)
    assert proc.stdout.strip().splitlines()[-1].startswith("score: ")
    assert final_summary(log_dir, "record")["post_quant"]["score_method"] == "ttt+ppm"


def test_gptq_moves_every_int6_matrix_q_k_v_included(record_run):
    """Round to nearest of the final weights would leave each stored matrix where rounding puts it; GPTQ's error
    feedback moves a good share of entries in every matrix whose input it saw."""
    _, log_dir, _ = record_run
    final = torch.load(log_dir / "record.final.pt", weights_only=True)["model"]
    header, state = tbm.decode_artifact(log_dir / "record.int6.ptz")
    moved = {}
    for entry in header["tensors"]:
        if entry["storage"] == "int6":
            w = final[entry["name"]].float()
            scale = tbm.row_scales(w, 31, header["export"]["quant_clip"])
            moved[entry["name"]] = (state[entry["name"]] != tbm.round_rows(w, scale, 31) * scale).float().mean().item()
    assert {f"blocks.{b}.attn.c_{m}.weight" for b in range(2) for m in "qkv"} <= set(moved)
    assert min(moved.values()) > 0.05, moved


def test_eval_only_under_bf16_reproduces_the_score(record_run):
    env, log_dir, _ = record_run
    proc = run_trainer({**env, "RUN_ID": "rescored", "EVAL_ONLY": str(log_dir / "record.int6.ptz")}, log_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    first, again = final_summary(log_dir, "record")["post_quant"], final_summary(log_dir, "rescored")["post_quant"]
    assert again["score_method"] == "ttt+ppm"
    assert again["score_bpb"] == pytest.approx(first["score_bpb"], abs=1e-6)


def test_export_only_under_bf16_rewrites_the_same_artifact(record_run):
    """Calibration runs eager under bf16 autocast in both: the same weights and data give the same bytes."""
    env, log_dir, _ = record_run
    knobs = {**env, "RUN_ID": "reexported", "EXPORT_ONLY": str(log_dir / "record.final.pt"), "USE_COMPILE": "0",
             "TTT_STEPS": "0", "PPM_ORDER": "0"}
    proc = run_trainer(knobs, log_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (log_dir / "reexported.int6.ptz").read_bytes() == (log_dir / "record.int6.ptz").read_bytes()
    scores = [final_summary(log_dir, run)["post_quant"]["sliding_val_bpb"] for run in ("record", "reexported")]
    assert np.isclose(*scores, atol=1e-3)  # compiled there, eager here: bf16 rounding differs a little


def test_frontier_next_with_every_option_runs_the_bf16_compiled_path(tmp_path):
    """The candidate recipe, plus the options it leaves off (a depth recurrence switched on mid-run, the attention
    gate, Polar Express), the way a GPU runs it: both graphs of the recurrence compile in the warm-up, and the run
    ends with its score."""
    env = {**TINY_ENV, "RECIPE": "frontier_next", "NUM_LAYERS": "2", "PARALLEL_START_LAYER": "1", "XSA_LAST_N": "2",
           "NUM_LOOPS": "1", "LOOP_START": "1", "LOOP_END": "1", "ENABLE_LOOPING_AT": "0.5", "ATTN_GATE_SCALE": "0.5",
           "NS_COEFFICIENTS": "polar_express", "ITERATIONS": "4", "BF16": "1", "USE_COMPILE": "1",
           "DATA_PATH": str(make_byte_dataset(tmp_path / "bytes")), "RUN_ID": "next"}
    proc = run_trainer(env, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = log_lines(tmp_path, "next")
    assert {"warmup_step:1/1 loop:off", "warmup_step:1/1 loop:on"} <= set(lines)
    assert any(" bf16:True compile:True" in line for line in lines)
    assert proc.stdout.strip().splitlines()[-1].startswith("score: ")
    assert final_summary(tmp_path, "next")["config"]["NUM_LOOPS"] == 1
