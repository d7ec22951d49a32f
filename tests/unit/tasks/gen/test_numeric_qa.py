"""`raysys.tasks.gen.numeric_qa`: golds in one plain rounded format, recomputed from the
table each question is about."""

from __future__ import annotations

import re

import pytest

from raysys.tasks import answers
from raysys.tasks.gen import numeric_qa


@pytest.mark.parametrize(
    "x, text", [(12.5, "12.5"), (-3.2666, "-3.27"), (40.0, "40"), (-0.001, "0"), (0, "0")]
)
def test_format_number(x, text):
    assert numeric_qa.format_number(x) == text


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
