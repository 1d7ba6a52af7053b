"""Knobs from the environment: other scripts' names (PR #832's README command, the official train_gpt.py, the seed's
command) are taken as ours or refused naming ours, likely typos stop the run, and every knob lands where it says."""

import pytest

import train_byte_model as tbm
from helpers import TINY_ENV, run_trainer

# PR #832's README configuration block (its record command), written out as test data from the published text.
PR832_COMMAND = """NUM_LAYERS=13 VOCAB_SIZE=260 MODEL_DIM=512 NUM_HEADS=8 NUM_KV_HEADS=4 MLP_MULT=2.0
TRAIN_SEQ_LEN=4096 TRAIN_BATCH_TOKENS=393216 BIGRAM_VOCAB_SIZE=4096 BIGRAM_DIM=32
XSA_LAST_N=4 EMA_ENABLED=1 EMA_DECAY=0.997 SWA_ENABLED=0
ROPE_DIMS=16 LN_SCALE=1 MUON_WD=0.04 ADAM_WD=0.04
MATRIX_LR=0.025 SCALAR_LR=0.025 TIED_EMBED_LR=0.035
MUON_MOMENTUM=0.99 MUON_MOMENTUM_WARMUP_START=0.92 MUON_MOMENTUM_WARMUP_STEPS=1500
WARMDOWN_ITERS=3000 ITERATIONS=9000 MAX_WALLCLOCK_SECONDS=600
EVAL_STRIDE=512 JEPA_CHUNK_SIZE=8 JEPA_LATENT_DIM=256 JEPA_PROJ_HIDDEN=256
JEPA_LAMBDA_MAX=0.001 JEPA_SIGREG_WEIGHT=0.02 JEPA_LR=0.001"""
# The seed's (PR #705) README command, likewise.
PR705_COMMAND = """BLOCK_PATTERN=AAAAAAAAAAAAA TRAIN_BATCH_TOKENS=393216 TRAIN_SEQ_LEN=4096 VOCAB_SIZE=256 MODEL_DIM=512
NUM_HEADS=8 NUM_KV_HEADS=8 MLP_MULT=3 MLP_HIDDEN=1536 WARMDOWN_ITERS=3500 MATRIX_LR=0.035 TIED_EMBED_LR=0.05
SCALAR_LR=0.04 MUON_MOMENTUM=0.99 MUON_MOMENTUM_WARMUP_START=0.92 MUON_MOMENTUM_WARMUP_STEPS=2500 ITERATIONS=20000
MAX_WALLCLOCK_SECONDS=600 VAL_LOSS_EVERY=0 TRAIN_LOG_EVERY=1000 WARMUP_STEPS=10 USE_COMPILE=1 SEED=1337
SMEAR_GATE=1 SWA_EVERY=50 SWA_LAST_FRAC=0.5 GRAD_CLIP_NORM=0.3 BIGRAM_HASH_BUCKETS=4096 BIGRAM_HASH_DIM=32
VAL_SLIDING_STRIDE=512 VAL_SLIDING_MAX_TOKENS=10000000 DATA_PATH=./data/datasets/fineweb10B_bytes"""


def env_of(command: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in command.split())


def test_pr832s_command_configures_the_pr832_recipe():
    """Every value of the pasted block lands; the run equals RECIPE=pr832 but for two knobs the block cannot set:
    VOCAB_SIZE (ours 0 = from the data, which is byte260's 260 either way) and BIGRAM_INIT_STD (PR #832's code
    starts its bigram table at zero, a table that then never learns; the block pasted alone gets our live one)."""
    pasted, recipe = tbm.Hyperparameters(env_of(PR832_COMMAND)), tbm.Hyperparameters({"RECIPE": "pr832"})
    differ = {name for name, value in pasted.items() if value != getattr(recipe, name.lower())}
    assert differ == {"RECIPE", "VOCAB_SIZE", "BIGRAM_INIT_STD"} and pasted.vocab_size == 260
    assert (pasted.muon_weight_decay, pasted.bigram_hash_buckets, pasted.bigram_hash_dim, pasted.val_sliding_stride,
            pasted.ema_decay, pasted.swa_every) == (0.04, 4096, 32, 512, 0.997, 0)
    assert pasted.source["MUON_WEIGHT_DECAY"] == "env MUON_WD" and pasted.source["VAL_SLIDING_STRIDE"] == "env EVAL_STRIDE"
    assert pasted.source["SWA_EVERY"] == "env SWA_ENABLED" and pasted.warnings == []
    same = tbm.Hyperparameters({**env_of(PR832_COMMAND), "RECIPE": "pr832"})
    assert {name for name, value in same.items() if value != getattr(recipe, name.lower())} == {"VOCAB_SIZE"}


def test_the_seeds_command_uses_only_our_names():
    args = tbm.Hyperparameters(env_of(PR705_COMMAND))
    assert args.warnings == [] and set(env_of(PR705_COMMAND)) <= set(tbm.KNOB_NAMES)
    assert (args.mlp_hidden, args.num_kv_heads, args.swa_every, args.val_sliding_max_tokens) == (1536, 8, 50, 10_000_000)


