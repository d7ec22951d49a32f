"""Autoscaling for real: the tiny sweep, run as a user runs it (`raysys sweep` with
RAY_ADDRESS), on Ray's fake multi-node autoscaler with the cluster config derived from
cluster/aws.yaml (cluster/fake_multinode.py: same node types, labels, priorities and the
head's `raysys_driver`; CPU-only, 1 CPU and at most 2 nodes per worker type, from 0, idle
timeout 15 s; the head has no CPU, so every training worker and engine actor needs a worker
node). The autoscaler (v2, as `ray up` runs it) launches worker nodes for the pending trials
and removes them once idle; everything is stopped by its own PIDs (never `ray stop`)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.fixtures import REPO, fake_multinode

TINY = REPO / "configs" / "sweep_tiny.yaml"
IDLE_MINUTES = 0.25
WORKER_TYPES = {"gpu_spot", "gpu_ondemand"}


fm = fake_multinode()

# The cluster's own view, once a second, from a driver of its own (this process may hold
# the session's local Ray): the alive nodes with their resources and labels.
WATCH = r"""
import json, sys, time, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
with open(sys.argv[2], "a") as out:
    while True:
        alive = [
            {"id": n["NodeID"], "resources": n["Resources"], "labels": n.get("Labels", {})}
            for n in ray.nodes() if n["Alive"]
        ]
        out.write(json.dumps({"t": time.time(), "nodes": alive}) + "\n")
        out.flush()
        time.sleep(1.0)
