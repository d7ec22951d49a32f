"""jobs/: the `ray job submit` entrypoints, submitted to a real Ray head started for this
module, with the real `ray job submit` CLI and with `JobSubmissionClient`.

The head is private: every port is a free loopback port chosen here, its temp dir is a
fresh one under /tmp, and it is stopped by killing the processes that belong to it (found
by that temp dir in their command lines, plus their descendants), never with `ray stop`,
which would kill every Ray on the machine.

Authentication: Ray 2.60 turns token auth on for `ray start` whenever a token can be found
(RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token), so leaving RAY_AUTH_MODE unset
would make the test depend on the machine's state. The head runs as a cluster is meant to
run: RAY_AUTH_MODE=token with a random token of its own in RAY_AUTH_TOKEN (in the env of
`ray start`, hence of the job drivers, and of every `ray job` CLI call); the in-process
client sends it as an `Authorization: Bearer` header. A client without it is refused.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from tests.fixtures import REPO
from tests.integration.ray_head import free_block, head_processes, stop_head

VENV_BIN = Path(sys.executable).parent  # the venv's python, ray, ...
RAY = str(VENV_BIN / "ray")
TINY = "configs/sweep_tiny.yaml"


# --------------------------------------------------------------------------- a private head


@dataclass
class Head:
    address: str  # the dashboard's HTTP address, for `ray job` and JobSubmissionClient
    gcs: str  # host:port of the head's GCS, where a driver attaches (RAY_ADDRESS)
    env: dict[str, str]  # environment for `ray job` CLI calls: auth mode and token
    token: str
    temp_dir: str


@pytest.fixture(scope="module")
def head():
    temp_dir = tempfile.mkdtemp(prefix="rj", dir="/tmp")  # short: Ray's socket paths
    token = secrets.token_hex(32)
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # jobs' `python`
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": token,
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    env.pop("RAY_ADDRESS", None)
    env.pop("RAY_AUTH_TOKEN_PATH", None)
    base = free_block(110)
    names = (
        "port dashboard-port ray-client-server-port node-manager-port object-manager-port "
        "metrics-export-port dashboard-agent-listen-port dashboard-agent-grpc-port "
        "runtime-env-agent-port"
    ).split()
    ports = {name: base + i for i, name in enumerate(names)}
    cmd = [RAY, "start", "--head", "--node-ip-address=127.0.0.1", "--dashboard-host=127.0.0.1"]
    cmd += [f"--{name}={port}" for name, port in ports.items()]
    cmd += [
        f"--min-worker-port={base + 10}",
        f"--max-worker-port={base + 109}",
        "--num-cpus=2",
        f"--temp-dir={temp_dir}",
        "--include-dashboard=true",
        "--disable-usage-stats",
    ]
    try:
        started = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
        assert started.returncode == 0, started.stdout[-3000:] + started.stderr[-3000:]
        dashboard = f"http://127.0.0.1:{ports['dashboard-port']}"
        yield Head(dashboard, f"127.0.0.1:{ports['port']}", env, token, temp_dir)
    finally:
        survivors = stop_head(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not survivors, f"head processes still running: {survivors}"


def _ray_job(head: Head, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [RAY, "job", *args[:1], "--address", head.address, *args[1:]],
        env=head.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def client(head):
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(head.address, headers={"Authorization": f"Bearer {head.token}"})


def _wait(client, submission_id: str, timeout: float = 300) -> str:
    from ray.job_submission import JobStatus

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get_job_status(submission_id)
        if status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
            return status
        time.sleep(2)
    client.stop_job(submission_id)
    logs = client.get_job_logs(submission_id)[-6000:]
    pytest.fail(f"{submission_id} not done after {timeout}s; logs:\n{logs}")


def _submit(client, entrypoint: str) -> tuple[str, str]:
    """Submit with the repo as working dir; returns (final status, logs)."""
    sid = client.submit_job(entrypoint=entrypoint, runtime_env={"working_dir": str(REPO)})
    status = _wait(client, sid)
    return status, client.get_job_logs(sid)


def _refused(client, entrypoint: str) -> str:
    """Submit a job that must be refused as bad input: FAILED, driver exit code 2, no
    traceback; returns its logs."""
    from ray.job_submission import JobStatus

    sid = client.submit_job(entrypoint=entrypoint, runtime_env={"working_dir": str(REPO)})
    assert _wait(client, sid) == JobStatus.FAILED
    assert client.get_job_info(sid).driver_exit_code == 2
    logs = client.get_job_logs(sid)
    assert "Traceback" not in logs, logs
    return logs


# --------------------------------------------------------------------------- the tests


@pytest.fixture(scope="module")
def tiny_sweep(head, client, tmp_path_factory):
    """configs/sweep_tiny.yaml submitted with the real `ray job submit` CLI, as the
    README says, with the cluster runtime env (its env_vars overlap raysys's own: the
    entrypoint must merge them); `ray job status` / `ray job logs` read the outcome."""
    storage = tmp_path_factory.mktemp("jobs-storage")
    sid = f"raysys-test-{secrets.token_hex(4)}"
    sub = _ray_job(
        head,
        "submit",
        "--working-dir",
        ".",
        "--runtime-env",
        "cluster/runtime_env.yaml",
        "--submission-id",
        sid,
        "--metadata-json",  # as README "Run on a cluster" says: the job list names the run
        json.dumps({"raysys_run": "sweep_tiny/j1", "raysys_run_dir": str(storage)}),
        "--no-wait",
        "--",
        "env",
        "RAYSYS_FAULTS=sweep_fail_trial=1",  # one trial raises once: Tune starts it again
        "python",
        "jobs/sweep.py",
        "--config",
        TINY,
        f"run.storage_path={storage}",
        "run.run_id=j1",
    )
    assert sub.returncode == 0, sub.stdout + sub.stderr
    _wait(client, sid, timeout=600)  # the client polls cheaply; the CLI reports the end
    status = _ray_job(head, "status", sid).stdout
    logs = _ray_job(head, "logs", sid).stdout
    if f"Job '{sid}' succeeded" not in status:
        # Tune's per-trial error files hold the whole remote traceback
        errors = "".join(
            f"\n{p}:\n{p.read_text()[-4000:]}"
            for p in Path(head.temp_dir).glob("session_*/artifacts/*/tune/**/error.txt")
        )
        pytest.fail(f"{status[-3000:]}\nlogs:\n{logs[-6000:]}\ntrial errors:{errors}")
    return storage / "sweep_tiny" / "j1", logs, sid


def test_cli_submitted_sweep_writes_results_and_report(tiny_sweep, client):
    sweep_dir, logs, sid = tiny_sweep
    res = pd.read_parquet(sweep_dir / "results.parquet")
    assert len(res) == (4 + 1) * 2  # 4 trials + the base model, x 2 tasks
    assert (sweep_dir / "report.html").is_file()
    assert f"Report: {sweep_dir / 'report.html'}" in logs
    # the job list shows the submission's metadata (the driver's own merges under it)
    assert client.get_job_info(sid).metadata["raysys_run"] == "sweep_tiny/j1"


def test_a_raysys_driver_attached_to_the_cluster_names_its_run_in_the_job_list(
    head, client, tmp_path
):
    """A raysys command that attaches to the cluster itself (RAY_ADDRESS, no `ray job
    submit`) is a driver job; its job config carries the run's name and directory, which
    the dashboard's job list (and `ray list jobs --detail`) shows."""
    from ray.job_submission import JobType

    driver = (
        "import ray\n"
        "from raysys.runs import RunDir\n"
        "from raysys.runtime import init_ray\n"
        f"run = RunDir.of({str(tmp_path)!r}, 'study', 'r1')\n"
        "init_ray(metadata=run.job_metadata('sweep'))\n"
        "print(ray.get_runtime_context().get_job_id())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", driver],
        env={**head.env, "RAY_ADDRESS": head.gcs},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    job_id = out.stdout.split()[-1]
    jobs = {j.job_id: j for j in client.list_jobs() if j.type == JobType.DRIVER}
    assert jobs[job_id].metadata == {
        "raysys_command": "sweep",
        "raysys_run": "study/r1",
        "raysys_run_dir": str(tmp_path / "study" / "r1"),
    }


