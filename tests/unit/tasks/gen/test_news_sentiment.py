"""`raysys.tasks.gen.news_sentiment`: a named target company whose news the label is
about, named in the text; no placeholder left. (Extraction and scoring of the task:
tests/unit/tasks/test_tasks.py.)"""

from __future__ import annotations

import re

from raysys.tasks.gen import news_sentiment


def test_the_target_company_is_named_in_its_news():
    rows = news_sentiment.generate_splits({"test": 150}, 0)["test"]
    targets = set()
    for r in rows:
        company, news = r["input"].split("\n")
        assert company.startswith("Company: ") and news.startswith("News: ")
        target = company.removeprefix("Company: ")
        assert target in news and not re.search(r"[{}]", news)
        targets.add(target)
    assert len(targets) >= 15  # many companies, not one


def test_each_label_has_its_own_events():
    rows = news_sentiment.generate_splits({"test": 300}, 0)["test"]
    texts = {lab: [r["input"] for r in rows if r["gold"] == lab] for lab in news_sentiment.LABELS}
    assert {lab: len(t) for lab, t in texts.items()} == {
        "positive": 100,
        "negative": 100,
        "neutral": 100,
    }
