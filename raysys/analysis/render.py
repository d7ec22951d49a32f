"""A tiny document model rendered twice: Markdown (images linked) and self-contained HTML.

Building the report once as blocks keeps report.md and report.html saying the same thing;
the HTML embeds every image as a data URI and styles itself inline, so it reads offline
and survives being mailed or attached to an issue.
"""

from __future__ import annotations

import base64
import html
import math
import numbers
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Para:
    text: str  # plain text; `backticks` become code


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[list[str]]
    numeric: list[bool]  # right-align these columns


@dataclass(frozen=True)
class Image:
    name: str  # key in Document.plots, written as plots/<name>.png
    alt: str


Block = Heading | Para | Table | Image


@dataclass
class Document:
    title: str
    blocks: list[Block] = field(default_factory=list)
    plots: dict[str, bytes] = field(default_factory=dict)

    def add(self, *blocks: Block) -> None:
        self.blocks.extend(blocks)

    def image(self, name: str, png: bytes, alt: str) -> None:
        self.plots[name] = png
        self.blocks.append(Image(name, alt))


def table(frame: pd.DataFrame) -> Table:
    """A Table from a frame whose cells are already formatted (see `fmt`); numeric
    alignment comes from the cells looking like numbers."""
    rows = [[str(v) for v in row] for row in frame.itertuples(index=False)]
    numeric = [
        bool(rows) and all(_NUMBER_RE.match(r[i]) for r in rows) for i in range(len(frame.columns))
    ]
    return Table([str(c) for c in frame.columns], rows, numeric)


_NUMBER_RE = re.compile(
    r"^([–∞]|<?[-+−]?[\d,]*\.?\d+(e[+-]?\d+)?( \[.*\])?)( constant( \d+/\d+ seeds)?)?$"
)
MISSING = "–"


def fmt(value: object, digits: int = 3, signed: bool = False) -> str:
    """A number for a table cell; NaN/None shows as an en dash, inf as ∞."""
    if value is None or value is pd.NA:
        return MISSING
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        value = float(value)
        if math.isnan(value):
            return MISSING
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
    return str(value)


def text(value: object) -> str:
    """A text cell; a missing value (NaN in an all-missing column) shows as an en dash."""
    return value if isinstance(value, str) else MISSING


def fmt_ci(mean: float, lo: float, hi: float, digits: int = 3, signed: bool = False) -> str:
    """`0.712 [0.690, 0.734]`, or the mean alone when the interval is unknown or has no
    width at the printed precision: a zero-width interval would claim certainty."""
    mean_s = fmt(mean, digits, signed)
    if math.isnan(lo) or math.isnan(hi) or fmt(lo, digits) == fmt(hi, digits):
        return mean_s
    return f"{mean_s} [{fmt(lo, digits, signed)}, {fmt(hi, digits, signed)}]"


def constant_mark(constant: object, models: int = 1) -> str:
    """The suffix that marks a score made by constant predictors: ` constant` when all
    `models` (seeds) are, ` constant k/n seeds` when some are, else nothing."""
    if not isinstance(constant, numbers.Real) or math.isnan(float(constant)) or constant <= 0:
        return ""
    k = int(constant)
    return " constant" if k >= models else f" constant {k}/{models} seeds"


def fmt_p(p: float) -> str:
    """A p-value: 3 decimals, `<0.001` below that, an en dash where no test ran."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return MISSING
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def to_markdown(doc: Document) -> str:
    parts = [f"# {doc.title}"]
    for block in doc.blocks:
        if isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Para):
            parts.append(block.text)
        elif isinstance(block, Table):
            parts.append(md_table(block))
        else:
            parts.append(f"![{block.alt}](plots/{block.name}.png)")
    return "\n\n".join(parts) + "\n"


def md_table(t: Table) -> str:
    def cells(values: list[str]) -> str:
        return "| " + " | ".join(v.replace("|", "\\|") for v in values) + " |"

    rule = "|" + "|".join("---:" if num else "---" for num in t.numeric) + "|"
    return "\n".join([cells(t.columns), rule, *(cells(r) for r in t.rows)])


def to_html(doc: Document) -> str:
    body = []
    for block in doc.blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Para):
            body.append(f"<p>{_inline(block.text)}</p>")
        elif isinstance(block, Table):
            body.append(_html_table(block))
        else:
            data = base64.b64encode(doc.plots[block.name]).decode("ascii")
            alt = html.escape(block.alt)
            body.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{alt}">'
                f"<figcaption>{alt}</figcaption></figure>"
            )
    title = html.escape(doc.title)
    return _PAGE.format(title=title, style=_STYLE, body="\n".join(body))


def _inline(text: str) -> str:
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


_NUM = ' class="num"'


def _html_table(t: Table) -> str:
    def row(tag: str, values: list[str]) -> str:
        cells = (
            f"<{tag}{_NUM if num else ''}>{html.escape(v)}</{tag}>"
            for v, num in zip(values, t.numeric, strict=True)
        )
        return "<tr>" + "".join(cells) + "</tr>"

    head = row("th", t.columns)
    rows = "\n".join(row("td", r) for r in t.rows)
    return (
        f'<div class="scroll"><table>\n<thead>{head}</thead>\n'
        f"<tbody>\n{rows}\n</tbody></table></div>"
    )


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<h1>{title}</h1>
{body}
</body>
</html>
"""

_STYLE = """
body { font-family: -apple-system, "Segoe UI", "DejaVu Sans", Helvetica, Arial, sans-serif;
       max-width: 1240px; margin: 2em auto; padding: 0 1.2em; color: #1f2328; line-height: 1.45; }
h1 { font-size: 1.7em; border-bottom: 2px solid #d0d7de; padding-bottom: .3em; }
h2 { font-size: 1.3em; margin-top: 2em; border-bottom: 1px solid #d0d7de; padding-bottom: .2em; }
p { margin: .6em 0; }
code { background: #f0f2f4; padding: .1em .35em; border-radius: 4px; font-size: .92em; }
.scroll { overflow-x: auto; margin: .8em 0; }
table { border-collapse: collapse; font-size: .86em; }
th, td { border: 1px solid #d0d7de; padding: .28em .6em; vertical-align: top; }
th { background: #f6f8fa; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num { white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafbfc; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
figcaption { font-size: .85em; color: #57606a; }
"""
