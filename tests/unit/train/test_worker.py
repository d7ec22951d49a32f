"""The Ray Train worker's pure helpers (`raysys.train.worker`): logged scalars, the NaN
and hold fault drills, the cores a worker sizes its threads by. The worker loop, its
`_RayReport` callback (reports, checkpoints, the MFU summary) and `_restore` need a Ray
Train context (`ray.train.get_context()`): tests/integration/test_train.py."""

from __future__ import annotations

import os
import threading
import time

import torch

from raysys.train.worker import _cores, _hold, _poison, _scalars


def test_only_numbers_are_logged():
    logs = {"loss": 1, "learning_rate": 0.5, "epoch": 0.25, "name": "x", "grad": [1.0]}
    out = _scalars(logs)
    assert out == {"loss": 1.0, "learning_rate": 0.5, "epoch": 0.25}
    assert all(type(v) is float for v in out.values())


def test_the_nan_drill_poisons_the_first_trainable_weight_only():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 2))
    model[0].weight.requires_grad_(False)
    model[0].bias.requires_grad_(False)
    frozen = model[0].weight.clone()
    _poison(model)
    assert torch.isnan(model[1].weight).all()
    assert torch.isfinite(model[1].bias).all()
    assert torch.equal(model[0].weight, frozen)
    loss = model(torch.ones(1, 3)).sum()
    assert torch.isnan(loss)  # the real NaN loss the guard must catch


def test_the_hold_drill_waits_for_release_once(tmp_path):
    def release_soon() -> None:
        time.sleep(0.2)
        (tmp_path / "release").touch()

    threading.Thread(target=release_soon).start()
    start = time.monotonic()
    _hold(tmp_path, 3, timeout=10.0)
    assert 0.15 < time.monotonic() - start < 5.0
    assert (tmp_path / "held-at-3").exists()
    start = time.monotonic()
    (tmp_path / "release").unlink()
    _hold(tmp_path, 3, timeout=10.0)  # held before: a resumed attempt does not hold again
    assert time.monotonic() - start < 0.1


def test_the_hold_drill_gives_up_after_its_timeout(tmp_path):
    start = time.monotonic()
    _hold(tmp_path / "m", 5, timeout=0.2)
    assert 0.15 < time.monotonic() - start < 5.0 and (tmp_path / "m" / "held-at-5").exists()


def test_workers_size_threads_by_the_cores_they_may_use():
    assert _cores() == len(os.sched_getaffinity(0)) >= 1
