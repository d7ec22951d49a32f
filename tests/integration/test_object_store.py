"""Ray Train checkpoints in an S3-compatible object store: a real S3 server (moto's server
mode) on 127.0.0.1, reached through pyarrow's S3 filesystem with an endpoint override."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from raysys.cli import main
from tests.fixtures import REPO, error_lines, moto_s3

BUCKET = "raysys-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    with moto_s3(BUCKET) as where:
        yield where


def _uri(endpoint: str, path: str) -> str:
    # credentials: AWS_* in the environment (tests/conftest.py; moto takes any)
    return f"s3://{BUCKET}/{path}?endpoint_override={endpoint}&scheme=http&region=us-east-1"


def _keys(endpoint: str, prefix: str) -> list[str]:
    from pyarrow import fs

    s3 = fs.S3FileSystem(endpoint_override=endpoint, scheme="http")
    infos = s3.get_file_info(fs.FileSelector(f"{BUCKET}/{prefix}", recursive=True))
    files = [i for i in infos if i.type == fs.FileType.File]
    return sorted(i.path.split(f"{BUCKET}/{prefix}/", 1)[1] for i in files)


def _train_args(tmp_path: Path, storage: str, *extra: str) -> list[str]:
    return [
        "train",
        "configs/train_sft.yaml",
        "model.source=tiny-random",
        "model.dtype=float32",
        f"run.storage_path={tmp_path}",
        "run.run_id=s3",
        "data.train_size=16",
        "train.batch_size=8",
        "train.per_device_batch_size=8",
        "train.max_steps=5",
        "train.save_steps=2",
        "train.report_every_steps=1",
        "train.lora.r=4",
        f"train.checkpoint_storage={storage}",
        *extra,
    ]


def test_checkpoints_go_to_the_bucket_and_a_crashed_run_resumes_from_there(
    ray_local, s3_endpoint, tmp_path, capsys, monkeypatch
):
    import json

    monkeypatch.chdir(REPO)
    args = _train_args(tmp_path, _uri(s3_endpoint, "ckpt"))
    # the worker dies at step 4, before saving it: the checkpoint of step 2 is the last one
    # (dying at step 3 could beat the controller to registering step 2's report)
    monkeypatch.setenv("RAYSYS_FAULTS", "crash_at_step=4")
    assert main(args) == 1
    assert "the last good checkpoint (step 2)" in capsys.readouterr().err
    keys = _keys(s3_endpoint, "ckpt/train/s3/train")
    assert "checkpoint_000002/checkpoint/adapter_model.safetensors" in keys
    monkeypatch.delenv("RAYSYS_FAULTS")
    assert main(args) == 0  # resumes from the bucket
    metrics = json.loads((tmp_path / "train" / "s3" / "train" / "metrics.json").read_text())
    assert [e["step"] for e in metrics["history"]] == [1, 2, 3, 4, 5]
    assert metrics["final"]["steps_this_attempt"] == 3  # steps 3..5: from the step-2 checkpoint
    keys = _keys(s3_endpoint, "ckpt/train/s3/train")
    assert "checkpoint_000005/checkpoint/adapter_config.json" in keys
    assert not any(k.startswith(".raysys-probe") for k in _keys(s3_endpoint, "ckpt"))
    assert (tmp_path / "train" / "s3" / "train" / "adapter" / "adapter_config.json").is_file()


@pytest.mark.parametrize(
    "where, expect",
    [
        ("unreachable", "did not answer within|cannot write to"),
        ("no-bucket", "cannot write to s3://no-such-bucket"),
    ],
)
def test_an_unusable_object_store_is_refused_before_any_work(
    s3_endpoint, tmp_path, capsys, monkeypatch, where, expect
):
    import re

    monkeypatch.chdir(REPO)
    monkeypatch.setattr("raysys.storage.PROBE_SECONDS", 10.0)
    if where == "unreachable":
        uri = _uri(f"127.0.0.1:{_free_port()}", "ckpt")  # nothing listens there
    else:
        uri = _uri(s3_endpoint, "x").replace(f"s3://{BUCKET}/x", "s3://no-such-bucket/x")
    assert main(_train_args(tmp_path, uri)) == 2
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and err[0].startswith("raysys: error: train.checkpoint_storage: ")
    assert re.search(expect, err[0]), err[0]
    assert not list(tmp_path.iterdir())  # refused before the cocktail or a run dir


# --------------------------------------------------------------------------- run directories


def _s3(endpoint: str):
    from pyarrow import fs

    return fs.S3FileSystem(endpoint_override=endpoint, scheme="http")


def test_push_sends_new_and_changed_files_once_markers_last(s3_endpoint, tmp_path, monkeypatch):
    """The mirror's sync: only what is new or changed goes up; a stage's `stage.json`
    goes after the files it vouches for; temp files, probes and marks stay home."""
    import raysys.storage as st

    monkeypatch.setenv("RAYSYS_CACHE", str(tmp_path / "cache"))
    root = st.local_root(_uri(s3_endpoint, "push"))
    assert root.is_relative_to(tmp_path / "cache") and st.remote_of(root / "a").startswith(
        f"s3://{BUCKET}/push/a?"
    )
    stage = root / "run" / "stage1"
    (stage / "adapter").mkdir(parents=True)
    (stage / "adapter" / "weights.bin").write_bytes(b"w" * 1000)
    (stage / "stage.json").write_text("{}")
    (stage / "metrics.json").write_text("{}")
    (stage / ".metrics.json.tmp-123").write_text("half")
    uploads: list[str] = []
    real = st.filesystem

    class Recording:  # the real S3 filesystem, with its uploads recorded in order
        def __init__(self, fs):
            self.fs = fs

        def __getattr__(self, name):
            return getattr(self.fs, name)

        def open_output_stream(self, path, *a, **k):
            uploads.append(path.rsplit("/", 1)[-1])
            return self.fs.open_output_stream(path, *a, **k)

    monkeypatch.setattr(st, "filesystem", lambda uri: (Recording(real(uri)[0]), real(uri)[1]))
    assert st.push(stage) == 3
    assert uploads[-1] == "stage.json" and sorted(uploads) == [
        "metrics.json",
        "stage.json",
        "weights.bin",
    ]
    assert st.push(stage) == 0  # nothing changed: nothing sent
    (stage / "metrics.json").write_text('{"loss": 1.0}')
    assert st.push(root / "run") == 1
    assert _keys(s3_endpoint, "push/run") == [
        "stage1/adapter/weights.bin",
        "stage1/metrics.json",
        "stage1/stage.json",
    ]


def test_pull_rebuilds_a_run_on_another_machine_without_checkpoints(
    s3_endpoint, tmp_path, monkeypatch
):
    import raysys.storage as st

    uri = _uri(s3_endpoint, "pull")
    monkeypatch.setenv("RAYSYS_CACHE", str(tmp_path / "machine1"))
    run = st.local_root(uri) / "r1"
    (run / "train" / "ray_train" / "checkpoint_000002").mkdir(parents=True)
    (run / "train" / "ray_train" / "checkpoint_000002" / "opt.pt").write_bytes(b"x")
    (run / "tune").mkdir()
    (run / "tune" / "state.json").write_text("{}")
    (run / "train" / "stage.json").write_text('{"result": 1}')
    st.push(run)
    monkeypatch.setenv("RAYSYS_CACHE", str(tmp_path / "machine2"))
    other = st.local_root(uri) / "r1"
    assert other != run and not other.exists()
    assert st.pull(st.remote_of(other), other, exclude=("tune/*",)) == 1
    assert sorted(str(p.relative_to(other)) for p in other.rglob("*") if p.is_file()) == [
        "train/stage.json"
    ]
    assert st.pull(st.remote_of(other), other) == 1  # tune/ now; stage.json is current
    assert st.push(other) == 0  # what came down is not sent back up


def test_localize_fetches_once_per_version(s3_endpoint, tmp_path, monkeypatch):
    """What Ray workers on other nodes do with a mirrored path: fetch it into the node's
    cache once, and again only when the object changed."""
    import raysys.storage as st
    from raysys.errors import UserError

    monkeypatch.setenv("RAYSYS_CACHE", str(tmp_path / "cache"))
    s3 = _s3(s3_endpoint)
    with s3.open_output_stream(f"{BUCKET}/loc/adapter/adapter_config.json") as f:
        f.write(b'{"r": 4}')
    uri = _uri(s3_endpoint, "loc/adapter")
    first = st.localize(uri)
    assert Path(first, "adapter_config.json").read_text() == '{"r": 4}'
    assert st.localize(uri) == first
    with s3.open_output_stream(f"{BUCKET}/loc/adapter/adapter_config.json") as f:
        f.write(b'{"r": 16}')
    second = st.localize(uri)
    assert second != first and Path(second, "adapter_config.json").read_text() == '{"r": 16}'
    assert st.localize(str(tmp_path)) == str(tmp_path)  # local paths pass through
    with pytest.raises(UserError, match="eval.adapters.x: nothing at s3://"):
        st.localize(_uri(s3_endpoint, "loc/missing"), "eval.adapters.x")


def test_for_workers_sends_a_mirrored_input_before_handing_out_its_uri(
    s3_endpoint, tmp_path, monkeypatch
):
    """A stage that writes its training data and trains on it in the same stage (the
    pipeline's synthesis rounds): the workers get a URI that already exists."""
    import raysys.storage as st

    monkeypatch.setenv("RAYSYS_CACHE", str(tmp_path / "cache"))
    data = st.local_root(_uri(s3_endpoint, "fw")) / "run" / "sft_r1" / "train.parquet"
    data.parent.mkdir(parents=True)
    data.write_bytes(b"PAR1")
    uri = st.for_workers(data)
    assert uri == _uri(s3_endpoint, "fw/run/sft_r1/train.parquet")
    assert _keys(s3_endpoint, "fw/run") == ["sft_r1/train.parquet"]
    assert Path(st.localize(uri)).read_bytes() == b"PAR1"
    assert st.for_workers(tmp_path / "plain") == str(tmp_path / "plain")  # not mirrored


# The sync never sets a local clock against the store's: a node's clock may be far off.
YEARS = 10 * 365 * 86400


def _put(endpoint: str, key: str, data: bytes) -> None:
    """Another writer (another machine) replacing an object."""
    with _s3(endpoint).open_output_stream(f"{BUCKET}/{key}") as f:
        f.write(data)


def _get(endpoint: str, key: str) -> bytes:
    with _s3(endpoint).open_input_stream(f"{BUCKET}/{key}") as f:
        return f.read()


def test_push_goes_by_content_whatever_the_local_clock_says(s3_endpoint, tmp_path, monkeypatch):
    """A clock far behind the store's: a file changed here (same size) is older than its
    object, and goes up all the same. One far ahead: files unchanged but newer than their
    objects stay home, and so does one whose object another writer replaced since."""
    import os
    import time

    import raysys.storage as st

    monkeypatch.setenv("RAYSYS_CACHE", str(tmp_path / "cache"))
    run = st.local_root(_uri(s3_endpoint, "skew-push")) / "run"
    run.mkdir(parents=True)
    metrics, config = run / "metrics.json", run / "config.yaml"
    metrics.write_text('{"loss": 1.0}')
    config.write_text("a: 1")
    assert st.push(run) == 2
    metrics.write_text('{"loss": 2.0}')  # the same size
    os.utime(metrics, (0, 0))  # written in 1970, by this node's clock
    assert st.push(run) == 1
    assert _get(s3_endpoint, "skew-push/run/metrics.json") == b'{"loss": 2.0}'
    future = time.time() + YEARS
    for f in (metrics, config):
        os.utime(f, (future, future))  # touched in 10 years' time, contents unchanged
    assert st.push(run) == 0
    _put(s3_endpoint, "skew-push/run/config.yaml", b"a: 22")  # the other writer's is newer
    assert st.push(run) == 0
    assert _get(s3_endpoint, "skew-push/run/config.yaml") == b"a: 22"
    assert st.pull(st.remote_of(run), run) == 1 and config.read_text() == "a: 22"
    assert st.push(run) == 0


def test_pull_goes_by_store_versions_and_keeps_local_edits(s3_endpoint, tmp_path, monkeypatch):
    """Machine 2's clock is far ahead: machine 1's newer copies (same size) come down all
    the same. An edit on machine 2 not pushed yet survives a pull, even when the object
    changed too, and goes up with the next push."""
    import os
    import time

    import raysys.storage as st

    uri = _uri(s3_endpoint, "skew-pull")

    def machine(n: int) -> Path:
        monkeypatch.setenv("RAYSYS_CACHE", str(tmp_path / f"machine{n}"))
        return st.local_root(uri) / "r1"

    one = machine(1)
    one.mkdir(parents=True)
    (one / "a.json").write_text('{"v": 1}')
    (one / "b.json").write_text('{"w": 1}')
    assert st.push(one) == 2
    two = machine(2)
    assert st.pull(st.remote_of(two), two) == 2
    future = time.time() + YEARS
    for name in ("a.json", "b.json"):
        os.utime(two / name, (future, future))
    time.sleep(1.1)  # S3 tells versions of one size apart by LastModified, in whole seconds
    one = machine(1)
    (one / "a.json").write_text('{"v": 2}')
    (one / "b.json").write_text('{"w": 2}')
    assert st.push(one) == 2
    two = machine(2)
    (two / "b.json").write_text('{"w": 9}')  # edited here, not pushed yet
    assert st.pull(st.remote_of(two), two) == 1
    assert (two / "a.json").read_text() == '{"v": 2}'
    assert (two / "b.json").read_text() == '{"w": 9}'
    assert st.pull(st.remote_of(two), two) == 0
    assert st.push(two) == 1
    assert _get(s3_endpoint, "skew-pull/r1/b.json") == b'{"w": 9}'
    # a mirror without a ledger (synced before there was one): the store's copies win
    (st.local_root(uri) / st.LEDGER).unlink()
    (two / "a.json").write_text('{"v": 7}')
    assert st.pull(st.remote_of(two), two) == 2
    assert (two / "a.json").read_text() == '{"v": 2}'


def test_processes_pushing_one_mirror_at_once_keep_each_others_sync_records(
    s3_endpoint, tmp_path, monkeypatch
):
    """The driver and sweep trials push one mirror from their own processes: each saves
    what it sent into the mirror's ledger under a lock, over what the others saved."""
    import json
    import os
    import subprocess
    import sys
    import time

    import raysys.storage as st

    monkeypatch.setenv("RAYSYS_CACHE", str(tmp_path / "cache"))
    root = st.local_root(_uri(s3_endpoint, "together"))
    trials = [root / "trials" / f"t{i}" for i in range(3)]
    for t in trials:
        t.mkdir(parents=True)
        for j in range(12):
            (t / f"f{j}.json").write_text(f'{{"trial": "{t.name}", "file": {j}}}')
    go = tmp_path / "go"
    code = (
        "import pathlib, sys, time\n"
        "from raysys.storage import push\n"
        "pathlib.Path(sys.argv[3]).touch()\n"
        "while not pathlib.Path(sys.argv[1]).exists(): time.sleep(0.005)\n"
        "assert push(sys.argv[2]) == 12\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    ready = [tmp_path / f"ready{i}" for i in range(len(trials))]
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(go), str(t), str(r)], env=env)
        for t, r in zip(trials, ready, strict=True)
    ]
    try:
        deadline = time.time() + 60
        while not all(r.exists() for r in ready) and time.time() < deadline:
            time.sleep(0.01)
        go.touch()  # all three push at once
        assert [p.wait(timeout=120) for p in procs] == [0] * len(trials)
    finally:
        for p in procs:
            p.kill()
    entries = json.loads((root / st.LEDGER).read_text())["files"]
    assert sorted(entries) == sorted(
        f"trials/{t.name}/f{j}.json" for t in trials for j in range(12)
    )
    assert st.push(root) == 0  # every file known: none sent twice


