"""`raysys.analysis.scaling` on a power law with a known exponent: the fit recovers it and
inverts, refuses what it cannot fit, and the table fits each arm swept at enough sizes."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from raysys.analysis.results import MissingInput
from raysys.analysis.scaling import (
    ScalingFit,
    data_for_target,
    fit_power_law,
    scaling_table,
    top_arms,
)
from tests.unit.analysis.synthetic import ALPHA, A, arm_rows, base_row, power_law_points


def test_fit_recovers_known_alpha_and_inverts():
    d, metric = power_law_points()
    fit = fit_power_law(d, metric)
    assert abs(fit.alpha - ALPHA) < 0.03
    assert fit.alpha_lo <= ALPHA <= fit.alpha_hi
    assert fit.alpha_lo < fit.alpha < fit.alpha_hi
    assert fit.r2 > 0.97
    assert fit.A == pytest.approx(A, rel=0.15)
    assert (fit.n_points, fit.n_sizes) == (12, 4)
    assert data_for_target(fit, float(fit.predict(5000.0))) == pytest.approx(5000.0, rel=1e-9)
    assert fit_power_law(d, metric) == fit  # the bootstrap is seeded


def test_data_for_target_never_reached():
    flat = ScalingFit(A=0.5, alpha=0.0, alpha_lo=0, alpha_hi=0, r2=0, n_points=4, n_sizes=2)
    assert data_for_target(flat, 0.6) == math.inf
    fit = fit_power_law(*power_law_points())
    assert data_for_target(fit, 1.0) == math.inf


def test_fit_one_size_is_a_clear_error():
    with pytest.raises(ValueError, match=r"needs >= 3 distinct data sizes d, got 1 \(d = 400\)"):
        fit_power_law([400, 400, 400], [0.7, 0.72, 0.71])
    with pytest.raises(MissingInput, match=r"^not fitted: 2 sizes; .*got 2 \(d = 200, 400\)"):
        fit_power_law([200, 400, 200, 400], [0.6, 0.7, 0.61, 0.72])


def test_fit_clips_a_perfect_score():
    fit = fit_power_law([100, 200, 400], [0.9, 0.99, 1.0], n_boot=50)
    assert math.isfinite(fit.alpha) and fit.alpha > 0


def test_scaling_table_fits_each_arm_swept_at_two_fractions():
    rows = [base_row("t1", 0.3)]
    for fraction in (0.25, 0.5, 1.0):
        d = round(400 * fraction)
        tests = [1 - A * d**-ALPHA * (1 + e) for e in (-0.01, 0.0, 0.01)]
        pairs = [(t, t) for t in tests]
        rows += arm_rows(
            "t1", "singleton", ("t1",), {"t1": pairs}, fraction=fraction, seeds=(0, 1, 2)
        )
    rows += arm_rows("t1+t2", "pair", ("t1", "t2"), {"t1": (0.5, 0.5)})  # one fraction: no fit
    table = scaling_table(pd.DataFrame(rows))
    assert table[["task", "cocktail"]].values.tolist() == [["t1", "t1"]]
    fit = table.iloc[0]
    assert fit["alpha"] == pytest.approx(ALPHA, abs=0.01)
    best = 1 - A * 400**-ALPHA * 0.99
    assert fit["target"] == pytest.approx(best + (1 - best) / 2)
    assert fit["d_for_target"] > 400
    assert scaling_table(pd.DataFrame(rows), target=0.5)["target"].iloc[0] == 0.5


def test_scaling_table_with_one_fraction_says_why():
    rows = arm_rows("t1", "singleton", ("t1",), {"t1": (0.5, 0.5)}, seeds=(0, 1))
    with pytest.raises(MissingInput, match="at least 3 fractions"):
        scaling_table(pd.DataFrame(rows))


def test_top_arms_keeps_the_best_arms_per_task_in_their_order():
    fits = pd.DataFrame(
        {
            "task": ["t1", "t1", "t1", "t2"],
            "cocktail": ["a", "b", "c", "a"],
            "general": 0.0,
            "math": 0.0,
        }
    )
    points = pd.DataFrame(
        {
            "task": ["t1"] * 6 + ["t2"],
            "cocktail": ["a", "a", "b", "b", "c", "c", "a"],
            "general": 0.0,
            "math": 0.0,
            "d": [100, 400, 100, 400, 100, 400, 400],
            # at its largest d: a 0.5, b 0.9, c 0.7 (c's small size scores best: ignored)
            "metric": [0.1, 0.5, 0.2, 0.9, 0.95, 0.7, 0.3],
        }
    )
    kept = top_arms(fits, points, per_task=2)
    assert kept[["task", "cocktail"]].values.tolist() == [["t1", "b"], ["t1", "c"], ["t2", "a"]]
