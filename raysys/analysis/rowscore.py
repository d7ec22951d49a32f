"""A task's main metric as a sum of per-row counts, so resampling rows is cheap.

Every main metric we report is a function of counts summed over rows: macro-F1 of the
per-label (tp, fp, fn), entity-F1 of the per-sentence entity (tp, fp, fn), exact match
and accuracy of (correct, rows). Scoring a bootstrap resample or a permutation is then a
sum over an index array, thousands per second, instead of a call into scikit-learn or
seqeval each time; `tests/test_analysis_stats.py` checks the values against `score_kind`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from raysys.tasks.base import MAIN_METRIC, MISSING

log = logging.getLogger(__name__)

# Metrics that are a mean of per-row 0/1 correctness: McNemar applies to them.
BINARY_METRICS = ("accuracy", "exact_match")


@dataclass(frozen=True)
class RowScorer:
    """How one task's metric turns per-row counts into a score.

    `labels` are the classification labels (the label set a uniform-random predictor
    draws from); empty for the other kinds.
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
        if self.metric == "macro_f1":
            return _label_counts(golds, preds, self.labels)
        if self.metric == "entity_f1":
            if inputs is None:
                raise ValueError(f"task {self.task}: entity F1 needs the input sentences")
            return _entity_counts(golds, preds, inputs)
        return np.column_stack([self.correct(golds, preds), np.ones(len(golds))])

    def correct(self, golds: Sequence[str], preds: Sequence[str]) -> np.ndarray:
        """Per-row 0/1 correctness as the kind's scorer judges it (missing is wrong)."""
        if self.kind == "numeric":
            from raysys.tasks.answers import normalize_number
            from raysys.tasks.gen.numeric_qa import numbers_match

            hits = []
            for g, p in zip(golds, preds, strict=True):
                gold = normalize_number(str(g))
                ok = p != MISSING and gold is not None
                hits.append(ok and numbers_match(normalize_number(str(p)), gold))
            return np.asarray(hits, dtype=float)
        if self.kind == "freetext":
            from raysys.tasks.answers import normalize_text

            pairs = zip(golds, preds, strict=True)
            return np.asarray(
                [
                    p != MISSING and normalize_text(str(p)) == normalize_text(str(g))
                    for g, p in pairs
                ],
                dtype=float,
            )
        return np.asarray([p == g for g, p in zip(golds, preds, strict=True)], dtype=float)

    def value(self, sums: np.ndarray) -> np.ndarray:
        """The metric from summed counts; `sums` is (..., m), the result (...)."""
        sums = np.asarray(sums, dtype=float)
        if self.metric in ("macro_f1", "entity_f1"):
            tp, fp, fn = sums[..., 0::3], sums[..., 1::3], sums[..., 2::3]
            f1 = _ratio(2 * tp, 2 * tp + fp + fn)  # zero_division=0, as scikit-learn/seqeval
            return f1.mean(axis=-1) if self.metric == "macro_f1" else f1[..., 0]
        return _ratio(sums[..., 0], sums[..., 1])

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
        if kind not in MAIN_METRIC:
            log.warning(
                "task %s: not registered and no kind known (%s); no row analysis", task, err
            )
            return None
    labels = tuple(sorted({str(g) for g in golds})) if kind == "classification" else ()
    return RowScorer(task, kind, metric or MAIN_METRIC[kind], labels)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)


def _label_counts(
    golds: Sequence[str], preds: Sequence[str], labels: tuple[str, ...]
) -> np.ndarray:
    """(rows, 3 * labels): per label, is this row a tp, fp, fn for it. A prediction outside
    the labels ("missing") is a false negative of the gold label and nobody's positive."""
    g = np.asarray([str(x) for x in golds], dtype=object)[:, None]
    p = np.asarray([str(x) for x in preds], dtype=object)[:, None]
    lab = np.asarray(labels, dtype=object)[None, :]
    gold_is, pred_is = g == lab, p == lab
    out = np.empty((len(golds), 3 * len(labels)))
    out[:, 0::3] = gold_is & pred_is
    out[:, 1::3] = ~gold_is & pred_is
    out[:, 2::3] = gold_is & ~pred_is
    return out


def _entity_counts(golds: Sequence[str], preds: Sequence[str], inputs: Sequence[str]) -> np.ndarray:
    """(rows, 3): entity tp, fp, fn per sentence, on the BIO projection seqeval scores."""
    from seqeval.metrics.sequence_labeling import get_entities

    from raysys.tasks.answers import parse_entities
    from raysys.tasks.gen.fin_ner import to_bio

    out = np.zeros((len(golds), 3))
    for i, (gold, pred, text) in enumerate(zip(golds, preds, inputs, strict=True)):
        true = set(get_entities(to_bio(str(text), parse_entities(str(gold)))[1]))
        found = [] if pred == MISSING else parse_entities(str(pred))
        got = set(get_entities(to_bio(str(text), found)[1]))
        out[i] = (len(true & got), len(got - true), len(true - got))
    return out
