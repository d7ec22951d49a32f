"""`raysys.tasks.gen.general_instruct`: every gold is the exact answer to its instruction."""

from __future__ import annotations

from collections import Counter

from raysys.tasks.gen import general_instruct


def test_general_instruct_golds_are_exact():
    rows = general_instruct.generate_splits({"test": 210}, 0)["test"]
    kinds = Counter()
    for r in rows:
        ask, gold = r["input"].removeprefix("Instruction: "), r["gold"]
        assert gold == gold.strip() and "\n" not in gold
        if ask.startswith("Rewrite this text in uppercase: "):
            assert gold == ask.split(": ", 1)[1].upper()
            kinds["upper"] += 1
        elif ask.startswith("How many words"):
            assert int(gold) == len(ask.split('"')[1].split())
            kinds["count"] += 1
        elif ask.startswith("Reverse"):
            assert gold.split(", ") == ask.split(": ", 1)[1].split(", ")[::-1]
            kinds["reverse"] += 1
        elif ask.startswith("Sort"):
            assert gold.split(", ") == sorted(ask.split(": ", 1)[1].split())
            kinds["sort"] += 1
        elif ask.startswith("Which word"):
            words = ask.split("? ", 1)[1].split(", ")
            assert [w for w in words if len(w) == max(map(len, words))] == [gold]
            kinds["longest"] += 1
    assert set(kinds.values()) == {30}
