"""`raysys sweep`: its flags, the dry run's table, the lines it prints after a sweep."""

from __future__ import annotations

from raysys.cli import main
from raysys.cli.sweep import retried_line, summary_line
from tests.fixtures import REPO
from tests.unit.cli._parsers import subparser

TINY = str(REPO / "configs" / "sweep_tiny.yaml")


def test_sweep_flags():
    args = subparser("sweep").parse_args([TINY, "--dry-run", "--resume", "--retry-errored"])
    assert (args.dry_run, args.resume, args.retry_errored) == (True, True, True)
    args = subparser("sweep").parse_args([TINY])
    assert (args.dry_run, args.resume, args.retry_errored) == (False, False, False)


def test_retry_errored_needs_resume(tmp_path, capsys):
    assert main(["sweep", TINY, f"run.storage_path={tmp_path}", "--retry-errored"]) == 2
    assert "--retry-errored needs --resume" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_the_dry_run_prints_every_trial_and_writes_nothing(tmp_path, capsys):
    assert (
        main(["sweep", TINY, "--dry-run", f"run.storage_path={tmp_path}", "sweep.seeds=[0,1]"]) == 0
    )
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["trial", "cocktail", "gen"]
    assert "8 trials" in out and "news_sentiment-g0-m0-f0p5-s1" in out
    assert list(tmp_path.iterdir()) == []


def test_summary_line():
    meta = {
        "finished": 4,
        "concurrency": 2,
        "tune_wall_seconds": 100.4,
        "ideal_seconds": 80,
        "wall_vs_ideal": 1.255,
        "datasets": 4,
        "data_built": 3,
        "data_cached": 1,
    }
    assert summary_line(meta, 130.2) == (
        "\n4 trials, 2 at a time: Tune 100s (ideal 80s, 1.25x); 4 datasets (3 built, "
        "1 cached); total 130s"
    )


def test_retried_line_names_the_trials_that_finished_after_a_retry():
    assert retried_line({"errored": [], "failures": {}}) is None
    assert retried_line({"errored": ["a"], "failures": {"a": ["boom"]}}) is None  # still errored
    meta = {"errored": ["a"], "failures": {"a": ["boom"], "b": ["oom", "preempted"], "c": ["x"]}}
    assert retried_line(meta) == (
        "2 trial(s) finished after a retry (b: preempted); every failure is in sweep.json "
        "(failures)"
    )
