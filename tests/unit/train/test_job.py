"""`raysys train CONFIG` (`raysys.train.job`): bad input is refused before a run directory
exists or Ray starts. A run that trains: tests/integration/test_train.py."""

from __future__ import annotations

import pandas as pd
import pytest

from raysys.config import TrainConfig, load_config
from raysys.errors import UserError
from raysys.train.guards import DataGuardError
from raysys.train.job import run_train_job
from tests.fixtures import REPO


def _cfg(storage, data, *overrides: str) -> TrainConfig:
    args = [
        f"run.storage_path={storage}",
        "run.run_id=t1",
        "model.source=tiny-random",
        "model.dtype=float32",
        "data.cocktail=null",
        f"data.path={data}",
        "train.batch_size=8",
        "ray.num_cpus=2",
        *overrides,
    ]
    return load_config(TrainConfig, REPO / "configs" / "train_sft.yaml", args)


@pytest.fixture(autouse=True)
def _no_ray(no_ray):
    yield


def _rows(tmp_path, answer: str = "Answer: positive"):
    path = tmp_path / "sft.parquet"
    msgs = [{"role": "user", "content": "Tone?"}, {"role": "assistant", "content": answer}]
    pd.DataFrame({"messages": [msgs] * 4}).to_parquet(path)
    return path


def test_missing_data_is_refused_before_anything_is_written(tmp_path, tiny_model):
    storage = tmp_path / "runs"
    with pytest.raises(UserError, match=r"data.path: .*missing.parquet not found"):
        run_train_job(_cfg(storage, tmp_path / "missing.parquet"))
    assert not storage.exists()


def test_rows_that_lose_their_eos_are_refused_before_the_run_exists(tmp_path, tiny_model):
    storage = tmp_path / "runs"
    long = _rows(tmp_path, "Answer: positive. " + "Shares rose again today. " * 30)
    with pytest.raises(DataGuardError, match=r"lose their EOS .* train.max_seq_length=32"):
        run_train_job(_cfg(storage, long, "train.max_seq_length=32"))
    assert not storage.exists()


def test_workers_this_ray_could_never_hold_are_refused(tmp_path, tiny_model):
    storage = tmp_path / "runs"
    with pytest.raises(UserError, match=r"= 4 CPUs, but this Ray has 2"):
        run_train_job(_cfg(storage, _rows(tmp_path), "train.cpus_per_worker=4"))
    assert not storage.exists()
