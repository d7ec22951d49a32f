"""`raysys.tasks.store`: a run's task rows materialised once into its run directory
(definition, rows per split, a manifest written last), reused when a resumed run asks
for the same, served as prefixes afterwards; pools disjoint from the test split."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from raysys.errors import UserError
from raysys.tasks import build_splits, get_task, scoped
from raysys.tasks.base import BoundedPattern
from raysys.tasks.rows import normalize_text
from raysys.tasks.store import Need, load_run_tasks, materialize, prepare, reports

NS = "news_sentiment"


def test_a_task_folder_holds_its_definition_rows_and_manifest(tmp_path):
    expected = build_splits(NS, {"train": 12, "test": 9}, 0)
    folders = materialize(tmp_path, [Need(NS, {"train": 12, "test": 9})], 0)
    folder = folders[NS]
    assert folder == tmp_path / "tasks" / NS
    assert sorted(p.name for p in folder.iterdir()) == [
        "manifest.json",
        "task.json",
        "test.parquet",
        "train.parquet",
    ]
    definition = json.loads((folder / "task.json").read_text())
    assert (
        definition["labels"] == ["positive", "negative", "neutral"]
        and definition["answer_regex"] is None
    )
    assert definition["refs"] == [NS]
    stored = pd.read_parquet(folder / "test.parquet").to_dict("records")
    assert [(r["id"], r["input"], r["gold"]) for r in stored] == [
        (r["id"], r["input"], r["gold"]) for r in expected["test"]
    ]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["asked"] == {"sizes": {"train": 12, "test": 9}, "seed": 0, "pool_file": None}
    assert (
        manifest["sizes"] == {"train": 12, "test": 9} and len(manifest["fingerprint"]["test"]) == 16
    )
    assert not list(tmp_path.glob("tasks/.*"))  # no temporary folder left


def test_the_registered_task_serves_the_stored_rows_as_prefixes(tmp_path):
    materialize(tmp_path, [Need(NS, {"test": 9})], 0)
    stored = pd.read_parquet(tmp_path / "tasks" / NS / "test.parquet")["id"].tolist()
    assert [r["id"] for r in build_splits(NS, {"test": 4}, 0)["test"]] == stored[:4]
    with pytest.raises(UserError, match=r"the run materialised 9 test rows, 20 were asked for"):
        build_splits(NS, {"test": 20}, 0)
    with pytest.raises(RuntimeError, match="materialised with seed 0, asked with seed 1"):
        build_splits(NS, {"test": 4}, 1)
    with pytest.raises(UserError, match="this run has no train rows"):
        build_splits(NS, {"train": 4}, 0)


def test_needs_of_one_task_are_merged_to_the_largest_sizes(tmp_path):
    needs = [Need(NS, {"train": 10, "test": 5}), Need(NS, {"test": 8, "validation": 3})]
    manifest = json.loads((materialize(tmp_path, needs, 0)[NS] / "manifest.json").read_text())
    assert manifest["sizes"] == {"train": 10, "test": 8, "validation": 3}


def test_a_resumed_run_reuses_its_rows_and_other_sizes_rewrite_them(tmp_path):
    # each run registers its rows for itself only (as the jobs do, with `scoped`)
    folder = scoped(materialize)(tmp_path, [Need(NS, {"test": 6})], 0)[NS]
    before = (folder / "manifest.json").stat().st_mtime_ns
    assert scoped(prepare)(tmp_path, [Need(NS, {"test": 6})], 0).todo == []  # reused
    assert (folder / "manifest.json").stat().st_mtime_ns == before
    assert len(scoped(prepare)(tmp_path, [Need(NS, {"test": 7})], 0).todo) == 1
    assert len(scoped(prepare)(tmp_path, [Need(NS, {"test": 6})], 1).todo) == 1  # another seed


def test_prepare_writes_nothing_until_asked(tmp_path):
    prepared = prepare(tmp_path, [Need(NS, {"test": 6})], 0)
    assert list(tmp_path.iterdir()) == []
    prepared.write()
    assert (tmp_path / "tasks" / NS / "manifest.json").is_file()


@scoped
def test_prepared_rows_are_the_same_before_and_after_writing(tmp_path):
    needs = [Need(NS, {"train": 5, "test": 4})]
    before = prepare(tmp_path, needs, 0)
    rows = before.rows()  # read, not written: what the contamination check compares
    assert list(tmp_path.iterdir()) == []
    assert {s: len(r) for s, r in rows[NS].items()} == {"train": 5, "test": 4}
    before.write()
    after = prepare(tmp_path, needs, 0).rows()  # a resumed run: read from the folder
    key = ("id", "input")
    for split in ("train", "test"):
        assert [tuple(r[k] for k in key) for r in after[NS][split]] == [
            tuple(str(r[k]) for k in key) for r in rows[NS][split]
        ]


def test_load_run_tasks_and_reports(tmp_path):
    materialize(tmp_path, [Need(NS, {"test": 6}), Need("fin_ner", {"test": 3})], 0)
    assert load_run_tasks(tmp_path / "tasks") == ["fin_ner", NS]
    reps = reports(tmp_path / "tasks")
    assert list(reps) == ["fin_ner", NS]
    assert reps[NS]["reports"][0]["used_rows"] == 6 and reps[NS]["reports"][0]["source_rows"] == 0


def test_a_generated_pool_is_disjoint_from_the_test_split(tmp_path):
    need = Need("fomc_stance", {"test": 40}, pool=25)
    folder = materialize(tmp_path, [need], 0)["fomc_stance"]
    pool = pd.read_parquet(folder / "pool.parquet").to_dict("records")
    test = pd.read_parquet(folder / "test.parquet")["input"].map(normalize_text)
    assert len(pool) == 25 and not {normalize_text(r["input"]) for r in pool} & set(test)
    assert all(r["id"].startswith("fomc_stance-pool-") and r["split"] == "pool" for r in pool)
    assert len({normalize_text(r["input"]) for r in pool}) == 25  # no repeats


def test_a_pool_file_sharing_test_inputs_is_refused(tmp_path):
    test = build_splits("fomc_stance", {"test": 10}, 0)["test"]
    pool_file = tmp_path / "pool.csv"
    pd.DataFrame({"text": [test[3]["input"].upper(), "A new statement."]}).to_csv(
        pool_file, index=False
    )
    need = Need("fomc_stance", {"test": 10}, pool=5, pool_file=str(pool_file))
    with pytest.raises(
        UserError, match=r"pool .*pool.csv: 1 input\(s\) also in the fomc_stance test split"
    ):
        prepare(tmp_path / "run", [need], 0)
    assert not (tmp_path / "run").exists()


def test_a_task_without_a_pool_says_where_one_comes_from(tmp_path, csv_task):
    ref = str(csv_task("tone", {"test": 6}))
    with pytest.raises(
        UserError, match=r"task tone has no pool of unlabeled inputs .*pool: unlabeled.csv"
    ):
        prepare(tmp_path, [Need(ref, {"test": 6}, pool=5)], 0)


def test_a_custom_answer_regex_is_stored_and_bounded_again(tmp_path, csv_task):
    ref = csv_task("tone", {"test": 6})
    spec = ref.read_text() + "answer_regex: 'Tone:\\s*(\\w+)'\n"
    ref.write_text(spec)
    folder = materialize(tmp_path, [Need(str(ref), {"test": 6})], 0)["tone"]
    definition = json.loads((folder / "task.json").read_text())
    assert definition["answer_regex"] == r"Tone:\s*(\w+)" and definition["refs"] == sorted(
        ["tone", str(ref)]
    )
    task = get_task("tone")
    assert (
        isinstance(task.answer_re, BoundedPattern) and task.extract("Tone: Positive") == "positive"
    )


def test_a_tasks_reasoning_column_reaches_the_sft_rows(tmp_path):
    """The committed news_rationale task (columns.reasoning): its rationales are stored
    with the run's rows and served to SFT as '<rationale>\\nAnswer: <label>'."""
    from raysys.data.mixing import to_messages
    from tests.fixtures import REPO

    ref = str(REPO / "configs" / "tasks" / "news_rationale" / "task.yaml")
    folder = materialize(tmp_path, [Need(ref, {"train": 6, "test": 3})], 0)["news_rationale"]
    stored = pd.read_parquet(folder / "train.parquet").to_dict("records")
    assert all(r["reasoning"] for r in stored)
    served = build_splits("news_rationale", {"train": 6}, 0)["train"]
    assert [r["reasoning"] for r in served] == [r["reasoning"] for r in stored]
    turn = to_messages(served[0])[-1]
    assert turn == {
        "role": "assistant",
        "content": f"{stored[0]['reasoning']}\nAnswer: {stored[0]['gold']}",
    }
