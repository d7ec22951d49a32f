"""`raysys.analysis.baselines` on data with known answers: majority and uniform-random
baselines, the `constant` rule, the minimum detectable effect against statsmodels."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from sklearn.metrics import f1_score
from statsmodels.stats.power import NormalIndPower

from raysys.analysis.baselines import (
    baselines,
    dominant,
    is_constant,
    majority_baseline,
    min_detectable,
    uniform_random_baseline,
)
from raysys.analysis.rowscore import RowScorer, scorer_for

LABELS = ("positive", "negative", "neutral")
CLS = RowScorer("t", "classification", "macro_f1", LABELS)
ACC = RowScorer("t", "classification", "accuracy", LABELS)
IMBALANCED = ["positive"] * 60 + ["negative"] * 25 + ["neutral"] * 15


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
