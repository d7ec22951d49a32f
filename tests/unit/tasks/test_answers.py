"""`raysys.tasks.answers`, every answer parser: the `Answer:` line, numbers (signs,
accounting brackets, thousands), entity lists (round trip with hypothesis), free text."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raysys.tasks import answers
from raysys.tasks.answers import (
    ANSWER_LINE_RE,
    MISSING,
    answer_regex,
    format_entities,
    last_line,
    last_number,
    normalize_text,
    parse_entities,
)

LABELS = ("positive", "negative", "neutral")


@pytest.mark.parametrize(
    "text, label",
    [
        ("Answer: positive", "positive"),
        ("answer:NEGATIVE", "NEGATIVE"),
        ("**Answer**: neutral.", "neutral"),
        ("Final answer ： 'positive'", "positive"),  # full-width colon, quotes
        ("Answer: positively", None),  # a whole word only
        ("The answer is positive", None),  # no colon: no answer line
        ("Answer:\n\npositive", "positive"),  # whitespace may include newlines here
    ],
)
def test_answer_regex(text, label):
    m = answer_regex(LABELS).search(text)
    assert (m.group(1) if m else None) == label


def test_answer_regex_prefers_the_longest_label():
    m = answer_regex(("up", "up strongly")).search("Answer: up strongly")
    assert m.group(1) == "up strongly"


def test_answer_line_is_the_rest_of_the_line():
    assert ANSWER_LINE_RE.search("x\nAnswer: *42 million*\nmore").group(1) == "42 million*"
    assert ANSWER_LINE_RE.search("no answer here") is None


def test_last_number_runs_to_the_end_of_its_line():
    assert last_number("12 then 7.5%\nbye") == "7.5%"
    assert last_number("loss of (3.2) million") == "(3.2) million"
    assert last_number("nothing") == MISSING


@pytest.mark.parametrize(
    "entities, text",
    [
        ([("PER", "Ana Vega"), ("ORG", "Calder Bank")], "PER: Ana Vega; ORG: Calder Bank"),
        ([], "none"),
    ],
)
def test_format_entities(entities, text):
    assert format_entities(entities) == text
    assert parse_entities(text) == entities


surface = st.text(alphabet="ABCdef &-", min_size=1, max_size=20).filter(
    lambda s: s.strip(" \t\"'.,") == s and s.lower() != "none" and s.strip()
)


@given(st.lists(st.tuples(st.sampled_from(["PER", "ORG", "LOC"]), surface), max_size=5))
def test_formatted_entities_parse_back_exactly(entities):
    assert parse_entities(format_entities(entities)) == entities


@pytest.mark.parametrize(
    "text, norm",
    [('  "Hello   World" ', "hello world"), ("`X`", "x"), ("ÄBC", "äbc"), ("Straße", "strasse")],
)
def test_normalize_text(text, norm):
    assert normalize_text(text) == norm


def test_last_line():
    assert last_line("a\n  b  \n\n") == "b"
    assert last_line(" \n\n") == MISSING


@pytest.mark.parametrize(
    "text, expected",
    [
        ("PER: Maria Okafor; ORG: Calder Bank", [("PER", "Maria Okafor"), ("ORG", "Calder Bank")]),
        (
            "per :Maria Okafor ;  Org:  Calder Bank ",
            [("PER", "Maria Okafor"), ("ORG", "Calder Bank")],
        ),
        (
            "Person: Ana de la Vega\nLocation: Port Meridian.",
            [("PER", "Ana de la Vega"), ("LOC", "Port Meridian")],
        ),
        ("**LOC**: Velden; - ORG: Ostrand Group", [("LOC", "Velden"), ("ORG", "Ostrand Group")]),
        ("Answer: PER: Jean-Luc Moreau", [("PER", "Jean-Luc Moreau")]),
        ("none", []),
        ("", []),
        ("I found these; MISC: Euro; LOC:; ORG Calder; junk", []),
        ("ORG: Halvorsen & Reed Capital; LOC: none", [("ORG", "Halvorsen & Reed Capital")]),
    ],
)
def test_parse_entities(text, expected):
    assert parse_entities(text) == expected


@pytest.mark.parametrize(
    "text, value",
    [
        ("$1,234.5", 1234.5),
        ("12.5%", 12.5),
        ("-3.27 million", -3.27),
        ("(3.2)", -3.2),
        ("($1,200.50)", -1200.5),
        ("(3.2%)", -3.2),
        ("-$3", -3.0),
        ("−4.1", -4.1),  # unicode minus
        ("+7", 7.0),
        (".5", 0.5),
        ("Answer: 1,000,000", 1_000_000.0),
        ("about 42 percent", 42.0),
        ("12.5 (up from 10)", 12.5),  # first number wins; the bracket is not accounting
        ("Answer - 5", 5.0),  # a dash, not a minus
        ("no idea", None),
        ("", None),
    ],
)
def test_normalize_number(text, value):
    assert answers.normalize_number(text) == value


def test_numbers_match():
    match = answers.numbers_match
    assert match(12.5, 12.5) and match(12.6, 12.5)  # within 1%
    assert not match(13.0, 12.5)
    assert match(0.005, 0.0) and not match(0.05, 0.0)  # absolute tolerance near zero
    assert not match(-12.5, 12.5)
    assert not match(None, 1.0) and not match(math.nan, 1.0) and not match(math.inf, 1.0)
    assert match(101.0, 100.0, rel_tol=0.02) and not match(101.0, 100.0, rel_tol=0.001)
