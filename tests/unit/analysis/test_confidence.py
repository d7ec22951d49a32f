"""`raysys.analysis.confidence`: kept-label accuracy against yield per keep rule, by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from raysys.analysis.confidence import (
    MAX_POINTS,
    MIN_ROWS,
    confidence_curves,
    operating_cells,
    operating_point,
    yield_curve,
)


def test_the_curve_by_hand():
    # 5 inputs; scores 0.9 (right), 0.7 (wrong), 0.7 (right), 0.2 (right), none
    scores = [0.7, 0.9, None, 0.2, 0.7]
    correct = [False, True, False, True, True]
    points = yield_curve(scores, correct)
    # one point per distinct score: the tie at 0.7 is kept whole
    assert [(p["threshold"], p["kept"], p["correct"]) for p in points] == [
        (0.9, 1, 1),
        (0.7, 3, 2),
        (0.2, 4, 3),
    ]
    # the unscored input is never kept and still counts in the yield
    assert [p["yield"] for p in points] == [0.2, 0.6, 0.8]
    assert all(p["accuracy"] is None for p in points)  # fewer than MIN_ROWS kept
    assert operating_point(points, 0.5)["threshold"] == 0.7  # strictest reaching 50%
    assert operating_point(points, 0.6)["kept"] == 3
    assert operating_point(points, 1.0) is None  # unreachable
    assert yield_curve([], []) == []


def test_accuracy_from_min_rows_kept_on():
    scores = [float(i) for i in range(2 * MIN_ROWS)]  # 19 is the most confident
    correct = [i % 4 != 0 for i in range(2 * MIN_ROWS)]  # 0, 4, 8, 12, 16 wrong
    points = yield_curve(scores, correct)
    assert points[MIN_ROWS - 2]["accuracy"] is None
    at = points[MIN_ROWS - 1]  # scores 19..10 kept: 12 and 16 wrong
    assert (at["kept"], at["correct"], at["accuracy"]) == (MIN_ROWS, 8, 0.8)
    assert points[-1]["accuracy"] == pytest.approx(15 / 20)


def test_every_rule_and_its_operating_points():
    labels = pd.DataFrame(
        {
            "majority_answered": [True] * 11 + [False],
            "correct": [True] * 8 + [False] * 3 + [False],
            "agreement": [1.0] * 8 + [0.6] * 3 + [0.0],
            "margin": [0.2] * 8 + [0.6] * 3 + [0.0],  # ranks the wrong ones first
            "mean_logprob": [-0.1] * 4 + [None] * 4 + [-2.0] * 3 + [None],
        }
    )
    c = confidence_curves(labels)
    assert c["rows"] == 12 and c["min_rows"] == MIN_ROWS
    assert c["rules"]["agreement"]["scored"] == 11  # the unanswered input has no score
    assert c["rules"]["logprob"]["scored"] == 7  # unknown logprobs are left out
    ops = {(o["rule"], o["target_yield"]): o for o in c["operating_points"]}
    assert ops[("agreement", 0.5)]["kept"] == 8
    assert ops[("agreement", 0.75)]["accuracy"] == pytest.approx(8 / 11)
    assert ops[("margin", 0.25)]["kept"] == 3 and ops[("margin", 0.25)]["correct"] == 0
    assert "kept" not in ops[("logprob", 0.75)]  # 7/12 is the most logprob can keep
    assert "kept" not in ops[("agreement", 1.0)]  # an unanswered input is never kept
    cells = operating_cells({"fpb": c}).set_index("rule")
    assert cells.loc["agreement", "yield ≥ 75%"] == "0.727 (8/11, score ≥ 0.600, yield 0.92)"
    assert cells.loc["vote margin", "yield ≥ 25%"].startswith("too few (0/3, score ≥ 0.600")
    assert cells.loc["mean log-prob", "yield ≥ 75%"] == "not reached (max yield 0.58)"


def test_long_curves_are_thinned_for_the_stats_file():
    n = 3 * MAX_POINTS
    labels = pd.DataFrame(
        {
            "majority_answered": [True] * n,
            "correct": [True] * n,
            "agreement": [1.0] * n,
            "margin": [1.0] * n,
            "mean_logprob": [-i / n for i in range(n)],
        }
    )
    pts = confidence_curves(labels)["rules"]["logprob"]["points"]
    assert len(pts) == MAX_POINTS and pts[0]["kept"] == 1 and pts[-1]["kept"] == n
