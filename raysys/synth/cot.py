"""Chain-of-thought label synthesis: sample, extract, vote, keep what agrees.

For each unlabeled input: prompt for step-by-step reasoning ending in
`Answer: <label>`, draw `samples` generations, read each answer with the strict
regex and, failing that, the flexible reader; the majority answer is kept when at
least `min_agreement` of the samples give it (and, with `min_confidence`, when its vote
margin or the mean token log-probability of its samples reach a threshold). Kept inputs
become SFT rows (the prompt and one agreeing chain of thought, or the answer only) and,
optionally, DPO pairs (an agreeing concise sample vs a disagreeing, unextractable or
overlong one).

Never trains on evaluation inputs: a generated pool comes from another generator
seed with every input that also appears in the task's test split dropped; a
user-provided pool that overlaps the test split is refused (`raysys.tasks.store`).

Resumable: inputs are processed in shards; each shard is written atomically as
`shards/<index>.parquet` keyed by input id, and a re-run skips the ids already
written. The outputs are assembled from the shards at the end, one row per input; the
keep rule is applied then, from each record's stored scores. Shards written before the
scores existed have no `margin` (it is recomputed from their stored answers) and no
log-probabilities (unknown: such an input fails a `min_confidence.logprob` rule, counted
as `unknown_logprob`, and is left out of the log-probability curve).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from raysys.analysis.confidence import confidence_curves
from raysys.console import Progress
from raysys.io import write_json, write_parquet
from raysys.tasks.base import MISSING, Task

log = logging.getLogger(__name__)

Row = dict[str, Any]


def synth_need(sc: Any, pool_file: str | None = None) -> Any:
    """What synthesis needs of its task: the test rows (never labeled for training) and
    `sc.size` pool inputs from `pool_file`, `sc.inputs`, the task's pool split or its
    generator (see `raysys.tasks.store`)."""
    from raysys.tasks import get_task
    from raysys.tasks.store import Need

    task = get_task(sc.task)
    sizes = {"test": sc.test_size} if "test" in task.splits else {}
    return Need(sc.task, sizes, sc.size, pool_file or sc.inputs, sc.pool_seed)


def build_pool(task: Task, cfg: Any, seed: int) -> tuple[list[Row], dict[str, int]]:
    """The inputs to label, disjoint from the task's test split (by normalised text): the
    run's stored pool once materialised, else read and checked now."""
    from raysys.tasks import entry
    from raysys.tasks.store import POOL, pool_rows

    sc = cfg.synth
    if entry(sc.task).pool and isinstance(entry(sc.task).source, Path):
        from raysys.tasks import build_splits

        rows = build_splits(sc.task, {POOL: sc.size}, seed)[POOL]
    else:
        rows = pool_rows(synth_need(sc), seed)
    pool = [{"id": str(r["id"]), "input": str(r["input"]), "gold": r.get("gold")} for r in rows]
    return pool, {"pool": len(pool)}


def cot_messages(task: Task, row: Row, instruction: str) -> list[dict[str, str]]:
    msgs = task.messages(row)
    msgs[-1] = {**msgs[-1], "content": msgs[-1]["content"].rstrip() + "\n" + instruction}
    return msgs


def vote(
    task: Task, texts: list[str], overlong: list[bool], logprobs: list[Any] | None = None
) -> dict[str, Any]:
    """Strict extraction, flexible as fallback; the majority, its share of samples, its
    margin over the runner-up and the mean log-probability of the samples giving it.
    `logprobs`: each sample's mean token log-probability (None: unknown)."""
    strict = [task.extract(t) for t in texts]
    answers = [
        s if s != MISSING else task.extract_lenient(t) for s, t in zip(strict, texts, strict=True)
    ]
    counted = Counter(a for a in answers if a != MISSING)
    majority, count = counted.most_common(1)[0] if counted else (MISSING, 0)
    return {
        **_confidence(answers, majority, logprobs),
        "answers": answers,
        "strict_missing": sum(s == MISSING for s in strict),
        "flexible_rescued": sum(
            s == MISSING and a != MISSING for s, a in zip(strict, answers, strict=True)
        ),
        "unextractable": sum(a == MISSING for a in answers),
        "majority": majority,
        "agreement": count / len(texts) if texts else 0.0,
        "overlong": sum(bool(o) for o in overlong),
    }


