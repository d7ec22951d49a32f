"""DPO pair mining from any model's generations (the study's recipe).

`chosen` is a correct, concise answer: the shortest generation that agrees with
the reference (gold, or the voted label) and ends cleanly; if no generation does,
the task's target for the reference — the answer line alone when the rejected one
ran overlong or looped (a target that reasons first may be as long as it).
`rejected` is a generation that is wrong, unextractable, overlong (hit
max_new_tokens without EOS) or loops on a repeated n-gram. Rows come out in TRL's
conversational preference format:
`prompt` (messages), `chosen` and `rejected` (one assistant message each).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from raysys.evaluate.overlength import is_repetitive
from raysys.tasks.base import MISSING, Task

__all__ = ["REASONS", "is_repetitive", "judge", "mine_pairs"]

REASONS = ("wrong", "unextractable", "overlong", "repetitive")


def judge(task: Task, text: str, overlong: bool, reference: Any) -> str | None:
    """Why a generation is a `rejected` candidate, or None when it is a good answer."""
    if overlong:  # cut at the limit: an answer it never reached is not a format slip
        return "overlong"
    pred = task.extract(text)
    if pred == MISSING:
        return "unextractable"
    if is_repetitive(text):
        return "repetitive"
    if not task.agrees(pred, reference):
        return "wrong"
    return None


def mine_pairs(
    task: Task,
    rows: list[dict[str, Any]],
    generations: list[dict[str, Any]],
    references: dict[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One DPO row per input that has a rejected candidate.

    `rows`: {id, input, gold?}; `generations`: {id, generated_text, overlong} (any number
    per id, from any models); `references`: id -> answer overriding gold (voted labels).
    """
    by_id: dict[str, list[dict[str, Any]]] = {}
    for g in generations:
        by_id.setdefault(str(g["id"]), []).append(g)
    pairs: list[dict[str, Any]] = []
    reasons: Counter[str] = Counter()
    no_reference = no_rejected = chosen_generated = 0
    for row in rows:
        rid = str(row["id"])
        ref = (references or {}).get(rid, row.get("gold"))
        if ref is None:
            no_reference += 1
            continue
        good, bad = [], []
        for g in by_id.get(rid, []):
            why = judge(task, g["generated_text"], bool(g.get("overlong")), ref)
            (bad if why else good).append((why, g))
        if not bad:
            no_rejected += 1
            continue
        why, rejected = bad[0]
        reasons[why] += 1
        if good:
            chosen = min((g["generated_text"] for _, g in good), key=len).strip()
            chosen_generated += 1
        elif why in ("overlong", "repetitive"):
            # no concise generation: the answer line alone (a task whose targets reason
            # first would otherwise pair a long rejected with a long chosen)
            chosen = task.answer_line({**row, "gold": ref})
        else:
            chosen = task.target({**row, "gold": ref})
        pairs.append(
            {
                "id": rid,
                "task": task.name,
                "prompt": task.messages(row),
                "chosen": [{"role": "assistant", "content": chosen}],
                "rejected": [{"role": "assistant", "content": rejected["generated_text"]}],
                "reason": why,
            }
        )
    stats = {
        "rows": len(rows),
        "pairs": len(pairs),
        "reasons": {r: reasons.get(r, 0) for r in REASONS},
        "no_rejected_candidate": no_rejected,
        "no_reference": no_reference,
        "chosen_from_generations": chosen_generated,
    }
    return pairs, stats
