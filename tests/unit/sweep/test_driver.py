"""The sweep driver's checks (`raysys.sweep.driver`): everything refused before Ray starts
or a file is written, and where a resumed sweep is found. No Ray is started: the checks
must not start one."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from raysys.config import SweepConfig, load_config
from raysys.engines import ResourceBudgetError
from raysys.errors import UserError
from raysys.sweep.driver import SweepIncompleteError, _write_results, check_sweep, locate_sweep
from tests.fixtures import REPO

TINY = REPO / "configs" / "sweep_tiny.yaml"


def _cfg(storage: Path, *overrides: str) -> SweepConfig:
    args = [f"run.storage_path={storage}", "ray.num_cpus=2", *overrides]
    return load_config(SweepConfig, TINY, args)


@pytest.fixture(autouse=True)
def _no_ray_started(no_ray):
    yield


def test_a_good_sweep_passes_with_its_run_id_fixed(tmp_path):
    storage = tmp_path / "runs"
    cfg, trials, callbacks = check_sweep(_cfg(storage, "run.run_id=s1"), resume=False)
    assert cfg.run.run_id == "s1" and callbacks == []
    assert len({t.trial_id for t in trials}) == len(trials) == 4  # 2 cocktails x 2 fractions
    assert storage.is_dir() and list(storage.iterdir()) == []  # proved writable, nothing left
    fresh, _, _ = check_sweep(_cfg(storage), resume=False)
    assert fresh.run.run_id  # a new UTC timestamp


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        (
            ["train.num_workers=4", "train.batch_size=32"],
            UserError,
            r"train.num_workers x train.cpus_per_worker = 4 CPUs, but this Ray has 2",
        ),
        (["generate.num_cpus=3"], ResourceBudgetError, r"generate.num_cpus=3 per engine actor"),
        (["sweep.cocktails=[nope.yaml]"], UserError, r"nope.yaml"),
        (
            ["train.checkpoint_storage=s3://KEY:SECRET@bucket/ckpt"],
            UserError,
            r"train.checkpoint_storage: credentials in the URI",
        ),
    ],
)
def test_what_could_never_run_is_refused_before_anything_is_written(
    tmp_path, overrides, error, match
):
    storage = tmp_path / "runs"
    with pytest.raises(error, match=match):
        check_sweep(_cfg(storage, *overrides), resume=False)
    assert not storage.exists()


def test_an_mlflow_server_that_does_not_answer_is_refused_before_anything_is_written(tmp_path):
    """A closed loopback port: one line naming the field and the cause, within seconds
    (MLflow's client alone would retry it for about 4 minutes)."""
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    storage = tmp_path / "runs"
    start = time.monotonic()
    with pytest.raises(UserError) as err:
        check_sweep(_cfg(storage, f"sweep.mlflow.tracking_uri=http://127.0.0.1:{port}"), False)
    assert time.monotonic() - start < 30
    msg = str(err.value)
    assert msg.startswith(
        f"sweep.mlflow.tracking_uri: no MLflow server answers at http://127.0.0.1:{port} ("
    )
    assert "Connection refused" in msg and "\n" not in msg and len(msg) < 300, msg
    assert not storage.exists()


def test_mlflow_tracking_without_the_extra_is_refused_before_anything_is_written(
    tmp_path, monkeypatch
):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` raises ImportError
    storage = tmp_path / "runs"
    with pytest.raises(UserError, match=r"sweep.mlflow.tracking_uri needs MLflow"):
        check_sweep(_cfg(storage, "sweep.mlflow.tracking_uri=http://127.0.0.1:1"), resume=False)
    assert not storage.exists()


def test_resume_needs_a_sweep_and_a_new_sweep_needs_room(tmp_path):
    storage = tmp_path / "runs"
    with pytest.raises(UserError, match=r"--resume: no sweep found under .*/runs/sweep_tiny"):
        locate_sweep(_cfg(storage), resume=True)
    (storage / "sweep_tiny" / "s1" / "tune").mkdir(parents=True)
    with pytest.raises(UserError, match=r"sweep_tiny/s1 already holds a sweep; add --resume"):
        locate_sweep(_cfg(storage, "run.run_id=s1"), resume=False)
    # a tune/ folder without Tune's experiment state is nothing to restore
    with pytest.raises(UserError, match=r"--resume: .*sweep_tiny/s1 holds no sweep to resume"):
        locate_sweep(_cfg(storage), resume=True)  # the latest run id, found by its tune/
    assert locate_sweep(_cfg(storage, "run.run_id=s2"), resume=False).run.run_id == "s2"


def test_results_are_written_as_tables_and_figures(tmp_path):
    import json

    results = pd.DataFrame({"trial_id": ["base", "t1"], "test_main": [0.2, 0.6]})
    preds = pd.DataFrame({"adapter": ["t1"], "id": ["a"], "pred": ["positive"]})
    _write_results(tmp_path, results, preds, {"trials": 1, "errored": []})
    assert pd.read_parquet(tmp_path / "results.parquet").equals(results)
    assert pd.read_csv(tmp_path / "results.csv")["test_main"].tolist() == [0.2, 0.6]
    assert pd.read_parquet(tmp_path / "test_predictions.parquet")["pred"].tolist() == ["positive"]
    assert json.loads((tmp_path / "sweep.json").read_text()) == {"trials": 1, "errored": []}


def test_an_incomplete_sweep_exits_1():
    assert SweepIncompleteError.exit_code == 1 and issubclass(SweepIncompleteError, UserError)
