"""Metrics per task kind: scikit-learn for labels, seqeval for entities, and the same
main metrics as sums of per-row counts (what the analysis resamples).

A missing answer always counts as wrong and is reported as `missing_rate`.
numpy, scikit-learn and seqeval are imported inside the functions: every process that
reads a task imports this module, and most of them never score.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from raysys.tasks.answers import (
    MISSING,
    normalize_number,
    normalize_text,
    numbers_match,
    parse_entities,
)

if TYPE_CHECKING:
    import numpy as np

_EDGE = ".,;:!?\"'()[]{}“”‘’"


def check_rows(golds: Sequence[str], preds: Sequence[str]) -> None:
    if len(golds) != len(preds):
        raise ValueError(f"{len(golds)} golds but {len(preds)} predictions")
    if not golds:
        raise ValueError("no rows to score")


def missing_rate(preds: Sequence[str]) -> float:
    return sum(p == MISSING for p in preds) / len(preds)


def classification_metrics(
    golds: list[str], preds: list[str], labels: tuple[str, ...]
) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    check_rows(golds, preds)
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
        "missing_rate": missing_rate(preds),
    }


def ner_metrics(golds: list[str], preds: list[str], inputs: list[str]) -> dict[str, float]:
    """Entity-level micro P/R/F1 (seqeval) over BIO tags projected onto the input tokens."""
    from seqeval.metrics import f1_score as ent_f1
    from seqeval.metrics import precision_score, recall_score

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
        "missing_rate": missing_rate(preds),
    }


def numeric_metrics(golds: list[str], preds: list[str]) -> dict[str, float]:
    """Exact match within 1% relative or 0.01 absolute, after normalising %, $ and commas."""
    hits = numeric_hits(golds, preds)
    return {"exact_match": sum(hits) / len(hits), "missing_rate": missing_rate(preds)}


def numeric_hits(golds: Sequence[str], preds: Sequence[str]) -> list[bool]:
    # A gold that is not a number matches nothing (as in Task.agrees); float(None)
    # raised here after a whole evaluation. Loaders refuse such golds up front.
    out = []
    for g, p in zip(golds, preds, strict=True):
        gold = normalize_number(str(g))
        ok = p != MISSING and gold is not None
        out.append(ok and numbers_match(normalize_number(str(p)), gold))
    return out


def freetext_metrics(golds: list[str], preds: list[str]) -> dict[str, float]:
    hits = freetext_hits(golds, preds)
    return {"exact_match": sum(hits) / len(hits), "missing_rate": missing_rate(preds)}


def freetext_hits(golds: Sequence[str], preds: Sequence[str]) -> list[bool]:
    return [
        p != MISSING and normalize_text(str(p)) == normalize_text(str(g))
        for g, p in zip(golds, preds, strict=True)
    ]


# --- entities as BIO tags ----------------------------------------------------------------


def _norm(token: str) -> str:
    token = token.strip(_EDGE)
    for tail in ("'s", "’s"):
        token = token.removesuffix(tail)
    return token.strip(_EDGE).casefold()


def _find(keys: list[str], span: list[str], tags: list[str], start: int) -> int | None:
    for i in range(start, len(keys) - len(span) + 1):
        if keys[i : i + len(span)] == span and all(t == "O" for t in tags[i : i + len(span)]):
            return i
    return None


def to_bio(text: str, entities: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """Whitespace tokens and BIO tags; each entity takes its next unused match in order."""
    tokens = text.split()
    keys = [_norm(t) for t in tokens]
    tags = ["O"] * len(tokens)
    cursor = 0
    for etype, surface in entities:
        span = [_norm(t) for t in surface.split()]
        if not any(span):
            continue
        i = _find(keys, span, tags, cursor)
        i = _find(keys, span, tags, 0) if i is None else i  # tolerate out-of-order lists
        if i is None:
            continue  # a hallucinated entity tags nothing
        tags[i : i + len(span)] = [f"B-{etype}"] + [f"I-{etype}"] * (len(span) - 1)
        cursor = i + len(span)
    return tokens, tags


# --- main metrics as sums of per-row counts ----------------------------------------------


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0 (zero_division=0, as scikit-learn and seqeval)."""
    import numpy as np

    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)


def f1_of(sums: np.ndarray) -> np.ndarray:
    """F1 per (tp, fp, fn) triple of summed counts laid out as (..., 3 * k) -> (..., k)."""
    tp, fp, fn = sums[..., 0::3], sums[..., 1::3], sums[..., 2::3]
    return ratio(2 * tp, 2 * tp + fp + fn)


def correct_counts(hits: Sequence[bool]) -> np.ndarray:
    """(rows, 2): is this row right, and a 1 to count it; a mean of correctness."""
    import numpy as np

    return np.column_stack([np.asarray(hits, dtype=float), np.ones(len(hits))])


def label_counts(golds: Sequence[str], preds: Sequence[str], labels: tuple[str, ...]) -> np.ndarray:
    """(rows, 3 * labels): per label, is this row a tp, fp, fn for it. A prediction outside
    the labels ("missing") is a false negative of the gold label and nobody's positive."""
    import numpy as np

    g = np.asarray([str(x) for x in golds], dtype=object)[:, None]
    p = np.asarray([str(x) for x in preds], dtype=object)[:, None]
    lab = np.asarray(labels, dtype=object)[None, :]
    return membership_counts(g == lab, p == lab)


def membership_counts(gold_is: np.ndarray, pred_is: np.ndarray) -> np.ndarray:
    """(rows, 3 * labels) tp, fp, fn per label from (rows, labels) boolean memberships."""
    import numpy as np

    out = np.empty((gold_is.shape[0], 3 * gold_is.shape[1]))
    out[:, 0::3] = gold_is & pred_is
    out[:, 1::3] = ~gold_is & pred_is
    out[:, 2::3] = gold_is & ~pred_is
    return out


def entity_counts(golds: Sequence[str], preds: Sequence[str], inputs: Sequence[str]) -> np.ndarray:
    """(rows, 3): entity tp, fp, fn per sentence, on the BIO projection seqeval scores."""
    import numpy as np
    from seqeval.metrics.sequence_labeling import get_entities

    out = np.zeros((len(golds), 3))
    for i, (gold, pred, text) in enumerate(zip(golds, preds, inputs, strict=True)):
        true = set(get_entities(to_bio(str(text), parse_entities(str(gold)))[1]))
        found = [] if pred == MISSING else parse_entities(str(pred))
        got = set(get_entities(to_bio(str(text), found)[1]))
        out[i] = (len(true & got), len(got - true), len(true - got))
    return out
