"""Tasks defined in YAML over local files; FinBen rows; the hub's clear refusal."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from raysys.errors import UserError
from raysys.tasks import build_splits, get_task, task_names
from raysys.tasks.loaders import load_task_spec

ROWS = [
    ("Profits soared at Acme.", "positive"),
    ("Acme missed estimates.", "negative"),
    ("Acme holds its meeting Tuesday.", "neutral"),
]


def _task_yaml(tmp_path, name, source, **extra):
    spec = {
        "name": name,
        "kind": "classification",
        "labels": ["positive", "negative", "neutral"],
        "prompt": "Sentiment?\n{input}\nEnd with 'Answer: <label>'.",
        "source": source,
        **extra,
    }
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(spec))
    return str(p)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet", "sentence_at_label"])
def test_each_local_format_loads(tmp_path, fmt):
    df = pd.DataFrame(ROWS * 4, columns=["sentence", "sentiment"])
    f = tmp_path / f"data.{fmt}"
    if fmt == "csv":
        df.to_csv(f, index=False)
    elif fmt == "jsonl":
        df.to_json(f, orient="records", lines=True)
    elif fmt == "parquet":
        df.to_parquet(f)
    else:
        f.write_text("\n".join(f"{t}@{g}" for t, g in ROWS * 4) + "\n")
    cols = (
        {}
        if fmt == "sentence_at_label"
        else {"columns": {"input": "sentence", "gold": "sentiment"}}
    )
    path = _task_yaml(
        tmp_path, f"t_{fmt}", {"format": fmt, "splits": {"train": f.name, "test": f.name}}, **cols
    )
    task = get_task(path)
    assert task.name == f"t_{fmt}" and task.splits == ("train", "test")
    assert f"t_{fmt}" in task_names()
    rows = build_splits(path, {"train": 5, "test": 12}, 0)
    assert len(rows["train"]) == 5 and len(rows["test"]) == 12
    assert rows["test"][1] == {
        "id": f"t_{fmt}-test-000001",
        "task": f"t_{fmt}",
        "split": "test",
        "input": ROWS[1][0],
        "gold": "negative",
    }


def test_finben_rows_and_label_map(tmp_path):
    recs = [
        {
            "id": f"fpb{i}",
            "query": "q",
            "answer": a,
            "choices": ["negative", "neutral", "positive"],
            "gold": g,
            "text": t,
        }
        for i, (t, a, g) in enumerate(
            [("Sales rose.", "positive", 2), ("Sales fell.", "negative", 0)]
        )
    ]
    (tmp_path / "fpb.jsonl").write_text("\n".join(json.dumps(r) for r in recs))
    path = _task_yaml(tmp_path, "fpb_local", {"format": "finben", "splits": {"test": "fpb.jsonl"}})
    rows = build_splits(path, {"test": 10}, 0)["test"]
    assert [(r["id"], r["input"], r["gold"]) for r in rows] == [
        ("fpb_local-test-fpb0", "Sales rose.", "positive"),
        ("fpb_local-test-fpb1", "Sales fell.", "negative"),
    ]
    (tmp_path / "codes.csv").write_text("text,label\nUp a lot,2\nDown,0\n")
    coded = _task_yaml(
        tmp_path,
        "coded",
        {"format": "csv", "splits": {"test": "codes.csv"}},
        label_map={"0": "negative", "1": "neutral", "2": "positive"},
    )
    assert [r["gold"] for r in build_splits(coded, {"test": 9}, 0)["test"]] == [
        "positive",
        "negative",
    ]


def test_hub_unreachable_is_one_clear_error(tmp_path):
    path = _task_yaml(
        tmp_path, "fpb_hub", {"format": "hub", "hub_id": "fpb", "splits": {"test": "test"}}
    )
    with pytest.raises(
        UserError, match=r"cannot load 'fpb' split 'test' from the Hugging Face hub"
    ):
        build_splits(path, {"test": 5}, 0)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"kind": "regression"}, "kind: Input should be"),
        ({"labels": ["only"]}, "needs labels"),
        ({"prompt": "no placeholder"}, "prompt must contain {input}"),
        ({"answer_regex": "Answer: (a)(b)"}, "exactly one capture group"),
        ({"source": {"format": "csv", "splits": {"dev": "x.csv"}}}, "split names must be among"),
        ({"source": {"format": "hub", "splits": {"test": "test"}}}, "format hub needs hub_id"),
        ({"colour": "red"}, "colour: Extra inputs are not permitted"),
    ],
)
def test_bad_task_files_name_the_field(tmp_path, change, message):
    spec = {
        "name": "bad",
        "kind": "classification",
        "labels": ["a", "b"],
        "prompt": "{input}",
        "source": {"format": "csv", "splits": {"test": "x.csv"}},
        **change,
    }
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(spec))
    with pytest.raises(UserError, match=message) as e:
        load_task_spec(p)
    assert "\n" not in str(e.value)


def test_missing_column_and_unknown_label(tmp_path):
    (tmp_path / "d.csv").write_text("text,label\nA rose,positive\nB fell,bearish\n")
    wrong_col = _task_yaml(
        tmp_path,
        "wc",
        {"format": "csv", "splits": {"test": "d.csv"}},
        columns={"input": "sentence", "gold": "label"},
    )
    with pytest.raises(UserError, match="column 'sentence' not in split test"):
        build_splits(wrong_col, {"test": 5}, 0)
    bad_label = _task_yaml(tmp_path, "bl", {"format": "csv", "splits": {"test": "d.csv"}})
    with pytest.raises(UserError, match="label 'bearish' is not one of"):
        build_splits(bad_label, {"test": 5}, 0)
    missing = _task_yaml(tmp_path, "mf", {"format": "csv", "splits": {"test": "nope.csv"}})
    with pytest.raises(UserError, match="source.splits.test: file not found"):
        build_splits(missing, {"test": 5}, 0)
