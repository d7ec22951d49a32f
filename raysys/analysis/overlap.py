"""The report section "Overlap with evaluation splits": the run's contamination check
(`raysys.data.contamination`), one row per evaluation split, in every report."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from raysys.analysis.render import Document, Heading, Para, fmt, table
from raysys.data import contamination

TITLE = "Overlap with evaluation splits"


def overlap_section(doc: Document, run_dir: Path) -> None:
    """The table from `contamination.json` in `run_dir`; says so where there is none."""
    doc.add(Heading(2, TITLE))
    result = contamination.read(run_dir)
    if result is None:
        doc.add(Para(f"No `{contamination.FILE}` in this run: the check did not run."))
        return
    s = result.settings
    doc.add(Para(_rule(s)))
    if not result.splits:
        doc.add(Para("No evaluation split to compare with."))
        return
    found = result.found()
    doc.add(table(overlap_frame(result.splits)))
    if not found:
        doc.add(Para("None found: no evaluation row overlaps a training row."))
    elif s.get("allow") or all(o.share <= s.get("max_share", 0) for o in found):
        doc.add(Para(_tolerated(s)))


def overlap_frame(splits: list[contamination.Overlap]) -> pd.DataFrame:
    rows = [
        {
            "task": o.eval_task,
            "split": o.split,
            "rows": fmt(o.eval_rows),
            "training rows": fmt(o.train_rows),
            "exact": fmt(o.exact),
            "near-duplicate": fmt(o.near_duplicate),
            "n-gram": fmt(o.ngram),
            "affected": fmt(o.affected),
            "share": f"{o.share:.1%}" if o.eval_rows else "–",
            "from": o.source.replace("+", ", ") or "–",
            "example": f"{o.example_id} ~ {o.example_train_id}" if o.example_id else "–",
        }
        for o in splits
    ]
    return pd.DataFrame(rows)


def _rule(s: dict) -> str:
    return (
        "Every training row (gold, synthetic pools, general/math regularisers) against every "
        "evaluation split, on the task input: `exact` after normalisation (NFKC, case, "
        f"punctuation, whitespace); `near-duplicate` at Jaccard ≥ {s['near_duplicate']:g} of "
        f"word 5-gram shingles (MinHash LSH, confirmed exactly); `n-gram` when the "
        f"{s['ngram']}-grams one training row shares with it cover ≥ "
        f"{s['ngram_coverage']:.0%} of its words (n-grams in more than {s['common_rows']} "
        "rows are template text and do not count). A row may "
        "count in several columns; `affected` counts it once; `example` is an evaluation id ~ "
        "the training id it overlaps."
    )


def _tolerated(s: dict) -> str:
    if s.get("allow"):
        return "The run was allowed to train anyway (`contamination.allow: true`)."
    return f"Within `contamination.max_share` ({s['max_share']:.1%}): the run trained."
