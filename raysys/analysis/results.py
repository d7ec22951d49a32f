"""The sweep's results table: column checks and the row selections every analysis shares.

One row per (trial, evaluated task); the base model's rows have `cocktail_kind == "base"`.
A cocktail is identified by (cocktail, general, math): the same task mixture with other
regulariser shares is another arm of the sweep.
"""

from __future__ import annotations

import pandas as pd

from raysys.errors import UserError

BASE = "base"
COCKTAIL_KEY = ["cocktail", "general", "math"]
_SPLIT_PREFIX = {"validation": "val", "val": "val", "test": "test"}


class MissingInput(ValueError):
    """The sweep lacks what an analysis needs (no singletons, one fraction, no base rows).

    Not a bug and not bad input: the report prints the message instead of the section.
    """


def main_col(split: str) -> str:
    """`val_main` or `test_main`; errors name the accepted splits."""
    if split not in _SPLIT_PREFIX:
        raise ValueError(f"split must be 'validation' or 'test', got {split!r}")
    return f"{_SPLIT_PREFIX[split]}_main"


def require_columns(results: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in results.columns]
    if missing:
        raise UserError(
            f"{what} needs the results column(s) {', '.join(missing)}; the table has "
            f"{', '.join(map(str, results.columns))} (was it written by the sweep runner?)"
        )


def is_base(results: pd.DataFrame) -> pd.Series:
    return (results["cocktail_kind"] == BASE) | (results["trial_id"] == BASE)


def trained(results: pd.DataFrame) -> pd.DataFrame:
    """The fine-tuned trials' rows (everything but the base model)."""
    return results[~is_base(results)]


def base_scores(results: pd.DataFrame, split: str = "test") -> pd.Series:
    """The base model's score per evaluated task (mean if it was evaluated more than once)."""
    col = main_col(split)
    base = results[is_base(results)]
    return base.groupby("task")[col].mean()


def at_largest_fraction(rows: pd.DataFrame) -> pd.DataFrame:
    """Each cocktail's rows at the largest data fraction it was trained at.

    Smaller fractions exist for the scaling fit; averaging them in would mix a cocktail's
    full-data score with its data-starved runs.
    """
    if rows.empty:
        return rows
    top = rows.groupby(COCKTAIL_KEY, dropna=False)["fraction"].transform("max")
    return rows[rows["fraction"] == top]


def no_regulariser(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[(rows["general"] == 0) & (rows["math"] == 0)]


def singleton_rows(results: pd.DataFrame) -> pd.DataFrame:
    """Singleton cocktails at their smallest regulariser shares and largest fraction.

    Smallest shares (zero where the grid has it) so the transfer matrix measures what
    training on one task does, not what the general/math data does.
    """
    rows = trained(results)
    rows = rows[rows["cocktail_kind"] == "singleton"]
    if rows.empty:
        return rows
    arms = rows[COCKTAIL_KEY].drop_duplicates()
    # Smallest total share first; equal totals (0.1/0 vs 0/0.1) break by general, then math.
    arms = arms.assign(share=arms["general"] + arms["math"])
    arms = arms.sort_values(["cocktail", "share", "general", "math"]).drop_duplicates("cocktail")
    rows = rows.merge(arms[COCKTAIL_KEY], on=COCKTAIL_KEY)
    return at_largest_fraction(rows)


def arm_label(cocktail: str, general: float, maths: float) -> str:
    """`all`, or `all + general 0.1, math 0.05` when the arm has regulariser shares."""
    shares = [f"{name} {v:g}" for name, v in (("general", general), ("math", maths)) if v]
    return f"{cocktail} + {', '.join(shares)}" if shares else cocktail
