"""Helpers shared by test files (fixtures proper live in conftest.py): the repository
root, a user's quirky labelled file, and run directories as sweeps leave them."""

from __future__ import annotations

import json
import os
import random
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
LABELS = ["positive", "negative", "neutral"]

# A line Ray forwards from its own processes to the driver's stderr — "(raylet) ...",
# "(pid=123) ...", "(TrainController pid=123) ..." — possibly in colour. A test that shares
# the session's Ray can catch one mid-command (e.g. the raylet's "disk over 95 % full"
# warning on a crowded CI disk); it is Ray's, not what the command under test printed.
_RAY_FORWARDED = re.compile(r"^(\x1b\[[0-9;]*m)*\((raylet|[^()]*pid=\d+[^()]*)\)")


def error_lines(stderr: str) -> list[str]:
    """The non-blank lines of a command's stderr, less those Ray forwarded from its
    processes (see `_RAY_FORWARDED`)."""
    return [ln for ln in stderr.splitlines() if ln.strip() and not _RAY_FORWARDED.match(ln)]


def quirky_rows(n: int = 400, seed: int = 0, start: int = 0) -> pd.DataFrame:
    """`n` distinct sentences, 60/25/15 positive/negative/neutral, SORTED by label (as
    published files often are), ids with leading zeros, labels with stray spaces and
    capitals, latin-1 characters in the text."""
    rng = random.Random(seed)
    counts = {"positive": n * 60 // 100, "negative": n * 25 // 100}
    counts["neutral"] = n - sum(counts.values())
    spelled = {
        "positive": [" Positive", "POSITIVE ", "positive"],
        "negative": ["Negative "],
        "neutral": [" neutral"],
    }
    rows, k = [], start
    for label, c in counts.items():
        for _ in range(c):
            k += 1
            word = rng.choice(["Société", "Café Corp", "Müller AG", "Crédit"])
            rows.append(
                {
                    "uid": f"{k:05d}",
                    "sentence": f"{word} report number {k} ({label} news).",
                    "tone": rng.choice(spelled[label]),
                }
            )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- run trees


def status_of(run_dir: Path) -> str:
    """What `raysys status RUN_DIR` prints (it must succeed)."""
    import contextlib
    import io

    from raysys.cli import main

    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert main(["status", str(run_dir)]) == 0
    return out.getvalue()


SWEEP_TINY = REPO / "configs" / "sweep_tiny.yaml"
PIPELINE_TINY = REPO / "configs" / "pipeline_tiny.yaml"


def sweep_tree(cfg: Any, states: list[str], now: float, trial_seconds: float = 30.0) -> Path:
    """A sweep's run directory as `raysys sweep` leaves it, mid-run or finished, by the
    writers the sweep uses: `open_run` (config.yaml), the grid's trials (grid.json),
    `runs.stage` and the trial's result.json, Tune's own trial records (experiment state)
    and failure text (error.txt). `states[i]` is what trial i of the grid did: done,
    running, errored, pending, retried (failed once, then finished) or "" (Tune has not
    heard of it: no experiment state yet when every state is ""). Tune's times are
    relative to `now`; config.yaml was written 100 s before it."""
    from raysys.io import write_json
    from raysys.runs import open_run, stage
    from raysys.sweep.grid import expand_grid

    run = open_run(cfg)
    trials = expand_grid(cfg)
    write_json(run / "grid.json", [t.params() for t in trials])  # as sweep.driver.make_grid
    records = []
    for i, (trial, state) in enumerate(zip(trials, states, strict=False)):
        tdir = run / "trials" / trial.trial_id
        if state:
            records.append(_tune_record(run.path, trial, i, state, now, trial_seconds))
        if state in ("running", "errored", "done", "retried"):
            tdir.mkdir(parents=True, exist_ok=True)  # as sweep.trial._train's attempt log
            (tdir / "train_attempts.jsonl").write_text(json.dumps({"time": now - 10}) + "\n")
        if state in ("errored", "retried"):
            _tune_failure(run.path / "tune" / trial.trial_id, trial.trial_id)
        if state in ("done", "retried"):
            stage(tdir / "train", "train", lambda d: {"train_loss": 1.0})
            result = {"trial": trial.params(), "train": {}, "trial_seconds": trial_seconds}
            write_json(tdir / "result.json", result)  # as sweep.trial.sweep_trial
    if records:
        _tune_state(run.path / "tune", records, now)
    os.utime(run / "config.yaml", (now - 100, now - 100))
    return run.path


def finish_sweep(cfg: Any, sweep_dir: Path, failures: dict[str, list[str]], when: float) -> None:
    """sweep.json (`sweep_meta`, as `sweep.driver.execute` writes it) and a report."""
    from raysys.io import write_json, write_text
    from raysys.sweep.grid import expand_grid, plan_resources
    from raysys.sweep.results import collect_trials, sweep_meta

    trials = expand_grid(cfg)
    finished, errored = collect_trials(sweep_dir, trials)
    plan = plan_resources(cfg, len(trials), {"CPU": 2.0})
    meta = sweep_meta(cfg, trials, finished, errored, plan, 60.0, False)
    write_json(sweep_dir / "sweep.json", meta | {"failures": failures})
    write_text(sweep_dir / "report.html", "<html></html>")  # written after sweep.json
    for name in ("sweep.json", "report.html"):
        os.utime(sweep_dir / name, (when, when))


_TUNE_STATUS = {
    "done": "TERMINATED",
    "retried": "TERMINATED",
    "running": "RUNNING",
    "errored": "ERROR",
    "pending": "PENDING",
}


def _tune_record(run_dir: Path, trial: Any, i: int, state: str, now: float, seconds: float) -> Any:
    """One trial as Tune's controller snapshots it (`Trial.get_json_state`)."""
    from ray.train._internal.storage import StorageContext
    from ray.tune.experiment import Trial

    from raysys.sweep.grid import TUNE_KEY

    storage = StorageContext(str(run_dir), experiment_dir_name="tune", trial_dir_name="t")
    t = Trial(
        "sweep_trial",
        config={TUNE_KEY: trial.params()},
        storage=storage,
        trial_id=f"abcde_{i:05d}",
        stub=True,  # no registered trainable needed: only its record is written
    )
    t.set_status(_TUNE_STATUS[state])
    if state != "pending":
        t.run_metadata.start_time = now - (10 if state == "running" else seconds + 20)
    if state in ("done", "retried"):
        t.run_metadata.last_result = {"trial_seconds": seconds, "done": True}
    if state in ("errored", "retried"):
        t.run_metadata.num_failures = 1
    return t.get_json_state()


def _tune_state(tune_dir: Path, records: list[Any], now: float) -> None:
    """The experiment state file as `TuneController.save_to_dir` writes it."""
    from ray.tune.utils.serialization import TuneFunctionEncoder

    state = {"trial_data": records, "runner_data": {}, "stats": {"start_time": now - 100}}
    tune_dir.mkdir(parents=True, exist_ok=True)
    (tune_dir / "experiment_state-2026-01-01_00-00-00.json").write_text(
        json.dumps(state, cls=TuneFunctionEncoder)
    )


def _tune_failure(trial_dir: Path, trial_id: str) -> None:
    """error.txt as Tune's `Trial.handle_error` appends it: a header, then the failure
    (here the traceback of the sweep's own fault drill)."""
    import traceback

    from raysys.sweep.trial import _fail_once

    try:
        _fail_once(trial_dir / "fault-marker", trial_id)
    except RuntimeError:
        text = traceback.format_exc()
    (trial_dir / "fault-marker").unlink()
    with open(trial_dir / "error.txt", "a") as f:
        f.write(f"Failure # 1 (occurred at 2026-01-01_00-00-05)\n{text}\n")


@contextmanager
def moto_s3(bucket: str) -> Iterator[str]:
    """A real S3 server (moto) on a free loopback port with `bucket` made; yields its
    `host:port` (credentials: the AWS_* variables tests/conftest.py sets; moto takes any)."""
    import logging

    from moto.server import ThreadedMotoServer
    from pyarrow import fs

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        where = f"127.0.0.1:{port}"
        s3 = fs.S3FileSystem(endpoint_override=where, scheme="http", allow_bucket_creation=True)
        s3.create_dir(bucket)
        yield where
    finally:
        server.stop()


def fake_multinode() -> Any:
    """cluster/fake_multinode.py (a script, not a package module) as a module."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(
        "fake_multinode", REPO / "cluster" / "fake_multinode.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (its dataclass looks itself up there)
    spec.loader.exec_module(module)
    return module
