"""`raysys.tasks.gen.fin_ner`: golds that parse back exactly and align with the sentence's
tokens, zero to four entities per sentence, multi-word names."""

from __future__ import annotations

from collections import Counter

from raysys.tasks import answers, metrics
from raysys.tasks.gen import fin_ner


def test_ner_gold_round_trips_and_aligns():
    rows = fin_ner.generate_splits({"test": 200}, 0)["test"]
    counts = Counter()
    for r in rows:
        assert r["input"].startswith("Sentence: ")
        sentence = r["input"].removeprefix("Sentence: ")
        ents = answers.parse_entities(r["gold"])
        counts[len(ents)] += 1
        assert answers.format_entities(ents) == r["gold"]
        assert (r["gold"] == "none") == (not ents)
        tokens, tags = metrics.to_bio(sentence, ents)
        assert tokens == sentence.split() and len(tags) == len(tokens)
        spans = _spans(tokens, tags)
        assert [t for t, _ in spans] == [t for t, _ in ents]  # every entity found, in order
        for (_, got), (_, want) in zip(spans, ents, strict=True):
            assert got.replace("'s", "").rstrip(".,;'") == want
    assert set(counts) == {0, 1, 2, 3, 4} and min(counts.values()) == 40
    assert any(" " in s for r in rows for _, s in answers.parse_entities(r["gold"]))


def _spans(tokens, tags):
    out = []
    for tok, tag in zip(tokens, tags, strict=True):
        if tag.startswith("B-"):
            out.append([tag[2:], [tok]])
        elif tag.startswith("I-"):
            assert out and out[-1][0] == tag[2:]
            out[-1][1].append(tok)
    return [(t, " ".join(toks)) for t, toks in out]
