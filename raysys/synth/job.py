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
    from raysys.engines import check_fits
    from raysys.models import resolve_model
    from raysys.runs import check_job_storage, open_run_with_tasks
    from raysys.runtime import faults_from_env, init_ray
    from raysys.synth.cot import build_pool, run_synthesis, synth_need
    from raysys.tasks import get_task

    check_job_storage(cfg.run.storage_path)  # before anything is built or written
    check_fits(cfg.generate, cfg.ray)  # an engine pool this Ray could never place
    task = get_task(cfg.synth.task)
    model_path = resolve_model(cfg.model.source)
    adapters = labeler(cfg.synth.adapter)
    # the pool and the test rows it must not contain, checked, then in <run>/tasks
    run_dir = open_run_with_tasks(cfg, [synth_need(cfg.synth)])
    pool, pool_stats = build_pool(task, cfg, cfg.run.seed)
    init_ray(cfg.ray.address, cfg.ray.num_cpus, metadata=run_dir.job_metadata("synth"))
    faults = faults_from_env(("synth_crash_after_shards",))
    stats = run_dir.stage(
        "synth",
        f"CoT synthesis for {task.name}",
        lambda d: {
            **run_synthesis(task, pool, model_path, adapters, cfg, d, faults, run_dir.keep),
            **pool_stats,
        },
    )
    run_dir.publish()
    return run_dir.path, stats


def labeler(adapter: str | None) -> dict[str, str]:
    """The adapter the labeler runs with (fetched first from s3:// or gs://), by name."""
    from raysys.storage import localize

    if not adapter:
        return {}
    p = Path(localize(adapter, "synth.adapter")).expanduser()
    if not (p / "adapter_config.json").is_file():
        raise UserError(f"synth.adapter: {p} is not a PEFT adapter dir (no adapter_config.json)")
    return {"synth": str(p.resolve())}
