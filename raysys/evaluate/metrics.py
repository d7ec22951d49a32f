"""Metrics per task kind: scikit-learn for labels, seqeval for entities.

A missing answer always counts as wrong and is reported as `missing_rate`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from raysys.tasks.base import MISSING

if TYPE_CHECKING:
    from raysys.tasks.base import Task


def score_kind(
    task: Task, golds: list[str], preds: list[str], inputs: list[str] | None
) -> dict[str, float]:
    _check(golds, preds)
    if task.kind == "classification":
        return classification_metrics(golds, preds, task.labels)
    if task.kind == "ner":
        if inputs is None:
            raise ValueError(f"task {task.name}: NER scoring needs the input sentences")
        return ner_metrics(golds, preds, inputs)
    if task.kind == "numeric":
        return numeric_metrics(golds, preds)
    return freetext_metrics(golds, preds)


def classification_metrics(
    golds: list[str], preds: list[str], labels: tuple[str, ...]
) -> dict[str, float]:
    _check(golds, preds)
    labs = list(labels)
    return {
        "accuracy": float(accuracy_score(golds, preds)),
        # `labels=` restricts the average to the real classes, so "missing"
        # predictions only ever cost recall.
        "macro_f1": float(f1_score(golds, preds, labels=labs, average="macro", zero_division=0)),
        "weighted_f1": float(
            f1_score(golds, preds, labels=labs, average="weighted", zero_division=0)
        ),
        "mcc": float(matthews_corrcoef(golds, preds)),
        "missing_rate": _missing(preds),
    }


def ner_metrics(golds: list[str], preds: list[str], inputs: list[str]) -> dict[str, float]:
    """Entity-level micro P/R/F1 (seqeval) over BIO tags projected onto the input tokens."""
    from seqeval.metrics import f1_score as ent_f1
    from seqeval.metrics import precision_score, recall_score

    from raysys.tasks.answers import parse_entities
    from raysys.tasks.gen.fin_ner import to_bio

    y_true, y_pred = [], []
    for gold, pred, text in zip(golds, preds, inputs, strict=True):
        y_true.append(to_bio(text, parse_entities(gold))[1])
        y_pred.append(to_bio(text, [] if pred == MISSING else parse_entities(pred))[1])
    return {
        "entity_f1": float(ent_f1(y_true, y_pred, zero_division=0)),
        "entity_precision": float(precision_score(y_true, y_pred, zero_division=0)),
        "entity_recall": float(recall_score(y_true, y_pred, zero_division=0)),
        # A missing answer is wrong even where the gold is "none".
        "exact_match": sum(
            p != MISSING and t == yp for t, yp, p in zip(y_true, y_pred, preds, strict=True)
        )
        / len(y_true),
        "missing_rate": _missing(preds),
    }


def numeric_metrics(golds: list[str], preds: list[str]) -> dict[str, float]:
    """Exact match within 1% relative or 0.01 absolute, after normalising %, $ and commas."""
    from raysys.tasks.answers import normalize_number
    from raysys.tasks.gen.numeric_qa import numbers_match

    # A gold that is not a number matches nothing (as in Task.agrees); float(None)
    # raised here after a whole evaluation. Loaders refuse such golds up front.
    golds_n = [normalize_number(g) for g in golds]
    hits = [
        p != MISSING and g is not None and numbers_match(normalize_number(p), g)
        for g, p in zip(golds_n, preds, strict=True)
    ]
    return {"exact_match": sum(hits) / len(hits), "missing_rate": _missing(preds)}


def freetext_metrics(golds: list[str], preds: list[str]) -> dict[str, float]:
    from raysys.tasks.answers import normalize_text

    hits = [
        p != MISSING and normalize_text(p) == normalize_text(g)
        for g, p in zip(golds, preds, strict=True)
    ]
    return {"exact_match": sum(hits) / len(hits), "missing_rate": _missing(preds)}


def _check(golds: list[str], preds: list[str]) -> None:
    if len(golds) != len(preds):
        raise ValueError(f"{len(golds)} golds but {len(preds)} predictions")
    if not golds:
        raise ValueError("no rows to score")


def _missing(preds: list[str]) -> float:
    return sum(p == MISSING for p in preds) / len(preds)
