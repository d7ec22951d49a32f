"""A sweep trial's own logic (`raysys.sweep.trial`) outside Tune: its config read back
from Tune's plain data (a bad one as a one-line `TrialError`), the rows every trial is
scored on, its cocktail from the shared cache, the metrics it reports, the fault drill.
The trial function itself (`sweep_trial`) runs under Tune: tests/integration/test_sweep.py."""

from __future__ import annotations

import math

import pytest

from raysys.config import SweepConfig, load_config
from raysys.sweep.grid import Trial
from raysys.sweep.trial import (
    TrialError,
    _fail_once,
    eval_rows,
    eval_task_names,
    holdout_sizes,
    trial_config,
    trial_data,
    trial_sections,
    tune_metrics,
)
from tests.fixtures import REPO

TINY = REPO / "configs" / "sweep_tiny.yaml"


def _cfg(*overrides: str) -> SweepConfig:
    return load_config(SweepConfig, TINY, list(overrides))


def test_the_config_survives_the_trip_through_tune():
    cfg = _cfg("sweep.seeds=[0,3]")
    assert trial_config(cfg.model_dump(mode="json")) == cfg


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("sweep", "fractions"), [0.0], "sweep.fractions: fraction 0.0 must be in (0, 1]"),
        (("train", "learning_rate"), "fast", "train.learning_rate: Input should be a valid number"),
        (("sweep", "typo"), 1, "sweep.typo: Extra inputs are not permitted"),
    ],
)
def test_a_bad_config_is_one_line_naming_the_field(path, value, message):
    data = _cfg().model_dump(mode="json")
    data[path[0]][path[1]] = value
    with pytest.raises(TrialError) as e:
        trial_config(data)
    text = str(e.value)
    assert text.startswith(message), text
    assert "\n" not in text and "errors.pydantic.dev" not in text


def test_every_trial_is_scored_on_the_same_held_out_rows():
    cfg = _cfg("sweep.eval_tasks=[news_sentiment,fomc_stance]")
    assert holdout_sizes(cfg) == {"test": 16, "validation": 8}
    assert eval_task_names(cfg) == ["news_sentiment", "fomc_stance"]
    test = eval_rows(cfg, "test")
    assert {k: len(rows) for k, (_, rows) in test.items()} == {
        "news_sentiment": 16,
        "fomc_stance": 16,
    }
    assert test["news_sentiment"][0].name == "news_sentiment"
    assert eval_rows(cfg, "test")["news_sentiment"][1] == test["news_sentiment"][1]  # stable
    val = eval_rows(cfg, "validation")
    assert list(val) == ["news_sentiment"]  # fomc_stance is test-only
    assert {r["id"] for r in val["news_sentiment"][1]}.isdisjoint(
        r["id"] for r in test["news_sentiment"][1]
    )
    assert eval_task_names(_cfg()) == ["news_sentiment", "price_direction"]  # the trained ones


def test_trial_data_comes_from_the_shared_cache(tmp_path):
    cfg = _cfg()
    trial = Trial("t", "mix", "explicit", (("news_sentiment", 1.0),), 0.0, 0.0, 0.5, 0, 1e-3, 8)
    first = trial_data(cfg, trial, tmp_path)
    assert first["rows"] == 16 and first["counts"] == {"news_sentiment": 16}
    assert first["built"] == 1 and first["path"].startswith(str(tmp_path))
    other_seed = Trial(
        "u", "mix", "explicit", (("news_sentiment", 1.0),), 0.0, 0.0, 0.5, 9, 1e-3, 8
    )
    again = trial_data(cfg, other_seed, tmp_path)  # the training seed does not change the data
    assert again["path"] == first["path"] and again["built"] == 0


def test_trial_sections_without_a_thread_budget_keep_the_config():
    cfg = _cfg()
    trial = Trial("t", "c", "singleton", (("news_sentiment", 1.0),), 0.0, 0.0, 1.0, 4, 5e-4, 16)
    spec, gen = trial_sections(cfg, trial, None, "/d.parquet", "/m")
    assert spec.torch_threads is None and gen.torch_threads is None and gen == cfg.generate
    assert (spec.learning_rate, spec.lora.r, spec.lora.alpha, spec.seed) == (5e-4, 16, 32, 4)


def test_tune_sees_validation_means_and_training_scalars():
    result = {
        "validation": {"a": {"main": 0.5}, "b": {"main": 0.25}, "c": {"main": None}},
        "train": {"train_loss": 1.25, "train_tokens": 100, "step": 4, "versions": {"x": "1"}},
        "trial_seconds": 3.0,
    }
    m = tune_metrics(result)
    assert m["val_main/a"] == 0.5 and m["val_main/c"] is None
    assert m["val_main_mean"] == 0.375
    assert (m["loss"], m["train_loss"], m["train_tokens"], m["step"]) == (1.25, 1.25, 100, 4)
    assert "versions" not in m and m["trial_seconds"] == 3.0
    empty = tune_metrics({"validation": {}, "train": {}, "trial_seconds": 1.0})
    assert math.isnan(empty["val_main_mean"]) and math.isnan(empty["loss"])


def test_the_fault_drill_fails_a_trial_once(tmp_path):
    marker = tmp_path / "faults" / "sweep_fail_trial"
    with pytest.raises(RuntimeError, match="fault injection: trial t1 fails once"):
        _fail_once(marker, "t1")
    assert marker.exists()
    _fail_once(marker, "t1")  # the retry goes through
