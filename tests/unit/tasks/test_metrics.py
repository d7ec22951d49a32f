"""`raysys.tasks.metrics`: scores per kind against scikit-learn and seqeval, missing
answers counted wrong, entities projected onto BIO tags, and the per-row counts whose
sums give back the same main metrics."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from raysys.tasks import metrics
from raysys.tasks.answers import MISSING

LABELS = ("positive", "negative", "neutral")


def test_check_rows():
    metrics.check_rows(["a"], ["b"])
    with pytest.raises(ValueError, match="2 golds but 1 predictions"):
        metrics.check_rows(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no rows to score"):
        metrics.check_rows([], [])


def test_classification_metrics_count_missing_as_wrong_but_no_class():
    golds = ["positive", "negative", "neutral", "positive"]
    preds = ["positive", MISSING, "neutral", "negative"]
    m = metrics.classification_metrics(golds, preds, LABELS)
    assert m["accuracy"] == 0.5 and m["missing_rate"] == 0.25
    want = f1_score(golds, preds, labels=list(LABELS), average="macro", zero_division=0)
    assert m["macro_f1"] == pytest.approx(want)
    assert set(m) == {"accuracy", "macro_f1", "weighted_f1", "mcc", "missing_rate"}


def test_label_counts_sum_to_the_macro_f1():
    rng = np.random.default_rng(0)
    golds = list(rng.choice(LABELS, 50))
    preds = [g if rng.random() < 0.6 else rng.choice([*LABELS, MISSING]) for g in golds]
    counts = metrics.label_counts(golds, preds, LABELS)
    assert counts.shape == (50, 9)
    assert (counts.reshape(50, 3, 3).sum(axis=2) <= 2).all()  # tp+fp+fn of one row, one label
    macro = float(metrics.f1_of(counts.sum(axis=0)).mean())
    want = f1_score(golds, preds, labels=list(LABELS), average="macro", zero_division=0)
    assert macro == pytest.approx(want)


def test_a_missing_prediction_is_a_false_negative_only():
    row = metrics.label_counts(["positive"], [MISSING], LABELS)[0]
    assert list(row) == [0, 0, 1, 0, 0, 0, 0, 0, 0]


def test_ratio_and_f1_treat_zero_denominators_as_zero():
    assert list(metrics.ratio(np.array([1.0, 0.0]), np.array([2.0, 0.0]))) == [0.5, 0.0]
    f1 = metrics.f1_of(np.array([0.0, 0.0, 0.0, 2.0, 1.0, 1.0]))
    assert list(f1) == [0.0, pytest.approx(2 / 3)]


def test_correct_counts_are_a_mean_of_correctness():
    c = metrics.correct_counts([True, False, True])
    assert c.tolist() == [[1, 1], [0, 1], [1, 1]]
    assert c[:, 0].sum() / c[:, 1].sum() == pytest.approx(2 / 3)


def test_numeric_and_freetext_hits():
    assert metrics.numeric_hits(["12.5", "3", "-2"], ["12.6", MISSING, "2"]) == [True, False, False]
    m = metrics.numeric_metrics(["12.5", "3"], ["12.6", MISSING])
    assert m == {"exact_match": 0.5, "missing_rate": 0.5}
    assert metrics.numeric_hits(["n/a"], ["1"]) == [False]  # a gold that is no number
    assert metrics.freetext_hits(["Paris", "x"], ['"paris" ', MISSING]) == [True, False]
    assert metrics.freetext_metrics(["a"], ["A"])["exact_match"] == 1.0


def test_ner_metrics_match_entity_counts():
    inputs = ["Maria Okafor joined Calder Bank.", "Velden grew."]
    golds = ["PER: Maria Okafor; ORG: Calder Bank", "LOC: Velden"]
    preds = ["PER: Maria Okafor", MISSING]
    m = metrics.ner_metrics(golds, preds, inputs)
    counts = metrics.entity_counts(golds, preds, inputs)
    assert counts.tolist() == [[1, 0, 1], [0, 0, 1]]
    tp, fp, fn = counts.sum(axis=0)
    assert m["entity_f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn)) == pytest.approx(0.5)
    assert (m["entity_precision"], m["entity_recall"]) == (1.0, pytest.approx(1 / 3))
    assert m["exact_match"] == 0.0 and m["missing_rate"] == 0.5


def test_to_bio_handles_punctuation_possessives_case_and_misses():
    sentence = "Maria Okafor, CEO of Calder Bank's unit, met Aiko Takeda in Port Meridian."
    ents = [
        ("PER", "Maria Okafor"),
        ("ORG", "calder bank"),  # case-insensitive
        ("PER", "Nobody Here"),  # hallucinated: tags nothing
        ("LOC", "Port Meridian"),
    ]
    tokens, tags = metrics.to_bio(sentence, ents)
    assert tokens[-1] == "Meridian." and tokens[5] == "Bank's"
    assert tags == [
        "B-PER", "I-PER", "O", "O", "B-ORG", "I-ORG", "O", "O", "O", "O", "O", "B-LOC", "I-LOC",
    ]  # fmt: skip
    assert metrics.to_bio(sentence, []) == (tokens, ["O"] * len(tokens))


def test_to_bio_repeated_and_out_of_order_entities():
    sentence = "Velden beat Eastmere, and Velden rallied."
    tokens, tags = metrics.to_bio(sentence, [("LOC", "Velden"), ("LOC", "Velden")])
    assert tags == ["B-LOC", "O", "O", "O", "B-LOC", "O"]
    _, tags = metrics.to_bio(sentence, [("LOC", "Eastmere"), ("LOC", "Velden")])
    assert tags == ["O", "O", "B-LOC", "O", "B-LOC", "O"]  # the next match after Eastmere
    _, tags = metrics.to_bio("Velden beat Eastmere.", [("LOC", "Eastmere"), ("LOC", "Velden")])
    assert tags == ["B-LOC", "O", "B-LOC"]  # nothing after Eastmere: fall back to the start
    assert metrics.to_bio("", [("PER", "A B")]) == ([], [])
