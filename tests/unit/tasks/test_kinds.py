"""Task kinds (`raysys.tasks.kinds`): the registry, dispatch through the kind object, and
the multi-label kind end to end, from a task YAML over a CSV to scores checked against
scikit-learn computed directly."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.metrics import f1_score
from sklearn.preprocessing import MultiLabelBinarizer

from raysys.analysis.rowscore import RowScorer, scorer_for
from raysys.errors import UserError
from raysys.tasks import build_splits, get_task
from raysys.tasks.base import MISSING, Task
from raysys.tasks.gen import GENERATORS
from raysys.tasks.kinds import (
    KINDS,
    Classification,
    Freetext,
    Kind,
    Multilabel,
    Ner,
    Numeric,
)
from tests.fixtures import REPO

# --- the registry ------------------------------------------------------------------------


def test_registry_holds_one_object_per_kind_under_its_name():
    assert set(KINDS) == {"classification", "ner", "numeric", "freetext", "multilabel"}
    for name, kind in KINDS.items():
        assert isinstance(kind, Kind) and kind.name == name
        assert kind.main_metric and kind.lenient_prefix.endswith("_")


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_each_builtin_task_holds_its_kind_object(name):
    expected = {
        "news_sentiment": Classification,
        "price_direction": Classification,
        "fomc_stance": Classification,
        "causal_detection": Classification,
        "fin_ner": Ner,
        "numeric_qa": Numeric,
        "arith_math": Numeric,
        "general_instruct": Freetext,
    }
    task = get_task(name)
    assert task.behaviour is KINDS[task.kind] is KINDS[GENERATORS[name].KIND]
    assert type(task.behaviour) is expected[name]
    assert task.main_metric == type(task.behaviour).main_metric


def test_main_metrics_and_lenient_prefixes_are_unchanged():
    got = {k: (v.main_metric, v.lenient_prefix) for k, v in KINDS.items()}
    assert got == {
        "classification": ("macro_f1", "finben_"),
        "ner": ("entity_f1", "flexible_"),
        "numeric": ("exact_match", "flexible_"),
        "freetext": ("exact_match", "flexible_"),
        "multilabel": ("micro_f1", "flexible_"),
    }


class _Shout(Kind):
    """A kind no code names: if Task or the analysis branched on kind names, it would fail."""

    name = "shout"
    main_metric = "loud"

    def extract_post(self, task, answer):
        return answer.upper()

    def lenient(self, task, text):
        return "LENIENT"

    def agrees(self, task, pred, gold):
        return pred == gold.upper()

    def score(self, task, golds, preds, inputs):
        hits = [p == g.upper() for g, p in zip(golds, preds, strict=True)]
        return {"loud": sum(hits) / len(hits), "missing_rate": 0.0}


def test_task_and_row_scorer_dispatch_to_the_kind_object(monkeypatch):
    monkeypatch.setitem(KINDS, "shout", _Shout())
    task = Task("shouty", "shout", "Say it.\n{input}")
    assert isinstance(task.behaviour, _Shout) and task.main_metric == "loud"
    assert task.extract("Answer: hello.") == "HELLO"
    assert task.extract("nothing") == MISSING
    assert task.extract_lenient("anything") == "LENIENT"
    assert task.agrees("HI", "hi") and not task.agrees(MISSING, "hi")
    m = task.score(["hi", "yo"], ["Answer: hi", "yo"])
    assert m == {
        "loud": 0.5,
        "missing_rate": 0.0,
        "flexible_loud": 0.0,
        "flexible_missing_rate": 0.0,
        "main": 0.5,
    }
    # the analysis' per-row counts come from the kind too (exact match by default)
    assert RowScorer("shouty", "shout", "exact_match").score(["A", "B"], ["A", "C"]) == 0.5


def test_unknown_kind_is_refused_with_the_registry_names():
    with pytest.raises(ValueError, match=r"kind must be one of \('classification', 'ner'"):
        Task("t", "regression", "{input}")


@pytest.mark.parametrize(
    "module",
    [
        "raysys/tasks/base.py",
        "raysys/tasks/answers.py",
        "raysys/tasks/metrics.py",
        "raysys/tasks/loaders.py",
        "raysys/analysis/rowscore.py",
    ],
)
def test_no_if_chains_on_kind_names_left(module):
    text = (REPO / module).read_text()
    assert not re.search(r"kind\s*(==|!=)\s*[\"']|kind in \(", text), module


def test_scoring_modules_do_not_import_evaluate_or_generators():
    for module in ("base", "answers", "metrics", "kinds"):
        text = (REPO / "raysys" / "tasks" / f"{module}.py").read_text()
        assert "raysys.evaluate" not in text and "raysys.tasks.gen" not in text, module


# --- multi-label classification ----------------------------------------------------------

LABELS = ["inflation", "rates", "growth", "jobs"]
TEST_ROWS = [
    ("Prices climbed again and the bank lifted its policy rate.", "Inflation, rates"),
    ("Payrolls beat forecasts for a third month.", "jobs"),
    ("Output expanded 3% while hiring slowed.", "growth; JOBS"),
    ("The central bank held rates steady.", " rates "),
    ("Core prices eased as the economy grew.", "inflation,growth"),
    ("Unemployment fell; GDP rose; prices firm.", "jobs, growth, inflation"),
    ("Mortgage costs rose with the base rate.", "rates"),
    ("Wage growth fed through to prices.", "inflation; jobs"),
]
TRAIN_ROWS = [
    ("Factory output surged in May.", "growth"),
    ("Yields rose after the rate decision.", "rates"),
    ("Consumer prices jumped 4%.", "inflation"),
    ("Jobless claims dropped sharply.", "jobs"),
]


def _csv(path: Path, rows: list[tuple[str, str]]) -> None:
    lines = ["text,topics"] + [f'"{t}","{g}"' for t, g in rows]
    path.write_text("\n".join(lines) + "\n")


def _multilabel_yaml(tmp_path: Path, name: str = "ml_topics", **extra) -> str:
    _csv(tmp_path / "test.csv", TEST_ROWS)
    _csv(tmp_path / "train.csv", TRAIN_ROWS)
    spec = {
        "name": name,
        "kind": "multilabel",
        "labels": LABELS,
        "prompt": "Which topics?\n{input}\nEnd with 'Answer: <topic>, <topic>'.",
        "source": {"splits": {"train": "train.csv", "test": "test.csv"}},
        "columns": {"input": "text", "gold": "topics"},
        **extra,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


@pytest.fixture
def multilabel(tmp_path) -> tuple[Task, list[dict]]:
    path = _multilabel_yaml(tmp_path)
    return get_task(path), build_splits(path, {"test": len(TEST_ROWS)}, 0)["test"]


def test_multilabel_task_loads_with_canonical_golds(multilabel):
    task, rows = multilabel
    assert task.kind == "multilabel" and isinstance(task.behaviour, Multilabel)
    assert task.main_metric == "micro_f1" and task.labels == tuple(LABELS)
    golds = {r["input"]: r["gold"] for r in rows}
    # labels spelled as in `labels`, in their order, whatever the file's case and separators
    assert golds[TEST_ROWS[0][0]] == "inflation, rates"
    assert golds[TEST_ROWS[2][0]] == "growth, jobs"
    assert golds[TEST_ROWS[3][0]] == "rates"
    assert golds[TEST_ROWS[5][0]] == "inflation, growth, jobs"


def test_multilabel_gold_outside_the_labels_is_refused(tmp_path):
    path = _multilabel_yaml(tmp_path, "ml_bad")
    _csv(tmp_path / "test.csv", [*TEST_ROWS, ("Oil spiked.", "inflation, energy")])
    with pytest.raises(UserError, match=r"test.csv row 10: label 'energy' is not one of"):
        build_splits(path, {"test": 3}, 0)


def test_multilabel_needs_labels(tmp_path):
    path = _multilabel_yaml(tmp_path, "ml_nolabels", labels=[])
    with pytest.raises(UserError, match="a multilabel task needs labels"):
        get_task(path)


@pytest.mark.parametrize(
    "text, strict",
    [
        ("Answer: inflation, rates", "inflation, rates"),
        ("Let me see.\nAnswer: Rates and inflation.", "inflation, rates"),
        ("**Answer:** growth; jobs", "growth, jobs"),
        ("Answer: jobs", "jobs"),
        ("Answer: jobs, jobs", "jobs"),
        ("Answer: none of these", MISSING),
        ("Inflation and rates.", MISSING),  # no Answer line
        ("Answer: rates\n...on reflection...\nAnswer: growth", "growth"),  # last wins
    ],
)
def test_multilabel_strict_extraction(multilabel, text, strict):
    assert multilabel[0].extract(text) == strict


def test_multilabel_lenient_reading_takes_every_label_mentioned(multilabel):
    task = multilabel[0]
    assert task.extract_lenient("Jobs fell and inflation rose.") == "inflation, jobs"
    assert task.extract_lenient("rateshike, growthy") == MISSING  # whole words only
    assert task.extract_flexible("Growth, I think.") == "growth"


def test_multilabel_agreement_is_set_equality_ignoring_case(multilabel):
    task = multilabel[0]
    assert task.agrees("inflation, rates", "Rates, INFLATION")
    assert task.agrees(task.extract("Answer: rates and inflation"), "inflation, rates")
    assert not task.agrees("inflation", "inflation, rates")
    assert not task.agrees(MISSING, "inflation")
    # equal sets extract to one string, so synthesis votes count them together
    assert task.extract("Answer: rates, inflation") == task.extract("Answer: Inflation & Rates")


def test_multilabel_target_round_trips_and_perfect_scores_one(multilabel):
    task, rows = multilabel
    golds, inputs = [r["gold"] for r in rows], [r["input"] for r in rows]
    assert [task.extract(task.target(r)) for r in rows] == golds
    perfect = task.score(golds, [f"Thinking.\n{task.target(r)}" for r in rows], inputs)
    for metric in ("micro_f1", "macro_f1", "exact_match"):
        assert perfect[metric] == 1.0 and perfect[f"flexible_{metric}"] == 1.0
    assert perfect["main"] == 1.0 and perfect["missing_rate"] == 0.0
    garbage = task.score(golds, ["I cannot say."] * len(rows), inputs)
    assert garbage["missing_rate"] == 1.0 and garbage["main"] == 0.0
    assert garbage["macro_f1"] == garbage["exact_match"] == 0.0


def _sklearn(golds: list[str], preds: list[str]) -> dict[str, float]:
    """What the metrics should be, from scikit-learn and plain set comparison."""

    def labels_of(s: str) -> set[str]:
        if s == MISSING:
            return set()
        return {x.strip().lower() for x in re.split(r",|;| and ", s) if x.strip()}

    binarizer = MultiLabelBinarizer(classes=LABELS)
    y_true = binarizer.fit_transform([labels_of(g) for g in golds])
    y_pred = binarizer.transform([labels_of(p) for p in preds])
    return {
        "micro_f1": f1_score(y_true, y_pred, average="micro", zero_division=0),
        "macro_f1": f1_score(y_true, y_pred, average="macro", zero_division=0),
        "exact_match": float(
            np.mean(
                [
                    p != MISSING and labels_of(p) == labels_of(g)
                    for g, p in zip(golds, preds, strict=True)
                ]
            )
        ),
    }


def test_multilabel_scores_match_scikit_learn_and_the_row_counts(multilabel):
    task, rows = multilabel
    golds, inputs = [r["gold"] for r in rows], [r["input"] for r in rows]
    rng = np.random.default_rng(3)
    outputs = []
    for g in golds:  # right, a random other set, half right, or nothing
        pick = rng.integers(4)
        other = ", ".join(rng.choice(LABELS, size=rng.integers(1, 3), replace=False))
        outputs.append(
            [f"Answer: {g}", f"Answer: {other}", f"Answer: {g.split(', ')[0]}", "no idea"][pick]
        )
    preds = [task.extract(o) for o in outputs]
    got, want = task.score(golds, outputs, inputs), _sklearn(golds, preds)
    assert 0 < got["micro_f1"] < 1 and got["missing_rate"] == preds.count(MISSING) / len(preds)
    for metric, value in want.items():
        assert got[metric] == pytest.approx(value, abs=1e-12), metric
        scorer = RowScorer(task.name, task.kind, metric, task.labels)
        assert scorer.score(golds, preds, inputs) == pytest.approx(value, abs=1e-12), metric
    main = scorer_for(task.name)
    assert main is not None and main.metric == "micro_f1"
    assert main.score(golds, preds) == pytest.approx(got["micro_f1"], abs=1e-12)


def test_unregistered_multilabel_task_gets_its_labels_from_the_golds():
    scorer = scorer_for("ml_elsewhere", ["rates, jobs", "growth"], kind="multilabel")
    labels = ("growth", "jobs", "rates")
    assert scorer == RowScorer("ml_elsewhere", "multilabel", "micro_f1", labels)
    # tp 2 (jobs, rates), fn 1 (growth): micro-F1 4 / 5
    assert scorer.score(["rates, jobs", "growth"], ["jobs, rates", MISSING]) == pytest.approx(0.8)
