"""The tiny sweep on a real multi-node Ray cluster (tests/integration/cluster.py): a head
with no CPUs and two worker nodes that cannot see the driver's disk, run storage in a real
S3 server (moto) on loopback, and faults at node level.

One sweep, as a user drives it from the command line, through every fault at once:

1. `raysys sweep` attaches to the cluster (RAY_ADDRESS); trial drivers, Train workers and
   engine actors are steered onto the worker nodes by their custom resource. Every
   training run holds at step 3 (its checkpoint of step 2 is in the bucket by then).
2. With both trials held, the raylet of a worker node that runs a Train worker is killed
   by PID: the node is gone for good; Tune retries the trial(s) on the other node, which
   resume from the checkpoint in the bucket.
3. Once a trial has finished, the driver dies like a SIGKILL (fault drill).
4. `raysys sweep --resume` from another folder with an empty cache ("another machine",
   only the bucket in common) finishes the sweep; `raysys report` from a third one
   rewrites the report from the bucket alone.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from raysys.storage import join_uri
from tests.fixtures import REPO, moto_s3
from tests.integration.cluster import can_unshare, ray_cluster

pytestmark = pytest.mark.skipif(
    not can_unshare(), reason="worker nodes need a private mount namespace (root, unshare)"
)

BUCKET = "raysys-mn"
FAULTS = "*-cache/mirrors/*/sweep_tiny/*/trials/*/train/faults"  # the drills' markers
RUN = "sweeps/sweep_tiny/mn"
STEER = [  # everything that needs a CPU or drives a trial: on the worker nodes only
    "sweep.driver_resource=worker",
    "train.worker_resources={worker: 1}",
    "generate.resources={worker: 1}",
]


def _uri(endpoint: str) -> str:
    return f"s3://{BUCKET}/sweeps?endpoint_override={endpoint}&scheme=http&region=us-east-1"


def _s3(endpoint: str):
    from pyarrow import fs

    return fs.S3FileSystem(endpoint_override=endpoint, scheme="http")


def _keys(endpoint: str, prefix: str = RUN) -> list[str]:
    from pyarrow import fs

    infos = _s3(endpoint).get_file_info(fs.FileSelector(f"{BUCKET}/{prefix}", recursive=True))
    return sorted(i.path.split(f"{prefix}/", 1)[1] for i in infos if i.type == fs.FileType.File)


def _read(endpoint: str, key: str) -> bytes:
    with _s3(endpoint).open_input_stream(f"{BUCKET}/{RUN}/{key}") as f:
        return f.read()


def _cli(cluster, cache: Path, cwd: Path, *args: str, faults: str = "", **kw):
    env = cluster.driver_env(cache, RAYSYS_FAULTS=faults)
    return subprocess.Popen(
        [sys.executable, "-m", "raysys.cli", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kw,
    )


def _sweep_args(endpoint: str, *extra: str) -> list[str]:
    config = str(REPO / "configs" / "sweep_tiny.yaml")
    storage = f"run.storage_path={_uri(endpoint)}"
    return ["sweep", config, storage, "sweep.fractions=[1.0]", *STEER, *extra]


class Releaser(threading.Thread):
    """Lets every held training run go on (writes `release` next to each `held-at-N`)
    while not paused, until stopped: retried attempts on another node hold again."""

    def __init__(self, root: Path) -> None:
        super().__init__(daemon=True)
        self.root, self.stop, self.paused = root, threading.Event(), threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            if not self.paused.is_set():
                for held in self.root.glob(f"{FAULTS}/held-at-*"):
                    (held.parent / "release").touch()
            time.sleep(0.3)


def _held(root: Path) -> list[Path]:
    return sorted(root.glob(f"{FAULTS}/held-at-3"))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The cluster, its bucket and the driver's cache (hidden from the worker nodes).
    Trials hold at step 3 (the worker nodes' RAYSYS_FAULTS); a releaser lets every held
    run go on unless a test holds it back."""
    root = tmp_path_factory.mktemp("cluster")
    driver_cache = root / "driver-cache"
    driver_cache.mkdir()
    with (
        moto_s3(BUCKET) as endpoint,
        ray_cluster(
            root, hidden=[driver_cache], worker_env={"RAYSYS_FAULTS": "hold_at_step=3"}
        ) as c,
    ):
        releaser = Releaser(root)
        try:
            yield {"cluster": c, "root": root, "endpoint": endpoint, "releaser": releaser}
        finally:
            releaser.stop.set()


