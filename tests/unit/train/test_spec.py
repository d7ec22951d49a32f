"""`TrainSpec`: built once from a validated `train` section, derived values, pickling, and
the TRL/PEFT configs it becomes. No Ray: none is started here."""

from __future__ import annotations

import dataclasses
import pickle
import subprocess
import sys

import pytest

from raysys.config import SweepConfig, TrainConfig, load_config
from raysys.config.training import LoraSection, TrainSection
from raysys.train.spec import Faults, TrainSpec
from raysys.train.trainer import build_trainer, lora_config, training_args, warmup_args
from tests.fixtures import REPO


def _section(*overrides: str) -> TrainSection:
    base = ["data.path=unused.parquet", "train.batch_size=8", "train.per_device_batch_size=4"]
    return load_config(TrainConfig, None, [*base, *overrides]).train


def _spec(*overrides: str, train_path: str = "unused.parquet", **kw: object) -> TrainSpec:
    args = {"model_path": "m", "train_path": train_path, "dtype": "float32", "seed": 3, **kw}
    return TrainSpec.from_section(_section(*overrides), **args)


def test_spec_carries_every_train_field_it_shares_with_the_section():
    section = _section("train.learning_rate=3e-4", "train.warmup_ratio=0.25", "train.max_steps=7")
    spec = TrainSpec.from_section(
        section,
        model_path="/models/m",
        train_path="/data/sft.parquet",
        dtype="bfloat16",
        seed=11,
        attn_implementation="eager",
        faults={"crash_at_step": 4},
    )
    shared = {f.name for f in dataclasses.fields(spec)} & set(TrainSection.model_fields)
    assert shared >= {"learning_rate", "warmup_ratio", "max_steps", "lr_scheduler", "packing"}
    for name in shared - {"lora", "dpo"}:
        assert getattr(spec, name) == getattr(section, name), name
    # nothing the worker reads is left behind: every section field is in the spec
    assert set(TrainSection.model_fields) <= {f.name for f in dataclasses.fields(spec)}
    assert (spec.lora.r, spec.lora.alpha, spec.lora.dropout) == (128, 256, 0.05)
    assert spec.lora.target_modules == "all-linear"
    assert (spec.dpo.beta, spec.dpo.loss_type) == (1.0, "sigmoid")
    assert (spec.model_path, spec.train_path, spec.dtype, spec.seed) == (
        "/models/m",
        "/data/sft.parquet",
        "bfloat16",
        11,
    )
    assert spec.attn_implementation == "eager"
    assert spec.faults == Faults(crash_at_step=4)


def test_derived_values():
    spec = _spec("train.batch_size=64", "train.per_device_batch_size=8")
    assert spec.grad_accum_steps == 8
    two = _spec("train.batch_size=64", "train.per_device_batch_size=8", "train.num_workers=2")
    assert two.grad_accum_steps == 4  # 8 per device x 2 workers x 4 = 64
    assert spec.sequences_per_step == 64
    dpo = _spec("train.method=dpo", "train.batch_size=8")
    assert dpo.sequences_per_step == 16  # chosen and rejected
    assert spec.lora.scale == 2.0 and dpo.lora.scale == 2.0  # study: alpha = 2 r


def test_spec_is_frozen_and_pickles():
    spec = _spec("train.lora.target_modules=[q_proj,v_proj]", faults={"nan_at_step": 2})
    assert pickle.loads(pickle.dumps(spec)) == spec
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.learning_rate = 1.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.lora.r = 1  # type: ignore[misc]
    assert spec.lora.target_modules == ("q_proj", "v_proj")


def test_scoped_checkpoint_storage():
    assert _spec().scoped("a", "b").checkpoint_storage is None
    spec = _spec("train.checkpoint_storage=s3://bucket/ckpt?region=x")
    assert spec.scoped("run", "id").checkpoint_storage == "s3://bucket/ckpt/run/id?region=x"


def test_sft_args_from_the_spec(tmp_path):
    from trl import SFTConfig

    spec = _spec(
        "train.learning_rate=2e-4",
        "train.max_steps=9",
        "train.max_seq_length=64",
        "train.save_steps=3",
        "train.logging_steps=2",
        "train.weight_decay=0.01",
        "train.lr_scheduler=cosine",
    )
    args = training_args(spec, str(tmp_path))
    assert type(args) is SFTConfig
    assert args.learning_rate == 2e-4 and args.max_steps == 9 and args.max_length == 64
    assert args.per_device_train_batch_size == 4 and args.gradient_accumulation_steps == 2
    assert (args.save_steps, args.logging_steps, args.weight_decay) == (3, 2, 0.01)
    assert args.lr_scheduler_type == "cosine" and args.seed == args.data_seed == 3
    assert args.use_cpu and not args.bf16 and not args.fp16 and not args.packing
    assert not args.gradient_checkpointing and not args.logging_nan_inf_filter
    bf16 = training_args(_spec(dtype="bfloat16"), str(tmp_path))
    assert bf16.bf16 and not bf16.fp16 and bf16.max_steps == -1  # epochs decide


def test_dpo_args_from_the_spec(tmp_path):
    from trl import DPOConfig

    spec = _spec(
        "train.method=dpo", "train.dpo.beta=0.3", "train.dpo.precompute_ref_log_probs=true"
    )
    args = training_args(spec, str(tmp_path))
    assert type(args) is DPOConfig
    assert args.beta == 0.3 and args.loss_type == ["sigmoid"] and args.precompute_ref_log_probs


