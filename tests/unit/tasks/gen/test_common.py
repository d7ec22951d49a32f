"""`raysys.tasks.gen._common`: the split machinery every generator uses. Slots cycle so
labels balance, eval splits are built first and never share a text with later ones,
ids follow the shuffled order, bad requests and exhausted text spaces raise."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from raysys.tasks.gen._common import BUILD_ORDER, make_splits, pick


def _counter(rng: random.Random, slot: str) -> tuple[str, str]:
    """Texts from a space of 60: slot + a number below 20."""
    return f"{slot} {rng.randrange(20)}", slot


def test_pick_takes_one_item_of_a_pool():
    rng = random.Random(0)
    assert {pick(rng, "a|b|c") for _ in range(60)} == {"a", "b", "c"}
    assert pick(rng, "only") == "only"


def test_slots_cycle_so_each_split_is_balanced():
    out = make_splits(
        "toy", ("train", "test"), {"test": 12, "train": 9}, 0, _counter, ("x", "y", "z")
    )
    assert list(out) == ["train", "test"]  # in the task's own split order
    for rows in out.values():
        counts = Counter(r["gold"] for r in rows)
        assert max(counts.values()) - min(counts.values()) == 0


def test_earlier_built_splits_are_never_reused_and_ids_follow_the_order():
    assert BUILD_ORDER == ("test", "validation", "train")
    out = make_splits(
        "toy",
        ("train", "validation", "test"),
        {"train": 20, "validation": 10, "test": 15},
        1,
        _counter,
        ("x", "y", "z"),
    )
    texts = {s: {r["input"] for r in rows} for s, rows in out.items()}
    assert not (texts["test"] & texts["validation"]) and not (
        texts["train"] & (texts["test"] | texts["validation"])
    )
    assert [r["id"] for r in out["validation"]] == [f"toy-validation-{i:06d}" for i in range(10)]
    # the slot cycle does not show in the row order
    assert [r["gold"] for r in out["train"][:6]] != ["x", "y", "z", "x", "y", "z"]


def test_bad_requests_name_the_split():
    with pytest.raises(
        ValueError, match=r"toy: unknown split\(s\) \['dev'\]; this task has only \['test'\]"
    ):
        make_splits("toy", ("test",), {"dev": 1}, 0, _counter, ("x",))
    for size in (-1, 2.5, True):
        with pytest.raises(ValueError, match="size for 'test' must be a non-negative int"):
            make_splits("toy", ("test",), {"test": size}, 0, _counter, ("x",))


def test_impossible_size_raises():
    def same(rng, slot):
        return "always the same text", "x"

    assert len(make_splits("toy", ("test",), {"test": 1}, 0, same, ("x",))["test"]) == 1
    with pytest.raises(ValueError, match="cannot make 2 distinct test rows"):
        make_splits("toy", ("test",), {"test": 2}, 0, same, ("x",))
