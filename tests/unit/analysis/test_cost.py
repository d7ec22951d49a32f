"""Cost per answer (`raysys.analysis.cost`): what Ray scheduled x wall time by resource
kind, tokens, and the cost at `cost.prices`; a kind without a price makes it unknown."""

from __future__ import annotations

import math

import pytest

from raysys.analysis import cost
from raysys.config import GenerateSection, TrainSection


def test_training_holds_its_workers_cpus_or_one_typed_gpu_each():
    cpu = TrainSection(num_workers=2, cpus_per_worker=1.5, batch_size=16)
    assert cost.train_resources(cpu) == {"CPU": 3.0}
    gpu = TrainSection(num_workers=4, use_gpu=True, accelerator_type="H100", batch_size=32)
    assert cost.train_resources(gpu) == {"H100": 4.0}  # Ray Train asks 1 GPU, no CPU
    untyped = TrainSection(num_workers=1, use_gpu=True, batch_size=8)
    assert cost.train_resources(untyped) == {"GPU": 1.0}


def test_generation_holds_its_engine_actors():
    gen = GenerateSection(concurrency=3, num_cpus=0.5)
    assert cost.engine_resources(gen, on_gpu=False) == {"CPU": 1.5}
    gpu = GenerateSection(concurrency=2, tensor_parallel_size=2, accelerator_type="A100")
    assert cost.engine_resources(gpu, on_gpu=True) == {"CPU": 4.0, "A100": 4.0}
    assert not cost.engine_on_gpu(GenerateSection(engine="hf"), cluster_gpus=8)
    assert cost.engine_on_gpu(GenerateSection(engine="auto"), cluster_gpus=8)
    assert cost.engine_on_gpu(GenerateSection(device="gpu"), cluster_gpus=0)
    assert not cost.engine_on_gpu(GenerateSection(device="auto"), cluster_gpus=0)


def test_usages_add_up_and_are_priced_per_hour():
    train = cost.usage(cost.times({"H100": 2.0}, 1800), tokens_trained=1000)
    evals = cost.usage(cost.times({"CPU": 4.0}, 900), tokens_generated=250)
    both = cost.total([train, evals, None])
    assert both == {
        "resource_seconds": {"H100": 3600.0, "CPU": 3600.0},
        "tokens_trained": 1000,
        "tokens_generated": 250,
    }
    usd, missing = cost.cost(both, {"H100": 3.5, "CPU": 0.04})
    assert usd == pytest.approx(3.5 + 0.04) and missing == []
    cols = cost.columns(both, {"H100": 3.5, "CPU": 0.04})
    assert (cols["cpu_s"], cols["gpu_s"], cols["tokens_trained"]) == (3600.0, 3600.0, 1000)
    assert cols["cost_usd"] == pytest.approx(3.54)
    assert cost.per_answer(both, {"H100": 3.5, "CPU": 0.04}, 354) == pytest.approx(0.01)
    assert cost.per_answer(both, {"H100": 3.5, "CPU": 0.04}, 0) is None


def test_a_kind_without_a_price_leaves_the_cost_unknown_not_zero():
    used = cost.usage({"CPU": 3600.0, "GPU": 60.0})
    usd, missing = cost.cost(used, {"CPU": 0.04})
    assert usd is None and missing == ["GPU"]
    assert math.isnan(cost.columns(used, {"CPU": 0.04})["cost_usd"])
    assert cost.priced(used, {"CPU": 0.04})["unpriced"] == ["GPU"]
    assert "no price for GPU (add it to cost.prices)" in cost.describe(used, {"CPU": 0.04})
    assert "not priced (set cost.prices" in cost.describe(used, {})
    assert cost.cost(cost.usage(), {})[0] is None  # no prices: no cost, even for nothing
    # a kind priced but unused, or used for 0 s, needs no price
    assert cost.cost(cost.usage({"CPU": 7200.0}), {"CPU": 0.5, "H100": 3})[0] == 1.0


def test_generated_tokens_come_from_the_evaluation_records():
    records = [{"n": 16, "mean_generated_tokens": 8.0}, {"n": 8, "mean_generated_tokens": 2.5}]
    assert cost.generated_tokens([*records, {"n": 4}]) == 148
    assert cost.columns(None, {})["cost_usd"] != cost.columns(None, {})["cost_usd"]  # NaN
