"""CoT label synthesis (`raysys.synth.cot`) without an engine: the vote, the prompt, the
pool it labels, and the outputs assembled from hand-written shard files (one row per
input, re-done shards counted once, SFT rows, DPO pairs, statistics); a run whose shards
are all written only assembles. Labeling a shard needs an engine:
tests/integration/test_synth.py."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from raysys.config import SynthConfig, load_config
from raysys.synth.cot import (
    _timings,
    assemble,
    build_pool,
    cot_messages,
    keep_reason,
    run_synthesis,
    synth_need,
    vote,
)
from raysys.tasks import get_task
from raysys.tasks.base import MISSING
from tests.fixtures import REPO

NS = get_task("news_sentiment")


def _cfg(*overrides: str) -> SynthConfig:
    base = ["synth.task=news_sentiment", "synth.size=6", "synth.test_size=10", "synth.samples=3"]
    return load_config(SynthConfig, REPO / "configs" / "synth.yaml", [*base, *overrides])


def test_the_vote_reads_strictly_then_leniently():
    texts = ["Answer: positive", "I'd say positive overall", "Answer: negative", "no idea"]
    v = vote(NS, texts, [False, False, True, False])
    assert v["answers"] == ["positive", "positive", "negative", MISSING]
    assert (v["strict_missing"], v["flexible_rescued"], v["unextractable"]) == (2, 1, 1)
    assert (v["majority"], v["agreement"], v["overlong"]) == ("positive", 0.5, 1)


def test_no_answer_at_all_is_no_majority():
    v = vote(NS, ["hmm", "well"], [False, False])
    assert (v["majority"], v["agreement"], v["unextractable"]) == (MISSING, 0.0, 2)
    assert vote(NS, [], [])["agreement"] == 0.0


def test_the_cot_prompt_is_the_task_prompt_with_the_instruction():
    msgs = cot_messages(NS, {"input": "Shares rose."}, "Think step by step.")
    plain = NS.messages({"input": "Shares rose."})
    assert msgs[:-1] == plain[:-1]
    assert msgs[-1]["content"] == plain[-1]["content"].rstrip() + "\nThink step by step."


def test_synthesis_needs_the_test_rows_and_a_pool():
    need = synth_need(_cfg().synth)
    assert (need.ref, need.sizes, need.pool, need.pool_file) == (
        "news_sentiment",
        {"test": 10},
        6,
        None,
    )
    assert synth_need(_cfg().synth, "pool.csv").pool_file == "pool.csv"


def test_the_pool_is_disjoint_from_the_test_split():
    from raysys.tasks import build_splits

    cfg = _cfg()
    pool, stats = build_pool(NS, cfg, 0)
    assert stats == {"pool": 6} and len(pool) == 6
    assert all(isinstance(r["id"], str) and r["input"] for r in pool)
    test = build_splits("news_sentiment", {"test": 10}, 0)["test"]
    assert {r["input"] for r in pool}.isdisjoint(r["input"] for r in test)


# --------------------------------------------------------------------------- assembly

POOL = [
    {"id": "a", "input": "Shares rose.", "gold": "positive"},
    {"id": "b", "input": "Shares fell.", "gold": "negative"},
    {"id": "c", "input": "Flat day.", "gold": "neutral"},
    {"id": "d", "input": "Odd news.", "gold": None},
]
SAMPLES = {  # three samples per input: (text, overlong)
    "a": [
        ("Rose, so up. Answer: positive", False),
        ("Answer: positive", False),
        ("Answer: negative", False),
    ],
    "b": [
        ("Answer: negative", False),
        ("It fell. " * 40 + "Answer: negative", True),
        ("Answer: positive", False),
    ],
    "c": [("Answer: positive", False), ("Answer: negative", False), ("hmm", False)],
    "d": [("unclear", False), ("unclear", False), ("unclear", False)],
}


def _record(row: dict, min_agreement: float = 0.6) -> dict:
    texts = [t for t, _ in SAMPLES[row["id"]]]
    flags = [o for _, o in SAMPLES[row["id"]]]
    v = vote(NS, texts, flags)
    return {
        "id": row["id"],
        "input": row["input"],
        "gold": row["gold"],
        "samples": texts,
        "overlong_flags": flags,
        "answers": v["answers"],
        "majority": v["majority"],
        "agreement": v["agreement"],
        "kept": v["majority"] != MISSING and v["agreement"] >= min_agreement,
        "strict_missing": v["strict_missing"],
        "flexible_rescued": v["flexible_rescued"],
        "unextractable": v["unextractable"],
    }


def _shards(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    pd.DataFrame([_record(r) for r in POOL[:2]]).to_parquet(shards / "00000.parquet")
    stale = {**_record(POOL[1]), "kept": False, "majority": MISSING}  # before a crash
    pd.DataFrame([stale]).to_parquet(shards / "00001.parquet")
    pd.DataFrame([_record(r) for r in POOL[1:]]).to_parquet(shards / "00002.parquet")
    return shards


def test_the_outputs_are_assembled_from_the_shards(tmp_path):
    cfg = _cfg()
    stats = assemble(NS, POOL, _shards(tmp_path), cfg, tmp_path)
    labels = pd.read_parquet(tmp_path / "labels.parquet")
    assert labels["id"].tolist() == ["a", "b", "c", "d"]  # pool order, each once
    assert labels["kept"].tolist() == [True, True, False, False]  # the re-done b counts
    assert labels["majority"].tolist() == ["positive", "negative", "positive", MISSING]
    sft = pd.read_parquet(tmp_path / "sft.parquet")
    assert sft["id"].tolist() == ["a", "b"] and set(sft["source"]) == {"synth:news_sentiment"}
    # the shortest agreeing chain of thought that was not cut off
    assert sft["messages"][0][-1]["content"] == "Answer: positive"
    assert sft["messages"][1][-1]["content"] == "Answer: negative"
    assert sft["messages"][0][-2]["content"].endswith(cfg.synth.cot_instruction)
    assert stats["inputs"] == 4 and stats["kept"] == 2 and stats["yield"] == 0.5
    assert stats["rejected"] == {"low_agreement": 1, "no_answer": 1}
    assert stats["sft_rows"] == 2 and stats["samples"] == 12
    assert stats["extraction"]["unextractable"] == 4  # c's "hmm" and d's three
    assert stats["agreement_distribution"] == {"0.00": 1, "0.33": 1, "0.67": 2}
    assert stats["gold_rows"] == 3 and stats["kept_label_accuracy"] == 1.0
    assert stats["majority_accuracy_all"] == pytest.approx(2 / 3)
    assert stats["by_threshold"]["0.7"] == {"yield": 0.0, "accuracy": None}
    assert json.loads((tmp_path / "stats.json").read_text())["kept"] == 2
    pairs = pd.read_parquet(tmp_path / "dpo.parquet")
    assert pairs["id"].tolist() == ["a", "b"]  # a disagreeing sample each
    assert pairs["rejected"][0][0]["content"] == "Answer: negative"
    assert pairs["prompt"][0][-1]["content"].endswith(cfg.synth.cot_instruction)
    assert stats["dpo"]["pairs"] == 2


def test_answer_only_rows_and_no_pairs(tmp_path):
    cfg = _cfg("synth.assistant=answer", "synth.dpo_pairs=false")
    assemble(NS, POOL, _shards(tmp_path), cfg, tmp_path)
    sft = pd.read_parquet(tmp_path / "sft.parquet")
    assert sft["messages"][0][-1]["content"] == NS.target({"gold": "positive"})
    assert sft["messages"][0][:-1].tolist() == NS.messages(POOL[0])
    assert not (tmp_path / "dpo.parquet").exists()


def test_inputs_without_output_are_an_error(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    pd.DataFrame([_record(POOL[0])]).to_parquet(shards / "00000.parquet")
    with pytest.raises(RuntimeError, match=r"3 inputs have no synthesis output; re-run"):
        assemble(NS, POOL, shards, _cfg(), tmp_path)


def test_a_run_whose_shards_are_written_only_assembles(tmp_path):
    _shards(tmp_path)
    kept: list = []
    # every input is in a shard: nothing is labeled, so no engine (nor model) is needed
    stats = run_synthesis(NS, POOL, "no-such-model", {}, _cfg(), tmp_path, keep=kept.append)
    assert kept == [] and stats["kept"] == 2
    assert "seconds" not in stats  # timings describe a run that labeled its whole pool
    assert len(list((tmp_path / "shards").glob("*.parquet"))) == 3


def test_timings_add_the_assembly_and_give_shares_and_a_rate():
    labels = pd.DataFrame({"kept": [True, True, True, False]})
    clock = {"generation": 6.0, "extraction_and_vote": 1.0, "writing": 1.0}
    t = _timings(clock, 2.0, labels)
    assert t["seconds"] == {"generation": 6.0, "extraction_and_vote": 1.0, "writing": 3.0}
    assert t["time_share"] == {"generation": 0.6, "extraction_and_vote": 0.1, "writing": 0.3}
    assert t["kept_rows_per_minute"] == 18.0  # 3 kept rows in 10 s
    empty = _timings({}, 0.0, labels.iloc[:0])
    assert empty["time_share"] == {} and empty["kept_rows_per_minute"] is None


def test_no_shard_at_all_is_the_same_error(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    with pytest.raises(RuntimeError, match=r"4 inputs have no synthesis output; re-run"):
        assemble(NS, POOL, shards, _cfg(), tmp_path)


# ------------------------------------------------------------------ confident labels


def test_the_vote_gives_the_margin_and_the_majoritys_mean_logprob():
    texts = ["Answer: positive"] * 3 + ["Answer: negative", "no idea"]
    v = vote(NS, texts, [False] * 5, [-0.2, -0.4, -0.6, -0.1, -3.0])
    assert v["agreement"] == 0.6 and v["margin"] == pytest.approx((3 - 1) / 5)
    # only the samples that gave the majority answer
    assert v["mean_logprob"] == pytest.approx(-0.4)
    one_kind = vote(NS, ["Answer: positive", "Answer: positive", "hmm"], [False] * 3)
    assert one_kind["margin"] == pytest.approx(2 / 3) and one_kind["mean_logprob"] is None
    tie = vote(NS, ["Answer: positive", "Answer: negative"], [False] * 2, [-1.0, -2.0])
    assert tie["margin"] == 0.0
    nothing = vote(NS, ["hmm", "well"], [False] * 2, [-1.0, -1.0])
    assert (nothing["margin"], nothing["mean_logprob"]) == (0.0, None)
    # one unknown logprob among the majority's samples: the mean is unknown, not a subset's
    assert vote(NS, ["Answer: positive"] * 2, [False] * 2, [-1.0, None])["mean_logprob"] is None


def test_the_keep_rule_adds_margin_and_logprob_thresholds():
    rec = {"majority": "positive", "agreement": 0.6, "margin": 0.2, "mean_logprob": -0.9}
    assert keep_reason(rec, _cfg("synth.min_agreement=0.6").synth) is None  # today's rule
    assert keep_reason(rec, _cfg("synth.min_agreement=0.8").synth) == "low_agreement"
    assert keep_reason({**rec, "majority": MISSING}, _cfg().synth) == "no_answer"
    margin = _cfg("synth.min_confidence={margin: 0.5}").synth
    assert keep_reason(rec, margin) == "low_margin"
    assert keep_reason({**rec, "margin": 0.5}, margin) is None
    logprob = _cfg("synth.min_confidence={logprob: -0.8}").synth
    assert keep_reason(rec, logprob) == "low_logprob"
    assert keep_reason({**rec, "mean_logprob": -0.8}, logprob) is None
    assert keep_reason({**rec, "mean_logprob": None}, logprob) == "unknown_logprob"
    both = _cfg("synth.min_confidence={margin: 0.1, logprob: -1.0}").synth
    assert keep_reason(rec, both) is None


def _scored(row: dict, logprobs: list[float]) -> dict:
    """A record as shards are written now: with per-sample logprobs and the scores."""
    rec = _record(row)
    v = vote(NS, list(rec["samples"]), list(rec["overlong_flags"]), logprobs)
    return {
        **rec,
        "sample_logprobs": logprobs,
        "margin": v["margin"],
        "mean_logprob": v["mean_logprob"],
    }


def test_shards_written_before_the_scores_still_assemble(tmp_path, caplog):
    """An old shard (no margin, no logprobs) beside a new one: the old margins are
    recomputed from the stored answers, their logprobs are unknown; a logprob rule keeps
    none of the old inputs and says so, a margin rule treats old and new alike."""
    shards = tmp_path / "shards"
    shards.mkdir()
    pd.DataFrame([_record(r) for r in POOL[:2]]).to_parquet(shards / "00000.parquet")  # old
    new = [_scored(POOL[2], [-1.0, -1.0, -1.0]), _scored(POOL[3], [-1.0, -1.0, -1.0])]
    pd.DataFrame(new).to_parquet(shards / "00001.parquet")
    out = tmp_path / "margin"
    stats = assemble(NS, POOL, shards, _cfg("synth.min_confidence={margin: 0.3}"), out)
    labels = pd.read_parquet(out / "labels.parquet")
    assert labels["margin"].tolist() == pytest.approx([1 / 3, 1 / 3, 0.0, 0.0])
    # a, b: old, unknown; c: a tie, its first answer the majority; d: no answer
    assert labels["mean_logprob"].isna().tolist() == [True, True, False, True]
    assert stats["kept"] == 2 and stats["min_confidence"] == {"margin": 0.3}
    with caplog.at_level("WARNING"):
        stats = assemble(NS, POOL, shards, _cfg("synth.min_confidence={logprob: -2}"), tmp_path)
    assert stats["kept"] == 0
    assert stats["rejected"] == {"low_agreement": 1, "no_answer": 1, "unknown_logprob": 2}
    assert "2 input(s) from shards written before log-probabilities" in caplog.text


def test_the_stats_and_the_report_hold_the_confidence_curves(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    recs = [
        _scored(POOL[0], [-0.5, -0.7, -2.0]),
        _scored(POOL[1], [-1.5, -1.9, -0.1]),
        _scored(POOL[2], [-1.0, -1.0, -1.0]),
        _scored(POOL[3], [-1.0, -1.0, -1.0]),
    ]
    pd.DataFrame(recs).to_parquet(shards / "00000.parquet")
    stats = assemble(NS, POOL, shards, _cfg(), tmp_path)
    labels = pd.read_parquet(tmp_path / "labels.parquet")
    assert labels["mean_logprob"].tolist()[:2] == pytest.approx([-0.6, -1.7])
    conf = stats["confidence"]
    assert conf["rows"] == 3  # a, b, c have gold
    # logprob: a (-0.6, right), then c (-1.0, "positive" on a tie: wrong), b (-1.7, right)
    points = conf["rules"]["logprob"]["points"]
    assert [(p["kept"], p["correct"]) for p in points] == [(1, 1), (2, 1), (3, 2)]
    assert [p["threshold"] for p in points] == pytest.approx([-0.6, -1.0, -1.7])
    assert points[-1]["yield"] == 1.0
    assert all(p["accuracy"] is None for p in points)  # fewer than 10 kept rows
    # margin: a and b tie at 1/3 (one threshold keeps both), then c at 0
    margin = conf["rules"]["margin"]["points"]
    assert [(p["kept"], p["correct"]) for p in margin] == [(2, 2), (3, 2)]
    assert stats["gold_kept"] == 2 and stats["gold_yield"] == pytest.approx(2 / 3)
    report = (tmp_path / "report.md").read_text()
    assert "Confident labels: kept-label accuracy vs yield" in report
    assert "too few (1/1, score ≥ -0.600, yield 0.33)" in report  # logprob: a alone
    assert "No threshold keeps 10 gold-labeled inputs" in report
    assert not (tmp_path / "plots" / "confidence.png").exists()
    assert (tmp_path / "confidence.csv").is_file()


def test_the_report_draws_the_curves_where_enough_labels_are_kept(tmp_path):
    """24 inputs with gold: 12 unanimous and right (logprob -0.2), 12 split 2-1 of which
    half are wrong (logprob -1.5): every rule keeps the unanimous ones first."""
    shards = tmp_path / "shards"
    shards.mkdir()
    pool, recs = [], []
    for i in range(24):
        sure = i < 12
        gold = "positive" if sure or i % 2 else "negative"
        row = {"id": f"x{i}", "input": f"News {i}.", "gold": gold}
        texts = ["Answer: positive"] * 3 if sure else ["Answer: positive"] * 2 + ["hmm"]
        lps = [-0.2] * 3 if sure else [-1.5] * 3
        v = vote(NS, texts, [False] * 3, lps)
        recs.append(
            {
                **row,
                "samples": texts,
                "overlong_flags": [False] * 3,
                "sample_logprobs": lps,
                **{k: v[k] for k in ("answers", "majority", "agreement", "margin", "mean_logprob")},
                **{k: v[k] for k in ("strict_missing", "flexible_rescued", "unextractable")},
                "kept": True,
            }
        )
        pool.append(row)
    pd.DataFrame(recs).to_parquet(shards / "00000.parquet")
    stats = assemble(NS, pool, shards, _cfg("synth.min_agreement=0.6"), tmp_path)
    ops = {(o["rule"], o["target_yield"]): o for o in stats["confidence"]["operating_points"]}
    assert ops[("logprob", 0.5)]["accuracy"] == 1.0 and ops[("logprob", 0.5)]["kept"] == 12
    assert ops[("margin", 1.0)]["accuracy"] == 0.75 and ops[("margin", 1.0)]["kept"] == 24
    assert ops[("agreement", 0.25)]["kept"] == 12  # a tie: no threshold keeps 6 of them
    assert (tmp_path / "plots" / "confidence.png").stat().st_size > 1000
    csv = pd.read_csv(tmp_path / "confidence.csv")
    assert csv["rule"].tolist() == ["agreement", "vote margin", "mean log-prob"]
    assert csv["yield ≥ 100%"].tolist()[1].startswith("0.750 (18/24")
