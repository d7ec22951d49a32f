"""The Tune side of a sweep without running one (`raysys.sweep.tune`): trial driver
resources, the scheduler, the trial order, every trial's failures read back as one line
each (from Tune's own `error.txt` and `Result`s; the line itself: `sweep.failures`),
where Tune keeps its state, and the exit drill. No Ray is started; `run_tune` itself:
tests/integration/test_sweep.py."""

from __future__ import annotations

import pytest

from raysys.config import SweepConfig, load_config
from raysys.errors import UserError
from tests.fixtures import REPO

TINY = REPO / "configs" / "sweep_tiny.yaml"


def _cfg(*overrides: str) -> SweepConfig:
    return load_config(SweepConfig, TINY, list(overrides))


def test_trial_drivers_hold_no_cpu_and_can_be_pinned():
    from raysys.sweep.tune import trial_resources

    assert "CPU" not in trial_resources(_cfg(), {"CPU": 2.0})
    pinned = trial_resources(_cfg("sweep.driver_resource=raysys_driver"), {"raysys_driver": 100})
    assert pinned["raysys_driver"] == 0.001
    with pytest.raises(UserError, match="sweep.driver_resource: no node"):
        trial_resources(_cfg("sweep.driver_resource=raysys_driver"), {"CPU": 2.0})


def test_asha_stops_learning_rates_on_the_training_loss():
    from ray.tune.schedulers import ASHAScheduler

    from raysys.sweep.tune import _scheduler

    assert _scheduler(_cfg()) is None  # grids run FIFO
    asha = _scheduler(_cfg("sweep.scheduler=asha", "sweep.learning_rates=[1e-4,1e-3]"))
    assert isinstance(asha, ASHAScheduler) and asha.metric == "loss"


def test_trials_start_longest_first_ties_in_grid_order():
    from raysys.sweep.grid import Trial
    from raysys.sweep.tune import longest_first

    def t(tid: str) -> Trial:
        return Trial(tid, "c", "singleton", (("news_sentiment", 1.0),), 0.0, 0.0, 1.0, 0, 1e-4, 8)

    trials = [t("a"), t("b"), t("c"), t("d")]
    rows = {"a": {"rows": 12}, "b": {"rows": 48}, "c": {"rows": 12}, "d": {"rows": 24}}
    assert [x.trial_id for x in longest_first(trials, rows)] == ["b", "d", "a", "c"]


# --------------------------------------------------------------------------- trial failures

TRACEBACK = """Traceback (most recent call last):
  File "/x/raysys/sweep/trial.py", line 60, in sweep_trial
    cfg = trial_config(ctx["config"])
raysys.errors.UserError: data.path: /d/train.parquet not found; point it at a parquet
"""

PYDANTIC = """Traceback (most recent call last):
  File "/x/raysys/sweep/trial.py", line 60, in sweep_trial
pydantic_core._pydantic_core.ValidationError: 1 validation error for SweepConfig
sweep.fractions
  Value error, fraction 0 must be in (0, 1] [type=value_error, input_value=[0], input_type=list]
    For further information visit https://errors.pydantic.dev/2.11/v/value_error
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (TRACEBACK, "UserError: data.path: /d/train.parquet not found; point it at a parquet"),
        (PYDANTIC, "ValidationError: sweep.fractions: fraction 0 must be in (0, 1]"),
        (
            "ray::ImplicitFunc.train() (pid=7)\n  File 'x'\n"
            "raysys.sweep.trial.TrialError: train.learning_rate: Input should be a valid number\n",
            "TrialError: train.learning_rate: Input should be a valid number",
        ),
        ("worker exited\nSystemExit: 1\n", "SystemExit: 1"),
        ("the node died\n\n", "the node died"),
        ("", "unknown error"),
    ],
)
def test_a_failure_is_one_line_saying_why(text, expected):
    from raysys.sweep.failures import cause

    assert cause(text) == expected


def test_a_long_cause_is_cut():
    from raysys.sweep.failures import cause

    line = cause("RuntimeError: " + "x" * 400)
    assert len(line) == 300 and line.startswith("RuntimeError: xxx") and line.endswith("...")


def test_every_failure_of_every_trial_is_read_back_in_order(tmp_path):
    from ray.tune import Result

    from raysys.sweep.tune import first_cause, trial_failures

    def result(tid: str, error: Exception | None = None, text: str | None = None) -> Result:
        path = tmp_path / tid
        path.mkdir()
        if text is not None:
            (path / "error.txt").write_text(text)
        return Result({"config": {"trial": {"trial_id": tid}}}, None, error, str(path))

    twice = (
        "Failure # 1 (occurred at 2026-01-01_00-00-00)\n"
        + TRACEBACK
        + "\nFailure # 2 (occurred at 2026-01-01_00-01-00)\n"
        + PYDANTIC
    )
    grid = [
        result("t1", RuntimeError("kept by Tune"), twice),
        result("t2", RuntimeError("no error file\nValueError: bad rows")),
        result("t3"),  # finished
    ]
    failures = trial_failures(grid)
    assert failures == {
        "t1": [
            "UserError: data.path: /d/train.parquet not found; point it at a parquet",
            "ValidationError: sweep.fractions: fraction 0 must be in (0, 1]",
        ],
        "t2": ["ValueError: bad rows"],
    }
    assert first_cause(["t3", "t1"], failures) == (
        "; t1 failed with: ValidationError: sweep.fractions: fraction 0 must be in (0, 1]"
    )
    assert first_cause(["t3"], failures) == ""


def test_tune_state_lives_with_the_run(tmp_path, monkeypatch):
    from raysys.sweep.tune import trial_dirname, tune_callbacks, tune_location, tune_parent

    cfg = _cfg(f"run.storage_path={tmp_path}")
    sweep_dir = tmp_path / "sweep_tiny" / "s1"
    assert tune_location(cfg, sweep_dir) == str(sweep_dir / "tune")
    assert tune_parent(cfg, sweep_dir) == str(sweep_dir)
    monkeypatch.setenv("RAYSYS_CACHE", str(tmp_path / "cache"))
    remote = _cfg("run.storage_path=s3://bucket/runs?region=us-east-1")
    assert (
        tune_location(remote, sweep_dir) == "s3://bucket/runs/sweep_tiny/s1/tune?region=us-east-1"
    )
    assert tune_callbacks(cfg) == []

    class _Trial:  # what Tune hands the name creators: a trial with its config
        config = {"trial": {"trial_id": "news_sentiment-g0-m0-f1-s0"}}

    assert trial_dirname(_Trial()) == "news_sentiment-g0-m0-f1-s0"


def test_the_exit_drill_counts_only_when_its_own_environment_asks(monkeypatch):
    from raysys.sweep.tune import ExitAfterTrials

    drill = ExitAfterTrials(2)
    monkeypatch.delenv("RAYSYS_FAULTS", raising=False)
    drill.on_trial_complete(1, [], None)  # a restored driver without the drill
    assert drill.done == 0
    monkeypatch.setenv("RAYSYS_FAULTS", "sweep_exit_after_trials=2")
    drill.on_trial_complete(1, [], None)
    assert drill.done == 1  # one short of exiting
