"""vLLM vs PEFT agreement (`raysys.engines.parity`) on hand-made engine outputs: exact and
prefix agreement per adapter, the change vs base, mismatched outputs refused, and the
canary's failure lines (more in test_base.py). Both engines running:
tests/integration/test_engine_vllm.py."""

from __future__ import annotations

import pandas as pd
import pytest

from raysys.engines.parity import PROBES, ParityReport, _prefix_share, agreement


def _out(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["id", "adapter", "generated_text"])


def test_prefix_share_is_of_the_longer_text():
    assert _prefix_share("abcd", "abXY") == 0.5
    assert _prefix_share("ab", "abcd") == 0.5
    assert _prefix_share("", "") == 0.0 and _prefix_share("same", "same") == 1.0


def test_agreement_per_adapter_with_the_change_vs_base():
    v = _out(
        [("p0", "", "base a"), ("p1", "", "base b"), ("p0", "sft", "base a"), ("p1", "sft", "new!")]
    )
    h = _out(
        [("p1", "sft", "new?"), ("p0", "sft", "base a"), ("p1", "", "base b"), ("p0", "", "base a")]
    )
    got = agreement(v, h)
    assert got[""] == {"agreement": 1.0, "prefix_agreement": 1.0}
    assert got["sft"]["agreement"] == 0.5
    assert got["sft"]["prefix_agreement"] == pytest.approx((1.0 + 3 / 4) / 2)
    assert got["sft"]["changed_vs_base"] == 0.5  # p1 differs from the base's p1


def test_without_base_rows_there_is_no_change_to_report():
    v = _out([("p0", "sft", "x")])
    assert agreement(v, v.copy()) == {"sft": {"agreement": 1.0, "prefix_agreement": 1.0}}


def test_outputs_for_different_rows_are_refused():
    v = _out([("p0", "", "a"), ("p1", "", "b")])
    with pytest.raises(ValueError, match=r"same \(id, adapter\) rows"):
        agreement(v, _out([("p0", "", "a")]))
    with pytest.raises(ValueError, match=r"same \(id, adapter\) rows"):
        agreement(v, _out([("p0", "", "a"), ("p2", "", "b")]))


def test_failures_follow_the_threshold():
    empty = pd.DataFrame()
    report = ParityReport({"": 1.0, "sft": 0.75}, {}, {"sft": 0.5}, empty, empty)
    assert report.failures() == ["adapter 'sft': vLLM agrees with PEFT on 75% of probes (< 100%)"]
    assert report.failures(min_agreement=0.75) == []
    ignored = ParityReport({"sft": 1.0}, {}, {"sft": 0.0}, empty, empty)
    assert ignored.failures() == [
        "adapter 'sft': vLLM outputs equal the base model's on every probe (not applied?)"
    ]


def test_the_default_probes_are_finance_questions():
    assert len(PROBES) == 4 and all(p.endswith("?") for p in PROBES)
