"""The honest-analysis primitives on data with known answers: per-row counts against the
task scorers, baselines, the `constant` rule, MDE, paired tests and the Holm correction."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import f1_score
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower

from raysys.analysis.baselines import (
    baselines,
    dominant,
    is_constant,
    majority_baseline,
    min_detectable,
    uniform_random_baseline,
)
from raysys.analysis.paired import adjust, mcnemar_p, paired_compare, row_bootstrap_ci
from raysys.analysis.rowscore import RowScorer, scorer_for
from raysys.tasks import get_task

LABELS = ("positive", "negative", "neutral")
CLS = RowScorer("t", "classification", "macro_f1", LABELS)
ACC = RowScorer("t", "classification", "accuracy", LABELS)
IMBALANCED = ["positive"] * 60 + ["negative"] * 25 + ["neutral"] * 15


def _noisy(golds: list[str], right: float, seed: int) -> list[str]:
    """Each row right with probability `right`, else a random other answer or missing."""
    rng = np.random.default_rng(seed)
    return [g if rng.random() < right else str(rng.choice([*LABELS, "missing"])) for g in golds]


# --- per-row counts reproduce the task scorers -------------------------------------------


@pytest.mark.parametrize("task", ["news_sentiment", "fin_ner", "numeric_qa"])
def test_row_counts_reproduce_the_task_scorer(task):
    t = get_task(task)
    from raysys.tasks import build_splits

    rows = build_splits(task, {"test": 40}, 0)["test"]
    golds = [str(r["gold"]) for r in rows]
    inputs = [r["input"] for r in rows]
    rng = np.random.default_rng(1)
    # a mix of right answers, other rows' answers and missing ones
    preds = [g if rng.random() < 0.5 else str(rng.choice([*golds, "missing"])) for g in golds]
    scorer = scorer_for(task)
    want = t.behaviour.score(t, golds, preds, inputs)[t.main_metric]
    assert scorer.score(golds, preds, inputs) == pytest.approx(want, abs=1e-12)


def test_unregistered_task_is_scored_from_its_kind():
    scorer = scorer_for("not_a_task", ["b", "a", "b"], kind="classification")
    assert scorer == RowScorer("not_a_task", "classification", "macro_f1", ("a", "b"))
    assert scorer_for("not_a_task", ["x"]) is None  # no kind: no analysis, not a guess


# --- baselines ---------------------------------------------------------------------------


def test_baselines_on_a_60_25_15_test_set_match_hand_computed_values():
    # majority "positive" everywhere: accuracy 0.6; F1 of positive 2*0.6/1.6 = 0.75,
    # the other two 0, so macro-F1 0.75 / 3 = 0.25; uniform random accuracy exactly 1/3
    assert majority_baseline(ACC, IMBALANCED) == ("positive", pytest.approx(0.6))
    assert majority_baseline(CLS, IMBALANCED) == ("positive", pytest.approx(0.25))
    assert uniform_random_baseline(ACC, IMBALANCED) == pytest.approx(1 / 3)
    # expected macro-F1 of random labels: near the large-n value sum_c 2p/3/(p+1/3) / 3
    plug_in = np.mean([2 * p / 3 / (p + 1 / 3) for p in (0.6, 0.25, 0.15)])
    assert uniform_random_baseline(CLS, IMBALANCED) == pytest.approx(plug_in, abs=0.01)
    b = baselines(CLS, IMBALANCED)
    assert (b.n, b.majority_answer) == (100, "positive")
    assert b.mde == pytest.approx(min_detectable(100))


def test_uniform_random_macro_f1_is_the_exact_expectation():
    # two rows a, b and labels {a, b}: predictions aa, bb, ab, ba equally likely with
    # macro-F1 1/3, 1/3, 1, 0 -> 5/12
    two = RowScorer("t", "classification", "macro_f1", ("a", "b"))
    assert uniform_random_baseline(two, ["a", "b"]) == pytest.approx(5 / 12)
    # brute force over all 3^6 predictions of a 3/2/1 test set, scored by scikit-learn
    golds = ["positive"] * 3 + ["negative"] * 2 + ["neutral"]
    scores = [
        f1_score(golds, list(p), labels=list(LABELS), average="macro", zero_division=0)
        for p in itertools.product(LABELS, repeat=len(golds))
    ]
    assert uniform_random_baseline(CLS, golds) == pytest.approx(np.mean(scores), abs=1e-12)


def test_majority_of_numeric_and_ner_answers():
    numeric = RowScorer("n", "numeric", "exact_match")
    # "1,200" and "1200" are one answer; predicting it everywhere gets 3 of 5 rows
    assert majority_baseline(numeric, ["1,200", "1200", "5", "7", "1200.0"]) == (
        "1,200",
        pytest.approx(0.6),
    )
    assert math.isnan(uniform_random_baseline(numeric, ["1", "2"]))  # no label set
    ner = scorer_for("fin_ner")
    golds = ["none", "none", "PER: Ann Lee"]
    inputs = ["Sentence: Shares rose.", "Sentence: Rates fell.", "Sentence: Ann Lee quit."]
    assert majority_baseline(ner, golds, inputs) == ("none", 0.0)  # no entity found


def test_constant_rule_counts_missing_as_a_value():
    assert is_constant(["positive"] * 9 + ["negative"])  # 90 %: constant
    assert not is_constant(["positive"] * 8 + ["negative"] * 2)
    assert is_constant(["missing"] * 10)  # answering nothing is constant too
    assert not is_constant([])
    assert dominant(["b", "a", "a", "b"]) == ("a", 0.5)  # ties: alphabetically first


def test_mde_matches_statsmodels_power():
    for n in (16, 100, 400):
        d = NormalIndPower().solve_power(nobs1=n, alpha=0.05, power=0.8, ratio=1.0)
        assert min_detectable(n) == pytest.approx(0.5 * d, rel=1e-3)  # sd of a 0.5 proportion
    assert min_detectable(16) == pytest.approx(0.495, abs=1e-3)


# --- paired tests ------------------------------------------------------------------------


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
