"""`raysys.analysis.rowscore`: per-row counts whose sums reproduce each task's own scorer,
and a scorer for a task known only by its kind."""

from __future__ import annotations

import numpy as np
import pytest

from raysys.analysis.rowscore import RowScorer, scorer_for
from raysys.tasks import get_task


@pytest.mark.parametrize("task", ["news_sentiment", "fin_ner", "numeric_qa"])
def test_row_counts_reproduce_the_task_scorer(task):
    t = get_task(task)
    from raysys.tasks import build_splits

    rows = build_splits(task, {"test": 40}, 0)["test"]
    golds = [str(r["gold"]) for r in rows]
    inputs = [r["input"] for r in rows]
    rng = np.random.default_rng(1)
    # a mix of right answers, other rows' answers and missing ones
    preds = [g if rng.random() < 0.5 else str(rng.choice([*golds, "missing"])) for g in golds]
    scorer = scorer_for(task)
    want = t.behaviour.score(t, golds, preds, inputs)[t.main_metric]
    assert scorer.score(golds, preds, inputs) == pytest.approx(want, abs=1e-12)


def test_unregistered_task_is_scored_from_its_kind():
    scorer = scorer_for("not_a_task", ["b", "a", "b"], kind="classification")
    assert scorer == RowScorer("not_a_task", "classification", "macro_f1", ("a", "b"))
    assert scorer_for("not_a_task", ["x"]) is None  # no kind: no analysis, not a guess
