"""The study's DPO finding in miniature, on the tiny random model: an SFT model that
learned to run on past the generation limit fires the DPO gate by its overlength alone,
the mined pairs reject its overlong outputs, and DPO trains against them.

The planted behaviour. The training rows carry reasoning (as a task with a
`columns.reasoning` column does) that answers and keeps re-checking, so their SFT target is
`RAMBLE` ("Answer: X." and "Let me check that again." on lines of their own, four answers,
then EOS);
the rows are well-formed (the EOS guard, `preflight`, passes them), but the turn is
longer than the probe's generation limit (`LIMIT` new tokens), so a model that learned
the habit is cut before it ends: the study's overlong outputs (it also loops). A random
2-layer model does not learn a varied chain of thought in a few steps (tried: a 60-token
CoT at lr 2e-2 for 24 steps came out as an unextractable loop), but it learns this
re-checking loop in 20 steps at lr 2e-2, batch 4: its greedy outputs then read
"Answer: positive. Answer: positive. ..." (it does not learn the labels; the answer is
extractable, so the wrong-format rate stays at 0 and only overlength can fire the gate).

Only the set-up SFT runs in-process (TRL's trainer as `build_trainer` makes it, ~10 s)
rather than on Ray Train (~60 s on 2 busy cores); the path under test is the pipeline's:
the hf engine's evaluation (`evaluate_tasks`), the gate (`gate_and_pairs`, which the
`dpo_probe` stage calls), and LoRA DPO on Ray Train (`run_training`, the `dpo` stage's
trainer) with the study's r=16, alpha=32, beta=1 on top of the SFT adapter.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from raysys.config import DpoGateSection, TrainConfig, load_config
from raysys.config.sections import GenerateSection
from raysys.tasks import build_splits, get_task

# The rows' reasoning; every step on its own line, as the target joins it to the answer
# line (with " " inside and "\n" before the last answer, the model learned to stop after
# one re-check)
RECHECK = ("Answer: {g}.\nLet me check that again.\n" * 3).strip()
RAMBLE = RECHECK + "\nAnswer: {g}"  # the SFT target it makes (`Task.target`)
LIMIT = 16  # probe generation limit: below the ramble's length, above a concise answer's
ROWS = 16


def _cfg(method: str, *overrides: str) -> TrainConfig:
    base = [
        "data.path=unused.parquet",
        "model.source=tiny-random",
        f"train.method={method}",
        "train.batch_size=4",
        "train.per_device_batch_size=4",
        "train.warmup_ratio=0",
        "train.report_every_steps=1",
        "train.save_steps=100",
    ]
    return load_config(TrainConfig, None, [*base, *overrides])


def test_a_learned_overlong_habit_fires_the_gate_and_dpo_trains_against_it(
    ray_local, tiny_model, tmp_path
):
    from raysys.data.mixing import to_messages
    from raysys.evaluate.scoring import evaluate_tasks
    from raysys.pipeline.dpo import gate_and_pairs
    from raysys.train.launch import preflight, run_training
    from raysys.train.spec import TrainSpec
    from raysys.train.trainer import build_trainer

    task = get_task("news_sentiment")
    rows = [
        {**r, "reasoning": RECHECK.format(g=r["gold"])}  # as a `columns.reasoning` task has
        for r in build_splits("news_sentiment", {"train": ROWS}, 5)["train"]
    ]
    sft_rows = [{"id": r["id"], "task": r["task"], "messages": to_messages(r)} for r in rows]
    assert sft_rows[0]["messages"][-1]["content"] == RAMBLE.format(g=rows[0]["gold"])
    sft_path = tmp_path / "sft.parquet"
    pd.DataFrame(sft_rows).to_parquet(sft_path)

    # --- plant the habit: SFT on the rambling turns (EOS intact: the guard passes them)
    spec = TrainSpec.from_section(
        _cfg("sft", "train.max_steps=20", "train.learning_rate=2e-2", "train.lora.r=8").train,
        model_path=tiny_model,
        train_path=str(sft_path),
        dtype="float32",
        seed=0,
    )
    preflight(str(sft_path), tiny_model, spec)
    trainer = build_trainer(spec, str(tmp_path / "sft_run"))
    trainer.train()
    sft_adapter = tmp_path / "sft"
    trainer.save_model(str(sft_adapter))
    tok = trainer.processing_class
    ramble_tokens = len(tok(RAMBLE.format(g="negative"))["input_ids"])
    concise_tokens = len(tok(task.answer_line({"gold": "negative"}))["input_ids"])
    assert concise_tokens < LIMIT < ramble_tokens  # the limit cuts the habit, not an answer

    # --- the gate: the SFT model answers the training inputs (greedy, LIMIT new tokens)
    probe_dir = tmp_path / "dpo_probe"
    tasks = {task.name: (task, rows)}
    gen = GenerateSection(engine="hf", max_new_tokens=LIMIT, batch_size=ROWS)
    table = evaluate_tasks(
        tasks, tiny_model, {"sft": str(sft_adapter)}, gen, "float32", probe_dir, False
    )
    gate = DpoGateSection(probe_size=ROWS)  # the defaults: thresholds 0.1, not forced
    res = gate_and_pairs(tasks, table, probe_dir, gate)
    preds = pd.read_parquet(probe_dir / "predictions.parquet")
    # the learned habit, not noise: the answer, then the answer again, cut at the limit
    assert (preds["generated_text"].str.count("Answer:") >= 2).mean() >= 0.75
    assert preds["overlong"].mean() >= 0.75
    d = res["decision"]
    assert d["run"] and d["triggered"] and not d["forced"]
    # fired by overlength alone: the answers are extractable (wrong format below threshold)
    assert res["overlength_ratio"] > gate.overlength_threshold >= res["missing_rate"]
    assert table.iloc[0]["overlength_ratio"] == res["overlength_ratio"]

    # --- the pairs: the overlong generation rejected, a concise correct answer chosen
    pairs = pd.read_parquet(probe_dir / "pairs.parquet")
    assert len(pairs) == res["pairs"] >= ROWS * 3 // 4
    stats = res["pair_stats"][task.name]
    assert stats["reasons"]["overlong"] == len(pairs)
    by_id = preds.set_index("id")
    gold = {r["id"]: r["gold"] for r in rows}
    for p in pairs.to_dict("records"):
        rejected, chosen = p["rejected"][0]["content"], p["chosen"][0]["content"]
        g = by_id.loc[p["id"]]
        assert p["reason"] == "overlong" and rejected == g["generated_text"]
        assert g["overlong"] and g["num_generated_tokens"] == LIMIT
        # no SFT output was good: the answer line, not the reason-first target (as long as
        # the rejected output)
        assert chosen == f"Answer: {gold[p['id']]}" == task.answer_line(by_id.loc[p["id"]])
        assert len(tok(chosen)["input_ids"]) < LIMIT

    # --- DPO on the mined pairs, the study's settings, on top of the SFT adapter
    dpo_out = tmp_path / "dpo"
    dpo_cfg = _cfg(
        "dpo",
        "train.max_steps=2",
        "train.learning_rate=1e-3",
        "train.lora.r=16",
        "train.lora.alpha=32",
        "train.dpo.beta=1.0",
        f"train.init_adapter={sft_adapter}",
    )
    final = run_training(
        str(probe_dir / "pairs.parquet"), tiny_model, dpo_cfg.train, "float32", dpo_out, 0
    )
    metrics = json.loads((dpo_out / "metrics.json").read_text())
    hist = metrics["history"]
    assert [h["step"] for h in hist] == [1, 2]
    # step 1: the new LoRA is zero, the policy is the SFT model (the reference): log 2
    assert hist[0]["loss"] == pytest.approx(math.log(2), abs=1e-4)
    assert all(k in h for h in hist for k in ("rewards/margins", "logps/chosen", "logps/rejected"))
    assert hist[1]["rewards/margins"] > 0  # the overlong outputs lose to the concise ones
    assert hist[1]["logps/rejected"] < hist[0]["logps/rejected"]
    assert final["step"] == 2 and metrics["final"]["train_loss"] > 0
    combined = json.loads((dpo_out / "adapter" / "adapter_config.json").read_text())
    assert (combined["r"], metrics["final"]["combined_adapter"]["r"]) == (8 + 16, 8 + 16)
