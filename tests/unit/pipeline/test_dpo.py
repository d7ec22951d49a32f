"""The DPO gate (`raysys.pipeline.dpo`) without an engine: the decision from the probe's
rates, the probe's inputs (trained-on rows only), and no DPO without an SFT model. The
probe's generations need an engine: tests/integration/test_pipeline.py."""

from __future__ import annotations

import pandas as pd
import pytest

from raysys.config import PipelineConfig, load_config
from raysys.config.study import DpoGateSection
from raysys.pipeline.dpo import dpo, dpo_decision, probe_rows
from raysys.pipeline.sft import gold_data
from raysys.pipeline.stages import Stages, Study
from tests.fixtures import REPO

TINY = REPO / "configs" / "pipeline_tiny.yaml"
GATE = DpoGateSection(overlength_threshold=0.1, missing_threshold=0.2)


@pytest.mark.parametrize(
    ("over", "miss", "pairs", "gate", "run", "triggered"),
    [
        (0.3, 0.0, 5, GATE, True, True),  # overlength
        (0.0, 0.25, 5, GATE, True, True),  # wrong format
        (0.1, 0.2, 5, GATE, False, False),  # at the thresholds: not above
        (0.0, 0.0, 5, GATE.model_copy(update={"force": True}), True, False),
        (0.5, 0.5, 0, GATE, False, True),  # nothing to train on
    ],
)
def test_dpo_runs_when_a_rate_is_above_its_threshold_and_pairs_exist(
    over, miss, pairs, gate, run, triggered
):
    d = dpo_decision(over, miss, 40, pairs, gate)
    assert (d["run"], d["triggered"], d["forced"]) == (run, triggered, gate.force)


def test_the_decision_says_why():
    why = dpo_decision(0.3, 0.05, 40, 5, GATE)["why"]
    assert why == (
        "overlength 0.30 (threshold 0.10), wrong format 0.05 (threshold 0.20) on 40 training inputs"
    )
    forced = dpo_decision(0.0, 0.0, 40, 5, GATE.model_copy(update={"force": True}))["why"]
    assert forced.endswith("; forced by pipeline.dpo_gate.force")
    assert dpo_decision(0.5, 0.0, 40, 0, GATE)["why"].endswith(
        "; but no pair could be mined (no rejected candidate)"
    )


def test_the_probe_asks_only_about_rows_sft_trained_on(tmp_path):
    cfg = load_config(PipelineConfig, TINY, ["pipeline.train_size=20"])
    study = Study(cfg, "unused", tmp_path, Stages(tmp_path, 1))
    gold_data(study)
    trained = set(pd.read_parquet(study.gold_path)["id"].astype(str))
    rows = probe_rows(cfg, study.gold_path, 5)
    task, picked = rows["news_sentiment"]
    assert list(rows) == ["news_sentiment"] and task.name == "news_sentiment"
    assert len(picked) == 5 and {str(r["id"]) for r in picked} <= trained
    assert all(r["gold"] for r in picked)
    every = probe_rows(cfg, study.gold_path, 1000)["news_sentiment"][1]
    assert {str(r["id"]) for r in every} == trained
    assert probe_rows(cfg, None, 5)["news_sentiment"][1] == []  # nothing trained: no probe


def test_no_sft_model_means_no_dpo_stage(tmp_path):
    cfg = load_config(PipelineConfig, TINY)
    study = Study(cfg, "unused", tmp_path, Stages(tmp_path, 3))
    dpo(study)
    assert study.st.records == {} and study.dpo_decision is None
    assert list(tmp_path.iterdir()) == []
