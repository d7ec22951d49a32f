"""`raysys.tasks.describe`: the sizes a run uses by default, and per split the rows in
the source against the rows a run takes (generated tasks: no source rows)."""

from __future__ import annotations

import pandas as pd
import yaml

from raysys.tasks.describe import default_sizes, describe
from tests.fixtures import LABELS, quirky_rows


def test_default_sizes_are_the_task_sections_for_the_tasks_splits():
    assert default_sizes("news_sentiment") == {"train": 400, "validation": 60, "test": 120}
    assert default_sizes("fomc_stance") == {"test": 120}  # test-only


def test_a_generated_task_reports_what_a_run_takes():
    found, reports = describe("news_sentiment", {"train": 30, "test": 12}, 0)
    assert found.task.name == "news_sentiment"
    assert [(r.split, r.source_rows, r.used_rows) for r in reports] == [
        ("train", 0, 30),
        ("test", 0, 12),
    ]
    assert reports[1].used_labels == {"negative": 4, "neutral": 4, "positive": 4}
    assert all(r.warnings == [] for r in reports)


def test_an_unlabelled_generated_task_has_no_label_counts():
    _, reports = describe("fin_ner", {"test": 5}, 0)
    assert (reports[0].used_rows, reports[0].used_labels) == (5, {})


def _file_task(tmp_path, splits: dict[str, str]) -> str:
    spec = {
        "name": "tone",
        "kind": "classification",
        "labels": LABELS,
        "prompt": "Tone?\n{input}\nEnd with 'Answer: <label>'.",
        "source": {"format": "csv", "splits": splits},
        "columns": {"id": "uid", "input": "sentence", "gold": "tone"},
    }
    path = tmp_path / "tone.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def test_a_file_task_reports_its_source_rows_and_warns_of_a_thin_sample(tmp_path):
    quirky_rows(200).to_csv(tmp_path / "test.csv", index=False)
    name = _file_task(tmp_path, {"test": "test.csv"})
    assert default_sizes(name) == {"test": 120}
    _, reports = describe(name, {"test": 40}, 0)
    (rep,) = reports
    assert (rep.split, rep.source_rows, rep.used_rows) == ("test", 200, 40)
    assert rep.source_labels == {"positive": 120, "negative": 50, "neutral": 30}
    assert sum(rep.used_labels.values()) == 40 and rep.warnings == []
    _, (thin,) = describe(name, {"test": 2}, 0)
    assert thin.warnings and "has no row labelled" in thin.warnings[0]


def test_a_task_with_a_pool_file_adds_the_pool_synthesis_labels(tmp_path):
    quirky_rows(60).to_csv(tmp_path / "test.csv", index=False)
    pd.DataFrame(
        {"uid": [f"p{i}" for i in range(30)], "sentence": [f"s {i}" for i in range(30)]}
    ).to_csv(tmp_path / "pool.csv", index=False)
    name = _file_task(tmp_path, {"test": "test.csv", "pool": "pool.csv"})
    assert default_sizes(name) == {"test": 120, "pool": 200}
