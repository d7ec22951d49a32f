"""`raysys.tasks.gen.fomc_stance`: a test-only benchmark of policy sentences, every
placeholder filled, each stance present."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from raysys.tasks.gen import fomc_stance


def test_fomc_stance_is_test_only():
    assert fomc_stance.SPLITS == ("test",)
    for split in ("train", "validation"):
        with pytest.raises(ValueError, match="only"):
            fomc_stance.generate_splits({split: 10, "test": 10}, 0)


def test_sentences_are_whole_and_every_stance_is_there():
    rows = fomc_stance.generate_splits({"test": 90}, 0)["test"]
    assert Counter(r["gold"] for r in rows) == {"hawkish": 30, "dovish": 30, "neutral": 30}
    for r in rows:
        body = r["input"].removeprefix("Sentence: ")
        assert r["input"].startswith("Sentence: ") and body[0].isupper()
        assert body.endswith(".") and not re.search(r"[{}]", body)
    assert any(re.search(r"\d+(-\d/\d)? to \d+(-\d/\d)? percent", r["input"]) for r in rows)