@pytest.mark.parametrize("env, knob, value, source", [
    ({"MUON_WD": "0.5"}, "MUON_WEIGHT_DECAY", 0.5, "env MUON_WD"),
    ({"EMA_ENABLED": "0"}, "EMA_DECAY", 0.0, "env EMA_ENABLED"),
    ({"SWA_ENABLED": "1"}, "SWA_EVERY", 50, "env SWA_ENABLED"),
    ({"SWA_ENABLED": "1", "SWA_EVERY": "25"}, "SWA_EVERY", 25, "env"),
    ({"EMA_ENABLED": "1", "RECIPE": "pr705"}, "EMA_DECAY", 0.997, "default"),  # on already: unchanged
    ({"SKIP_GATES_ENABLED": "1"}, "SKIP_GATES", 1, "env SKIP_GATES_ENABLED"),
    ({"COMPILE_MODEL": "0"}, "USE_COMPILE", 0, "env COMPILE_MODEL")])
def test_other_scripts_names_set_ours_and_say_so(env, knob, value, source):
    args = tbm.Hyperparameters(env)
    assert getattr(args, knob.lower()) == value and args.source[knob] == source


@pytest.mark.parametrize("env, message", [
    ({"MUON_WD": "0.5", "MUON_WEIGHT_DECAY": "0.04"}, "MUON_WD (MUON_WD='0.5' and MUON_WEIGHT_DECAY='0.04' disagree)"),
    ({"VAL_BATCH_SIZE": "524288"}, "VAL_BATCH_SIZE (here: EVAL_BATCH_SEQS, windows per evaluation batch and rank)"),
    ({"TIE_EMBEDDINGS": "0"}, "TIE_EMBEDDINGS (this harness takes 1: always tied)"),
    ({"EMA_ENABLED": "yes"}, "EMA_ENABLED (this harness takes 1, or 0 for EMA_DECAY=0)"),
    ({"VE_ENABLED": "1"}, "VE_ENABLED (no such switch)"),
    ({"ITERATONS": "5"}, "ITERATONS (did you mean ITERATIONS?)"),
    ({"MATRX_LR": "0.1", "NUM_LAYER": "3"}, "MATRX_LR (did you mean MATRIX_LR?); NUM_LAYER (did you mean NUM_LAYERS?)")])
def test_a_name_we_cannot_take_stops_the_run_naming_ours(env, message):
    with pytest.raises(tbm.RunError, match="^not knobs here: ") as error:
        tbm.Hyperparameters({**env, "HOME": "/root", "OMP_NUM_THREADS": "1"})
    assert message in str(error.value) and "ALLOW_UNKNOWN_KNOBS=1" in str(error.value)
    allowed = tbm.Hyperparameters({**env, "ALLOW_UNKNOWN_KNOBS": "1"})
    assert allowed.warnings and all(w.startswith("warning: ignored (ALLOW_UNKNOWN_KNOBS=1): ") for w in allowed.warnings)


def test_a_typo_stops_the_trainer_before_anything_runs(tmp_path):
    proc = run_trainer({**TINY_ENV, "ITERATONS": "5", "DATA_PATH": str(tmp_path / "none")}, tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip() == (
        "error: not knobs here: ITERATONS (did you mean ITERATIONS?). ALLOW_UNKNOWN_KNOBS=1 runs anyway, without them")


def test_model_config_fields_are_the_model_knobs_with_their_types():
    """ModelConfig is built from MODEL_KNOBS: the vocab size, then each model knob in lower case, of its default's
    type, in the knob table's order; everything a model is built from must be one of them (the artifact holds it)."""
    defaults = {name.lower(): default for name, default, _ in tbm.KNOBS}
    fields = [(f.name, f.type) for f in tbm.dataclasses.fields(tbm.ModelConfig)]
    assert fields == [("vocab_size", int)] + [(name.lower(), type(defaults[name.lower()])) for name, _, _ in tbm.KNOBS
                                              if name in tbm.MODEL_KNOBS]
    assert len(fields) == len(tbm.MODEL_KNOBS) + 1  # no name in MODEL_KNOBS that is not a knob
    read = set()
    config = tbm.model_config(tbm.Hyperparameters({}), 260)

    class Recording:  # every field a model reads while it is built, with every option on
        def __getattr__(self, name):
            read.add(name)
            return getattr(config, name)

    for overrides in ({}, {"skip_gates": 1, "parallel_start_layer": 8, "num_loops": 1, "attn_gate_scale": 0.5},
                      {"block_pattern": "ASGAAAAAAAAAA", "patch_size": 2}):
        config = tbm.dataclasses.replace(tbm.model_config(tbm.Hyperparameters({"MODEL_DIM": "64", "NUM_HEADS": "2",
                                                                                "NUM_KV_HEADS": "1"}), 260), **overrides)
        tbm.build_model(Recording())
    assert read <= {name for name, _ in fields}


def test_the_trainer_knows_every_name_run_modes_translates():
    """The trainer imports run_modes for these names only: its list and run_modes' tables must be the same names."""
    import run_modes

    tables = run_modes.KNOB_ALIASES.keys() | run_modes.KNOB_SWITCHES.keys() | run_modes.KNOB_REFUSED.keys()
    assert tables == tbm.OTHER_SCRIPTS_KNOBS and not tables & set(tbm.KNOB_NAMES)
    assert set(run_modes.KNOB_ALIASES.values()) | {k for k, _ in run_modes.KNOB_SWITCHES.values() if k} <= set(
        tbm.KNOB_NAMES)