def vote_margin(answers: Any, n_samples: int) -> float:
    """(votes for the majority - votes for the runner-up) / samples; unextractable samples
    vote for nothing, so they lower the margin as they lower the agreement. 0 on a tie."""
    top = Counter(a for a in answers if a != MISSING).most_common(2)
    if not top or not n_samples:
        return 0.0
    return (top[0][1] - (top[1][1] if len(top) > 1 else 0)) / n_samples


def majority_logprob(answers: Any, majority: str, logprobs: Any) -> float | None:
    """The mean of the per-sample mean token log-probabilities of the samples that gave
    the majority answer; None without a majority or when any of them is unknown."""
    if majority == MISSING or logprobs is None:
        return None
    values = [lp for a, lp in zip(answers, logprobs, strict=True) if a == majority]
    if not values or any(v is None or not math.isfinite(v) for v in values):
        return None
    return float(sum(values) / len(values))


def _confidence(answers: list[str], majority: str, logprobs: Any) -> dict[str, Any]:
    return {
        "margin": vote_margin(answers, len(answers)),
        "mean_logprob": majority_logprob(answers, majority, logprobs),
    }


def keep_reason(rec: Row, sc: Any) -> str | None:
    """Why an input's label is not kept (None: kept), from its record's scores and the
    keep rule: a majority, `min_agreement`, then `min_confidence` if set."""
    if rec["majority"] == MISSING:
        return "no_answer"
    if rec["agreement"] < sc.min_agreement:
        return "low_agreement"
    mc = sc.min_confidence
    if mc is None:
        return None
    if mc.margin is not None and rec["margin"] < mc.margin:
        return "low_margin"
    if mc.logprob is not None:
        lp = rec.get("mean_logprob")
        if lp is None or not math.isfinite(lp):
            return "unknown_logprob"
        if lp < mc.logprob:
            return "low_logprob"
    return None


def label_shard(
    task: Task,
    rows: list[Row],
    model_path: str,
    adapters: dict[str, str],
    cfg: Any,
    clock: dict[str, float] | None = None,
) -> list[Row]:
    """One engine pass over `rows` x samples; one record per input. `clock` adds up the
    seconds spent generating and extracting + voting."""
    clock = {} if clock is None else clock
    t0 = time.perf_counter()
    from raysys.engines import generate

    sc = cfg.synth
    adapter = "synth" if adapters else ""
    work = [
        {"id": r["id"], "messages": cot_messages(task, r, sc.cot_instruction), "adapter": adapter}
        for r in rows
    ]
    sampling = {
        "n": sc.samples,
        "temperature": sc.temperature,
        "top_p": sc.top_p,
        "seed": cfg.run.seed,
    }
    out = generate(work, model_path, adapters, cfg.generate, cfg.model.dtype, sampling=sampling)
    t1 = time.perf_counter()
    clock["generation"] = clock.get("generation", 0.0) + t1 - t0
    by_id: dict[str, list[Row]] = {}
    for rec in out.to_dict("records"):
        by_id.setdefault(str(rec["id"]), []).append(rec)
    records = []
    for r in rows:
        gens = sorted(by_id.get(r["id"], []), key=lambda g: g.get("sample", 0))
        texts = [g["generated_text"] for g in gens]
        logprobs = [_number(g.get("mean_logprob")) for g in gens]
        v = vote(task, texts, [g["overlong"] for g in gens], logprobs)
        rec = {
            "id": r["id"],
            "input": r["input"],
            "gold": None if r.get("gold") is None else str(r["gold"]),
            "samples": texts,
            "overlong_flags": [bool(g["overlong"]) for g in gens],
            "sample_logprobs": logprobs,
            "answers": v["answers"],
            "majority": v["majority"],
            "agreement": v["agreement"],
            "margin": v["margin"],
            "mean_logprob": v["mean_logprob"],
            "strict_missing": v["strict_missing"],
            "flexible_rescued": v["flexible_rescued"],
            "unextractable": v["unextractable"],
            "generated_tokens": int(sum(g.get("num_generated_tokens") or 0 for g in gens)),
        }
        records.append({**rec, "kept": keep_reason(rec, sc) is None})
    clock["extraction_and_vote"] = clock.get("extraction_and_vote", 0.0) + time.perf_counter() - t1
    return records


