"""The pipeline job's own logic (`raysys.pipeline.driver`) before anything runs: how many
stages a config makes, every task's rows it needs, what preflight refuses, and which run
it continues. No Ray is started."""

from __future__ import annotations

from pathlib import Path

import pytest

from raysys.config import PipelineConfig, load_config
from raysys.engines import ResourceBudgetError
from raysys.errors import UserError
from raysys.pipeline.driver import locate_run, preflight, stage_count, task_needs
from raysys.pipeline.presets import preset_path
from tests.fixtures import REPO

TINY = REPO / "configs" / "pipeline_tiny.yaml"


def _tiny(*overrides: str) -> PipelineConfig:
    return load_config(PipelineConfig, TINY, ["ray.num_cpus=2", *overrides])


def _embedded(*overrides: str) -> PipelineConfig:
    return load_config(PipelineConfig, preset_path("embedded"), ["ray.num_cpus=2", *overrides])


@pytest.fixture(autouse=True)
def _no_ray_started(no_ray):
    yield


def test_stage_count_follows_the_enabled_stages():
    # data, eval_base, sft, eval_sft, dpo_probe, dpo, eval_dpo, synth_r1, sft_r1, eval_r1
    assert stage_count(_tiny()) == 10
    assert stage_count(_tiny("pipeline.rounds=3")) == 16
    off = _tiny("pipeline.stages.dpo=false", "pipeline.stages.synth=false")
    assert stage_count(off) == 4
    no_sft = ("pipeline.stages.eval_base=false", "pipeline.stages.sft=false")
    assert stage_count(_tiny(*no_sft, "pipeline.stages.dpo=false")) == 4  # data + a round
    assert stage_count(_embedded()) == 7  # the sweep is one stage (SFT and both evaluations)


def test_the_pipeline_needs_gold_held_out_and_pool_rows():
    needs = [(n.ref, n.sizes, n.pool, n.pool_file) for n in task_needs(_tiny())]
    assert needs == [
        ("news_sentiment", {"validation": 8, "test": 16, "train": 48}, None, None),
        ("fomc_stance", {"test": 16}, None, None),  # evaluated only
        ("news_sentiment", {"test": 16}, 12, None),  # the pool synthesis labels
    ]
    no_synth = task_needs(_tiny("pipeline.stages.synth=false"))
    assert [n.ref for n in no_synth] == ["news_sentiment", "fomc_stance"]
    assert len(task_needs(_tiny("pipeline.rounds=0"))) == 2


def test_a_sweep_stage_needs_the_regularisers_it_mixes_in():
    needs = {n.ref: n.sizes for n in task_needs(_embedded("sweep.general=[0,0.1]")) if not n.pool}
    assert needs["general_instruct"] == {"validation": 8, "test": 16, "train": 16}
    assert needs["fomc_stance"] == {"test": 16}
    assert "arith_math" not in needs


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        (["generate.num_cpus=4"], ResourceBudgetError, r"generate.num_cpus=4 per engine actor"),
        (
            ["train.num_workers=4", "train.batch_size=32"],
            UserError,
            r"train.num_workers x train.cpus_per_worker = 4 CPUs, but this Ray has 2",
        ),
        (
            ["pipeline.dpo.cpus_per_worker=3"],
            UserError,
            r"= 3 CPUs, but this Ray has 2",
        ),
    ],
)
def test_preflight_refuses_what_could_never_run(overrides, error, match):
    with pytest.raises(error, match=match):
        preflight(_tiny(*overrides))


def test_preflight_checks_only_the_stages_that_run():
    preflight(_tiny())
    preflight(_tiny("pipeline.dpo.cpus_per_worker=3", "pipeline.stages.dpo=false"))
    preflight(_embedded())


def test_preflight_needs_a_sweep_trial_on_all_tasks():
    with pytest.raises(UserError, match=r"sweep.cocktails: no trial trains on all of"):
        preflight(_embedded("sweep.cocktails=[singletons]"))


def test_locate_run_fixes_the_run_id(tmp_path: Path):
    storage = f"run.storage_path={tmp_path}"
    assert locate_run(_tiny(storage, "run.run_id=p1"), resume=False).run.run_id == "p1"
    assert locate_run(_tiny(storage), resume=False).run.run_id  # a new timestamp
    with pytest.raises(UserError, match=r"--resume: no pipeline run under .*/pipeline_tiny"):
        locate_run(_tiny(storage), resume=True)
    for rid in ("20260101T000000Z", "20260301T000000Z"):
        (tmp_path / "pipeline_tiny" / rid).mkdir(parents=True)
        (tmp_path / "pipeline_tiny" / rid / "config.yaml").write_text("{}")
    (tmp_path / "pipeline_tiny" / "20260401T000000Z").mkdir()  # never opened: no config
    assert locate_run(_tiny(storage), resume=True).run.run_id == "20260301T000000Z"
