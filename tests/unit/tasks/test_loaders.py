"""Tasks over users' own files, with the quirks real files have: sorted by label,
imbalanced, latin-1, a TSV named .csv, spreadsheets, duplicate ids and texts, empty rows,
ids with leading zeros, one file without splits, labels with stray spaces and capitals."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from raysys.errors import UserError
from raysys.tasks import build_splits, entry, get_task, task_names
from raysys.tasks.loaders import load_task_spec
from tests.fixtures import LABELS, quirky_rows

ROWS = [
    ("Profits soared at Acme.", "positive"),
    ("Acme missed estimates.", "negative"),
    ("Acme holds its meeting Tuesday.", "neutral"),
]


def _task_yaml(tmp_path: Path, name: str, source: dict, file: str = "", **extra) -> str:
    spec = {
        "name": name,
        "kind": "classification",
        "labels": LABELS,
        "prompt": "Sentiment?\n{input}\nEnd with 'Answer: <label>'.",
        "source": source,
        **extra,
    }
    p = tmp_path / (file or f"{name}.yaml")
    p.write_text(yaml.safe_dump(spec, allow_unicode=True))
    return str(p)


def shares(rows: list[dict]) -> dict[str, float]:
    s = pd.Series([r["gold"] for r in rows]).value_counts(normalize=True)
    return {lab: float(s.get(lab, 0.0)) for lab in LABELS}


# ---------------------------------------------------------------- formats


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet", "xlsx", "sentence_at_label"])
def test_each_local_format_loads(tmp_path, fmt):
    train = pd.DataFrame(ROWS * 4, columns=["sentence", "sentiment"])
    train["sentence"] = [f"{t} ({i})" for i, t in enumerate(train["sentence"])]
    test = pd.DataFrame(ROWS, columns=["sentence", "sentiment"])
    suffix = {"sentence_at_label": "txt"}.get(fmt, fmt)
    for name, df in (("train", train), ("test", test)):
        f = tmp_path / f"{name}.{suffix}"
        if fmt in ("csv", "tsv"):
            df.to_csv(f, index=False, sep="\t" if fmt == "tsv" else ",")
        elif fmt == "jsonl":
            df.to_json(f, orient="records", lines=True)
        elif fmt == "parquet":
            df.to_parquet(f)
        elif fmt == "xlsx":
            df.to_excel(f, index=False)
        else:
            f.write_text("\n".join(f"{t}@{g}" for t, g in df.itertuples(index=False)) + "\n")
    cols = (
        {}
        if fmt == "sentence_at_label"
        else {"columns": {"input": "sentence", "gold": "sentiment"}}
    )
    path = _task_yaml(
        tmp_path,
        f"t_{fmt}",
        {"splits": {"train": f"train.{suffix}", "test": f"test.{suffix}"}},
        **cols,
    )
    task = get_task(path)
    assert task.name == f"t_{fmt}" and task.splits == ("train", "test")
    assert f"t_{fmt}" in task_names()
    rows = build_splits(path, {"train": 5, "test": 12}, 0)
    assert len(rows["train"]) == 5 and len(rows["test"]) == 3  # a cap above the split: all
    assert {(r["input"], r["gold"]) for r in rows["test"]} == set(ROWS)
    assert all(r["id"].startswith(f"t_{fmt}-test-") for r in rows["test"])


def test_latin1_file_is_refused_with_the_setting_that_fixes_it(tmp_path):
    df = quirky_rows(60)
    lines = [f"{s}@{t.strip()}" for s, t in zip(df["sentence"], df["tone"], strict=True)]
    (tmp_path / "fpb.txt").write_bytes("\n".join(lines).encode("latin-1"))
    src = {"format": "sentence_at_label", "split_fractions": {"test": 0.25}, "file": "fpb.txt"}
    bad = _task_yaml(tmp_path, "fpb_latin", src)
    with pytest.raises(UserError) as err:
        build_splits(bad, {"test": 10}, 0)
    msg = str(err.value)
    assert "fpb.txt line 1: not UTF-8 text (byte 0xe9" in msg
    assert "source.encoding (e.g. latin-1" in msg and "\n" not in msg
    good = _task_yaml(tmp_path, "fpb_latin1", {**src, "encoding": "latin-1"})
    rows = build_splits(good, {"train": 45, "test": 15}, 0)
    assert any("Société" in r["input"] for r in rows["train"] + rows["test"])


def test_tsv_named_csv_is_detected(tmp_path):
    df = quirky_rows(40)
    df.to_csv(tmp_path / "really_tabs.csv", sep="\t", index=False)
    quirky_rows(12, start=1000).to_csv(tmp_path / "t.csv", index=False)
    cols = {"input": "sentence", "gold": "tone", "id": "uid"}
    path = _task_yaml(
        tmp_path, "tabs", {"splits": {"train": "really_tabs.csv", "test": "t.csv"}}, columns=cols
    )
    rows = build_splits(path, {"train": 40}, 0)["train"]
    assert len(rows) == 40 and rows[0]["input"].endswith("news).")


def test_xlsx_by_sheet_name_and_index(tmp_path):
    with pd.ExcelWriter(tmp_path / "book.xlsx") as xw:
        pd.DataFrame({"x": [1]}).to_excel(xw, sheet_name="notes", index=False)
        quirky_rows(50).to_excel(xw, sheet_name="data", index=False)
    cols = {"input": "sentence", "gold": "tone", "id": "uid"}
    src = {"file": "book.xlsx", "split_fractions": {"test": 0.2}}
    by_name = _task_yaml(tmp_path, "xl_name", {**src, "sheet": "data"}, columns=cols)
    by_index = _task_yaml(tmp_path, "xl_index", {**src, "sheet": 1}, columns=cols)
    a, b = build_splits(by_name, {"test": 10}, 0), build_splits(by_index, {"test": 10}, 0)
    assert sorted(r["input"] for r in a["test"]) == sorted(r["input"] for r in b["test"])
    assert all(r["id"].split("-")[-1].startswith("000") for r in a["test"])  # leading zeros kept
    missing = _task_yaml(tmp_path, "xl_bad", {**src, "sheet": "nope"}, columns=cols)
    with pytest.raises(UserError, match="source.sheet: book.xlsx has no sheet 'nope'"):
        build_splits(missing, {"test": 5}, 0)


def test_datasets_folder_with_its_own_splits(tmp_path):
    import datasets

    dd = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_pandas(quirky_rows(30)),
            "test": datasets.Dataset.from_pandas(quirky_rows(9, start=500)),
        }
    )
    dd.save_to_disk(str(tmp_path / "saved"))
    cols = {"input": "sentence", "gold": "tone", "id": "uid"}
    path = _task_yaml(tmp_path, "dsd", {"file": "saved"}, columns=cols)
    assert get_task(path).splits == ("train", "test")
    rows = build_splits(path, {"train": 100, "test": 100}, 0)
    assert len(rows["train"]) == 30 and len(rows["test"]) == 9


# ---------------------------------------------------------------- sampling


def test_caps_on_a_label_sorted_file_are_stratified_nested_and_order_free(tmp_path):
    df = quirky_rows(400)
    df.to_csv(tmp_path / "sorted.csv", index=False)
    cols = {"input": "sentence", "gold": "tone", "id": "uid"}
    src = {"file": "sorted.csv", "split_fractions": {"validation": 0.1, "test": 0.2}}
    path = _task_yaml(tmp_path, "sorted_fpb", src, columns=cols)
    whole = shares([{"gold": t.strip().lower()} for t in df["tone"]])
    rows = build_splits(path, {"train": 160, "validation": 20, "test": 40}, 0)
    for split, got in rows.items():
        for lab in LABELS:
            assert abs(shares(got)[lab] - whole[lab]) <= 0.05, (split, lab, shares(got))
    # nested: a smaller cap is inside a larger one; every split disjoint from the others
    small = build_splits(path, {"train": 80}, 0)["train"]
    assert {r["id"] for r in small} <= {r["id"] for r in rows["train"]}
    ids = [r["id"].split("-")[-1] for s in rows.values() for r in s]
    assert len(ids) == len(set(ids))
    # the same rows when the file is shuffled (ids from the id column)
    df.sample(frac=1.0, random_state=3).to_csv(tmp_path / "sorted.csv", index=False)
    again = _task_yaml(tmp_path, "sorted_fpb", src, file="again.yaml", columns=cols)
    rows2 = build_splits(again, {"train": 160, "validation": 20, "test": 40}, 0)
    assert [r["input"] for r in rows2["test"]] == [r["input"] for r in rows["test"]]
    # labels with stray spaces and capitals are read as the task's labels
    assert {r["gold"] for r in rows["train"]} == set(LABELS)


def test_content_ids_are_stable_without_an_id_column(tmp_path):
    df = quirky_rows(100)[["sentence", "tone"]]
    df.to_csv(tmp_path / "a.csv", index=False)
    src = {"file": "a.csv", "split_fractions": {"test": 0.3}}
    cols = {"input": "sentence", "gold": "tone"}
    one = build_splits(_task_yaml(tmp_path, "cid1", src, columns=cols), {"test": 10}, 7)["test"]
    df.iloc[::-1].to_csv(tmp_path / "a.csv", index=False)
    again = _task_yaml(tmp_path, "cid1", src, file="again.yaml", columns=cols)
    two = build_splits(again, {"test": 10}, 7)["test"]
    assert [r["input"] for r in one] == [r["input"] for r in two]


def test_tasks_show_reports_source_and_sample_label_counts(tmp_path, capsys):
    from raysys.cli import main

    quirky_rows(400).to_csv(tmp_path / "sorted.csv", index=False)
    cols = {"input": "sentence", "gold": "tone", "id": "uid"}
    path = _task_yaml(
        tmp_path, "shown", {"file": "sorted.csv", "split_fractions": {"test": 0.5}}, columns=cols
    )
    assert main(["tasks", "show", path]) == 0
    out = capsys.readouterr().out
    assert "train: 200 rows in the source, 200 used" in out
    assert "positive 120 (60%)" in out and "neutral 30 (15%)" in out
    assert "test: 200 rows in the source, 120 used" in out
    assert "positive 72 (60%)" in out


# ---------------------------------------------------------------- bad rows


def test_empty_rows_refused_with_row_or_dropped_and_counted(tmp_path):
    (tmp_path / "train.csv").write_text(
        "text,label\nRevenue rose,positive\n,negative\nCosts fell,  \nFlat quarter,neutral\n"
    )
    (tmp_path / "test.csv").write_text("text,label\nSales up,positive\nSales down,negative\n")
    src = {"splits": {"train": "train.csv", "test": "test.csv"}}
    with pytest.raises(UserError) as err:
        build_splits(_task_yaml(tmp_path, "empties", src), {"train": 5}, 0)
    assert "train.csv row 3: empty input (text); fill it, or set source.drop_invalid" in str(
        err.value
    )
    path = _task_yaml(tmp_path, "empties2", {**src, "drop_invalid": True})
    rows = build_splits(path, {"train": 5}, 0)["train"]
    assert sorted(r["input"] for r in rows) == ["Flat quarter", "Revenue rose"]
    assert "nan" not in {r["gold"] for r in rows}
    assert entry(path).source.notes == [
        "train: dropped 1 empty input, 1 empty label rows (source.drop_invalid)"
    ] or any("dropped" in n for n in entry(path).source.notes)


def test_duplicate_ids_refused_duplicate_texts_reported(tmp_path):
    (tmp_path / "train.csv").write_text(
        "uid,text,label\n007,Up,positive\n1e3,Down,negative\n007,Flat,neutral\n"
    )
    (tmp_path / "test.csv").write_text("uid,text,label\n1,Sales up,positive\n")
    cols = {"input": "text", "gold": "label", "id": "uid"}
    src = {"splits": {"train": "train.csv", "test": "test.csv"}}
    with pytest.raises(UserError, match=r"train.csv row 4: id '007' is also on train.csv row 2"):
        build_splits(_task_yaml(tmp_path, "dupid", src, columns=cols), {"train": 3}, 0)
    (tmp_path / "train.csv").write_text(
        "uid,text,label\n007,Up,positive\n1e3,Down,negative\n008,Up,positive\n"
    )
    path = _task_yaml(tmp_path, "duptext", src, columns=cols)
    rows = build_splits(path, {"train": 3}, 0)["train"]
    assert {r["id"] for r in rows} == {
        "duptext-train-007",
        "duptext-train-1e3",
        "duptext-train-008",
    }
    assert "train: 1 duplicate input(s)" in entry(path).source.notes


def test_leakage_between_train_and_test_is_refused_unless_allowed(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\nSales UP  sharply,positive\nDown,negative\n")
    (tmp_path / "test.csv").write_text("text,label\nsales up sharply,positive\n")
    src = {"splits": {"train": "train.csv", "test": "test.csv"}}
    with pytest.raises(UserError, match=r"1 input\(s\) of train also in test .*allow_overlap"):
        build_splits(_task_yaml(tmp_path, "leak", src), {"train": 2}, 0)
    ok = _task_yaml(tmp_path, "leak_ok", {**src, "allow_overlap": True})
    assert len(build_splits(ok, {"train": 2}, 0)["train"]) == 2


def test_finben_rows_and_label_map(tmp_path):
    recs = [
        {"id": f"fpb{i}", "query": "q", "answer": a, "choices": LABELS, "gold": g, "text": t}
        for i, (t, a, g) in enumerate(
            [("Sales rose.", "positive", 2), ("Sales fell.", "negative", 0)]
        )
    ]
    (tmp_path / "fpb.jsonl").write_text("\n".join(json.dumps(r) for r in recs))
    path = _task_yaml(tmp_path, "fpb_local", {"format": "finben", "splits": {"test": "fpb.jsonl"}})
    rows = build_splits(path, {"test": 10}, 0)["test"]
    assert sorted((r["id"], r["input"], r["gold"]) for r in rows) == [
        ("fpb_local-test-fpb0", "Sales rose.", "positive"),
        ("fpb_local-test-fpb1", "Sales fell.", "negative"),
    ]
    (tmp_path / "codes.csv").write_text("text,label\nUp a lot,2\nDown, 0 \n")
    coded = _task_yaml(
        tmp_path,
        "coded",
        {"splits": {"test": "codes.csv"}},
        label_map={"0": "negative", "1": "neutral", "2": "Positive"},
    )
    assert sorted(r["gold"] for r in build_splits(coded, {"test": 9}, 0)["test"]) == [
        "negative",
        "positive",
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
        ({"labels": ["a", " A"]}, "distinct ignoring case"),
        ({"prompt": "no placeholder"}, "prompt must contain {input}"),
        ({"answer_regex": "Answer: (a)(b)"}, "exactly one capture group"),
        ({"source": {"splits": {"dev": "x.csv"}}}, "split names must be among"),
        ({"source": {"format": "hub", "splits": {"test": "test"}}}, "format hub needs hub_id"),
        ({"source": {"file": "x.csv", "splits": {"test": "x.csv"}}}, "either source.splits"),
        ({"source": {"file": "x.csv", "split_fractions": {"test": 1.5}}}, "each be in"),
        (
            {"source": {"file": "x.csv", "split_fractions": {"test": 0.6, "validation": 0.5}}},
            "sum < 1",
        ),
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


def test_missing_column_unknown_label_one_table_without_fractions(tmp_path):
    (tmp_path / "d.csv").write_text("text,label\nA rose,positive\nB fell,bearish\n")
    wrong_col = _task_yaml(
        tmp_path,
        "wc",
        {"splits": {"test": "d.csv"}},
        columns={"input": "sentence", "gold": "label"},
    )
    with pytest.raises(UserError, match="column 'sentence' not in split test"):
        build_splits(wrong_col, {"test": 5}, 0)
    bad_label = _task_yaml(tmp_path, "bl", {"splits": {"test": "d.csv"}, "drop_invalid": True})
    with pytest.raises(UserError, match=r"d.csv row 3: label 'bearish' is not one of"):
        build_splits(bad_label, {"test": 5}, 0)  # never dropped: a mapping mistake
    missing = _task_yaml(tmp_path, "mf", {"splits": {"test": "nope.csv"}})
    with pytest.raises(UserError, match="file not found"):
        build_splits(missing, {"test": 5}, 0)
    one = _task_yaml(tmp_path, "one", {"file": "d.csv"})
    with pytest.raises(UserError, match="is one table; add source.split_fractions"):
        build_splits(one, {"train": 5}, 0)
