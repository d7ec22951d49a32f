"""The SFT stages: gold training rows, LoRA SFT and its evaluation; or, with a `sweep`
section, a Ray Tune grid whose all-tasks trial at the largest fraction becomes the SFT
model (the grid runs as a library call with the pipeline's checks, not a job in a job)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from raysys.config import PipelineConfig, SweepConfig
from raysys.errors import UserError
from raysys.pipeline.evaluation import evaluate
from raysys.pipeline.stages import Row, Study, dumped, holdout, sizes
from raysys.pipeline.training import all_tasks_spec, train


def sft(study: Study) -> None:
    cfg, p = study.cfg, study.cfg.pipeline
    gold_data(study)
    if p.stages.eval_base:
        evaluate(study, "eval_base", "base", None, ())
    if not p.stages.sft:
        return
    res = study.st.run(
        "sft",
        f"LoRA SFT on {', '.join(p.tasks)} (Ray)",
        {"model": dumped(cfg.model), "train": dumped(cfg.train)},
        ("data",),
        lambda d: train(study, study.gold_path, cfg.train, d),
    )
    study.current = ("sft", str(study.st.dir("sft") / "adapter"))
    evaluate(study, "eval_sft", "sft", study.current[1], ("sft",), train=res)


def gold_data(study: Study) -> None:
    cfg, p = study.cfg, study.cfg.pipeline

    def run(d: Path) -> dict[str, Any]:
        from raysys.data.cocktail import parse_spec
        from raysys.data.mixing import materialize_cocktail

        spec = parse_spec(all_tasks_spec(p.tasks))
        path, counts = materialize_cocktail(
            spec, 1.0, cfg.run.seed, d, p.train_size, holdout=holdout(p)
        )
        return {"path": str(path), "counts": counts, "rows": sum(counts.values())}

    res = study.st.run(
        "data",
        "training data (gold rows of every task)",
        {"tasks": p.tasks, "sizes": sizes(p), "seed": cfg.run.seed},
        (),
        run,
    )
    study.gold_path = res["path"]


def sweep_sft(study: Study) -> None:
    """The SFT stage as a sweep; its one test pass scored the base model and every adapter."""
    cfg, p = study.cfg, study.cfg.pipeline
    assert cfg.sweep is not None
    res = study.st.run(
        "sft",
        f"SFT sweep over {', '.join(p.tasks)} (Ray Tune, {len(cfg.sweep.fractions)} fractions)",
        {
            "model": dumped(cfg.model),
            "train": dumped(cfg.train),
            "generate": dumped(cfg.generate),
            "sweep": dumped(cfg.sweep),
            "tasks": p.tasks,
            "eval": cfg.eval_task_names(),
            "sizes": sizes(p),
        },
        ("data",),
        lambda d: _run_grid(study, d),
    )
    study.models.append({"stage": "base", "eval": "sft", "results": res["base"], "train": None})
    study.current = ("sft", res["adapter"])
    study.models.append(
        {
            "stage": "sft",
            "eval": "sft",
            "results": res["chosen"],
            "train": res["train"],
            "trial_id": res["trial_id"],
        }
    )
    study.gold_path = res["data_path"]  # the chosen trial's own rows


def _run_grid(study: Study, d: Path) -> dict[str, Any]:
    from raysys.runs import open_run
    from raysys.sweep.driver import execute, make_grid
    from raysys.sweep.grid import expand_grid
    from raysys.sweep.prepare import prepare_data
    from raysys.sweep.tune import tune_callbacks
    from raysys.tasks.store import TASKS_DIR

    scfg = sweep_config(study.cfg, d)
    trials = expand_grid(scfg)
    data = prepare_data(scfg, trials, study.model_path)
    sweep_dir = open_run(scfg).path
    _copy_overlap(study.run_dir, sweep_dir)
    resume = (sweep_dir / "tune").is_dir()  # an interrupted stage: Tune restores its state
    grid = make_grid(
        scfg,
        trials,
        sweep_dir,
        study.model_path,
        study.run_dir / TASKS_DIR,
        data,
        tune_callbacks(scfg),
    )
    outcome = execute(grid, resume=resume, retry_errored=False)
    return sweep_summary(study.cfg, d, outcome.sweep_dir)


def _copy_overlap(run_dir: Path, sweep_dir: Path) -> None:
    """The pipeline's contamination check (its rows are the sweep's) into the sweep's
    folder, for the sweep's own report."""
    from raysys.data import contamination

    if (result := contamination.read(run_dir)) is not None:
        contamination.write(sweep_dir, result)


