"""`raysys synth CONFIG`: label a task's unlabeled inputs by CoT sampling and voting.

Outputs under `<run.storage_path>/<run.name>/<run_id>/synth/`: shards/ (resumable
progress), labels.parquet (every input: samples, answers, majority, agreement,
kept), sft.parquet (chat rows for `raysys train`), dpo.parquet (TRL preference
rows), stats.json (yield, agreement, extraction failures, kept-label accuracy
against held-back gold where it exists).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from raysys.config import SynthConfig
from raysys.errors import UserError
from raysys.tasks import scoped

log = logging.getLogger(__name__)


@scoped  # this run's task rows are registered for the run only
def run_synth_job(cfg: SynthConfig) -> tuple[Path, dict[str, Any]]:
    from raysys.config import with_run_id
    from raysys.models import resolve_model
    from raysys.runs import check_job_storage, open_run, publish, stage
    from raysys.runtime import faults_from_env, init_ray
    from raysys.storage import local_root, localize
    from raysys.synth.cot import build_pool, run_synthesis, synth_need
    from raysys.tasks import get_task
    from raysys.tasks.store import prepare

    check_job_storage(cfg.run.storage_path)  # before anything is built or written
    from raysys.engines import check_fits

    check_fits(cfg.generate, cfg.ray)  # an engine pool this Ray could never place

    task = get_task(cfg.synth.task)
    model_path = resolve_model(cfg.model.source)
    adapters = {}
    if cfg.synth.adapter:
        # s3:// or gs://: fetched into the cache first
        p = Path(localize(cfg.synth.adapter, "synth.adapter")).expanduser()
        if not (p / "adapter_config.json").is_file():
            raise UserError(
                f"synth.adapter: {p} is not a PEFT adapter dir (no adapter_config.json)"
            )
        adapters = {"synth": str(p.resolve())}
    cfg = with_run_id(cfg)
    run = cfg.run
    # the pool and the test rows read and checked (a bad file is refused before any write)
    tasks = prepare(
        local_root(run.storage_path) / run.name / str(run.run_id), [synth_need(cfg.synth)], run.seed
    )
    run_dir = open_run(cfg)
    tasks.write()  # <run>/tasks: the pool labeled and the test rows it must not contain
    pool, pool_stats = build_pool(task, cfg, run.seed)
    init_ray(cfg.ray.address, cfg.ray.num_cpus)
    stats = stage(
        run_dir / "synth",
        f"CoT synthesis for {task.name}",
        lambda d: {
            **run_synthesis(
                task,
                pool,
                model_path,
                adapters,
                cfg,
                d,
                faults_from_env(("synth_crash_after_shards",)),
            ),
            **pool_stats,
        },
    )
    publish(run_dir)
    return run_dir, stats