def run_synthesis(
    task: Task,
    pool: list[Row],
    model_path: str,
    adapters: dict[str, str],
    cfg: Any,
    out_dir: Path,
    faults: dict[str, Any] | None = None,
    keep: Callable[[Path], None] | None = None,
) -> dict[str, Any]:
    """Label `pool` shard by shard (skipping ids already done), then write the outputs.
    `keep(shard)` is called after each shard is written (the run directory sends it to
    its object store: a resumed run on another machine finds it)."""
    shards = out_dir / "shards"
    shards.mkdir(parents=True, exist_ok=True)
    done = _done_ids(shards)
    todo = [r for r in pool if r["id"] not in done]
    size = cfg.synth.shard_size
    start_index = len(list(shards.glob("*.parquet")))
    log.info("synthesis: %d inputs, %d done earlier, %d to label", len(pool), len(done), len(todo))
    clock: dict[str, float] = {"generation": 0.0, "extraction_and_vote": 0.0, "writing": 0.0}
    with Progress("synthesis", total=len(pool), unit="inputs") as bar:
        bar.set(len(done))
        for k, s in enumerate(range(0, len(todo), size)):
            records = label_shard(task, todo[s : s + size], model_path, adapters, cfg, clock)
            t0 = time.perf_counter()
            write_parquet(shards / f"{start_index + k:05d}.parquet", records)  # atomic
            if keep is not None:
                keep(shards / f"{start_index + k:05d}.parquet")
            clock["writing"] += time.perf_counter() - t0
            bar.update(len(records), f"shard {start_index + k} written")
            if faults and faults.get("synth_crash_after_shards") == k + 1:
                log.warning("fault injection: exiting after %d shard(s)", k + 1)
                os._exit(1)
    # phase timings and the rate describe a run that labeled its whole pool itself
    return assemble(task, pool, shards, cfg, out_dir, None if done else clock)


