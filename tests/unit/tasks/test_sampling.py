"""`raysys.tasks.sampling`: the stratified order whose every prefix holds each label
within one row of its share (hypothesis), independent of file order, nested; splitting
one file by fractions; the sample report's warnings."""

from __future__ import annotations

import hashlib
import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raysys.tasks.sampling import (
    SampleReport,
    label_counts,
    sample_report,
    split_by_fractions,
    stable_int,
    stable_unit,
    stratified_order,
)


def _rows(counts: dict[str, int]) -> list[dict]:
    """Rows sorted by label, as published files often are."""
    return [
        {"id": f"{label}-{i:04d}", "gold": label} for label, n in counts.items() for i in range(n)
    ]


def test_stable_int_is_sha256_of_salt_and_key():
    digest = hashlib.sha256(b"7:row-1").digest()
    assert stable_int("row-1", 7) == int.from_bytes(digest[:8], "big")
    assert stable_int("row-1", "7") == stable_int("row-1", 7)
    assert 0 <= stable_unit("row-1", 7) < 1
    assert stable_unit("row-1", 7) == stable_int("row-1", 7) / 2**64


label_sizes = st.dictionaries(
    st.sampled_from(["pos", "neg", "neu", "mixed", "x"]),
    st.integers(min_value=1, max_value=60),
    min_size=1,
    max_size=5,
)


def _worst_prefix_deviation(sizes: dict[str, int], seed: int) -> float:
    """The largest |label rows in a prefix - prefix length x label share| over all
    prefixes of the stratified order, in rows."""
    rows = _rows(sizes)
    order = stratified_order(rows, seed)
    assert sorted(r["id"] for r in order) == sorted(r["id"] for r in rows)  # a permutation
    total, seen, worst = len(rows), Counter(), 0.0
    for m, row in enumerate(order, start=1):
        seen[row["gold"]] += 1
        worst = max(worst, *(abs(seen[lab] - m * n / total) for lab, n in sizes.items()))
    return worst


@settings(max_examples=60, deadline=None)
@given(label_sizes, st.integers(min_value=0, max_value=2**32 - 1))
def test_every_prefix_holds_each_label_near_its_share(sizes, seed):
    # Each label's count at a position threshold t is t·n ± under one row (its offset);
    # a prefix of m rows sits at the t where the counts sum to m, off by the others'
    # errors: under 1 row with two labels, under L-1 with L (hypothesis found 2.0 with 4
    # labels, an earlier claim of "< 2 rows" was wrong beyond three labels).
    assert _worst_prefix_deviation(sizes, seed) < max(1, len(sizes) - 1)


@settings(max_examples=30, deadline=None)
@given(label_sizes, st.integers(min_value=0, max_value=1000), st.randoms(use_true_random=False))
def test_the_order_does_not_depend_on_the_file_order(sizes, seed, rnd):
    rows = _rows(sizes)
    shuffled = rows[:]
    rnd.shuffle(shuffled)
    assert stratified_order(shuffled, seed) == stratified_order(rows, seed)


def test_the_seed_changes_the_order_and_by_none_ranks_by_id_alone():
    rows = _rows({"a": 30, "b": 10})
    assert stratified_order(rows, 0) != stratified_order(rows, 1)
    by_id = stratified_order(rows, 0, by=None)
    assert [r["id"] for r in by_id] == [
        r["id"] for r in sorted(rows, key=lambda r: stable_int(r["id"], 0))
    ]
    one_label = _rows({"a": 5})
    assert stratified_order(one_label, 3) == stratified_order(one_label, 3, by=None)


def test_a_sorted_file_gives_a_mixed_head():
    order = stratified_order(_rows({"pos": 60, "neg": 25, "neu": 15}), 0)
    head = Counter(r["gold"] for r in order[:20])
    assert head == {"pos": 12, "neg": 5, "neu": 3}


def test_split_by_fractions_takes_each_labels_share_and_leaves_train():
    rows = _rows({"pos": 60, "neg": 20})
    parts = split_by_fractions(rows, {"test": 0.25, "validation": 0.1}, 0, "gold")
    count = {k: Counter(r["gold"] for r in v) for k, v in parts.items()}
    assert count == {
        "test": {"pos": 15, "neg": 5},
        "validation": {"pos": 6, "neg": 2},
        "train": {"pos": 39, "neg": 13},
    }
    ids = [r["id"] for part in parts.values() for r in part]
    assert sorted(ids) == sorted(r["id"] for r in rows)  # every row once
    random.Random(1).shuffle(rows)
    assert split_by_fractions(rows, {"test": 0.25, "validation": 0.1}, 0, "gold") == parts


def test_split_by_fractions_drops_empty_splits_and_works_without_labels():
    rows = [{"id": str(i)} for i in range(10)]
    parts = split_by_fractions(rows, {"test": 0.3, "validation": 0.0}, 5, None)
    assert {k: len(v) for k, v in parts.items()} == {"test": 3, "train": 7}


def test_label_counts_most_common_first_then_by_name():
    rows = [{"gold": g} for g in "bbaacd"] + [{"gold": None}]
    assert list(label_counts(rows).items()) == [("a", 2), ("b", 2), ("None", 1), ("c", 1), ("d", 1)]


def test_sample_report_warns_of_a_missing_label_and_a_moved_share():
    source = _rows({"pos": 80, "neg": 20})
    ok = sample_report("t", "test", source, source[:8] + source[80:82], labelled=True)
    assert ok.warnings == [] and ok.used_labels == {"pos": 8, "neg": 2}
    missing = sample_report("t", "test", source, source[:10], labelled=True)
    assert missing.warnings == [
        "task t: the test sample (10 of 100 rows) has no row labelled neg; raise the test size",
        "task t: label pos is 100% of the test sample but 80% of the source; raise the test size",
    ]
    moved = sample_report("t", "train", source, source[:5] + source[80:85], labelled=True)
    assert moved.warnings == [
        "task t: label pos is 50% of the train sample but 80% of the source; raise the train size",
        "task t: label neg is 50% of the train sample but 20% of the source; raise the train size",
    ]
    unused = sample_report("t", "test", source, [], labelled=True)
    assert unused.warnings == [] and unused.used_labels == {}  # an empty sample: no warning


def test_sample_report_of_an_unlabelled_task_only_counts():
    rep = sample_report("ner", "test", [{"id": 1}] * 5, [{"id": 1}] * 2, labelled=False)
    assert rep == SampleReport("test", 5, 2)


@pytest.mark.parametrize("n", [1, 2, 7])
def test_a_prefix_is_nested_in_a_longer_one(n):
    order = stratified_order(_rows({"a": 9, "b": 4}), 11)
    assert order[:n] == order[: n + 3][:n]
