"""What an operator watches a sweep with, read back with the tools' own readers: a real
MLflow tracking server (`mlflow server`, sqlite, served artifacts) that a tiny sweep logs
to, and the TensorBoard event files Ray Tune wrote.

One sweep serves every test here: the tiny sweep at one fraction (2 trials), whose driver
dies (like a SIGKILL) once a trial has finished and is then resumed, so the MLflow runs
must survive a restart without doubling (runs, steps, artifacts)."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from tests.fixtures import REPO

TINY = REPO / "configs" / "sweep_tiny.yaml"
EXPERIMENT = "raysys-tracking-test"
TASKS = ("news_sentiment", "price_direction")


# --------------------------------------------------------------------------- a real server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the server's own process group (its uvicorn workers with it), SIGKILL
    after 10 s; the group is the one `start_new_session` made for this PID."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        try:  # the leader is gone; its workers may outlive it by a moment
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                os.killpg(proc.pid, 0)
                time.sleep(0.2)
        except ProcessLookupError:
            return


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """`mlflow server` on a free loopback port: runs and params in a sqlite file,
    artifacts uploaded through the server into a folder, both in a fresh temp dir."""
    root = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--serve-artifacts",
        "--artifacts-destination",
        str(root / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    # the server's job runner (GenAI jobs) needs huey, which the client-only install lacks
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=root
    )
    try:
        deadline = time.monotonic() + 120
        while not _healthy(url):
            assert proc.poll() is None, (root / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, (root / "server.log").read_text()[-3000:]
            time.sleep(0.5)
        yield url, root
    finally:
        _stop_group(proc)
        log.close()


# --------------------------------------------------------------------------- one sweep


def _sweep_cli(storage: Path, url: str, *extra: str, faults: str = "") -> None:
    args = [
        str(TINY),
        f"run.storage_path={storage}",
        "run.run_id=m1",
        "sweep.fractions=[1.0]",  # 2 trials: one per task
        # validation rides along in the one test pass (no engine per trial): cheaper, and
        # its scores reach the trial runs from the driver, not from Tune's last report
        "sweep.validate_in=final",
        f"sweep.mlflow.tracking_uri={url}",
        f"sweep.mlflow.experiment={EXPERIMENT}",
        *extra,
    ]
    env = {**os.environ, "RAYSYS_FAULTS": faults}
    out = subprocess.run(
        [sys.executable, "-m", "raysys.cli", "sweep", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    want = 137 if faults else 0
    assert out.returncode == want, out.stdout[-3000:] + out.stderr[-3000:]


@dataclass
class Tracked:
    sweep_dir: Path
    client: object  # mlflow.MlflowClient
    experiment_id: str
    trials: list[str]
    results: pd.DataFrame


@pytest.fixture(scope="module")
def tracked(mlflow_server, tiny_model, tmp_path_factory):
    from mlflow import MlflowClient

    url, _ = mlflow_server
    storage = tmp_path_factory.mktemp("tracked")
    _sweep_cli(storage, url, faults="sweep_exit_after_trials=1")  # dies after one trial
    _sweep_cli(storage, url, "--resume")
    sweep_dir = storage / "sweep_tiny" / "m1"
    client = MlflowClient(tracking_uri=url)
    exp = client.get_experiment_by_name(EXPERIMENT)
    trials = [t["trial_id"] for t in json.loads((sweep_dir / "grid.json").read_text())]
    results = pd.read_csv(sweep_dir / "results.csv")
    return Tracked(sweep_dir, client, exp.experiment_id, trials, results)


def _runs(t: Tracked) -> list:
    return t.client.search_runs([t.experiment_id], max_results=100)


def _parent(t: Tracked):
    parents = [r for r in _runs(t) if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1, [r.info.run_name for r in parents]
    return parents[0]


def _trial_runs(t: Tracked) -> dict:
    children = [r for r in _runs(t) if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == len(t.trials), [r.info.run_name for r in children]
    return {r.info.run_name: r for r in children}


# --------------------------------------------------------------------------- MLflow


def test_one_parent_run_per_sweep_and_one_nested_run_per_trial_after_a_resume(tracked):
    parent = _parent(tracked)
    assert parent.info.run_name == "sweep_tiny/m1" and parent.info.status == "FINISHED"
    runs = _trial_runs(tracked)
    assert sorted(runs) == sorted(tracked.trials)
    for tid, run in runs.items():
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["raysys.trial_id"] == tid and run.info.status == "FINISHED"
    record = json.loads((tracked.sweep_dir / "mlflow.json").read_text())
    assert record["parent_run_id"] == parent.info.run_id
    assert record["trials"] == {tid: r.info.run_id for tid, r in runs.items()}


def test_trial_params_are_flat_and_readable(tracked):
    grid = {t["trial_id"]: t for t in json.loads((tracked.sweep_dir / "grid.json").read_text())}
    for tid, run in _trial_runs(tracked).items():
        task = grid[tid]["components"][0][0]
        assert run.data.params == {
            "trial_id": tid,
            "cocktail": task,
            "cocktail_kind": "singleton",
            "tasks": task,
            f"share/{task}": "1.0",
            "general": "0.0",
            "math": "0.0",
            "fraction": "1.0",
            "seed": "0",
            "learning_rate": "0.001",
            "lora_r": "8",
        }


def test_training_loss_is_a_curve_over_training_steps_each_logged_once(tracked):
    for tid, run in _trial_runs(tracked).items():
        history = tracked.client.get_metric_history(run.info.run_id, "loss")
        # by step, as MLflow draws it: steps backfilled after a resume come later in time
        steps = sorted(m.step for m in history)
        assert len(steps) >= 2 and steps == sorted(set(steps)), (tid, steps)
        assert steps[-1] == 4  # 32 rows, batch 8, one epoch
        assert all(math.isfinite(m.value) for m in history)
        for key in ("grad_norm", "learning_rate", "train_loss", "trial_seconds"):
            assert key in run.data.metrics, (tid, key, sorted(run.data.metrics))
        assert not {"time_this_iter_s", "training_iteration", "pid"} & set(run.data.metrics)


def test_validation_and_test_scores_are_the_results_tables(tracked):
    res = tracked.results
    for tid, run in _trial_runs(tracked).items():
        for task in TASKS:
            row = res[(res.trial_id == tid) & (res.task == task)].iloc[0]
            for col in ("val_main", "test_main"):
                assert run.data.metrics[f"{col}/{task}"] == pytest.approx(row[col]), (tid, col)
        assert "test_main_mean" in run.data.metrics
    parent = _parent(tracked)
    base = res[res.trial_id == "base"].set_index("task")["test_main"]
    for task in TASKS:
        assert parent.data.metrics[f"base/test_main/{task}"] == pytest.approx(base[task])


def test_each_trial_run_holds_its_adapter_folder_and_nothing_else(tracked, tmp_path):
    import mlflow.artifacts

    for tid, run in _trial_runs(tracked).items():
        rid = run.info.run_id
        assert [a.path for a in tracked.client.list_artifacts(rid)] == ["adapter"]
        names = {Path(a.path).name for a in tracked.client.list_artifacts(rid, "adapter")}
        assert {"adapter_config.json", "adapter_model.safetensors"} <= names, names
        assert not [n for n in names if "checkpoint" in n]
        got = mlflow.artifacts.download_artifacts(
            run_id=rid,
            artifact_path="adapter",
            dst_path=str(tmp_path / tid),
            tracking_uri=tracked.client.tracking_uri,
        )
        local = tracked.sweep_dir / "trials" / tid / "train" / "adapter"
        for name in ("adapter_config.json", "adapter_model.safetensors"):
            assert (Path(got) / name).read_bytes() == (local / name).read_bytes(), name


def test_the_sweep_run_holds_the_report_and_the_results(tracked, tmp_path):
    import mlflow.artifacts

    parent = _parent(tracked)
    names = {a.path for a in tracked.client.list_artifacts(parent.info.run_id)}
    assert {"report.html", "results.csv", "config.yaml"} <= names, names
    got = mlflow.artifacts.download_artifacts(
        run_id=parent.info.run_id,
        artifact_path="results.csv",
        dst_path=str(tmp_path),
        tracking_uri=tracked.client.tracking_uri,
    )
    assert Path(got).read_bytes() == (tracked.sweep_dir / "results.csv").read_bytes()
    assert parent.data.params["fractions"] == "1.0"
    assert parent.data.params["tasks"] == ",".join(TASKS)
    assert parent.data.tags["raysys.run_dir"] == str(tracked.sweep_dir)


# --------------------------------------------------------------------------- TensorBoard


def test_tensorboard_event_files_hold_the_training_loss_per_trial(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for tid in tracked.trials:
        trial_dir = tracked.sweep_dir / "tune" / tid
        assert list(trial_dir.glob("events.out.tfevents.*")), tid
        acc = EventAccumulator(str(trial_dir))
        acc.Reload()
        scalars = acc.Tags()["scalars"]
        assert "ray/tune/loss" in scalars, scalars
        loss = acc.Scalars("ray/tune/loss")
        assert loss and all(math.isfinite(e.value) for e in loss), (tid, loss)
        # a trial the resumed driver trained has its step reports and its final result; one
        # that finished before the first driver died (killed like SIGKILL: its event buffer
        # is lost) reports its stored result only (test_sweep checks the steps reach Tune)
        rows = (trial_dir / "result.json").read_text().splitlines()
        assert len(loss) >= min(len(rows), 2), (tid, loss, len(rows))
        train_steps = [e.value for e in acc.Scalars("ray/tune/step")]
        assert max(train_steps) == 4, train_steps
