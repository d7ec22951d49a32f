"""`raysys.config.study`: the sweep grid's axes and the pipeline's sections, checked
where they are declared (whether the tasks exist: `raysys.tasks.checks`)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from raysys.config.study import (
    COCKTAIL_GENERATORS,
    DpoGateSection,
    PipelineSection,
    SweepSection,
    SynthTaskEntry,
    synth_ref,
)


def _error(cls, **fields) -> str:
    with pytest.raises(ValidationError) as e:
        cls(**fields)
    return str(e.value)


def test_fractions_are_sorted_once_each():
    assert SweepSection(fractions=[1.0, 0.25, 0.5, 0.25]).fractions == [0.25, 0.5, 1.0]
    for bad in (0, 1.5, -0.5):
        msg = _error(SweepSection, fractions=[bad])
        assert f"fraction {float(bad)} must be in (0, 1], e.g. 0.25, 0.5, 1.0" in msg


def test_regulariser_shares_are_in_0_1():
    assert SweepSection(general=[0, 0.1], math=[0.25]).general == [0, 0.1]
    msg = _error(SweepSection, math=[1.0])
    assert "share must be in [0, 1), got 1.0, e.g. 0, 0.1 or 0.25" in msg


@pytest.mark.parametrize(
    "fields, expected",
    [
        ({"learning_rates": []}, "learning rates must be > 0 and at least one, got []"),
        ({"learning_rates": [1e-4, 0]}, "learning rates must be > 0"),
        ({"lora_ranks": [0]}, "LoRA ranks must be >= 1 and at least one, got [0]"),
        ({"tasks": ["a", "a"]}, "tasks listed twice"),
        ({"eval_tasks": ["a", "b", "a"]}, "tasks listed twice"),
        ({"seeds": [-1]}, "greater than or equal to 0"),
        ({"seeds": [2**32]}, "less than or equal to 4294967295"),
        ({"cocktails": ["everything"]}, "'everything' is neither a generator (singletons, pairs"),
        ({"cocktails": []}, "at least 1 item"),
        ({"scheduler": "pbt"}, "'fifo' or 'asha'"),
    ],
)
def test_sweep_axes_refused(fields, expected):
    assert expected in _error(SweepSection, **fields)


def test_cocktails_are_generators_yaml_paths_or_inline_specs():
    inline = {"name": "m", "components": [{"task": "news_sentiment"}]}
    s = SweepSection(cocktails=[*COCKTAIL_GENERATORS, "mix.yaml", "m.yml", inline])
    assert s.cocktails[-1] == inline and len(s.cocktails) == 7


def test_synth_tasks_are_names_or_entries_each_once():
    p = PipelineSection(synth_tasks=["fomc_stance", {"task": "/t/mine.yaml", "pool": "/p.csv"}])
    assert p.synth_task_refs() == ["fomc_stance", "/t/mine.yaml"]
    assert p.pool_file("/t/mine.yaml") == "/p.csv"
    assert p.pool_file("fomc_stance") is None and p.pool_file("other") is None
    msg = _error(PipelineSection, synth_tasks=["x.yaml", {"task": "x.yaml"}])
    assert "tasks listed twice in ['x.yaml', 'x.yaml']" in msg
    assert "at least 1 character" in _error(SynthTaskEntry, task="")


def test_synth_ref():
    assert synth_ref("fomc_stance") == "fomc_stance"
    assert synth_ref(SynthTaskEntry(task="t.yaml", pool="p.csv")) == "t.yaml"


def test_the_pipeline_dpo_stage_defaults_and_its_method():
    dpo = PipelineSection().dpo
    assert (dpo.method, dpo.batch_size, dpo.max_steps, dpo.lora.r, dpo.lora.alpha) == (
        "dpo",
        8,
        8,
        16,
        32,
    )
    msg = _error(PipelineSection, dpo={"method": "sft"})
    assert "pipeline.dpo trains DPO; leave pipeline.dpo.method at dpo" in msg


@pytest.mark.parametrize(
    "field, value", [("task", "fpb"), ("inputs", "x.parquet"), ("test_size", 5)]
)
def test_what_the_pipeline_sets_for_synthesis_is_refused(field, value):
    msg = _error(PipelineSection, synth={field: value})
    assert f"pipeline.synth.{field} is set by the pipeline" in msg and "remove it" in msg


def test_pipeline_synthesis_defaults_and_bounds():
    p = PipelineSection()
    assert (p.synth.size, p.synth.samples, p.rounds, p.round_from) == (64, 3, 1, "base")
    assert p.stages.model_dump() == {"eval_base": True, "sft": True, "dpo": True, "synth": True}
    assert "less than or equal to 20" in _error(PipelineSection, rounds=21)
    assert "less than or equal to 1" in _error(DpoGateSection, missing_threshold=1.5)
