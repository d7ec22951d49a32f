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


def _sentence(label: str, rng: random.Random) -> tuple[str, dict[str, str]]:
    """news_sentiment's sentence, with the parts a rationale names."""
    target, rival = rng.sample(ns.COMPANIES, 2)
    style = rng.random()
    main = ns._event(label, rng)
    parts = {"target": target, "main": main, "aside": ""}
    if style < 0.35:
        text = f"{target} {main}."
    elif style < 0.6:
        other = ns._event(ns.OPPOSITE[label], rng)
        joiner = rng.choice(["while", "whereas", "even as"])
        text = f"{target} {main}, {joiner} rival {rival} {other}."
        parts["aside"] = f"The news about its rival {rival} does not count here."
    elif style < 0.8 and label != "neutral":
        concession = ns._event(ns.OPPOSITE[label], rng)
        text = f"Despite news that it {concession}, {target} {main}."
        parts["aside"] = "The 'despite' clause is a concession; the main clause decides."
    else:
        other = ns._event(rng.choice(["positive", "negative", "neutral"]), rng)
        text = f"{rival} {other}; separately, {target} {main}."
        parts["aside"] = f"The first clause is about {rival}, not the company."
    return f"Company: {target}\nNews: {text}", parts


def rationale(label: str, parts: dict[str, str], verbose: bool) -> str:
    t, main = parts["target"], parts["main"]
    if not verbose:
        return f"{t} {main}: {VERDICT[label]} for its shareholders."
    steps = [
        "Let me think step by step.",
        f"The company to judge is {t}.",
        parts["aside"],
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
            text, parts = _sentence(label, rng)
            clause = f"{parts['target']} {parts['main']}"  # one main clause, one row
            if clause in seen:
                continue
            seen.add(clause)
            verbose = rng.random() < VERBOSE_SHARE
            rows.append(
                {
                    "id": f"{split}-{len(rows):04d}",
                    "text": text,
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
