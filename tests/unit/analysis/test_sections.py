"""`raysys.analysis.sections`, the sweep report's sections on synthetic sweeps with known
answers: each adds its heading, rule, table and plot to the document and returns the
frame its CSV holds; the cell builders format every column the tables show."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from raysys.analysis import sections
from raysys.analysis.render import Document, Heading, Image, Para, Table
from raysys.analysis.scaling import FITTED
from tests.unit.analysis.synthetic import (
    GAIN,
    TASKS,
    arm_rows,
    base_row,
    board_results,
    full_sweep,
    transfer_results,
)

NAN = math.nan


def _blocks(doc: Document, kind: type) -> list:
    return [b for b in doc.blocks if isinstance(b, kind)]


def test_transfer_shows_the_known_gains():
    doc = Document("r")
    cells = sections.transfer(doc, transfer_results(), None)
    assert [h.text for h in _blocks(doc, Heading)] == ["Transfer matrix"]
    (tab,) = _blocks(doc, Table)
    assert tab.columns == ["trained_on", *TASKS]
    assert tab.rows == [[t, *(f"{v:+.3f}" for v in GAIN[i])] for i, t in enumerate(TASKS)]
    assert tab.numeric == [False, True, True, True]
    (rule,) = _blocks(doc, Para)
    assert "minus the base model" in rule.text and "(1); seeds: 0, 1." in rule.text
    assert (
        doc.plots["transfer"].startswith(b"\x89PNG") and _blocks(doc, Image)[0].name == "transfer"
    )
    assert cells["value"].to_numpy() == pytest.approx(GAIN.ravel())
    assert (cells["seeds"] == 2).all() and cells["relative"].all()


def test_transfer_without_a_base_model_shows_absolute_scores():
    results = transfer_results()
    doc = Document("r")
    cells = sections.transfer(doc, results[results["cocktail"] != "base"], None)
    assert "Absolute scores, not gains" in _blocks(doc, Para)[0].text
    assert not cells["relative"].any()
    assert _blocks(doc, Table)[0].rows[0][1] == f"{0.30 + GAIN[0, 0]:.3f}"  # unsigned


def test_transfer_with_predictions_adds_baselines_and_constant_marks():
    labels = ["up", "down"]
    golds = [labels[i % 2] for i in range(40)]
    rows = [base_row("t1", 0.5)]
    rows += arm_rows("t1", "singleton", ("t1",), {"t1": [(0.6, 0.6), (0.7, 0.7)]}, seeds=(0, 1))
    results = pd.DataFrame(rows).assign(task_kind="classification")
    trials = sorted(results.loc[results["cocktail"] == "t1", "trial_id"])
    preds = pd.concat(
        pd.DataFrame(
            {
                "adapter": trial,
                "task": "t1",
                "id": range(40),
                "input": "x",
                "gold": golds,
                "pred": p,
            }
        )
        for trial, p in zip(trials, [golds, ["up"] * 40], strict=True)  # seed 1 answers "up" only
    )
    doc = Document("r")
    cells = sections.transfer(doc, results, preds)
    assert cells["constant"].tolist() == [1] and cells["majority"].tolist() == [0.5 * 2 / 3]
    (tab,) = _blocks(doc, Table)
    assert tab.rows[0] == ["t1", "+0.150 constant 1/2 seeds"]
    assert tab.rows[1:] == [
        ["majority baseline", f"{0.5 * 2 / 3 - 0.5:+.3f}"],  # majority macro F1 minus base
        ["random baseline", f"{cells['random'].iloc[0] - 0.5:+.3f}"],
    ]
    assert cells["random"].iloc[0] == pytest.approx(0.5, abs=0.01)  # a coin, in macro F1


def test_leaderboard_without_predictions_runs_no_paired_test():
    doc = Document("r")
    frame = sections.board(doc, board_results(), None)
    assert [h.text for h in _blocks(doc, Heading)] == [
        "Leaderboard",
        "Is the best cocktail better? (paired tests)",
    ]
    assert (
        _blocks(doc, Para)[-1].text
        == "No test predictions next to the results: no paired test was run."
    )
    (tab,) = _blocks(doc, Table)
    t1, t2 = tab.rows
    assert t1[:6] == ["t1", "macro_f1", "–", "t1+t2", "3", "0.710"]
    assert t1[6] == sections.render.fmt_ci(*frame.loc[0, ["test_mean", "test_lo", "test_hi"]])
    assert t2[3] == "t1+t2 + general 0.1" and t2[-1] == "+0.120"
    assert list(frame["task"]) == ["t1", "t2"] and "leaderboard" in doc.plots


def test_scaling_fits_every_arm_swept_at_three_sizes():
    doc = Document("r")
    fits = sections.scaling(doc, full_sweep())
    assert (fits["fit"] == FITTED).all() and len(fits) == 3 * 3
    (tab,) = _blocks(doc, Table)
    assert tab.columns[:3] == ["task", "cocktail", "α [95% CI]"]
    first = dict(zip(tab.columns, tab.rows[0], strict=True))
    assert first["task"] == "t1" and first["cocktail"] == "all" and first["sizes"] == "3"
    assert first["α [95% CI]"].startswith(f"{fits['alpha'].iloc[0]:.2f} [")
    assert first["R² (points)"].endswith("(n=6)")
    assert "α ≈ 0.28" in _blocks(doc, Para)[0].text and "scaling" in doc.plots


def test_scaling_cells_of_an_arm_that_was_not_fitted():
    fits = pd.DataFrame(
        {
            "task": ["t1"],
            "cocktail": ["all"],
            "general": [0.1],
            "math": [0.0],
            "A": [NAN],
            "alpha": [NAN],
            "alpha_lo": [NAN],
            "alpha_hi": [NAN],
            "r2": [NAN],
            "n_points": [4],
            "n_sizes": [2],
            "ci_method": ["t"],
            "fit": ["not fitted: 2 sizes"],
            "target": [0.9],
            "d_for_target": [math.inf],
        }
    )
    (row,) = sections.scaling_cells(fits).to_dict("records")
    assert row == {
        "task": "t1",
        "cocktail": "all + general 0.1",
        "α [95% CI]": "not fitted: 2 sizes",
        "ci": "–",
        "A": "–",
        "R² (points)": "–",
        "sizes": "2",
        "target": "–",
        "d for target": "∞",
    }


def test_comparison_cells_two_rows_per_task():
    r = {"task": "t1", "mde": 0.2}
    for prefix, p in (("vs_single", 0.0004), ("vs_base", NAN)):
        r |= {
            f"{prefix}_diff": 0.1,
            f"{prefix}_lo": 0.05,
            f"{prefix}_hi": 0.15,
            f"{prefix}_test": "mcnemar",
            f"{prefix}_n": 60,
            f"{prefix}_p": p,
            f"{prefix}_p_adj": p * 2,
            f"{prefix}_significant": True,
        }
    cells = sections.comparison_cells(pd.DataFrame([r]))
    assert cells.to_dict("records") == [
        {
            "task": "t1",
            "comparison": "best vs single-task",
            "Δ [95% CI]": "+0.100 [+0.050, +0.150]",
            "test": "mcnemar",
            "n": "60",
            "p": "<0.001",
            "p (Holm)": "<0.001",
            "significant": "yes",
            "MDE": "0.200",
        },
        {
            "task": "t1",
            "comparison": "best vs base model",
            "Δ [95% CI]": "+0.100 [+0.050, +0.150]",
            "test": "mcnemar",
            "n": "60",
            "p": "–",
            "p (Holm)": "–",
            "significant": "–",
            "MDE": "0.200",
        },
    ]


def test_marked_arm_and_base_cells():
    frame = pd.DataFrame(
        {
            "cocktail": ["all", NAN],
            "general": [0.0, 0.0],
            "math": [0.05, 0.0],
            "test_mean": [0.7, 0.5],
            "test_lo": [0.6, NAN],
            "test_hi": [0.8, NAN],
            "test_constant": [0, 2],
            "base_test": [0.3, NAN],
            "base_constant": [1, NAN],
        }
    )
    assert sections.arm_cells(frame) == ["all + math 0.05", "–"]
    assert sections.marked(frame, "test", [3, 2]) == ["0.700 [0.600, 0.800]", "0.500 constant"]
    assert sections.base_cells(frame) == ["0.300 constant", "–"]
    assert sections.triples(frame, "test")[1][0] == 0.5


@pytest.mark.parametrize(
    "fn, value, cell",
    [
        (sections._count, NAN, "–"),
        (sections._count, 1200.0, "1,200"),
        (sections._count, None, "–"),
        (sections._rows_fmt, 3659.4, "3,659"),
        (sections._rows_fmt, math.inf, "∞"),
    ],
)
def test_small_cells(fn, value, cell):
    assert fn(value) == cell


def test_yes_no_and_values():
    assert sections._yes_no(True, 0.01) == "yes" and sections._yes_no(np.False_, 0.5) == "no"
    assert sections._yes_no(True, NAN) == "–"
    rows = pd.DataFrame({"seed": [1, 0, 1, NAN]})
    assert sections._values(rows, "seed") == "0, 1" and sections._values(rows, "fraction") == "–"
