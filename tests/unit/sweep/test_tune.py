"""The Tune side of a sweep without running one (`raysys.sweep.tune`): trial driver
resources, the scheduler, the trial order. No Ray is started."""

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
