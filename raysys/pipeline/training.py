"""Training inside the pipeline: one LoRA run on Ray Train in a stage's folder, its
checkpoints scoped to the stage so no stage resumes from another's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from raysys.errors import UserError
from raysys.pipeline.stages import Study


def train(study: Study, data_path: str | None, train_cfg: Any, d: Path) -> dict[str, Any]:
    from raysys.runtime import TRAIN_FAULTS, faults_from_env
    from raysys.train.launch import run_training, scoped_checkpoint_storage

    if data_path is None:
        raise UserError("pipeline: no training data (pipeline.tasks is empty)")
    cfg = study.cfg
    return run_training(
        data_path,
        study.model_path,
        scoped_checkpoint_storage(train_cfg, cfg.run.name, study.run_dir.name, d.name),
        cfg.model.dtype,
        d,
        cfg.run.seed,
        faults_from_env(TRAIN_FAULTS),
        attn_implementation=cfg.model.attn_implementation,
    )


def all_tasks_spec(tasks: list[str]) -> dict[str, Any]:
    """The gold cocktail: every trained task, equal weights."""
    return {"name": "gold", "components": [{"task": t, "weight": 1.0} for t in tasks]}
