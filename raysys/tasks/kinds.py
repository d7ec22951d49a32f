"""One class per task kind: how its answers are read, compared and scored.

A task is data (name, labels, prompt, splits); its kind supplies the behaviour, so
`Task`, the loaders, the evaluation and the analysis ask the kind object instead of
branching on the kind's name. A new kind is one subclass here, added to `KINDS`.

Per kind:
- `extract_post(task, answer)`: what strict extraction does with the text the answer
  regex captured (after the last `Answer:`), e.g. lower-casing a label;
- `lenient(task, text)`: the reading when the strict form is absent (classification:
  FinBen's first label found in the lowercased output; numeric: the last number;
  NER: entity pairs anywhere; free text: the last non-empty line);
- `agrees(task, pred, gold)`: one extracted answer against one gold or voted answer;
- `score(task, golds, preds, inputs)`: the kind's metrics on extracted answers;
- `read_gold(labels, gold, written)`: a user file's gold as the kind scores it;
- `row_counts` / `row_value`: the main metric as a sum of per-row counts (analysis).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, ClassVar, Protocol

from raysys.tasks import metrics
from raysys.tasks.answers import (
    ANSWER_LINE_RE,
    MISSING,
    answer_regex,
    format_entities,
    last_line,
    last_number,
    normalize_number,
    normalize_text,
    numbers_match,
    parse_entities,
)

if TYPE_CHECKING:
    import numpy as np

Labels = tuple[str, ...]


class TaskLike(Protocol):
    """What a kind reads of its task (`raysys.tasks.base.Task`; not imported, since that
    module holds a kind object: base -> kinds, never back)."""

    @property
    def name(self) -> str: ...

    @property
    def labels(self) -> Labels: ...


class GoldError(ValueError):
    """A gold in a user's file that the kind cannot score; `reason` is its short name."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _unknown_label(value: str, labels: Labels) -> GoldError:
    return GoldError(
        "unknown label",
        f"label {value!r} is not one of {list(labels)}; add it to labels or map it with label_map",
    )


class Kind(ABC):
    """What every kind shares; subclasses override what differs."""

    name: ClassVar[str]
    main_metric: ClassVar[str]
    # Where the lenient readings' metrics go in a score: `finben_macro_f1`, ...
    lenient_prefix: ClassVar[str] = "flexible_"
    min_labels: ClassVar[int] = 0

    def answer_re(self, labels: Labels) -> re.Pattern[str]:
        """The default strict reading: a known label right after `Answer:`, else the line."""
        return answer_regex(labels) if labels else ANSWER_LINE_RE

    def extract_post(self, task: TaskLike, answer: str) -> str:
        return answer

    @abstractmethod
    def lenient(self, task: TaskLike, text: str) -> str: ...

    @abstractmethod
    def agrees(self, task: TaskLike, pred: str, gold: str) -> bool:
        """Called with a real prediction and gold (neither missing nor None)."""

    @abstractmethod
    def score(
        self, task: TaskLike, golds: list[str], preds: list[str], inputs: list[str] | None
    ) -> dict[str, float]:
        """The kind's metrics (with `missing_rate`) on extracted answers."""

    def read_gold(self, labels: Labels, gold: str, written: str) -> str:
        """`gold` after label_map; `written` as the file has it (for messages)."""
        return gold

    def labels_from_golds(self, golds: Sequence[str]) -> Labels:
        """The label set as far as some golds tell (a task defined on another machine)."""
        return ()

    def row_correct(self, labels: Labels, golds: Sequence[str], preds: Sequence[str]) -> list[bool]:
        """Per-row correctness as the kind's exact-match metric judges it (missing is wrong)."""
        return [p == g for g, p in zip(golds, preds, strict=True)]

    def row_counts(
        self,
        metric: str,
        labels: Labels,
        golds: Sequence[str],
        preds: Sequence[str],
        inputs: Sequence[str] | None,
    ) -> np.ndarray:
        """(rows, m) counts; `row_value(metric, counts.sum(0))` is `metric` on these rows."""
        return metrics.correct_counts(self.row_correct(labels, golds, preds))

    def row_value(self, metric: str, sums: np.ndarray) -> np.ndarray:
        """`metric` from summed counts: (..., m) -> (...)."""
        return metrics.ratio(sums[..., 0], sums[..., 1])


