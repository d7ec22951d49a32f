"""Cocktail specs: which tasks are mixed with what weights, and the regulariser shares;
validated into one-line errors naming the field, and hashed into the key of the data
they make (`raysys.data.cocktail` mixes them)."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from raysys.config import Section, share_problem
from raysys.errors import UserError

GENERAL_TASK = "general_instruct"
MATH_TASK = "arith_math"
REGULARISERS = (GENERAL_TASK, MATH_TASK)


def _weight_problem(w: float) -> str | None:
    if not (math.isfinite(w) and w >= 0):  # `not >=` also catches NaN
        return f"weight must be a finite number >= 0, got {w}; use 0 to leave the task out"
    return None


class CocktailComponent(Section):
    task: str = Field(min_length=1)
    weight: float = 1.0

    @field_validator("weight")
    @classmethod
    def _weight_ok(cls, v: float) -> float:
        if problem := _weight_problem(v):
            raise ValueError(problem)
        return v


class CocktailSpec(Section):
    """A mixture of tasks; `general`/`math` are shares of the *final* mixture."""

    name: str | None = None
    components: list[CocktailComponent]
    general: float = 0.0
    math: float = 0.0
    allow_oversample: bool = False
    size: int | None = Field(None, ge=1, description="task rows before regularisers")

    @field_validator("general", "math")
    @classmethod
    def _share_ok(cls, v: float) -> float:
        if problem := share_problem(v):
            raise ValueError(problem)
        return v

    @model_validator(mode="after")
    def _shape_ok(self) -> CocktailSpec:
        # Cross-field checks; the message names its own field because pydantic
        # reports a model-level error without a location.
        if problem := _shape_problem(self):
            raise ValueError(f"`cocktail.{problem[0]}`: {problem[1]}")
        return self


def _shape_problem(spec: CocktailSpec) -> tuple[str, str] | None:
    """The first problem of a spec that needs no task list, as (field, message)."""
    comps = spec.components
    if not comps:
        return "components", "empty; list at least one task with a weight > 0"
    for i, c in enumerate(comps):
        if problem := _weight_problem(c.weight):
            return f"components[{i}].weight", problem
    if all(c.weight == 0 for c in comps):
        return "components", "all weights are 0; give at least one task a weight > 0"
    seen: set[str] = set()
    for i, c in enumerate(comps):
        if c.task in seen:
            return f"components[{i}].task", f"duplicate task {c.task!r}; list each task once"
        seen.add(c.task)
    for field in ("general", "math"):
        if problem := share_problem(getattr(spec, field)):
            return field, problem
    if spec.general + spec.math >= 1:
        total = spec.general + spec.math
        return "general", f"general + math must be < 1, got {total}; lower one of them"
    return None


def _loc(loc: Iterable[Any]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


def parse_spec(data: dict[str, Any]) -> CocktailSpec:
    """Validate a mapping into a spec; errors become one-line `UserError`s."""
    try:
        return CocktailSpec.model_validate(data)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        msg = str(err["msg"]).removeprefix("Value error, ")
        if not err["loc"]:  # model-level: the message names its field already
            raise UserError(msg) from None
        if err["type"] not in ("value_error", "assertion_error"):
            msg = f"{msg} (got {err.get('input')!r})"
        raise UserError(f"`cocktail.{_loc(err['loc'])}`: {msg}") from None


def spec_hash(
    spec: CocktailSpec, fraction: float, seed: int, extra: dict[str, Any] | None = None
) -> str:
    """First 16 hex chars of sha256 over canonical JSON of everything that shapes the data."""
    dumped = spec.model_dump(mode="json")
    # Component order does not change the mixture, so it must not change the key.
    dumped["components"] = sorted(dumped["components"], key=lambda c: c["task"])
    payload = {"spec": dumped, "fraction": float(fraction), "seed": int(seed)}
    payload["extra"] = extra or {}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def validate_spec(spec: CocktailSpec, available: dict[str, int], test_only: set[str]) -> None:
    """Raise a one-line `UserError` naming the field and the fix.

    `available` maps task -> train rows; `test_only` names tasks with only a test split.
    """
    if problem := _shape_problem(spec):
        raise UserError(f"`cocktail.{problem[0]}`: {problem[1]}")
    choices = sorted(t for t in available if t not in test_only and t not in REGULARISERS)
    for i, c in enumerate(spec.components):
        if problem := _task_problem(c, available, test_only, choices):
            raise UserError(f"`cocktail.components[{i}].task`: {problem}")
    for field, task in (("general", GENERAL_TASK), ("math", MATH_TASK)):
        if getattr(spec, field) > 0 and available.get(task, 0) == 0:
            raise UserError(
                f"`cocktail.{field}`: no {task} train rows are available; "
                f"set cocktail.{field}=0 or provide the {task} task"
            )


def _task_problem(
    c: CocktailComponent, available: dict[str, int], test_only: set[str], choices: list[str]
) -> str | None:
    if c.task in REGULARISERS:
        field = "general" if c.task == GENERAL_TASK else "math"
        return f"{c.task} is a regulariser; set its share with cocktail.{field} instead"
    if c.task in test_only:
        return f"{c.task} has only a test split and cannot be used for training"
    if c.task not in available:
        return f"unknown task {c.task!r}; choose one of {', '.join(choices) or '(none)'}"
    if c.weight > 0 and available[c.task] == 0:
        return f"{c.task} has no train rows; give it weight 0 or remove it"
    return None
