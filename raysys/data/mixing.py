"""Cocktails over the task registry: build each task's train pool, then mix and write.

`raysys.data.cocktail` knows nothing of tasks; this module feeds it registry rows
(built-in or YAML-defined tasks) and the chat rendering each task defines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from raysys.data.cocktail import REGULARISERS, CocktailSpec, materialize, validate_spec
from raysys.tasks import build_splits, get_task, task_names

Row = dict[str, Any]


def pool_tasks(spec: CocktailSpec) -> list[str]:
    tasks = [c.task for c in spec.components if c.weight > 0]
    return tasks + [
        t for t, share in zip(REGULARISERS, (spec.general, spec.math), strict=True) if share > 0
    ]


def resolve_spec(spec: CocktailSpec) -> CocktailSpec:
    """Components named by a YAML task file are renamed to the task's registered name."""
    comps = [c.model_copy(update={"task": get_task(c.task).name}) for c in spec.components]
    return spec.model_copy(update={"components": comps})


def build_pools(
    spec: CocktailSpec, train_size: int, seed: int, holdout: dict[str, int] | None = None
) -> dict[str, list[Row]]:
    """Each needed task's train split (`train_size` rows); `spec` must be resolved.

    `holdout` (e.g. {"validation": 60, "test": 120}): the evaluation split sizes used
    with these rows. Generated tasks build train rows after, and disjoint from, the
    held-out rows of the same seed; without it a few train inputs can equal test ones.
    """
    check_against_registry(spec)
    pools = {}
    for name in pool_tasks(spec):
        splits = get_task(name).splits
        sizes = {s: n for s, n in (holdout or {}).items() if s in splits}
        pools[name] = build_splits(name, {**sizes, "train": train_size}, seed)["train"]
    return pools


def check_against_registry(spec: CocktailSpec) -> None:
    """Unknown and test-only tasks are refused before any row is built."""
    for c in spec.components:
        get_task(c.task)  # a one-line UserError for unknown names
    test_only = {n for n in task_names() if "train" not in get_task(n).splits}
    available = {n: 1 for n in task_names() if n not in test_only}
    validate_spec(spec, available, test_only)


def to_messages(row: Row) -> list[dict[str, str]]:
    task = get_task(row["task"])
    return task.messages(row) + [{"role": "assistant", "content": task.target(row)}]


def materialize_cocktail(
    spec: CocktailSpec,
    fraction: float,
    seed: int,
    storage: Path,
    train_size: int,
    stats: dict[str, Any] | None = None,
    holdout: dict[str, int] | None = None,
) -> tuple[Path, dict[str, int]]:
    """Chat-format parquet for (spec, fraction, seed) under `storage`, reused when asked again."""
    spec = resolve_spec(spec)
    pools = build_pools(spec, train_size, seed, holdout)
    stratify = frozenset(t for t in pools if get_task(t).kind == "classification")
    return materialize(spec, pools, fraction, seed, storage, to_messages, stats, stratify)


def read_cocktail_file(path: Path, field: str) -> CocktailSpec:
    """A cocktail YAML; components named by task YAML path are read relative to it."""
    from raysys.config import cocktail_paths, read_yaml_file
    from raysys.data.cocktail import parse_spec
    from raysys.errors import UserError

    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"{field}: {path} not found; point it at a cocktail YAML")
    data = read_yaml_file(path) or {}
    return parse_spec(cocktail_paths(data, path.resolve().parent))
