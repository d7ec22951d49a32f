"""What a score must beat, and what a test split can tell apart.

- majority: the score of answering the test rows' most common gold answer on every row.
  For accuracy and macro-F1 that is the best constant predictor (a constant's F1 on its
  own label, 2p / (1 + p), grows with the label's share p); for NER, numeric and free
  text it is "the most common answer", which a model that learned nothing can match.
- random: the expected score of a predictor drawing uniformly from the task's labels,
  computed exactly on the same rows (classification only; other kinds have no label set).
- constant: a model whose test predictions are >= 90 % one value. "missing" (no
  extractable answer) counts as a value like any label: a model that answers nothing,
  or one label, on nine rows in ten carries no information about its input either way.
- MDE: the smallest difference a task's test n can detect (formula at `min_detectable`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from raysys.analysis.rowscore import RowScorer

CONSTANT_SHARE = 0.9
ALPHA = 0.05
POWER = 0.8


@dataclass(frozen=True)
class Baselines:
    """One task's reference scores on its test rows."""

    n: int
    majority_answer: str
    majority: float
    random: float  # NaN where the task has no label set to draw from
    mde: float


def baselines(
    scorer: RowScorer, golds: Sequence[str], inputs: Sequence[str] | None = None
) -> Baselines:
    """Majority and uniform-random scores and the MDE, all on these test rows."""
    answer, majority = majority_baseline(scorer, golds, inputs)
    return Baselines(
        n=len(golds),
        majority_answer=answer,
        majority=majority,
        random=uniform_random_baseline(scorer, golds),
        mde=min_detectable(len(golds)),
    )


def majority_answer(scorer: RowScorer, golds: Sequence[str]) -> str:
    """The most common gold answer; equal answers after the kind's normalisation are one
    ("1,200" and "1200"), and ties go to the alphabetically first so reruns agree."""
    keys = [_answer_key(scorer, str(g)) for g in golds]
    counts = Counter(keys)
    top = max(counts.values())
    best = min(k for k, c in counts.items() if c == top)
    return next(str(g) for g, k in zip(golds, keys, strict=True) if k == best)


def majority_baseline(
    scorer: RowScorer, golds: Sequence[str], inputs: Sequence[str] | None = None
) -> tuple[str, float]:
    """(answer, score) of answering the most common gold answer on every row."""
    if not golds:
        return "", math.nan
    answer = majority_answer(scorer, golds)
    return answer, scorer.score(golds, [answer] * len(golds), inputs)


def uniform_random_baseline(scorer: RowScorer, golds: Sequence[str]) -> float:
    """The exact expected score of answering a uniformly random label on every row.

    Accuracy: (golds that are labels) / (n K). Macro-F1: per label c with n_c gold rows,
    tp ~ Binomial(n_c, 1/K) and fp ~ Binomial(n - n_c, 1/K) independently, F1_c =
    2 tp / (n_c + tp + fp); the expectation is summed over both distributions (tails
    below 1e-12 dropped), not the F1 of the expected confusion matrix, which overstates
    it on small test sets.
    """
    k = len(scorer.labels)
    if scorer.kind != "classification" or k == 0 or not golds:
        return math.nan
    n = len(golds)
    gold_counts = Counter(str(g) for g in golds)
    if scorer.metric != "macro_f1":
        return sum(gold_counts[lab] for lab in scorer.labels) / (n * k)
    return float(np.mean([_expected_f1(gold_counts[lab], n, 1 / k) for lab in scorer.labels]))


def _expected_f1(n_c: int, n: int, q: float) -> float:
    if n_c == 0:
        return 0.0  # no gold row: F1 is 0 whatever is predicted (zero_division=0)
    tp, p_tp = _support(n_c, q)
    fp, p_fp = _support(n - n_c, q)
    f1 = 2 * tp[:, None] / (n_c + tp[:, None] + fp[None, :])
    return float(p_tp @ f1 @ p_fp)


def _support(trials: int, q: float, tail: float = 1e-12) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = stats.binom.ppf(tail, trials, q), stats.binom.isf(tail, trials, q)
    k = np.arange(int(lo), int(hi) + 1)
    return k.astype(float), stats.binom.pmf(k, trials, q)


def dominant(preds: Sequence[str]) -> tuple[str, float]:
    """The most common prediction (ties: alphabetically first) and its share of rows."""
    if not preds:
        return "", math.nan
    counts = Counter(str(p) for p in preds)
    top = max(counts.values())
    return min(v for v, c in counts.items() if c == top), top / len(preds)


def is_constant(preds: Sequence[str], threshold: float = CONSTANT_SHARE) -> bool:
    """>= `threshold` of the predictions are one value ("missing" included, see above)."""
    share = dominant(preds)[1]
    return not math.isnan(share) and share >= threshold


def min_detectable(n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest difference in accuracy a test of n rows detects:

        MDE = (z_{1 - alpha/2} + z_{power}) * sqrt(2 * 0.5 * 0.5 / n)

    two proportions near 0.5 (the largest variance), two-sided alpha 0.05, power 0.8:
    1.98 / sqrt(n), e.g. 0.50 at n = 16, 0.14 at n = 200. A guide, not a guarantee:
    pairing detects less when two models agree on most rows, F1 is noisier than accuracy.
    """
    if n <= 0:
        return math.nan
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    return float(z * math.sqrt(2 * 0.25 / n))


def _answer_key(scorer: RowScorer, answer: str) -> str:
    if scorer.kind == "numeric":
        from raysys.tasks.answers import normalize_number

        value = normalize_number(answer)
        return answer if value is None else repr(round(value, 6))
    if scorer.kind == "freetext":
        from raysys.tasks.answers import normalize_text

        return normalize_text(answer)
    return answer
