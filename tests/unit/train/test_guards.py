"""Data guards (`raysys.train.guards`) on the tiny model's real tokenizer (ChatML, EOS
`<|im_end|>`): columns and rows, NaN losses, and EOS at the end of every completion after
the chat template and truncation. No Ray."""

from __future__ import annotations

import math

import pytest

from raysys.errors import UserError
from raysys.train.guards import (
    DataGuardError,
    TrainingDivergedError,
    _ids,
    check_columns,
    check_eos,
    check_finite,
    completions,
)


@pytest.fixture(scope="module")
def tok(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def _sft(i: int, answer: str = "Answer: positive", rid: object = "x") -> dict:
    return {
        "id": f"{rid}{i}" if rid is not None else None,
        "messages": [
            {"role": "system", "content": "Classify."},
            {"role": "user", "content": f"Shares rose {i}%."},
            {"role": "assistant", "content": answer},
        ],
    }


def test_columns_and_rows_are_checked_per_method():
    check_columns(["id", "messages"], 3, "sft", "a.parquet")
    check_columns(["prompt", "chosen", "rejected", "id"], 3, "dpo", "p.parquet")
    with pytest.raises(
        DataGuardError, match=r"p.parquet: dpo rows need column\(s\) chosen, rejected"
    ):
        check_columns(["prompt", "messages"], 3, "dpo", "p.parquet")
    with pytest.raises(DataGuardError, match=r"sft rows need column\(s\) messages \(has: prompt\)"):
        check_columns(["prompt"], 3, "sft", "a.parquet")
    with pytest.raises(DataGuardError, match=r"a.parquet holds no training rows"):
        check_columns(["messages"], 0, "sft", "a.parquet")
    assert issubclass(DataGuardError, UserError)
    assert TrainingDivergedError.exit_code == 1


@pytest.mark.parametrize("loss", [None, math.nan, math.inf, -math.inf])
def test_a_non_finite_loss_stops_training(loss):
    with pytest.raises(FloatingPointError, match=rf"training loss is {loss} at step 7"):
        check_finite(loss, 7)


def test_finite_losses_pass():
    check_finite(0.0, 1)
    check_finite(12.5, 2)


def test_completions_split_prompt_and_answer():
    row = _sft(1)
    assert completions(row, "sft") == [(row["messages"][:2], row["messages"][2:])]
    dpo = {
        "prompt": [{"role": "user", "content": "q"}],
        "chosen": [{"a": 1}],
        "rejected": [{"b": 2}],
    }
    assert completions(dpo, "dpo") == [(dpo["prompt"], [{"a": 1}]), (dpo["prompt"], [{"b": 2}])]
    bad = {"id": "r7", "messages": [{"role": "user", "content": "q"}]}
    with pytest.raises(DataGuardError, match=r"row r7: the last message must be the assistant"):
        completions(bad, "sft")
    with pytest.raises(DataGuardError, match="assistant"):
        completions({"id": "e", "messages": []}, "sft")


def test_rows_that_end_with_eos_pass(tok):
    rows = [_sft(i) for i in range(4)]
    found = check_eos(tok, rows, "sft", 256)
    longest = max(len(_ids(tok.apply_chat_template(r["messages"]))) for r in rows)
    assert found == {"rows_checked": 4, "longest_tokens": longest}
    dpo = {
        "prompt": rows[0]["messages"][:2],
        "chosen": [{"role": "assistant", "content": "Answer: positive"}],
        "rejected": [{"role": "assistant", "content": "no idea " * 5}],
    }
    assert check_eos(tok, [dpo], "dpo", None)["rows_checked"] == 1


def test_truncation_that_cuts_the_eos_is_refused(tok):
    rows = [_sft(0), _sft(1, "Answer: positive. " + "Revenue rose sharply again. " * 20)]
    with pytest.raises(
        DataGuardError,
        match=r"1 of 2 rows lose their EOS \(<\|im_end\|>\) to truncation at "
        r"train.max_seq_length=64 \(first: row x1, longest row \d+ tokens\)",
    ):
        check_eos(tok, rows, "sft", 64)


def test_a_template_that_does_not_close_assistant_turns_is_refused(tok):
    broken = tok.chat_template.replace("'<|im_end|>' + '\n'", "'\n'")
    assert broken != tok.chat_template
    tok2 = type(tok).from_pretrained(tok.name_or_path)
    tok2.chat_template = broken
    rows = [_sft(0, rid=None), _sft(1, rid=None)]
    with pytest.raises(DataGuardError, match=r"2 of 2 rows have no EOS .* \(first: row #0\)"):
        check_eos(tok2, rows, "sft", None)


def test_a_tokenizer_without_a_chat_template_or_eos_is_refused(tok):
    plain = type(tok).from_pretrained(tok.name_or_path)
    plain.chat_template = None
    with pytest.raises(DataGuardError, match=r"the tokenizer has no chat template"):
        check_eos(plain, [_sft(0)], "sft", None)
    no_eos = type(tok).from_pretrained(tok.name_or_path)
    no_eos.eos_token = None
    with pytest.raises(DataGuardError, match=r"the tokenizer has no EOS token"):
        check_eos(no_eos, [_sft(0)], "sft", None)
