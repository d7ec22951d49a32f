"""Paired comparisons of two models on the same test rows, and intervals over rows.

Two models scored on the same rows share every row's difficulty; comparing their means
as if independent wastes that, and comparing means with no test at all (what the report
did) calls noise a win. Here:

- difference: B's metric minus A's on the rows both have predictions for;
- 95 % CI: percentile paired bootstrap (`scipy.stats.bootstrap`) resampling rows, both
  models' predictions of a row moving together;
- p-value: McNemar's exact test (`statsmodels`) on the discordant rows when the metric
  is per-row correctness (accuracy, exact match) and each side is one model; otherwise a
  paired permutation test (`scipy.stats.permutation_test`, `permutation_type="samples"`:
  each row's two predictions swap sides at random), exact when 2^n is small enough;
- correction across tasks: Holm (`statsmodels.stats.multitest.multipletests`), which
  controls the family-wise error under any dependence between tasks (the same models
  answer all of them), and is never less powerful than Bonferroni.

An arm with several seeds enters as its seed-averaged per-row counts (the metric of the
seeds' pooled confusion counts; for accuracy exactly the mean over seeds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from raysys.analysis.rowscore import RowScorer

CORRECTION = "holm"
CONFIDENCE = 0.95
N_RESAMPLES = 2000
_BATCH = 250  # resamples per vectorised call: bounds memory at batch x rows x counts


@dataclass(frozen=True)
class Paired:
    """B minus A on n shared rows; lo/hi NaN when the bootstrap has no spread."""

    diff: float
    lo: float
    hi: float
    p: float
    test: str  # "mcnemar", "permutation" or "none"
    n: int


NO_TEST = Paired(math.nan, math.nan, math.nan, math.nan, "none", 0)


def paired_compare(
    scorer: RowScorer,
    a: np.ndarray,
    b: np.ndarray,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> Paired:
    """Compare models A and B from their per-row counts, each (seeds, rows, m) or (rows, m),
    rows aligned (the same test row at the same index)."""
    ca, cb = _seed_mean(a), _seed_mean(b)
    if ca.shape != cb.shape:
        raise ValueError(f"A and B must cover the same rows, got {ca.shape} and {cb.shape}")
    n = ca.shape[0]
    if n == 0:
        return NO_TEST
    diff = float(scorer.value(cb.sum(0)) - scorer.value(ca.sum(0)))
    lo, hi = _paired_bootstrap(scorer, ca, cb, n_resamples, seed)
    one_each = np.ndim(a) == 2 or np.shape(a)[0] == 1
    one_each = one_each and (np.ndim(b) == 2 or np.shape(b)[0] == 1)
    if scorer.binary and one_each:
        return Paired(diff, lo, hi, mcnemar_p(ca[:, 0], cb[:, 0]), "mcnemar", n)
    return Paired(diff, lo, hi, _permutation_p(scorer, ca, cb, n_resamples, seed), "permutation", n)


def mcnemar_p(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """Exact McNemar p-value from per-row 0/1 correctness (1.0 without discordant rows)."""
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    table = [[int((a & b).sum()), int((a & ~b).sum())], [int((~a & b).sum()), int((~a & ~b).sum())]]
    return float(mcnemar(table, exact=True).pvalue)


def row_bootstrap_ci(
    scorer: RowScorer,
    counts: np.ndarray,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> tuple[float, float]:
    """Percentile interval of the mean-over-seeds metric, resampling test rows (the same
    rows for every seed); (NaN, NaN) when the resamples do not spread."""
    c = counts if np.ndim(counts) == 3 else np.asarray(counts)[None]
    if c.shape[1] < 2:
        return math.nan, math.nan

    def stat(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        return scorer.value(c[:, idx].sum(axis=-2)).mean(axis=0)

    return _bootstrap(stat, c.shape[1], n_resamples, seed, confidence)


def adjust(pvalues: list[float] | np.ndarray, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """(adjusted p, significant) over one family of tests, by `CORRECTION` (Holm); NaN
    p-values (no test) stay NaN and are not counted in the family."""
    p = np.asarray(pvalues, dtype=float)
    adj, sig = np.full(p.shape, np.nan), np.zeros(p.shape, dtype=bool)
    ok = ~np.isnan(p)
    if ok.any():
        reject, corrected, _, _ = multipletests(p[ok], alpha=alpha, method=CORRECTION)
        adj[ok], sig[ok] = corrected, reject
    return adj, sig


def _seed_mean(counts: np.ndarray) -> np.ndarray:
    c = np.asarray(counts, dtype=float)
    return c.mean(axis=0) if c.ndim == 3 else c


def _paired_bootstrap(
    scorer: RowScorer, ca: np.ndarray, cb: np.ndarray, n_resamples: int, seed: int
) -> tuple[float, float]:
    if ca.shape[0] < 2:
        return math.nan, math.nan

    def stat(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        return scorer.value(cb[idx].sum(axis=-2)) - scorer.value(ca[idx].sum(axis=-2))

    return _bootstrap(stat, ca.shape[0], n_resamples, seed, CONFIDENCE)


def _bootstrap(stat, n: int, n_resamples: int, seed: int, confidence: float) -> tuple[float, float]:
    res = stats.bootstrap(
        (np.arange(n),),
        stat,
        n_resamples=n_resamples,
        batch=_BATCH,
        vectorized=True,
        method="percentile",
        confidence_level=confidence,
        rng=np.random.default_rng(seed),
    )
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return (lo, hi) if hi - lo > 1e-12 else (math.nan, math.nan)  # no spread: no interval


def _permutation_p(
    scorer: RowScorer, ca: np.ndarray, cb: np.ndarray, n_resamples: int, seed: int
) -> float:
    n = ca.shape[0]
    stacked = np.concatenate([ca, cb])  # row i of A at i, of B at n + i

    def stat(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return scorer.value(stacked[y].sum(axis=-2)) - scorer.value(stacked[x].sum(axis=-2))

    res = stats.permutation_test(
        (np.arange(n), np.arange(n) + n),
        stat,
        permutation_type="samples",
        vectorized=True,
        n_resamples=n_resamples,
        batch=_BATCH,
        alternative="two-sided",
        rng=np.random.default_rng(seed),
    )
    return float(min(res.pvalue, 1.0))
