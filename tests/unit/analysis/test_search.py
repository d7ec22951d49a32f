"""`raysys.analysis.search`: the search section's numbers from a known search: the
rank correlation of predicted vs measured, the choice on validation, the paired test."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from raysys.analysis.render import Document, to_markdown
from raysys.analysis.search import add_search_section, chosen_vs_grid, round_rows
from raysys.tasks import get_task
from tests.unit.analysis.synthetic import arm_rows, base_row

TASK = "news_sentiment"
LABELS = ["positive", "negative", "neutral"] * 20


def _mixture(name: str, predicted: float | None) -> dict:
    trial = f"{name}-g0.0-m0.0-f1.0-s0"
    return {"name": name, "weights": [[TASK, 1.0]], "general": 0.0, "math": 0.0,
            "fraction": 1.0, "trial_ids": [trial], "predicted": predicted}  # fmt: skip


def _state(predicted: list[float]) -> dict:
    r1 = [_mixture(f"mix-{i}", p) for i, p in enumerate(predicted)]
    return {
        "surrogate": "ridge",
        "objective": {TASK: 1.0},
        "budget": {"trials": 1 + len(r1), "equal_to_grid": False},
        "rounds": [
            {"name": "grid", "kind": "grid", "trials": []},
            {"name": "r0", "kind": "initial", "mixtures": [_mixture("mix-a", None)]},
            {"name": "r1", "kind": "proposed", "mixtures": r1, "fitted_on": 1},
        ],
    }


def _results(measured: list[float], grid_val: float, best_correct: int) -> tuple:
    """Results and predictions: a grid singleton, mix-a, and mix-i with validation
    `measured[i]`; the best mixture by validation answers `best_correct` of 60 test rows
    right, the grid singleton 30."""
    task = get_task(TASK)
    rows = [base_row(TASK, 0.2)]
    rows += arm_rows(TASK, "singleton", (TASK,), {TASK: (grid_val, 0.5)})
    rows += arm_rows("mix-a", "search", (TASK,), {TASK: (0.1, 0.3)})
    best = max(range(len(measured)), key=measured.__getitem__)
    outs = {}
    for i, v in enumerate(measured):
        rows += arm_rows(f"mix-{i}", "search", (TASK,), {TASK: (v, 0.4)})
    results = pd.DataFrame(rows)
    ids = dict(zip(results["cocktail"], results["trial_id"], strict=False))

    def answers(n_right: int) -> list[str]:
        return [f"Answer: {g}" if j < n_right else "Answer: wrong" for j, g in enumerate(LABELS)]

    outs[ids[TASK]] = answers(30)
    outs[ids[f"mix-{best}"]] = answers(best_correct)
    preds = pd.concat(
        pd.DataFrame(
            {
                "adapter": a,
                "task": TASK,
                "id": range(60),
                "input": "x",
                "gold": LABELS,
                "generated_text": o,
            }
        )  # fmt: skip
        for a, o in outs.items()
    )
    assert task.extract("Answer: wrong") is not None
    return results, preds


def test_rank_correlation_of_predicted_vs_measured():
    results, _ = _results([0.2, 0.4, 0.6, 0.8], 0.5, 40)
    rounds, mixtures = round_rows(_state([0.1, 0.3, 0.2, 0.9]), results)
    r1 = rounds.set_index("round").loc["r1"]
    assert r1["n"] == 4 and r1["spearman"] == pytest.approx(0.8)
    assert r1["best so far (val)"] == pytest.approx(0.8)
    assert mixtures["measured"].tolist()[1:] == pytest.approx([0.2, 0.4, 0.6, 0.8])


def test_no_rank_correlation_from_two_points():
    results, _ = _results([0.2, 0.4], 0.5, 40)
    rounds, _ = round_rows(_state([0.1, 0.3]), results)
    assert math.isnan(rounds.set_index("round").loc["r1", "spearman"])


def test_the_chosen_mixture_is_compared_with_the_grid_on_test_rows():
    results, preds = _results([0.2, 0.9], 0.5, 50)
    frame, info = chosen_vs_grid(_state([0.1, 0.3]), results, preds)
    assert info["chosen"][0] == "mix-1" and info["grid"][0] == TASK  # chosen on validation
    row = frame.iloc[0]
    # macro F1 is not per-row correctness: a paired permutation test on the 60 rows
    assert row["c_test"] == "permutation" and row["c_n"] == 60
    assert row["c_diff"] > 0.2 and row["c_lo"] > 0  # 50 vs 30 rows right
    assert row["c_p"] < 0.01 and row["c_p_adj"] == row["c_p"]  # one task: Holm changes nothing


def test_the_section_says_why_without_a_grid():
    results, preds = _results([0.2, 0.9], 0.5, 50)
    results = results[results["cocktail_kind"] != "singleton"]
    doc = Document(title="t")
    add_search_section(doc, _state([0.1, 0.3]), results, preds, {})
    md = to_markdown(doc)
    assert "No comparison: no grid baseline ran" in md and "| search budget |" in md


def test_a_constant_chosen_model_is_marked_next_to_the_majority_baseline():
    results, preds = _results([0.2, 0.9], 0.5, 50)
    best = results.loc[results["cocktail"] == "mix-1", "trial_id"].iloc[0]
    preds.loc[preds["adapter"] == best, "generated_text"] = "Answer: positive"
    frame, _ = chosen_vs_grid(_state([0.1, 0.3]), results, preds)
    row = frame.iloc[0]
    assert row["chosen_constant"] == 1 and row["grid_constant"] == 0
    assert 0 < row["majority"] < 1
    doc = Document(title="t")
    add_search_section(doc, _state([0.1, 0.3]), results, preds, {})
    line = next(ln for ln in to_markdown(doc).splitlines() if ln.startswith(f"| {TASK} "))
    assert " constant |" in line
