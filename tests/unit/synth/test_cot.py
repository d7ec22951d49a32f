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
