"""News sentiment (positive / negative / neutral) for a named company's shareholders.

Generated offline from a seed. The sentence mentions a *target* company and
often a rival with the opposite news, negates events ("did not cut"), or
contrasts two clauses ("despite ..., ..."), so keyword spotting is not enough:
the label is the news for the target, and in a contrast the main clause wins.
"""

from __future__ import annotations

import random
from typing import Any

from raysys.tasks.gen._common import make_splits

LABELS = ("positive", "negative", "neutral")
NAME = "news_sentiment"
KIND = "classification"
SPLITS = ("train", "validation", "test")
PROMPT = (
    "Decide the sentiment of the news for the shareholders of the named company.\n"
    "{input}\n"
    "Options: positive, negative, neutral.\n"
    "End with a line of the form 'Answer: <option>'."
)

COMPANIES = [
    "Norvale Energy",
    "Calder Bank",
    "Brightwater Foods",
    "Kestrel Airlines",
    "Oakhurst Pharma",
    "Veltrix Semiconductors",
    "Marlow Insurance",
    "Pinecrest Retail",
    "Halden Steel",
    "Sorrel Telecom",
    "Arden Logistics",
    "Quillon Software",
    "Redfern Mining",
    "Tamsin Motors",
    "Ellery Capital",
    "Fenwick Utilities",
    "Grisham Chemicals",
    "Lowell Media",
    "Harrow Shipping",
    "Ivers Biotech",
    "Juno Payments",
    "Kinsale Hotels",
    "Larch Paper",
    "Moreland Foods",
]
ANALYSTS = [
    "Morgan Hale",
    "Brent & Co",
    "Castell Research",
    "Dunmore Securities",
    "Everly Partners",
]
QUARTERS = ["first-quarter", "second-quarter", "third-quarter", "fourth-quarter", "full-year"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]

# Each event is a verb phrase with the company as subject.
POSITIVE = [
    "reported {q} profit of ${m} million, well above analyst estimates",
    "raised its {q} revenue guidance by {p}%",
    "won a ${b} billion contract to supply {thing}",
    "announced a ${m} million share buyback",
    "was upgraded to buy by {a}",
    "saw its shares jump {p}% after strong {q} sales",
    "cut its net debt by {p}% ahead of schedule",
    "lifted its dividend by {p}%",
    "posted record {q} margins",
    "secured regulatory approval for its {thing}",
]
NEGATIVE = [
    "reported a {q} loss of ${m} million, wider than analysts expected",
    "cut its {q} revenue guidance by {p}%",
    "lost a ${b} billion contract to supply {thing}",
    "suspended its dividend to preserve cash",
    "was downgraded to sell by {a}",
    "saw its shares slump {p}% after weak {q} sales",
    "issued a profit warning, citing rising costs",
    "faces a regulatory probe into its {thing}",
    "recalled {n} thousand units of its {thing}",
    "breached a covenant on ${m} million of loans",
]
NEUTRAL = [
    "will publish its {q} results on {d}",
    "said its annual meeting will take place on {d}",
    "moved its registered office to a new address",
    "confirmed that its {q} results are scheduled as planned",
    "saw its shares close unchanged at ${m}",
    "completed the previously announced rename of its {thing} unit",
    "said trading has been in line with its earlier outlook",
    "appointed {a} as its new auditor",
    "published its annual sustainability report",
    "will present at an industry conference on {d}",
]
# Negations flip the news: "did not cut its dividend" is good for shareholders.
NEGATED_POSITIVE = [  # read as negative
    "failed to win a ${b} billion contract to supply {thing}",
    "did not raise its dividend, as investors had hoped",
    "will no longer buy back shares this year",
    "could not secure approval for its {thing}",
]
NEGATED_NEGATIVE = [  # read as positive
    "did not cut its dividend, contrary to market fears",
    "avoided a {q} loss that analysts had expected",
    "said it does not expect any job cuts or write-downs",
    "was cleared in a regulatory probe into its {thing}",
]
THINGS = [
    "wind turbines",
    "payment terminals",
    "cargo ships",
    "diabetes drug",
    "data centres",
    "electric vans",
    "steel rails",
    "fibre network",
    "frozen meals",
    "mining trucks",
]
POLARITY = {
    "positive": POSITIVE + NEGATED_NEGATIVE,
    "negative": NEGATIVE + NEGATED_POSITIVE,
    "neutral": NEUTRAL,
}
OPPOSITE = {"positive": "negative", "negative": "positive", "neutral": "positive"}


def _fill(tpl: str, rng: random.Random) -> str:
    return tpl.format(
        q=rng.choice(QUARTERS),
        m=rng.randint(12, 950),
        b=round(rng.uniform(0.2, 9.5), 1),
        p=rng.randint(2, 35),
        a=rng.choice(ANALYSTS),
        d=rng.choice(DAYS),
        thing=rng.choice(THINGS),
        n=rng.randint(5, 400),
    )


def _event(label: str, rng: random.Random) -> str:
    return _fill(rng.choice(POLARITY[label]), rng)


def sentence(label: str, rng: random.Random) -> tuple[str, dict[str, str]]:
    """The news text, and its parts a rationale can name: `target`, `rival`, the
    target's `main` event and the `shape` (plain, rival, contrast, separately)."""
    target, rival = rng.sample(COMPANIES, 2)
    style = rng.random()
    main = _event(label, rng)
    if style < 0.35:
        shape, text = "plain", f"{target} {main}."
    elif style < 0.6:  # a rival with different news: the distractor
        other = _event(OPPOSITE[label], rng)
        joiner = rng.choice(["while", "whereas", "even as"])
        shape, text = "rival", f"{target} {main}, {joiner} rival {rival} {other}."
    elif style < 0.8 and label != "neutral":  # contrast: the main clause decides
        concession = _event(OPPOSITE[label], rng)
        shape, text = "contrast", f"Despite news that it {concession}, {target} {main}."
    else:  # reported speech with the rival first
        other = _event(rng.choice(["positive", "negative", "neutral"]), rng)
        shape, text = "separately", f"{rival} {other}; separately, {target} {main}."
    return text, {"target": target, "rival": rival, "main": main, "shape": shape}


def _make(rng: random.Random, label: Any) -> tuple[str, str]:
    text, parts = sentence(label, rng)
    return f"Company: {parts['target']}\nNews: {text}", label


def generate_splits(sizes: dict[str, int], seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    """Rows cycle through the labels, so every split is balanced."""
    return make_splits(NAME, SPLITS, sizes, seed, _make, LABELS)
