"""Run directories (`raysys.runs`): where a run lives (local, or an object store's mirror),
how its paths are named to users, resuming only with the same config, stages that run
once, and bad task files refused before anything is written. No Ray, no object store:
remote runs here only compute their mirror and URIs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from raysys.config import EvalConfig, SweepConfig, load_config
from raysys.errors import UserError
from raysys.runs import (
    RunDir,
    check_job_storage,
    check_resume,
    check_writable,
    latest_run_id,
    open_run,
    open_run_with_tasks,
    stage,
)
from tests.fixtures import REPO

S3 = "s3://bucket/runs?endpoint_override=10.0.0.5:9000&scheme=http"


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _eval_cfg(storage: Path, *overrides: str) -> EvalConfig:
    args = [f"run.storage_path={storage}", "run.run_id=r1", *overrides]
    return load_config(EvalConfig, REPO / "configs" / "eval.yaml", args)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A private raysys cache: object-store mirrors are made under it."""
    d = tmp_path / "cache"
    monkeypatch.setenv("RAYSYS_CACHE", str(d))
    return d


def test_a_local_run_is_its_own_path(tmp_path):
    run = RunDir.of(str(tmp_path), "exp", "r1")
    assert run.path == tmp_path.resolve() / "exp" / "r1" and run.uri is None
    assert run / "train" == run.path / "train"
    assert run.location() == str(run.path)
    assert run.location("tune") == str(run.path / "tune")
    assert run.shown() == str(run.path) and run.shown("a.csv") == str(run.path / "a.csv")
    assert not run.exists("tune")
    (run.path / "tune").mkdir(parents=True)
    assert run.exists("tune")
    assert RunDir.at(run.path) == run  # no mirror mark: a path of its own


def test_keep_and_publish_send_nothing_for_a_local_run(tmp_path):
    run = RunDir.of(str(tmp_path), "exp", "r1")
    (run.path / "stage").mkdir(parents=True)
    (run.path / "stage" / "out.txt").write_text("x")
    before = _files(tmp_path)
    run.keep()
    run.keep("stage")
    assert run.publish("stage") == str(run.path / "stage")
    assert _files(tmp_path) == before


def test_a_remote_run_works_in_its_mirror_and_is_named_by_its_uri(cache):
    run = RunDir.of(S3, "exp", "r1")
    mirror = next((cache / "mirrors").iterdir())
    assert run.path == mirror / "exp" / "r1"
    assert (
        mirror / ".raysys-remote"
    ).read_text() == "s3://bucket/runs?endpoint_override=10.0.0.5:9000&scheme=http"
    # the options stay at the end of every location; users see the URI without them
    assert run.uri == "s3://bucket/runs/exp/r1?endpoint_override=10.0.0.5:9000&scheme=http"
    assert run.location("tune") == (
        "s3://bucket/runs/exp/r1/tune?endpoint_override=10.0.0.5:9000&scheme=http"
    )
    assert run.shown() == "s3://bucket/runs/exp/r1"
    assert run.shown("report.md") == "s3://bucket/runs/exp/r1/report.md"
    # a path inside the mirror knows where it stands for
    assert RunDir.at(run.path / "trials" / "t1").uri == (
        "s3://bucket/runs/exp/r1/trials/t1?endpoint_override=10.0.0.5:9000&scheme=http"
    )
    assert RunDir.of(S3, "exp", "r2").path.parent == run.path.parent  # one mirror per store


def test_latest_run_id_is_the_newest_with_the_marker(tmp_path):
    for rid, marker in [("20240101", "tune"), ("20240301", "tune"), ("20240501", "other")]:
        (tmp_path / "exp" / rid / marker).mkdir(parents=True)
    assert latest_run_id(str(tmp_path), "exp", "tune") == "20240301"
    assert latest_run_id(str(tmp_path), "exp", "config.yaml") is None
    assert latest_run_id(str(tmp_path), "nothing", "tune") is None


def test_job_storage_refuses_credentials_and_relative_paths_under_ray_jobs(tmp_path, monkeypatch):
    with pytest.raises(UserError, match=r"run.storage_path: credentials in the URI"):
        check_job_storage("s3://AKIAXX:secret@bucket/runs")
    with pytest.raises(UserError, match=r"--storage: unsupported scheme 'http://'"):
        check_job_storage("http://example.com/runs", field="--storage")
    check_job_storage("runs")  # a relative path is fine outside a Ray job
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", "{}")
    with pytest.raises(UserError, match=r"'runs' is relative, and this runs under `ray job"):
        check_job_storage("runs")
    check_job_storage(str(tmp_path))  # absolute: every node may see it


