"""Leaderboard: per evaluated task, the best cocktail chosen on validation, reported on test.

Choosing on test and reporting test would overstate the winner (the max of noisy means
is biased up), so the choice uses mean `val_main` over seeds and the test numbers are
only read afterwards.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import pandas as pd

from raysys.analysis.results import (
    COCKTAIL_KEY,
    at_largest_fraction,
    base_scores,
    no_regulariser,
    require_columns,
    trained,
)
from raysys.analysis.stats import bootstrap_main_ci, mean_ci
from raysys.errors import UserError

log = logging.getLogger(__name__)

COLUMNS = [
    "task",
    "main_metric",
    "best_cocktail",
    "general",
    "math",
    "fraction",
    "seeds",
    "val_mean",
    "test_mean",
    "test_lo",
    "test_hi",
    "ci_method",
    "single_test",
    "single_lo",
    "single_hi",
    "base_test",
    "delta_vs_single",
    "delta_vs_base",
    "regularisers_delta",
    "regularisers_helped",
]
_NEEDED = [
    "trial_id",
    "cocktail",
    "cocktail_kind",
    "cocktail_tasks",
    "general",
    "math",
    "fraction",
    "task",
    "val_main",
    "test_main",
]


@dataclass(frozen=True)
class ArmScore:
    """A cocktail's test score over its seeds, with the interval and how it was made."""

    mean: float = math.nan
    lo: float = math.nan
    hi: float = math.nan
    method: str = "none"  # "t" over seeds, "bootstrap" over test rows, or "none"
    seeds: int = 0


@dataclass(frozen=True)
class _CiSource:
    """What the intervals are made from: seeds, or else these test generations."""

    predictions: pd.DataFrame | None
    confidence: float
    n_boot: int
    seed: int


def leaderboard(
    results: pd.DataFrame,
    predictions: pd.DataFrame | None = None,
    confidence: float = 0.95,
    n_boot: int = 200,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per evaluated task: best cocktail by validation, its test mean and CI, the
    single-task baseline, the base model, and whether the regulariser shares helped.

    The CI is a Student-t interval over seeds; with one seed and `predictions` (the
    test generations), a percentile bootstrap over that trial's test rows; else NaN.
    """
    require_columns(results, _NEEDED, "the leaderboard")
    base = base_scores(results, "test")
    candidates = at_largest_fraction(trained(results))
    ci = _CiSource(predictions, confidence, n_boot, seed)
    rows = []
    for task in sorted(results["task"].unique()):
        task_rows = candidates[candidates["task"] == task]
        row = _task_row(task, task_rows, base.get(task, math.nan), ci)
        rows.append({**row, "main_metric": _main_metric(results, task)})
    board = pd.DataFrame(rows, columns=COLUMNS)
    board["regularisers_helped"] = board["regularisers_helped"].astype("boolean")
    return board


def _task_row(task: str, rows: pd.DataFrame, base_test: float, ci: _CiSource) -> dict:
    out: dict = {"task": task, "base_test": base_test, "seeds": 0, "ci_method": "none"}
    single = no_regulariser(
        rows[(rows["cocktail_kind"] == "singleton") & (rows["cocktail_tasks"] == task)]
    )
    single_score = _test_score(task, single, ci)
    out.update(single_test=single_score.mean, single_lo=single_score.lo, single_hi=single_score.hi)
    key = pick_by_validation(rows)
    if key is None:
        log.warning("task %s: no trained cocktail has a validation score on it; none chosen", task)
        return out
    chosen = _rows_of(rows, key)
    score = _test_score(task, chosen, ci)
    out.update(
        best_cocktail=key[0],
        general=key[1],
        math=key[2],
        fraction=chosen["fraction"].max(),
        seeds=score.seeds,
        val_mean=chosen["val_main"].mean(),
        test_mean=score.mean,
        test_lo=score.lo,
        test_hi=score.hi,
        ci_method=score.method,
        delta_vs_single=score.mean - single_score.mean,
        delta_vs_base=score.mean - base_test,
    )
    delta = _regulariser_delta(rows, key, score.mean)
    out["regularisers_delta"] = delta
    out["regularisers_helped"] = pd.NA if math.isnan(delta) else bool(delta > 0)
    return out


def pick_by_validation(rows: pd.DataFrame) -> tuple[str, float, float] | None:
    """The (cocktail, general, math) with the best mean `val_main`; None without any.

    Ties go to the alphabetically first cocktail, then the smaller shares, so reruns of
    the report pick the same winner.
    """
    means = rows.groupby(COCKTAIL_KEY)["val_main"].mean().dropna()
    if means.empty:
        return None
    ranked = means.reset_index().sort_values(
        ["val_main", *COCKTAIL_KEY], ascending=[False, True, True, True]
    )
    best = ranked.iloc[0]
    return str(best["cocktail"]), float(best["general"]), float(best["math"])


def _rows_of(rows: pd.DataFrame, key: tuple[str, float, float]) -> pd.DataFrame:
    cocktail, general, maths = key
    mask = (rows["cocktail"] == cocktail) & (rows["general"] == general)
    return rows[mask & (rows["math"] == maths)]


def _regulariser_delta(rows: pd.DataFrame, key: tuple[str, float, float], test: float) -> float:
    """Chosen arm minus the same cocktail without regularisers (NaN if it has none or the
    grid lacks that arm)."""
    if key[1] == 0 and key[2] == 0:
        return math.nan
    plain = no_regulariser(rows[rows["cocktail"] == key[0]])["test_main"].dropna()
    return test - float(plain.mean()) if len(plain) else math.nan


def _test_score(task: str, rows: pd.DataFrame, ci: _CiSource) -> ArmScore:
    values = rows["test_main"].dropna()
    if values.empty:
        return ArmScore()
    mean, lo, hi = mean_ci(values.to_numpy(), ci.confidence)
    if len(values) >= 2:
        return ArmScore(mean, lo, hi, "t", len(values))
    trial = str(rows.loc[values.index[0], "trial_id"])
    interval = _bootstrap(task, trial, ci)
    if interval is None:
        return ArmScore(mean, seeds=1)
    return ArmScore(mean, interval[0], interval[1], "bootstrap", 1)


def _bootstrap(task: str, trial: str, ci: _CiSource) -> tuple[float, float] | None:
    """Row bootstrap of one trial's test generations, or None when they are not at hand."""
    preds = ci.predictions
    if preds is None:
        return None
    mine = preds[(preds["adapter"] == trial) & (preds["task"] == task)]
    if mine.empty:
        return None
    try:
        return bootstrap_main_ci(
            task,
            mine["gold"].astype(str).tolist(),
            mine["generated_text"].fillna("").astype(str).tolist(),
            mine["input"].astype(str).tolist() if "input" in mine else None,
            n_boot=ci.n_boot,
            seed=ci.seed,
            confidence=ci.confidence,
        )
    except UserError as err:  # a YAML task not registered in this process
        log.warning("task %s: no bootstrap CI for trial %s: %s", task, trial, err)
        return None


def _main_metric(results: pd.DataFrame, task: str) -> str:
    if "main_metric" not in results:
        return "main"
    names = results.loc[results["task"] == task, "main_metric"].dropna()
    return str(names.iloc[0]) if len(names) else "main"
