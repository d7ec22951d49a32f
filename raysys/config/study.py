"""Study sections: the sweep grid and the pipeline's stages."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from raysys.config.sections import (
    MAX_ROWS,
    MAX_SEED,
    Section,
    SynthSection,
    share_problem,
    unique_list,
)
from raysys.config.training import TrainSection

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
    def _each_once(cls, v: list[str] | None) -> list[str] | None:
        return unique_list(v)

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


class SearchBudget(Section):
    """When the search stops proposing: after `trials` search trials, or once its trials
    have held `gpu_hours` (GPU training) or `cpu_hours` (CPU training) of what Ray
    scheduled for them. None everywhere: as many trials as the grid baseline has (equal
    budget)."""

    trials: int | None = Field(None, ge=1, le=100_000, description="search trials at most")
    gpu_hours: float | None = Field(None, gt=0, description="GPU-hours of search trials")
    cpu_hours: float | None = Field(None, gt=0, description="CPU-hours of search trials")


def _range_problem(v: list[float], low: float, high: float, closed_low: bool) -> str | None:
    if len(v) != 2 or v[0] > v[1]:
        return f"give [low, high] with low <= high, got {v}"
    if (v[0] < low if closed_low else v[0] <= low) or v[1] > high:
        return f"values must lie in {'[' if closed_low else '('}{low:g}, {high:g}], got {v}"
    return None


class SearchSection(Section):
    """`raysys search`: mixtures proposed by a model fitted to the finished trials."""

    objective: str | dict[str, float] = Field(
        "mean",
        description="mean (of the evaluated tasks' validation scores), one task's name, or "
        "{task: weight} for a weighted sum",
    )
    initial: int = Field(6, ge=2, le=10_000, description="round 0: space-filling mixtures")
    per_round: int = Field(3, ge=1, le=10_000, description="mixtures proposed per round")
    budget: SearchBudget = SearchBudget()
    surrogate: Literal["ridge", "gp"] = Field(
        "ridge",
        description="ridge: regularised regression on log-weights (RegMix, Data Mixing "
        "Laws); gp: a Gaussian process, proposing by its upper confidence bound",
    )
    general: list[float] | None = Field(
        None, description="[low, high] share of general-instruction rows searched; None: 0"
    )
    math: list[float] | None = Field(None, description="[low, high] math share; None: 0")
    fraction: list[float] | None = Field(
        None, description="[low, high] data fraction searched; None: the largest sweep.fractions"
    )
    min_weight: float = Field(
        0.05, ge=0, lt=0.5, description="task weights below this are dropped from a mixture"
    )
    candidates: int = Field(
        4096, ge=16, le=1_000_000, description="mixtures the surrogate scores per round"
    )
    baseline: Literal["grid", "none"] = Field(
        "grid",
        description="grid: the sweep section's grid runs too, and the report compares the "
        "chosen mixture with its best point; none: the search alone",
    )

    @field_validator("general", "math")
    @classmethod
    def _share_range(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (problem := _range_problem(v, 0.0, 0.9, closed_low=True)):
            raise ValueError(f"{problem}, e.g. [0, 0.2]")
        return v

    @field_validator("fraction")
    @classmethod
    def _fraction_range(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (problem := _range_problem(v, 0.0, 1.0, closed_low=False)):
            raise ValueError(f"{problem}, e.g. [0.25, 1.0]")
        return v

    @field_validator("objective")
    @classmethod
    def _objective(cls, v: str | dict[str, float]) -> str | dict[str, float]:
        if isinstance(v, dict):
            if not v or any(w < 0 for w in v.values()) or not any(w > 0 for w in v.values()):
                raise ValueError(
                    f"weights must be >= 0 with one > 0, e.g. {{news_sentiment: 1}}, got {v}"
                )
        elif not v:
            raise ValueError("give mean, a task name or {task: weight}")
        return v

    def objective_weights(self, tasks: list[str]) -> dict[str, float]:
        """{task: weight} over the evaluated `tasks` (weights sum to 1)."""
        if self.objective == "mean":
            raw = dict.fromkeys(tasks, 1.0)
        elif isinstance(self.objective, str):
            raw = {self.objective: 1.0}
        else:
            raw = {t: w for t, w in self.objective.items() if w > 0}
        whole = sum(raw.values())
        return {t: w / whole for t, w in raw.items()}


class ContaminationSection(Section):
    """Training rows against every evaluation split, before anything trains (README
    "Contamination check"): exact after normalisation, near-duplicates (MinHash LSH),
    long shared n-grams."""

    max_share: float = Field(
        0.0,
        ge=0,
        le=1,
        description="refuse the run when more than this share of an evaluation split's "
        "rows overlaps the training rows (0: any overlap)",
    )
    allow: bool = Field(False, description="run anyway; the report still shows the overlap")
    ngram: int = Field(13, ge=4, le=64, description="words per shared n-gram")
    ngram_coverage: float = Field(
        0.8,
        ge=0,
        le=1,
        description="an evaluation row counts when shared n-grams cover this share of its "
        "words (0: any shared n-gram)",
    )
    near_duplicate: float = Field(
        0.8, gt=0, le=1, description="Jaccard similarity of word 5-gram shingles"
    )
    common_rows: int = Field(
        10,
        ge=1,
        description="an n-gram in more rows than this (of a split or a training source) is "
        "template text and does not count",
    )


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
    def _each_once(cls, v: list[str] | None) -> list[str] | None:
        return unique_list(v)

    @field_validator("synth_tasks")
    @classmethod
    def _synth_once(cls, v: list[str | SynthTaskEntry]) -> list[str | SynthTaskEntry]:
        unique_list([synth_ref(e) for e in v])
        return v

    def synth_task_refs(self) -> list[str]:
        return [synth_ref(e) for e in self.synth_tasks]

    def pool_file(self, ref: str) -> str | None:
        """The pool file named for a synthesised task (by name or path), if any."""
        for e in self.synth_tasks:
            if isinstance(e, SynthTaskEntry) and ref == e.task:
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
