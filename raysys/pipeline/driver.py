"""`raysys pipeline CONFIG`: the study's sequence as one resumable job.

    eval_base -> sft -> eval_sft -> dpo_probe -> dpo (gated) -> eval_dpo
              -> N x (synth_rK -> sft_rK (gold + synthetic) -> eval_rK)

Every stage writes under `<run>/<name>-<key>/` and is done when its `stage.json`
exists. `key` hashes the config the stage depends on and the keys of the stages it
builds on, so a re-run skips what is finished, redoes only what a config change
touched (and everything downstream of it), and resumes the interrupted stage:
training from its latest Ray Train checkpoint, synthesis from its last written shard.

With a `sweep` section the SFT stage is a Ray Tune grid over `pipeline.tasks`
(cocktails x fractions x seeds); its test pass (base + every adapter, one engine
load) provides the base and SFT evaluations, and the trial that trained on all of
`pipeline.tasks` at the largest fraction (first seed) is the model DPO and the
synthesis rounds build on.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raysys.config import PipelineConfig, resolve_run_id
from raysys.data import contamination
from raysys.errors import UserError
from raysys.io import write_json
from raysys.pipeline.stages import Stages, Study, stage_plan
from raysys.tasks import scoped
from raysys.tasks.store import TASKS_DIR, Need, Prepared, prepare

log = logging.getLogger(__name__)

SUMMARY = "pipeline.json"


@dataclass
class PipelineOutcome:
    run_dir: Path
    summary: dict[str, Any]
    report: dict[str, str] = field(default_factory=dict)


@scoped  # this run's task rows are registered for the run only
def run_pipeline(cfg: PipelineConfig, resume: bool = False) -> PipelineOutcome:
    """Run (or continue) every enabled stage; write pipeline.json and the report."""
    from raysys.models import resolve_model
    from raysys.pipeline.report import write_pipeline_report
    from raysys.runs import RunDir, check_job_storage, open_run
    from raysys.runtime import init_ray

    check_job_storage(cfg.run.storage_path)
    cfg = locate_run(cfg, resume)
    model_path = resolve_model(cfg.model.source)  # before any output: a bad source writes nothing
    preflight(cfg)
    run = RunDir.of(cfg.run.storage_path, cfg.run.name, str(cfg.run.run_id), fetch=True)
    tasks = prepare(run.path, task_needs(cfg), cfg.run.seed)  # bad rows or pools refused now
    overlap = check_contamination(cfg, tasks)  # gold, pools, regularisers vs evaluation
    run = open_run(cfg, check=False)  # stages are keyed by config: a changed one is fine
    tasks.write()  # <run>/tasks: every stage (and the sweep's trials) reads these rows
    run.keep(TASKS_DIR)
    contamination.write(run.path, overlap)  # the report's overlap table
    run.keep(contamination.FILE)
    init_ray(cfg.ray.address, cfg.ray.num_cpus, metadata=run.job_metadata("pipeline"))
    start = time.perf_counter()
    study = Study(cfg, model_path, run.path, Stages(run.path, stage_count(cfg)))
    run_stages(study)
    summary = study.summary(time.perf_counter() - start)
    write_json(run / SUMMARY, summary)
    markdown, html = write_pipeline_report(run.path, summary)
    run.publish()  # object-store runs: the summary and report up to the store
    return PipelineOutcome(run.path, summary, {"markdown": str(markdown), "html": str(html)})


def run_stages(study: Study) -> None:
    """The sequence: SFT (or the SFT sweep), DPO (gated), the synthesis rounds."""
    from raysys.pipeline.dpo import dpo
    from raysys.pipeline.sft import sft, sweep_sft
    from raysys.pipeline.synthesis import synth_round

    p = study.cfg.pipeline
    if study.cfg.sweep is not None:
        sweep_sft(study)  # the sweep builds (and caches) its own training data
    else:
        sft(study)
    if p.stages.dpo:
        dpo(study)
    if p.stages.synth:
        for r in range(1, p.rounds + 1):
            synth_round(study, r)


def locate_run(cfg: PipelineConfig, resume: bool) -> PipelineConfig:
    """`cfg` with its run id fixed: given, new (a UTC timestamp), or with `resume` and
    no id the latest pipeline run of `run.name`."""
    from raysys.runs import latest_run_id, shown, storage_root

    storage = cfg.run.storage_path
    where = shown(storage_root(storage))  # the path, or the bucket URI without its options
    run_id = cfg.run.run_id
    if resume and run_id is None:
        run_id = latest_run_id(storage, cfg.run.name, "config.yaml")
        if run_id is None:
            raise UserError(
                f"--resume: no pipeline run under {where}/{cfg.run.name}; run it without "
                "--resume first, or "
                "set run.storage_path / run.run_id to the run to resume"
            )
    run_id = run_id or resolve_run_id(cfg)
    return cfg.model_copy(update={"run": cfg.run.model_copy(update={"run_id": run_id})})


def task_needs(cfg: PipelineConfig) -> list[Need]:
    """Every task's rows the pipeline uses: gold train rows, held-out splits, the pools
    synthesis labels (and regulariser rows a sweep stage mixes in)."""
    from raysys.synth.cot import synth_need
    from raysys.tasks import REGULARISERS, get_task

    p = cfg.pipeline
    hold = {"validation": p.validation_size, "test": p.test_size}
    trained = list(p.tasks)
    if cfg.sweep is not None:
        shares = (cfg.sweep.general, cfg.sweep.math)
        trained += [t for t, s in zip(REGULARISERS, shares, strict=True) if max(s) > 0]
    needs = []
    for ref in dict.fromkeys([*trained, *cfg.eval_task_names()]):
        sizes = {s: n for s, n in hold.items() if s in get_task(ref).splits}
        needs.append(Need(ref, sizes | ({"train": p.train_size} if ref in trained else {})))
    if p.stages.synth and p.rounds:
        for ref in p.synth_task_refs():
            sc = p.synth.model_copy(update={"task": ref, "test_size": p.test_size})
            needs.append(synth_need(sc, p.pool_file(ref)))
    return needs


def check_contamination(cfg: PipelineConfig, tasks: Prepared) -> contamination.Result:
    """Every row a stage may train on (gold train rows, the pools synthesis labels, a
    sweep stage's regularisers) against every evaluation split; refused per
    `cfg.contamination` before anything is written. Synthetic rows are pool inputs with
    a model's label, so checking the pools up front covers every round's rows."""
    from raysys.tasks import get_task

    evaluated = [get_task(ref).name for ref in cfg.eval_task_names()]
    train, evals = contamination.parts(tasks.rows(), evaluated)
    settings = contamination.Settings.of(cfg.contamination)
    result = contamination.cached(tasks.run_dir, train, evals, settings)
    log.info(
        "contamination check: %d of %d evaluation splits overlap the training rows",
        len(result.found()),
        len(result.splits),
    )
    return result


def preflight(cfg: PipelineConfig) -> None:
    """What can be refused before anything is written or started."""
    from raysys.engines import check_fits
    from raysys.train.launch import check_checkpoint_storage, check_local_budget

    check_fits(cfg.generate, cfg.ray)
    check_checkpoint_storage(cfg.train)
    check_checkpoint_storage(cfg.pipeline.dpo)
    if cfg.pipeline.stages.sft or (cfg.pipeline.stages.synth and cfg.pipeline.rounds):
        check_local_budget(cfg.train, cfg.ray)
    if cfg.pipeline.stages.dpo:
        check_local_budget(cfg.pipeline.dpo, cfg.ray)
    if cfg.sweep is not None:
        from raysys.pipeline.sft import all_tasks_trial, sweep_config
        from raysys.sweep.grid import expand_grid

        all_tasks_trial(expand_grid(sweep_config(cfg, Path("."))), cfg)


def stage_count(cfg: PipelineConfig) -> int:
    p = cfg.pipeline
    return len(stage_plan(p.stages, p.rounds, with_sweep=cfg.sweep is not None))
