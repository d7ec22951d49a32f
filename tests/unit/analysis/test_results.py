"""`raysys.analysis.results`: the row selections every analysis shares (base rows,
trained rows, the largest fraction, singletons at their smallest shares) and the column
check that names what a results table lacks."""

from __future__ import annotations

import pandas as pd
import pytest

from raysys.analysis.results import (
    arm_label,
    at_largest_fraction,
    base_scores,
    is_base,
    main_col,
    no_regulariser,
    require_columns,
    singleton_rows,
    trained,
)
from raysys.errors import UserError
from tests.unit.analysis.synthetic import arm_rows, base_row


def _results() -> pd.DataFrame:
    rows = [base_row("t1", 0.3), base_row("t1", 0.5), base_row("t2", 0.4)]
    for fraction in (0.5, 1.0):
        for general in (0.0, 0.1):
            rows += arm_rows(
                "t1", "singleton", ("t1",), {"t1": (0.6, 0.7)}, fraction=fraction, general=general
            )
    rows += arm_rows("t2", "singleton", ("t2",), {"t2": (0.6, 0.7)}, general=0.05)
    rows += arm_rows("t2", "singleton", ("t2",), {"t2": (0.6, 0.7)}, maths=0.05)
    rows += arm_rows("t2", "singleton", ("t2",), {"t2": (0.6, 0.7)}, general=0.2)
    rows += arm_rows("all", "all", ("t1", "t2"), {"t1": (0.5, 0.6)})
    return pd.DataFrame(rows)


def test_main_col():
    assert main_col("test") == "test_main"
    assert main_col("validation") == main_col("val") == "val_main"
    with pytest.raises(ValueError, match="split must be 'validation' or 'test', got 'train'"):
        main_col("train")


def test_require_columns_names_the_missing_ones():
    frame = pd.DataFrame({"a": [1], "b": [2]})
    require_columns(frame, ["a"], "the leaderboard")
    with pytest.raises(UserError) as e:
        require_columns(frame, ["a", "c", "d"], "the leaderboard")
    assert str(e.value).startswith(
        "the leaderboard needs the results column(s) c, d; the table has a, b"
    )


def test_base_and_trained_rows():
    r = _results()
    assert is_base(r).sum() == 3 and len(trained(r)) == len(r) - 3
    assert base_scores(r).to_dict() == {"t1": pytest.approx(0.4), "t2": 0.4}  # mean of two
    assert base_scores(r, "validation").isna().all()


def test_at_largest_fraction_is_per_arm():
    r = trained(_results())
    top = at_largest_fraction(r)
    assert set(top["fraction"]) == {1.0}
    assert len(top) == len(r) - 2  # the t1 arms at 0.5 (general 0 and 0.1) drop
    assert at_largest_fraction(r.iloc[:0]).empty


def test_singletons_at_their_smallest_shares_and_largest_fraction():
    rows = singleton_rows(_results())
    arms = sorted(
        rows[["cocktail", "general", "math", "fraction"]].itertuples(index=False, name=None)
    )
    # t2 has no share-free arm: 0.05 general and 0.05 math tie, general 0 (math) wins
    assert arms == [("t1", 0.0, 0.0, 1.0), ("t2", 0.0, 0.05, 1.0)]
    assert singleton_rows(pd.DataFrame([base_row("t1", 0.3)])).empty


def test_no_regulariser():
    r = trained(_results())
    assert set(no_regulariser(r)["cocktail"]) == {"t1", "all"}


@pytest.mark.parametrize(
    "args, label",
    [
        (("all", 0.0, 0.0), "all"),
        (("all", 0.1, 0.0), "all + general 0.1"),
        (("a+b", 0.1, 0.05), "a+b + general 0.1, math 0.05"),
        (("x", 0.0, 0.25), "x + math 0.25"),
    ],
)
def test_arm_label(args, label):
    assert arm_label(*args) == label
