"""A task's main metric as a sum of per-row counts, so resampling rows is cheap.

Every main metric we report is a function of counts summed over rows: macro-F1 of the
per-label (tp, fp, fn), entity-F1 of the per-sentence entity (tp, fp, fn), exact match
and accuracy of (correct, rows). Scoring a bootstrap resample or a permutation is then a
sum over an index array, thousands per second, instead of a call into scikit-learn or
seqeval each time; the counts are the task kind's (`Kind.row_counts`, `Kind.row_value`),
and `tests/unit/analysis/test_paired.py` checks the values against the kind's scorer.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from raysys.tasks.kinds import KINDS

log = logging.getLogger(__name__)

# Metrics that are a mean of per-row 0/1 correctness: McNemar applies to them.
BINARY_METRICS = ("accuracy", "exact_match")


@dataclass(frozen=True)
class RowScorer:
    """How one task's metric turns per-row counts into a score.

    `labels` are the task's labels (for classification, the label set a uniform-random
    predictor draws from); empty for the kinds without labels.
    """

    task: str
    kind: str
    metric: str
    labels: tuple[str, ...] = ()

    @property
    def binary(self) -> bool:
        """The metric is a mean of per-row correctness (accuracy, exact match)."""
        return self.metric in BINARY_METRICS

    def counts(
        self, golds: Sequence[str], preds: Sequence[str], inputs: Sequence[str] | None = None
    ) -> np.ndarray:
        """(rows, m) float counts; `value(counts.sum(0))` is the metric on these rows."""
        if len(golds) != len(preds):
            raise ValueError(f"task {self.task}: {len(golds)} golds but {len(preds)} predictions")
        try:
            return KINDS[self.kind].row_counts(self.metric, self.labels, golds, preds, inputs)
        except ValueError as err:
            raise ValueError(f"task {self.task}: {err}") from None

    def correct(self, golds: Sequence[str], preds: Sequence[str]) -> np.ndarray:
        """Per-row 0/1 correctness as the kind's scorer judges it (missing is wrong)."""
        return np.asarray(KINDS[self.kind].row_correct(self.labels, golds, preds), dtype=float)

    def value(self, sums: np.ndarray) -> np.ndarray:
        """The metric from summed counts; `sums` is (..., m), the result (...)."""
        return KINDS[self.kind].row_value(self.metric, np.asarray(sums, dtype=float))

    def score(
        self, golds: Sequence[str], preds: Sequence[str], inputs: Sequence[str] | None = None
    ) -> float:
        return float(self.value(self.counts(golds, preds, inputs).sum(axis=0)))


def scorer_for(
    task: str, golds: Sequence[str] = (), kind: str | None = None, metric: str | None = None
) -> RowScorer | None:
    """The task's scorer: from the registry, else from `kind` (labels = the golds seen).

    A YAML task defined on another machine is not registered in the report's process;
    the results table still names its kind, and its test golds are its label set as far
    as these rows can tell. None when neither is known: the caller skips the analysis.
    """
    from raysys.errors import UserError

    try:
        from raysys.tasks import get_task

        t = get_task(task)
        return RowScorer(t.name, t.kind, t.main_metric, tuple(t.labels))
    except (UserError, OSError, ValueError) as err:
        if kind not in KINDS:
            log.warning(
                "task %s: not registered and no kind known (%s); no row analysis", task, err
            )
            return None
    behaviour = KINDS[kind]
    labels = behaviour.labels_from_golds(golds)
    return RowScorer(task, kind, metric or behaviour.main_metric, labels)
