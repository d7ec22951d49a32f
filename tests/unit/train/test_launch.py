"""The driver side of training (`raysys.train.launch`) without Ray Train: what preflight
refuses on the tiny model, the CPU budget of a local Ray, checkpoint storage scoping and
probing, how a failed run is explained, and how the adapter leaves a checkpoint.
`run_spec` itself trains on Ray Train: tests/integration/test_train.py."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from raysys.config import TrainConfig, load_config
from raysys.config.sections import RaySection
from raysys.errors import UserError
from raysys.train.guards import DataGuardError, TrainingDivergedError
from raysys.train.launch import (
    REPORTS,
    TrainingInterruptedError,
    _copy_adapter,
    _explain,
    _worker_spec,
    check_checkpoint_storage,
    check_context,
    check_local_budget,
    preflight,
    scoped_checkpoint_storage,
)
from raysys.train.spec import TrainSpec


def _section(*overrides: str):
    base = ["data.path=unused.parquet", "train.batch_size=8", "train.per_device_batch_size=8"]
    return load_config(TrainConfig, None, [*base, *overrides]).train


def _sft_rows(n: int = 4) -> list[dict]:
    return [
        {
            "id": f"r{i}",
            "messages": [
                {"role": "user", "content": f"Shares rose {i}%. Tone?"},
                {"role": "assistant", "content": "Answer: positive"},
            ],
        }
        for i in range(n)
    ]


@pytest.fixture(autouse=True)
def _no_ray(no_ray):
    yield


# --------------------------------------------------------------------------- budgets


def test_a_local_ray_that_could_never_hold_the_workers_is_refused():
    two = RaySection(num_cpus=2)
    check_local_budget(_section("train.num_workers=2", "train.per_device_batch_size=4"), two)
    with pytest.raises(
        UserError, match=r"= 3 CPUs, but this Ray has 2; lower train.cpus_per_worker"
    ):
        check_local_budget(_section("train.cpus_per_worker=3"), two)
    check_local_budget(_section("train.cpus_per_worker=0.5"), RaySection(num_cpus=1))


def test_attached_clusters_and_gpus_are_not_counted_here(monkeypatch):
    big = _section("train.cpus_per_worker=64")
    check_local_budget(big, RaySection(address="auto", num_cpus=1))
    check_local_budget(
        _section("train.cpus_per_worker=64", "train.use_gpu=true"), RaySection(num_cpus=1)
    )
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    check_local_budget(big, RaySection(num_cpus=1))


# --------------------------------------------------------------------------- checkpoint storage


def test_checkpoint_storage_is_scoped_per_run():
    none = _section()
    assert scoped_checkpoint_storage(none, "a", "b") is none
    s3 = _section("train.checkpoint_storage=s3://bucket/ckpt?region=us-east-1")
    scoped = scoped_checkpoint_storage(s3, "pipeline", "r1", "sft-abc")
    assert scoped.checkpoint_storage == "s3://bucket/ckpt/pipeline/r1/sft-abc?region=us-east-1"
    assert s3.checkpoint_storage == "s3://bucket/ckpt?region=us-east-1"  # a copy
    assert scoped.learning_rate == s3.learning_rate


def test_checkpoint_storage_is_probed_only_when_remote(tmp_path):
    check_checkpoint_storage(_section())
    check_checkpoint_storage(_section(f"train.checkpoint_storage={tmp_path / 'never'}"))
    assert not (tmp_path / "never").exists()


# --------------------------------------------------------------------------- preflight


def test_preflight_checks_good_rows_on_the_model_tokenizer(tmp_path, tiny_model):
    data = tmp_path / "sft.parquet"
    pd.DataFrame(_sft_rows()).to_parquet(data)
    found = preflight(str(data), tiny_model, _section("train.max_seq_length=128"))
    assert found["rows_checked"] == 4 and 10 < found["longest_tokens"] < 128


def test_preflight_refuses_missing_unreadable_and_misshapen_data(tmp_path, tiny_model):
    sec = _section()
    with pytest.raises(DataGuardError, match=r"training data not found: .*nope.parquet"):
        preflight(str(tmp_path / "nope.parquet"), tiny_model, sec)
    (tmp_path / "text.parquet").write_text("not parquet")
    with pytest.raises(
        DataGuardError, match=r"data.path: .*text.parquet is not a readable parquet"
    ):
        preflight(str(tmp_path / "text.parquet"), tiny_model, sec)
    pd.DataFrame({"prompt": ["x"]}).to_parquet(tmp_path / "dpo.parquet")
    with pytest.raises(DataGuardError, match=r"sft rows need column\(s\) messages"):
        preflight(str(tmp_path / "dpo.parquet"), tiny_model, sec)


def test_preflight_refuses_an_init_adapter_that_is_not_one(tmp_path, tiny_model):
    data = tmp_path / "sft.parquet"
    pd.DataFrame(_sft_rows()).to_parquet(data)
    (tmp_path / "empty").mkdir()
    sec = _section(f"train.init_adapter={tmp_path / 'empty'}")
    with pytest.raises(DataGuardError, match=r"train.init_adapter: .*empty is not a PEFT adapter"):
        preflight(str(data), tiny_model, sec)


def test_rows_longer_than_the_context_need_truncation(tiny_model):
    check_context(tiny_model, 5000, 512)  # truncation cuts them to 512: fine
    check_context(tiny_model, 900, 4096)  # within the 1024-token context
    with pytest.raises(DataGuardError, match=r"max_position_embeddings=1024.*<= 1024"):
        check_context(tiny_model, 2000, 4096)


# --------------------------------------------------------------------------- explaining failures


def _reports(storage: Path, name: str, steps: list[tuple[int, str | None]]) -> None:
    folder = storage / name / REPORTS
    folder.mkdir(parents=True)
    for i, (step, ckpt) in enumerate(steps):
        record = {"step": step, "history": [], "checkpoint": ckpt}
        (folder / f"{i:020d}-{step:06d}.json").write_text(json.dumps(record))


def test_a_data_error_inside_a_worker_is_the_error(tmp_path):
    from ray.train.v2.api.exceptions import WorkerGroupError

    inner = DataGuardError("3 of 8 rows have no EOS\nmore detail")
    wrapped = WorkerGroupError("worker 0 failed", {0: inner})
    out = _explain(wrapped, str(tmp_path), "train")
    assert isinstance(out, DataGuardError) and str(out) == "3 of 8 rows have no EOS"


def test_a_full_or_read_only_storage_says_so_and_names_the_last_checkpoint(tmp_path):
    import errno

    _reports(tmp_path, "train", [(2, "/ck/2"), (3, None), (4, "/ck/4"), (5, None)])
    try:
        raise RuntimeError("training failed") from OSError(errno.ENOSPC, "No space left")
    except RuntimeError as e:
        out = _explain(e, str(tmp_path), "train")
    assert isinstance(out, TrainingInterruptedError)
    assert str(out).startswith("storage not writable: [Errno 28] No space left; the last good ")
    assert f"checkpoint (step 4) is kept in {tmp_path}/train" in str(out)


def test_a_nan_loss_is_a_divergence(tmp_path):
    from ray.train.v2.api.exceptions import WorkerGroupError

    nan = FloatingPointError("Traceback...\n  raise\ntraining loss is nan at step 3; lower lr")
    out = _explain(WorkerGroupError("failed", {1: nan}), str(tmp_path), "train")
    assert isinstance(out, TrainingDivergedError)
    assert str(out) == (
        "training loss is nan at step 3; lower lr; no checkpoint was registered yet"
    )


def test_anything_else_is_an_interruption_to_resume(tmp_path):
    out = _explain(RuntimeError("the node died\ndetails"), str(tmp_path), "train")
    assert isinstance(out, TrainingInterruptedError) and out.exit_code == 1
    assert str(out).startswith("training failed (the node died); no checkpoint was registered")
    assert "same run.run_id to resume" in str(out)
    assert str(_explain(KeyError(), str(tmp_path), "t")).startswith("training failed (KeyError)")


# --------------------------------------------------------------------------- outputs


def test_only_the_adapter_and_tokenizer_leave_a_checkpoint(tmp_path):
    ckpt = tmp_path / "checkpoint"
    ckpt.mkdir()
    for name in (
        "adapter_config.json",
        "adapter_model.safetensors",
        "tokenizer.json",
        "chat_template.jinja",
        "optimizer.pt",
        "trainer_state.json",
        "rng_state.pth",
    ):
        (ckpt / name).write_text(name)
    _copy_adapter(ckpt, tmp_path / "out" / "adapter")
    assert sorted(p.name for p in (tmp_path / "out" / "adapter").iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
        "chat_template.jinja",
        "tokenizer.json",
    ]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["adapter"]  # no temp left
    (ckpt / "adapter_config.json").unlink()
    with pytest.raises(TrainingInterruptedError, match=r"holds no adapter"):
        _copy_adapter(ckpt, tmp_path / "other")


def test_workers_get_local_paths_as_they_are_and_a_fault_marker_folder(tmp_path):
    spec = TrainSpec.from_section(
        _section(), model_path="m", train_path=str(tmp_path / "d.parquet"), dtype="float32", seed=0
    )
    out = _worker_spec(spec, tmp_path / "run" / "train")
    assert out.train_path == spec.train_path and out.init_adapter is None
    assert out.faults.marker_dir == str((tmp_path / "run" / "train" / "faults").resolve())
    kept = dataclasses.replace(spec, faults=dataclasses.replace(spec.faults, marker_dir="/m"))
    assert _worker_spec(kept, tmp_path).faults.marker_dir == "/m"
    assert os.path.basename(out.train_path) == "d.parquet"


def test_startup_phases_split_the_run_and_skip_what_was_not_stamped():
    from raysys.train.launch import PHASES, startup_phases

    driver = {"entry": 0.0, "preflight_done": 1.0, "fit_start": 2.0, "fit_done": 20.0}
    worker = {
        "worker_process": 1.5,  # an idle Ray worker started before the fit: counts from it
        "worker_entry": 6.0,
        "probe_done": 6.5,
        "trainer_built": 9.0,
        "train_begin": 10.0,
        "first_step_done": 12.0,
        "last_step_done": 18.0,
    }
    phases = startup_phases(driver, worker)
    assert phases["worker_group_start"] == 0.0 and phases["worker_setup"] == 4.0
    assert phases["first_step"] == 2.0 and phases["finish"] == 2.0
    assert "write_adapter" not in phases  # no stamp: not invented
    assert list(phases) == [p[0] for p in PHASES if p[0] != "write_adapter"]
    # a resumed attempt that never reached a step: only what was stamped
    assert set(startup_phases(driver, {})) == {"preflight", "driver_setup"}
