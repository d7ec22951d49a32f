"""`raysys.tasks.base`: a task is data plus its kind's behaviour; prompts with one
`{input}` field; strict extraction from the last `Answer:`, the flexible fallback; a
user's answer regex under a time bound; split streams stable across runs."""

from __future__ import annotations

import pytest

from raysys.errors import UserError
from raysys.tasks.base import MISSING, BoundedPattern, Task, prompt_problem, split_rng

PROMPT = "Tone?\n{input}\nEnd with 'Answer: <label>'."
LABELS = ("positive", "negative", "neutral")


def _task(**kw) -> Task:
    return Task(
        **{"name": "t", "kind": "classification", "prompt_template": PROMPT, "labels": LABELS, **kw}
    )


@pytest.mark.parametrize(
    "template, problem",
    [
        (PROMPT, None),
        ("{input}", None),
        ("Say {{json}} about {input}", None),  # literal braces
        ("no field", "prompt must contain {input} where the row's text goes"),
        ("{label}: {input}", "prompt: unknown field {label}; only {input} is filled in"),
        ("{input:>99999999}", "prompt: {input} takes no format spec or conversion"),
        ("{input!r}", "prompt: {input} takes no format spec or conversion"),
        ("{input", "prompt: "),
    ],
)
def test_prompt_problem(template, problem):
    got = prompt_problem(template)
    assert got is None if problem is None else got.startswith(problem)


def test_a_task_refuses_an_unknown_kind_too_few_labels_and_a_bad_prompt():
    with pytest.raises(ValueError, match=r"task t: kind must be one of \("):
        _task(kind="regression")
    with pytest.raises(ValueError, match="task t: a classification task needs >= 2 labels"):
        _task(labels=("yes",))
    with pytest.raises(ValueError, match="task t: prompt must contain {input}"):
        _task(prompt_template="nothing")


def test_messages_and_target():
    t = _task()
    row = {"input": "Profits rose {not a field}", "gold": "positive"}
    assert t.messages(row) == [
        {
            "role": "user",
            "content": "Tone?\nProfits rose {not a field}\nEnd with 'Answer: <label>'.",
        }
    ]
    assert t.target(row) == "Answer: positive"
    assert t.main_metric == "macro_f1"


@pytest.mark.parametrize(
    "text, strict, flexible",
    [
        ("Answer: positive", "positive", "positive"),
        ("Answer: negative\nOn reflection...\nAnswer: **Neutral**.", "neutral", "neutral"),
        ("I think it is negative overall.", MISSING, "negative"),
        ("", MISSING, MISSING),
        (None, MISSING, MISSING),
    ],
)
def test_extraction_takes_the_last_answer_then_falls_back(text, strict, flexible):
    t = _task()
    assert t.extract(text) == strict
    assert t.extract_flexible(text) == flexible


def test_agrees_and_score():
    t = _task()
    assert t.agrees("positive", "positive") and not t.agrees("positive", "negative")
    assert not t.agrees(MISSING, "positive") and not t.agrees("positive", None)
    golds = ["positive", "negative"]
    s = t.score(golds, ["Answer: positive", "it reads negative"])
    assert s["accuracy"] == 0.5 and s["missing_rate"] == 0.5 and s["main"] == s["macro_f1"]
    assert any(k != "main" and k.endswith("accuracy") and k != "accuracy" for k in s)
    lenient = {k: v for k, v in s.items() if k.endswith("accuracy") and k != "accuracy"}
    assert list(lenient.values()) == [1.0]  # the lenient reading finds both


def test_a_users_answer_regex_is_bounded_and_case_insensitive():
    p = BoundedPattern(r"label=(\w+)")
    assert p.groups == 1 and p.findall("LABEL=up, label=down") == ["up", "down"]
    t = _task(answer_re=BoundedPattern(r"verdict:\s*(\w+)"))
    assert t.extract("Verdict: NEGATIVE") == "negative"


def test_a_backtracking_answer_regex_stops_with_one_line():
    p = BoundedPattern(r"A:(\w*\w*\w*\w*\w*!)", timeout=0.05)
    with pytest.raises(UserError) as e:
        p.findall("A:" + "a" * 3000)
    msg = str(e.value)
    assert msg.startswith(
        r"answer_regex 'A:(\\w*\\w*\\w*\\w*\\w*!)' took over 0.05 s on one output of 3,002"
    )
    assert "\n" not in msg


def test_split_streams_are_stable_and_separate():
    a = [split_rng(0, "t", "train").random() for _ in range(2)]
    assert split_rng(0, "t", "train").random() == a[0]
    assert split_rng(0, "t", "test").random() != a[0]
    assert split_rng(1, "t", "train").random() != a[0]
    # crc32-seeded: the same numbers on every machine and Python run
    assert round(split_rng(0, "t", "train").random(), 12) == round(a[0], 12)


def test_tasks_compare_by_their_data():
    assert _task() == _task()
    assert _task() != _task(description="other")
    assert _task(answer_re=BoundedPattern("x(y)")) == _task()  # the regex does not compare
