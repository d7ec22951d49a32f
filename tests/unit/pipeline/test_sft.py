"""The pipeline's SFT stages (`raysys.pipeline.sft`) without training: the gold rows stage,
the sweep trial later stages build on, the sweep config the stage runs, and what the
pipeline reads back from a finished sweep (hand-made here). The grid itself runs on
Ray Tune: tests/integration/test_pipeline.py."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from raysys.config import PipelineConfig, load_config
from raysys.errors import UserError
from raysys.pipeline import sft as sft_stages
from raysys.pipeline.presets import preset_path
from raysys.pipeline.sft import all_tasks_trial, sft, sweep_config, sweep_summary
from raysys.pipeline.stages import Stages, Study
from raysys.sweep.grid import expand_grid
from tests.fixtures import REPO

TINY = REPO / "configs" / "pipeline_tiny.yaml"
BOTH = {"news_sentiment", "price_direction"}


def _embedded(*overrides: str) -> PipelineConfig:
    return load_config(PipelineConfig, preset_path("embedded"), list(overrides))


def _chosen(cfg: PipelineConfig, tmp_path):
    return all_tasks_trial(expand_grid(sweep_config(cfg, tmp_path)), cfg)


def test_without_training_stages_sft_only_writes_the_gold_rows(tmp_path):
    cfg = load_config(
        PipelineConfig,
        TINY,
        [
            "pipeline.stages.eval_base=false",
            "pipeline.stages.sft=false",
            "pipeline.stages.dpo=false",
        ],
    )
    study = Study(cfg, "unused", tmp_path, Stages(tmp_path, 1))
    sft(study)
    assert list(study.st.records) == ["data"] and study.current == ("base", None)
    gold = pd.read_parquet(study.gold_path)
    assert len(gold) == 48 and set(gold["task"]) == {"news_sentiment"}
    assert {"id", "task", "messages", "gold", "source"} <= set(gold.columns)
    assert gold["messages"][0][-1]["role"] == "assistant"
    assert study.st.records["data"].result["counts"] == {"news_sentiment": 48}


def test_later_stages_build_on_the_all_tasks_trial_at_the_largest_fraction(tmp_path):
    t = _chosen(_embedded(), tmp_path)
    assert {c for c, _ in t.components} == BOTH
    assert (t.fraction, t.seed, t.general, t.math) == (1.0, 0, 0.0, 0.0)
    t = _chosen(_embedded("sweep.seeds=[3,1]", "sweep.general=[0.1,0]"), tmp_path)
    assert (t.seed, t.general) == (1, 0.0)  # first seed, no regulariser
    t = _chosen(_embedded("sweep.learning_rates=[1e-4,1e-3]", "sweep.lora_ranks=[4,16]"), tmp_path)
    assert (t.learning_rate, t.lora_r) == (1e-3, 16)  # the train section's own


def test_a_sweep_without_such_a_trial_is_refused(tmp_path):
    with pytest.raises(UserError, match=r"no trial trains on all of pipeline.tasks"):
        _chosen(_embedded("sweep.cocktails=[singletons]"), tmp_path)
    with pytest.raises(UserError, match=r"add the 'all' generator"):
        _chosen(_embedded("sweep.general=[0.1]"), tmp_path)


def test_the_sweep_runs_in_the_stage_folder_with_the_pipeline_sizes(tmp_path):
    cfg = _embedded("pipeline.eval_tasks=[news_sentiment,fomc_stance]")
    scfg = sweep_config(cfg, tmp_path / "sft-abc")
    assert (scfg.run.name, scfg.run.run_id) == ("sweep", "grid")
    assert scfg.run.storage_path == str((tmp_path / "sft-abc").resolve())
    assert scfg.sweep.tasks == ["news_sentiment", "price_direction"]
    assert scfg.sweep.eval_tasks == ["news_sentiment", "fomc_stance"]
    sw = scfg.sweep
    assert (sw.train_size, sw.validation_size, sw.test_size) == (16, 8, 16)
    assert sw.cocktails == cfg.sweep.cocktails and sw.validate_in == "final"
    assert scfg.train == cfg.train and scfg.generate == cfg.generate and scfg.model == cfg.model


def test_test_scores_are_a_trials_test_columns_without_gaps():
    table = pd.DataFrame(
        [
            {"trial_id": "base", "task": "a", "test_main": 0.2, "test_n": 16, "val_main": 0.1},
            {"trial_id": "t1", "task": "a", "test_main": 0.5, "test_n": 16, "val_main": 0.4},
            {"trial_id": "t1", "task": "b", "test_main": math.nan, "test_n": 16, "val_main": 0.3},
        ]
    )
    assert sft_stages.test_scores(table, "t1") == [
        {"task": "a", "main": 0.5, "n": 16},
        {"task": "b", "n": 16},
    ]
    assert sft_stages.test_scores(table, "nobody") == []


def test_the_pipeline_reads_its_model_and_scores_from_the_finished_sweep(tmp_path):
    cfg = _embedded()
    stage_dir = tmp_path / "sft-abc"
    sweep_dir = stage_dir / "sweep" / "grid"
    trials = expand_grid(sweep_config(cfg, stage_dir))
    chosen = all_tasks_trial(trials, cfg)
    (sweep_dir / "trials" / chosen.trial_id).mkdir(parents=True)
    (sweep_dir / "grid.json").write_text(json.dumps([t.params() for t in trials]))
    result = {"adapter": "/a/adapter", "train": {"train_loss": 1.0}}
    (sweep_dir / "trials" / chosen.trial_id / "result.json").write_text(json.dumps(result))
    rows = [
        {"trial_id": tid, "task": task, "test_main": score}
        for tid, score in (("base", 0.1), (chosen.trial_id, 0.6), (trials[0].trial_id, 0.3))
        for task in sorted(BOTH)
    ]
    pd.DataFrame(rows).to_parquet(sweep_dir / "results.parquet")
    out = sweep_summary(cfg, stage_dir, sweep_dir)
    assert out["trial_id"] == chosen.trial_id and out["trials"] == len(trials) == 6
    assert out["adapter"] == "/a/adapter" and out["train"] == {"train_loss": 1.0}
    assert out["base"] == [{"task": t, "main": 0.1} for t in sorted(BOTH)]
    assert out["chosen"] == [{"task": t, "main": 0.6} for t in sorted(BOTH)]
    gold = pd.read_parquet(out["data_path"])  # the exact rows the chosen trial trained on
    assert set(gold["task"]) == BOTH and len(gold) == 32
    assert out["data_path"].startswith(str(stage_dir.resolve()))
