"""Task registry: name -> (task definition, split generator).

Built in: the generated finance suite in `raysys.tasks.gen` (news sentiment, price
direction, central-bank stance, NER, numeric QA over tables, causal detection) and
two regularisers (general instructions, arithmetic); plus tasks from YAML files.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from raysys.tasks.base import Task
from raysys.tasks.gen import GENERATORS

Generator = Callable[[dict[str, int], int], dict[str, list[dict[str, Any]]]]


def _builtin() -> dict[str, tuple[Task, Generator]]:
    reg: dict[str, tuple[Task, Generator]] = {}
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
        reg[name] = (task, mod.generate_splits)
    return reg


_REGISTRY = _builtin()
REGULARISERS = ("general_instruct", "arith_math")


def task_names() -> list[str]:
    return sorted(n for n in _REGISTRY if not n.endswith((".yaml", ".yml")))


def get_task(name: str) -> Task:
    """A registered task, or one defined in a YAML file (`name` ends in .yaml/.yml)."""
    if name.endswith((".yaml", ".yml")):
        return register_file(name)
    if name not in _REGISTRY:
        from raysys.errors import UserError

        raise UserError(
            f"unknown task {name!r}; choose one of {', '.join(task_names())}, "
            "or pass the path of a task YAML file"
        )
    return _REGISTRY[name][0]


def register_file(path: str) -> Task:
    """Load a YAML task definition and register it under its own name (and its path)."""
    from pathlib import Path

    from raysys.tasks.loaders import load_rows, load_task_spec

    spec = load_task_spec(path)
    base_dir = Path(path).resolve().parent
    task = spec.to_task()
    if spec.name in _REGISTRY and _REGISTRY[spec.name][0] != task:
        from raysys.errors import UserError

        raise UserError(f"{path}: name {spec.name!r} is taken by another task; rename it")

    def generate(sizes: dict[str, int], seed: int) -> dict[str, list[dict[str, Any]]]:
        return load_rows(spec, base_dir, sizes)  # file order; the seed applies when mixing

    _REGISTRY[spec.name] = _REGISTRY[path] = (task, generate)
    return task


def build_splits(name: str, sizes: dict[str, int], seed: int) -> dict[str, list[dict[str, Any]]]:
    """Rows for the requested splits; asking for a split the task lacks is an error."""
    task = get_task(name)
    name = name if name in _REGISTRY else task.name
    missing = [s for s in sizes if s not in task.splits]
    if missing:
        from raysys.errors import UserError

        raise UserError(
            f"task {name} has only the split(s) {', '.join(task.splits)}; it has no "
            f"{', '.join(missing)} (a test-only task can be evaluated or labeled, not trained on)"
        )
    return _REGISTRY[name][1](sizes, seed)
