"""`raysys report`: its argument, and the folders it refuses with one line."""

from __future__ import annotations

from raysys.cli import main
from tests.unit.cli._parsers import subparser


def test_report_takes_one_directory():
    assert subparser("report").parse_args(["runs/sweep/s1"]).sweep_dir == "runs/sweep/s1"


def test_a_folder_without_results_is_exit_2(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"raysys: error: {tmp_path}: no results.parquet or pipeline.json; point it at a finished "
        "sweep or pipeline directory (<run.storage_path>/<run.name>/<run_id>)\n"
    )


def test_a_pipeline_json_that_is_no_summary_is_exit_2(tmp_path, capsys):
    (tmp_path / "pipeline.json").write_text("[1, 2]")
    assert main(["report", str(tmp_path)]) == 2
    assert "pipeline.json is not a pipeline summary" in capsys.readouterr().err
    (tmp_path / "pipeline.json").write_text('{"models": [')
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"raysys: error: SWEEP_DIR: {tmp_path / 'pipeline.json'} is not whole JSON"
    )


def test_a_uri_with_credentials_is_refused_without_echoing_them(capsys):
    assert main(["report", "s3://AKIA:SECRET@bucket/runs/s1"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("raysys: error: SWEEP_DIR: credentials in the URI") and "SECRET" not in err
    )


def test_the_runs_own_tasks_are_registered_for_its_report(tmp_path, csv_task, monkeypatch):
    """A run of a task YAML, reported in a process that never loaded that YAML (another
    folder, another machine): the task comes from the run's `tasks/` folder, so its rows
    are scored by its own kind and labels; afterwards the registry is as it was."""
    import raysys.tasks
    from raysys.analysis.rowscore import scorer_for
    from raysys.cli.report import register_run_tasks
    from raysys.tasks.store import Need, materialize

    run_dir = tmp_path / "run"
    materialize(run_dir, [Need(str(csv_task("tone", {"test": 6})), {"test": 6})], 0)
    monkeypatch.setattr(raysys.tasks, "_REGISTRY", dict(raysys.tasks._builtin()))
    assert scorer_for("tone") is None  # what `raysys report` saw before
    register_run_tasks(run_dir)
    scorer = scorer_for("tone")
    assert scorer is not None and scorer.labels == ("positive", "negative", "neutral")
    monkeypatch.setattr(raysys.tasks, "_REGISTRY", dict(raysys.tasks._builtin()))
    assert main(["report", str(run_dir)]) == 2  # no results: refused, registry restored
    assert scorer_for("tone") is None