def test_the_job_log_shows_raysys_lines_without_terminal_codes(tiny_sweep, client):
    """The quiet console under `ray job submit`: raysys's own lines, the trial bar as
    plain lines, no Tune table, no Train dicts, no control codes (the job's own log, not
    `ray job logs`, whose header Ray's CLI colours)."""
    sweep_dir, _, sid = tiny_sweep
    logs = client.get_job_logs(sid)
    for noise in ("Trial status", "╭", "{'loss'", "RayTrainWorker", "TrainActor", "\r", "\x1b["):
        assert noise not in logs, noise
    assert "[raysys " in logs and (sweep_dir / "logs" / "driver.log").is_file()


def test_a_trial_that_fails_once_is_retried_by_tune_and_recorded(tiny_sweep):
    sweep_dir, logs, _ = tiny_sweep
    meta = json.loads((sweep_dir / "sweep.json").read_text())
    assert meta["finished"] == 4 and meta["errored"] == []
    failed = json.loads((sweep_dir / "grid.json").read_text())[1]["trial_id"]
    assert len(meta["failures"].get(failed, [])) == 1, meta["failures"]
    assert "fault injection" in meta["failures"][failed][0]
    assert "finished after a retry" in logs
    attempts = (sweep_dir / "trials" / failed / "train_attempts.jsonl").read_text()
    assert len(attempts.splitlines()) == 1  # it failed before training: trained once
    injected = meta["failures"][failed][0]
    for tid, causes in meta["failures"].items():  # any other retried failure: say so
        for cause in causes:
            if cause != injected:
                warnings.warn(f"sweep trial {tid} failed and was retried: {cause}", stacklevel=1)


