"""The pipeline's evaluation rows (`raysys.pipeline.evaluation.eval_rows`): the same test
rows for every stage, read once; a task without a test split is refused. Scoring needs
an engine: tests/integration/test_pipeline.py."""

from __future__ import annotations

import pytest

from raysys.config import PipelineConfig, load_config
from raysys.errors import UserError
from raysys.pipeline.evaluation import eval_rows
from raysys.pipeline.stages import Stages, Study
from raysys.sweep.trial import eval_rows as sweep_eval_rows
from tests.fixtures import REPO

TINY = REPO / "configs" / "pipeline_tiny.yaml"


def _study(tmp_path, *overrides: str) -> Study:
    cfg = load_config(PipelineConfig, TINY, list(overrides))
    return Study(cfg, "unused", tmp_path, Stages(tmp_path, 1))


def test_every_stage_is_scored_on_the_same_test_rows_read_once(tmp_path):
    study = _study(tmp_path)
    rows = eval_rows(study)
    assert {k: len(r) for k, (_, r) in rows.items()} == {"news_sentiment": 16, "fomc_stance": 16}
    assert eval_rows(study) is rows  # cached on the study
    assert eval_rows(_study(tmp_path))["news_sentiment"][1] == rows["news_sentiment"][1]


def test_the_rows_are_the_ones_a_sweep_of_these_sizes_scores(tmp_path):
    from raysys.pipeline.sft import sweep_config

    study = _study(tmp_path, "sweep.fractions=[1.0]")
    assert study.cfg.sweep is not None
    sweep_rows = sweep_eval_rows(sweep_config(study.cfg, tmp_path), "test")
    assert {k: r for k, (_, r) in sweep_rows.items()} == {
        k: r for k, (_, r) in eval_rows(study).items()
    }


def test_a_task_without_a_test_split_is_refused(tmp_path, csv_task):
    task_file = csv_task("trainonly", {"train": 12, "validation": 6})
    study = _study(tmp_path, f"pipeline.eval_tasks=[{task_file}]")
    with pytest.raises(UserError, match=r"trainonly.yaml has no test split to evaluate on"):
        eval_rows(study)
