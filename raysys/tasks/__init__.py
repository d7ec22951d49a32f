"""Task registry: name -> (task definition, split generator)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from raysys.tasks import news_sentiment
from raysys.tasks.base import ClassificationTask

_REGISTRY: dict[str, tuple[ClassificationTask, Callable[..., dict[str, list[dict[str, Any]]]]]] = {
    news_sentiment.TASK.name: (news_sentiment.TASK, news_sentiment.generate_splits),
}


def task_names() -> list[str]:
    return sorted(_REGISTRY)


def get_task(name: str) -> ClassificationTask:
    if name not in _REGISTRY:
        from raysys.errors import UserError

        raise UserError(f"unknown task {name!r}; choose one of {', '.join(task_names())}")
    return _REGISTRY[name][0]


def build_splits(name: str, sizes: dict[str, int], seed: int) -> dict[str, list[dict[str, Any]]]:
    get_task(name)
    return _REGISTRY[name][1](sizes, seed)
