"""The contract every generated task module keeps (`raysys.tasks.gen`: its registry and
`_common.make_splits`): sizes, ids, determinism, balance, no text shared between splits,
varied language, numeric golds in one format. One file per module for what is its own."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from raysys.tasks import answers
from raysys.tasks.gen import (
    GENERATORS,
    arith_math,
    numeric_qa,
)

MODULES = list(GENERATORS.values())
IDS = list(GENERATORS)


def _sizes(mod, train=40, validation=20, test=30) -> dict[str, int]:
    wanted = {"train": train, "validation": validation, "test": test}
    return {s: wanted[s] for s in mod.SPLITS}


def _body(row) -> str:
    """The varying text of a row: its last line without the leading 'Label: '."""
    return row["input"].splitlines()[-1].split(": ", 1)[1]


def test_registry_has_all_eight_tasks():
    assert set(GENERATORS) == {
        "news_sentiment",
        "price_direction",
        "fomc_stance",
        "fin_ner",
        "numeric_qa",
        "causal_detection",
        "general_instruct",
        "arith_math",
    }


@pytest.mark.parametrize("mod", MODULES, ids=IDS)
def test_module_contract(mod):
    assert mod.KIND in {"classification", "ner", "numeric", "freetext"}
    assert bool(mod.LABELS) == (mod.KIND == "classification")
    assert set(mod.SPLITS) <= {"train", "validation", "test"} and "test" in mod.SPLITS
    assert mod.PROMPT.count("{input}") == 1 and "Answer:" in mod.PROMPT
    mod.PROMPT.format(input="x")  # no stray placeholders


@pytest.mark.parametrize("mod", MODULES, ids=IDS)
def test_deterministic_sized_and_well_formed(mod):
    sizes = _sizes(mod)
    a, b = mod.generate_splits(sizes, 3), mod.generate_splits(sizes, 3)
    assert a == b
    assert list(a) == [s for s in ("train", "validation", "test") if s in sizes]
    for split, rows in a.items():
        assert len(rows) == sizes[split]
        assert [r["id"] for r in rows] == [f"{mod.NAME}-{split}-{i:06d}" for i in range(len(rows))]
        for r in rows:
            assert set(r) == {"id", "task", "split", "input", "gold"}
            assert r["task"] == mod.NAME and r["split"] == split
            assert r["input"].strip() and r["gold"].strip()


@pytest.mark.parametrize("mod", MODULES, ids=IDS)
def test_seed_changes_rows(mod):
    a = {r["input"] for r in mod.generate_splits({"test": 40}, 0)["test"]}
    b = {r["input"] for r in mod.generate_splits({"test": 40}, 1)["test"]}
    assert len(a & b) < 5


@pytest.mark.parametrize("mod", MODULES, ids=IDS)
def test_no_text_shared_between_splits(mod):
    out = mod.generate_splits(_sizes(mod, train=150, validation=60, test=90), 0)
    texts = {s: {r["input"] for r in rows} for s, rows in out.items()}
    for s, t in texts.items():
        assert len(t) == len(out[s])  # unique within a split too
    names = list(texts)
    for i, s in enumerate(names):
        for other in names[i + 1 :]:
            assert not texts[s] & texts[other]


@pytest.mark.parametrize("mod", [m for m in MODULES if "train" in m.SPLITS], ids=lambda m: m.NAME)
def test_eval_splits_do_not_depend_on_train_size(mod):
    small = mod.generate_splits({"train": 5, "validation": 20, "test": 30}, 0)
    big = mod.generate_splits({"train": 400, "validation": 20, "test": 30}, 0)
    assert small["test"] == big["test"] and small["validation"] == big["validation"]


@pytest.mark.parametrize("mod", [m for m in MODULES if m.LABELS], ids=lambda m: m.NAME)
@pytest.mark.parametrize("size", [31, 60])
def test_classification_labels_are_balanced(mod, size):
    rows = mod.generate_splits({"test": size}, 0)["test"]
    counts = Counter(r["gold"] for r in rows)
    assert set(counts) == set(mod.LABELS)
    assert max(counts.values()) - min(counts.values()) <= 1


# Distinct two-word openings in 300 rows; numeric_qa and general_instruct open with a
# handful of question forms, news_sentiment with one of 24 company names, by design:
# their variety is in the rest of the text.
MIN_OPENINGS = {"numeric_qa": 10, "general_instruct": 7, "fomc_stance": 15, "news_sentiment": 20}


@pytest.mark.parametrize("mod", MODULES, ids=IDS)
def test_language_is_varied(mod):
    rows = mod.generate_splits({"test": 300}, 0)["test"]
    bodies = [_body(r) for r in rows]
    openings = {" ".join(b.split()[:2]) for b in bodies}
    skeletons = {re.sub(r"\d+", "#", r["input"]) for r in rows}  # numbers alone don't count
    assert len(openings) >= MIN_OPENINGS.get(mod.NAME, 30)
    assert len(skeletons) >= 250
    lengths = Counter(len(b.split()) for b in bodies)
    assert len(lengths) >= 6  # not one fixed sentence shape


@pytest.mark.parametrize("mod", MODULES, ids=IDS)
def test_bad_requests_raise(mod):
    with pytest.raises(ValueError, match="unknown split"):
        mod.generate_splits({"dev": 3}, 0)
    with pytest.raises(ValueError, match="non-negative"):
        mod.generate_splits({"test": -1}, 0)
    assert mod.generate_splits({"test": 0}, 0) == {"test": []}


# ---------------------------------------------------------------- numeric


@pytest.mark.parametrize("mod", [numeric_qa, arith_math], ids=lambda m: m.NAME)
def test_numeric_golds_are_plain_rounded_numbers(mod):
    rows = mod.generate_splits({"test": 200}, 0)["test"]
    for r in rows:
        assert re.fullmatch(r"-?\d+(\.\d{1,2})?", r["gold"]), r["gold"]
        value = float(r["gold"])
        assert numeric_qa.format_number(value) == r["gold"]
        assert answers.numbers_match(answers.normalize_number(r["gold"]), value)
    assert any(r["gold"].startswith("-") for r in rows)  # signs matter
