"""`raysys.tasks.gen.price_direction`: terse headlines about a named target company, up or
down, some negated; no placeholder left."""

from __future__ import annotations

import re
from collections import Counter

from raysys.tasks.gen import price_direction


def test_headlines_name_their_target_company():
    rows = price_direction.generate_splits({"test": 120}, 0)["test"]
    assert Counter(r["gold"] for r in rows) == {"up": 60, "down": 60}
    for r in rows:
        company, headline = r["input"].split("\n")
        assert company.startswith("Company: ") and headline.startswith("Headline: ")
        assert company.removeprefix("Company: ") in headline
        assert not re.search(r"[{}]", headline)


def test_some_headlines_negate_their_event():
    rows = price_direction.generate_splits({"test": 200}, 0)["test"]
    negated = [r for r in rows if re.search(r"\b(fails to|no longer|not)\b", r["input"])]
    assert 10 <= len(negated) < 200
