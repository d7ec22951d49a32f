"""`raysys.analysis.stats`: mean intervals against scipy (none without spread), and the
bootstrap of a task's main metric through its own scorer."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from raysys.analysis.stats import bootstrap_main_ci, mean_ci
from raysys.tasks import get_task
from tests.unit.analysis.synthetic import NAN


def test_mean_ci_matches_scipy_and_degenerate_cases():
    values = [0.61, 0.65, 0.58, 0.66]
    lo, hi = stats.t.interval(0.9, 3, loc=np.mean(values), scale=stats.sem(values))
    assert mean_ci(values, 0.9) == pytest.approx((np.mean(values), lo, hi))
    mean, lo, hi = mean_ci([0.7])
    assert mean == 0.7 and math.isnan(lo) and math.isnan(hi)
    # identical seeds have no spread: no interval, never a zero-width one
    mean, lo, hi = mean_ci([0.5, 0.5, 0.5, NAN])
    assert mean == 0.5 and math.isnan(lo) and math.isnan(hi)
    # two seeds: a t-interval from two points is no interval unless asked for
    assert math.isnan(mean_ci([0.6, 0.7])[1])
    assert mean_ci([0.6, 0.7], min_values=2)[1] < 0.6


def test_bootstrap_main_ci_is_deterministic_and_uses_the_task_scorer():
    golds = ["positive", "negative", "neutral"] * 8
    outputs = [f"Answer: {g}" for g in golds[:18]] + ["no idea"] * 6
    a = bootstrap_main_ci("news_sentiment", golds, outputs, n_boot=60, seed=3)
    assert a == bootstrap_main_ci("news_sentiment", golds, outputs, n_boot=60, seed=3)
    assert a[0] < get_task("news_sentiment").score(golds, outputs)["main"] < a[1]
    perfect = [f"Answer: {g}" for g in golds]
    # every resample scores 1.0: no spread, so no (zero-width) interval
    assert all(math.isnan(v) for v in bootstrap_main_ci("news_sentiment", golds, perfect))