@pytest.fixture(scope="module")
def cluster_pipeline(cluster):
    """The tiny pipeline (every stage: eval, SFT, DPO, synthesis) driven on the cluster,
    then `--resume` from another folder with only the bucket in common."""
    c, root, endpoint = cluster["cluster"], cluster["root"], cluster["endpoint"]
    if not cluster["releaser"].is_alive():
        cluster["releaser"].start()
    args = ["pipeline", str(REPO / "configs" / "pipeline_tiny.yaml")]
    args += [f"run.storage_path={_uri(endpoint)}", "run.run_id=mn", *STEER]
    first = _cli(c, root / "driver-cache", REPO, *args)
    out = {"first": (first.wait(timeout=1200), first.stdout.read())}
    machine = root / "pipeline-machine2"
    machine.mkdir()
    again = _cli(c, machine / "cache", machine, *args, "--resume")
    out["resumed"] = (again.wait(timeout=900), again.stdout.read())
    out["keys"] = _keys(endpoint, "sweeps/pipeline_tiny/mn")
    return out


@pytest.mark.long  # ≈ 8 min on 2 cores: `make test-all`, not CI
def test_the_pipeline_ran_every_stage_on_the_cluster_into_the_bucket(cluster_pipeline):
    code, stdout = cluster_pipeline["first"]
    assert code == 0, stdout[-4000:]
    keys = cluster_pipeline["keys"]
    assert "report.html" in keys and "report.md" in keys
    # stage folders are <stage>-<config hash>; each finished stage's marker is in the bucket
    stages = {k.split("/")[0].rsplit("-", 1)[0] for k in keys if k.endswith("/stage.json")}
    # (the SFT stage is a sweep: base and SFT are scored in its own test pass)
    want = {"sft", "dpo_probe", "dpo", "eval_dpo", "synth_r1", "sft_r1", "eval_r1"}
    assert want <= stages, sorted(stages)


@pytest.mark.long  # ≈ 8 min on 2 cores: `make test-all`, not CI
def test_the_pipeline_resumed_from_another_folder_redoes_nothing(cluster_pipeline):
    code, stdout = cluster_pipeline["resumed"]
    assert code == 0, stdout[-4000:]
    assert "Report: s3://" in stdout


@pytest.fixture(scope="module")
def cluster_sweep(cluster):
    c, root, endpoint = cluster["cluster"], cluster["root"], cluster["endpoint"]
    releaser = cluster["releaser"]
    releaser.paused.set()  # both trials must hold before the node dies
    if not releaser.is_alive():
        releaser.start()
    out: dict = {"root": root, "endpoint": endpoint}
    # 1-3: the sweep; both trials hold at step 3; a node dies; then the driver
    first = _cli(
        c,
        root / "driver-cache",
        REPO,
        *_sweep_args(endpoint, "run.run_id=mn"),
        faults="sweep_exit_after_trials=1",
    )
    deadline = time.monotonic() + 600
    while len(_held(root)) < 2 and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.5)
    assert len(_held(root)) == 2, (first.poll(), first.stdout.read() if first.poll() else "")
    victim = next(n for n in c.workers if n.runs("TrainActor"))  # train.runner=auto: one actor
    out["victim"] = victim.name
    out["killed_pid"] = c.kill_raylet(victim)
    out["held_trials"] = sorted(p.parents[2].name for p in _held(root))
    releaser.paused.clear()
    first_out, _ = first.communicate(timeout=900)
    out["first"] = (first.returncode, first_out)
    out["before_resume"] = _keys(endpoint)
    out["alive_after_kill"] = c.alive_nodes()
    # 4: another machine: an empty cache, another working directory
    machine2 = root / "machine2"
    machine2.mkdir()
    resumed = _cli(c, machine2 / "cache", machine2, *_sweep_args(endpoint, "--resume"))
    out["resumed"] = (resumed.wait(timeout=900), resumed.stdout.read())
    machine3 = root / "machine3"
    machine3.mkdir()
    _s3(endpoint).delete_file(f"{BUCKET}/{RUN}/report.html")
    run_uri = join_uri(_uri(endpoint), "sweep_tiny", "mn")
    report = _cli(c, machine3 / "cache", machine3, "report", run_uri)
    out["report"] = (report.wait(timeout=300), report.stdout.read())
    out["after"] = _keys(endpoint)
    out["sweep_json"] = json.loads(_read(endpoint, "sweep.json"))
    out["attempts"] = {
        t: _read(endpoint, f"trials/{t}/train_attempts.jsonl").decode().splitlines()
        for t in ("news_sentiment-g0-m0-f1-s0", "price_direction-g0-m0-f1-s0")
    }
    out["metrics"] = {
        t: json.loads(_read(endpoint, f"trials/{t}/train/metrics.json")) for t in out["attempts"]
    }
    return out


