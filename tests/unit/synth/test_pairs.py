"""DPO pair mining: chosen = correct and concise, rejected = wrong/unextractable/overlong/loop."""

from __future__ import annotations

from raysys.synth.pairs import is_repetitive, mine_pairs
from raysys.tasks import get_task

TASK = get_task("news_sentiment")
ROWS = [
    {"id": str(i), "input": f"headline {i}", "gold": g}
    for i, g in enumerate(["positive", "negative", "neutral", "positive", "negative"])
]


def gen(i, text, overlong=False):
    return {"id": str(i), "generated_text": text, "overlong": overlong}


def test_mining_classifies_each_generation_and_prefers_generated_correct_answers():
    gens = [
        gen(0, "Answer: negative"),  # wrong
        gen(0, "Answer: positive"),  # correct, generated -> chosen
        gen(1, "It is bad news for the company."),  # unextractable
        gen(2, "Answer: neutral because " + "the the the the " * 10, overlong=True),
        gen(3, "Answer: positive"),  # only good answers: no pair
        gen(4, "Answer: negative. " + "sales fell sharply again " * 4),  # loop
    ]
    pairs, stats = mine_pairs(TASK, ROWS, gens)
    by_id = {p["id"]: p for p in pairs}
    assert set(by_id) == {"0", "1", "2", "4"}
    assert by_id["0"]["chosen"][0]["content"] == "Answer: positive"
    assert by_id["0"]["rejected"][0]["content"] == "Answer: negative"
    assert by_id["1"]["chosen"][0]["content"] == "Answer: negative"  # canonical target
    assert [by_id[k]["reason"] for k in "0124"] == [
        "wrong",
        "unextractable",
        "overlong",
        "repetitive",
    ]
    assert by_id["0"]["prompt"] == TASK.messages(ROWS[0])
    assert stats["pairs"] == 4 and stats["no_rejected_candidate"] == 1
    assert stats["chosen_from_generations"] == 1


def test_an_overlong_output_of_a_reasoning_task_is_paired_with_the_answer_line():
    """No concise generation of that input: `chosen` is the answer line, not the
    reason-first target, which can be as long as the rejected output."""
    why = "Let me think step by step. " + "The company raised its dividend. " * 6
    rows = [{"id": "r", "input": "x", "gold": "positive", "reasoning": why}]
    overlong = gen("r", "Let me think step by step. The company raised", overlong=True)
    wrong = gen("r", "Short and wrong.\nAnswer: negative")
    (pair,), _ = mine_pairs(TASK, rows, [overlong])
    assert pair["reason"] == "overlong"
    assert pair["chosen"][0]["content"] == "Answer: positive"
    (pair,), _ = mine_pairs(TASK, rows, [wrong])  # wrong: the full target shows the way
    assert pair["chosen"][0]["content"] == why.strip() + "\nAnswer: positive"


def test_voted_references_override_gold_and_unlabeled_rows_are_skipped():
    rows = [{"id": "a", "input": "x", "gold": None}, {"id": "b", "input": "y", "gold": None}]
    gens = [gen("a", "Answer: positive"), gen("b", "Answer: positive")]
    pairs, stats = mine_pairs(TASK, rows, gens, references={"a": "negative"})
    assert [p["id"] for p in pairs] == ["a"] and pairs[0]["reason"] == "wrong"
    assert stats["no_reference"] == 1


def test_is_repetitive():
    assert is_repetitive("up and to the right " * 3)
    assert not is_repetitive("Answer: positive")
    assert not is_repetitive("revenue rose four percent while margins held steady in the quarter")
