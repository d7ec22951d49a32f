"""`raysys.analysis.paired`: McNemar and the permutation test against statsmodels and scipy,
the Holm correction, and the row bootstrap over seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import f1_score
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from raysys.analysis.paired import adjust, mcnemar_p, paired_compare, row_bootstrap_ci
from raysys.analysis.rowscore import RowScorer

LABELS = ("positive", "negative", "neutral")
CLS = RowScorer("t", "classification", "macro_f1", LABELS)
IMBALANCED = ["positive"] * 60 + ["negative"] * 25 + ["neutral"] * 15


def _noisy(golds: list[str], right: float, seed: int) -> list[str]:
    """Each row right with probability `right`, else a random other answer or missing."""
    rng = np.random.default_rng(seed)
    return [g if rng.random() < right else str(rng.choice([*LABELS, "missing"])) for g in golds]


def test_mcnemar_matches_statsmodels_directly():
    rng = np.random.default_rng(0)
    a, b = rng.random(80) < 0.55, rng.random(80) < 0.75
    table = [[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]]
    want = mcnemar(table, exact=True).pvalue
    assert mcnemar_p(a, b) == pytest.approx(want)
    # exact match goes through McNemar with the same table
    golds = [str(i) for i in range(80)]
    pa = [g if ok else "x" for g, ok in zip(golds, a, strict=True)]
    pb = [g if ok else "x" for g, ok in zip(golds, b, strict=True)]
    em = RowScorer("n", "freetext", "exact_match")
    res = paired_compare(em, em.counts(golds, pa), em.counts(golds, pb))
    assert res.test == "mcnemar" and res.p == pytest.approx(want)
    assert res.diff == pytest.approx(b.mean() - a.mean())


def test_a_known_effect_is_significant_and_identical_models_are_not():
    golds = IMBALANCED * 2
    weak, strong = _noisy(golds, 0.4, 1), _noisy(golds, 0.9, 2)
    res = paired_compare(CLS, CLS.counts(golds, weak), CLS.counts(golds, strong))
    assert res.test == "permutation" and res.n == 200
    assert res.diff == pytest.approx(CLS.score(golds, strong) - CLS.score(golds, weak))
    assert 0 < res.lo < res.diff < res.hi and res.p < 0.001
    same = paired_compare(CLS, CLS.counts(golds, weak), CLS.counts(golds, weak))
    assert same.diff == 0 and same.p == 1.0
    assert math.isnan(same.lo) and math.isnan(same.hi)  # no spread: no interval
    _, significant = adjust([res.p, same.p])
    assert significant.tolist() == [True, False]


def test_permutation_p_equals_scipy_with_scikit_learn_f1():
    pos, neg, neu, mis = "positive", "negative", "neutral", "missing"
    golds = [pos, neg, neu, pos, neg, pos, neu, neg]
    a = [pos, pos, neu, mis, neg, neu, neu, pos]
    b = [pos, neg, neu, pos, neg, pos, mis, neg]

    def f1_diff(x, y):
        def f1(p):
            return f1_score(golds, list(p), labels=list(LABELS), average="macro", zero_division=0)

        return f1(y) - f1(x)

    want = stats.permutation_test((a, b), f1_diff, permutation_type="samples", vectorized=False)
    got = paired_compare(CLS, CLS.counts(golds, a), CLS.counts(golds, b))
    assert got.p == pytest.approx(want.pvalue)  # 2^8 swaps: both exact
    assert got.diff == pytest.approx(want.statistic)


def test_holm_correction_order_and_missing_tests():
    p = [0.01, 0.04, 0.03, 0.005, float("nan")]
    adj, sig = adjust(p)
    # Holm: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1, then running maximum
    assert adj[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert sig.tolist() == [True, False, False, True, False]
    assert math.isnan(adj[4])  # no test: not adjusted, not counted in the family
    assert adj[:4] == pytest.approx(multipletests(p[:4], method="holm")[1])


def test_row_bootstrap_ci_over_two_seeds_shares_rows():
    golds = IMBALANCED
    seeds = np.stack([CLS.counts(golds, _noisy(golds, 0.7, s)) for s in (1, 2)])
    lo, hi = row_bootstrap_ci(CLS, seeds, seed=3)
    mean = np.mean([CLS.value(c.sum(0)) for c in seeds])
    assert lo < mean < hi and hi - lo < 0.4
    assert (lo, hi) == row_bootstrap_ci(CLS, seeds, seed=3)  # seeded
    perfect = CLS.counts(golds, golds)
    assert all(math.isnan(v) for v in row_bootstrap_ci(CLS, perfect))
