"""General instruction following with one exact reference answer (a regulariser).

Mixed into fine-tuning so the model keeps following plain instructions while it
learns finance tasks. Seven instruction kinds: uppercase a phrase, take the first N
items of a list, count words, reverse a list, pick the longest word, reformat a date
and sort words. Each has exactly one correct answer (ties for the longest word are
never generated, source date formats are spelled out), so `gold` can be compared
verbatim after trimming whitespace.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

from raysys.tasks.gen._common import make_splits

NAME = "general_instruct"
KIND = "freetext"
LABELS: tuple[str, ...] = ()
SPLITS = ("train", "validation", "test")
PROMPT = (
    "Follow the instruction exactly.\n"
    "{input}\n"
    "Put only the result, with no quotes or extra words, on a final line of the form "
    "'Answer: <result>'."
)

WORDS = (
    "apple river candle market garden silver window planet ledger harbor pencil meadow "
    "bridge coffee engine forest ticket marble rocket violin basket castle dragon jacket "
    "lantern mirror orange pepper rabbit saddle tunnel wallet yogurt zebra anchor bottle "
    "cactus dollar falcon guitar island kettle lemon magnet needle oyster parrot quartz "
    "ribbon salmon tomato velvet walnut bond yield asset equity hedge rally audit budget "
    "credit margin profit tariff invoice pension broker option coupon"
).split()
KINDS = ("upper", "first_n", "count", "reverse", "longest", "date", "sort")
DATE_FORMATS = {  # name shown to the model -> strftime pattern (month names are English)
    "YYYY-MM-DD": "%Y-%m-%d",
    "DD/MM/YYYY": "%d/%m/%Y",
    "Month D, YYYY": "{month} {day}, %Y",
    "D Month YYYY": "{day} {month} %Y",
}
MONTHS = (
    "January February March April May June July August September October November December"
).split()


def _render(d: date, fmt: str) -> str:
    return d.strftime(DATE_FORMATS[fmt]).format(month=MONTHS[d.month - 1], day=d.day)


def _words(rng: random.Random, lo: int, hi: int) -> list[str]:
    return rng.sample(WORDS, rng.randint(lo, hi))


def _upper(rng: random.Random) -> tuple[str, str]:
    phrase = " ".join(_words(rng, 3, 6))
    return f"Rewrite this text in uppercase: {phrase}", phrase.upper()


def _first_n(rng: random.Random) -> tuple[str, str]:
    items, n = _words(rng, 5, 8), rng.randint(2, 4)
    ask = f"List the first {n} items of this list, separated by ', ': {', '.join(items)}"
    return ask, ", ".join(items[:n])


def _count(rng: random.Random) -> tuple[str, str]:
    words = _words(rng, 4, 13)
    return f'How many words are in this text? "{" ".join(words)}"', str(len(words))


def _reverse(rng: random.Random) -> tuple[str, str]:
    items = _words(rng, 3, 7)
    ask = f"Reverse the order of this list, separated by ', ': {', '.join(items)}"
    return ask, ", ".join(reversed(items))


def _longest(rng: random.Random) -> tuple[str, str]:
    while True:  # redraw until the longest word is unique, so the answer is too
        items = _words(rng, 4, 7)
        top = max(len(w) for w in items)
        if sum(len(w) == top for w in items) == 1:
            break
    best = max(items, key=len)
    return f"Which word in this list is the longest? {', '.join(items)}", best


def _date(rng: random.Random) -> tuple[str, str]:
    d = date(1990, 1, 1) + timedelta(days=rng.randint(0, 365 * 40))
    src, dst = rng.sample(list(DATE_FORMATS), 2)
    ask = f"Rewrite the date {_render(d, src)} (format {src}) in the format {dst}."
    return ask, _render(d, dst)


def _sort(rng: random.Random) -> tuple[str, str]:
    items = _words(rng, 4, 7)
    ask = f"Sort these words alphabetically, separated by ', ': {' '.join(items)}"
    return ask, ", ".join(sorted(items))


BUILDERS = {
    "upper": _upper,
    "first_n": _first_n,
    "count": _count,
    "reverse": _reverse,
    "longest": _longest,
    "date": _date,
    "sort": _sort,
}


def _make(rng: random.Random, kind: Any) -> tuple[str, str]:
    ask, gold = BUILDERS[kind](rng)
    return f"Instruction: {ask}", gold


def generate_splits(sizes: dict[str, int], seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    """Rows cycle through the seven instruction kinds so each is equally common."""
    return make_splits(NAME, SPLITS, sizes, seed, _make, KINDS)
