"""`raysys.analysis.render`: cell formatting (NaN, inf, signs, intervals that claim no
false certainty, p-values, the `constant` mark) and one document rendered as Markdown and
as self-contained, escaped HTML."""

from __future__ import annotations

import base64
import math
import re

import numpy as np
import pandas as pd
import pytest

from raysys.analysis.render import (
    MISSING,
    Document,
    Heading,
    Para,
    Table,
    constant_mark,
    fmt,
    fmt_ci,
    fmt_p,
    md_table,
    table,
    text,
    to_html,
    to_markdown,
)


@pytest.mark.parametrize(
    "value, kw, cell",
    [
        (0.71234, {}, "0.712"),
        (0.71234, {"digits": 1}, "0.7"),
        (0.05, {"signed": True}, "+0.050"),
        (-0.05, {"signed": True}, "-0.050"),
        (1234567, {}, "1,234,567"),
        (np.int64(12), {}, "12"),
        (np.float32(0.5), {}, "0.500"),
        (math.nan, {}, MISSING),
        (None, {}, MISSING),
        (pd.NA, {}, MISSING),
        (math.inf, {}, "∞"),
        (-math.inf, {}, "−∞"),
        (True, {}, "yes"),
        (np.bool_(False), {}, "no"),
        ("abc", {}, "abc"),
    ],
)
def test_fmt(value, kw, cell):
    assert fmt(value, **kw) == cell


def test_text_cells():
    assert text("news") == "news" and text(math.nan) == MISSING and text(None) == MISSING


@pytest.mark.parametrize(
    "args, cell",
    [
        ((0.712, 0.69, 0.734), "0.712 [0.690, 0.734]"),
        ((0.05, -0.01, 0.1), "0.050 [-0.010, 0.100]"),
        ((0.712, math.nan, 0.734), "0.712"),  # no interval: the mean alone
        ((0.7, 0.7001, 0.7004), "0.700"),  # no width at 3 decimals: no false certainty
    ],
)
def test_fmt_ci(args, cell):
    assert fmt_ci(*args) == cell


def test_fmt_ci_signed():
    assert fmt_ci(0.05, -0.01, 0.1, signed=True) == "+0.050 [-0.010, +0.100]"


@pytest.mark.parametrize(
    "p, cell",
    [
        (0.0004, "<0.001"),
        (0.001, "0.001"),
        (0.04567, "0.046"),
        (math.nan, MISSING),
        (None, MISSING),
    ],
)
def test_fmt_p(p, cell):
    assert fmt_p(p) == cell


@pytest.mark.parametrize(
    "constant, models, mark",
    [
        (1, 1, " constant"),
        (3, 3, " constant"),
        (1, 3, " constant 1/3 seeds"),
        (0, 3, ""),
        (math.nan, 1, ""),
        (None, 1, ""),
    ],
)
def test_constant_mark(constant, models, mark):
    assert constant_mark(constant, models) == mark


def test_table_right_aligns_columns_that_look_like_numbers():
    frame = pd.DataFrame(
        {
            "arm": ["a|b", "c"],
            "score": ["0.712 [0.690, 0.734]", "0.500 constant"],
            "rows": ["1,200", MISSING],
            "p": ["<0.001", "0.030"],
        }
    )
    t = table(frame)
    assert t.columns == ["arm", "score", "rows", "p"]
    assert t.numeric == [False, True, True, True]
    assert md_table(t).splitlines()[:3] == [
        "| arm | score | rows | p |",
        "|---|---:|---:|---:|",
        "| a\\|b | 0.712 [0.690, 0.734] | 1,200 | <0.001 |",  # a pipe in a cell is escaped
    ]
    assert table(pd.DataFrame({"x": []})).numeric == [False]  # no rows: nothing to align


PNG = b"\x89PNG\r\n\x1a\nnot really"


def _doc() -> Document:
    doc = Document("Sweep <report>")
    doc.add(Heading(2, "Scores & ranks"), Para("Chosen on `validation` <b>only</b>."))
    doc.add(Table(["arm", "main"], [["<x>", "0.7"]], [False, True]))
    doc.image("transfer", PNG, 'gain "heat" map')
    return doc


def test_markdown_links_the_plots():
    md = to_markdown(_doc())
    assert md == (
        "# Sweep <report>\n\n## Scores & ranks\n\nChosen on `validation` <b>only</b>.\n\n"
        "| arm | main |\n|---|---:|\n| <x> | 0.7 |\n\n"
        '![gain "heat" map](plots/transfer.png)\n'
    )


def test_html_is_escaped_and_embeds_the_plots():
    page = to_html(_doc())
    assert page.startswith("<!DOCTYPE html>") and "<title>Sweep &lt;report&gt;</title>" in page
    assert "<h2>Scores &amp; ranks</h2>" in page
    assert "<p>Chosen on <code>validation</code> &lt;b&gt;only&lt;/b&gt;.</p>" in page
    assert '<tr><td>&lt;x&gt;</td><td class="num">0.7</td></tr>' in page
    data = re.search(r'src="data:image/png;base64,([^"]+)"', page).group(1)
    assert base64.b64decode(data) == PNG
    assert 'alt="gain &quot;heat&quot; map"' in page
    assert "http" not in page.split("<body>")[1]  # nothing to fetch: reads offline
