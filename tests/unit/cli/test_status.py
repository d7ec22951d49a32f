"""`raysys status RUN_DIR [--watch [SECONDS]]`: the block it prints, what it refuses with
one line and exit 2, --watch without a terminal, and a run read straight from an object
store (moto's S3 server on 127.0.0.1) with its URI shown without options or secrets."""

from __future__ import annotations

import shutil
import threading
import time

import pytest

from raysys.cli import main
from raysys.config import SweepConfig, TrainConfig, load_config
from raysys.runs import RunFiles, open_run
from raysys.storage import push
from tests.fixtures import REPO, SWEEP_TINY, finish_sweep, moto_s3, sweep_tree
from tests.unit.cli._parsers import subparser

BUCKET = "raysys-status"


@pytest.fixture(autouse=True)
def _no_ray_started(no_ray):
    yield


def _sweep(storage: str, *overrides: str) -> SweepConfig:
    args = [f"run.storage_path={storage}", "run.run_id=s1", *overrides]
    return load_config(SweepConfig, SWEEP_TINY, args)


def test_watch_takes_an_optional_period():
    p = subparser("status")
    assert p.parse_args(["runs/x/1"]).watch is None
    assert p.parse_args(["runs/x/1", "--watch"]).watch == 5.0
    assert p.parse_args(["runs/x/1", "--watch", "2.5"]).watch == 2.5


def test_a_sweep_prints_its_status_block(tmp_path, capsys):
    cfg = _sweep(str(tmp_path))
    sweep_dir = sweep_tree(cfg, ["done", "running", "errored", "pending"], time.time())
    assert main(["status", str(sweep_dir)]) == 0
    out = capsys.readouterr().out.splitlines()
    labels = [ln.split()[0] for ln in out if not ln.startswith(" ")]
    assert labels == [
        "sweep",
        "state",
        "trials",
        "elapsed",
        "remaining",
        "spent",
        "error",
        "report",
    ]
    assert out[0] == f"sweep     {sweep_dir}"


@pytest.mark.parametrize(
    "what, expected",
    [
        ("missing", "RUN_DIR: nothing at {d}/missing; give a sweep's or a pipeline's run"),
        ("parent", "RUN_DIR: {d}/parent holds runs (r1), not one run; give one of them, e.g. "),
        ("train", "RUN_DIR: {d}/train/t1 is a train run, not a sweep or a pipeline; give"),
        ("plain", "RUN_DIR: {d}/plain is not a raysys run (no config.yaml); give a sweep's"),
    ],
)
def test_what_is_no_sweep_or_pipeline_run_is_one_line_and_exit_2(tmp_path, capsys, what, expected):
    (tmp_path / "parent" / "r1").mkdir(parents=True)
    (tmp_path / "parent" / "r1" / "config.yaml").write_text("run: {}\n")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("x")
    train = REPO / "configs" / "train_sft.yaml"
    open_run(load_config(TrainConfig, train, [f"run.storage_path={tmp_path}", "run.run_id=t1"]))
    arg = {"train": "train/t1"}.get(what, what)
    assert main(["status", str(tmp_path / arg)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("raysys: error: " + expected.format(d=tmp_path))


def test_watch_needs_a_positive_period(tmp_path, capsys):
    assert main(["status", str(tmp_path), "--watch", "0"]) == 2
    assert "--watch: SECONDS must be > 0, got 0" in capsys.readouterr().err


def test_watch_without_a_terminal_prints_a_block_per_refresh_until_finished(tmp_path, capsys):
    cfg = _sweep(str(tmp_path))
    sweep_dir = sweep_tree(cfg, ["done", "done", "done", "done"], time.time())  # test pass
    finisher = threading.Timer(1.0, finish_sweep, (cfg, sweep_dir, {}, time.time() + 1))
    finisher.start()
    try:
        assert main(["status", str(sweep_dir), "--watch", "0.3"]) == 0
    finally:
        finisher.join()
    out = capsys.readouterr().out
    blocks = [b for b in out.split("--- ") if b.strip()]
    assert len(blocks) >= 2 and "\x1b" not in out  # no terminal control codes
    assert "state     running: trials ended; test pass" in blocks[0]
    assert "state     finished" in blocks[-1]
    assert all("state     finished" not in b for b in blocks[:-1])  # it stopped at once


# --------------------------------------------------------------------------- object store


@pytest.fixture(scope="module")
def endpoint():
    with moto_s3(BUCKET) as where:
        yield where


def test_a_run_in_an_object_store_is_read_there_and_shown_without_options(
    endpoint, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("RAYSYS_CACHE", str(tmp_path / "cache"))
    storage = f"s3://{BUCKET}/runs?endpoint_override={endpoint}&scheme=http&region=us-east-1"
    cfg = _sweep(storage)
    sweep_dir = sweep_tree(cfg, ["done", "errored", "done", "done"], time.time())
    finish_sweep(cfg, sweep_dir, {}, time.time())
    push(sweep_dir)  # up to the store, as the sweep sends each trial and its summary
    shutil.rmtree(tmp_path / "cache")  # another machine: no mirror, nothing fetched
    uri = storage.replace("/runs?", "/runs/sweep_tiny/s1?")
    assert main(["status", uri]) == 0
    out = capsys.readouterr().out
    shown = f"s3://{BUCKET}/runs/sweep_tiny/s1"
    assert out.startswith(f"sweep     {shown}\nstate     finished")
    assert "trials    4: 3 done, 0 running, 1 errored, 0 pending" in out
    assert "RuntimeError: fault injection" in out  # Tune's error.txt, read in the store
    assert f"report    {shown}/report.html" in out
    assert "endpoint_override" not in out and "?" not in out
    assert not (tmp_path / "cache").exists()  # read in place: no mirror made


@pytest.mark.parametrize(
    "uri",
    [
        "s3://AKIAEXAMPLE:SECRETVALUE@bucket/runs/sweep_tiny/s1",
        "s3://bucket/runs/sweep_tiny/s1?endpoint_override=h:9000&secret_key=SECRETVALUE",
    ],
)
def test_a_uri_with_credentials_is_refused_without_echoing_them(uri, capsys):
    assert main(["status", uri]) == 2
    err = capsys.readouterr().err
    assert err.startswith("raysys: error: RUN_DIR: credentials in the URI")
    assert "SECRETVALUE" not in err and "AKIAEXAMPLE" not in err


def test_a_listing_prunes_what_status_never_reads_and_reads_a_file_once(tmp_path):
    (tmp_path / "trials" / "t" / "train" / "ray_train").mkdir(parents=True)
    (tmp_path / "trials" / "t" / "train" / "ray_train" / "ckpt.bin").write_text("x")
    (tmp_path / ".probe").write_text("x")
    (tmp_path / "grid.json").write_text("[1]")
    cache: dict = {}
    run = RunFiles.listed(str(tmp_path), cache=cache)
    assert sorted(run.files) == ["grid.json", "trials/t/train/ray_train/"]  # no dotfiles
    assert run.json("grid.json") == [1]
    (tmp_path / "grid.json").unlink()
    assert run.json("grid.json") == [1]  # unchanged since the listing: not read again
    assert RunFiles.listed(str(tmp_path), cache=cache).json("grid.json") is None
    assert cache == {}  # what went is forgotten
