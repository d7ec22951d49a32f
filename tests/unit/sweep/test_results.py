"""A sweep's results (`raysys.sweep.results`) from hand-made trial outputs: which trials
finished, the final pass's validation rows moved into their trials, one table row per
(trial, task) with the base model's rows, and the sweep's own figures. No engine, no Ray."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from raysys.config import SweepConfig, load_config
from raysys.sweep.grid import Plan, Trial, expand_grid
from raysys.sweep.results import collect_trials, merge_final_validation, results_table, sweep_meta
from tests.fixtures import REPO

TINY = REPO / "configs" / "sweep_tiny.yaml"
NAN = float("nan")


def _cfg(*overrides: str) -> SweepConfig:
    return load_config(SweepConfig, TINY, list(overrides))


def _trial(tid: str, task: str = "news_sentiment", fraction: float = 1.0) -> Trial:
    return Trial(tid, task, "singleton", ((task, 1.0),), 0.0, 0.1, fraction, 2, 1e-3, 8)


def _result(trial: Trial, seconds: float = 10.0, validation: dict | None = None) -> dict:
    return {
        "trial": trial.params(),
        "data": {"rows": 32, "counts": {"news_sentiment": 29, "arith_math": 3}},
        "train": {"train_tokens": 900.0, "wall_seconds": 7.0, "train_loss": 1.5},
        "validation": validation or {},
        "trial_seconds": seconds,
        "adapter": "/where/it/was/written/adapter",
    }


def test_finished_trials_are_read_with_their_adapter_where_it_is_now(tmp_path):
    done, lost = _trial("t-done"), _trial("t-lost")
    folder = tmp_path / "trials" / "t-done"
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(json.dumps(_result(done)))
    finished, errored = collect_trials(tmp_path, [done, lost])
    assert list(finished) == ["t-done"] and errored == ["t-lost"]
    assert finished["t-done"]["adapter"] == str(folder / "train" / "adapter")
    assert finished["t-done"]["trial_seconds"] == 10.0


def test_final_pass_validation_rows_move_into_their_trials():
    finished = {"t1": _result(_trial("t1"), validation={"price_direction": {"main": 0.1}})}
    table = pd.DataFrame(
        [
            {"adapter": "base", "task": "news_sentiment", "main": 0.3, "n": 16},
            {"adapter": "t1", "task": "news_sentiment", "main": 0.5, "n": 16},
            {"adapter": "t1", "task": "news_sentiment@validation", "main": 0.7, "n": NAN},
            {"adapter": "base", "task": "news_sentiment@validation", "main": 0.2, "n": 8},
        ]
    )
    merged, test = merge_final_validation(finished, table)
    assert merged["t1"]["validation"] == {
        "price_direction": {"main": 0.1},  # a trial-time score is kept
        "news_sentiment": {"main": 0.7},  # NaN metrics are left out
    }
    assert "news_sentiment" not in finished["t1"]["validation"]  # the input is untouched
    assert test.to_dict("records") == table.iloc[:2].to_dict("records")
    assert list(test.index) == [0, 1]


def test_one_row_per_trial_and_task_with_the_base_model_first():
    cfg = _cfg()
    t1 = _trial("t1")
    finished = {"t1": _result(t1, validation={"news_sentiment": {"main": 0.4, "n": 8}})}
    test = pd.DataFrame(
        [
            {"adapter": "base", "task": "news_sentiment", "main": 0.25, "n": 16},
            {"adapter": "t1", "task": "news_sentiment", "main": 0.5, "n": 16},
            {"adapter": "t1", "task": "price_direction", "main": 0.75, "n": 16},
        ]
    )
    df = results_table(cfg, finished, test)
    assert list(zip(df["trial_id"], df["task"], strict=True)) == [
        ("base", "news_sentiment"),
        ("base", "price_direction"),
        ("t1", "news_sentiment"),
        ("t1", "price_direction"),
    ]
    rows = {(r["trial_id"], r["task"]): r for r in df.to_dict("records")}
    base = rows[("base", "news_sentiment")]
    assert (base["cocktail"], base["general"], base["train_rows"]) == ("base", 0.0, 0)
    assert base["test_main"] == 0.25 and math.isnan(base["val_main"])
    assert math.isnan(rows[("base", "price_direction")]["test_main"])  # not scored: NaN
    ns = rows[("t1", "news_sentiment")]
    assert (ns["task_kind"], ns["main_metric"]) == ("classification", "macro_f1")
    assert (ns["val_main"], ns["val_n"], ns["test_main"]) == (0.4, 8, 0.5)
    assert (ns["train_rows"], ns["task_train_rows"]) == (32, 29)
    assert (ns["math"], ns["fraction"], ns["seed"], ns["lora_r"]) == (0.1, 1.0, 2, 8)
    assert (ns["train_tokens"], ns["train_seconds"], ns["final_loss"]) == (900.0, 7.0, 1.5)
    assert math.isnan(ns["tokens_per_s"])  # not reported by this trial
    assert ns["cocktail_tasks"] == "news_sentiment" and ns["trial_seconds"] == 10.0
    assert rows[("t1", "price_direction")]["task_train_rows"] == 0


def test_eval_tasks_decide_the_rows():
    cfg = _cfg("sweep.eval_tasks=[fomc_stance]")
    df = results_table(cfg, {}, pd.DataFrame(columns=["adapter", "task", "main"]))
    assert df["task"].tolist() == ["fomc_stance"] and df["trial_id"].tolist() == ["base"]
    assert math.isnan(df["val_main"][0]) and math.isnan(df["test_main"][0])


def test_sweep_figures_compare_the_wall_time_with_the_ideal():
    cfg = _cfg()
    trials = expand_grid(cfg)
    finished = {
        t.trial_id: _result(t, seconds=s) for t, s in zip(trials[:3], (10, 20, 30), strict=True)
    }
    plan = Plan(2, {"CPU": 1.0}, {"CPU": 2.0}, "test")
    meta = sweep_meta(cfg, trials, finished, [trials[3].trial_id], plan, 40.0, resumed=True)
    assert (meta["trials"], meta["finished"], meta["errored"]) == (4, 3, [trials[3].trial_id])
    assert meta["trial_seconds_sum"] == 60 and meta["ideal_seconds"] == 30.0
    assert meta["wall_vs_ideal"] == pytest.approx(40 / 30)
    assert meta["cocktails"] == ["news_sentiment", "price_direction"]
    assert meta["fractions"] == [0.5, 1.0] and meta["eval_tasks"] == [
        "news_sentiment",
        "price_direction",
    ]
    assert meta["model"] == "tiny-random" and meta["concurrency"] == 2 and meta["resumed"]


def test_cost_columns_per_trial_and_the_studys_cost_per_answer():
    cfg = _cfg("cost.prices={CPU: 3.6}")
    trials = expand_grid(cfg)
    used = {"resource_seconds": {"CPU": 100.0}, "tokens_trained": 900, "tokens_generated": 40}
    finished = {t.trial_id: _result(t) | {"usage": used} for t in trials[:2]}
    df = results_table(cfg, finished, pd.DataFrame(columns=["adapter", "task", "main"]))
    row = df[df.trial_id == trials[0].trial_id].iloc[0]
    assert (row["cpu_s"], row["gpu_s"], row["tokens_trained"], row["tokens_generated"]) == (
        100.0,
        0.0,
        900,
        40,
    )
    assert row["cost_usd"] == pytest.approx(0.1)  # 100 CPU-s at 3.6 USD per CPU-hour
    assert df[df.trial_id == "base"]["cost_usd"].isna().all()
    test = {"resource_seconds": {"CPU": 50.0}, "tokens_generated": 500}
    plan = Plan(2, {"CPU": 1.0}, {"CPU": 2.0}, "test")
    meta = sweep_meta(cfg, trials, finished, [], plan, 40.0, False, test, answers=25)
    c = meta["cost"]
    assert c["trials"]["cost_usd"] == pytest.approx(0.2) and c["test_pass"][
        "cost_usd"
    ] == pytest.approx(0.05)
    assert c["study"]["resource_seconds"] == {"CPU": 250.0}
    assert c["study"]["tokens_generated"] == 580 and c["study"]["cost_usd"] == pytest.approx(0.25)
    assert c["cost_per_answer_usd"] == pytest.approx(0.01)
    # both trials are news_sentiment (two fractions): one cocktail, their sum
    assert list(c["per_cocktail"]) == ["news_sentiment"]
    assert c["per_cocktail"]["news_sentiment"]["resource_seconds"] == {"CPU": 200.0}
    unpriced = sweep_meta(
        _cfg("cost.prices={}"), trials, finished, [], plan, 40.0, False, test, 25
    )["cost"]
    assert unpriced["study"]["cost_usd"] is None and unpriced["cost_per_answer_usd"] is None
