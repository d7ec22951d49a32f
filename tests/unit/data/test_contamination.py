"""The contamination check with planted overlaps: exact after normalisation, a
near-duplicate, a test input inside a longer training text; and clean rows that share
only short phrases or template text, which must not count."""

from __future__ import annotations

import json
import random

import pytest

from raysys.data import contamination as c
from raysys.errors import UserError


def sentence(i: int, n: int = 24) -> str:
    """Seeded words from a 5000-word vocabulary: two sentences share no 5-gram."""
    rng = random.Random(i)
    return " ".join(f"w{rng.randrange(5000)}" for _ in range(n))


def rows(prefix: str, texts: list[str]) -> list[dict]:
    return [{"id": f"{prefix}-{i}", "input": t} for i, t in enumerate(texts)]


TEST = rows("test", [sentence(i) for i in range(20)])
CLEAN_TRAIN = rows("train", [sentence(i) for i in range(100, 140)])


def run(train: list[dict], source: str = "gold", **kw) -> c.Result:
    return c.check([c.Part(source, "t", train)], [c.Part("test", "t", TEST)], c.Settings(**kw))


def test_normalize_case_punctuation_whitespace_unicode():
    assert c.normalize("  Revenue ROSE\t5%,\nsaid  the CFO! ") == "revenue rose 5 said the cfo"
    assert c.normalize("ＡＢＣ－ｄｅｆ") == c.normalize("abc def")  # NFKC: full-width forms


def test_clean_rows_are_not_flagged():
    res = run(CLEAN_TRAIN)
    assert res.found() == []
    (split,) = res.splits
    assert (split.affected, split.share, split.example_id) == (0, 0.0, None)
    c.refuse_if_contaminated(res, c.Settings())  # nothing to refuse


def test_exact_match_after_normalisation_is_flagged():
    planted = TEST[3]["input"].upper().replace(" ", "  ,  ") + " !"
    res = run([*CLEAN_TRAIN, {"id": "leak", "input": planted}])
    (split,) = res.splits
    assert (split.exact, split.affected, split.eval_rows) == (1, 1, 20)
    assert split.example_id == "test-3" and split.example_train_id == "leak"
    assert split.share == pytest.approx(1 / 20)


def test_near_duplicate_with_a_few_words_changed_is_flagged():
    words = TEST[5]["input"].split()
    words[-1] = "changed"  # one word of 24: Jaccard of 5-gram shingles 19/21
    res = run([*CLEAN_TRAIN, {"id": "near", "input": " ".join(words)}], ngram_coverage=1.0)
    (split,) = res.splits
    assert (split.exact, split.near_duplicate, split.affected) == (0, 1, 1)
    assert split.example_train_id == "near"


def test_near_duplicate_threshold_is_respected():
    words = TEST[5]["input"].split()
    words[12] = "changed"  # the middle word: 5 of 20 shingles differ, Jaccard 15/25
    train = [*CLEAN_TRAIN, {"id": "near", "input": " ".join(words)}]
    assert run(train, ngram_coverage=1.0).found() == []
    (split,) = run(train, ngram_coverage=1.0, near_duplicate=0.5).splits
    assert split.near_duplicate == 1


def test_test_input_inside_a_longer_training_text_is_flagged_by_ngrams():
    long = f"{sentence(500, 40)} {TEST[7]['input']} {sentence(501, 40)}"
    (split,) = run([*CLEAN_TRAIN, {"id": "inside", "input": long}]).splits
    assert (split.exact, split.near_duplicate, split.ngram) == (0, 0, 1)
    assert split.example_id == "test-7" and split.example_train_id == "inside"


def test_one_shared_13_gram_counts_only_at_coverage_zero():
    shared = " ".join(TEST[9]["input"].split()[:13])  # 13 of the row's 24 words
    train = [*CLEAN_TRAIN, {"id": "part", "input": f"{sentence(600, 30)} {shared}"}]
    assert run(train).found() == []  # 13/24 < 80% of the row's words
    (split,) = run(train, ngram_coverage=0.0).splits
    assert split.ngram == 1


