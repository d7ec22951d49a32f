"""Every answer parser: the strict `Answer:` line, numbers, entity lists, free text.

Scorers, task kinds and generators all read answers through this module; it imports
nothing from raysys, so any layer may use it. A generator writes its golds with
`format_entities` and the like so that its golds parse back exactly.
"""

from __future__ import annotations

import math
import re

# What extraction returns when the output holds no readable answer.
MISSING = "missing"

# The rest of the line after "Answer:", with markdown emphasis tolerated. Spaces and
# emphasis before the colon are one class: `\s*[*_]*\s*` (the old form) split a run of
# spaces two ways at every length, so "answer" + 20k spaces took ~10 s (quadratic).
ANSWER_LINE_RE = re.compile(r"answer[\s*_]*[:：][ \t*_`\"']*([^\n]*)", re.IGNORECASE)

# The sign must touch the digits: "Answer - 5" is a dash, not minus five.
# The lookahead only names the possible first characters: with both leading groups
# optional, re could not skip ahead and tried a full match at every position (10x
# slower on long text without numbers); the matches are the same.
NUMBER_RE = re.compile(
    r"(?=[(\d.+-])(\(\s*)?([-+])?(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
)

ENTITY_TYPES = ("PER", "ORG", "LOC")
ALIASES = {"PERSON": "PER", "ORGANIZATION": "ORG", "ORGANISATION": "ORG", "LOCATION": "LOC"}
_SEGMENTS_RE = re.compile(r"[^;\n]+")
SEGMENT_RE = re.compile(r"^(?:answer\s*:\s*)?([A-Za-z]+)\s*[:=-]\s*(.+)$", re.IGNORECASE)


def answer_regex(labels: tuple[str, ...]) -> re.Pattern[str]:
    """`Answer: <label>` with optional markdown emphasis, case-insensitive, whole word."""
    alts = "|".join(re.escape(lab) for lab in sorted(labels, key=len, reverse=True))
    # One class before the colon, as in ANSWER_LINE_RE: linear on long runs of spaces.
    return re.compile(rf"answer[\s*_]*[:：][\s*_`\"']*({alts})\b", re.IGNORECASE)


def normalize_number(s: str) -> float | None:
    """The first number in a model answer: '$1,234.5' -> 1234.5, '(3.2)' -> -3.2."""
    text = (s or "").replace("−", "-").replace("–", "-")
    text = re.sub(r"[$€£]", "", text)
    m = NUMBER_RE.search(text)
    if not m:
        return None
    value = float(m.group(3).replace(",", ""))
    after = text[m.end() :].lstrip(" %")
    accounting = m.group(1) is not None and after.startswith(")")
    return -value if m.group(2) == "-" or accounting else value


def numbers_match(
    pred: float | None, gold: float, rel_tol: float = 0.01, abs_tol: float = 0.01
) -> bool:
    """True when pred is within 1% (relative) or 0.01 (absolute) of gold by default."""
    if pred is None or not math.isfinite(pred):
        return False
    return math.isclose(pred, gold, rel_tol=rel_tol, abs_tol=abs_tol)


def last_number(text: str) -> str:
    """From the last number to the end of its line, so "(3.2)" keeps its sign."""
    # One match alive at a time, not a list of all: 25k live matches set off a full
    # garbage collection (~100 ms in a big process) inside this call.
    last = None
    for m in NUMBER_RE.finditer(text):
        last = m
    return text[last.start() :].split("\n")[0].strip() if last else MISSING


def format_entities(entities: list[tuple[str, str]]) -> str:
    return "; ".join(f"{t}: {s}" for t, s in entities) or "none"


def parse_entities(s: str) -> list[tuple[str, str]]:
    """'PER: A B; org : C' -> [('PER', 'A B'), ('ORG', 'C')]; junk segments are dropped."""
    out: list[tuple[str, str]] = []
    # The segments of splitting on [;\n] and dropping * and ` from each, but empty ones
    # never reach Python and one without a separator skips the regex: a degenerate
    # output of 100k newlines took 50 ms of CPU before, under 1 ms now.
    for seg in _SEGMENTS_RE.findall((s or "").replace("*", "").replace("`", "")):
        if ":" not in seg and "=" not in seg and "-" not in seg:
            continue
        m = SEGMENT_RE.match(seg.strip().lstrip("-• ").strip())
        if not m:
            continue
        etype = ALIASES.get(m.group(1).upper(), m.group(1).upper())
        surface = m.group(2).strip(" \t\"'.,")
        if etype in ENTITY_TYPES and surface and surface.lower() != "none":
            out.append((etype, surface))
    return out


def normalize_text(s: str) -> str:
    """Case, surrounding quotes and inner whitespace do not make a free-text answer wrong."""
    return re.sub(r"\s+", " ", s.strip().strip("\"'`").strip()).casefold()


def last_line(text: str) -> str:
    """The last non-empty line: where a free-text answer sits without an `Answer:` line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else MISSING
