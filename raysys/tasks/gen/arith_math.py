"""Arithmetic word problems with 2-3 steps (a regulariser for numeric reasoning).

Eight story kinds (change from a purchase, savings, bill splitting, discounts,
distance, share trading profit, averages, stock counts) mix integers with simple
decimals, and some answers are negative (a trading loss), so the model has to track
the operations rather than pattern-match one. The gold is the exact result rounded
to 2 decimals as a plain string, in numeric_qa's format, and is scored the same way.
"""

from __future__ import annotations

import random
from typing import Any

from raysys.tasks.gen._common import make_splits, pick
from raysys.tasks.gen.numeric_qa import format_number

NAME = "arith_math"
KIND = "numeric"
LABELS: tuple[str, ...] = ()
SPLITS = ("train", "validation", "test")
PROMPT = (
    "Solve the problem step by step.\n"
    "{input}\n"
    "Give the result as a plain number rounded to 2 decimal places, with no units or $ sign "
    "(a loss is negative). End with a final line of the form 'Answer: <number>'."
)

NAMES = "Ana|Bilal|Chen|Dara|Esme|Femi|Gita|Hugo|Ines|Jakob|Keiko|Luis|Mina|Nils|Omar|Pia"
ITEMS = "notebooks|mangoes|light bulbs|tickets|coffee bags|phone cases|paint tins|scarves"
THINGS = "jacket|bicycle|printer|suitcase|desk lamp|blender|tent|monitor"
BILLS = "dinner|lunch|taxi|hotel|catering"
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
KINDS = ("change", "savings", "split", "discount", "distance", "trade", "average", "stock")


def _change(rng: random.Random) -> tuple[str, float]:
    n, price = rng.randint(2, 9), rng.randint(40, 1500) / 100
    cost = n * price
    note = next(v for v in (10, 20, 50, 100, 200) if v > cost)
    verb = pick(rng, "buys|orders|picks up")
    q = f"{pick(rng, NAMES)} {verb} {n} {pick(rng, ITEMS)} at ${price:.2f} each and pays with "
    ask = pick(rng, "How much change is returned?|What change is due?|How much comes back?")
    return q + f"a ${note} note. {ask}", note - cost


def _savings(rng: random.Random) -> tuple[str, float]:
    start, weekly, weeks = rng.randint(0, 400), rng.randint(5, 80), rng.randint(3, 20)
    spend = rng.randint(10, start + weekly * weeks)
    who = pick(rng, NAMES)
    q = f"{who} {pick(rng, 'has|starts with')} ${start}, {pick(rng, 'saves|puts aside')} "
    verb, prep = rng.choice([("spends", "on"), ("pays", "for")])
    q += f"${weekly} a week for {weeks} weeks, then {verb} ${spend} {prep} a {pick(rng, THINGS)}. "
    return q + pick(rng, f"How much money does {who} have left?|How much is left?"), (
        start + weekly * weeks - spend
    )


def _split(rng: random.Random) -> tuple[str, float]:
    people, share, tip = rng.randint(2, 8), rng.randint(800, 6000) / 100, rng.randint(1, 12)
    total = round(people * share, 2)
    who, bill = pick(rng, "colleagues|friends|students|teammates"), pick(rng, BILLS)
    q = f"{people} {who} share a ${total:.2f} {bill} bill equally and each also adds a ${tip} "
    ask = pick(rng, "How much does each person pay in total?|What does each one pay overall?")
    return q + f"{pick(rng, 'tip|extra')}. {ask}", total / people + tip


def _discount(rng: random.Random) -> tuple[str, float]:
    price, pct = rng.randint(30, 900), rng.choice([10, 15, 20, 25, 30, 40])
    coupon = rng.choice([5, 10, 15, 20])
    cut = pick(rng, f"The shop takes {pct}% off|It is marked down by {pct}%|A {pct}% sale applies")
    q = f"A {pick(rng, THINGS)} costs ${price}. {cut}, then a ${coupon} coupon is applied. "
    ask = pick(rng, "What is the final price?|How much does it cost now?|What is paid at the till?")
    return q + ask, price * (100 - pct) / 100 - coupon


def _distance(rng: random.Random) -> tuple[str, float]:
    h1, h2 = rng.choice([1, 1.5, 2, 2.5, 3]), rng.choice([0.5, 1, 1.5, 2, 4])
    v1, v2 = rng.randint(40, 110), rng.randint(30, 100)
    leg1, leg2 = (f"{h} hour{'' if h == 1 else 's'} at {v} km/h" for h, v in ((h1, v1), (h2, v2)))
    q = f"A {pick(rng, 'truck|bus|train|van|ferry')} {pick(rng, 'travels|moves|goes')} {leg1} "
    ask = pick(rng, "How many kilometres does it travel in total?|How far does it go in km?")
    return q + f"and then {leg2}. {ask}", h1 * v1 + h2 * v2


def _trade(rng: random.Random) -> tuple[str, float]:
    n, buy = rng.randint(10, 300), rng.randint(500, 9000) / 100
    sell, fee = round(buy * rng.uniform(0.8, 1.25), 2), rng.randint(2, 25)
    q = f"{pick(rng, NAMES)} {pick(rng, 'buys|purchases')} {n} shares at ${buy:.2f} and "
    q += f"{pick(rng, 'sells them all|later sells every one')} at ${sell:.2f}, paying ${fee} in "
    ask = pick(rng, "What is the profit in dollars?|What is the net gain or loss in dollars?")
    return q + f"commission in total. {ask}", n * (sell - buy) - fee


def _average(rng: random.Random) -> tuple[str, float]:
    scores = [rng.randint(40, 100) for _ in range(rng.choice([3, 4, 5]))]
    listed = ", ".join(map(str, scores[:-1])) + f" and {scores[-1]}"
    q = f"{pick(rng, NAMES)} {pick(rng, 'scored|got|earned')} {listed} on {len(scores)} "
    ask = pick(rng, "What is the average score?|What is the mean?")
    return q + f"{pick(rng, 'tests|quizzes|exams')}. {ask}", sum(scores) / len(scores)


def _stock(rng: random.Random) -> tuple[str, float]:
    start, out1, out2 = rng.randint(200, 900), rng.randint(10, 150), rng.randint(10, 150)
    crates, per = rng.randint(2, 12), rng.choice([6, 12, 24, 25])
    day1, day2 = rng.sample(DAYS, 2)
    q = f"A {pick(rng, 'warehouse|depot|shop')} holds {start} boxes. It ships {out1} on {day1} "
    q += f"and {out2} on {day2}, then receives {crates} crates of {per} boxes each. "
    ask = pick(rng, "How many boxes does it hold now?|How many boxes are there now?")
    return q + ask, start - out1 - out2 + crates * per


BUILDERS = {
    "change": _change,
    "savings": _savings,
    "split": _split,
    "discount": _discount,
    "distance": _distance,
    "trade": _trade,
    "average": _average,
    "stock": _stock,
}


def _make(rng: random.Random, kind: Any) -> tuple[str, str]:
    question, value = BUILDERS[kind](rng)
    return f"Problem: {question}", format_number(value)


def generate_splits(sizes: dict[str, int], seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    """Rows cycle through the eight story kinds so each is equally common."""
    return make_splits(NAME, SPLITS, sizes, seed, _make, KINDS)
