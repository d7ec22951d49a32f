"""Seeded, stratified, nested samples of a task's rows, and what a sample looks like.

Published files are often sorted by label, so the first N rows of a file can hold one
label only. Every cap a run puts on a split (train/validation/test sizes, pools, data
fractions) therefore takes a prefix of one *stratified order* of the whole split:

- each label's rows are ranked by sha256(seed:id), a key that depends on the row's id
  alone (its id column, else its content), so the order is the same on every machine
  and does not change when the file is reordered;
- the k-th row of a label with n rows gets the position (k + u) / n, with u a per-label
  offset in [0, 1) from the same hash; sorting all rows by position interleaves the
  labels in proportion, so *every* prefix holds each label near its share of the split: a
  label's count misses its share at the prefix's position by under one row (its own
  offset), and the prefix's length misses that position by the other labels' misses, so
  the bound is under one row with two labels and under L-1 rows with L labels (measured:
  at most 3.1 rows with 5 labels, mostly far less) — and a shorter prefix is inside a
  longer one (nested sizes).

Tasks without labels (NER, numeric, free text) use the hash ranking alone.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

Row = dict[str, Any]
_TWO_64 = 2**64
# A sample whose label shares differ from the source's by more than this is flagged.
SHARE_TOLERANCE = 0.10


def stable_int(key: str, salt: int | str) -> int:
    """First 8 bytes of sha256(f"{salt}:{key}"), big-endian: the same everywhere."""
    return int.from_bytes(hashlib.sha256(f"{salt}:{key}".encode()).digest()[:8], "big")


def stable_unit(key: str, salt: int | str) -> float:
    return stable_int(key, salt) / _TWO_64


def stratified_order(rows: list[Row], seed: int | str, by: str | None = "gold") -> list[Row]:
    """All rows, ordered so that every prefix is a stratified sample (see the module doc).

    `by=None` (or rows without that key) ranks by the id hash alone.
    """
    ranked = sorted(rows, key=lambda r: (stable_int(str(r["id"]), seed), str(r["id"])))
    if by is None:
        return ranked
    groups: dict[str, list[Row]] = {}
    for r in ranked:
        groups.setdefault(str(r.get(by)), []).append(r)
    if len(groups) < 2:
        return ranked
    keyed = []
    for label, members in groups.items():
        offset = Fraction(stable_int(label, f"{seed}:offset"), _TWO_64)
        n = len(members)
        keyed += [
            ((k + offset) / n, stable_int(str(r["id"]), seed), str(r["id"]), r)
            for k, r in enumerate(members)
        ]
    keyed.sort(key=lambda t: t[:3])
    return [t[3] for t in keyed]


def split_by_fractions(
    rows: list[Row], fractions: dict[str, float], seed: int | str, by: str | None
) -> dict[str, list[Row]]:
    """One file's rows into splits: per label, the stratified order's first share goes to
    the first named split, and so on; the rest is `train`. Deterministic from the rows'
    ids (content) alone."""
    order = stratified_order(rows, seed, by)
    groups: dict[str, list[Row]] = {}
    for r in order:
        groups.setdefault(str(r.get(by)) if by else "", []).append(r)
    out: dict[str, list[Row]] = {name: [] for name in (*fractions, "train")}
    for members in groups.values():
        start = 0
        for name, share in fractions.items():
            n = round(share * len(members))
            out[name] += members[start : start + n]
            start += n
        out["train"] += members[start:]
    return {name: part for name, part in out.items() if part}


@dataclass
class SampleReport:
    """A split's source rows against the rows a run uses of it."""

    split: str
    source_rows: int
    used_rows: int
    source_labels: dict[str, int] = field(default_factory=dict)
    used_labels: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def label_counts(rows: Iterable[Row], by: str = "gold") -> dict[str, int]:
    counts = Counter(str(r.get(by)) for r in rows)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def sample_report(
    task: str, split: str, source: list[Row], used: list[Row], labelled: bool
) -> SampleReport:
    """Counts, and a warning when the sample misses a label of the source or a label's
    share moves by more than `SHARE_TOLERANCE`."""
    rep = SampleReport(split, len(source), len(used))
    if not labelled:
        return rep
    rep.source_labels, rep.used_labels = label_counts(source), label_counts(used)
    missing = [lab for lab in rep.source_labels if lab not in rep.used_labels]
    if missing and used:
        rep.warnings.append(
            f"task {task}: the {split} sample ({len(used)} of {len(source)} rows) has no "
            f"row labelled {', '.join(missing)}; raise the {split} size"
        )
    for lab, n in rep.source_labels.items():
        src, got = n / len(source), rep.used_labels.get(lab, 0) / max(len(used), 1)
        if lab not in missing and abs(src - got) > SHARE_TOLERANCE:
            rep.warnings.append(
                f"task {task}: label {lab} is {got:.0%} of the {split} sample but {src:.0%} "
                f"of the source; raise the {split} size"
            )
    return rep
