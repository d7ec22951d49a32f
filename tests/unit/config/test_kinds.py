"""`raysys.config.kinds`, one config per job: each kind's own defaults, and the checks
that span sections (the data source, SFT-only sweeps, the pipeline's stage order)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from raysys.config.kinds import (
    CONFIG_KINDS,
    EvalConfig,
    PipelineConfig,
    SweepConfig,
    SynthConfig,
    TrainConfig,
)


def _error(cls, **fields) -> str:
    with pytest.raises(ValidationError) as e:
        cls.model_validate(fields)
    return str(e.value)


def test_every_command_has_its_kind():
    assert CONFIG_KINDS == {
        "quickstart": PipelineConfig,
        "train": TrainConfig,
        "eval": EvalConfig,
        "synth": SynthConfig,
        "sweep": SweepConfig,
        "pipeline": PipelineConfig,
    }


def test_each_kind_names_its_runs_and_sets_its_own_defaults():
    names = {
        cls.__name__: cls.model_validate(
            {"data": {"path": "x"}} if cls is TrainConfig else {}
        ).run.name
        for cls in set(CONFIG_KINDS.values())
    }
    assert names == {
        "PipelineConfig": "pipeline",
        "TrainConfig": "train",
        "EvalConfig": "eval",
        "SynthConfig": "synth",
        "SweepConfig": "sweep",
    }
    synth = SynthConfig().generate
    assert (synth.max_new_tokens, synth.batch_size) == (256, 16)
    pipe = PipelineConfig()
    assert (pipe.generate.engine, pipe.generate.max_new_tokens) == ("hf", 8)
    assert (pipe.train.learning_rate, pipe.train.batch_size) == (2e-4, 8)
    assert pipe.sweep is None


@pytest.mark.parametrize(
    "data, expected",
    [
        ({}, "data: set exactly one of data.path (a parquet file) or data.cocktail"),
        ({"data": {"path": "a", "cocktail": "c.yaml"}}, "data: set exactly one"),
        (
            {"data": {"cocktail": "c.yaml"}, "train": {"method": "dpo"}},
            "data.path: DPO trains on prompt/chosen/rejected rows",
        ),
        (
            {"data": {"path": "a"}, "train": {"packing": True}},
            "train.packing needs model.attn_implementation=flash_attention_2",
        ),
    ],
)
def test_train_config_checks(data, expected):
    assert expected in _error(TrainConfig, **data)


def test_a_dpo_train_config_on_pairs():
    cfg = TrainConfig.model_validate(
        {"data": {"path": "pairs.parquet"}, "train": {"method": "dpo"}}
    )
    assert (cfg.train.lora.r, cfg.train.lora.alpha) == (16, 32)


@pytest.mark.parametrize(
    "data, expected",
    [
        ({"train": {"method": "dpo"}}, "train.method: sweeps train SFT adapters"),
        ({"sweep": {"scheduler": "asha"}}, "sweep.scheduler=asha stops learning rates early"),
    ],
)
def test_sweep_config_checks(data, expected):
    assert expected in _error(SweepConfig, **data)
    ok = SweepConfig.model_validate({"sweep": {"scheduler": "asha", "learning_rates": [1e-4]}})
    assert ok.sweep.scheduler == "asha"


@pytest.mark.parametrize(
    "data, expected",
    [
        ({"train": {"method": "dpo"}}, "train.method: the pipeline's train section is its SFT"),
        (
            {"pipeline": {"stages": {"sft": False}}},
            "pipeline.stages.dpo needs the SFT stage",
        ),
        ({"pipeline": {"synth_tasks": []}}, "pipeline.stages.synth: no pipeline.synth_tasks"),
        ({"sweep": {"tasks": ["news_sentiment"]}}, "sweep.tasks/eval_tasks/sizes come from"),
        ({"sweep": {"test_size": 10}}, "sweep.tasks/eval_tasks/sizes come from"),
        (
            {"sweep": {}, "pipeline": {"stages": {"sft": False, "dpo": False}}},
            "sweep: the sweep is the SFT stage",
        ),
    ],
)
def test_pipeline_config_checks(data, expected):
    assert expected in _error(PipelineConfig, **data)


def test_a_pipeline_without_synthesis_needs_no_synth_tasks():
    off = PipelineConfig.model_validate({"pipeline": {"synth_tasks": [], "rounds": 0}})
    assert off.pipeline.synth_tasks == []


def test_eval_task_names_are_the_tasks_then_the_synthesised_ones_each_once():
    cfg = PipelineConfig.model_validate(
        {"pipeline": {"tasks": ["a", "b"], "synth_tasks": ["c", "a", {"task": "d.yaml"}]}}
    )
    assert cfg.eval_task_names() == ["a", "b", "c", "d.yaml"]
    given = PipelineConfig.model_validate({"pipeline": {"eval_tasks": ["z", "a"]}})
    assert given.eval_task_names() == ["z", "a"]


# ------------------------------------------------------------------- the search section


@pytest.mark.parametrize(
    "search, sweep, expected",
    [
        ({"objective": "nope"}, {}, "search.objective: nope is not evaluated; use one of"),
        ({"objective": {"news_sentiment": -1}}, {}, "weights must be >= 0 with one > 0"),
        ({}, {"validate_in": "final"}, "set sweep.validate_in=trial"),
        ({"baseline": "none"}, {}, "with search.baseline=none set search.budget.trials"),
        ({"budget": {"gpu_hours": 2}}, {}, "search.budget.gpu_hours: trials train on CPU"),
        ({"general": [0.3, 0.1]}, {}, "give [low, high] with low <= high"),
        ({"fraction": [0, 1]}, {}, "values must lie in (0, 1]"),
        ({"surrogate": "tpe"}, {}, "surrogate"),
    ],
)
def test_a_bad_search_section_is_refused(search, sweep, expected):
    from raysys.config import SweepConfig

    with pytest.raises(ValidationError) as e:
        SweepConfig(search=search, sweep=sweep)
    assert expected in str(e.value)


def test_the_objective_becomes_task_weights():
    from raysys.config import SweepConfig

    tasks = ["news_sentiment", "price_direction"]
    assert SweepConfig(search={}).search.objective_weights(tasks) == dict.fromkeys(tasks, 0.5)
    one = SweepConfig(search={"objective": "price_direction"}).search
    assert one.objective_weights(tasks) == {"price_direction": 1.0}
    mixed = SweepConfig(search={"objective": {"news_sentiment": 3, "price_direction": 1}}).search
    assert mixed.objective_weights(tasks) == {"news_sentiment": 0.75, "price_direction": 0.25}
