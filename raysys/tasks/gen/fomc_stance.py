"""Monetary-policy stance (hawkish / dovish / neutral) of central-bank sentences.

Test-only: a held-out transfer benchmark, never trained on. Sentences imitate policy
statements and minutes. Non-trivial because the stance often hides behind negation
("not yet appropriate to cut" is hawkish, "no further increases ... needed" is dovish),
hedges ("might", "a few participants"), balance-sheet language instead of rates, and
neutral sentences that mention inflation or rates while only describing the data.
"""

from __future__ import annotations

import random
from typing import Any

from raysys.tasks.gen._common import make_splits, pick

NAME = "fomc_stance"
KIND = "classification"
LABELS = ("hawkish", "dovish", "neutral")
SPLITS = ("test",)
PROMPT = (
    "Classify the monetary policy stance of this sentence from a central bank statement "
    "or meeting minutes.\n"
    "hawkish = leans toward tighter policy (higher rates, faster balance-sheet reduction); "
    "dovish = leans toward looser policy (lower rates, slower reduction, more support); "
    "neutral = describes conditions or decisions without a policy lean.\n"
    "{input}\n"
    "Options: hawkish, dovish, neutral.\n"
    "End with a final line of the form 'Answer: <option>'."
)

SUBJECTS = (
    "Participants|Most participants|Many participants|Several participants|A few participants"
    "|Members|Some members|A majority of members|Officials|The Committee"
)
VERBS = "noted|judged|agreed|observed|emphasized|indicated|remarked|suggested"
OPENERS = (
    "|In light of incoming data, |Looking ahead, |At this meeting, "
    "|In their discussion of monetary policy, |Turning to the outlook, "
)
CORES = {
    "hawkish": [
        "additional policy firming might be appropriate to return inflation to {t} percent",
        "it was not yet appropriate to cut the target range for the policy rate",
        "the policy rate would need to stay at a restrictive level for some time",
        "further increases in the target range could be warranted if inflation persisted",
        "upside risks to the inflation outlook called for a firmer policy stance",
        "the runoff of securities holdings should continue at its current pace",
        "it would not be appropriate to ease until inflation was clearly moving to {t} percent",
        "an increase of {bp} basis points in the policy rate was warranted",
        "the pace of balance sheet reduction could be stepped up",
        "cutting rates prematurely would risk a renewed rise in inflation",
    ],
    "dovish": [
        "it would likely be appropriate to lower the target range at an upcoming meeting",
        "no further increases in the policy rate were likely to be needed",
        "the degree of policy restriction could soon be reduced",
        "downside risks to employment argued for a less restrictive stance",
        "it would soon be appropriate to slow the pace of balance sheet runoff",
        "a reduction of {bp} basis points in the target range was appropriate",
        "additional firming was not needed given the cooling in labor markets",
        "accommodative policy should be maintained until the recovery was well established",
        "there should be no hesitation to ease further if conditions deteriorated",
        "keeping rates at current levels for too long could unduly weaken the economy",
    ],
    "neutral": [
        "real GDP had expanded at an annual rate of {g} percent in the {qt} quarter",
        "the unemployment rate was little changed at {u} percent in {mon}",
        "total PCE prices had risen {i} percent over the 12 months ending in {mon}",
        "payroll employment had increased by an average of {k} thousand per month",
        "conditions in Treasury markets had remained orderly over the intermeeting period",
        "the staff projection for real GDP growth was little revised",
        "yields on {y}-year Treasury securities had moved up {bp} basis points",
        "business fixed investment had not changed appreciably in the {qt} quarter",
        "the dollar had appreciated modestly against most foreign currencies",
        "household spending had grown at a moderate pace in recent months",
    ],
}
# Reasons agree with the stance; they add length and overlap in vocabulary, not signal.
REASONS = {
    "hawkish": "|, given that inflation remained well above {t} percent|, as labor markets stayed"
    " tight|, noting that inflation expectations had drifted up|, citing strong wage growth",
    "dovish": "|, given the softening in labor market conditions|, as inflation had moved closer"
    " to {t} percent|, citing weaker consumer spending|, noting slower job gains",
    "neutral": "|, according to the staff review|, based on the latest data|, broadly as expected",
}
DECISIONS = {
    "hawkish": "The Committee decided to raise the target range for the federal funds rate to {r}.",
    "dovish": "The Committee decided to lower the target range for the federal funds rate to {r}.",
    "neutral": "Recent indicators suggest that economic activity has expanded at a {pace} pace.",
}
MONTHS = "January|February|April|May|July|August|October|November"


def _rate_range(rng: random.Random) -> str:
    """A quarter-point range written the way statements write it, e.g. '4-1/4 to 4-1/2'."""
    lo = rng.randint(1, 22)

    def quarter(n: int) -> str:
        whole, frac = divmod(n, 4)
        tail = {0: "", 1: "1/4", 2: "1/2", 3: "3/4"}[frac]
        return f"{whole}-{tail}" if whole and tail else tail or str(whole)

    return f"{quarter(lo)} to {quarter(lo + 1)} percent"


def _fill(tpl: str, rng: random.Random) -> str:
    return tpl.format(
        t=rng.choice([2, 2, 2, 3]),
        bp=rng.choice([25, 50, 75]) if "points in" in tpl else rng.randint(5, 60),
        g=round(rng.uniform(-1.5, 4.5), 1),
        u=round(rng.uniform(3.4, 6.2), 1),
        i=round(rng.uniform(1.2, 6.5), 1),
        k=rng.randint(90, 320),
        y=rng.choice([2, 5, 10, 30]),
        qt=pick(rng, "first|second|third|fourth"),
        mon=pick(rng, MONTHS),
        r=_rate_range(rng),
        pace=pick(rng, "solid|moderate|modest|slower"),
    )


def _sentence(label: str, rng: random.Random) -> str:
    if rng.random() < 0.12:
        return _fill(DECISIONS[label], rng)
    opener = pick(rng, OPENERS)
    subject = pick(rng, SUBJECTS)
    if opener:
        subject = (
            subject[0].lower() + subject[1:] if subject != "The Committee" else "the Committee"
        )
    core = _fill(rng.choice(CORES[label]), rng)
    reason = _fill(pick(rng, REASONS[label]), rng)
    return f"{opener}{subject} {pick(rng, VERBS)} that {core}{reason}."


def _make(rng: random.Random, label: Any) -> tuple[str, str]:
    text = _sentence(label, rng)
    return f"Sentence: {text[0].upper()}{text[1:]}", label


def generate_splits(sizes: dict[str, int], seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    """Balanced rows for the single test split; asking for train or validation is an error."""
    return make_splits(NAME, SPLITS, sizes, seed, _make, LABELS)