class Classification(Kind):
    name = "classification"
    main_metric = "macro_f1"
    lenient_prefix = "finben_"
    min_labels = 2

    def extract_post(self, task: TaskLike, answer: str) -> str:
        return answer.lower()

    def lenient(self, task: TaskLike, text: str) -> str:
        """FinBen's reading: the label found earliest in the lowercased output."""
        low = text.lower()
        hits = [(low.find(lab.lower()), lab) for lab in task.labels if lab.lower() in low]
        return min(hits)[1] if hits else MISSING

    def agrees(self, task: TaskLike, pred: str, gold: str) -> bool:
        return pred.lower() == str(gold).lower()

    def score(
        self, task: TaskLike, golds: list[str], preds: list[str], inputs: list[str] | None
    ) -> dict[str, float]:
        return metrics.classification_metrics(golds, preds, task.labels)

    def read_gold(self, labels: Labels, gold: str, written: str) -> str:
        canonical = {lab.casefold(): lab for lab in labels}
        if gold.casefold() not in canonical:
            raise _unknown_label(written, labels)
        return canonical[gold.casefold()]

    def labels_from_golds(self, golds: Sequence[str]) -> Labels:
        return tuple(sorted({str(g) for g in golds}))

    def row_counts(
        self,
        metric: str,
        labels: Labels,
        golds: Sequence[str],
        preds: Sequence[str],
        inputs: Sequence[str] | None,
    ) -> np.ndarray:
        if metric == "macro_f1":
            return metrics.label_counts(golds, preds, labels)
        return super().row_counts(metric, labels, golds, preds, inputs)

    def row_value(self, metric: str, sums: np.ndarray) -> np.ndarray:
        if metric == "macro_f1":
            return metrics.f1_of(sums).mean(axis=-1)
        return super().row_value(metric, sums)


class Ner(Kind):
    name = "ner"
    main_metric = "entity_f1"

    def lenient(self, task: TaskLike, text: str) -> str:
        ents = parse_entities(text)
        return format_entities(ents) if ents else MISSING

    def agrees(self, task: TaskLike, pred: str, gold: str) -> bool:
        norm = {(t, s.lower()) for t, s in parse_entities(str(gold))}
        return norm == {(t, s.lower()) for t, s in parse_entities(pred)}

    def score(
        self, task: TaskLike, golds: list[str], preds: list[str], inputs: list[str] | None
    ) -> dict[str, float]:
        if inputs is None:
            raise ValueError(f"task {task.name}: NER scoring needs the input sentences")
        return metrics.ner_metrics(golds, preds, inputs)

    def row_counts(
        self,
        metric: str,
        labels: Labels,
        golds: Sequence[str],
        preds: Sequence[str],
        inputs: Sequence[str] | None,
    ) -> np.ndarray:
        if metric != "entity_f1":
            return super().row_counts(metric, labels, golds, preds, inputs)
        if inputs is None:
            raise ValueError("entity F1 needs the input sentences")
        return metrics.entity_counts(golds, preds, inputs)

    def row_value(self, metric: str, sums: np.ndarray) -> np.ndarray:
        if metric == "entity_f1":
            return metrics.f1_of(sums)[..., 0]
        return super().row_value(metric, sums)


class Numeric(Kind):
    name = "numeric"
    main_metric = "exact_match"

    def lenient(self, task: TaskLike, text: str) -> str:
        return last_number(text)

    def agrees(self, task: TaskLike, pred: str, gold: str) -> bool:
        g = normalize_number(str(gold))
        return g is not None and numbers_match(normalize_number(pred), g)

    def score(
        self, task: TaskLike, golds: list[str], preds: list[str], inputs: list[str] | None
    ) -> dict[str, float]:
        return metrics.numeric_metrics(golds, preds)

    def read_gold(self, labels: Labels, gold: str, written: str) -> str:
        if normalize_number(gold) is None:
            # Refused here: at scoring time it would fail after the whole engine pass.
            raise GoldError(
                "non-numeric label",
                f"gold {gold!r} is not a number; fix the row, or set kind: freetext to "
                "compare answers as text",
            )
        return gold

    def row_correct(self, labels: Labels, golds: Sequence[str], preds: Sequence[str]) -> list[bool]:
        return metrics.numeric_hits(golds, preds)


class Freetext(Kind):
    name = "freetext"
    main_metric = "exact_match"

    def lenient(self, task: TaskLike, text: str) -> str:
        return last_line(text)

    def agrees(self, task: TaskLike, pred: str, gold: str) -> bool:
        return normalize_text(pred) == normalize_text(str(gold))

    def score(
        self, task: TaskLike, golds: list[str], preds: list[str], inputs: list[str] | None
    ) -> dict[str, float]:
        return metrics.freetext_metrics(golds, preds)

    def row_correct(self, labels: Labels, golds: Sequence[str], preds: Sequence[str]) -> list[bool]:
        return metrics.freetext_hits(golds, preds)


