"""Training sections: LoRA, DPO, the trainer's settings and its data (study defaults:
SFT r=128, alpha=256, lr 5e-5, batch 64; DPO r=16, alpha=32, beta=1)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from raysys.config.sections import (
    MAX_ROWS,
    ModelSection,
    Section,
    custom_resources,
    storage_problem,
)


class LoraSection(Section):
    r: int | None = Field(
        None, ge=1, description="rank; default by train.method: sft 128, dpo 16 (the study's)"
    )
    alpha: int | None = Field(None, ge=1, description="default 2 x r (sft 256, dpo 32)")
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"

    def alpha_for(self, r: int) -> int:
        """The alpha for rank `r` that keeps this section's alpha / r (the study's 2 while
        alpha is unset), so the LoRA scale, and with it the size of an update, does not
        change with the rank. The one rule: the section's default and a sweep's
        `lora_ranks` axis both use it. Never below 1 (alpha 0 would switch LoRA off)."""
        if self.alpha is None:
            return STUDY_ALPHA_PER_RANK * r
        if self.r is None:
            raise ValueError("train.lora.alpha_for: the section's rank is not resolved yet")
        return max(1, round(r * self.alpha / self.r))


class DpoSection(Section):
    beta: float = Field(1.0, gt=0, description="the study's DPO beta")
    loss_type: Literal["sigmoid", "ipo", "hinge", "robust"] = "sigmoid"
    precompute_ref_log_probs: bool = Field(
        False, description="one reference pass up front instead of one per step"
    )


STUDY_LORA_RANK = {"sft": 128, "dpo": 16}
STUDY_ALPHA_PER_RANK = 2


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
    runner: Literal["auto", "actor", "ray_train"] = Field(
        "auto",
        description="how training runs: ray_train (a TorchTrainer worker group), actor (the "
        "same TRL trainer in one Ray actor, with the same checkpoints, reports and "
        "max_failures restarts: about 12 s less start-up per run; one worker only); auto: "
        "actor for one worker, ray_train for more",
    )
    use_gpu: bool = False
    cpus_per_worker: float = Field(1.0, gt=0)
    accelerator_type: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="GPU type each Train worker is scheduled on (Ray's accelerator_type, "
        "e.g. H100, A100); also the price key cost.prices uses for training; GPU only",
    )
    worker_resources: dict[str, float] = Field(
        default_factory=dict,
        description="custom Ray resources each Train worker also asks for, e.g. "
        "{trainer: 0.01} to keep training on nodes that advertise it",
    )
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

    @field_validator("worker_resources")
    @classmethod
    def _resources(cls, v: dict[str, float]) -> dict[str, float]:
        return custom_resources(v)

    @field_validator("checkpoint_storage")
    @classmethod
    def _storage(cls, v: str | None) -> str | None:
        if v is not None and (problem := storage_problem(v)):
            raise ValueError(problem)
        return v

    @model_validator(mode="after")
    def _accelerator(self) -> TrainSection:
        if self.accelerator_type and not self.use_gpu:
            raise ValueError(
                "train.accelerator_type names a GPU type; set train.use_gpu=true or remove it"
            )
        return self

    @model_validator(mode="after")
    def _one_actor(self) -> TrainSection:
        if self.runner == "actor" and self.num_workers > 1:
            raise ValueError(
                f"train.runner=actor trains in one process, but train.num_workers="
                f"{self.num_workers}; set train.runner=ray_train (or auto) for several workers"
            )
        return self

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
            object.__setattr__(lora, "alpha", lora.alpha_for(lora.r))
        object.__setattr__(self, "lora", lora)
        if self.packing and self.method != "sft":
            raise ValueError("train.packing applies to sft only; set train.packing=false")
        return self

    @property
    def grad_accum_steps(self) -> int:
        return self.batch_size // (self.per_device_batch_size * self.num_workers)


FLASH = ("flash_attention_2", "flash_attention_3")


def check_packing(model: ModelSection, train: TrainSection) -> None:
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
