"""`raysys.analysis.leaderboard`: the arm is chosen on validation and reported on test,
with a t-interval over seeds or a row bootstrap for one seed; regularisers' effect."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from raysys.analysis.leaderboard import leaderboard
from raysys.tasks import get_task
from tests.unit.analysis.synthetic import arm_rows, base_row, board_results


def test_leaderboard_chooses_on_validation_and_reports_test():
    board = leaderboard(board_results()).set_index("task")
    t1 = board.loc["t1"]
    assert t1["best_cocktail"] == "t1+t2" and t1["general"] == 0.0
    values = [0.80, 0.84, 0.83]
    lo, hi = stats.t.interval(0.95, 2, loc=np.mean(values), scale=stats.sem(values))
    assert (t1["test_mean"], t1["test_lo"], t1["test_hi"]) == pytest.approx(
        (np.mean(values), lo, hi)
    )
    assert t1["ci_method"] == "t" and t1["seeds"] == 3
    assert t1["single_test"] == pytest.approx(0.91)
    assert t1["delta_vs_single"] == pytest.approx(np.mean(values) - 0.91)
    assert t1["delta_vs_base"] == pytest.approx(np.mean(values) - 0.20)
    assert pd.isna(t1["regularisers_helped"]) and math.isnan(t1["regularisers_delta"])


def test_leaderboard_regularisers_helped():
    board = leaderboard(board_results())
    t2 = board.set_index("task").loc["t2"]
    assert (t2["best_cocktail"], t2["general"], t2["fraction"]) == ("t1+t2", 0.1, 1.0)
    assert t2["regularisers_delta"] == pytest.approx(0.62 - 0.50)
    assert board["regularisers_helped"].tolist() == [pd.NA, True]  # t1's arm has none
    assert t2["single_test"] == pytest.approx(0.58) and math.isnan(t2["single_lo"])  # one seed


def test_leaderboard_single_seed_bootstraps_predictions():
    task = get_task("news_sentiment")
    labels = ["positive", "negative", "neutral"] * 10
    outputs = [f"Answer: {g}" for g in labels[:22]] + ["Answer: positive"] * 8
    score = task.score(labels, outputs)["main"]
    rows = [base_row("news_sentiment", 0.3)]
    rows += arm_rows(
        "news_sentiment", "singleton", ("news_sentiment",), {"news_sentiment": (score, score)}
    )
    results = pd.DataFrame(rows)
    trial = results.loc[results["cocktail"] != "base", "trial_id"].iloc[0]
    preds = pd.DataFrame(
        {"adapter": trial, "task": "news_sentiment", "id": range(30), "input": "text",
         "gold": labels, "generated_text": outputs}
    )  # fmt: skip
    row = leaderboard(results, preds, n_boot=100).iloc[0]
    assert row["ci_method"] == "bootstrap" and row["seeds"] == 1
    assert row["test_lo"] < score < row["test_hi"]
    assert math.isnan(leaderboard(results).iloc[0]["test_lo"])  # no predictions, no CI
