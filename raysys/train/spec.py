"""What one training run is, validated once: `TrainSpec`.

Built on the driver from the checked `train` section (plus the model, data and seed
the run resolved) and handed to every Ray Train worker as is: a frozen dataclass, so
it pickles and nothing on the way can change it. Values derived from it live here as
properties (after litgpt's `args.py`), not recomputed where they are used; the TRL and
PEFT configs are made from it in `raysys.train.trainer`, one function each.

Standard library only: a GPU machine with torch/transformers/peft/TRL but without Ray
(or pydantic) can build and use one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from raysys.config.training import DpoSection, LoraSection, TrainSection

HF_CKPT = "checkpoint"  # the HF checkpoint folder inside each Ray Train checkpoint


@dataclass(frozen=True, kw_only=True)
class LoraSpec:
    r: int
    alpha: int
    dropout: float
    target_modules: str | tuple[str, ...]  # "all-linear" or module names

    @classmethod
    def from_section(cls, lora: LoraSection) -> LoraSpec:
        if lora.r is None or lora.alpha is None:  # TrainSection resolves both when validated
            raise ValueError("train.lora: r and alpha are resolved by TrainSection first")
        targets = lora.target_modules
        return cls(
            r=lora.r,
            alpha=lora.alpha,
            dropout=lora.dropout,
            target_modules=targets if isinstance(targets, str) else tuple(targets),
        )

    @property
    def scale(self) -> float:
        """The factor PEFT applies to the LoRA update (alpha / r)."""
        return self.alpha / self.r


@dataclass(frozen=True, kw_only=True)
class DpoSpec:
    beta: float
    loss_type: str
    precompute_ref_log_probs: bool

    @classmethod
    def from_section(cls, dpo: DpoSection) -> DpoSpec:
        return cls(
            beta=dpo.beta,
            loss_type=dpo.loss_type,
            precompute_ref_log_probs=dpo.precompute_ref_log_probs,
        )


@dataclass(frozen=True, kw_only=True)
class Faults:
    """Fault injection for tests and drills (RAYSYS_FAULTS): rank 0 crashes, poisons its
    weights with NaN, or holds at a step; `marker_dir` remembers what already happened, so
    a resumed attempt does not do it again."""

    marker_dir: str | None = None
    crash_at_step: int | None = None
    nan_at_step: int | None = None
    hold_at_step: int | None = None


@dataclass(frozen=True, kw_only=True)
class TrainSpec:
    # what to train, on what
    method: Literal["sft", "dpo"]
    model_path: str
    train_path: str
    dtype: str  # auto | float32 | bfloat16 | float16
    attn_implementation: str | None = None
    init_adapter: str | None = None  # merged into the base before training (DPO after SFT)
    seed: int
    lora: LoraSpec
    dpo: DpoSpec
    # optimisation
    learning_rate: float
    batch_size: int  # effective: per device x accumulation x workers
    per_device_batch_size: int
    epochs: float
    max_steps: int | None  # overrides epochs when set
    max_seq_length: int
    warmup_ratio: float  # of the total optimizer steps
    weight_decay: float
    lr_scheduler: str
    packing: bool
    gradient_checkpointing: bool
    # where it runs, what it reports and keeps
    num_workers: int
    use_gpu: bool
    cpus_per_worker: float
    accelerator_type: str | None  # GPU type of every worker (Ray's accelerator_type)
    worker_resources: dict[str, float]  # custom Ray resources per worker
    torch_threads: int | None  # None: the node's cores / its workers
    max_failures: int
    logging_steps: int
    report_every_steps: int
    save_steps: int
    keep_checkpoints: int
    checkpoint_storage: str | None  # None: the run's out_dir/ray_train
    faults: Faults = field(default_factory=Faults)
    runner: str = "auto"  # auto | actor | ray_train (TrainSection.runner)

    @classmethod
    def from_section(
        cls,
        train: TrainSection,
        *,
        model_path: str,
        train_path: str,
        dtype: str,
        seed: int,
        attn_implementation: str | None = None,
        faults: dict[str, int] | None = None,
    ) -> TrainSpec:
        """The spec of a validated `train` section, for one model, dataset and seed."""
        return cls(
            method=train.method,
            model_path=model_path,
            train_path=train_path,
            dtype=dtype,
            attn_implementation=attn_implementation,
            init_adapter=train.init_adapter,
            seed=seed,
            lora=LoraSpec.from_section(train.lora),
            dpo=DpoSpec.from_section(train.dpo),
            learning_rate=train.learning_rate,
            batch_size=train.batch_size,
            per_device_batch_size=train.per_device_batch_size,
            epochs=train.epochs,
            max_steps=train.max_steps,
            max_seq_length=train.max_seq_length,
            warmup_ratio=train.warmup_ratio,
            weight_decay=train.weight_decay,
            lr_scheduler=train.lr_scheduler,
            packing=train.packing,
            gradient_checkpointing=train.gradient_checkpointing,
            num_workers=train.num_workers,
            use_gpu=train.use_gpu,
            cpus_per_worker=train.cpus_per_worker,
            accelerator_type=train.accelerator_type,
            worker_resources=dict(train.worker_resources),
            torch_threads=train.torch_threads,
            max_failures=train.max_failures,
            logging_steps=train.logging_steps,
            report_every_steps=train.report_every_steps,
            save_steps=train.save_steps,
            keep_checkpoints=train.keep_checkpoints,
            checkpoint_storage=train.checkpoint_storage,
            faults=Faults(**(faults or {})),
            runner=train.runner,
        )

    @property
    def in_actor(self) -> bool:
        """Trained in one Ray actor (`raysys.train.actor`), not a Ray Train worker group."""
        return self.runner == "actor" or (self.runner == "auto" and self.num_workers == 1)

    @property
    def grad_accum_steps(self) -> int:
        """Micro-batches per optimizer step on each worker (the section checked it divides)."""
        return self.batch_size // (self.per_device_batch_size * self.num_workers)

    @property
    def sequences_per_step(self) -> int:
        """Sequences one optimizer step runs through the model, all workers together
        (a DPO row is two: chosen and rejected)."""
        return self.batch_size * (2 if self.method == "dpo" else 1)

    def scoped(self, *parts: str) -> TrainSpec:
        """This spec with `checkpoint_storage` narrowed to `<storage>/<parts...>`: one folder
        per run (sweep trial, pipeline stage), since Ray Train resumes from whatever
        checkpoint it finds there."""
        if not self.checkpoint_storage:
            return self
        from raysys.uris import join_uri

        return replace(self, checkpoint_storage=join_uri(self.checkpoint_storage, *parts))
