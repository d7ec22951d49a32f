"""Confidence intervals: Student-t over seeds, percentile bootstrap over test rows.

An interval is printed only where the data can carry it: a t-interval needs
`MIN_SEEDS_FOR_T` seeds (from two, the t quantile is 12.7 and the interval says nothing
but "two numbers"), and an interval without spread (identical seeds, or a bootstrap
whose resamples all score the same) is no interval: NaN, shown as the mean alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

from raysys.tasks.base import Task

MIN_SEEDS_FOR_T = 3


def mean_ci(
    values: Sequence[float], confidence: float = 0.95, min_values: int = MIN_SEEDS_FOR_T
) -> tuple[float, float, float]:
    """(mean, lo, hi) of a Student-t interval over seeds; lo = hi = NaN below `min_values`
    values or when they do not spread.

    NaNs (a trial that failed to score) are dropped rather than poisoning the mean.
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if x.size < max(min_values, 2):
        return mean, math.nan, math.nan
    sem = float(x.std(ddof=1)) / math.sqrt(x.size)
    if sem == 0.0:  # identical seeds: a zero-width interval would claim certainty
        return mean, math.nan, math.nan
    lo, hi = stats.t.interval(confidence, x.size - 1, loc=mean, scale=sem)
    return mean, float(lo), float(hi)


def bootstrap_main_ci(
    task: str | Task,
    golds: Sequence[str],
    outputs: Sequence[str],
    inputs: Sequence[str] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile-bootstrap (lo, hi) of the task's main metric, resampling test rows;
    NaN when the resamples do not spread (e.g. every row right).

    Used when a cocktail ran with fewer than `MIN_SEEDS_FOR_T` seeds: the spread over
    test rows is then the only uncertainty we can measure. Rows are resampled as
    (gold, output, input) triples so NER keeps each output next to its sentence.
    """
    from raysys.analysis.paired import row_bootstrap_ci
    from raysys.analysis.rowscore import RowScorer

    if isinstance(task, str):
        from raysys.tasks import get_task

        task = get_task(task)
    if len(golds) != len(outputs) or (inputs is not None and len(inputs) != len(golds)):
        raise ValueError(
            f"golds, outputs and inputs must have one entry per row, got {len(golds)}, "
            f"{len(outputs)} and {len(inputs) if inputs is not None else 'None'}"
        )
    if len(golds) == 0:
        return math.nan, math.nan
    scorer = RowScorer(task.name, task.kind, task.main_metric, tuple(task.labels))
    counts = scorer.counts(golds, [task.extract(out) for out in outputs], inputs)
    return row_bootstrap_ci(scorer, counts, n_boot, seed, confidence)
