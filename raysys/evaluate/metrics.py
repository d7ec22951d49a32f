"""Metrics from scikit-learn; a missing answer counts as wrong, never as a class."""

from __future__ import annotations

from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from raysys.tasks.base import MISSING


def classification_metrics(
    golds: list[str], preds: list[str], labels: tuple[str, ...]
) -> dict[str, float]:
    if len(golds) != len(preds):
        raise ValueError(f"{len(golds)} golds but {len(preds)} predictions")
    if not golds:
        raise ValueError("no rows to score")
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
        "missing_rate": sum(p == MISSING for p in preds) / len(preds),
    }
