"""Causal detection: does a financial statement assert a cause-effect relation?

Causal statements link an event to an outcome with 'because', 'due to', 'led to',
'as a result', 'owing to', 'drove' and the like. Non-causal ones put the very same
events side by side without asserting causation: co-occurrence ('while',
'meanwhile', 'in the same quarter that'), plain sequence ('after its annual
meeting'), concession ('despite', 'although') and look-alike phrases ('is due to be
published'). Since both labels draw on the same event vocabulary, the decision rests
on the connective and the sentence structure, not on the topic.
"""

from __future__ import annotations

import random
from typing import Any

from raysys.tasks.gen._common import make_splits, pick

NAME = "causal_detection"
KIND = "classification"
LABELS = ("causal", "noncausal")
SPLITS = ("train", "validation", "test")
PROMPT = (
    "Does the statement assert that one event caused another? Mere co-occurrence, "
    "a sequence in time or a contrast is not causation.\n"
    "{input}\n"
    "Options: causal, noncausal.\n"
    "End with a final line of the form 'Answer: <option>'."
)

COMPANIES = (
    "Harlow Cement|Quenby Airlines|Mossley Textiles|Bramford Grain|Oxley Semiconductors"
    "|Ribston Brewing|Fennimore Bank|Aldwych Insurance|Carrow Shipping|Dunstan Retail"
    "|Elmsworth Power|Glossop Foods|Ilkley Motors|Tregaron Mining|Wetherby Pharma"
)
SITES = "Ravensmoor|Port Ellis|Calvary Point|Northwick|Lowmead|Stanhope"
REGIONS = "Asia|Latin America|northern Europe|the Gulf states|West Africa|Canada"
PRODUCTS = "steel pipes|jet fuel|memory chips|bottled water|crop seeds|car parts"
EFFECTS = [  # clauses with the company as subject
    "{co}'s {q}-quarter operating margin narrowed to {p}%",
    "{co} cut {n} jobs at its {site} plant",
    "{co}'s shares fell {p}% on {day}",
    "{co}'s quarterly revenue rose {p}%",
    "{co} raised its full-year guidance",
    "{co}'s borrowing costs climbed to {p}%",
    "{co} delayed the launch of its new {prod}",
    "{co} swung to a ${m}m loss in the {q} quarter",
    "{co}'s exports to {region} doubled",
    "{co} lifted its dividend by {p}%",
]
EFFECT_NPS = [  # noun phrases for 'X led to Y'
    "a {p}% drop in {co}'s quarterly revenue",
    "{n} job cuts at {co}",
    "a ${m}m loss at {co}",
    "higher borrowing costs for {co}",
    "a delay to {co}'s {prod} launch",
    "a {p}% jump in {co}'s shares",
]
CAUSE_NPS = (
    "higher steel prices|a strike at its {site} plant|weaker demand from {region}"
    "|a stronger dollar|the loss of a major customer|rising interest rates"
    "|a ${m}m insurance payout|new tariffs on {prod}|an IT outage|strong holiday demand"
    "|lower fuel costs|a credit rating downgrade"
)
CAUSE_CLAUSES = (
    "steel prices rose|workers at its {site} plant went on strike|demand from {region} weakened"
    "|the dollar strengthened|it lost a major customer|interest rates rose"
    "|it received a ${m}m insurance payout|new tariffs hit {prod}|an IT outage halted orders"
    "|holiday demand was strong|fuel costs fell|its credit rating was cut"
)
TIMINGS = (
    "after its annual meeting on {day}|after the close of trading on {day}"
    "|after a board meeting in {mon}|after a holiday-shortened week|after the {q} quarter ended"
)
CAUSAL = [
    "{E} because {C}.",
    "{E} because of {N}.",
    "{E} due to {N}.",
    "{E}, owing to {N}.",
    "{E}, largely thanks to {N}.",
    "Because {C}, {E}.",
    "{Ncap} led to {F}.",
    "{Ncap} resulted in {F}.",
    "{Ncap} drove {F}, the company said.",
    "{Ccap}; as a result, {E}.",
    "As a result of {N}, {E}.",
    "{E} after {C}, which analysts said was the main reason.",
]
NONCAUSAL = [
    "{E} while {C}.",
    "{E}; meanwhile, {C}.",
    "{E} despite {N}.",
    "Despite {N}, {E}.",
    "Although {C}, {E}.",
    "{E} in the same quarter that {C}.",
    "{E} {T}.",
    "{E}; its {q}-quarter report is due to be published on {day}.",
    "{E}, and separately {C}.",
    "{Ncap} and {F} were both reported on {day}.",
    "{E}, a result it will discuss with investors in {mon}.",
    "{Ccap} around the time that {E}.",
]


def _cap(s: str) -> str:
    return s[0].upper() + s[1:]


def _statement(label: str, rng: random.Random) -> str:
    tpl = rng.choice(CAUSAL if label == "causal" else NONCAUSAL)
    cause_np, cause_clause = pick(rng, CAUSE_NPS), pick(rng, CAUSE_CLAUSES)
    parts = {
        "E": rng.choice(EFFECTS),
        "F": rng.choice(EFFECT_NPS),
        "N": cause_np,
        "Ncap": _cap(cause_np),
        "C": cause_clause,
        "Ccap": _cap(cause_clause),
        "T": pick(rng, TIMINGS),
    }
    # Two passes: slots first, then the numbers and names inside them.
    text = tpl
    for key in sorted(parts, key=len, reverse=True):
        text = text.replace("{" + key + "}", parts[key])
    text = text.format(
        co=pick(rng, COMPANIES),
        site=pick(rng, SITES),
        region=pick(rng, REGIONS),
        prod=pick(rng, PRODUCTS),
        q=pick(rng, "first|second|third|fourth"),
        day=pick(rng, "Monday|Tuesday|Wednesday|Thursday|Friday"),
        mon=pick(rng, "February|April|June|September|November"),
        p=rng.randint(2, 45),
        n=rng.randint(40, 2400),
        m=rng.randint(5, 900),
    )
    return text.replace("s's ", "s' ")  # "Mossley Textiles' exports", not "Textiles's"


def _make(rng: random.Random, label: Any) -> tuple[str, str]:
    text = _statement(label, rng)
    return f"Statement: {_cap(text)}", label


def generate_splits(sizes: dict[str, int], seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    """Balanced causal/noncausal rows; test then validation then train, no shared text."""
    return make_splits(NAME, SPLITS, sizes, seed, _make, LABELS)
