"""Task kinds (`raysys.tasks.kinds`): the registry, dispatch through the kind object, and
nothing else branching on kind names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from raysys.analysis.rowscore import RowScorer
from raysys.tasks import get_task
from raysys.tasks.base import MISSING, Task
from raysys.tasks.gen import GENERATORS
from raysys.tasks.kinds import (
    KINDS,
    Classification,
    Freetext,
    Kind,
    Ner,
    Numeric,
)

ROOT = Path(__file__).resolve().parents[1]

# --- the registry ------------------------------------------------------------------------


def test_registry_holds_one_object_per_kind_under_its_name():
    assert set(KINDS) == {"classification", "ner", "numeric", "freetext"}
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
    text = (ROOT / module).read_text()
    assert not re.search(r"kind\s*(==|!=)\s*[\"']|kind in \(", text), module


def test_scoring_modules_do_not_import_evaluate_or_generators():
    for module in ("base", "answers", "metrics", "kinds"):
        text = (ROOT / "raysys" / "tasks" / f"{module}.py").read_text()
        assert "raysys.evaluate" not in text and "raysys.tasks.gen" not in text, module
