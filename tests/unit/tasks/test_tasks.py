"""`raysys.tasks`: the built-in news_sentiment task (generator, answer extraction,
scoring), every kind scored, and the registry (names, YAML tasks, scoped runs)."""

from __future__ import annotations

from collections import Counter

import pytest

from raysys.tasks import build_splits, get_task
from raysys.tasks.base import MISSING
from raysys.tasks.metrics import classification_metrics

TASK = get_task("news_sentiment")


@pytest.mark.parametrize(
    "text, strict",
    [
        ("Answer: positive", "positive"),
        ("The outlook improved.\nAnswer: Negative", "negative"),
        ("answer:neutral", "neutral"),
        ("**Answer:** **positive**", "positive"),
        ("**Answer**: neutral", "neutral"),
        ("Answer: positively", MISSING),  # whole word only
        ("I think it is positive.", MISSING),  # no Answer line
        ("", MISSING),
        ("Answer: negative\n...on reflection...\nAnswer: positive", "positive"),  # last wins
    ],
)
def test_strict_extraction(text, strict):
    assert TASK.extract(text) == strict


def test_lenient_extraction_is_finben_first_label():
    assert TASK.extract_lenient("Positive, though negative risks remain") == "positive"
    assert TASK.extract_lenient("mostly NEGATIVE; not positive") == "negative"
    assert TASK.extract_lenient("no idea") == MISSING