def sweep_config(cfg: PipelineConfig, stage_dir: Path) -> SweepConfig:
    """The pipeline's SFT sweep as a sweep config living in the stage's directory."""
    p = cfg.pipeline
    sweep = cfg.sweep.model_copy(  # type: ignore[union-attr]
        update={
            "tasks": p.tasks,
            "eval_tasks": cfg.eval_task_names(),
            "train_size": p.train_size,
            "validation_size": p.validation_size,
            "test_size": p.test_size,
        }
    )
    run = cfg.run.model_copy(
        update={"name": "sweep", "storage_path": str(stage_dir.resolve()), "run_id": "grid"}
    )
    return SweepConfig(
        run=run,
        ray=cfg.ray,
        model=cfg.model,
        generate=cfg.generate,
        train=cfg.train,
        sweep=sweep,
        cost=cfg.cost,
    )


def all_tasks_trial(trials: list[Any], cfg: PipelineConfig) -> Any:
    """The sweep trial the later stages build on: all tasks, no regularisers, largest
    fraction, first seed (and the base learning rate / rank when those are swept)."""
    from raysys.tasks import get_task

    want = {get_task(t).name for t in cfg.pipeline.tasks}
    fits = [
        t for t in trials if {c for c, _ in t.components} == want and t.general == 0 and t.math == 0
    ]
    if not fits:
        raise UserError(
            "sweep.cocktails: no trial trains on all of pipeline.tasks without regularisers; "
            "add the 'all' generator (or 'pairs' for two tasks) and general/math 0"
        )
    top = max(t.fraction for t in fits)
    fits = [t for t in fits if t.fraction == top]
    lr, rank = cfg.train.learning_rate, cfg.train.lora.r
    return min(fits, key=lambda t: (t.learning_rate != lr, t.lora_r != rank, t.seed, t.trial_id))


def sweep_summary(cfg: PipelineConfig, stage_dir: Path, sweep_dir: Path) -> dict[str, Any]:
    """What the pipeline takes from a finished sweep: the chosen trial, its training
    rows and the test results of the base model and of that trial."""
    import pandas as pd

    from raysys.sweep.grid import Trial
    from raysys.sweep.trial import trial_data

    grid = [Trial.from_params(p) for p in json.loads((sweep_dir / "grid.json").read_text())]
    chosen = all_tasks_trial(grid, cfg)
    res = json.loads((sweep_dir / "trials" / chosen.trial_id / "result.json").read_text())
    scfg = sweep_config(cfg, stage_dir)
    table = pd.read_parquet(sweep_dir / "results.parquet")  # one row per (trial, task)
    return {
        "sweep_dir": str(sweep_dir),
        "trial_id": chosen.trial_id,
        "trials": len(grid),
        "adapter": res["adapter"],
        # the sweep's shared cocktail cache: the exact rows the trial trained on
        "data_path": trial_data(scfg, chosen, Path(scfg.run.storage_path))["path"],
        "train": res["train"],
        "base": test_scores(table, "base"),
        "chosen": test_scores(table, chosen.trial_id),
    }


def test_scores(table: Any, trial_id: str) -> list[Row]:
    """A trial's test metrics per task, from the sweep's results table."""
    out = []
    for rec in table[table["trial_id"] == trial_id].to_dict("records"):
        m = {
            k[5:]: v
            for k, v in rec.items()
            if k.startswith("test_") and not (isinstance(v, float) and math.isnan(v))
        }
        out.append({"task": rec["task"], **m})
    return out
