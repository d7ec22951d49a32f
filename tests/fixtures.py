"""Helpers shared by test files (fixtures proper live in conftest.py): the repository
root, and a user's quirky labelled file."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
LABELS = ["positive", "negative", "neutral"]


def quirky_rows(n: int = 400, seed: int = 0, start: int = 0) -> pd.DataFrame:
    """`n` distinct sentences, 60/25/15 positive/negative/neutral, SORTED by label (as
    published files often are), ids with leading zeros, labels with stray spaces and
    capitals, latin-1 characters in the text."""
    rng = random.Random(seed)
    counts = {"positive": n * 60 // 100, "negative": n * 25 // 100}
    counts["neutral"] = n - sum(counts.values())
    spelled = {
        "positive": [" Positive", "POSITIVE ", "positive"],
        "negative": ["Negative "],
        "neutral": [" neutral"],
    }
    rows, k = [], start
    for label, c in counts.items():
        for _ in range(c):
            k += 1
            word = rng.choice(["Société", "Café Corp", "Müller AG", "Crédit"])
            rows.append(
                {
                    "uid": f"{k:05d}",
                    "sentence": f"{word} report number {k} ({label} news).",
                    "tone": rng.choice(spelled[label]),
                }
            )
    return pd.DataFrame(rows)