def test_short_shared_phrases_and_template_text_do_not_count():
    # every input starts with the same 15-word instruction (template), and pairs share
    # 12-word phrases: neither is an overlap
    template = "classify the sentiment of the following financial news headline for the company"
    evals = rows("test", [f"{template} {sentence(i, 12)}" for i in range(20)])
    train = rows("train", [f"{template} {sentence(i + 100, 12)}" for i in range(40)])
    train += rows("phrase", [f"{sentence(i, 12)} {sentence(i + 300, 12)}" for i in range(3)])
    res = c.check(
        [c.Part("gold", "t", train)], [c.Part("test", "t", evals)], c.Settings(ngram_coverage=0)
    )
    assert res.found() == []


def test_refusal_names_task_count_source_and_example():
    planted = TEST[3]["input"].lower()
    res = c.check(
        [
            c.Part("gold", "t", CLEAN_TRAIN),
            c.Part("synthetic", "t", [{"id": "s1", "input": planted}]),
        ],
        [c.Part("validation", "t", TEST[10:]), c.Part("test", "t", TEST)],
        c.Settings(),
    )
    with pytest.raises(UserError) as e:
        c.refuse_if_contaminated(res, c.Settings())
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("contamination: 1 of 20 test rows of task t appear in the training")
    assert "(synthetic rows of t)" in msg and "e.g. id test-3" in msg
    assert "contamination.allow: true" in msg
    c.refuse_if_contaminated(res, c.Settings(allow=True))  # allowed: no error
    c.refuse_if_contaminated(res, c.Settings(max_share=0.05))  # 1/20 = 5%: tolerated
    # per pair: gold clean, synthetic leaks into test only
    table = {(o.source, o.split): o.affected for o in res.table}
    assert table == {
        ("gold", "validation"): 0,
        ("gold", "test"): 0,
        ("synthetic", "validation"): 0,
        ("synthetic", "test"): 1,
    }


def test_parts_sources_and_eval_splits():
    data = {
        "news": {"train": TEST[:2], "validation": TEST[2:4], "test": TEST[4:6]},
        "fomc": {"pool": TEST[6:8], "test": TEST[8:10]},
        "general_instruct": {"train": TEST[10:12], "test": TEST[12:14]},
        "arith_math": {"train": TEST[14:16]},
    }
    train, evals = c.parts(data, ["news", "fomc"])
    assert [(p.kind, p.task) for p in train] == [
        ("math", "arith_math"),
        ("synthetic", "fomc"),
        ("general", "general_instruct"),
        ("gold", "news"),
    ]
    # the regulariser's own test split is not evaluated: not compared
    assert [(p.kind, p.task) for p in evals] == [
        ("test", "fomc"),
        ("test", "news"),
        ("validation", "news"),
    ]


def test_cached_result_is_reused_only_for_the_same_inputs(tmp_path):
    train, evals = [c.Part("gold", "t", CLEAN_TRAIN)], [c.Part("test", "t", TEST)]
    first = c.run_check(train, evals, c.Settings())
    c.write(tmp_path, first)
    stored = json.loads((tmp_path / c.FILE).read_text())
    assert stored["fingerprint"] == first.fingerprint and len(stored["splits"]) == 1
    # a marker in the stored file shows whether it was reused
    stored["splits"][0]["example_input"] = "from the file"
    (tmp_path / c.FILE).write_text(json.dumps(stored))
    again = c.cached(tmp_path, train, evals, c.Settings())
    assert again.splits[0].example_input == "from the file"
    changed = c.cached(tmp_path, train, evals, c.Settings(ngram=12))
    assert changed.splits[0].example_input is None  # other settings: computed again
    leak = [c.Part("gold", "t", [*CLEAN_TRAIN, {"id": "x", "input": TEST[0]["input"]}])]
    with pytest.raises(UserError, match="contamination: 1 of 20"):
        c.cached(tmp_path, leak, evals, c.Settings())  # other rows: checked again
    assert c.read(tmp_path).fingerprint == first.fingerprint  # nothing written by a check