def _number(value: Any) -> float | None:
    """A float, or None for a missing/NaN value (an engine row without a logprob)."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _done_ids(shards: Path) -> set[str]:
    ids: set[str] = set()
    for f in sorted(shards.glob("*.parquet")):
        ids.update(pd.read_parquet(f, columns=["id"])["id"].astype(str))
    return ids


def assemble(
    task: Task,
    pool: list[Row],
    shards: Path,
    cfg: Any,
    out_dir: Path,
    clock: dict[str, float] | None = None,
) -> dict[str, Any]:
    """labels.parquet (one row per input), sft.parquet, dpo.parquet, stats.json.

    `clock`: seconds spent per phase by a run that labeled the whole pool; stats.json
    gets them with the assembly's own writing time, each phase's share and the kept
    (labeled) rows per minute."""
    t_assemble = time.perf_counter()
    sc = cfg.synth
    labels = _with_confidence(_labels(shards, pool), sc)
    write_parquet(out_dir / "labels.parquet", labels.to_dict("records"))
    kept = labels[labels["kept"]].to_dict("records")
    rows_by_id = {r["id"]: r for r in pool}
    sft_rows = [r for rec in kept if (r := _sft_row(task, rows_by_id[rec["id"]], rec, sc))]
    write_parquet(out_dir / "sft.parquet", sft_rows)
    stats: dict[str, Any] = _stats(task, labels, len(sft_rows), sc)
    if sc.dpo_pairs:
        pairs, stats["dpo"] = _pairs(task, kept, rows_by_id, sc.cot_instruction)
        write_parquet(out_dir / "dpo.parquet", pairs)
    if clock is not None:
        stats |= _timings(clock, time.perf_counter() - t_assemble, labels)
    write_json(out_dir / "stats.json", stats)
    from raysys.analysis.synth_report import write_synth_report

    write_synth_report(out_dir, task.name, stats)
    return stats


def _with_confidence(labels: pd.DataFrame, sc: Any) -> pd.DataFrame:
    """The labels with their confidence scores (filled in for shards written before they
    existed: the margin from the stored answers, log-probabilities unknown) and `kept`
    decided by the keep rule of this run's config."""
    labels = labels.copy()
    n = len(labels)
    for col in ("margin", "mean_logprob", "sample_logprobs"):
        if col not in labels:
            labels[col] = [None] * n
    if n:  # a margin missing (an older shard) is recomputed from the stored answers
        labels["margin"] = [
            vote_margin(a, len(s)) if _number(m) is None else float(m)
            for m, a, s in zip(labels["margin"], labels["answers"], labels["samples"], strict=True)
        ]
    labels["mean_logprob"] = [_number(v) for v in labels["mean_logprob"]]
    reasons = [keep_reason(rec, sc) for rec in labels.to_dict("records")]
    labels["kept"] = [r is None for r in reasons]
    unknown = reasons.count("unknown_logprob")
    if unknown:
        log.warning(
            "synthesis: %d input(s) from shards written before log-probabilities were recorded "
            "cannot pass synth.min_confidence.logprob and are not kept; label them again "
            "(remove their shards) or drop the logprob rule",
            unknown,
        )
    return labels


def _labels(shards: Path, pool: list[Row]) -> pd.DataFrame:
    """Every input's labeling record from the shards, once each, in pool order."""
    frames = [pd.read_parquet(f) for f in sorted(shards.glob("*.parquet"))]
    labels = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"id": []})
    labels["id"] = labels["id"].astype(str)
    labels = labels.drop_duplicates("id", keep="last")  # a shard re-done after a crash
    wanted = [r["id"] for r in pool]
    have = set(labels["id"])
    labels = labels.set_index("id").loc[[i for i in wanted if i in have]].reset_index()
    missing = len(wanted) - len(labels)
    if missing:
        raise RuntimeError(f"{missing} inputs have no synthesis output; re-run to finish them")
    return labels


def _sft_row(task: Task, row: Row, rec: dict[str, Any], sc: Any) -> Row | None:
    """A kept input's training row: the shortest agreeing, non-overlong chain of thought
    (or the answer alone); None when no sample qualifies."""
    if sc.assistant == "cot":
        samples = zip(rec["samples"], rec["answers"], rec["overlong_flags"], strict=True)
        agreeing = [t for t, a, o in samples if a == rec["majority"] and not o]
        if not agreeing:
            return None
        content = min(agreeing, key=len).strip()
        prompt = cot_messages(task, row, sc.cot_instruction)
    else:
        content = task.target({**row, "gold": rec["majority"]})
        prompt = task.messages(row)
    return {
        "id": rec["id"],
        "task": task.name,
        "messages": prompt + [{"role": "assistant", "content": content}],
        "gold": rec["majority"],
        "pred": rec["majority"],
        "source": f"synth:{task.name}",
    }