"""


def _workers(sample: dict) -> list[dict]:
    return [n for n in sample["nodes"] if not n["id"].endswith(fm.FAKE_HEAD_NODE_ID[-5:])]


def _samples(path: Path) -> list[dict]:
    lines = path.read_text().splitlines() if path.is_file() else []
    return [json.loads(ln) for ln in lines if ln.endswith("}")]


def _events(monitor_log: Path) -> list[tuple[float, str, int, str]]:
    """(time, what, count, node type) from the autoscaler's log, `what` one of launching,
    launched, removing (idle) or removing (<other reason>)."""
    pattern = re.compile(
        r"^(\S+ \S+),\d+\s+INFO .* -- (Launching|Launched|Removing) (\d+) nodes? of type "
        r"(\w+)(?: \((\w+)\))?\.$"
    )
    out = []
    for line in monitor_log.read_text().splitlines():
        if m := pattern.match(line):
            t = datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S").timestamp()
            what = m[2].lower() + (f" ({m[5]})" if m[5] else "")
            out.append((t, what, int(m[3]), m[4]))
    return out


def _raylets(temp_dir: str) -> int:
    """Raylet processes of the cluster: one per node the fake provider runs."""
    import psutil

    n = 0
    for p in fm.cluster_processes(temp_dir):
        try:
            n += p.name() == "raylet"
        except psutil.NoSuchProcess:
            pass
    return n


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = fm.start(cpus=1, max_workers=2, idle_timeout_minutes=IDLE_MINUTES)
    try:
        yield c
    finally:
        survivors = c.stop()  # (alive ones: a killed process may linger as a zombie)
        _keep_logs(c.temp_dir, tmp_path_factory.mktemp("fake-cluster-logs"))
        shutil.rmtree(c.temp_dir, ignore_errors=True)
        assert not survivors, f"cluster processes still running: {survivors}"


def _keep_logs(temp_dir: str, to: Path) -> None:
    """The autoscaler's, the GCS's and the raylets' logs, kept with the test's files (the
    workers' logs are left out: they are most of the volume)."""
    for logs in Path(temp_dir).glob("session_2*/logs"):
        for pattern in ("monitor.*", "gcs_server.*", "raylet*", "events/*AUTOSCALER*"):
            for f in logs.glob(pattern):
                shutil.copy2(f, to / f.name)


@pytest.mark.slow  # ≈2-3 min on 2 shared cores: cluster start, the sweep, the idle timeout
def test_the_tiny_sweep_scales_workers_up_for_its_trials_and_down_once_idle(
    cluster, tiny_model, tmp_path
):
    began = time.monotonic()
    watch_out = tmp_path / "nodes.jsonl"
    watcher = subprocess.Popen(
        [sys.executable, "-c", WATCH, cluster.address, str(watch_out)],
        env=cluster.client_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while not _samples(watch_out):
            assert watcher.poll() is None, "the watcher could not attach"
            time.sleep(0.5)
        (first,) = _samples(watch_out)[:1]
        assert _workers(first) == [], first  # min_workers 0: the head alone
        (head,) = first["nodes"]
        assert head["resources"].get("CPU", 0) == 0 and head["resources"]["raysys_driver"] == 100

        # ---- the sweep, as a user runs it against the cluster
        args = [TINY, f"run.storage_path={tmp_path / 'runs'}", "run.run_id=a1"]
        args += ["sweep.fractions=[1.0]", "sweep.driver_resource=raysys_driver"]
        args += ["sweep.max_concurrent_trials=2"]  # as configs/sweep.yaml sets it (see below)
        t_start = time.time()
        sweep = subprocess.run(
            [sys.executable, "-m", "raysys.cli", "sweep", *map(str, args)],
            env=cluster.client_env(),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=900,
        )
        t_end = time.time()
        assert sweep.returncode == 0, sweep.stdout[-3000:] + sweep.stderr[-3000:]
        assert "sweep: 2 trials, 2 at a time (sweep.max_concurrent_trials)" in sweep.stdout
        # the autoscaler's messages to drivers go to the run's log, not the console
        assert "(autoscaler" not in sweep.stdout + sweep.stderr, sweep.stdout[-3000:]
        sweep_dir = tmp_path / "runs" / "sweep_tiny" / "a1"
        meta = json.loads((sweep_dir / "sweep.json").read_text())
        assert meta["finished"] == 2 and meta["errored"] == [], meta
        results = sorted(sweep_dir.glob("trials/*/result.json"))
        assert len(results) == 2
        t_first_done = min(p.stat().st_mtime for p in results)

        # ---- scale down: every worker node goes once idle
        deadline = time.monotonic() + IDLE_MINUTES * 60 + 120
        while _workers(_samples(watch_out)[-1]) and time.monotonic() < deadline:
            assert watcher.poll() is None, "the watcher died"
            time.sleep(2)
        t_gone = time.time()
        samples = _samples(watch_out)
        assert _workers(samples[-1]) == [], samples[-1]
        while _raylets(cluster.temp_dir) > 1 and time.monotonic() < deadline + 30:
            time.sleep(1)  # (a removed node's raylet exits a moment after the GCS drops it)
        assert _raylets(cluster.temp_dir) == 1  # the head's: the fake nodes' processes are gone
    finally:
        watcher.kill()
        watcher.wait(timeout=30)

    # ---- scale up: nodes of the aws.yaml worker types, started for the pending trials
    events = _events(cluster.monitor_log())
    launching = [(t, n, kind) for t, what, n, kind in events if what == "launching"]
    launched = [(t, n, kind) for t, what, n, kind in events if what == "launched"]
    removed = [(what, n, kind) for t, what, n, kind in events if what.startswith("removing")]
    assert launching, cluster.monitor_log().read_text()[-3000:]
    assert {kind for _, _, kind in launching} <= WORKER_TYPES
    assert t_start - 1 <= launching[0][0] <= t_first_done  # (log times are whole seconds)
    peak = max(len(_workers(s)) for s in samples if t_start <= s["t"] <= t_end)
    assert peak == 2, [len(_workers(s)) for s in samples]  # one node per concurrent trial
    seen = {n["id"] for s in samples for n in _workers(s)}
    assert len(seen) == sum(n for _, n, _ in launching) == sum(n for _, n, _ in launched)
    assert {what for what, _, _ in removed} == {"removing (idle)"}, removed
    assert sum(n for _, n, _ in removed) == len(seen)  # each removed once idle
    # the spot type first, as in aws.yaml (priority 10 over gpu_ondemand's 0)
    assert {n["labels"].get("raysys/market") for s in samples for n in _workers(s)} == {"spot"}

    first_up = min(s["t"] for s in samples if _workers(s))
    print(
        f"\nautoscaling: {len(seen)} worker node(s) launched {launching}, started "
        f"{launched[-1][0] - launching[0][0]:.0f} s later; first alive "
        f"{first_up - t_start:.0f} s after the sweep started, peak {peak}; sweep "
        f"{t_end - t_start:.0f} s (failures: {meta['failures'] or 'none'}); all gone "
        f"{t_gone - t_end:.0f} s after it ended; test {time.monotonic() - began:.0f} s"
    )


def test_with_no_worker_up_yet_the_plan_is_one_trial_at_a_time_and_names_the_knob(cluster):
    """The planner reads what the cluster has now: 0 CPUs (the head alone). Ray offers no
    ceiling to plan from instead: the autoscaler `ray start --autoscaling-config` runs (as
    under `ray up`) reports no cluster config to the GCS, so
    `ray._private.state.state.get_max_resources_from_cluster_config()` is None (seen here
    on 2026-12-06). The plan is 1 trial at a time and names the knob; configs/sweep.yaml
    sets sweep.max_concurrent_trials for its cluster."""
    dry = subprocess.run(
        [sys.executable, "-m", "raysys.cli", "sweep", str(TINY), "sweep.fractions=[1.0]"]
        + ["sweep.driver_resource=raysys_driver", "--dry-run"],
        env=cluster.client_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-3000:]
    assert "2 trials\neach trial trains on 1 CPU; cluster: ; 1 trial(s) at a time" in dry.stdout
    assert "an autoscaler may add more" in dry.stdout
    assert "set sweep.max_concurrent_trials to run more" in dry.stdout
