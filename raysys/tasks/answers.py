"""Lenient answer readings per task kind, and the parsers the scorers share."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from raysys.tasks.gen.fin_ner import format_entities, parse_entities
from raysys.tasks.gen.numeric_qa import NUMBER_RE, normalize_number

if TYPE_CHECKING:
    from raysys.tasks.base import Task

__all__ = ["lenient", "normalize_number", "parse_entities", "format_entities", "normalize_text"]


def lenient(task: Task, text: str) -> str:
    from raysys.tasks.base import MISSING

    if task.kind == "classification":
        low = text.lower()
        hits = [(low.find(lab.lower()), lab) for lab in task.labels if lab.lower() in low]
        return min(hits)[1] if hits else MISSING
    if task.kind == "numeric":
        # One match alive at a time, not a list of all: 25k live matches set off a full
        # garbage collection (~100 ms in a big process) inside this call.
        last = None
        for m in NUMBER_RE.finditer(text):
            last = m
        # From the last number to the end of its line, so "(3.2)" keeps its sign.
        return text[last.start() :].split("\n")[0].strip() if last else MISSING
    if task.kind == "ner":
        ents = parse_entities(text)
        return format_entities(ents) if ents else MISSING
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else MISSING


def normalize_text(s: str) -> str:
    """Case, surrounding quotes and inner whitespace do not make a free-text answer wrong."""
    return re.sub(r"\s+", " ", s.strip().strip("\"'`").strip()).casefold()
