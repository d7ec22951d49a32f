"""Checks that stop a run before it wastes a cluster: data shape, chat template, EOS.

A completion whose tokens do not end with the EOS token teaches the model never to
stop (the known cause of outputs that run to max_new_tokens). The check tokenizes
every row the way TRL does (the prompt rendered with the generation prompt, then
prompt + completion; the completion starts where the two diverge) and looks for
EOS among the completion's trailing tokens, after truncation to max_seq_length.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from raysys.errors import UserError

if TYPE_CHECKING:
    from transformers import BatchEncoding, PreTrainedTokenizerBase

SFT_COLUMNS = ("messages",)
DPO_COLUMNS = ("prompt", "chosen", "rejected")


class DataGuardError(UserError):
    """Training data that would train a broken model (no EOS, no rows, wrong shape)."""


class TrainingDivergedError(UserError):
    """A NaN/inf loss: the run stopped; the last good checkpoint is kept."""

    exit_code = 1


def check_columns(columns: list[str], n_rows: int, method: str, path: str) -> None:
    need = SFT_COLUMNS if method == "sft" else DPO_COLUMNS
    missing = [c for c in need if c not in columns]
    if missing:
        raise DataGuardError(
            f"{path}: {method} rows need column(s) {', '.join(missing)} (has: "
            f"{', '.join(columns)}); point data.path at {method} rows or set train.method"
        )
    if n_rows == 0:
        raise DataGuardError(
            f"{path} holds no training rows; check the task sizes and data.fraction"
        )


def check_finite(loss: float | None, step: int) -> None:
    if loss is None or not math.isfinite(loss):
        raise FloatingPointError(
            f"training loss is {loss} at step {step}; lower train.learning_rate or check the data"
        )


def completions(row: dict[str, Any], method: str) -> list[tuple[list, list]]:
    """(prompt messages, completion messages) pairs a row trains on."""
    if method == "sft":
        msgs = list(row["messages"])
        if not msgs or msgs[-1]["role"] != "assistant":
            raise DataGuardError(
                f"row {row.get('id')}: the last message must be the assistant's answer"
            )
        return [(msgs[:-1], msgs[-1:])]
    return [(list(row["prompt"]), list(row[k])) for k in ("chosen", "rejected")]


def check_eos(
    tokenizer: PreTrainedTokenizerBase,
    rows: list[dict[str, Any]],
    method: str,
    max_length: int | None,
) -> dict[str, int]:
    """Every completion ends with EOS after tokenization and truncation; else raise."""
    if not getattr(tokenizer, "chat_template", None):
        raise DataGuardError(
            "the tokenizer has no chat template; use an instruct model or set one on the "
            "tokenizer (tokenizer_config.json chat_template)"
        )
    eos = tokenizer.eos_token_id
    if eos is None:
        raise DataGuardError("the tokenizer has no EOS token; set eos_token in its config")
    bad_template: list[Any] = []
    truncated: list[Any] = []
    longest = 0
    for i, row in enumerate(rows):
        # Rows without an id (a hand-made parquet) are named by position, not "None".
        rid = row.get("id") if row.get("id") is not None else f"#{i}"
        for prompt, completion in completions(row, method):
            p_ids = _ids(tokenizer.apply_chat_template(_plain(prompt), add_generation_prompt=True))
            full = _ids(tokenizer.apply_chat_template(_plain(prompt + completion)))
            longest = max(longest, len(full))
            start = _common_prefix(p_ids, full)
            if eos not in _tail(full[start:], tokenizer):
                bad_template.append(rid)
            elif max_length is not None and eos not in _tail(full[start:max_length], tokenizer):
                truncated.append(rid)
    eos_text = tokenizer.convert_ids_to_tokens(eos)
    if bad_template:
        raise DataGuardError(
            f"{len(bad_template)} of {len(rows)} rows have no EOS ({eos_text}) at the end of the "
            f"assistant turn (first: row {bad_template[0]}): the chat template does not close "
            "assistant turns with EOS, so the model would never learn to stop; fix the chat "
            "template or the tokenizer's eos_token"
        )
    if truncated:
        raise DataGuardError(
            f"{len(truncated)} of {len(rows)} rows lose their EOS ({eos_text}) to truncation at "
            f"train.max_seq_length={max_length} (first: row {truncated[0]}, longest row "
            f"{longest} tokens); raise train.max_seq_length or shorten the rows"
        )
    return {"rows_checked": len(rows), "longest_tokens": longest}


def _plain(messages: list) -> list[dict[str, str]]:
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def _ids(out: BatchEncoding | list[int]) -> list[int]:
    # transformers 5 returns a BatchEncoding from apply_chat_template(tokenize=True)
    ids = out["input_ids"] if not isinstance(out, list) else out
    return list(ids)


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _tail(ids: list[int], tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The completion's last non-whitespace token
    (ChatML templates put a newline after the end-of-turn token)."""
    end = len(ids)
    while end > 0 and not tokenizer.decode(ids[end - 1 : end]).strip():
        end -= 1
    return ids[max(0, end - 1) : end]
