"""Confidence intervals: Student-t over seeds, percentile bootstrap over test rows."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

from raysys.tasks.base import Task


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, lo, hi) of a Student-t interval over seeds; lo = hi = NaN below two values.

    NaNs (a trial that failed to score) are dropped rather than poisoning the mean.
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if x.size < 2:
        return mean, math.nan, math.nan
    sem = float(x.std(ddof=1)) / math.sqrt(x.size)
    if sem == 0.0:  # identical seeds: scipy returns NaN for a zero scale, the interval is a point
        return mean, mean, mean
    lo, hi = stats.t.interval(confidence, x.size - 1, loc=mean, scale=sem)
    return mean, float(lo), float(hi)


def bootstrap_main_ci(
    task: str | Task,
    golds: Sequence[str],
    outputs: Sequence[str],
    inputs: Sequence[str] | None = None,
    n_boot: int = 200,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile-bootstrap (lo, hi) of the task's main metric, resampling test rows.

    Used when a cocktail ran with one seed: the spread over test rows is then the only
    uncertainty we can measure. Rows are resampled as (gold, output, input) triples so
    NER keeps each output next to its sentence.
    """
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
    from raysys.evaluate.metrics import score_kind

    # Extraction is per row, so extracting once and resampling the answers gives exactly
    # `task.score(...)["main"]` per resample without re-running the regexes and the
    # flexible (FinBen) metrics `main` does not use: several times faster.
    g = np.asarray(golds, dtype=object)
    p = np.asarray([task.extract(out) for out in outputs], dtype=object)
    i = None if inputs is None else np.asarray(inputs, dtype=object)

    def main(idx: np.ndarray) -> float:
        sub_inputs = None if i is None else list(i[idx])
        return score_kind(task, list(g[idx]), list(p[idx]), sub_inputs)[task.main_metric]

    res = stats.bootstrap(
        (np.arange(len(golds)),),
        main,
        n_resamples=n_boot,
        vectorized=False,
        method="percentile",
        confidence_level=confidence,
        rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)
