"""Scaling laws: error = 1 - metric as a power law of the task's training rows.

    (1 - metric) = A * d ** -alpha,  fitted as  log(1 - m) = log A - alpha * log d

by least squares in log-log space; alpha is how fast more data of a task buys score on
it. A bootstrap over the sweep's points gives alpha's interval.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

from raysys.analysis.results import COCKTAIL_KEY, MissingInput, main_col, require_columns, trained

log = logging.getLogger(__name__)

# A perfect score has no log: 1 - m is clipped to this floor, i.e. one error in a
# thousand, below the resolution of the test splits we score (hundreds of rows).
ERROR_FLOOR = 1e-3
POINT_COLUMNS = ["task", *COCKTAIL_KEY, "d", "metric"]


@dataclass(frozen=True)
class ScalingFit:
    A: float
    alpha: float
    alpha_lo: float
    alpha_hi: float
    r2: float
    n_points: int
    n_sizes: int

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

    Needs >= 2 distinct sizes. Points with a NaN metric are dropped.
    """
    x, y = _log_points(d, metric)
    n_sizes = len(np.unique(x))
    if n_sizes < 2:
        sizes = ", ".join(f"{v:g}" for v in np.unique(np.exp(x))) or "none"
        raise MissingInput(
            f"a power-law fit needs >= 2 distinct data sizes d, got {n_sizes} (d = {sizes}); "
            "sweep at least two data fractions"
        )
    fit = stats.linregress(x, y)
    r2 = float(fit.rvalue**2) if np.ptp(y) > 0 else math.nan  # flat errors explain nothing
    lo, hi = _bootstrap_alpha(x, y, n_boot, seed, confidence)
    return ScalingFit(
        A=float(math.exp(fit.intercept)),
        alpha=float(-fit.slope),
        alpha_lo=lo,
        alpha_hi=hi,
        r2=r2,
        n_points=int(x.size),
        n_sizes=n_sizes,
    )


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
    """One power-law fit per (task, cocktail, general, math) swept at >= 2 fractions.

    `d_for_target` is the training rows the fit needs to reach `target`. By default the
    target is per task: the best score observed on it plus half the remaining distance
    to 1 (halving the best run's error), so every cocktail of a task is measured
    against the same, just-out-of-reach bar.
    """
    points = scaling_points(results, split)
    keys, fits = [], []
    for key, group in points.groupby(["task", *COCKTAIL_KEY]):
        if group["fraction"].nunique() < 2:
            continue
        try:
            fits.append(fit_power_law(group["d"], group["metric"], n_boot, seed, confidence))
        except MissingInput as err:  # fractions so small they round to the same rows
            log.info("no scaling fit for %s: %s", key, err)
            continue
        keys.append(key)
    if not fits:
        raise MissingInput(
            "no cocktail was trained at >= 2 data fractions of a task it was evaluated on; "
            "sweep at least two fractions to fit a scaling law"
        )
    table = pd.DataFrame(keys, columns=["task", *COCKTAIL_KEY])
    table = pd.concat([table, pd.DataFrame([asdict(f) for f in fits])], axis=1)
    best = points.groupby("task")["metric"].max()
    table["target"] = target if target is not None else table["task"].map(best + (1 - best) / 2)
    table["d_for_target"] = [
        data_for_target(f, t) for f, t in zip(fits, table["target"], strict=True)
    ]
    return table


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


def _bootstrap_alpha(
    x: np.ndarray, y: np.ndarray, n_boot: int, seed: int, confidence: float
) -> tuple[float, float]:
    """Percentile interval of alpha over resampled points, all resamples at once."""
    if n_boot <= 0:
        return math.nan, math.nan
    idx = _resample(x, n_boot, np.random.default_rng(seed))
    xb, yb = x[idx], y[idx]
    xc = xb - xb.mean(axis=1, keepdims=True)
    sxx = (xc**2).sum(axis=1)
    ok = sxx > 0  # a resample with one size has no slope
    if not ok.any():
        return math.nan, math.nan
    slopes = (xc[ok] * (yb[ok] - yb[ok].mean(axis=1, keepdims=True))).sum(axis=1) / sxx[ok]
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(-slopes, [tail, 100 - tail])
    return float(lo), float(hi)


def _resample(x: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n) indices. With >= 2 seeds at every size, seeds are resampled within
    each size: the design (which sizes were swept) is fixed, the seed noise is what is
    uncertain, and no resample loses a size. Otherwise all points are resampled."""
    sizes, counts = np.unique(x, return_counts=True)
    if counts.min() < 2:
        return rng.integers(0, x.size, size=(n_boot, x.size))
    parts = []
    for size in sizes:
        members = np.flatnonzero(x == size)
        parts.append(members[rng.integers(0, members.size, size=(n_boot, members.size))])
    return np.concatenate(parts, axis=1)
