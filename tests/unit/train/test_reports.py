"""Training reports (`raysys.train.reports`): one whole JSON file per Ray Train report,
read back in order (torn or foreign files skipped), the per-step history deduplicated
across restarts, and gaps in it flagged. Real files; the recorder is called as Ray
Train's controller would call it, without Ray running."""

from __future__ import annotations

import json
import logging

import pytest
from ray.train import Checkpoint

from raysys.train.reports import (
    REPORTS,
    ReportRecorder,
    check_history,
    dedupe_history,
    filesystem_of,
    read_reports,
)


def test_each_report_is_one_file_read_back_in_order(tmp_path):
    rec = ReportRecorder(str(tmp_path), "train")
    ckpt_dir = tmp_path / "ckpt"
    ckpt_dir.mkdir()
    rec.after_report(None, [{"step": 2, "loss": 1.5, "history": [{"step": 1}, {"step": 2}]}], None)
    rec.after_report(
        None,
        [
            {"step": 4, "loss": 1.0, "history": [{"step": 3}, {"step": 4}], "peak_memory_bytes": 9},
            {"step": 4, "peak_memory_bytes": 7},
        ],
        Checkpoint.from_directory(str(ckpt_dir)),
    )
    folder = tmp_path / "train" / REPORTS
    names = sorted(p.name for p in folder.iterdir())
    assert (
        len(names) == 2 and names[0].endswith("-000002.json") and names[1].endswith("-000004.json")
    )
    reports = read_reports(str(tmp_path), "train")
    assert [r["step"] for r in reports] == [2, 4]
    assert reports[0]["metrics"] == {"step": 2, "loss": 1.5}  # the history is kept apart
    assert reports[0]["checkpoint"] is None and reports[1]["checkpoint"] == str(ckpt_dir)
    assert reports[1]["history"] == [{"step": 3}, {"step": 4}]
    assert reports[1]["peak_memory_bytes_by_rank"] == [9, 7]


def test_torn_and_foreign_files_are_skipped(tmp_path, caplog):
    folder = tmp_path / "train" / REPORTS
    folder.mkdir(parents=True)
    good = {"step": 1, "history": [{"step": 1, "loss": 2.0}]}
    (folder / "001.json").write_text(json.dumps(good))
    (folder / "002.json").write_text('{"step": 2, "hist')  # torn by a crash
    (folder / "003.json").write_bytes(b"\xff\xfe")  # not text
    (folder / "004.json").write_text(json.dumps({"step": 4}))  # no history
    (folder / "005.json").write_text("[1, 2]")  # not a report
    (folder / ".006.json.tmp-1").write_text(json.dumps(good))  # a write in progress
    (folder / "notes.txt").write_text("x")
    with caplog.at_level(logging.WARNING, logger="raysys.train.reports"):
        assert read_reports(str(tmp_path), "train") == [good]
    assert sum("not a whole report file" in r.getMessage() for r in caplog.records) == 4


def test_no_reports_yet(tmp_path):
    assert read_reports(str(tmp_path), "train") == []
    assert read_reports(f"file://{tmp_path}", "train") == []


def test_the_recorder_leaves_no_temporary_file(tmp_path):
    ReportRecorder(f"file://{tmp_path}", "run").after_report(None, [], None)
    files = list((tmp_path / "run" / REPORTS).iterdir())
    assert len(files) == 1 and files[0].name.endswith("-000000.json")
    assert json.loads(files[0].read_text())["history"] == []


def test_replayed_steps_keep_their_latest_entry():
    reports = [
        {"history": [{"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.0}]},
        # a restart from the checkpoint of step 1 replays step 2
        {"history": [{"step": 2, "loss": 2.5}, {"step": 3, "loss": 1.0}]},
        {"history": []},
    ]
    history, replayed = dedupe_history(reports)
    assert history == [
        {"step": 1, "loss": 3.0},
        {"step": 2, "loss": 2.5},
        {"step": 3, "loss": 1.0},
    ]
    assert replayed == 1
    assert dedupe_history([]) == ([], 0)


@pytest.mark.parametrize(
    ("steps", "last", "every", "complete"),
    [
        ([2, 4, 6], 6, 2, True),
        ([2, 6], 6, 2, False),  # step 4 is missing
        ([1, 2, 3], 3, 1, True),
        ([], 1, 2, True),  # nothing was due before the last step
        ([], 0, 1, True),
    ],
)
def test_the_history_is_complete_when_every_logging_step_is_there(steps, last, every, complete):
    final = {"step": last}
    check_history([{"step": s} for s in steps], final, every)
    assert final["history_complete"] is complete


def test_storage_paths_and_uris_name_a_filesystem(tmp_path):
    import pyarrow.fs

    fs, root = filesystem_of(str(tmp_path / "x" / ".." / "y"))
    assert isinstance(fs, pyarrow.fs.LocalFileSystem) and root == str(tmp_path / "y")
    fs, root = filesystem_of(f"file://{tmp_path}/z")
    assert isinstance(fs, pyarrow.fs.LocalFileSystem) and root == f"{tmp_path}/z"
