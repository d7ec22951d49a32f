"""`raysys.analysis.transfer`: the singleton transfer matrix reproduces known gains, from
the arms it should use, and says why when it cannot be built."""

from __future__ import annotations

import pandas as pd
import pytest

from raysys.analysis.results import MissingInput
from raysys.analysis.transfer import transfer_matrix
from tests.unit.analysis.synthetic import BASE, GAIN, TASKS, arm_rows, base_row, transfer_results


def test_transfer_matrix_reproduces_known_gains():
    results = transfer_results()
    expected = pd.DataFrame(GAIN, index=list(TASKS), columns=list(TASKS))
    got = transfer_matrix(results)
    pd.testing.assert_frame_equal(got, expected, check_names=False, atol=1e-12)
    absolute = transfer_matrix(results, relative=False)
    pd.testing.assert_frame_equal(
        absolute, expected + pd.Series(BASE), check_names=False, atol=1e-12
    )


def test_transfer_matrix_falls_back_to_smallest_shares():
    rows = [base_row("t1", 0.3)]
    rows += arm_rows("t1", "singleton", ("t1",), {"t1": (0.5, 0.6)}, general=0.05)
    rows += arm_rows("t1", "singleton", ("t1",), {"t1": (0.5, 0.9)}, general=0.2)
    assert transfer_matrix(pd.DataFrame(rows)).loc["t1", "t1"] == pytest.approx(0.3)


def test_transfer_matrix_without_singletons_says_why():
    rows = [base_row("t1", 0.3), *arm_rows("all", "all", ("t1", "t2"), {"t1": (0.5, 0.5)})]
    with pytest.raises(MissingInput, match="no singleton cocktails"):
        transfer_matrix(pd.DataFrame(rows))
