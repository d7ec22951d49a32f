"""What a sweep sends to MLflow (`raysys.sweep.tracking`), the parts that need no server:
a trial's flat params and which numbers of a Tune result become metrics. The server,
the sweep and the read-back are in tests/integration/test_tracking.py."""

from __future__ import annotations

import pandas as pd

from raysys.sweep.grid import Trial
from raysys.sweep.tracking import _scores, result_metrics, run_link, trial_params


def test_a_trial_is_flat_params_with_each_tasks_share_of_the_final_mixture():
    trial = Trial(
        "pair-g0p2-m0-f0p5-s1", "pair", "pair", (("a", 3.0), ("b", 1.0)), 0.2, 0.0, 0.5, 1, 2e-4, 16
    )
    assert trial_params(trial.params()) == {
        "trial_id": "pair-g0p2-m0-f0p5-s1",
        "cocktail": "pair",
        "cocktail_kind": "pair",
        "tasks": "a,b",
        "share/a": "0.6",  # 3/4 of the 80% the regularisers leave
        "share/b": "0.2",
        "general": "0.2",
        "math": "0.0",
        "fraction": "0.5",
        "seed": "1",
        "learning_rate": "0.0002",
        "lora_r": "16",
    }


def test_a_train_report_keeps_its_numbers_and_drops_tunes_bookkeeping():
    report = {
        "loss": 2.5,
        "grad_norm": 0.7,
        "step": 3,
        "max_steps": 4,
        "training_iteration": 3,
        "time_this_iter_s": 0.1,
        "timestamp": 1,
        "pid": 42,
        "done": False,
        "trial_id": "x",
        "date": "2026-01-01",
        "config": {"trial": {}},
        "nan": float("nan"),
    }
    assert result_metrics(report) == {"loss": 2.5, "grad_norm": 0.7}


def test_a_finished_trials_mean_loss_is_train_loss_not_a_point_of_the_loss_curve():
    final = {"loss": 2.4, "train_loss": 2.4, "val_main_mean": 0.5, "val_main/a": 0.5, "step": 4}
    assert result_metrics(final) == {"train_loss": 2.4, "val_main_mean": 0.5, "val_main/a": 0.5}


def test_scores_are_the_main_metric_per_task_and_their_mean_without_nans():
    table = pd.DataFrame(
        {
            "trial_id": ["t", "t", "base", "base"],
            "task": ["a", "b", "a", "b"],
            "val_main": [0.5, float("nan"), float("nan"), float("nan")],
            "test_main": [0.25, 0.75, 0.1, 0.3],
        }
    )
    assert _scores(table, "t") == {
        "val_main/a": 0.5,
        "val_main_mean": 0.5,
        "test_main/a": 0.25,
        "test_main/b": 0.75,
        "test_main_mean": 0.5,
    }
    assert set(_scores(table, "base", prefix="base/")) == {
        "base/test_main/a",
        "base/test_main/b",
        "base/test_main_mean",
    }


def test_a_run_link_is_the_ui_address_for_a_server_only():
    assert run_link("http://h:5000/", "3", "abc") == "http://h:5000/#/experiments/3/runs/abc"
    assert run_link("sqlite:///m.db", "3", "abc") == "abc (experiment 3 in sqlite:///m.db)"


class _Client:
    """The two MlflowClient calls `SweepTracking._backfill` makes: the steps a run holds
    a loss for (`logged`) and the batches it logs."""

    def __init__(self, logged: tuple[int, ...]):
        from types import SimpleNamespace

        self.logged = [SimpleNamespace(step=s) for s in logged]
        self.batches: list = []

    def get_metric_history(self, run_id, key):
        return self.logged

    def log_batch(self, run_id, metrics):
        self.batches.append(metrics)


def _backfill(client: _Client, tmp_path, history: list[dict]) -> None:
    import json
    from types import SimpleNamespace

    from raysys.sweep.tracking import SweepTracking

    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"final": {}, "history": history}))
    SweepTracking(None, tmp_path, client, {})._backfill(
        SimpleNamespace(info=SimpleNamespace(run_id="r")), path
    )


def test_steps_a_killed_driver_never_logged_are_taken_from_the_trials_metrics(tmp_path):
    """A driver killed between a trial's last reports and their logging: the resumed trial
    restarts from its checkpoint and reports no more steps; its metrics.json has them."""
    from types import SimpleNamespace

    history = [{"step": s, "loss": 1.0 / s, "grad_norm": 0.5} for s in (1, 2, 3, 4)]
    client = _Client(logged=(1, 2, 3))
    _backfill(client, tmp_path, history)
    (batch,) = client.batches
    assert {(m.key, m.step, m.value) for m in batch} == {("loss", 4, 0.25), ("grad_norm", 4, 0.5)}
    client.logged.append(SimpleNamespace(step=4))
    _backfill(client, tmp_path, history)
    assert len(client.batches) == 1  # nothing missing: nothing logged again


def test_steps_missing_before_the_last_logged_one_are_backfilled_too(tmp_path):
    """A trial whose driver died after it trained its last step but before its reports
    were logged resumes at that step and reports only it: steps 1-3 are a gap, not a
    tail, and still come from its metrics.json."""
    client = _Client(logged=(4,))
    _backfill(client, tmp_path, [{"step": s, "loss": 1.0 / s} for s in (1, 2, 3, 4)])
    (batch,) = client.batches
    assert sorted(m.step for m in batch) == [1, 2, 3]
