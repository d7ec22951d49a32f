"""Share price direction (up / down) of a named company from one news headline.

Non-trivial because headlines negate events ("fails to win", "no longer expects"),
pair the target with a rival whose news points the other way, or open with a
concession ("Despite a downgrade, ..."): the label follows the main clause about the
target, not the first keyword. The events mean much the same as news_sentiment's but
are worded as terse headlines about other companies, so transfer is real but partial.
"""

from __future__ import annotations

import random
from typing import Any

from raysys.tasks.gen._common import make_splits, pick

NAME = "price_direction"
KIND = "classification"
LABELS = ("up", "down")
SPLITS = ("train", "validation", "test")
PROMPT = (
    "Read the headline and predict the next move in the named company's share price.\n"
    "{input}\n"
    "Options: up, down.\n"
    "Reason briefly if you like, then end with a final line 'Answer: up' or 'Answer: down'."
)

COMPANIES = (
    "Veyra Robotics|Ostrand Foods|Pemberly Bancorp|Quaywise Logistics|Torvane Energy"
    "|Halcyon Mills|Brisco Semiconductors|Larkspur Health|Dunmore Airways|Sable Point Resources"
    "|Corbell Retail|Winslade Telecom|Ashgrove Chemicals|Meridell Insurance|Thornbury Motors"
    "|Galloway Biotech|Cresswell Media|Nettlefield Paper|Rookwood Pharma|Elstow Water"
    "|Kilbride Steel|Fairhaven Hotels|Ormond Software|Penhallow Shipping|Yarrow Payments"
)
BROKERS = "Albright Securities|Penrose & Vale|Stanmore Research|Corvid Markets|Whitcombe Partners"
PRODUCTS = (
    "battery packs|jet engines|cloud storage|insulin pens|grain silos|satellite links"
    "|cargo drones|heat pumps|smart meters|rail cars|contact lenses|fertiliser"
)
QUARTERS = "Q1|Q2|Q3|Q4|first-half|full-year"
MONTHS = "January|March|April|June|July|September|October|December"

UP = [
    "beats {q} earnings forecasts on strong {prod} demand",
    "lifts annual outlook after {p}% jump in orders",
    "lands ${b}bn order for {prod}",
    "unveils ${m}m share repurchase plan",
    "upgraded to overweight at {br}",
    "posts record {q} operating margin",
    "agrees to be bought at a {p}% premium",
    "wins regulator nod for its {prod}",
    "declares special dividend after cash pile swells",
    "reports {p}% rise in {q} bookings",
    "signs ${m}m {prod} supply deal running to {mon}",
    "slashes net debt by {p}% a year early",
]
DOWN = [
    "misses {q} profit forecasts as {prod} sales stall",
    "slashes annual outlook, citing soft demand",
    "loses ${b}bn {prod} order to a competitor",
    "plans ${m}m discounted share sale",
    "downgraded to underweight at {br}",
    "halts {prod} output after plant fire",
    "warns {q} margins will shrink by {p}%",
    "fined ${m}m over reporting failures",
    "delays {prod} launch to {mon}",
    "finance chief quits amid accounting review",
    "reports {p}% drop in {q} bookings",
    "misses ${m}m bond coupon payment",
]
# Negated good news reads as bad news, and the other way round.
NEG_UP = [  # label: down
    "fails to win ${b}bn {prod} tender",
    "no longer expects to hit {q} margin target",
    "scraps planned ${m}m buyback",
    "will not pay a final dividend this year",
    "fails to gain regulator nod for its {prod}",
    "says takeover talks ended without an offer",
]
NEG_DOWN = [  # label: up
    "no longer expects job cuts at its {prod} unit",
    "rules out share sale, easing dilution fears",
    "avoids credit downgrade as debt falls",
    "will not face a fine after probe closes",
    "says feared {prod} recall will not be needed",
    "did not breach loan covenants, auditor confirms",
]
# Noun phrases for "Despite ..." openers; they carry the opposite news.
SETBACKS = (
    "a {p}% slide in {q} bookings|a downgrade from {br}|a ${m}m writedown"
    "|weak {prod} sales in {mon}|a probe into its accounts|a plant fire"
)
TAILWINDS = (
    "record {q} revenue|a ${b}bn {prod} order|an upgrade from {br}"
    "|a {p}% jump in bookings|a new ${m}m buyback|a special dividend"
)
TAGS = "UPDATE 1-|UPDATE 2-|BRIEF-|EXCLUSIVE-|MARKET MOVER-|WRAPUP-"
JOINERS = "; rival {r} |, while rival {r} |, even as peer {r} |; meanwhile {r} "


def _fill(tpl: str, rng: random.Random) -> str:
    return tpl.format(
        q=pick(rng, QUARTERS),
        mon=pick(rng, MONTHS),
        prod=pick(rng, PRODUCTS),
        br=pick(rng, BROKERS),
        p=rng.randint(2, 48),
        m=rng.randint(15, 980),
        b=round(rng.uniform(0.3, 12.0), 1),
    )


def _event(label: str, rng: random.Random) -> str:
    plain, negated = (UP, NEG_DOWN) if label == "up" else (DOWN, NEG_UP)
    return _fill(rng.choice(negated if rng.random() < 0.3 else plain), rng)


def _headline(label: str, rng: random.Random) -> tuple[str, str]:
    target, rival = rng.sample(COMPANIES.split("|"), 2)
    other = "down" if label == "up" else "up"
    main = _event(label, rng)
    style = rng.random()
    if style < 0.3:
        text = f"{target} {main}"
    elif style < 0.45:
        text = f"{pick(rng, TAGS)}{target} {main}"
    elif style < 0.65:  # target first, rival with opposite news second
        text = f"{target} {main}" + pick(rng, JOINERS).format(r=rival) + _event(other, rng)
    elif style < 0.8:  # rival first: the first company named is the distractor
        text = f"{rival} {_event(other, rng)}; {target} {main}"
    else:  # concession: the main clause decides
        concession = _fill(pick(rng, SETBACKS if label == "up" else TAILWINDS), rng)
        text = f"Despite {concession}, {target} {main}"
    return target, text


def _make(rng: random.Random, label: Any) -> tuple[str, str]:
    target, text = _headline(label, rng)
    return f"Company: {target}\nHeadline: {text}", label


def generate_splits(sizes: dict[str, int], seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    """Balanced up/down rows; test then validation then train, no shared headlines."""
    return make_splits(NAME, SPLITS, sizes, seed, _make, LABELS)
