"""Transfer matrix: what training on one task does to every evaluated task."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from raysys.analysis.results import (
    MissingInput,
    base_scores,
    main_col,
    require_columns,
    singleton_rows,
)

if TYPE_CHECKING:
    from raysys.analysis.evidence import TaskRows

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


def transfer_long(
    results: pd.DataFrame, predictions: pd.DataFrame | None, split: str = "test"
) -> pd.DataFrame:
    """The matrix as rows (trained_on, evaluated, value, seeds, constant), with the
    evaluated task's base, majority and random scores (absolute) on each row.

    `constant` is how many of the cell's seeds predict one value on >= 90 % of the
    evaluated task's test rows (NaN without predictions), so a gain that is a constant's
    is marked. `value` is relative to the base model when the results have base rows.
    """
    from raysys.analysis.evidence import task_rows
    from raysys.analysis.results import is_base

    relative = bool(is_base(results).any())
    matrix = transfer_matrix(results, split, relative=relative)
    cells = singleton_rows(results).dropna(subset=[main_col(split)])
    trials = cells.groupby(["cocktail_tasks", "task"])["trial_id"].agg(tuple)
    kinds = results.drop_duplicates("task").set_index("task").get("task_kind")
    by_task = {
        t: task_rows(predictions, t, None if kinds is None else kinds.get(t))
        for t in matrix.columns
    }
    base = base_scores(results, split)
    rows = []
    for evaluated in matrix.columns:
        found = by_task[evaluated]
        ref = {"base": base.get(evaluated, float("nan"))} | _baselines(found)
        for trained_on in matrix.index:
            models = trials.get((trained_on, evaluated), ())
            constant = found.constant(models) if found and found.has(models) else float("nan")
            rows.append(
                {
                    "trained_on": trained_on,
                    "evaluated": evaluated,
                    "value": matrix.loc[trained_on, evaluated],
                    "relative": relative,
                    "seeds": len(models),
                    "constant": constant,
                    **ref,
                }
            )
    order = {t: i for i, t in enumerate(matrix.index)}
    return pd.DataFrame(rows).sort_values("trained_on", key=lambda c: c.map(order), kind="stable")


def _baselines(found: TaskRows | None) -> dict[str, float]:
    """The evaluated task's majority and random scores (absolute), NaN without predictions."""
    from raysys.analysis.evidence import baseline_values

    values = baseline_values(found)
    return {"majority": values["majority"], "random": values["random"]}
