"""Leaderboard: per evaluated task, the best cocktail chosen on validation, reported on test.

Choosing on test and reporting test would overstate the winner (the max of noisy means
is biased up), so the choice uses mean `val_main` over seeds and the test numbers are
only read afterwards. Whether the winner beats the single-task cocktail and the base
model is then a paired test on the test rows (`analysis.paired`), Holm-corrected across
tasks, next to the baselines and the `constant` marks (`analysis.evidence`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import pandas as pd

from raysys.analysis.evidence import (
    BASELINE_COLUMNS,
    COMPARISON_FIELDS,
    TaskRows,
    add_correction,
    arm_ci,
    baseline_values,
    compare,
    comparison_values,
    task_rows,
)
from raysys.analysis.results import (
    BASE,
    COCKTAIL_KEY,
    at_largest_fraction,
    base_scores,
    no_regulariser,
    require_columns,
    trained,
)
from raysys.analysis.stats import MIN_SEEDS_FOR_T, mean_ci

log = logging.getLogger(__name__)

COMPARISONS = ("vs_single", "vs_base")  # the chosen arm against the single-task arm, the base
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
    "test_constant",
    "single_seeds",
    "single_test",
    "single_lo",
    "single_hi",
    "single_constant",
    "base_test",
    "base_constant",
    *BASELINE_COLUMNS,
    "delta_vs_single",
    "delta_vs_base",
    *[f"{c}_{f}" for c in COMPARISONS for f in COMPARISON_FIELDS],
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
    method: str = "none"  # "t" over >= 3 seeds, "bootstrap" over test rows, or "none"
    seeds: int = 0
    trials: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Context:
    """One task's test predictions (None without them) and the interval settings."""

    rows: TaskRows | None
    confidence: float
    n_boot: int
    seed: int


def leaderboard(
    results: pd.DataFrame,
    predictions: pd.DataFrame | None = None,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per evaluated task: best cocktail by validation, its test mean and CI, the
    single-task arm, the base model, the baselines, the paired comparisons and whether
    the regulariser shares helped.

    CI rule: Student-t over seeds with >= 3 seeds; with 1 or 2 seeds (a t-interval from
    two points is no interval) a percentile bootstrap over the test rows when
    `predictions` (the test generations) are given; else none. Comparisons, baselines
    and `constant` need `predictions` too and are NaN without them.
    """
    require_columns(results, _NEEDED, "the leaderboard")
    base = base_scores(results, "test")
    candidates = at_largest_fraction(trained(results))
    rows = []
    for task in sorted(results["task"].unique()):
        ctx = _Context(task_rows(predictions, task, _kind(results, task)), confidence, n_boot, seed)
        row = _task_row(task, candidates[candidates["task"] == task], base.get(task, math.nan), ctx)
        rows.append({"task": task, **row, "main_metric": _main_metric(results, task)})
    board = pd.DataFrame(rows, columns=COLUMNS)
    for prefix in COMPARISONS:
        board = add_correction(board, prefix)
    board["regularisers_helped"] = board["regularisers_helped"].astype("boolean")
    return board


def _task_row(task: str, rows: pd.DataFrame, base_test: float, ctx: _Context) -> dict:
    out: dict = {"base_test": base_test, "seeds": 0, "ci_method": "none"}
    out |= baseline_values(ctx.rows) | _constants(ctx, "base", (BASE,))
    single_rows = rows[(rows["cocktail_kind"] == "singleton") & (rows["cocktail_tasks"] == task)]
    single = _test_score(no_regulariser(single_rows), ctx)
    out.update(
        single_seeds=single.seeds, single_test=single.mean, single_lo=single.lo, single_hi=single.hi
    )
    out |= _constants(ctx, "single", single.trials)
    key = pick_by_validation(rows)
    if key is None:
        log.warning("task %s: no trained cocktail has a validation score on it; none chosen", task)
        return out
    chosen = _rows_of(rows, key)
    score = _test_score(chosen, ctx)
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
        delta_vs_single=score.mean - single.mean,
        delta_vs_base=score.mean - base_test,
    )
    out |= _constants(ctx, "test", score.trials)
    out |= comparison_values("vs_single", compare(ctx.rows, single.trials, score.trials, ctx.seed))
    out |= comparison_values("vs_base", compare(ctx.rows, (BASE,), score.trials, ctx.seed))
    delta = _regulariser_delta(rows, key, score.mean)
    out["regularisers_delta"] = delta
    out["regularisers_helped"] = pd.NA if math.isnan(delta) else bool(delta > 0)
    return out


def _constants(ctx: _Context, prefix: str, trials: tuple[str, ...]) -> dict:
    """`<prefix>_constant`: how many of the arm's models predict one value (NaN unknown)."""
    if ctx.rows is None or not ctx.rows.has(trials):
        return {f"{prefix}_constant": math.nan}
    return {f"{prefix}_constant": ctx.rows.constant(trials)}


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


def _test_score(rows: pd.DataFrame, ctx: _Context) -> ArmScore:
    scored = rows.dropna(subset=["test_main"])
    if scored.empty:
        return ArmScore()
    trials = tuple(str(t) for t in scored["trial_id"])
    values = scored["test_main"].to_numpy(dtype=float)
    mean, lo, hi = mean_ci(values, ctx.confidence)
    if len(values) >= MIN_SEEDS_FOR_T:
        return ArmScore(mean, lo, hi, "t", len(values), trials)
    lo, hi = arm_ci(ctx.rows, trials, ctx.n_boot, ctx.seed, ctx.confidence)
    method = "none" if math.isnan(lo) else "bootstrap"
    return ArmScore(mean, lo, hi, method, len(values), trials)


def _kind(results: pd.DataFrame, task: str) -> str | None:
    if "task_kind" not in results:
        return None
    kinds = results.loc[results["task"] == task, "task_kind"].dropna()
    return str(kinds.iloc[0]) if len(kinds) else None


def _main_metric(results: pd.DataFrame, task: str) -> str:
    if "main_metric" not in results:
        return "main"
    names = results.loc[results["task"] == task, "main_metric"].dropna()
    return str(names.iloc[0]) if len(names) else "main"