def _pairs(
    task: Task, kept: list[dict[str, Any]], rows_by_id: dict[str, Row], instruction: str
) -> tuple[list[Row], dict[str, Any]]:
    """DPO pairs from the kept inputs' samples, against their voted labels."""
    from raysys.synth.pairs import mine_pairs

    gens = [
        {"id": rec["id"], "generated_text": t, "overlong": o}
        for rec in kept
        for t, o in zip(rec["samples"], rec["overlong_flags"], strict=True)
    ]
    refs = {rec["id"]: rec["majority"] for rec in kept}
    # CoT prompts: the pairs train the reasoning format the samples were drawn with
    prompt_rows = [{**rows_by_id[rec["id"]], "gold": None} for rec in kept]
    pairs, pair_stats = mine_pairs(task, prompt_rows, gens, references=refs)
    for p in pairs:
        p["prompt"] = cot_messages(task, rows_by_id[p["id"]], instruction)
    return pairs, pair_stats


def _timings(clock: dict[str, float], writing: float, labels: pd.DataFrame) -> dict[str, Any]:
    seconds = {**clock, "writing": clock.get("writing", 0.0) + writing}
    total = sum(seconds.values())
    labeled = int(labels["kept"].sum()) if len(labels) else 0
    return {
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "time_share": {k: round(v / total, 4) for k, v in seconds.items()} if total else {},
        "kept_rows_per_minute": round(labeled * 60 / total, 2) if total else None,
    }


def _rejected(labels: pd.DataFrame, sc: Any) -> dict[str, int]:
    """Inputs not kept, by reason (every input ends kept or rejected: inputs = kept +
    sum(rejected)): no sample gave an answer, the majority fell short of min_agreement, or
    of min_confidence (low_margin, low_logprob, unknown_logprob: see `keep_reason`)."""
    reasons = [keep_reason(rec, sc) for rec in labels.to_dict("records")]
    found = [r for r in reasons if r is not None]
    return dict(sorted(pd.Series(found, dtype=object).value_counts().astype(int).items()))


def _stats(task: Task, labels: pd.DataFrame, sft_rows: int, sc: Any) -> dict[str, Any]:
    n = len(labels)
    samples = int(labels["samples"].map(len).sum())
    agreement = labels["agreement"].round(2).value_counts().sort_index()
    out: dict[str, Any] = {
        "inputs": n,
        "kept": int(labels["kept"].sum()),
        "yield": float(labels["kept"].mean()) if n else 0.0,
        "rejected": _rejected(labels, sc),
        "sft_rows": sft_rows,
        "samples": samples,
        "agreement_distribution": {f"{k:.2f}": int(v) for k, v in agreement.items()},
        "extraction": {
            "strict_missing": int(labels["strict_missing"].sum()),
            "flexible_rescued": int(labels["flexible_rescued"].sum()),
            "unextractable": int(labels["unextractable"].sum()),
            "unextractable_share": float(labels["unextractable"].sum() / samples)
            if samples
            else 0.0,
        },
        "min_agreement": sc.min_agreement,
        "min_confidence": sc.min_confidence.model_dump(exclude_none=True)
        if sc.min_confidence is not None
        else None,
    }
    if "generated_tokens" in labels:  # shards written before it was recorded have none
        out["generated_tokens"] = int(labels["generated_tokens"].fillna(0).sum())
    gold = labels["gold"].notna() & (labels["gold"].astype(str) != "None")
    if gold.any():
        g = labels[gold]
        correct = [task.agrees(m, t) for m, t in zip(g["majority"], g["gold"], strict=True)]
        g = g.assign(correct=correct)
        kept = g[g["kept"]]
        out["gold_rows"] = int(len(g))
        out["kept_label_accuracy"] = float(kept["correct"].mean()) if len(kept) else None
        out["majority_accuracy_all"] = float(g["correct"].mean())
        # what other thresholds would give, to tune min_agreement
        out["by_threshold"] = {
            f"{t:.1f}": {
                "yield": float((g["agreement"] >= t).mean()),
                "accuracy": float(g[g["agreement"] >= t]["correct"].mean())
                if (g["agreement"] >= t).any()
                else None,
            }
            for t in (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
        }
        out["gold_kept"] = int(g["kept"].sum())
        out["gold_yield"] = float(g["kept"].mean())
        out["confidence"] = confidence_curves(g.assign(majority_answered=g["majority"] != MISSING))
    return out