def test_worker_nodes_never_saw_the_drivers_disk(cluster_sweep):
    root = cluster_sweep["root"]
    # what trials wrote on the worker nodes went to their own caches' mirrors...
    done = "mirrors/*/sweep_tiny/mn/trials/*/result.json"
    on_workers = {p.parent.name for p in root.glob(f"w*-cache/{done}")}
    assert on_workers == {"news_sentiment-g0-m0-f1-s0", "price_direction-g0-m0-f1-s0"}
    # ...none of it in the first driver's cache (a private empty tmpfs on the workers; the
    # driver died before gathering), and the resumed driver got all of it via the bucket
    assert not list((root / "driver-cache").glob("mirrors/*/sweep_tiny/mn/trials/*/train"))
    assert {p.parent.name for p in (root / "machine2" / "cache").glob(done)} == on_workers
    # each worker node built the tiny model into its own cache
    for node in ("w1", "w2"):
        assert list((root / f"{node}-cache" / "models").glob("tiny-random-*")), node


def test_a_killed_node_cost_a_retry_from_the_checkpoint_not_a_trial(cluster_sweep):
    assert cluster_sweep["alive_after_kill"] == 2  # head + the surviving worker
    code, stdout = cluster_sweep["first"]
    assert code == 137, stdout[-3000:]  # the driver drill: died once a trial had finished
    meta = cluster_sweep["sweep_json"]
    assert meta["finished"] == 2 and not meta["errored"], meta
    assert meta["failures"], meta  # the node's death is named, with its trial
    retried = [t for t, lines in cluster_sweep["attempts"].items() if len(lines) > 1]
    assert retried, cluster_sweep["attempts"]
    for t, lines in cluster_sweep["attempts"].items():
        final = cluster_sweep["metrics"][t]["final"]
        steps = [h["step"] for h in cluster_sweep["metrics"][t]["history"]]
        assert steps[-1] == 4, (t, steps)
        # never retrained from scratch: each retry (the node's death; the driver's, when
        # the trial was running then) replays at most the step after the last checkpoint
        # (every 2)
        assert final["replayed_steps"] <= len(lines) - 1, (t, lines, final["replayed_steps"])
        if len(lines) > 1:  # the last attempt restored a checkpoint (step 2 or 4)
            assert final["steps_this_attempt"] <= 2, (t, lines, final)


def test_a_resume_from_another_machine_finished_it_from_the_bucket(cluster_sweep):
    code, stdout = cluster_sweep["resumed"]
    assert code == 0, stdout[-4000:]
    assert f"Report: s3://{BUCKET}/{RUN}/report.html" in stdout
    assert cluster_sweep["sweep_json"]["resumed"] is True
    before = cluster_sweep["before_resume"]
    assert "tune/tuner.pkl" in before and [k for k in before if k.endswith("/result.json")]


def test_every_output_is_in_the_bucket(cluster_sweep):
    after = set(cluster_sweep["after"])
    for key in ("results.parquet", "results.csv", "test_predictions.parquet", "sweep.json"):
        assert key in after, key
    assert {"report.md", "report.html", "plots/transfer.png"} <= after
    for t in cluster_sweep["attempts"]:
        assert f"trials/{t}/result.json" in after
        assert f"trials/{t}/train/adapter/adapter_model.safetensors" in after
        # Ray Train checkpointed straight into the bucket (default: beside the adapter)
        assert any(k.startswith(f"trials/{t}/train/ray_train/train/checkpoint_") for k in after), t
        assert any(k.startswith(f"tune/{t}/events.out.tfevents") for k in after), t
    assert not [k for k in after if ".tmp-" in k or ".raysys" in k or ".write-probe" in k]
    res = pd.read_parquet(io.BytesIO(_read(cluster_sweep["endpoint"], "results.parquet")))
    assert len(res) == (2 + 1) * 2 and res["test_main"].notna().all()  # base + 2 trials
    assert set(res.trial_id) == {"base", *cluster_sweep["attempts"]}


def test_report_from_a_folder_with_only_the_bucket(cluster_sweep):
    code, stdout = cluster_sweep["report"]
    assert code == 0, stdout[-3000:]
    assert "report.html" in cluster_sweep["after"]
    assert f"Report: s3://{BUCKET}/{RUN}/report.html" in stdout
