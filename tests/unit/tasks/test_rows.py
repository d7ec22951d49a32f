"""`raysys.tasks.rows`: a YAML task's rows from its files (`FileTask`): ids scoped by task
and split (from the text where there is no id column), labels read through the label
map, bad rows refused or dropped and counted, duplicates noted, leakage refused, splits
carved by fractions; pool files read like the task's own."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from raysys.errors import UserError
from raysys.tasks import get_task
from raysys.tasks.loaders import TaskSpec
from raysys.tasks.rows import FileTask, normalize_text, read_pool_file

LABELS = ["positive", "negative", "neutral"]


def _task(tmp_path: Path, splits: dict[str, list[dict]], **source) -> FileTask:
    id_column = source.pop("_id", None)
    reasoning = source.pop("_reasoning", None)
    files = {}
    for split, rows in splits.items():
        pd.DataFrame(rows).to_csv(tmp_path / f"{split}.csv", index=False)
        files[split] = f"{split}.csv"
    spec = TaskSpec.model_validate(
        {
            "name": "tone",
            "kind": "classification",
            "labels": LABELS,
            "prompt": "{input}",
            "source": {"splits": files, **source} if "file" not in source else source,
            "columns": {"input": "text", "gold": "label", "id": id_column, "reasoning": reasoning},
            "label_map": {"Bullish": "positive", " BEARISH ": "negative"},
        }
    )
    return FileTask(spec, tmp_path)


def _rows(texts: str, labels: str = "pnu") -> list[dict]:
    names = {"p": "positive", "n": "negative", "u": "neutral"}
    return [
        {"text": t, "label": names[labels[i % len(labels)]]} for i, t in enumerate(texts.split(","))
    ]


def test_normalize_text():
    assert normalize_text("  Profits   ROSE\n") == "profits rose" == normalize_text("profits rose")


def test_ids_come_from_the_text_and_are_scoped_by_task_and_split(tmp_path):
    task = _task(
        tmp_path, {"test": [{"text": "A", "label": "positive"}, {"text": "A", "label": "negative"}]}
    )
    rows = task.all_rows()["test"]
    digest = hashlib.sha256(b"A").hexdigest()[:12]
    assert [r["id"] for r in rows] == [f"tone-test-{digest}", f"tone-test-{digest}-2"]
    assert rows[0] == {
        "id": rows[0]["id"],
        "task": "tone",
        "split": "test",
        "input": "A",
        "gold": "positive",
    }
    assert task.notes == ["test: 1 duplicate input(s)"]


def test_labels_are_read_through_the_label_map_and_canonical_case(tmp_path):
    rows = [
        {"text": t, "label": lab}
        for t, lab in (("a", "bullish"), ("b", "bearish"), ("c", " Neutral "))
    ]
    task = _task(tmp_path, {"test": rows})
    assert [r["gold"] for r in task.all_rows()["test"]] == ["positive", "negative", "neutral"]


def test_an_unknown_label_is_refused_even_with_drop_invalid(tmp_path):
    task = _task(
        tmp_path, {"test": _rows("a,b") + [{"text": "c", "label": "bearishish"}]}, drop_invalid=True
    )
    with pytest.raises(
        UserError, match=r"^task tone: test.csv row 4: label 'bearishish' is not one of"
    ):
        task.all_rows()


def test_empty_rows_are_refused_with_the_fix_or_dropped_and_counted(tmp_path):
    rows = _rows("a,b,c") + [{"text": "", "label": "positive"}, {"text": "d", "label": ""}]
    with pytest.raises(UserError) as e:
        _task(tmp_path, {"test": rows}).all_rows()
    assert str(e.value) == (
        "task tone: test.csv row 5: empty input (text); fill it, or set source.drop_invalid: "
        "true to drop such rows"
    )
    task = _task(tmp_path, {"test": rows}, drop_invalid=True)
    assert len(task.all_rows()["test"]) == 3
    assert task.notes == ["test: dropped 1 empty input, 1 empty label (source.drop_invalid)"]


def test_a_repeated_id_names_both_rows(tmp_path):
    rows = [
        {"uid": "7", "text": "a", "label": "positive"},
        {"uid": "7", "text": "b", "label": "negative"},
    ]
    task = _task(tmp_path, {"test": rows}, _id="uid")
    with pytest.raises(UserError, match=r"test.csv row 3: id '7' is also on test.csv row 2"):
        task.all_rows()


def test_a_missing_column_lists_the_columns(tmp_path):
    task = _task(tmp_path, {"test": [{"sentence": "a", "label": "positive"}]})
    with pytest.raises(
        UserError, match=r"column 'text' not in split test \(columns: sentence, label\)"
    ):
        task.all_rows()


def test_a_reasoning_column_goes_before_the_answer_in_the_target(tmp_path):
    rows = [
        {"text": "a", "label": "positive", "why": "  Sales rose 5%: good for holders. "},
        {"text": "b", "label": "negative", "why": None},  # no rationale: the answer alone
    ]
    test = [{"text": "c", "label": "neutral", "why": "Routine."}]
    task = _task(tmp_path, {"train": rows, "test": test}, _reasoning="why")
    train = {r["input"]: r for r in task.all_rows()["train"]}
    assert train["a"]["reasoning"] == "Sales rose 5%: good for holders."
    assert train["b"]["reasoning"] == ""
    assert "reasoning" not in task.all_rows()["test"][0]  # train rows only
    tone = get_task("news_sentiment")  # any task: the target reads the row
    assert tone.target(train["a"]) == "Sales rose 5%: good for holders.\nAnswer: positive"
    assert tone.target(train["b"]) == "Answer: negative" == tone.answer_line(train["b"])


def test_a_missing_reasoning_column_is_named_with_the_fix(tmp_path):
    task = _task(tmp_path, {"train": _rows("a,b")}, _reasoning="rationale")
    with pytest.raises(
        UserError, match=r"column 'rationale' not in split train .*columns\.reasoning"
    ):
        task.all_rows()


def test_evaluation_inputs_in_train_are_refused_unless_allowed(tmp_path):
    splits = {"train": _rows("a,b,Shared text"), "test": _rows("c,shared  TEXT")}
    with pytest.raises(
        UserError, match=r"1 input\(s\) of train also in test .*set source.allow_overlap"
    ):
        _task(tmp_path, splits).all_rows()
    task = _task(tmp_path, splits, allow_overlap=True)
    assert len(task.all_rows()["train"]) == 3
    assert task.notes[-1].endswith("allowed by source.allow_overlap")


def test_split_fractions_carve_the_train_rows_by_label(tmp_path):
    pd.DataFrame(_rows(",".join(f"t{i}" for i in range(30)))).to_csv(
        tmp_path / "all.csv", index=False
    )
    task = _task(tmp_path, {}, file="all.csv", split_fractions={"test": 0.2})
    splits = task.all_rows()
    assert {s: len(r) for s, r in splits.items()} == {"train": 24, "test": 6}
    assert (
        sorted(r["gold"] for r in splits["test"])
        == ["negative"] * 2 + ["neutral"] * 2 + ["positive"] * 2
    )
    assert all(r["id"].startswith("tone-test-") and r["split"] == "test" for r in splits["test"])


def test_one_table_without_fractions_says_how_to_split_it(tmp_path):
    pd.DataFrame(_rows("a,b")).to_csv(tmp_path / "all.csv", index=False)
    with pytest.raises(
        UserError, match=r"source.file: all.csv is one table; add source.split_fractions"
    ):
        _task(tmp_path, {}, file="all.csv").all_rows()


def test_rows_take_a_stratified_prefix_and_refuse_a_missing_split(tmp_path):
    task = _task(tmp_path, {"test": _rows(",".join(f"t{i}" for i in range(30)), "ppppnnu")})
    few = task.rows({"test": 7}, 0)["test"]
    assert len(few) == 7 and few == task.rows({"test": 20}, 0)["test"][:7]  # nested
    assert {r["gold"] for r in few} == set(LABELS)
    with pytest.raises(UserError, match="task tone: split train holds no rows"):
        task.rows({"train": 3}, 0)


def test_a_pool_needs_no_labels(tmp_path):
    task = _task(
        tmp_path,
        {
            "test": _rows("a,b,c"),
            "pool": [{"text": "x", "label": ""}, {"text": "y", "label": "positive"}],
        },
    )
    assert [r["gold"] for r in task.all_rows()["pool"]] == [None, "positive"]


def test_a_pool_file_for_a_builtin_task_guesses_its_columns(tmp_path):
    path = tmp_path / "pool.csv"
    pd.DataFrame(
        {"id": ["p1", "p2"], "sentence": ["Fed holds.", "Fed hikes."], "label": ["neutral", ""]}
    ).to_csv(path, index=False)
    rows = read_pool_file(get_task("fomc_stance"), path)
    assert [(r["id"], r["input"], r["gold"]) for r in rows] == [
        ("fomc_stance-pool-p1", "Fed holds.", "neutral"),
        ("fomc_stance-pool-p2", "Fed hikes.", None),
    ]
