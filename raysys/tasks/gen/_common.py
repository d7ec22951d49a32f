"""Split machinery shared by the generated tasks: seeding, balance, dedupe, no leakage.

Every task module supplies only a `make(rng, slot) -> (input, gold)` function and a
tuple of slots (labels, entity counts, question kinds ...). Rows cycle through the
slots, which is what keeps labels and question kinds balanced within one split.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from raysys.tasks.base import split_rng

Row = dict[str, Any]
Maker = Callable[[random.Random, Any], tuple[str, str]]

# Eval splits are built first so their rows never depend on how large train is.
BUILD_ORDER = ("test", "validation", "train")
# A run of this many duplicate draws in a row means the text space is used up.
MAX_MISSES = 2000


def pick(rng: random.Random, pool: str) -> str:
    """One item of a '|'-separated pool (pools stay compact on the page)."""
    return rng.choice(pool.split("|"))


def make_splits(
    name: str,
    allowed: Sequence[str],
    sizes: dict[str, int],
    seed: int,
    make: Maker,
    slots: Sequence[Any],
) -> dict[str, list[Row]]:
    """Rows for every requested split; texts of earlier-built splits are never reused."""
    unknown = [s for s in sizes if s not in allowed]
    if unknown:
        raise ValueError(f"{name}: unknown split(s) {unknown}; this task has only {list(allowed)}")
    for split, size in sizes.items():
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError(f"{name}: size for {split!r} must be a non-negative int, got {size!r}")
    out: dict[str, list[Row]] = {}
    taken: set[str] = set()
    for split in BUILD_ORDER:
        if split in sizes:
            out[split] = _generate(name, split, sizes[split], seed, make, slots, taken)
            taken |= {r["input"] for r in out[split]}
    return {s: out[s] for s in allowed if s in out}


def _generate(
    name: str,
    split: str,
    size: int,
    seed: int,
    make: Maker,
    slots: Sequence[Any],
    exclude: set[str],
) -> list[Row]:
    rng = split_rng(seed, name, split)
    seen = set(exclude)
    drafts: list[tuple[str, str]] = []
    misses = 0
    while len(drafts) < size:
        text, gold = make(rng, slots[len(drafts) % len(slots)])
        if text in seen:
            misses += 1
            if misses > MAX_MISSES:
                raise ValueError(
                    f"{name}: cannot make {size} distinct {split} rows "
                    f"(stuck at {len(drafts)}); lower the size"
                )
            continue
        misses = 0
        seen.add(text)
        drafts.append((text, gold))
    # Shuffle so the slot cycle does not show in row order; ids follow the final order.
    rng.shuffle(drafts)
    return [
        {"id": f"{name}-{split}-{i:06d}", "task": name, "split": split, "input": t, "gold": g}
        for i, (t, g) in enumerate(drafts)
    ]
