"""Scaling laws: error = 1 - metric as a power law of the task's training rows.

    (1 - metric) = A * d ** -alpha,  fitted as  log(1 - m) = log A - alpha * log d

by least squares in log-log space; alpha is how fast more data of a task buys score on
it. A line through two sizes always fits (R² 1, no residual to say how well), so a fit
needs `MIN_SIZES` = 3 distinct sizes; an arm swept at fewer is listed as "not fitted: 2
sizes". alpha's interval: with >= 2 seeds at every size, a bootstrap of the seeds within
each size; otherwise the least-squares t-interval of the slope (n - 2 degrees of
freedom, wide on few points, as it should be). An interval without spread is none.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from raysys.analysis.results import COCKTAIL_KEY, MissingInput, main_col, require_columns, trained

log = logging.getLogger(__name__)

# A perfect score has no log: 1 - m is clipped to this floor, i.e. one error in a
# thousand, below the resolution of the test splits we score (hundreds of rows).
ERROR_FLOOR = 1e-3
POINT_COLUMNS = ["task", *COCKTAIL_KEY, "d", "metric"]
MIN_SIZES = 3


@dataclass(frozen=True)
class ScalingFit:
    A: float
    alpha: float
    alpha_lo: float
    alpha_hi: float
    r2: float
    n_points: int
    n_sizes: int
    ci_method: str = "none"  # "seed bootstrap", "t" (slope), or "none"

    def predict(self, d: float | np.ndarray) -> float | np.ndarray:
        """The metric the fit expects after `d` training rows."""
        return 1.0 - self.A * np.asarray(d, dtype=float) ** -self.alpha


def fit_power_law(
    d: Sequence[float],
    metric: Sequence[float],
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> ScalingFit:
    """Fit (1 - metric) = A * d**-alpha; `d` are training rows, `metric` in [0, 1].

    Needs >= `MIN_SIZES` distinct sizes. Points with a NaN metric are dropped.
    """
    x, y = _log_points(d, metric)
    n_sizes = len(np.unique(x))
    if n_sizes < MIN_SIZES:
        sizes = ", ".join(f"{v:g}" for v in np.unique(np.round(np.exp(x), 6))) or "none"
        raise MissingInput(
            f"{not_fitted(n_sizes)}; a power-law fit needs >= {MIN_SIZES} distinct data "
            f"sizes d, got {n_sizes} (d = {sizes}); sweep at least {MIN_SIZES} data fractions"
        )
    fit = stats.linregress(x, y)
    r2 = float(fit.rvalue**2) if np.ptp(y) > 0 else math.nan  # flat errors explain nothing
    lo, hi, method = _alpha_interval(x, y, fit, n_boot, seed, confidence)
    return ScalingFit(
        A=float(math.exp(fit.intercept)),
        alpha=float(-fit.slope),
        alpha_lo=lo,
        alpha_hi=hi,
        r2=r2,
        n_points=int(x.size),
        n_sizes=n_sizes,
        ci_method=method,
    )


def not_fitted(n_sizes: int) -> str:
    """What the report prints instead of a law: `not fitted: 2 sizes`."""
    return f"not fitted: {n_sizes} size{'' if n_sizes == 1 else 's'}"


def data_for_target(fit: ScalingFit, target_metric: float) -> float:
    """Training rows at which the fit reaches `target_metric`; inf if it never does
    (alpha <= 0: more data does not help, or a target of 1: a perfect score)."""
    gap = 1.0 - target_metric
    if fit.alpha <= 0 or gap <= 0:
        return math.inf
    return float((fit.A / gap) ** (1.0 / fit.alpha))


def scaling_points(results: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """(task, cocktail, general, math, d, metric) for every trial evaluated on a task it
    trained on, with d = that task's rows in the mixture."""
    col = main_col(split)
    need = ["trial_id", "cocktail_kind", *COCKTAIL_KEY, "fraction", "task", "task_train_rows"]
    require_columns(results, [*need, col], "the scaling fit")
    rows = trained(results)
    rows = rows[(rows["task_train_rows"] > 0) & rows[col].notna()]
    points = rows.rename(columns={"task_train_rows": "d", col: "metric"})
    return points[[*POINT_COLUMNS, "fraction"]].reset_index(drop=True)


