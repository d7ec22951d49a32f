"""What every task provides: rows, a prompt, answer extraction and a scorer.

A task is data (name, kind, labels, prompt, splits) plus the behaviour its kind
implies, so a task defined in YAML behaves exactly like a built-in one.

Extraction, for every kind:
- strict: the text after the *last* `Answer:` (a chain of thought may restate an
  earlier guess before its final line); nothing there is a *missing* answer;
- flexible: what a lenient reader would take when the strict form is absent
  (classification: FinBen's first label found in the lowercased output; numeric:
  the last number; NER: entity pairs anywhere; free text: the last non-empty line).
"""

from __future__ import annotations

import random
import re
import zlib
from dataclasses import dataclass, field
from typing import Any

SPLITS = ("train", "validation", "test")
MISSING = "missing"
KINDS = ("classification", "ner", "numeric", "freetext")
MAIN_METRIC = {
    "classification": "macro_f1",
    "ner": "entity_f1",
    "numeric": "exact_match",
    "freetext": "exact_match",
}
# The rest of the line after "Answer:", with markdown emphasis tolerated. Spaces and
# emphasis before the colon are one class: `\s*[*_]*\s*` (the old form) split a run of
# spaces two ways at every length, so "answer" + 20k spaces took ~10 s (quadratic).
ANSWER_LINE_RE = re.compile(r"answer[\s*_]*[:：][ \t*_`\"']*([^\n]*)", re.IGNORECASE)


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


def answer_regex(labels: tuple[str, ...]) -> re.Pattern[str]:
    """`Answer: <label>` with optional markdown emphasis, case-insensitive, whole word."""
    alts = "|".join(re.escape(lab) for lab in sorted(labels, key=len, reverse=True))
    # One class before the colon, as in ANSWER_LINE_RE: linear on long runs of spaces.
    return re.compile(rf"answer[\s*_]*[:：][\s*_`\"']*({alts})\b", re.IGNORECASE)


@dataclass(frozen=True)
class Task:
    name: str
    kind: str
    prompt_template: str
    labels: tuple[str, ...] = ()
    splits: tuple[str, ...] = SPLITS
    description: str = ""
    answer_re: re.Pattern[str] | BoundedPattern | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"task {self.name}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "classification" and len(self.labels) < 2:
            raise ValueError(f"task {self.name}: a classification task needs >= 2 labels")
        if problem := prompt_problem(self.prompt_template):
            raise ValueError(f"task {self.name}: {problem}")
        if self.answer_re is None:
            default = answer_regex(self.labels) if self.labels else ANSWER_LINE_RE
            object.__setattr__(self, "answer_re", default)

    @property
    def main_metric(self) -> str:
        return MAIN_METRIC[self.kind]

    def messages(self, row: dict[str, Any]) -> list[dict[str, str]]:
        return [{"role": "user", "content": self.prompt_template.format(input=row["input"])}]

    def target(self, row: dict[str, Any]) -> str:
        return f"Answer: {row['gold']}"

    def extract(self, text: str) -> str:
        found = self.answer_re.findall(text or "")
        if not found:
            return MISSING
        ans = found[-1].strip().strip("*`\"' ").removesuffix(".").strip()
        if self.kind == "classification":
            ans = ans.lower()
        return ans or MISSING

    def extract_flexible(self, text: str) -> str:
        strict = self.extract(text)
        return strict if strict != MISSING else self.extract_lenient(text)

    def extract_lenient(self, text: str) -> str:
        """FinBen's reading for classification; the kind's loosest reading otherwise."""
        from raysys.tasks import answers

        return answers.lenient(self, text or "")

    def agrees(self, pred: str, gold: Any) -> bool:
        """One extracted answer against one gold (or voted) answer, as the metrics judge it."""
        from raysys.tasks import answers

        if pred == MISSING or gold is None:
            return False
        if self.kind == "classification":
            return pred.lower() == str(gold).lower()
        if self.kind == "numeric":
            from raysys.tasks.gen.numeric_qa import numbers_match

            g = answers.normalize_number(str(gold))
            return g is not None and numbers_match(answers.normalize_number(pred), g)
        if self.kind == "ner":
            from raysys.tasks.gen.fin_ner import parse_entities

            norm = {(t, s.lower()) for t, s in parse_entities(str(gold))}
            return norm == {(t, s.lower()) for t, s in parse_entities(pred)}
        return answers.normalize_text(pred) == answers.normalize_text(str(gold))

    def score(
        self, golds: list[str], outputs: list[str], inputs: list[str] | None = None
    ) -> dict[str, float]:
        """Strict metrics, the flexible/FinBen ones prefixed, and `main`."""
        from raysys.evaluate import metrics

        strict = [self.extract(o) for o in outputs]
        loose = [self.extract_lenient(o) for o in outputs]
        prefix = "finben_" if self.kind == "classification" else "flexible_"
        out = metrics.score_kind(self, golds, strict, inputs)
        out.update(
            {prefix + k: v for k, v in metrics.score_kind(self, golds, loose, inputs).items()}
        )
        out["main"] = out[self.main_metric]
        return out