def test_uploaded_working_dir_is_small_and_holds_no_venv(head, tiny_sweep):
    unpacked = Path(head.temp_dir).glob("session_*/runtime_resources/working_dir_files/*")
    pkgs = [p for p in unpacked if p.is_dir()]  # next to them: the zips' .lock files
    assert pkgs, "no unpacked working dir found"
    for pkg in pkgs:
        assert (pkg / "jobs" / "sweep.py").is_file()
        assert not (pkg / ".venv").exists() and not (pkg / ".git").exists()
        size = sum(f.stat().st_size for f in pkg.rglob("*") if f.is_file())
        assert size < 20 * 2**20, f"{pkg}: {size / 2**20:.1f} MiB uploaded"


def test_job_python_is_the_venv_and_imports_the_uploaded_raysys(client):
    status, logs = _submit(
        client, "python -c 'import sys, raysys; print(sys.executable); print(raysys.__file__)'"
    )
    assert status == "SUCCEEDED", logs
    exe, module = logs.strip().splitlines()[-2:]
    assert Path(exe).parent == VENV_BIN
    assert "working_dir_files" in module  # the upload shadows the installed checkout


def test_client_dry_run_prints_the_trials(client):
    status, logs = _submit(client, f"python jobs/sweep.py --config {TINY} --dry-run")
    assert status == "SUCCEEDED", logs
    assert "4 trials" in logs and "news_sentiment-g0-m0-f0p5-s0" in logs
    # the plan is the cluster's: the dry-run attached to the head (2 CPUs) and read it
    assert "cluster: 2 CPU; 2 trial(s) at a time" in logs, logs


def test_client_report_job_rewrites_the_report(client, tiny_sweep):
    sweep_dir, _, _ = tiny_sweep
    (sweep_dir / "report.html").unlink()
    status, logs = _submit(client, f"python jobs/report.py {sweep_dir}")
    assert status == "SUCCEEDED", logs
    assert f"Report: {sweep_dir / 'report.html'}" in logs
    assert (sweep_dir / "report.html").is_file()


def test_bad_config_fails_the_job_with_exit_code_2_and_one_line(client, tmp_path):
    logs = _refused(
        client, f"python jobs/sweep.py {TINY} run.storage_path={tmp_path} sweep.fractions=[0]"
    )
    errors = [line for line in logs.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and "sweep.fractions" in errors[0], logs
    assert list(tmp_path.iterdir()) == []  # bad input writes nothing


@pytest.mark.parametrize("job", ["sweep", "pipeline"])
def test_a_relative_storage_path_under_a_job_is_refused(client, job):
    """The job's working dir is a temporary copy of the upload, deleted with the job."""
    config = TINY if job == "sweep" else "configs/pipeline_tiny.yaml"
    logs = _refused(client, f"python jobs/{job}.py {config} run.storage_path=./runs")
    assert "run.storage_path: './runs' is relative" in logs


def test_a_client_without_the_token_is_refused(head):
    from ray.job_submission import JobSubmissionClient

    with pytest.raises(Exception, match="(?i)authentication|unauthorized|forbidden"):
        JobSubmissionClient(head.address, headers={"Authorization": "Bearer wrong"})


def test_cleanup_finds_every_head_process(head):
    names = {p.name() for p in head_processes(head.temp_dir)}
    assert {"gcs_server", "raylet"} <= names, names


# --------------------------------------------------------------------------- no cluster


def test_config_flag_and_positional_config_are_the_same(tmp_path):
    def dry(*args: str) -> str:
        out = subprocess.run(
            [sys.executable, "jobs/sweep.py", *args, f"run.storage_path={tmp_path}", "--dry-run"],
            cwd=REPO,
            env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    assert dry("--config", TINY) == dry(TINY) == dry(f"--config={TINY}")


def test_config_given_twice_is_a_usage_error():
    out = subprocess.run(
        [sys.executable, "jobs/train.py", "--config", TINY, TINY],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "give one" in out.stderr


def test_pipeline_job_takes_a_preset_and_refuses_an_unknown_one(tmp_path):
    def job(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "jobs/pipeline.py", *args],
            cwd=REPO,
            env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"},
            capture_output=True,
            text=True,
            timeout=120,
        )

    bad = job("--preset", "huge", f"run.storage_path={tmp_path}")
    assert bad.returncode == 2 and "unknown preset 'huge'" in bad.stderr
    # a bad override of the preset: refused with the field's name, nothing written
    wrong = job("--preset", "embedded", "pipeline.rounds=-1", f"run.storage_path={tmp_path}")
    assert wrong.returncode == 2 and "pipeline.rounds" in wrong.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("job", ["synth", "train", "eval", "sweep", "report", "pipeline"])
def test_help_works_where_raysys_is_not_installed(job):
    """`python -S` hides site-packages (and so the installed raysys): the entrypoint
    falls back to the checkout it lives in, as in a `--working-dir` upload."""
    out = subprocess.run(
        [sys.executable, "-S", str(REPO / "jobs" / f"{job}.py"), "--help"],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "ray job submit" in out.stdout and f"raysys {job}" in out.stdout
