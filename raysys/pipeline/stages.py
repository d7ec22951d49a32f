"""The pipeline's bookkeeping: stages keyed by their config (and their inputs' keys),
and the study's state the stages share (the current model, the gold rows, what was
evaluated), summarised into pipeline.json."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from raysys.config import PipelineConfig, PipelineStages

Row = dict[str, Any]


@dataclass
class StageRecord:
    name: str
    title: str
    key: str
    dir: Path
    result: Any
    seconds: float
    skipped: bool  # finished by an earlier run


class StageFn(Protocol):
    """What a stage runs: given its (empty, or interrupted) folder, produce its result."""

    def __call__(self, out_dir: Path) -> Any: ...


class Stages:
    """Runs stages in order, each keyed by its config and its inputs' keys."""

    def __init__(self, run_dir: Path, total: int) -> None:
        self.run_dir = run_dir
        self.total = total
        self.records: dict[str, StageRecord] = {}

    def run(self, name: str, title: str, config: Any, after: tuple[str, ...], fn: StageFn) -> Any:
        from raysys.runs import stage

        upstream = [self.records[a].key for a in after if a in self.records]
        blob = json.dumps({"stage": name, "config": config, "after": upstream}, sort_keys=True)
        key = hashlib.sha256(blob.encode()).hexdigest()[:10]
        out = self.run_dir / f"{name}-{key}"
        skipped = (out / "stage.json").is_file()
        n = len(self.records) + 1
        result = stage(out, f"[{n}/{self.total}] {title}", fn)  # logs start, end, skip
        seconds = json.loads((out / "stage.json").read_text())["seconds"]
        self.records[name] = StageRecord(name, title, key, out, result, seconds, skipped)
        return result

    def dir(self, name: str) -> Path:
        return self.records[name].dir


@dataclass
class Study:
    """What the stages share: the config, the base model, the stage runner, and what the
    study has produced so far."""

    cfg: PipelineConfig
    model_path: str
    run_dir: Path
    st: Stages
    models: list[dict[str, Any]] = field(default_factory=list)  # evaluated, in order
    current: tuple[str, str | None] = ("base", None)  # (stage, adapter dir)
    gold_path: str | None = None
    dpo_decision: dict[str, Any] | None = None
    synth_rounds: list[dict[str, Any]] = field(default_factory=list)
    eval_rows: dict[str, tuple[Any, list[Row]]] | None = None

    def summary(self, seconds: float) -> dict[str, Any]:
        from raysys.analysis import cost
        from raysys.pipeline.usage import answers, stage_usage
        from raysys.tasks import get_task

        prices = self.cfg.cost.prices
        gpus = _cluster_gpus()
        used = {
            r.name: stage_usage(self.cfg, r.name, r.result, r.seconds, gpus)
            for r in self.st.records.values()
        }
        stages = [
            {
                "stage": r.name,
                "title": r.title,
                "dir": r.dir.name,
                "seconds": r.seconds,
                "skipped": r.skipped,
                "usage": cost.priced(used[r.name], prices),
            }
            for r in self.st.records.values()
        ]
        study = cost.total(used.values())
        scored = sum(answers(r.name, r.result) for r in self.st.records.values())
        p = self.cfg.pipeline
        out: dict[str, Any] = {
            "model": self.cfg.model.source,
            "tasks": p.tasks,
            "synth_tasks": [get_task(t).name for t in p.synth_task_refs()],
            "eval_tasks": self.cfg.eval_task_names(),
            "stages": stages,
            "models": self.models,
            "dpo": self.dpo_decision,
            "synthesis": self.synth_rounds,
            "final_model": {"stage": self.current[0], "adapter": self.current[1]},
            "wall_seconds": seconds,
            "cost": {
                "prices": dict(prices),
                "study": cost.priced(study, prices),
                "answers": scored,  # test answers the evaluation stages scored
                "cost_per_answer_usd": cost.per_answer(study, prices, scored),
            },
        }
        if "sft" in self.st.records and self.cfg.sweep is not None:
            out["sweep_dir"] = self.st.records["sft"].result["sweep_dir"]
        return out


def _cluster_gpus() -> float:
    import ray

    return float(ray.cluster_resources().get("GPU", 0)) if ray.is_initialized() else 0.0


def stage_plan(stages: PipelineStages, rounds: int, with_sweep: bool) -> list[str]:
    """Every stage the pipeline may run, in order (`driver.run_stages`). The DPO gate or
    a round that kept no synthetic row may leave some out; none is added."""
    if with_sweep:
        names = ["sft"]  # the sweep: SFT, base and SFT evaluations in one stage
    else:
        names = ["data", *(["eval_base"] if stages.eval_base else [])]
        names += ["sft", "eval_sft"] if stages.sft else []
    names += ["dpo_probe", "dpo", "eval_dpo"] if stages.dpo else []
    for r in range(1, rounds + 1 if stages.synth else 1):
        names += [f"synth_r{r}", f"sft_r{r}", f"eval_r{r}"]
    return names


def dumped(section: Any) -> Any:
    """A config section as plain data, for a stage's key."""
    return section.model_dump(mode="json") if section is not None else None


def sizes(p: Any) -> dict[str, int]:
    return {"train": p.train_size, "validation": p.validation_size, "test": p.test_size}


def holdout(p: Any) -> dict[str, int]:
    """The held-out split sizes (the rows no stage trains on)."""
    return {"test": p.test_size, "validation": p.validation_size}