def test_check_writable_creates_the_folder_and_refuses_what_cannot_be_one(tmp_path):
    check_writable(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir() and _files(tmp_path / "a" / "b") == []
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(UserError, match=r"run.storage_path: cannot write to .*file/run"):
        check_writable(tmp_path / "file" / "run")


def test_resume_accepts_the_same_config_and_refuses_a_changed_one(tmp_path):
    cfg = _eval_cfg(tmp_path)
    run = open_run(cfg)
    check_resume(run.path, cfg)  # the same settings: fine
    check_resume(run.path, _eval_cfg(tmp_path, "run.run_id=other"))  # the folder's own name
    changed = _eval_cfg(tmp_path, "eval.size=7", "generate.batch_size=3")
    with pytest.raises(UserError, match=r"exists with another config \(eval.size, generate"):
        check_resume(run.path, changed)
    with pytest.raises(UserError, match=r"eval.size"):
        open_run(changed)
    assert open_run(cfg).path == run.path  # reopened with the same config
    check_resume(tmp_path / "new", changed)  # nothing saved there yet: anything goes


def test_open_run_records_the_config_it_was_given(tmp_path):
    cfg = _eval_cfg(tmp_path, "eval.size=9")
    run = open_run(cfg)
    assert run.path == tmp_path.resolve() / "eval" / "r1"
    saved = yaml.safe_load((run.path / "config.yaml").read_text())
    assert saved["eval"]["size"] == 9 and saved["run"]["run_id"] == "r1"
    assert [p.name for p in run.path.iterdir()] == ["config.yaml"]  # the write probe is gone


def test_open_run_redacts_credentials_in_the_stored_config(tmp_path):
    cfg = load_config(
        SweepConfig,
        REPO / "configs" / "sweep_tiny.yaml",
        [
            f"run.storage_path={tmp_path}",
            "run.run_id=r1",
            "sweep.mlflow.tracking_uri=http://bob:hunter2@mlflow.example:5000",
        ],
    )
    run = open_run(cfg)
    text = (run.path / "config.yaml").read_text()
    assert "hunter2" not in text and "bob" not in text
    assert yaml.safe_load(text)["sweep"]["mlflow"]["tracking_uri"] == (
        "http://***@mlflow.example:5000"
    )


def test_a_run_with_a_redacted_field_reopens_with_the_same_config(tmp_path):
    cfg = load_config(
        SweepConfig,
        REPO / "configs" / "sweep_tiny.yaml",
        [
            f"run.storage_path={tmp_path}",
            "run.run_id=r1",
            "sweep.mlflow.tracking_uri=http://bob:hunter2@mlflow.example:5000",
        ],
    )
    open_run(cfg)
    open_run(cfg)  # the same command again (a resume): must not be "another config"


def test_a_stage_runs_once_then_is_skipped(tmp_path):
    calls: list[Path] = []

    def fn(d: Path) -> dict[str, int]:
        calls.append(d)
        (d / "out.txt").write_text("done")
        return {"rows": 3}

    out = tmp_path / "run" / "train"
    assert stage(out, "train", fn) == {"rows": 3}
    assert calls == [out] and (out / "out.txt").read_text() == "done"
    record = json.loads((out / "stage.json").read_text())
    assert record["result"] == {"rows": 3} and record["seconds"] >= 0
    assert stage(out, "train", fn) == {"rows": 3}  # from stage.json
    assert len(calls) == 1
    run = RunDir.of(str(tmp_path), "run", "x")
    assert run.stage("s", "s", lambda d: 5) == 5 and run.stage("s", "s", fn) == 5
    assert len(calls) == 1


def test_a_stage_that_fails_is_not_marked_done(tmp_path):
    def boom(d: Path) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        stage(tmp_path / "s", "s", boom)
    assert not (tmp_path / "s" / "stage.json").exists()
    assert stage(tmp_path / "s", "s", lambda d: "second try") == "second try"


def test_a_bad_task_file_is_refused_before_the_run_directory_exists(tmp_path, csv_task):
    task_file = csv_task("mytone", {"train": 12, "test": 12})
    (tmp_path / "test.csv").write_text("headline\nno gold column here\n")
    storage = tmp_path / "runs"
    cfg = _eval_cfg(storage, f"eval.tasks=[{task_file}]", "eval.size=4")
    with pytest.raises(UserError, match=r"task mytone: .*column 'tone' not in split test"):
        open_run_with_tasks(cfg, [_need(task_file)])
    assert not storage.exists()


def test_open_run_with_tasks_writes_the_rows_under_the_run(tmp_path, csv_task):
    task_file = csv_task("mytone", {"train": 12, "test": 12})
    storage = tmp_path / "runs"
    cfg = _eval_cfg(storage, f"eval.tasks=[{task_file}]", "eval.size=4")
    run = open_run_with_tasks(cfg, [_need(task_file)])
    assert run.path == storage.resolve() / "eval" / "r1"
    manifest = json.loads((run.path / "tasks" / "mytone" / "manifest.json").read_text())
    assert manifest["sizes"] == {"test": 4}
    assert (run.path / "config.yaml").is_file()


def _need(task_file: Path):
    from raysys.tasks.store import Need

    return Need(str(task_file), {"test": 4})
