"""Transfer matrix: what training on one task does to every evaluated task."""

from __future__ import annotations

import pandas as pd

from raysys.analysis.results import (
    MissingInput,
    base_scores,
    main_col,
    require_columns,
    singleton_rows,
)

_COLUMNS = ["trial_id", "cocktail", "cocktail_kind", "cocktail_tasks", "general", "math"]


def transfer_matrix(
    results: pd.DataFrame, split: str = "test", relative: bool = True
) -> pd.DataFrame:
    """Rows: the task trained on (singleton cocktails); columns: the task evaluated.

    A cell is the mean over seeds of `<split>_main`, minus the base model's score on the
    evaluated task when `relative` (so 0 means "no transfer" and the diagonal is the
    in-task gain). Singletons are taken at their smallest regulariser shares and largest
    data fraction (`results.singleton_rows`).
    """
    col = main_col(split)
    require_columns(results, [*_COLUMNS, "fraction", "task", col], "the transfer matrix")
    rows = singleton_rows(results)
    if rows.empty:
        raise MissingInput(
            "the sweep has no singleton cocktails (one task per trial), so there is nothing "
            "to attribute transfer to; include singleton cocktails in the sweep"
        )
    matrix = rows.groupby(["cocktail_tasks", "task"])[col].mean().unstack("task")
    if relative:
        base = base_scores(results, split)
        if base.empty:
            raise MissingInput(
                "the results have no base-model rows, so the gain over the base model is "
                "unknown; evaluate the base model in the sweep (or ask for relative=False)"
            )
        matrix = matrix - base.reindex(matrix.columns)
    return _diagonal_first(matrix)


def _diagonal_first(matrix: pd.DataFrame) -> pd.DataFrame:
    """Sorted rows, and columns in the same order first so the in-task cells form a diagonal."""
    rows = sorted(matrix.index)
    cols = [t for t in rows if t in matrix.columns]
    cols += sorted(c for c in matrix.columns if c not in cols)
    out = matrix.loc[rows, cols]
    out.index.name, out.columns.name = "trained_on", "evaluated"
    return out