def scaling_table(
    results: pd.DataFrame,
    split: str = "test",
    target: float | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """One row per (task, cocktail, general, math) swept at >= 2 fractions; arms with fewer
    than `MIN_SIZES` distinct sizes have `fit` "not fitted: N sizes" and NaN estimates.

    `d_for_target` is the training rows the fit needs to reach `target`. By default the
    target is per task: the best score observed on it plus half the remaining distance
    to 1 (halving the best run's error), so every cocktail of a task is measured
    against the same, just-out-of-reach bar.
    """
    points = scaling_points(results, split)
    rows = []
    for key, group in points.groupby(["task", *COCKTAIL_KEY]):
        if group["fraction"].nunique() < 2:
            continue
        rows.append(
            dict(zip(["task", *COCKTAIL_KEY], key, strict=True))
            | _fit_row(group, n_boot, seed, confidence)
        )
    if not rows:
        raise MissingInput(
            "no cocktail was trained at >= 2 data fractions of a task it was evaluated on; "
            f"sweep at least {MIN_SIZES} fractions to fit a scaling law"
        )
    table = pd.DataFrame(rows)
    unfit = table[table["fit"] != FITTED]
    if len(unfit):
        log.info(
            "no scaling fit for %d of %d (task, cocktail) pairs (%s); see the report",
            len(unfit),
            len(table),
            ", ".join(sorted(set(unfit["fit"]))),
        )
    best = points.groupby("task")["metric"].max()
    table["target"] = target if target is not None else table["task"].map(best + (1 - best) / 2)
    table["d_for_target"] = [
        data_for_target(_as_fit(r), t) if r["fit"] == FITTED else math.nan
        for r, t in zip(table.to_dict("records"), table["target"], strict=True)
    ]
    return table


FITTED = "fitted"
_FIT_FIELDS = [f for f in ScalingFit.__dataclass_fields__]


def _fit_row(group: pd.DataFrame, n_boot: int, seed: int, confidence: float) -> dict:
    """The fit's fields and `fit` = "fitted", or NaNs and "not fitted: N sizes"."""
    try:
        fit = fit_power_law(group["d"], group["metric"], n_boot, seed, confidence)
    except MissingInput as err:
        n_sizes = int(group["d"].nunique())
        log.debug("no scaling fit for %s: %s", group[["task", "cocktail"]].iloc[0].tolist(), err)
        nan = dict.fromkeys(["A", "alpha", "alpha_lo", "alpha_hi", "r2"], math.nan)
        return nan | {
            "n_points": len(group),
            "n_sizes": n_sizes,
            "ci_method": "none",
            "fit": not_fitted(n_sizes),
        }
    return asdict(fit) | {"fit": FITTED}


def _as_fit(row: dict) -> ScalingFit:
    return ScalingFit(**{k: row[k] for k in _FIT_FIELDS})


def _log_points(d: Sequence[float], metric: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    d_arr = np.asarray(d, dtype=float)
    m_arr = np.asarray(metric, dtype=float)
    if d_arr.shape != m_arr.shape:
        raise ValueError(
            f"d and metric must have the same length, got {d_arr.size} and {m_arr.size}"
        )
    keep = ~(np.isnan(d_arr) | np.isnan(m_arr))
    d_arr, m_arr = d_arr[keep], m_arr[keep]
    if (d_arr <= 0).any():
        raise ValueError(f"d (training rows) must be > 0, got {d_arr[d_arr <= 0][0]:g}")
    return np.log(d_arr), np.log(np.clip(1.0 - m_arr, ERROR_FLOOR, None))


def _alpha_interval(
    x: np.ndarray, y: np.ndarray, fit: Any, n_boot: int, seed: int, confidence: float
) -> tuple[float, float, str]:
    """(lo, hi, method): the seed bootstrap where every size has >= 2 seeds, else the
    slope's t-interval; NaN when either has no spread (points exactly on a line)."""
    _, counts = np.unique(x, return_counts=True)
    if counts.min() >= 2 and n_boot > 0:
        lo, hi = _bootstrap_alpha(x, y, n_boot, seed, confidence)
        method = "seed bootstrap"
    else:
        half = stats.t.ppf((1 + confidence) / 2, x.size - 2) * fit.stderr
        lo, hi, method = -fit.slope - half, -fit.slope + half, "t"
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi - lo <= 1e-12:
        return math.nan, math.nan, "none"
    return float(lo), float(hi), method


def _bootstrap_alpha(
    x: np.ndarray, y: np.ndarray, n_boot: int, seed: int, confidence: float
) -> tuple[float, float]:
    """Percentile interval of alpha over seeds resampled within each size, all at once."""
    idx = _resample(x, n_boot, np.random.default_rng(seed))
    xb, yb = x[idx], y[idx]
    xc = xb - xb.mean(axis=1, keepdims=True)
    sxx = (xc**2).sum(axis=1)
    slopes = (xc * (yb - yb.mean(axis=1, keepdims=True))).sum(axis=1) / sxx
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(-slopes, [tail, 100 - tail])
    return float(lo), float(hi)


def _resample(x: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n) indices, seeds resampled within each size: the design (which sizes
    were swept) is fixed, the seed noise is what is uncertain, and no resample loses a
    size (so every resample has a slope)."""
    parts = []
    for size in np.unique(x):
        members = np.flatnonzero(x == size)
        parts.append(members[rng.integers(0, members.size, size=(n_boot, members.size))])
    return np.concatenate(parts, axis=1)


def top_arms(fits: pd.DataFrame, points: pd.DataFrame, per_task: int) -> pd.DataFrame:
    """At most `per_task` rows of `fits` per task, in their order: the arms with the best
    mean test score at their largest data size (ties: the cocktail key), so a sweep of
    thousands of cocktails still reads (and plots) as a few lines per task."""
    key = ["task", *COCKTAIL_KEY]
    at_top = points[points["d"] == points.groupby(key)["d"].transform("max")]
    best = at_top.groupby(key)["metric"].mean().rename("_best").reset_index()
    ranked = fits.reset_index(drop=True).reset_index().merge(best, on=key, how="left")
    order = ["task", "_best", *COCKTAIL_KEY]
    ranked = ranked.sort_values(order, ascending=[True, False, True, True, True])
    keep = ranked.groupby("task", sort=False).head(per_task)["index"]
    return fits.iloc[sorted(keep)]
