"""`raysys.io`: what the atomic writers write (round trips, parent folders, no temporary
file left), folder replacement and recovery, and the one-line errors of `read_parquet`
and `read_json` on files that are not what their name says. (A writer dying mid-write,
and the audit that every write goes through here: tests/unit/test_atomic_writes.py.)"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from raysys import io
from raysys.errors import UserError


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_write_json_creates_parents_and_stringifies_what_json_lacks(tmp_path):
    path = tmp_path / "a" / "b" / "meta.json"
    io.write_json(path, {"path": Path("/x/y"), "when": dt.date(2024, 1, 2), "n": [1, 2.5]})
    assert json.loads(path.read_text()) == {"path": "/x/y", "when": "2024-01-02", "n": [1, 2.5]}
    assert path.read_text().startswith('{\n  "path"')  # indented: people read these
    assert _names(path.parent) == ["meta.json"]  # no temporary file left


def test_write_text_and_csv_replace_the_file(tmp_path):
    path = tmp_path / "r.md"
    io.write_text(path, "old")
    io.write_text(path, "new\n")
    assert path.read_text() == "new\n"
    io.write_csv(tmp_path / "t.csv", pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}))
    assert (tmp_path / "t.csv").read_text() == "a,b\n1,x\n2,y\n"  # no index column
    assert _names(tmp_path) == ["r.md", "t.csv"]


@pytest.mark.parametrize(
    "rows",
    [
        [{"id": "007", "x": 1.5}, {"id": "8", "x": 2.0}],
        pd.DataFrame({"id": ["007", "8"], "x": [1.5, 2.0]}),
    ],
)
def test_write_parquet_round_trips_rows_and_frames(tmp_path, rows):
    path = tmp_path / "deep" / "t.parquet"
    io.write_parquet(path, rows)
    back = io.read_parquet(path)
    assert back.to_dict("records") == [{"id": "007", "x": 1.5}, {"id": "8", "x": 2.0}]
    assert list(back.columns) == ["id", "x"]  # no index column either
    assert _names(path.parent) == ["t.parquet"]


def test_replace_tree_puts_a_folder_where_there_was_none(tmp_path):
    new, dst = tmp_path / "new", tmp_path / "dst"
    new.mkdir()
    (new / "f").write_text("1")
    io.replace_tree(new, dst)
    assert (dst / "f").read_text() == "1" and not new.exists()
    assert _names(tmp_path) == ["dst"]


def test_recover_tree_puts_back_an_aside_copy_whose_successor_never_arrived(tmp_path):
    dst = tmp_path / "adapter"
    aside = tmp_path / ".adapter.old"
    aside.mkdir()
    (aside / "w").write_text("old")
    io.recover_tree(dst)
    assert (dst / "w").read_text() == "old" and not aside.exists()


def test_recover_tree_drops_an_aside_copy_when_the_folder_is_whole(tmp_path):
    dst, aside = tmp_path / "adapter", tmp_path / ".adapter.old"
    for d, text in ((dst, "new"), (aside, "old")):
        d.mkdir()
        (d / "w").write_text(text)
    io.recover_tree(dst)
    assert (dst / "w").read_text() == "new" and _names(tmp_path) == ["adapter"]


def test_recover_tree_keeps_the_temporary_copy_of_a_live_writer(tmp_path):
    mine = tmp_path / f".adapter.tmp-{os.getpid()}"
    other = tmp_path / ".adapter.tmp-notapid"  # not a writer's name: not ours to touch
    mine.mkdir()
    other.mkdir()
    io.recover_tree(tmp_path / "adapter")
    assert mine.is_dir() and other.is_dir()


@pytest.mark.parametrize(
    "content",
    [b"id,text\n1,a\n", b"", b"PAR1\x00\x01truncated"],
    ids=["a csv", "empty", "cut short"],
)
def test_read_parquet_of_a_file_that_is_not_parquet_is_one_line(tmp_path, content):
    path = tmp_path / "rows.parquet"
    path.write_bytes(content)
    with pytest.raises(UserError) as e:
        io.read_parquet(path, "data.path")
    msg = str(e.value)
    assert msg.startswith(f"data.path: {path} is not a readable parquet file (")
    assert msg.endswith("point it at a parquet file, or rerun the step that writes it")
    assert "\n" not in msg and len(msg) < 400


def test_read_parquet_without_a_field_name(tmp_path):
    path = tmp_path / "x.parquet"
    path.write_text("nope")
    with pytest.raises(UserError, match=rf"^{path} is not a readable parquet file"):
        io.read_parquet(path)


def test_read_json_round_trip_and_cut_short_files(tmp_path):
    path = tmp_path / "sweep.json"
    io.write_json(path, {"finished": 2, "errored": []})
    assert io.read_json(path) == {"finished": 2, "errored": []}
    for content in (b"", b'{"finished": ', b"\xff\xfe{}"):
        path.write_bytes(content)
        with pytest.raises(UserError) as e:
            io.read_json(path, "sweep")
        msg = str(e.value)
        assert msg.startswith(f"sweep: {path} is not whole JSON (") and "(--resume)" in msg
        assert "\n" not in msg
