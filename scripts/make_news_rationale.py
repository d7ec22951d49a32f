"""Write the `news_rationale` task's files (configs/tasks/news_rationale/): news_sentiment
sentences whose training rows carry a rationale written before the answer, as a
chain-of-thought-labelled dataset has — the data of the study's DPO finding in miniature
(README, "The study's DPO finding").

Each row's rationale is, by a coin flip of its own (independent of the sentence and the
label), either *concise* — one clause, ≈ 20–30 tokens with the answer line — or *verbose*:
a step-by-step reading of ≈ 60–90 tokens that names the company, sets aside a rival's or a
conceded clause, restates the event and says what it means for shareholders. Both are
correct. A model fine-tuned on them writes either; at the pipeline's 48-token limit the
verbose ones run overlong, as the study's SFT model's chains of thought did at its limit.

Deterministic: `python scripts/make_news_rationale.py` rewrites the same files.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

from raysys.tasks.gen import news_sentiment as ns

OUT = Path(__file__).resolve().parents[1] / "configs" / "tasks" / "news_rationale"
SIZES = {"test": 200, "train": 400}  # test first: no train row repeats a test main clause
SEED = 7
VERBOSE_SHARE = 0.5

MEANING = {
    "positive": "That adds to its earnings or value, which shareholders welcome.",
    "negative": "That takes away from its earnings or value, which shareholders dislike.",
    "neutral": "That is routine and changes nothing for its earnings or value.",
}
VERDICT = {"positive": "good news", "negative": "bad news", "neutral": "no real news"}


ASIDE = {  # what a step-by-step reading sets aside, by the sentence's shape
    "plain": "",
    "rival": "The news about its rival {rival} does not count here.",
    "contrast": "The 'despite' clause is a concession; the main clause decides.",
    "separately": "The first clause is about {rival}, not the company.",
}


def rationale(label: str, parts: dict[str, str], verbose: bool) -> str:
    t, main = parts["target"], parts["main"]
    if not verbose:
        return f"{t} {main}: {VERDICT[label]} for its shareholders."
    steps = [
        "Let me think step by step.",
        f"The company to judge is {t}.",
        ASIDE[parts["shape"]].format(rival=parts["rival"]),
        f"The news for {t} is that it {main}.",
        MEANING[label],
        f"So for the shareholders of {t} the news is {label}.",
    ]
    return " ".join(s for s in steps if s)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    for split, size in SIZES.items():
        rng = random.Random(f"{SEED}:{split}")
        rows = []
        while len(rows) < size:
            label = ns.LABELS[len(rows) % len(ns.LABELS)]
            text, parts = ns.sentence(label, rng)
            clause = f"{parts['target']} {parts['main']}"  # one main clause, one row
            if clause in seen:
                continue
            seen.add(clause)
            verbose = rng.random() < VERBOSE_SHARE
            rows.append(
                {
                    "id": f"{split}-{len(rows):04d}",
                    "text": f"Company: {parts['target']}\nNews: {text}",
                    "label": label,
                    "rationale": rationale(label, parts, verbose),
                }
            )
        rng.shuffle(rows)
        with open(OUT / f"{split}.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=["id", "text", "label", "rationale"])
            w.writeheader()
            w.writerows(rows)
        print(f"{OUT / f'{split}.csv'}: {len(rows)} rows")


if __name__ == "__main__":
    main()
