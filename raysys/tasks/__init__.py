"""Task registry: name -> (task definition, rows).

Built in: the generated finance suite in `raysys.tasks.gen` (news sentiment, price
direction, central-bank stance, NER, numeric QA over tables, causal detection) and
two regularisers (general instructions, arithmetic); plus tasks from YAML files over
users' own data (`raysys.tasks.rows`), and tasks a run materialised into its run
directory (`raysys.tasks.store`), which is what trials and workers read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raysys.errors import UserError
from raysys.tasks.base import Task
from raysys.tasks.gen import GENERATORS

Row = dict[str, Any]
Generator = Callable[[dict[str, int], int], dict[str, list[Row]]]


@dataclass(frozen=True)
class Entry:
    task: Task
    generate: Generator
    source: Any = None  # FileTask for YAML tasks, the materialised folder for stored ones
    pool: bool = False  # has a `pool` split of unlabeled inputs


def _builtin() -> dict[str, Entry]:
    reg: dict[str, Entry] = {}
    for name, mod in GENERATORS.items():
        summary = (mod.__doc__ or name).strip().splitlines()[0]
        task = Task(
            name=name,
            kind=mod.KIND,
            prompt_template=mod.PROMPT,
            labels=tuple(mod.LABELS),
            splits=tuple(mod.SPLITS),
            description=summary,
        )
        reg[name] = Entry(task, mod.generate_splits)
    return reg


_REGISTRY = _builtin()
REGULARISERS = ("general_instruct", "arith_math")


def is_task_file(name: str) -> bool:
    return name.endswith((".yaml", ".yml"))


def task_names() -> list[str]:
    return sorted(n for n in _REGISTRY if not is_task_file(n))


def get_task(name: str) -> Task:
    """A registered task, or one defined in a YAML file (`name` ends in .yaml/.yml)."""
    return entry(name).task


def entry(name: str) -> Entry:
    if name in _REGISTRY:
        return _REGISTRY[name]
    if is_task_file(name):
        register_file(name)
        return _REGISTRY[name]
    raise UserError(
        f"unknown task {name!r}; choose one of {', '.join(task_names())}, "
        "or pass the path of a task YAML file"
    )


def register_file(path: str) -> Task:
    """Load a YAML task definition and register it under its own name (and its path)."""
    from raysys.tasks.loaders import POOL, load_task_spec
    from raysys.tasks.rows import FileTask

    spec = load_task_spec(path)
    base_dir = Path(path).resolve().parent
    task = spec.to_task(base_dir)
    if spec.name in _REGISTRY and _REGISTRY[spec.name].task != task:
        raise UserError(f"{path}: name {spec.name!r} is taken by another task; rename it")
    source = FileTask(spec, base_dir)
    found = Entry(task, source.rows, source, pool=POOL in spec.split_names(base_dir))
    _REGISTRY[spec.name] = _REGISTRY[path] = found
    return task


def scoped(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run `fn` with registrations it makes (a run's materialised rows) undone afterwards,
    so one run's rows never stand in for a task in the next run of the same process."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        saved = dict(_REGISTRY)
        try:
            return fn(*args, **kwargs)
        finally:
            _REGISTRY.clear()
            _REGISTRY.update(saved)

    return wrapper


def register(entry_: Entry, *aliases: str) -> None:
    """Put a task in the registry under its name and any aliases (e.g. its YAML path)."""
    for key in (entry_.task.name, *aliases):
        _REGISTRY[key] = entry_


def build_splits(name: str, sizes: dict[str, int], seed: int) -> dict[str, list[Row]]:
    """Rows for the requested splits; asking for a split the task lacks is an error."""
    found = entry(name)
    task = found.task
    have = (*task.splits, "pool") if found.pool else task.splits
    missing = [s for s in sizes if s not in have]
    if missing:
        raise UserError(
            f"task {task.name} has only the split(s) {', '.join(have)}; it has no "
            f"{', '.join(missing)} (a test-only task can be evaluated or labeled, not trained on)"
        )
    return found.generate(sizes, seed)


def held_out_rows(
    refs: list[str], holdout: dict[str, int], seed: int, split: str, required: bool = False
) -> dict[str, tuple[Task, list[Row]]]:
    """Each task's `split` rows at the run's held-out sizes, keyed by task name: the same
    rows for every model a sweep or a pipeline scores (a task without that split is
    left out, or with `required` refused)."""
    out = {}
    for ref in refs:
        task = get_task(ref)
        sizes = {s: n for s, n in holdout.items() if s in task.splits}
        if split not in sizes:
            if required:
                raise UserError(f"{ref} has no {split} split to evaluate on; add one")
            continue
        out[task.name] = (task, build_splits(ref, sizes, seed)[split])
    return out
