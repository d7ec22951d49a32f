"""The vllm engine's configuration (`raysys.engines.vllm_config`), with no vLLM engine and
no Ray running: the resource plan against a cluster's resources, the LoRA rank vLLM must
allow, models vLLM-CPU cannot run, the zero LoRA for base rows, and the processor config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from raysys.config.sections import GenerateSection
from raysys.engines.base import ResourceBudgetError
from raysys.engines.vllm_config import (
    AUX_CPUS,
    ResourcePlan,
    check_model,
    lora_rank,
    null_adapter,
    plan_engines,
    processor_config,
)
from raysys.errors import UserError


def _gen(**kw) -> GenerateSection:
    return GenerateSection(engine="vllm", **kw)


def _adapter(folder: Path, r: int, **cfg) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text(json.dumps({"r": r, "peft_type": "LORA", **cfg}))
    weights = {
        "base_model.model.layers.0.q_proj.lora_A.weight": torch.randn(r, 8),
        "base_model.model.layers.0.q_proj.lora_B.weight": torch.randn(8, r),
    }
    save_file(weights, str(folder / "adapter_model.safetensors"))
    return str(folder)


# --------------------------------------------------------------------------- resources


def test_cpu_replicas_fit_beside_their_helpers():
    plan = plan_engines(_gen(concurrency=3, num_cpus=1.0), {"CPU": 2.0})
    assert plan == ResourcePlan("cpu", 1.0, 0, 1, AUX_CPUS)  # 2 - 0.5 helpers fits one
    plan = plan_engines(_gen(concurrency=3, num_cpus=1.0), {"CPU": 8.0})
    assert plan.replicas == 3 and plan.device == "cpu"


def test_an_engine_that_cannot_fit_is_refused_by_field():
    with pytest.raises(ResourceBudgetError, match=r"generate.num_cpus=2 x tensor_parallel_size=1"):
        plan_engines(_gen(num_cpus=2.0), {"CPU": 2.0})  # 2 + 0.5 helpers > 2


def test_gpus_decide_on_a_gpu_cluster():
    plan = plan_engines(_gen(concurrency=4), {"CPU": 16.0, "GPU": 2.0})
    assert (plan.device, plan.engine_cpus, plan.engine_gpus, plan.replicas) == ("gpu", 1.0, 1, 2)
    tp2 = plan_engines(_gen(concurrency=4, tensor_parallel_size=2), {"CPU": 16.0, "GPU": 4.0})
    assert (tp2.engine_gpus, tp2.replicas) == (2, 2)
    with pytest.raises(ResourceBudgetError, match=r"tensor_parallel_size=4 needs 4 GPU\(s\)"):
        plan_engines(_gen(tensor_parallel_size=4), {"CPU": 16.0, "GPU": 2.0})
    cpu = plan_engines(_gen(device="cpu"), {"CPU": 4.0, "GPU": 2.0})
    assert cpu.device == "cpu" and cpu.engine_gpus == 0


# --------------------------------------------------------------------------- adapters and models


def test_the_lora_rank_is_the_smallest_vllm_allows_above_every_adapter(tmp_path):
    assert lora_rank({}) == 1
    a = _adapter(tmp_path / "a", 4)
    b = _adapter(tmp_path / "b", 16, rank_pattern={"q_proj": 40})
    assert lora_rank({"a": a}) == 8
    assert lora_rank({"a": a, "b": b}) == 64  # the rank pattern counts
    with pytest.raises(UserError, match=r"adapter rank 600 is above vLLM's largest"):
        lora_rank({"huge": _adapter(tmp_path / "h", 600)})
    with pytest.raises(UserError, match=r"adapter 'x': .*adapter_config.json not found"):
        lora_rank({"x": str(tmp_path / "nothing")})


def test_head_sizes_vllm_cpu_cannot_run_are_refused(tiny_model, tmp_path):
    with pytest.raises(UserError, match=r"head_dim=16; vLLM's CPU backend runs only"):
        check_model(tiny_model, "cpu")  # hidden 64 / 4 heads
    check_model(tiny_model, "gpu")
    (tmp_path / "config.json").write_text(
        json.dumps({"num_attention_heads": 4, "hidden_size": 64, "head_dim": 32})
    )
    check_model(str(tmp_path), "cpu")
    check_model("org/hub-model", "cpu")  # nothing local to read


def test_the_null_adapter_is_an_exact_zero_shaped_like_the_template(tmp_path, monkeypatch):
    monkeypatch.setenv("RAYSYS_CACHE", str(tmp_path / "cache"))
    template = _adapter(tmp_path / "a", 4, lora_alpha=8)
    out = Path(null_adapter(template))
    assert out.is_relative_to(tmp_path / "cache" / "null-lora")
    zero, real = (
        load_file(str(out / "adapter_model.safetensors")),
        load_file(template + "/adapter_model.safetensors"),
    )
    assert {k: v.shape for k, v in zero.items()} == {k: v.shape for k, v in real.items()}
    assert all(torch.count_nonzero(v) == 0 for v in zero.values())
    assert (out / "adapter_config.json").read_bytes() == (
        Path(template) / "adapter_config.json"
    ).read_bytes()
    assert null_adapter(template) == str(out)  # cached
    assert null_adapter(_adapter(tmp_path / "b", 8)) != str(out)  # another shape, another zero
    (tmp_path / "c").mkdir()
    with pytest.raises(UserError, match=r"no adapter_model.safetensors"):
        null_adapter(str(tmp_path / "c"))


# --------------------------------------------------------------------------- processor


def test_the_cpu_processor_config_bounds_memory_and_placement(tmp_path):
    gen = _gen(batch_size=8, kv_cache_gib=0.5, max_model_len=512)
    plan = ResourcePlan("cpu", 1.0, 0, 1, AUX_CPUS)
    cfg = processor_config("/m", [], gen, "float32", plan)
    kw = cfg.engine_kwargs
    assert kw["kv_cache_memory_bytes"] == 2**29 and kw["enforce_eager"] is True
    assert kw["max_model_len"] == 512 and "enable_lora" not in kw
    assert kw["logprobs_mode"] == "raw_logprobs"  # what `mean_logprob` is defined by
    assert [b["CPU"] for b in cfg.placement_group_config["bundles"]] == [1.0]
    assert cfg.batch_size == 8 and cfg.concurrency == 1 and cfg.model_source == "/m"


def test_the_gpu_processor_config_serves_every_adapter(tmp_path):
    loras = [_adapter(tmp_path / n, r) for n, r in (("a", 4), ("b", 16), ("c", 8))]
    gen = _gen(max_loras=2, accelerator_type="H100")
    cfg = processor_config("/m", loras, gen, "bfloat16", ResourcePlan("gpu", 1.0, 1, 2, AUX_CPUS))
    kw = cfg.engine_kwargs
    assert kw["enable_lora"] and kw["max_lora_rank"] == 16
    assert (kw["max_loras"], kw["max_cpu_loras"]) == (2, 3)
    assert kw["enforce_eager"] is False and "kv_cache_memory_bytes" not in kw
    assert cfg.accelerator_type == "H100" and cfg.concurrency == 2


def test_custom_resources_ride_on_every_bundle_of_a_replica(tmp_path):
    gen = _gen(resources={"inference": 1.0}, tensor_parallel_size=2)
    cpu = processor_config("/m", [], gen, "float32", ResourcePlan("cpu", 2.0, 0, 1, AUX_CPUS))
    gpu = processor_config("/m", [], gen, "bfloat16", ResourcePlan("gpu", 2.0, 2, 1, AUX_CPUS))

    def bundles(cfg):  # (Ray's config fills in GPU: 0)
        return [{k: v for k, v in b.items() if v} for b in cfg.placement_group_config["bundles"]]

    assert bundles(cpu) == [{"CPU": 1.0, "inference": 0.5}] * 2
    assert bundles(gpu) == [{"CPU": 1, "GPU": 1, "inference": 0.5}] * 2