class Multilabel(Kind):
    """A set of labels per row: `Answer: inflation, rates` (commas, semicolons or "and").

    Answers and golds are written canonically: the labels as spelled in `labels`, in
    that order, joined by ", ", so equal sets are equal strings (and vote together).
    """

    name = "multilabel"
    main_metric = "micro_f1"
    min_labels = 2

    def answer_re(self, labels: Labels) -> re.Pattern[str]:
        return ANSWER_LINE_RE  # the whole line: the set is parsed by extract_post

    def extract_post(self, task: TaskLike, answer: str) -> str:
        return self._canonical(task.labels, self.label_set(task.labels, answer))

    def lenient(self, task: TaskLike, text: str) -> str:
        """Every label mentioned anywhere (whole words)."""
        return self._canonical(task.labels, self.label_set(task.labels, text)) or MISSING

    def agrees(self, task: TaskLike, pred: str, gold: str) -> bool:
        return self.label_set(task.labels, pred) == self.label_set(task.labels, str(gold))

    def score(
        self, task: TaskLike, golds: list[str], preds: list[str], inputs: list[str] | None
    ) -> dict[str, float]:
        from sklearn.metrics import f1_score

        metrics.check_rows(golds, preds)
        y_true, y_pred = self._binarized(task.labels, golds, preds)
        hits = self.row_correct(task.labels, golds, preds)
        return {
            "micro_f1": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
            "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
            "exact_match": sum(hits) / len(hits),
            "missing_rate": metrics.missing_rate(preds),
        }

    def read_gold(self, labels: Labels, gold: str, written: str) -> str:
        """Comma- or semicolon-separated labels, each checked as a classification gold."""
        canonical = {lab.casefold(): lab for lab in labels}
        items = [s.strip() for s in re.split(r"[,;]", gold) if s.strip()]
        if unknown := [s for s in items if s.casefold() not in canonical]:
            raise _unknown_label(unknown[0], labels)
        if not items:
            raise GoldError("empty label", f"no label in {written!r}")
        return self._canonical(labels, {canonical[s.casefold()] for s in items})

    def labels_from_golds(self, golds: Sequence[str]) -> Labels:
        items = {s.strip() for g in golds for s in re.split(r"[,;]", str(g))}
        return tuple(sorted(items - {""}))

    def row_correct(self, labels: Labels, golds: Sequence[str], preds: Sequence[str]) -> list[bool]:
        return [
            p != MISSING and self.label_set(labels, str(p)) == self.label_set(labels, str(g))
            for g, p in zip(golds, preds, strict=True)
        ]

    def row_counts(
        self,
        metric: str,
        labels: Labels,
        golds: Sequence[str],
        preds: Sequence[str],
        inputs: Sequence[str] | None,
    ) -> np.ndarray:
        if metric not in ("micro_f1", "macro_f1"):
            return super().row_counts(metric, labels, golds, preds, inputs)
        y_true, y_pred = self._binarized(labels, golds, preds)
        return metrics.membership_counts(y_true.astype(bool), y_pred.astype(bool))

    def row_value(self, metric: str, sums: np.ndarray) -> np.ndarray:
        if metric == "macro_f1":
            return metrics.f1_of(sums).mean(axis=-1)
        if metric == "micro_f1":  # counts pooled over labels before the F1
            tp, fp, fn = (sums[..., i::3].sum(axis=-1) for i in range(3))
            return metrics.ratio(2 * tp, 2 * tp + fp + fn)
        return super().row_value(metric, sums)

    @staticmethod
    def label_set(labels: Labels, text: str) -> frozenset[str]:
        """The labels (as spelled in `labels`) named in `text`, case-insensitive, whole words."""
        if not labels:  # an empty alternation would match everywhere
            return frozenset()
        canonical = {lab.casefold(): lab for lab in labels}
        return frozenset(canonical[m.casefold()] for m in _labels_re(labels).findall(text))

    @staticmethod
    def _canonical(labels: Labels, found: set[str] | frozenset[str]) -> str:
        return ", ".join(lab for lab in labels if lab in found)

    def _binarized(
        self, labels: Labels, golds: Sequence[str], preds: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(rows, labels) 0/1 matrices; a missing answer is the empty set (costs recall)."""
        from sklearn.preprocessing import MultiLabelBinarizer

        binarizer = MultiLabelBinarizer(classes=list(labels))
        y_true = binarizer.fit_transform([self.label_set(labels, str(g)) for g in golds])
        found = [frozenset() if p == MISSING else self.label_set(labels, str(p)) for p in preds]
        return y_true, binarizer.transform(found)


@lru_cache(maxsize=64)
def _labels_re(labels: Labels) -> re.Pattern[str]:
    # Longest first, so "interest rates" wins over "rates"; lookarounds rather than \b,
    # which fails next to a label's own punctuation ("c++", "M&A.").
    alts = "|".join(re.escape(lab) for lab in sorted(labels, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alts})(?!\w)", re.IGNORECASE)


KINDS: dict[str, Kind] = {
    k.name: k for k in (Classification(), Ner(), Numeric(), Freetext(), Multilabel())
}
