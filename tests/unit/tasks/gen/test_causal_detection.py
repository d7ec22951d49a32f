"""`raysys.tasks.gen.causal_detection`: statements whose label rests on the connective,
not the topic: both labels draw on the same companies, every placeholder is filled."""

from __future__ import annotations

import re

from raysys.tasks.gen import causal_detection as cd

COMPANIES = cd.COMPANIES.split("|")


def _company(text: str) -> str:
    return next(c for c in COMPANIES if c in text)


def test_statements_are_whole_sentences_about_a_known_company():
    rows = cd.generate_splits({"test": 200}, 0)["test"]
    for r in rows:
        body = r["input"].removeprefix("Statement: ")
        assert r["input"].startswith("Statement: ") and body[0].isupper()
        assert not re.search(r"[{}]", body) and "s's " not in body
        assert _company(body)
        assert r["gold"] in cd.LABELS


def test_both_labels_share_the_topics():
    rows = cd.generate_splits({"test": 400}, 0)["test"]
    by_label = {lab: {_company(r["input"]) for r in rows if r["gold"] == lab} for lab in cd.LABELS}
    assert by_label["causal"] == by_label["noncausal"] == set(COMPANIES)


def test_the_prompt_names_both_options():
    assert "Options: causal, noncausal." in cd.PROMPT and cd.PROMPT.count("{input}") == 1
