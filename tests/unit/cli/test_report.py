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
