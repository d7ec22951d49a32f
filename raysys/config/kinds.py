"""The config kinds, one per job: what `raysys <command>` validates its YAML into."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

from raysys.config.sections import (
    CostSection,
    EvalSection,
    GenerateSection,
    ModelSection,
    RaySection,
    RunSection,
    Section,
    SynthSection,
)
from raysys.config.study import (
    ContaminationSection,
    PipelineSection,
    SearchBudget,
    SearchSection,
    SweepSection,
)
from raysys.config.training import DataSection, TrainSection, check_packing


class TrainConfig(Section):
    """One LoRA SFT or DPO run on Ray Train."""

    run: RunSection = RunSection(name="train")
    ray: RaySection = RaySection()
    model: ModelSection = ModelSection()
    data: DataSection = DataSection()
    train: TrainSection = TrainSection()

    @model_validator(mode="after")
    def _data_source(self) -> TrainConfig:
        check_packing(self.model, self.train)
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


class EvalConfig(Section):
    """The base model and any number of adapters on any tasks, one engine pass."""

    run: RunSection = RunSection(name="eval")
    ray: RaySection = RaySection()
    model: ModelSection = ModelSection()
    generate: GenerateSection = GenerateSection()
    eval: EvalSection = EvalSection()


class SynthConfig(Section):
    """Chain-of-thought label synthesis with majority voting (and DPO pair mining)."""

    run: RunSection = RunSection(name="synth")
    ray: RaySection = RaySection()
    model: ModelSection = ModelSection()
    generate: GenerateSection = GenerateSection(max_new_tokens=256, batch_size=16)
    synth: SynthSection = SynthSection()


class SweepConfig(Section):
    """A Ray Tune grid of LoRA SFT runs over cocktails x fractions x seeds, then a report."""

    run: RunSection = RunSection(name="sweep")
    ray: RaySection = RaySection()
    model: ModelSection = ModelSection()
    generate: GenerateSection = GenerateSection()
    train: TrainSection = TrainSection()
    sweep: SweepSection = SweepSection()
    search: SearchSection | None = Field(
        None, description="`raysys search`: mixtures proposed from fitted trials (see README)"
    )
    contamination: ContaminationSection = ContaminationSection()
    cost: CostSection = CostSection()

    @model_validator(mode="after")
    def _sft_only(self) -> SweepConfig:
        check_packing(self.model, self.train)
        if self.train.method != "sft":
            raise ValueError("train.method: sweeps train SFT adapters; set train.method=sft")
        if self.sweep.scheduler == "asha" and not self.sweep.learning_rates:
            raise ValueError(
                "sweep.scheduler=asha stops learning rates early; add sweep.learning_rates "
                "or use sweep.scheduler=fifo"
            )
        if self.search is not None:
            check_search(self)
        return self


def check_search(cfg: SweepConfig) -> None:
    """What a search needs of the sweep section it reads."""
    se, sw = cfg.search, cfg.sweep
    assert se is not None
    evaluated = sw.eval_tasks or sw.tasks
    named = [se.objective] if isinstance(se.objective, str) and se.objective != "mean" else []
    named += list(se.objective) if isinstance(se.objective, dict) else []
    for task in named:
        if task not in evaluated:
            raise ValueError(
                f"search.objective: {task} is not evaluated; use one of "
                f"{', '.join(evaluated)} (sweep.eval_tasks or sweep.tasks)"
            )
    if sw.validate_in != "trial":
        raise ValueError(
            "search: the surrogate reads each round's validation scores; set "
            "sweep.validate_in=trial"
        )
    if se.baseline == "none" and se.budget == SearchBudget():
        raise ValueError(
            "search.budget: with search.baseline=none set search.budget.trials (or "
            "gpu_hours / cpu_hours)"
        )
    if se.budget.gpu_hours is not None and not cfg.train.use_gpu:
        raise ValueError(
            "search.budget.gpu_hours: trials train on CPU (train.use_gpu=false); use "
            "search.budget.cpu_hours or search.budget.trials"
        )
    if se.budget.cpu_hours is not None and cfg.train.use_gpu:
        raise ValueError(
            "search.budget.cpu_hours: trials train on GPUs; use search.budget.gpu_hours or "
            "search.budget.trials"
        )


class PipelineConfig(Section):
    """The study's sequence: eval base -> SFT -> eval -> DPO (gated) -> eval ->
    N x (synthesis -> SFT(+synthetic) -> eval), one run directory, stages keyed by config."""

    run: RunSection = RunSection(name="pipeline")
    ray: RaySection = RaySection()
    model: ModelSection = ModelSection()
    generate: GenerateSection = GenerateSection(engine="hf", max_new_tokens=8)
    train: TrainSection = TrainSection(learning_rate=2e-4, batch_size=8)
    pipeline: PipelineSection = PipelineSection()
    contamination: ContaminationSection = ContaminationSection()
    cost: CostSection = CostSection()
    sweep: SweepSection | None = Field(
        None,
        description="when set, the SFT stage is this Ray Tune grid over pipeline.tasks; its "
        "all-tasks trial at the largest fraction is the SFT model the later stages build on",
    )

    @model_validator(mode="after")
    def _checks(self) -> PipelineConfig:
        check_packing(self.model, self.train)
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


CONFIG_KINDS: dict[str, type[BaseModel]] = {
    "quickstart": PipelineConfig,  # the quickstart is a pipeline (with a sweep)
    "train": TrainConfig,
    "eval": EvalConfig,
    "synth": SynthConfig,
    "sweep": SweepConfig,
    "pipeline": PipelineConfig,
}
