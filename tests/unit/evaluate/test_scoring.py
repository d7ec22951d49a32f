"""Evaluation's scoring (`raysys.evaluate.scoring`) on a hand-made predictions frame, as the
engine returns it: answers extracted strictly and leniently, overlength flagged, one table
row per (model, task) with what an adapter changed vs the base. The engine pass itself
(`evaluate_tasks`): tests/integration/test_eval.py."""

from __future__ import annotations

import pandas as pd
import pytest

from raysys.engines.base import BASE
from raysys.evaluate.scoring import (
    LEAD,
    _eval_row,
    _extracted,
    _table,
    changed_share,
    format_results,
)
from raysys.tasks import get_task

NS = get_task("news_sentiment")
GOLD = ["positive", "negative", "neutral", "positive"]


def _frame(adapter: str, texts: list[str], overlong: list[bool] | None = None) -> pd.DataFrame:
    n = len(texts)
    return pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(n)],
            "task": "news_sentiment",
            "input": [f"headline {i}" for i in range(n)],
            "gold": GOLD[:n],
            "adapter": adapter,
            "generated_text": texts,
            "num_generated_tokens": [4 * (i + 1) for i in range(n)],
            "overlong": overlong or [False] * n,
        }
    )


BASE_TEXTS = [
    "I think it is positive news",  # no 'Answer:' line: only the lenient reader finds it
    "Answer: negative",
    "sales fell sharply again " * 3,  # a loop
    "cut off mid",
]
SFT_TEXTS = ["Answer: positive", "Answer: negative", "Answer: neutral", "Answer: negative"]


def _scored() -> pd.DataFrame:
    tasks = {"news_sentiment": (NS, [])}
    df = pd.concat(
        [_frame(BASE, BASE_TEXTS, [False, False, False, True]), _frame("sft", SFT_TEXTS)]
    )
    return _extracted(df.reset_index(drop=True), tasks)


def test_answers_are_read_strictly_and_leniently_and_overlength_flagged():
    df = _scored()
    base = df[df["adapter"] == BASE]
    assert base["pred"].tolist() == ["missing", "negative", "missing", "missing"]
    assert base["pred_lenient"].tolist()[:2] == ["positive", "negative"]
    assert base["overlength"].tolist() == [False, False, True, True]  # a loop, a cut
    assert df[df["adapter"] == "sft"]["pred"].tolist() == [
        "positive",
        "negative",
        "neutral",
        "negative",
    ]


def test_one_row_per_model_and_task_with_the_change_vs_base():
    tasks = {"news_sentiment": (NS, [])}
    table = _table(_scored(), tasks, [BASE, "sft"], include_base=True)
    assert list(table.columns[: len(LEAD)]) == LEAD
    base, sft = table.to_dict("records")
    assert (base["adapter"], sft["adapter"]) == ("base", "sft")
    assert base["n"] == sft["n"] == 4
    assert sft["accuracy"] == 0.75 and sft["main"] == sft["macro_f1"]
    assert base["missing_rate"] == 0.75 and sft["missing_rate"] == 0.0
    assert base["overlength_ratio"] == 0.5 and base["overlong_rate"] == 0.25
    assert base["mean_generated_tokens"] == 10.0  # (4 + 8 + 12 + 16) / 4
    assert sft["changed_vs_base"] == 0.75  # row r1 reads the same on both
    assert pd.isna(base["changed_vs_base"])


def test_without_the_base_there_is_no_change_to_report():
    df = _extracted(_frame("sft", SFT_TEXTS), {"news_sentiment": (NS, [])})
    table = _table(df, {"news_sentiment": (NS, [])}, ["sft"], include_base=False)
    assert "changed_vs_base" not in table.columns and table["adapter"].tolist() == ["sft"]


def test_changed_share_matches_rows_by_id():
    base = pd.Series(["a", "b", "c"], index=["x", "y", "z"])
    other = pd.Series(["c2", "a", "b"], index=["z", "x", "y"])
    assert changed_share(base, other) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="same row ids"):
        changed_share(base, other.iloc[:2])


def test_rows_carry_their_prompt_and_gold_as_text():
    row = _eval_row(NS, {"id": 7, "input": "Shares rose.", "gold": 1})
    assert row["gold"] == "1" and row["task"] == "news_sentiment" and row["id"] == 7
    assert row["messages"] == NS.messages({"input": "Shares rose."})
    assert _eval_row(NS, {"id": 1, "input": "x"})["gold"] is None


def test_the_markdown_table_has_the_leading_columns():
    table = pd.DataFrame(
        [{"adapter": "base", "task": "t", "n": 4, "main": 0.5, "missing_rate": 0.25, "extra": 1}]
    )
    assert format_results(table).splitlines() == [
        "| adapter | task | n | main | missing_rate |",
        "| --- | --- | --- | --- | --- |",
        "| base | t | 4 | 0.500 | 0.250 |",
    ]
