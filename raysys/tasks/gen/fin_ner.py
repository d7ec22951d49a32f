"""Named entities (PER, ORG, LOC) in financial news sentences.

The gold is a canonical string: entities in order of appearance, '; '-joined, each
'TYPE: surface text', or 'none'. Non-trivial because names span several tokens
("Lucia de la Vega", "Halvorsen & Reed Capital"), sentences hold 0-4 entities of mixed
types, possessives glue onto names ("Calder Bank's"), and capitalised non-entities
(sentence openers, weekdays, months) sit next to them. Golds are written with
`raysys.tasks.answers.format_entities` and scored by `raysys.tasks.metrics.ner_metrics`.
"""

from __future__ import annotations

import random
import re
from typing import Any

from raysys.tasks.answers import format_entities
from raysys.tasks.gen._common import make_splits, pick

NAME = "fin_ner"
KIND = "ner"
LABELS: tuple[str, ...] = ()
SPLITS = ("train", "validation", "test")
PROMPT = (
    "List the named entities in the sentence: people (PER), organisations (ORG) and "
    "locations (LOC).\n"
    "{input}\n"
    "Write them in order of appearance as 'TYPE: name' separated by '; ', for example "
    "'PER: Maria Okafor; ORG: Calder Bank; LOC: Port Meridian', or 'none' if there are none.\n"
    "End with a final line of the form 'Answer: <entities>'."
)

FIRST = (
    "Maria|Tomasz|Aiko|Daniel|Priya|Oluwaseun|Ingrid|Rafael|Mei|Henrik|Amara|Lucia|Jonas"
    "|Farah|Niall|Beatriz|Kwame|Elena|Soren|Yusuf|Clara|Mateo|Hana|Ruth"
)
LAST = (
    "Okafor|Lindqvist|Marchetti|Abernathy|Takeda|de la Vega|Oyelaran|Van der Berg|Castellanos"
    "|Whitcombe|Nakamura|Brennan|Haddad|Kowalczyk|Achterberg|Moreau|Adeyemi|Sandoval|Fairbairn"
)
ORG_BASES = (
    "Calder|Halvorsen & Reed|Brightline|Ostrand|Pemberly|Quarry Hill|Northgate|Veltmann"
    "|Ironbridge|Saltire|Corvallis|Blackmere|Lindell|Ashcombe|Marrow Point|Trevena"
)
ORG_SUFFIXES = (
    "Bank|Capital|Holdings|Group|Asset Management|Partners|Insurance|Energy|Securities"
    "|Logistics|Pharmaceuticals|Trust"
)
LOCS = (
    "Port Meridian|Eastmere|Velden|New Harrow|Santa Lucerna|Kestrel Bay|Ardmore Falls"
    "|Valmont|Ostia Nova|Brennick|Saltmarsh|Lake Corran|Glenrow|Maravella|Tessary|San Aurelio"
)

# Clauses by entity count; {P}, {O}, {L} are entity slots, filled left to right.
CLAUSES: dict[int, list[str]] = {
    0: [
        "shares fell {n} percent in early trading on {day}",
        "bond yields climbed to their highest level since {mon}",
        "the benchmark index closed {n} percent higher",
        "trading volumes were thin ahead of the holiday",
        "investors rotated out of technology stocks",
        "oil prices rose {n} percent over the week",
        "analysts said rates would stay on hold until {mon}",
    ],
    1: [
        "{O} reported a {n} percent rise in quarterly revenue",
        "{P} said the deal would close by {mon}",
        "lenders in {L} tightened credit standards",
        "{O} cut its dividend for the first time since {mon}",
        "{O}'s shares slipped {n} percent on {day}",
        "{P} was named chief financial officer",
        "a new factory opened in {L} on {day}",
        "{P} sold {n} thousand shares",
    ],
    2: [
        "{P}, chief executive of {O}, said margins would improve",
        "{O} opened a regional office in {L}",
        "{O} agreed to buy {O} for ${big} million",
        "{P} told reporters in {L} that demand was steady",
        "{O} hired {P} as head of trading",
        "{P} and {P} were picked to co-lead the review",
        "regulators in {L} fined {O} ${big} million",
    ],
    3: [
        "{P} of {O} said in {L} that margins would recover",
        "{O} and {O} agreed to build a ${big} million plant in {L}",
        "{P}, an analyst at {O}, downgraded {O} on {day}",
        "{O} moved {P} to its trading desk in {L}",
    ],
    4: [
        "{P}, who chairs {O}, met {P} in {L} on {day}",
        "{O} and {O} named {P} to run their venture in {L}",
    ],
}
JOINS = [", while {b}", "; meanwhile, {b}", ", and {b}", " as {b}", "AFTER"]
TYPE_OF = {"P": "PER", "O": "ORG", "L": "LOC"}
SLOT_RE = re.compile(r"\{([POL])\}")


def _surface(kind: str, rng: random.Random) -> str:
    if kind == "P":
        return f"{pick(rng, FIRST)} {pick(rng, LAST)}"
    if kind == "O":
        return f"{pick(rng, ORG_BASES)} {pick(rng, ORG_SUFFIXES)}"
    return pick(rng, LOCS)


def _template(count: int, rng: random.Random) -> str:
    """One clause holding `count` entities, or two clauses whose counts add up to it."""
    if rng.random() < 0.4:
        return rng.choice(CLAUSES[count]) + pick(rng, "||, traders said|, sources said")
    first = rng.randint(max(0, count - 3), min(3, count))
    a, b = rng.choice(CLAUSES[first]), rng.choice(CLAUSES[count - first])
    while b == a:  # "x, while x" reads as a glitch, not as news
        b = rng.choice(CLAUSES[count - first])
    join = rng.choice(JOINS)
    return f"after {b}, {a}" if join == "AFTER" else a + join.format(b=b)


def _make(rng: random.Random, count: Any) -> tuple[str, str]:
    tpl = _template(count, rng)
    used: set[str] = set()
    found: list[tuple[str, str]] = []

    def fill(m: re.Match[str]) -> str:
        surface = _surface(m.group(1), rng)
        while surface in used:  # distinct names keep the BIO alignment unambiguous
            surface = _surface(m.group(1), rng)
        used.add(surface)
        found.append((TYPE_OF[m.group(1)], surface))
        return surface

    text = SLOT_RE.sub(fill, tpl)
    text = text.format(
        n=rng.randint(2, 40),
        big=rng.randint(15, 950),
        day=pick(rng, "Monday|Tuesday|Wednesday|Thursday|Friday"),
        mon=pick(rng, "January|March|May|August|October|December"),
    )
    text = text[0].upper() + text[1:].replace("s's ", "s' ") + "."  # "Calder Holdings' bonds"
    return f"Sentence: {text}", format_entities(found)


def generate_splits(sizes: dict[str, int], seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    """Rows cycle through 0-4 entities so every count is equally common."""
    return make_splits(NAME, SPLITS, sizes, seed, _make, (0, 1, 2, 3, 4))