def test_generator_is_deterministic_balanced_and_leak_free():
    sizes = {"train": 90, "validation": 30, "test": 60}
    a, b = build_splits("news_sentiment", sizes, 7), build_splits("news_sentiment", sizes, 7)
    assert a == b
    assert build_splits("news_sentiment", sizes, 8) != a
    for split, rows in a.items():
        assert len(rows) == sizes[split]
        assert len({r["id"] for r in rows}) == len(rows)
        assert set(Counter(r["gold"] for r in rows).values()) == {sizes[split] // 3}
    texts = {s: {r["input"].split("News: ")[1] for r in rows} for s, rows in a.items()}
    assert not texts["train"] & texts["test"] and not texts["validation"] & texts["test"]


def test_eval_splits_do_not_depend_on_train_size():
    small = build_splits("news_sentiment", {"train": 10, "test": 30}, 0)
    big = build_splits("news_sentiment", {"train": 300, "test": 30}, 0)
    assert small["test"] == big["test"]


def test_language_is_varied():
    rows = build_splits("news_sentiment", {"train": 300}, 0)["train"]
    texts = [r["input"] for r in rows]
    assert sum("rival" in t for t in texts) > 30  # distractor entity
    assert sum("Despite" in t for t in texts) > 20  # contrast
    assert sum(" not " in t or "failed to" in t for t in texts) > 10  # negation
    assert len({t.split("News: ")[1].split()[0] for t in texts}) > 10


def test_prompt_and_target():
    row = build_splits("news_sentiment", {"test": 3}, 0)["test"][0]
    msgs = TASK.messages(row)
    assert msgs[0]["role"] == "user" and row["input"] in msgs[0]["content"]
    assert "Answer: <option>" in msgs[0]["content"]
    assert TASK.extract(TASK.target(row)) == row["gold"]


def test_metrics_count_missing_as_wrong():
    golds = ["positive", "negative", "neutral", "positive"]
    preds = ["positive", MISSING, "neutral", "negative"]
    m = classification_metrics(golds, preds, TASK.labels)
    assert m["accuracy"] == 0.5 and m["missing_rate"] == 0.25
    assert 0 < m["macro_f1"] < 1
    assert classification_metrics(golds, golds, TASK.labels)["mcc"] == 1.0
    with pytest.raises(ValueError):
        classification_metrics(golds, preds[:2], TASK.labels)


# --- every kind -------------------------------------------------------------------------

ALL = [n for n in __import__("raysys.tasks", fromlist=["task_names"]).task_names()]


@pytest.mark.parametrize("name", ALL)
def test_gold_targets_score_perfectly_and_garbage_scores_missing(name):
    task = get_task(name)
    split = task.splits[-1]
    rows = build_splits(name, {split: 12}, 0)[split]
    golds, inputs = [r["gold"] for r in rows], [r["input"] for r in rows]
    perfect = task.score(golds, [f"Let me think.\n{task.target(r)}" for r in rows], inputs)
    assert perfect["main"] == 1.0 and perfect["missing_rate"] == 0.0
    garbage = task.score(golds, ["I cannot say."] * len(rows), inputs)
    assert garbage["missing_rate"] == 1.0 and garbage["main"] == 0.0


def test_test_only_task_refuses_train_split():
    from raysys.errors import UserError

    with pytest.raises(UserError, match="fomc_stance has only the split"):
        build_splits("fomc_stance", {"train": 10}, 0)
    assert len(build_splits("fomc_stance", {"test": 9}, 0)["test"]) == 9


def test_numeric_extraction_and_tolerance():
    task = get_task("numeric_qa")
    assert task.extract("so the change is\nAnswer: $1,234.50") == "$1,234.50"
    assert task.extract("roughly 12%") == MISSING
    assert task.extract_lenient("first 3, then 12.5%") == "12.5%"
    m = task.score(
        ["1234.5", "12.5", "-3.2", "7"],
        ["Answer: $1,234.50", "Answer: 12.5%", "Answer: (3.2)", "about 7"],
    )
    assert m["exact_match"] == 0.75 and m["missing_rate"] == 0.25
    assert m["flexible_exact_match"] == 1.0


def test_ner_entity_f1_uses_seqeval_spans():
    task = get_task("fin_ner")
    text = "Sentence: Maria Okafor of Calder Bank flew to Lisbon."
    gold = "PER: Maria Okafor; ORG: Calder Bank; LOC: Lisbon"
    assert task.score([gold], [f"Answer: {gold}"], [text])["entity_f1"] == 1.0
    half = task.score([gold], ["Answer: PER: Maria Okafor; ORG: Calder"], [text])
    assert half["entity_precision"] == 0.5 and half["entity_recall"] == pytest.approx(1 / 3)
    assert task.score(["none"], ["Answer: none"], ["Sentence: Rates rose."])["exact_match"] == 1.0
    assert task.score(["none"], ["no idea"], ["Sentence: Rates rose."])["exact_match"] == 0.0


def test_freetext_normalises_case_quotes_and_spaces():
    task = get_task("general_instruct")
    m = task.score(["pencil, credit, zebra"], ["Answer: 'Pencil,  credit, ZEBRA'"])
    assert m["exact_match"] == 1.0


def test_pipeline_table_fits_every_kind():
    from raysys.pipeline.report import stage_table

    for name in ("news_sentiment", "fin_ner", "numeric_qa", "general_instruct"):
        task = get_task(name)
        split = task.splits[-1]
        rows = build_splits(name, {split: 6}, 0)[split]
        args = (
            [r["gold"] for r in rows],
            [task.target(r) for r in rows],
            [r["input"] for r in rows],
        )
        m = task.score(*args)
        res = [{"task": name, "n": 6, "main": m[task.main_metric], **m}]
        t = stage_table({"models": [{"stage": "base", "results": res}]})
        assert t["metric"].iloc[0] == task.main_metric and t["main"].iloc[0] == 1.0
        assert t["missing_rate"].iloc[0] == 0.0


# --- the registry (raysys.tasks) ---------------------------------------------------------


def test_task_names_are_the_builtins_and_yaml_tasks_by_name(csv_task):
    from raysys.tasks import REGULARISERS, is_task_file, task_names

    builtins = task_names()
    assert len(builtins) == 8 and set(REGULARISERS) <= set(builtins)
    path = str(csv_task("my_tone", {"test": 6}))
    assert is_task_file(path) and is_task_file("x.yml") and not is_task_file("news_sentiment")
    get_task(path)  # a YAML path registers its task under its name and its path
    assert task_names() == sorted([*builtins, "my_tone"])
    assert get_task("my_tone") is get_task(path)


def test_an_unknown_task_lists_the_choices():
    from raysys.errors import UserError

    with pytest.raises(UserError) as e:
        get_task("nope")
    assert str(e.value) == (
        "unknown task 'nope'; choose one of arith_math, causal_detection, fin_ner, fomc_stance, "
        "general_instruct, news_sentiment, numeric_qa, price_direction, or pass the path of a "
        "task YAML file"
    )


def test_two_different_task_files_may_not_share_a_name(tmp_path, csv_task):
    from raysys.errors import UserError

    first = csv_task("tone", {"test": 6})
    get_task(str(first))
    other = tmp_path / "other" / "tone.yaml"
    other.parent.mkdir()
    other.write_text(first.read_text().replace("Tone?", "Mood?"))
    with pytest.raises(UserError, match=r"other/tone.yaml: name 'tone' is taken by another task"):
        get_task(str(other))


def test_scoped_undoes_the_registrations_a_run_makes(csv_task):
    from raysys.tasks import scoped, task_names

    before = task_names()
    path = str(csv_task("scoped_tone", {"test": 6}))
    assert scoped(lambda: get_task(path).name)() == "scoped_tone"
    assert task_names() == before


def test_held_out_rows_are_the_same_rows_for_every_model():
    from raysys.errors import UserError
    from raysys.tasks import held_out_rows

    holdout = {"validation": 6, "test": 9}
    got = held_out_rows(["news_sentiment", "fomc_stance"], holdout, 0, "validation")
    assert list(got) == ["news_sentiment"]  # fomc_stance has no validation split: left out
    task, rows = got["news_sentiment"]
    assert (
        task is TASK and rows == build_splits("news_sentiment", {"validation": 6}, 0)["validation"]
    )
    with pytest.raises(UserError, match="fomc_stance has no validation split to evaluate on"):
        held_out_rows(["fomc_stance"], holdout, 0, "validation", required=True)
