"""What a config cannot check alone: that the tasks it names exist and can do what the
job asks of them (be trained on, be voted on). The one place a job's config is loaded
*and* checked: `load(kind, path, overrides)`.

Config sections only check syntax and ranges (the config layer knows no task registry);
this module reads task files (YAML paths register their task) and refuses, in one line
naming the field, a task that is unknown, has no training data where it is trained on,
or no label set where synthesis votes on it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TypeVar

from pydantic import BaseModel

from raysys.config import (
    EvalConfig,
    PipelineConfig,
    SweepConfig,
    SynthConfig,
    load_config,
)
from raysys.errors import ConfigError, UserError
from raysys.tasks import get_task
from raysys.tasks.base import Task

C = TypeVar("C", bound=BaseModel)


def load(cls: type[C], path: str | os.PathLike | None, overrides: Iterable[str] = ()) -> C:
    """`load_config`, then `check_tasks`: what every command runs on its config."""
    cfg = load_config(cls, path, list(overrides))
    check_tasks(cfg, path)
    return cfg


def check_tasks(cfg: BaseModel, path: str | os.PathLike | None = None) -> None:
    """Raise `ConfigError` naming the field when a task `cfg` names cannot do its part."""
    try:
        for field, ref, need in _uses(cfg):
            _check(field, ref, need)
    except _Refused as e:
        where = f"{path}: " if path else ""
        raise ConfigError(f"{where}{e.field}: {e.message}") from None


def _uses(cfg: BaseModel) -> list[tuple[str, str, str]]:
    """(field, task reference, what the job needs of it: known | train | vote)."""
    if isinstance(cfg, EvalConfig):
        return [("eval.tasks", t, "known") for t in cfg.eval.tasks]
    if isinstance(cfg, SynthConfig):
        return [("synth.task", cfg.synth.task, "vote")]
    if isinstance(cfg, SweepConfig):
        sw = cfg.sweep
        return [("sweep.tasks", t, "known") for t in sw.tasks] + [
            ("sweep.eval_tasks", t, "known") for t in sw.eval_tasks or []
        ]
    if isinstance(cfg, PipelineConfig):
        p = cfg.pipeline
        return (
            [("pipeline.tasks", t, "train") for t in p.tasks]
            + [("pipeline.synth_tasks", t, "vote") for t in p.synth_task_refs()]
            + [("pipeline.eval_tasks", t, "known") for t in p.eval_tasks or []]
        )
    return []


class _Refused(Exception):
    def __init__(self, field: str, message: str) -> None:
        self.field, self.message = field, message


def _check(field: str, ref: str, need: str) -> Task:
    try:
        task = get_task(ref)
    except UserError as e:
        raise _Refused(field, str(e)) from None
    if need == "train" and "train" not in task.splits:
        raise _Refused(field, f"{ref} has no training data; move it to pipeline.synth_tasks")
    if need == "vote" and task.kind != "classification":
        raise _Refused(
            field,
            f"{ref} is not a classification task (it is {task.kind}); majority voting "
            "needs a label set",
        )
    return task
