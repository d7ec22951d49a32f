"""`raysys.tasks.gen.arith_math`: word problems whose gold is the exact result, recomputed
here from the numbers in the text for the story kinds that state all their operands."""

from __future__ import annotations

import re

import pytest

from raysys.tasks import answers
from raysys.tasks.gen import arith_math

ROWS = arith_math.generate_splits({"test": 400}, 0)["test"]


def _golds(pattern: str) -> list[tuple[re.Match, float]]:
    found = [(re.search(pattern, r["input"]), float(r["gold"])) for r in ROWS]
    return [(m, g) for m, g in found if m]


def test_distance_is_the_sum_of_both_legs():
    legs = r"(\d+(?:\.\d+)?) hours? at (\d+) km/h and then (\d+(?:\.\d+)?) hours? at (\d+) km/h"
    found = _golds(legs)
    assert len(found) >= 20
    for m, gold in found:
        h1, v1, h2, v2 = map(float, m.groups())
        assert gold == pytest.approx(h1 * v1 + h2 * v2, abs=0.005)


def test_a_discount_then_a_coupon():
    found = _golds(r"costs \$(\d+)\. .*?(\d+)%.*?a \$(\d+) coupon")
    assert len(found) >= 20
    for m, gold in found:
        price, pct, coupon = map(float, m.groups())
        assert gold == pytest.approx(price * (100 - pct) / 100 - coupon, abs=0.005)


def test_trading_losses_are_negative_golds():
    found = _golds(r"(\d+) shares at \$(\d+\.\d\d) and .*? at \$(\d+\.\d\d), paying \$(\d+)")
    assert len(found) >= 20
    for m, gold in found:
        n, buy, sell, fee = map(float, m.groups())
        assert gold == pytest.approx(n * (sell - buy) - fee, abs=0.005)
    assert any(g < 0 for _, g in found)


def test_every_story_kind_appears_and_golds_read_back():
    assert len(arith_math.KINDS) == 8
    for r in ROWS:
        assert answers.numbers_match(
            answers.normalize_number(f"Answer: {r['gold']}"), float(r["gold"])
        )
