"""`raysys.analysis.evidence`: one task's rows from a long predictions frame; the
baselines, `constant` counts, paired comparisons and intervals asked of it, checked
against scikit-learn on the same rows."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from raysys.analysis.evidence import (
    BASELINE_COLUMNS,
    COMPARISON_FIELDS,
    add_correction,
    arm_ci,
    baseline_values,
    compare,
    comparison_values,
    task_rows,
)
from raysys.analysis.paired import NO_TEST

TASK = "news_sentiment"
LABELS = ["positive", "negative", "neutral"]
GOLDS = [LABELS[i % 3] for i in range(60)]


def _noisy(right: float, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [g if rng.random() < right else rng.choice(LABELS) for g in GOLDS]


PREDS = {
    "base": _noisy(0.2, 1),
    "a": _noisy(0.9, 2),
    "b": _noisy(0.95, 3),
    "flat": ["neutral"] * 60,
}


def _long(preds: dict[str, list[str]] = PREDS, with_pred: bool = True) -> pd.DataFrame:
    rows = []
    for adapter, ps in preds.items():
        for i, (g, p) in enumerate(zip(GOLDS, ps, strict=True)):
            row = {"adapter": adapter, "task": TASK, "id": i, "gold": g, "input": f"text {i}"}
            row.update({"pred": p} if with_pred else {"generated_text": f"Because.\nAnswer: {p}"})
            rows.append(row)
    other = {
        "adapter": "a",
        "task": "fin_ner",
        "id": 0,
        "gold": "none",
        "input": "x",
        "pred": "none",
    }
    return pd.DataFrame([*rows, other] if with_pred else rows)


def _macro(preds: list[str]) -> float:
    return f1_score(GOLDS, preds, labels=LABELS, average="macro", zero_division=0)


def test_task_rows_is_one_column_per_model_indexed_by_id():
    rows = task_rows(_long(), TASK)
    assert rows.task == TASK and rows.scorer.metric == "macro_f1"
    assert list(rows.frame.columns) == ["gold", "input", "a", "b", "base", "flat"]
    assert len(rows.frame) == 60 and list(rows.frame.index[:3]) == ["0", "1", "10"]  # ids as text
    assert rows.frame.loc["7", "gold"] == GOLDS[7] and rows.frame.loc["7", "a"] == PREDS["a"][7]
    assert rows.has(["a", "b"]) and not rows.has(["a", "zz"]) and not rows.has([])


def test_predictions_without_pred_are_extracted_from_the_text():
    rows = task_rows(_long(with_pred=False), TASK)
    assert rows.frame["a"].tolist() == task_rows(_long(), TASK).frame["a"].tolist()


def test_no_rows_for_the_task_is_none():
    assert task_rows(None, TASK) is None
    assert task_rows(pd.DataFrame(), TASK) is None
    assert task_rows(_long(), "price_direction") is None


def test_an_unknown_task_without_pred_is_none(caplog):
    frame = _long(with_pred=False).assign(task="not_registered")
    assert task_rows(frame, "not_registered", kind="classification") is None
    assert "predictions lack `pred` and the task is unknown" in caplog.text


def test_baselines_on_the_tasks_rows():
    values = baseline_values(task_rows(_long(), TASK))
    assert list(values) == BASELINE_COLUMNS
    assert values["n"] == 60 and values["majority_answer"] in LABELS
    assert values["majority"] == pytest.approx(_macro([values["majority_answer"]] * 60))
    assert values["random"] == pytest.approx(1 / 3, abs=0.02)
    assert values["mde"] == pytest.approx(1.98 / math.sqrt(60), rel=0.01)
    empty = baseline_values(None)
    assert math.isnan(empty["majority"]) and empty["majority_answer"] is None


def test_constant_counts_the_models_predicting_one_value():
    rows = task_rows(_long(), TASK)
    assert rows.constant(["flat"]) == 1 and rows.constant(["a", "b", "flat", "gone"]) == 1


def test_compare_is_b_minus_a_on_the_shared_rows():
    rows = task_rows(_long(), TASK)
    result = compare(rows, ["base"], ["b"])
    assert result.diff == pytest.approx(_macro(PREDS["b"]) - _macro(PREDS["base"]))
    assert result.lo < result.diff < result.hi and result.n == 60
    assert result.p < 0.001 and result.test == "permutation"  # macro F1: not per-row
    assert compare(rows, ["base"], ["zz"]) is NO_TEST and compare(None, ["a"], ["b"]) is NO_TEST


def test_compare_only_uses_the_rows_both_answered():
    preds = {**PREDS, "b": PREDS["b"][:30] + [None] * 30}
    frame = _long(preds)
    rows = task_rows(frame.dropna(subset=["pred"]), TASK)
    assert compare(rows, ["a"], ["b"]).n == 30


def test_comparison_values_and_the_holm_correction():
    rows = task_rows(_long(), TASK)
    values = comparison_values("vs_base", compare(rows, ["base"], ["a"]))
    assert list(values) == [f"vs_base_{f}" for f in COMPARISON_FIELDS[:6]]
    frame = pd.DataFrame({"vs_base_p": [0.01, 0.04, math.nan]})
    out = add_correction(frame, "vs_base")
    assert out["vs_base_p_adj"].tolist()[:2] == [pytest.approx(0.02), pytest.approx(0.04)]
    assert math.isnan(out["vs_base_p_adj"].iloc[2])
    assert out["vs_base_significant"].tolist()[:2] == [True, True]
    assert "vs_base_p_adj" not in frame  # a copy


def test_arm_ci_holds_the_arms_mean_score():
    rows = task_rows(_long(), TASK)
    lo, hi = arm_ci(rows, ["a", "b"], n_resamples=400)
    mean = (_macro(PREDS["a"]) + _macro(PREDS["b"])) / 2
    assert lo < mean < hi and hi - lo < 0.3
    assert all(math.isnan(v) for v in arm_ci(rows, ["zz"])) and all(
        math.isnan(v) for v in arm_ci(None, ["a"])
    )
