"""`raysys sweep --dry-run` (`raysys.sweep.plan`): the grid and its resource plan for a
new local Ray, with no Ray started and nothing written."""

from __future__ import annotations

import sys

import pytest

from raysys.config import SweepConfig, load_config
from raysys.errors import UserError
from raysys.sweep.plan import dry_run
from tests.fixtures import REPO

TINY = REPO / "configs" / "sweep_tiny.yaml"


def _cfg(tmp_path, *overrides: str) -> SweepConfig:
    return load_config(SweepConfig, TINY, [f"run.storage_path={tmp_path / 'runs'}", *overrides])


def test_dry_run_plans_the_grid_on_the_local_cpus_without_ray(tmp_path, no_ray):

    trials, plan = dry_run(_cfg(tmp_path, "ray.num_cpus=3"))
    assert len(trials) == 4
    assert {t.fraction for t in trials} == {0.5, 1.0}
    assert plan.available == {"CPU": 3.0} and plan.per_trial == {"CPU": 1.0}
    assert plan.concurrency == 3 and "CPUs available" in plan.why
    assert not (tmp_path / "runs").exists()


def test_dry_run_follows_the_workers_and_an_explicit_cap(tmp_path):
    _, plan = dry_run(
        _cfg(
            tmp_path,
            "ray.num_cpus=8",
            "train.num_workers=2",
            "train.per_device_batch_size=4",
            "train.cpus_per_worker=1.5",
        )
    )
    assert plan.per_trial == {"CPU": 3.0} and plan.concurrency == 2  # 8 // 3
    _, capped = dry_run(_cfg(tmp_path, "ray.num_cpus=8", "sweep.max_concurrent_trials=1"))
    assert capped.concurrency == 1 and capped.why == "sweep.max_concurrent_trials"
    _, short = dry_run(_cfg(tmp_path, "ray.num_cpus=1", "train.cpus_per_worker=2"))
    assert short.concurrency == 1 and "an autoscaler may add more" in short.why


def test_dry_run_refuses_what_the_real_run_would(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # the extra is not installed
    with pytest.raises(UserError, match="sweep.mlflow.tracking_uri needs MLflow"):
        dry_run(_cfg(tmp_path, "sweep.mlflow.tracking_uri=http://127.0.0.1:1"))
    with pytest.raises(UserError, match="sweep.fractions"):
        dry_run(_cfg(tmp_path, "sweep.fractions=[0]"))
