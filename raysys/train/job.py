"""`raysys train CONFIG`: one LoRA SFT or DPO run on Ray Train, in a run directory.

Outputs under `<run.storage_path>/<run.name>/<run_id>/`: config.yaml (resolved),
`train/adapter/` (PEFT layout), `train/metrics.json`, and the Ray Train storage
(`train/ray_train/`, or `train.checkpoint_storage`). Re-running with the same
`run.run_id` resumes from the latest checkpoint, or skips a finished run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from raysys.config import TrainConfig

log = logging.getLogger(__name__)


def run_train_job(cfg: TrainConfig) -> tuple[Path, dict[str, Any]]:
    from raysys.models import resolve_model
    from raysys.runs import check_job_storage, open_run, storage_root
    from raysys.runtime import TRAIN_FAULTS, faults_from_env, init_ray
    from raysys.train.data import training_data
    from raysys.train.launch import (
        check_checkpoint_storage,
        check_local_budget,
        preflight,
        run_spec,
    )
    from raysys.train.spec import TrainSpec

    check_job_storage(cfg.run.storage_path)  # before anything is built or written
    check_checkpoint_storage(cfg.train)

    model_path = resolve_model(cfg.model.source)
    storage = storage_root(cfg.run.storage_path)  # where the cocktail cache lives
    train_path = training_data(cfg, storage)  # bad data is refused before any write
    spec = TrainSpec.from_section(
        cfg.train,
        model_path=model_path,
        train_path=train_path,
        dtype=cfg.model.dtype,
        seed=cfg.run.seed,
        attn_implementation=cfg.model.attn_implementation,
        faults=faults_from_env(TRAIN_FAULTS),
    )
    # Bad data is refused before a run directory or a Ray instance exists.
    preflight(train_path, model_path, spec)
    check_local_budget(cfg.train, cfg.ray)
    run_dir = open_run(cfg)
    init_ray(cfg.ray.address, cfg.ray.num_cpus, metadata=run_dir.job_metadata("train"))
    summary = run_dir.stage(
        "train",
        f"LoRA {spec.method.upper()} on Ray Train",
        # <name>/<run_id>: another run's checkpoints are never resumed from
        lambda d: run_spec(spec.scoped(cfg.run.name, run_dir.path.name), d, checked=True),
    )
    run_dir.publish()
    return run_dir.path, summary