@pytest.mark.parametrize(
    "uri, expect",
    [
        # pyarrow lists every bucket the credentials can read, and `report` fetched them
        ("s3://?endpoint_override={ep}&scheme=http", "without a bucket"),
        # pyarrow takes these as the access key and secret, and they went into logs
        ("s3://testing:testing@" + BUCKET + "/loot?endpoint_override={ep}&scheme=http", "creden"),
    ],
)
def test_report_refuses_a_uri_that_would_reach_too_far_or_leak(
    s3_endpoint, tmp_path, capsys, monkeypatch, uri, expect
):
    monkeypatch.setenv("RAYSYS_CACHE", str(tmp_path / "cache"))
    with _s3(s3_endpoint).open_output_stream(f"{BUCKET}/loot/results.parquet") as f:
        f.write(b"PAR1")
    assert main(["report", uri.format(ep=s3_endpoint)]) == 2
    out, err = capsys.readouterr()
    lines = error_lines(err)
    assert len(lines) == 1 and lines[0].startswith("raysys: error: ") and expect in lines[0]
    assert "testing:" not in out + err
    assert not list(tmp_path.iterdir())  # no mirror, nothing fetched


def test_no_credentials_reach_the_mirror_or_a_sync(s3_endpoint, tmp_path, monkeypatch):
    import raysys.storage as st
    from raysys.errors import UserError

    monkeypatch.setenv("RAYSYS_CACHE", str(tmp_path / "cache"))
    leaky = f"s3://testing:testing@{BUCKET}/x?endpoint_override={s3_endpoint}&scheme=http"
    for call in (st.local_root, st.localize, lambda u: st.pull(u, tmp_path / "p")):
        with pytest.raises(UserError, match="credentials in the URI"):
            call(leaky)
    assert not list(tmp_path.iterdir())
    root = st.local_root(_uri(s3_endpoint, "clean"))
    assert (root / st.MIRROR_MARK).read_text() == _uri(s3_endpoint, "clean")
    assert st.shown(root / "r") == f"s3://{BUCKET}/clean/r"


