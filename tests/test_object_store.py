"""Ray Train checkpoints in an S3-compatible object store: a real S3 server (moto's server
mode) on 127.0.0.1, reached through pyarrow's S3 filesystem with an endpoint override."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from raysys.cli import main

BUCKET = "raysys-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    from moto.server import ThreadedMotoServer
    from pyarrow import fs

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"127.0.0.1:{port}"
    s3 = fs.S3FileSystem(endpoint_override=endpoint, scheme="http", allow_bucket_creation=True)
    s3.create_dir(BUCKET)
    yield endpoint
    server.stop()


def _uri(endpoint: str, path: str) -> str:
    # credentials: AWS_* in the environment (tests/conftest.py; moto takes any)
    return f"s3://{BUCKET}/{path}?endpoint_override={endpoint}&scheme=http&region=us-east-1"


def _keys(endpoint: str, prefix: str) -> list[str]:
    from pyarrow import fs

    s3 = fs.S3FileSystem(endpoint_override=endpoint, scheme="http")
    infos = s3.get_file_info(fs.FileSelector(f"{BUCKET}/{prefix}", recursive=True))
    return sorted(i.path.split(f"{BUCKET}/{prefix}/", 1)[1] for i in infos)


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

    monkeypatch.chdir(Path(__file__).parents[1])
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

    monkeypatch.chdir(Path(__file__).parents[1])
    monkeypatch.setattr("raysys.storage.PROBE_SECONDS", 10.0)
    if where == "unreachable":
        uri = _uri(f"127.0.0.1:{_free_port()}", "ckpt")  # nothing listens there
    else:
        uri = _uri(s3_endpoint, "x").replace(f"s3://{BUCKET}/x", "s3://no-such-bucket/x")
    assert main(_train_args(tmp_path, uri)) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("raysys: error: train.checkpoint_storage: ")
    assert re.search(expect, err[0]), err[0]
    assert not list(tmp_path.iterdir())  # refused before the cocktail or a run dir
