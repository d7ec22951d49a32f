"""Training inside the pipeline (`raysys.pipeline.training`): the gold cocktail, and no
training without data. The training itself runs on Ray Train: tests/integration."""

from __future__ import annotations

import pytest

from raysys.config import PipelineConfig, load_config
from raysys.errors import UserError
from raysys.pipeline.stages import Stages, Study
from raysys.pipeline.training import all_tasks_spec, train
from raysys.train import launch  # noqa: F401 - what `train` imports (Ray Train), imported once
from tests.fixtures import REPO


def test_the_gold_cocktail_weighs_every_task_equally():
    assert all_tasks_spec(["a", "b"]) == {
        "name": "gold",
        "components": [{"task": "a", "weight": 1.0}, {"task": "b", "weight": 1.0}],
    }


def test_no_training_without_data(tmp_path, no_ray):

    cfg = load_config(PipelineConfig, REPO / "configs" / "pipeline_tiny.yaml")
    study = Study(cfg, "m", tmp_path, Stages(tmp_path, 1))
    with pytest.raises(UserError, match=r"pipeline: no training data"):
        train(study, None, cfg.train, tmp_path / "sft")