def test_lora_config_from_the_spec():
    cfg = lora_config(_spec("train.lora.r=4", "train.lora.target_modules=[q_proj,v_proj]"))
    assert (cfg.r, cfg.lora_alpha, cfg.lora_dropout) == (4, 8, 0.05)
    assert set(cfg.target_modules) == {"q_proj", "v_proj"} and cfg.task_type == "CAUSAL_LM"
    assert lora_config(_spec()).target_modules == "all-linear"


def test_warmup_ratio_is_a_ratio_of_the_total_steps(tiny_model, tmp_path):
    """train.warmup_ratio=0.5 over 10 steps warms up for 5 steps (a ratio given where a
    step count is read would give 0 or 1). Checked on the real trainer's scheduler."""
    import pandas as pd

    rows = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
        for i in range(8)
    ]
    data = tmp_path / "sft.parquet"
    pd.DataFrame(rows).to_parquet(data)
    spec = dataclasses.replace(
        _spec("train.warmup_ratio=0.5", "train.max_steps=10", "train.learning_rate=1e-3"),
        model_path=tiny_model,
        train_path=str(data),
    )
    trainer = build_trainer(spec, str(tmp_path / "out"))
    assert trainer.args.get_warmup_steps(10) == 5
    trainer.create_optimizer_and_scheduler(num_training_steps=10)
    lrs = []
    for _ in range(10):
        lrs.append(trainer.lr_scheduler.get_last_lr()[0])
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
    assert lrs[:6] == pytest.approx([0, 2e-4, 4e-4, 6e-4, 8e-4, 1e-3])  # 5 steps up
    assert lrs[6:] == pytest.approx([8e-4, 6e-4, 4e-4, 2e-4])  # then linear decay


def test_warmup_goes_where_the_installed_transformers_reads_a_ratio():
    @dataclasses.dataclass
    class V4Args:  # transformers 4: warmup_steps counts steps, warmup_ratio is a share
        warmup_steps: int = 0
        warmup_ratio: float = 0.0

    @dataclasses.dataclass
    class V5Args:  # transformers 5: one field, a float in [0, 1) is a share
        warmup_steps: float = 0

    assert warmup_args(0.5, V4Args) == {"warmup_ratio": 0.5}
    assert warmup_args(0.5, V5Args) == {"warmup_steps": 0.5}


def test_lora_alpha_keeps_the_ratio_of_the_base_section():
    unset = LoraSection()
    assert unset.alpha_for(8) == 16  # the study's alpha = 2 r
    explicit = LoraSection(r=8, alpha=24)
    assert [explicit.alpha_for(r) for r in (4, 8, 16, 1)] == [12, 24, 48, 3]
    assert LoraSection(r=128, alpha=1).alpha_for(16) == 1  # never 0: that switches LoRA off
    # the section's own default comes from the same rule
    assert _section("train.lora.r=8").lora.alpha == LoraSection().alpha_for(8) == 16
    assert _section("train.lora.r=8", "train.lora.alpha=8").lora.alpha == 8


def test_trial_spec_is_the_base_spec_with_the_trial_axes():
    from raysys.sweep.grid import Trial
    from raysys.sweep.trial import trial_sections

    cfg = load_config(
        SweepConfig,
        REPO / "configs" / "sweep_tiny.yaml",
        ["train.lora.alpha=24", "generate.torch_threads=2"],
    )
    trial = Trial("t", "c", "singleton", (("news_sentiment", 1.0),), 0.0, 0.0, 1.0, 5, 2e-4, 4)
    spec, gen = trial_sections(cfg, trial, 3, "/data/t.parquet", "/models/m")
    assert (spec.learning_rate, spec.lora.r, spec.lora.alpha, spec.seed) == (2e-4, 4, 12, 5)
    assert spec.torch_threads == 3 and gen.torch_threads == 2  # set in the config: kept
    base = TrainSpec.from_section(
        cfg.train, model_path="/models/m", train_path="/data/t.parquet", dtype="float32", seed=5
    )
    assert spec == dataclasses.replace(
        base,
        learning_rate=2e-4,
        lora=dataclasses.replace(base.lora, r=4, alpha=12),
        torch_threads=3,
    )


def test_the_trainer_code_imports_without_ray():
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "import raysys.train.trainer, raysys.train.spec\n"
        "assert not any(m == 'ray' or m.startswith('ray.') for m in sys.modules if sys.modules[m])"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


@pytest.mark.parametrize(
    "overrides, in_actor",
    [
        ((), True),  # auto, one worker
        (("train.num_workers=2", "train.batch_size=8"), False),  # auto, several
        (("train.runner=ray_train",), False),
        (("train.runner=actor",), True),
    ],
)
def test_the_runner_auto_picks_the_actor_for_one_worker(overrides, in_actor):
    assert _spec(*overrides).in_actor is in_actor


def test_the_actor_runner_with_several_workers_is_refused_naming_the_field():
    from raysys.errors import ConfigError

    with pytest.raises(ConfigError, match="train.runner=actor trains in one process.*ray_train"):
        _section("train.runner=actor", "train.num_workers=2")