def test_train_then_eval_with_run_directories_in_the_bucket(
    ray_local, s3_endpoint, tmp_path, capsys, monkeypatch
):
    """`raysys train` and `raysys eval` with `run.storage_path=s3://...`: the adapter,
    metrics and Ray Train checkpoints land in the bucket (nothing local but the mirror),
    and eval takes the adapter by its s3:// URI."""
    monkeypatch.chdir(REPO)
    storage = _uri(s3_endpoint, "jobs")
    train = _train_args(tmp_path, "", "train.max_steps=2")
    train = [a for a in train if not a.startswith(("run.storage_path", "train.checkpoint"))]
    assert main([*train, f"run.storage_path={storage}"]) == 0
    out = capsys.readouterr().out
    assert "Adapter: s3://raysys-test/jobs/train/s3/train/adapter" in out
    keys = _keys(s3_endpoint, "jobs/train/s3")
    assert {"config.yaml", "train/stage.json", "train/metrics.json"} <= set(keys)
    assert "train/adapter/adapter_model.safetensors" in keys
    assert any(k.startswith("train/ray_train/train/checkpoint_000002/") for k in keys)
    assert not list(tmp_path.iterdir())  # the run directory is not a local folder
    adapter = _uri(s3_endpoint, "jobs/train/s3/train/adapter")
    args = [
        "eval",
        "model.source=tiny-random",
        "model.dtype=float32",
        f"run.storage_path={storage}",
        "run.run_id=s3",
        "eval.tasks=[news_sentiment]",
        "eval.size=3",
        "generate.max_new_tokens=4",
        f"eval.adapters={{a: '{adapter}'}}",
    ]
    assert main(args) == 0
    assert "Outputs: s3://raysys-test/jobs/eval/s3/eval" in capsys.readouterr().out
    keys = _keys(s3_endpoint, "jobs/eval/s3/eval")
    assert {"predictions.parquet", "results.parquet", "table.md", "stage.json"} <= set(keys)
