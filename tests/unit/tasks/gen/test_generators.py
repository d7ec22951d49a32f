"""The generated task modules in raysys.tasks.gen: split guarantees, gold formats, scorers."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from raysys.tasks import answers, metrics
from raysys.tasks.gen import (
    GENERATORS,
    arith_math,
    fin_ner,
    fomc_stance,
    general_instruct,
    numeric_qa,
)
from raysys.tasks.gen._common import make_splits

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


def test_fomc_stance_is_test_only():
    assert fomc_stance.SPLITS == ("test",)
    for split in ("train", "validation"):
        with pytest.raises(ValueError, match="only"):
            fomc_stance.generate_splits({split: 10, "test": 10}, 0)


def test_impossible_size_raises():
    def same(rng, slot):
        return "always the same text", "x"

    assert len(make_splits("toy", ("test",), {"test": 1}, 0, same, ("x",))["test"]) == 1
    with pytest.raises(ValueError, match="cannot make 2 distinct test rows"):
        make_splits("toy", ("test",), {"test": 2}, 0, same, ("x",))


# ---------------------------------------------------------------- fin_ner


def test_ner_gold_round_trips_and_aligns():
    rows = fin_ner.generate_splits({"test": 200}, 0)["test"]
    counts = Counter()
    for r in rows:
        assert r["input"].startswith("Sentence: ")
        sentence = r["input"].removeprefix("Sentence: ")
        ents = answers.parse_entities(r["gold"])
        counts[len(ents)] += 1
        assert answers.format_entities(ents) == r["gold"]
        assert (r["gold"] == "none") == (not ents)
        tokens, tags = metrics.to_bio(sentence, ents)
        assert tokens == sentence.split() and len(tags) == len(tokens)
        spans = _spans(tokens, tags)
        assert [t for t, _ in spans] == [t for t, _ in ents]  # every entity found, in order
        for (_, got), (_, want) in zip(spans, ents, strict=True):
            assert got.replace("'s", "").rstrip(".,;'") == want
    assert set(counts) == {0, 1, 2, 3, 4} and min(counts.values()) == 40
    assert any(" " in s for r in rows for _, s in answers.parse_entities(r["gold"]))


def _spans(tokens, tags):
    out = []
    for tok, tag in zip(tokens, tags, strict=True):
        if tag.startswith("B-"):
            out.append([tag[2:], [tok]])
        elif tag.startswith("I-"):
            assert out and out[-1][0] == tag[2:]
            out[-1][1].append(tok)
    return [(t, " ".join(toks)) for t, toks in out]


# ---------------------------------------------------------------- numeric


@pytest.mark.parametrize(
    "x, text", [(12.5, "12.5"), (-3.2666, "-3.27"), (40.0, "40"), (-0.001, "0"), (0, "0")]
)
def test_format_number(x, text):
    assert numeric_qa.format_number(x) == text


@pytest.mark.parametrize("mod", [numeric_qa, arith_math], ids=lambda m: m.NAME)
def test_numeric_golds_are_plain_rounded_numbers(mod):
    rows = mod.generate_splits({"test": 200}, 0)["test"]
    for r in rows:
        assert re.fullmatch(r"-?\d+(\.\d{1,2})?", r["gold"]), r["gold"]
        value = float(r["gold"])
        assert numeric_qa.format_number(value) == r["gold"]
        assert answers.numbers_match(answers.normalize_number(r["gold"]), value)
    assert any(r["gold"].startswith("-") for r in rows)  # signs matter


def _cells(table: str) -> dict[str, list[float]]:
    out = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) > 2 and cells[0] not in ("Item", "---"):
            out[cells[0].lower()] = [answers.normalize_number(c) for c in cells[1:]]
    return out


def test_numeric_qa_gold_recomputes_from_the_table():
    rows = numeric_qa.generate_splits({"test": 150}, 0)["test"]
    checked = 0
    for r in rows:
        table, question = r["input"].rsplit("\nQuestion: ", 1)
        cells = _cells(table)
        years = re.findall(r"\| ((?:FY|Fiscal )?\d{4})", table.splitlines()[1])
        m = re.search(r"percentage change in (.+) from (.+) to (.+)\?", question)
        if m:
            metric, a, b = m.groups()
            old, new = cells[metric][years.index(a)], cells[metric][years.index(b)]
            assert answers.numbers_match(float(r["gold"]), (new - old) / old * 100)
            checked += 1
        m = re.search(r"net debt .* in (.+), in", question)
        if m:
            i = years.index(m.group(1))
            net = cells["total debt"][i] - cells["cash and equivalents"][i]
            assert float(r["gold"]) == pytest.approx(net, abs=0.01)
            checked += 1
    assert checked >= 10
    negatives = [v for r in rows for vals in _cells(r["input"]).values() for v in vals if v < 0]
    assert negatives  # losses appear in accounting parentheses and are read back as negative


# ---------------------------------------------------------------- general_instruct


def test_general_instruct_golds_are_exact():
    rows = general_instruct.generate_splits({"test": 210}, 0)["test"]
    kinds = Counter()
    for r in rows:
        ask, gold = r["input"].removeprefix("Instruction: "), r["gold"]
        assert gold == gold.strip() and "\n" not in gold
        if ask.startswith("Rewrite this text in uppercase: "):
            assert gold == ask.split(": ", 1)[1].upper()
            kinds["upper"] += 1
        elif ask.startswith("How many words"):
            assert int(gold) == len(ask.split('"')[1].split())
            kinds["count"] += 1
        elif ask.startswith("Reverse"):
            assert gold.split(", ") == ask.split(": ", 1)[1].split(", ")[::-1]
            kinds["reverse"] += 1
        elif ask.startswith("Sort"):
            assert gold.split(", ") == sorted(ask.split(": ", 1)[1].split())
            kinds["sort"] += 1
        elif ask.startswith("Which word"):
            words = ask.split("? ", 1)[1].split(", ")
            assert [w for w in words if len(w) == max(map(len, words))] == [gold]
            kinds["longest"] += 1
    assert set(kinds.values()) == {30}
