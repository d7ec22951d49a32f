"""What every task provides: rows, a prompt, answer extraction and a scorer."""

from __future__ import annotations

import random
import re
import zlib
from dataclasses import dataclass
from typing import Any

SPLITS = ("train", "validation", "test")
MISSING = "missing"


def split_rng(seed: int, task: str, split: str) -> random.Random:
    """A generator stream per (seed, task, split), stable across Python runs and machines."""
    return random.Random(zlib.crc32(f"{seed}:{task}:{split}".encode()))


@dataclass(frozen=True)
class ClassificationTask:
    """A task whose answer is one label from a fixed set.

    `answer_re` is the strict extraction: the *last* `Answer: <label>` in the
    output wins (a chain of thought may restate an earlier guess before its
    final line). `extract_lenient` is FinBen's convention: the first label
    found anywhere in the lowercased output.
    """

    name: str
    labels: tuple[str, ...]
    prompt_template: str
    answer_re: re.Pattern[str]
    description: str = ""

    def messages(self, row: dict[str, Any]) -> list[dict[str, str]]:
        return [{"role": "user", "content": self.prompt_template.format(input=row["input"])}]

    def target(self, row: dict[str, Any]) -> str:
        return f"Answer: {row['gold']}"

    def extract(self, text: str) -> str:
        found = self.answer_re.findall(text or "")
        return found[-1].lower() if found else MISSING

    def extract_lenient(self, text: str) -> str:
        low = (text or "").lower()
        hits = [(low.find(lab), lab) for lab in self.labels if lab in low]
        return min(hits)[1] if hits else MISSING

    def score(self, golds: list[str], outputs: list[str]) -> dict[str, float]:
        from raysys.evaluate.metrics import classification_metrics

        strict = [self.extract(o) for o in outputs]
        lenient = [self.extract_lenient(o) for o in outputs]
        out = classification_metrics(golds, strict, self.labels)
        finben = classification_metrics(golds, lenient, self.labels)
        out.update({f"finben_{k}": v for k, v in finben.items()})
        return out


def answer_regex(labels: tuple[str, ...]) -> re.Pattern[str]:
    """`Answer: <label>` with optional markdown emphasis, case-insensitive, whole word."""
    alts = "|".join(re.escape(lab) for lab in sorted(labels, key=len, reverse=True))
    return re.compile(rf"answer\s*[*_]*\s*[:：][\s*_`\"']*({alts})\b", re.IGNORECASE)
