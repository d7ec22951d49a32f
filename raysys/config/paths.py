"""Config fields that name input files, made absolute when a config loads.

Relative paths are read relative to the YAML file that names them (a command-line
override: the working directory); `run.storage_path` stays relative to the working
directory: it is where outputs go. Trials and workers run in other folders and on other
machines, so nothing may depend on where the command was started.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_TASK, _TASKS, _FILE, _FILES, _SYNTH, _COCKTAILS = range(6)
PATH_FIELDS: dict[str, int] = {
    "task.name": _TASK,
    "data.path": _FILE,
    "data.cocktail": _FILE,
    "train.init_adapter": _FILE,
    "eval.tasks": _TASKS,
    "eval.adapters": _FILES,
    "synth.task": _TASK,
    "synth.inputs": _FILE,
    "synth.adapter": _FILE,
    "sweep.tasks": _TASKS,
    "sweep.eval_tasks": _TASKS,
    "sweep.cocktails": _COCKTAILS,
    "pipeline.tasks": _TASKS,
    "pipeline.eval_tasks": _TASKS,
    "pipeline.synth_tasks": _SYNTH,
}


def resolve_paths(data: dict[str, Any], base: Path) -> None:
    """Make every input path in a config mapping absolute against `base`, in place."""
    for key in PATH_FIELDS:
        section, _, field = key.partition(".")
        node = data.get(section)
        if isinstance(node, dict) and field in node:
            node[field] = resolved(key, node[field], base)


def resolved(key: str, value: Any, base: Path) -> Any:
    """`value` of the field `key` (or of a section holding path fields) with its paths
    made absolute; anything that is not a relative path is returned as it is."""
    if isinstance(value, dict) and key in {k.partition(".")[0] for k in PATH_FIELDS}:
        return {k: resolved(f"{key}.{k}", v, base) for k, v in value.items()}
    how = PATH_FIELDS.get(key)
    if how is None or value is None:
        return value
    if how == _TASK:
        return task_path(value, base)
    if how == _FILE:
        return file_path(value, base)
    if how == _FILES and isinstance(value, dict):
        return {k: file_path(v, base) for k, v in value.items()}
    if how in (_TASKS, _SYNTH, _COCKTAILS) and isinstance(value, list):
        return [_item(how, v, base) for v in value]
    return value


def _item(how: int, value: Any, base: Path) -> Any:
    if isinstance(value, str):  # a cocktail file or a generator name; a task path or name
        return task_path(value, base)
    if how == _SYNTH and isinstance(value, dict):
        out = dict(value)
        out["task"] = task_path(out.get("task"), base)
        out["pool"] = file_path(out.get("pool"), base)
        return out
    if how == _COCKTAILS and isinstance(value, dict):
        return cocktail_paths(value, base)
    return value


def cocktail_paths(spec: Any, base: Path) -> Any:
    """A cocktail mapping whose component tasks named by YAML path are made absolute."""
    if not isinstance(spec, dict) or not isinstance(spec.get("components"), list):
        return spec
    comps = [
        {**c, "task": task_path(c.get("task"), base)} if isinstance(c, dict) else c
        for c in spec["components"]
    ]
    return {**spec, "components": comps}


def task_path(value: Any, base: Path) -> Any:
    """A task reference: YAML paths (`*.yaml`) are made absolute, names stay names."""
    if isinstance(value, str) and value.endswith((".yaml", ".yml")):
        return file_path(value, base)
    return value


def file_path(value: Any, base: Path) -> Any:
    """A relative local path made absolute against `base`; URIs and absolute paths stay."""
    if not isinstance(value, str) or not value or re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value):
        return value
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())
