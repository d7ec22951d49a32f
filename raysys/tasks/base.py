"""What every task provides: rows, a prompt, answer extraction and a scorer.

A task is data (name, kind, labels, prompt, splits) plus the behaviour its kind
implies (`raysys.tasks.kinds`), so a task defined in YAML behaves exactly like a
built-in one.

Extraction, for every kind:
- strict: the text after the *last* `Answer:` (a chain of thought may restate an
  earlier guess before its final line), as the kind reads it; nothing there is a
  *missing* answer;
- flexible: what a lenient reader would take when the strict form is absent (see
  `Kind.lenient`).
"""

from __future__ import annotations

import random
import re
import zlib
from dataclasses import dataclass, field
from typing import Any

from raysys.tasks.answers import MISSING
from raysys.tasks.kinds import KINDS, Kind

__all__ = ["MISSING", "SPLITS", "BoundedPattern", "Task", "prompt_problem", "split_rng"]

SPLITS = ("train", "validation", "test")

# A user's answer_regex runs on every generated output, on the driver: it gets this long
# per output (the `regex` module's timeout), then the evaluation stops with one line.
ANSWER_REGEX_TIMEOUT_S = 0.5


class BoundedPattern:
    """A user's answer regex compiled by the `regex` module, matched with a time bound:
    a pattern that backtracks for seconds on one output fails loudly instead of hanging."""

    def __init__(self, pattern: str, timeout: float = ANSWER_REGEX_TIMEOUT_S) -> None:
        import regex

        self.pattern, self.timeout = pattern, timeout
        self._re = regex.compile(pattern, regex.IGNORECASE | regex.VERSION0)

    @property
    def groups(self) -> int:
        return self._re.groups

    def findall(self, text: str) -> list[Any]:
        from raysys.errors import UserError, clip

        try:
            return self._re.findall(text, timeout=self.timeout)
        except TimeoutError:
            raise UserError(
                f"answer_regex {clip(self.pattern, 80)} took over {self.timeout:g} s on one "
                f"output of {len(text):,} characters; simplify it (one repeat, no nested or "
                r"adjacent repeats), e.g. 'Answer:\s*(\w+)'"
            ) from None


def prompt_problem(template: str) -> str | None:
    """Why a prompt template cannot be filled with a row (`{input}` is its one field, with
    no format spec: `{label}` would fail inside the engine, `{input:>99999999}` would
    allocate gigabytes), or None."""
    import string

    try:
        fields = [f for f in string.Formatter().parse(template) if f[1] is not None]
    except ValueError as e:
        return f"prompt: {e}; write a literal brace as {{{{ or }}}}"
    for _, name, spec, conversion in fields:
        if name != "input":
            return (
                f"prompt: unknown field {{{name[:40]}}}; only {{input}} is filled in (write a "
                "literal brace as {{ or }})"
            )
        if spec or conversion:
            return "prompt: {input} takes no format spec or conversion; write it as {input}"
    if not fields:
        return "prompt must contain {input} where the row's text goes"
    return None


def split_rng(seed: int, task: str, split: str) -> random.Random:
    """A generator stream per (seed, task, split), stable across Python runs and machines."""
    return random.Random(zlib.crc32(f"{seed}:{task}:{split}".encode()))


@dataclass(frozen=True)
class Task:
    name: str
    kind: str
    prompt_template: str
    labels: tuple[str, ...] = ()
    splits: tuple[str, ...] = SPLITS
    description: str = ""
    answer_re: re.Pattern[str] | BoundedPattern | None = field(default=None, compare=False)
    # The kind's behaviour, looked up once; `kind` stays the name (stored, tabulated).
    behaviour: Kind = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        behaviour = KINDS.get(self.kind)
        if behaviour is None:
            raise ValueError(
                f"task {self.name}: kind must be one of {tuple(KINDS)}, got {self.kind!r}"
            )
        if len(self.labels) < behaviour.min_labels:
            raise ValueError(
                f"task {self.name}: a {self.kind} task needs >= {behaviour.min_labels} labels"
            )
        if problem := prompt_problem(self.prompt_template):
            raise ValueError(f"task {self.name}: {problem}")
        object.__setattr__(self, "behaviour", behaviour)
        if self.answer_re is None:
            object.__setattr__(self, "answer_re", behaviour.answer_re(self.labels))

    @property
    def main_metric(self) -> str:
        return self.behaviour.main_metric

    def messages(self, row: dict[str, Any]) -> list[dict[str, str]]:
        return [{"role": "user", "content": self.prompt_template.format(input=row["input"])}]

    def target(self, row: dict[str, Any]) -> str:
        """The assistant turn SFT trains on: the row's reasoning (a task with a
        `columns.reasoning` column), then the answer line."""
        if reasoning := (row.get("reasoning") or "").strip():
            return f"{reasoning}\n{self.answer_line(row)}"
        return self.answer_line(row)

    def answer_line(self, row: dict[str, Any]) -> str:
        """The shortest correct assistant turn: the answer line alone."""
        return f"Answer: {row['gold']}"

    def extract(self, text: str) -> str:
        found = self.answer_re.findall(text or "")
        if not found:
            return MISSING
        ans = found[-1].strip().strip("*`\"' ").removesuffix(".").strip()
        return self.behaviour.extract_post(self, ans) or MISSING

    def extract_flexible(self, text: str) -> str:
        strict = self.extract(text)
        return strict if strict != MISSING else self.extract_lenient(text)

    def extract_lenient(self, text: str) -> str:
        """FinBen's reading for classification; the kind's loosest reading otherwise."""
        return self.behaviour.lenient(self, text or "")

    def agrees(self, pred: str, gold: Any) -> bool:
        """One extracted answer against one gold (or voted) answer, as the metrics judge it."""
        if pred == MISSING or gold is None:
            return False
        return self.behaviour.agrees(self, pred, gold)

    def score(
        self, golds: list[str], outputs: list[str], inputs: list[str] | None = None
    ) -> dict[str, float]:
        """Strict metrics, the flexible/FinBen ones prefixed, and `main`."""
        kind = self.behaviour
        strict = [self.extract(o) for o in outputs]
        loose = [self.extract_lenient(o) for o in outputs]
        out = kind.score(self, golds, strict, inputs)
        loose_scores = kind.score(self, golds, loose, inputs)
        out.update({kind.lenient_prefix + k: v for k, v in loose_scores.items()})
        out["main"] = out[self.main_metric]
        return out
