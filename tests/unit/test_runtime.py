"""`raysys.runtime` without starting Ray: the environment workers get (less what a
submitted job sets itself), fault injection from RAYSYS_FAULTS, Ray Data kept quiet."""

from __future__ import annotations

import json

import pytest

from raysys import runtime
from raysys.errors import UserError


def test_worker_env_keeps_worker_logs_readable():
    env = runtime.worker_env()
    assert env["RAY_TRAIN_ENABLE_PRINT_PATCH"] == "0"
    assert env["TOKENIZERS_PARALLELISM"] == "false"
    assert env["TRANSFORMERS_VERBOSITY"] == "error"
    assert all(isinstance(v, str) for v in env.values())  # Ray's runtime env takes strings


def test_worker_env_leaves_out_what_the_submitted_job_sets(monkeypatch):
    job = {"runtime_env": {"env_vars": {"TOKENIZERS_PARALLELISM": "true", "OTHER": "1"}}}
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps(job))
    env = runtime.worker_env()
    assert "TOKENIZERS_PARALLELISM" not in env and "OTHER" not in env
    assert set(env) == set(runtime.WORKER_ENV) - {"TOKENIZERS_PARALLELISM"}


@pytest.mark.parametrize("config", ['{"runtime_env": null}', "{}", ""])
def test_worker_env_under_a_job_without_env_vars(monkeypatch, config):
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", config)
    assert runtime.worker_env() == runtime.WORKER_ENV


def test_faults_keep_the_keys_this_job_understands(monkeypatch):
    monkeypatch.setenv("RAYSYS_FAULTS", "crash_at_step=5,,sweep_fail_trial=0,nan_at_step=9")
    assert runtime.faults_from_env(runtime.TRAIN_FAULTS) == {"crash_at_step": 5, "nan_at_step": 9}
    assert runtime.faults_from_env(("sweep_fail_trial",)) == {"sweep_fail_trial": 0}
    monkeypatch.delenv("RAYSYS_FAULTS")
    assert runtime.faults_from_env(runtime.TRAIN_FAULTS) == {}


@pytest.mark.parametrize("item", ["crash_at_step", "crash_at_step=five", "nan_at_step=-1"])
def test_a_malformed_fault_is_one_line_naming_it(monkeypatch, item):
    monkeypatch.setenv("RAYSYS_FAULTS", item)
    with pytest.raises(UserError, match=rf"^RAYSYS_FAULTS: '{item}'; use key=N"):
        runtime.faults_from_env(runtime.TRAIN_FAULTS)


def test_ray_data_is_kept_quiet():
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = ctx.print_on_execution_start = True
    runtime.quiet_ray_data()
    assert ctx.enable_progress_bars is False and ctx.print_on_execution_start is False
