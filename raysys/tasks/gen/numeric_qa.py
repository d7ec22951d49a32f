"""Numeric question answering over a small financial table (FinQA-style, generated).

Each input is a text table of one fictional company's figures ($ millions, two or
three fiscal years, rows in random order, losses in accounting parentheses) and a
question needing a percentage change, a signed difference, a ratio, a share of revenue
or a derived gap (operating profit, net debt). Non-trivial: the model must pick the
right cells among distractor rows and years, read '(12.3)' as negative and get the
sign and the direction of the division right. The gold is the number rounded to
2 decimals as a plain string; `raysys.tasks.answers.normalize_number` / `numbers_match`
score answers.
"""

from __future__ import annotations

import random
from typing import Any

from raysys.tasks.gen._common import make_splits, pick

NAME = "numeric_qa"
KIND = "numeric"
LABELS: tuple[str, ...] = ()
SPLITS = ("train", "validation", "test")
PROMPT = (
    "Use the table to answer the question.\n"
    "{input}\n"
    "Give the result as a plain number rounded to 2 decimal places, with no units and no "
    "$ or % sign: a percentage as its number of percent, a decrease or deficit as a negative "
    "number. End with a final line of the form 'Answer: <number>'."
)

COMPANIES = (
    "Tallis Instruments|Mirefield Foods|Corrib Shipping|Saxonby Retail|Amberley Telecom"
    "|Kestwick Pharma|Orland Mining|Brackenridge Energy|Lovell Apparel|Penwarden Software"
    "|Hollin Chemicals|Droitwich Freight|Calloway Hotels|Steyning Water|Arncliffe Media"
)
KINDS = ("pct_change", "difference", "ratio", "share", "gap")
POSITIVE_ROWS = ("Revenue", "Operating costs", "Total debt", "Cash and equivalents", "Capex")
PHRASES = {
    "pct_change": [
        "What was the percentage change in {m} from {a} to {b}?",
        "By what percent did {m} change between {a} and {b}?",
        "Compute the growth rate of {m} from {a} to {b}, in percent.",
    ],
    "difference": [
        "By how much did {m} change from {a} to {b}, in $ millions?",
        "What was the change in {m} between {a} and {b} ($ millions)?",
    ],
    "ratio": [
        "What was the ratio of {m} to {n} in {b}?",
        "In {b}, {m} was how many times {n}?",
    ],
    "share": [
        "What was {m} as a percentage of revenue in {b}?",
        "In {b}, what share of revenue did {m} represent, in percent?",
    ],
}
GAPS = {  # question -> (minuend, subtrahend)
    "What was operating profit (revenue minus operating costs) in {b}, in $ millions?": (
        "Revenue",
        "Operating costs",
    ),
    "What was net debt (total debt minus cash and equivalents) in {b}, in $ millions?": (
        "Total debt",
        "Cash and equivalents",
    ),
}


def format_number(x: float) -> str:
    """Round to 2 decimals and drop trailing zeros: 12.5, -3.27, 40, never '-0'."""
    text = f"{round(x, 2):.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _figures(rng: random.Random, years: int) -> list[dict[str, float]]:
    """Plausible, internally consistent figures per year, rounded as they are displayed."""
    rev, debt, cash = rng.uniform(60, 6000), rng.uniform(15, 3500), rng.uniform(8, 1800)
    out = []
    for _ in range(years):
        rev *= rng.uniform(0.78, 1.35)
        debt *= rng.uniform(0.7, 1.4)
        cash *= rng.uniform(0.6, 1.5)
        out.append(
            {
                "Revenue": rev,
                "Operating costs": rev * rng.uniform(0.55, 0.97),
                "Net income": rev * rng.uniform(-0.09, 0.18),
                "Total debt": debt,
                "Cash and equivalents": cash,
                "Capex": rev * rng.uniform(0.02, 0.15),
            }
        )
    return [{k: round(v, 1) for k, v in year.items()} for year in out]


def _cell(v: float) -> str:
    return f"({abs(v):,.1f})" if v < 0 else f"{v:,.1f}"


def _table(company: str, labels: list[str], figs: list[dict[str, float]], rng) -> str:
    rows = list(figs[0])
    rng.shuffle(rows)  # row order varies so position is no shortcut
    lines = [
        f"{company} - selected figures ($ millions; parentheses mean negative)",
        "| Item | " + " | ".join(labels) + " |",
        "|---" * (len(labels) + 1) + "|",
    ]
    lines += [f"| {r} | " + " | ".join(_cell(f[r]) for f in figs) + " |" for r in rows]
    return "\n".join(lines)


def _question(kind: str, labels, figs, rng: random.Random) -> tuple[str, float]:
    ia, ib = sorted(rng.sample(range(len(labels)), 2))
    a, b, yb = labels[ia], labels[ib], figs[ib]
    if kind == "gap":
        tpl = rng.choice(list(GAPS))
        x, y = GAPS[tpl]
        return tpl.format(b=b), yb[x] - yb[y]
    tpl = rng.choice(PHRASES[kind])
    if kind == "pct_change":
        m = rng.choice(POSITIVE_ROWS)
        value = (yb[m] - figs[ia][m]) / figs[ia][m] * 100
    elif kind == "difference":
        m = rng.choice([*POSITIVE_ROWS, "Net income"])
        value = yb[m] - figs[ia][m]
    elif kind == "ratio":
        m, n = rng.sample(POSITIVE_ROWS, 2)
        value = yb[m] / yb[n]
        return tpl.format(m=m.lower(), n=n.lower(), b=b), value
    else:
        m = rng.choice(["Net income", "Operating costs", "Capex"])
        value = yb[m] / yb["Revenue"] * 100
    return tpl.format(m=m.lower(), a=a, b=b), value


def _make(rng: random.Random, kind: Any) -> tuple[str, str]:
    first = rng.randint(2012, 2022)
    style = pick(rng, "FY{y}|{y}|Fiscal {y}")
    labels = [style.format(y=first + i) for i in range(rng.choice([2, 2, 3]))]
    figs = _figures(rng, len(labels))
    question, value = _question(kind, labels, figs, rng)
    table = _table(pick(rng, COMPANIES), labels, figs, rng)
    return f"{table}\nQuestion: {question}", format_number(value)


def generate_splits(sizes: dict[str, int], seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    """Rows cycle through the five question kinds so each is equally common."""
    return make_splits(NAME, SPLITS, sizes, seed, _make, KINDS)
