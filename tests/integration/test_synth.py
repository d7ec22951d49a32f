"""CoT synthesis: voting, outputs, the test-split guard, and resume after a crash."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from raysys.cli import main
from raysys.config import SynthConfig, load_config
from raysys.errors import UserError
from raysys.synth.cot import assemble, build_pool, vote
from raysys.tasks import build_splits, get_task

TASK = get_task("fomc_stance")


def test_vote_uses_strict_then_flexible_and_reports_agreement():
    texts = [
        "Rates must rise. Answer: hawkish",
        "Inflation is high so the stance is hawkish overall.",  # flexible rescue
        "Answer: dovish",
        "no idea",
    ]
    v = vote(TASK, texts, [False, False, False, True])
    assert v["majority"] == "hawkish" and v["agreement"] == 0.5
    assert v["strict_missing"] == 2 and v["flexible_rescued"] == 1 and v["unextractable"] == 1


def _cfg(*over: str) -> SynthConfig:
    return load_config(SynthConfig, None, ["model.source=tiny-random", *over])


def test_assemble_keeps_agreeing_labels_writes_sft_dpo_and_gold_accuracy(tmp_path):
    cfg = _cfg("synth.min_agreement=0.6", "synth.samples=5")
    pool = [
        {"id": "a", "input": "The Committee will raise rates.", "gold": "hawkish"},
        {"id": "b", "input": "The Committee will cut rates.", "gold": "dovish"},
        {"id": "c", "input": "Rates unchanged.", "gold": "neutral"},
    ]

    def rec(i, texts):
        v = vote(TASK, texts, [False] * len(texts))
        return {
            "id": i,
            "input": "",
            "gold": next(p["gold"] for p in pool if p["id"] == i),
            "samples": texts,
            "overlong_flags": [False] * len(texts),
            "kept": v["majority"] != "missing" and v["agreement"] >= 0.6,
            **v,
        }

    shards = tmp_path / "shards"
    shards.mkdir()
    good = ["Because X. Answer: hawkish"] * 4 + ["Answer: dovish"]
    wrong = ["Answer: hawkish"] * 3 + ["Answer: dovish"] * 2  # kept, but wrong vs gold
    split = ["Answer: hawkish", "Answer: dovish", "Answer: neutral", "???", "???"]
    pd.DataFrame([rec("a", good), rec("b", wrong)]).to_parquet(shards / "00000.parquet")
    pd.DataFrame([rec("c", split)]).to_parquet(shards / "00001.parquet")
    clock = {"generation": 2.0, "extraction_and_vote": 0.5, "writing": 0.0}
    st = assemble(TASK, pool, shards, cfg, tmp_path, clock)
    assert (st["inputs"], st["kept"], st["sft_rows"]) == (3, 2, 2)
    assert st["seconds"]["generation"] == 2.0 and 0 < st["seconds"]["writing"] < 5
    assert sum(st["time_share"].values()) == pytest.approx(1.0, abs=1e-3)
    assert 0 < st["kept_rows_per_minute"] <= 2 * 60 / 2.5
    assert st["rejected"] == {"low_agreement": 1}  # inputs = kept + rejected, with reasons
    assert st["kept_label_accuracy"] == 0.5 and st["extraction"]["unextractable"] == 2
    sft = pd.read_parquet(tmp_path / "sft.parquet")
    assert list(sft["id"]) == ["a", "b"]
    assert sft.iloc[0]["messages"][-1]["content"] == "Because X. Answer: hawkish"
    assert "step by step" in sft.iloc[0]["messages"][0]["content"]
    dpo = pd.read_parquet(tmp_path / "dpo.parquet")
    assert set(dpo["id"]) == {"a", "b"} and set(dpo["reason"]) == {"wrong"}
    assert st["by_threshold"]["1.0"]["yield"] == 0.0
    labels = pd.read_parquet(tmp_path / "labels.parquet")
    assert labels["margin"].tolist() == pytest.approx([0.6, 0.2, 0.0])  # 4-1, 3-2, 1-1-1
    assert st["confidence"]["rules"]["margin"]["scored"] == 3
    assert (tmp_path / "report.md").is_file() and (tmp_path / "confidence.csv").is_file()
    # a margin rule rejects the narrow, wrong majority that agreement alone kept
    strict = assemble(
        TASK, pool, shards, _cfg("synth.min_confidence={margin: 0.5}"), tmp_path / "strict"
    )
    assert (strict["kept"], strict["kept_label_accuracy"]) == (1, 1.0)
    assert strict["rejected"] == {"low_agreement": 1, "low_margin": 1}


def test_generated_pool_is_disjoint_from_the_test_split():
    cfg = _cfg("synth.size=80", "synth.test_size=120")
    pool, info = build_pool(TASK, cfg, 0)
    test = {
        " ".join(r["input"].lower().split())
        for r in build_splits("fomc_stance", {"test": 120}, 0)["test"]
    }
    assert len(pool) == 80 and not {" ".join(r["input"].lower().split()) for r in pool} & test
    assert len({r["id"] for r in pool}) == 80


def test_user_pool_overlapping_the_test_split_is_refused(tmp_path):
    test = build_splits("fomc_stance", {"test": 5}, 0)["test"]
    p = tmp_path / "in.jsonl"
    pd.DataFrame([{"id": "x", "input": test[2]["input"]}]).to_json(p, orient="records", lines=True)
    with pytest.raises(UserError, match="also in the fomc_stance test split"):
        build_pool(TASK, _cfg(f"synth.inputs={p}", "synth.test_size=5"), 0)


def test_synth_resumes_after_a_crash_with_one_output_per_input(ray_local, tiny_model, tmp_path):
    args = [
        "synth",
        "model.source=tiny-random",
        "model.dtype=float32",
        f"run.storage_path={tmp_path}",
        "run.run_id=s1",
        "synth.size=6",
        "synth.samples=3",
        "synth.shard_size=2",
        "generate.max_new_tokens=8",
    ]
    # a real process that dies after its first shard, as a killed job would
    env = {"RAYSYS_FAULTS": "synth_crash_after_shards=1", "PATH": "/usr/bin:/bin"}
    import os

    env = {**os.environ, **env}
    code = "import sys; from raysys.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True
    )
    assert proc.returncode != 0
    shards = tmp_path / "synth" / "s1" / "synth" / "shards"
    assert len(list(shards.glob("*.parquet"))) == 1
    assert main(args) == 0  # resumes: labels the other 4 inputs only
    labels = pd.read_parquet(tmp_path / "synth" / "s1" / "synth" / "labels.parquet")
    assert len(labels) == 6 and labels["id"].is_unique
    assert len(list(shards.glob("*.parquet"))) == 3
    assert all(len(s) == 3 for s in labels["samples"])
    # every sample's mean raw token logprob, from the engine; the scores of the vote
    lps = [v for row in labels["sample_logprobs"] for v in row]
    assert len(lps) == 18 and all(v is not None and v <= 0 for v in lps)
    assert {"margin", "mean_logprob"} <= set(labels.columns)
    st = json.loads((tmp_path / "synth" / "s1" / "synth" / "stats.json").read_text())
    assert st["inputs"] == 6 and st["gold_rows"] == 6 and "agreement_distribution" in st
    assert set(st["confidence"]["rules"]) == {"agreement", "margin", "logprob"}
    report = (tmp_path / "synth" / "s1" / "synth" / "report.md").read_text()
    assert "Confident labels: kept-label accuracy vs yield" in report
    # the same inputs without the crash: the same samples, labels and statistics
    assert main([*args[:-5], "run.run_id=s2", *args[-4:]]) == 0
    again = pd.read_parquet(tmp_path / "synth" / "s2" / "synth" / "labels.parquet")
    cols = ["id", "samples", "majority", "agreement", "margin", "kept"]
    pd.testing.assert_frame_equal(labels[cols], again[cols])
    st2 = json.loads((tmp_path / "synth" / "s2" / "synth" / "stats.json").read_text())
    timing = {"seconds", "time_share", "kept_rows_per_minute"}  # only a whole-pool run has them
    assert {k: v for k, v in st.items() if k not in timing} == {
        k: v for k, v in st2.items() if k not in timing
    }
