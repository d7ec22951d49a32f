"""`raysys.tasks.sources`: reading task files as users have them, record by record with
a row label: encodings (refused with the byte, line and setting), delimiter sniffing,
spreadsheets by sheet, JSON lines, parquet, `sentence@label` files."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from raysys.errors import UserError
from raysys.tasks.sources import (
    ReadOptions,
    dataset_dict_splits,
    decode,
    infer_format,
    read_table,
)

OPTS = ReadOptions(field="task fpb")


def _values(records) -> list[dict]:
    return [r.values for r in records]


@pytest.mark.parametrize(
    "name, fmt",
    [
        ("a.csv", "csv"),
        ("a.TSV", "tsv"),
        ("a.tab", "tsv"),
        ("a.ndjson", "jsonl"),
        ("a.json", "json"),
        ("a.pq", "parquet"),
        ("a.xlsm", "xlsx"),
        ("a.txt", "sentence_at_label"),
        ("a.dat", None),
    ],
)
def test_infer_format_from_the_name(tmp_path, name, fmt):
    assert infer_format(tmp_path / name) == fmt


def test_a_folder_is_a_datasets_folder(tmp_path):
    assert infer_format(tmp_path) == "datasets"
    assert dataset_dict_splits(tmp_path) is None


def test_csv_rows_are_text_with_spreadsheet_row_numbers(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text(" id ,text,label\n007,Profits rose,positive\n008,,negative\n")
    records = read_table(path, OPTS)
    assert _values(records) == [
        {"id": "007", "text": "Profits rose", "label": "positive"},  # leading zeros kept
        {"id": "008", "text": "", "label": "negative"},  # empty is '', not NaN
    ]
    assert [r.where for r in records] == ["train.csv row 2", "train.csv row 3"]


@pytest.mark.parametrize("sep", [";", "|", "\t"])
def test_the_delimiter_of_a_csv_is_sniffed(tmp_path, sep, caplog):
    path = tmp_path / "d.csv"
    path.write_text(f"text{sep}label\nA, B and C{sep}positive\nD{sep}negative\n")
    with caplog.at_level(logging.INFO, logger="raysys.tasks.sources"):
        records = read_table(path, OPTS)
    assert _values(records) == [
        {"text": "A, B and C", "label": "positive"},
        {"text": "D", "label": "negative"},
    ]
    assert f"{sep!r}-separated" in caplog.text


def test_a_given_delimiter_wins_over_sniffing(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a;b\n1;2\n")
    assert _values(read_table(path, ReadOptions(delimiter=","))) == [{"a;b": "1;2"}]


def test_a_csv_read_as_one_column_of_tabs_says_it_is_tab_separated(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text\tlabel\nA\tpositive\n")
    with pytest.raises(UserError, match=r"the file is tab-separated: set source.delimiter"):
        read_table(path, ReadOptions(delimiter=","))


def test_tsv_is_tab_separated_without_sniffing(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_text("text\tlabel\nA;B\tpositive\n")
    assert _values(read_table(path, OPTS)) == [{"text": "A;B", "label": "positive"}]


def test_latin1_text_is_refused_as_utf8_naming_byte_line_and_fix(tmp_path):
    path = tmp_path / "fpb.csv"
    path.write_bytes("text,label\nCaf\xe9 Corp grew,positive\n".encode("latin-1"))
    with pytest.raises(UserError) as e:
        read_table(path, OPTS)
    assert str(e.value) == (
        "task fpb: fpb.csv line 2: not UTF-8 text (byte 0xe9 at offset 14); set "
        "source.encoding (e.g. latin-1 or cp1252) in the task file, or save it as UTF-8"
    )
    rows = _values(read_table(path, ReadOptions(encoding="latin-1")))
    assert rows == [{"text": "Café Corp grew", "label": "positive"}]


def test_a_byte_order_mark_is_not_text(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbfid,text\n1,a\n")
    assert _values(read_table(path, OPTS)) == [{"id": "1", "text": "a"}]
    assert decode(path, ReadOptions(encoding="UTF_8")) == "id,text\n1,a\n"


def test_an_unknown_encoding_is_one_line(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a\n1\n")
    with pytest.raises(UserError, match=r"source.encoding: unknown encoding 'klingon'"):
        decode(path, ReadOptions(encoding="klingon", field="task x"))


def test_xlsx_by_sheet_name_and_index(tmp_path):
    path = tmp_path / "book.xlsx"
    with pd.ExcelWriter(path) as xw:
        pd.DataFrame({"text": ["cover"]}).to_excel(xw, sheet_name="about", index=False)
        pd.DataFrame({"id": ["01"], "text": ["A"]}).to_excel(xw, sheet_name="data", index=False)
    assert _values(read_table(path, ReadOptions(sheet="data"))) == [{"id": "01", "text": "A"}]
    assert _values(read_table(path, ReadOptions(sheet=1))) == [{"id": "01", "text": "A"}]
    assert _values(read_table(path, OPTS)) == [{"text": "cover"}]  # the first sheet
    for sheet in ("nope", 5):
        with pytest.raises(UserError, match=rf"source.sheet: book.xlsx has no sheet {sheet!r}"):
            read_table(path, ReadOptions(sheet=sheet, field="task x"))


def test_json_lines_and_json_records(tmp_path):
    lines = tmp_path / "d.jsonl"
    lines.write_text('{"id": "01", "n": 1}\n{"id": "02", "n": 2}\n')
    records = read_table(lines, OPTS)
    assert _values(records) == [{"id": "01", "n": 1}, {"id": "02", "n": 2}]
    assert [r.where for r in records] == ["d.jsonl line 1", "d.jsonl line 2"]
    whole = tmp_path / "d.json"
    whole.write_text('[{"id": "01"}]')
    assert [r.where for r in read_table(whole, OPTS)] == ["d.json record 1"]


def test_parquet_rows(tmp_path):
    path = tmp_path / "d.parquet"
    pd.DataFrame({"id": ["a", "b"], "x": [1, 2]}).to_parquet(path)
    records = read_table(path, OPTS)
    assert _values(records) == [{"id": "a", "x": 1}, {"id": "b", "x": 2}]
    assert records[1].where == "d.parquet row 2"


def test_sentence_at_label_splits_at_the_last_at_sign(tmp_path):
    path = tmp_path / "fpb.txt"
    path.write_text("Mail a@b.com rose@positive\n\n  Costs fell @ negative \n")
    records = read_table(path, OPTS)
    assert _values(records) == [
        {"text": "Mail a@b.com rose", "label": "positive"},
        {"text": "Costs fell", "label": "negative"},
    ]
    assert [r.where for r in records] == ["fpb.txt line 1", "fpb.txt line 3"]
    path.write_text("no label here\n")
    with pytest.raises(UserError, match=r"fpb.txt line 1: expected 'sentence@label'"):
        read_table(path, OPTS)


@pytest.mark.parametrize(
    "name, opts, expected",
    [
        ("a.dat", OPTS, "task fpb: cannot tell the format of a.dat from its name"),
        ("missing.csv", OPTS, "task fpb: file not found: "),
        (
            "a.csv",
            ReadOptions(format="hub", field="t"),
            "t: format 'hub' cannot be read from a file",
        ),
    ],
)
def test_what_cannot_be_read_is_one_line(tmp_path, name, opts, expected):
    path = tmp_path / name
    if name != "missing.csv":
        path.write_text("x\n")
    with pytest.raises(UserError, match=expected):
        read_table(path, opts)


def test_a_parser_complaint_becomes_one_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"id": 1}\n{"id": \n')
    with pytest.raises(UserError) as e:
        read_table(path, ReadOptions(field="task x"))
    msg = str(e.value)
    assert msg.startswith("task x: cannot read d.jsonl as jsonl (") and "\n" not in msg
    assert msg.endswith("check the file or set source.format")


def test_a_saved_dataset_split(tmp_path):
    import datasets

    folder = tmp_path / "split"
    datasets.Dataset.from_dict({"id": ["1", "2"], "text": ["a", "b"]}).save_to_disk(str(folder))
    records = read_table(folder, OPTS)
    assert _values(records) == [{"id": "1", "text": "a"}, {"id": "2", "text": "b"}]
    assert records[0].where == "split row 1"
    dd = tmp_path / "dd"
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"x": [1]}),
            "test": datasets.Dataset.from_dict({"x": [2]}),
        }
    ).save_to_disk(str(dd))
    assert dataset_dict_splits(dd) == ["train", "test"]
    with pytest.raises(UserError, match=r"holds the splits train, test"):
        read_table(dd, OPTS)


def test_the_read_options_default_to_utf8_and_sniffing():
    o = ReadOptions()
    assert (o.format, o.encoding, o.delimiter, o.sheet, o.field) == (
        None,
        "utf-8",
        None,
        0,
        "source",
    )
