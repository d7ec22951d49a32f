"""The pipeline report and headline on a synthetic run directory (no Ray, no model):
baselines and `constant` next to each stage, each stage paired against the base model
and against the stage before it, read from where the evaluation stages wrote them."""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from raysys.analysis.rowscore import scorer_for
from raysys.pipeline.report import headline, report_table, write_pipeline_report

NS, PD = "news_sentiment", "price_direction"
N = 50
GOLDS = {NS: ["positive"] * 25 + ["negative"] * 15 + ["neutral"] * 10, PD: ["up", "down"] * 25}


def _preds(task: str, right: float, name: str) -> list[str]:
    if right < 0:  # the base model of the tiny runs: never an extractable answer
        return ["missing"] * N
    rng = np.random.default_rng(zlib.crc32(f"{name}{task}".encode()))
    labels = scorer_for(task).labels
    return [g if rng.random() < right else str(rng.choice(labels)) for g in GOLDS[task]]


def _frame(adapter: str, preds: dict[str, list[str]]) -> pd.DataFrame:
    return pd.concat(
        pd.DataFrame(
            {
                "adapter": adapter,
                "task": t,
                "id": [f"{t}-{i}" for i in range(N)],
                "input": "x",
                "gold": GOLDS[t],
                "generated_text": "",
                "pred": p,
                "pred_lenient": p,
            }
        )  # fmt: skip
        for t, p in preds.items()
    )


def _stage(name: str, folder: str) -> dict:
    return {"stage": name, "title": "", "dir": folder, "seconds": 1.0, "skipped": False}


def _model(stage: str, eval_stage: str, preds: dict[str, list[str]]) -> dict:
    results = [
        {"task": t, "n": N, "main": scorer_for(t).score(GOLDS[t], p), "missing_rate": 0.0}
        for t, p in preds.items()
    ]
    return {"stage": stage, "eval": eval_stage, "results": results, "train": None}


def _run(tmp_path: Path) -> tuple[Path, dict]:
    """base (all missing) -> sft (good) -> dpo (sft's answers on price_direction, better
    on news_sentiment), each evaluation in its own stage folder."""
    base = {NS: _preds(NS, -1, "b"), PD: _preds(PD, -1, "b")}
    sft = {NS: _preds(NS, 0.6, "s"), PD: _preds(PD, 0.8, "s")}
    dpo = {NS: _preds(NS, 0.95, "d"), PD: sft[PD]}
    stages, models = [], []
    for stage, eval_stage, adapter, preds in (
        ("base", "eval_base", "", base),
        ("sft", "eval_sft", "sft", sft),
        ("dpo", "eval_dpo", "dpo", dpo),
    ):
        d = tmp_path / f"{eval_stage}-0123456789"
        d.mkdir()
        _frame(adapter, preds).to_parquet(d / "predictions.parquet", index=False)
        stages.append(_stage(eval_stage, d.name))
        models.append(_model(stage, eval_stage, preds))
    return tmp_path, {"model": "tiny", "tasks": [NS, PD], "stages": stages, "models": models}


def test_pipeline_report_has_baselines_constant_and_paired_stages(tmp_path):
    run_dir, summary = _run(tmp_path)
    md_path, _ = write_pipeline_report(run_dir, summary)
    md = md_path.read_text(encoding="utf-8")
    assert "Is a stage better? (paired tests)" in md and "Holm" in md
    assert "## Overlap with evaluation splits" in md
    base_rows = [line for line in md.splitlines() if line.startswith(f"| base | {NS} |")]
    assert " constant |" in base_rows[0]  # answers nothing on every row
    csv = pd.read_csv(run_dir / "pipeline.csv")
    assert list(csv["stage"].unique()) == ["base", "sft", "dpo"]
    by = csv.set_index(["stage", "task"])
    assert by.loc[("base", NS), "constant"] == 1 and by.loc[("sft", NS), "constant"] == 0
    assert by.loc[("sft", NS), "majority"] == pytest.approx((2 * 0.5 / 1.5) / 3)
    assert by.loc[("sft", PD), "random"] == pytest.approx(0.5, abs=0.02)
    # sft vs base: a real gain; dpo vs sft on price_direction: the same answers, p = 1
    assert by.loc[("sft", NS), "vs_base_significant"]
    assert by.loc[("dpo", PD), "vs_prev_stage"] == "sft"
    assert by.loc[("dpo", PD), "vs_prev_diff"] == 0 and by.loc[("dpo", PD), "vs_prev_p"] == 1
    assert not by.loc[("dpo", PD), "vs_prev_significant"]
    assert by.loc[("dpo", NS), "vs_prev_p_adj"] >= by.loc[("dpo", NS), "vs_prev_p"]
    assert math.isnan(by.loc[("sft", NS), "vs_prev_p"])  # sft's previous is base: vs base
    assert "| price_direction | dpo vs sft | +0.000 |" in md  # no interval without spread


def test_without_the_base_model_each_stage_is_paired_with_the_one_before(tmp_path):
    """`pipeline.stages.eval_base: false` (configs/pipeline_dpo_finding.yaml): no `vs base`
    rows, and dpo is still compared with sft."""
    run_dir, summary = _run(tmp_path)
    summary["models"] = [m for m in summary["models"] if m["stage"] != "base"]
    summary["stages"] = [s for s in summary["stages"] if s["stage"] != "eval_base"]
    md = write_pipeline_report(run_dir, summary)[0].read_text(encoding="utf-8")
    assert "vs base" not in md and "vs base" not in headline(summary, run_dir)
    assert "| price_direction | dpo vs sft | +0.000 |" in md
    by = pd.read_csv(run_dir / "pipeline.csv").set_index(["stage", "task"])
    assert by.loc[("dpo", NS), "vs_prev_stage"] == "sft" and by.loc[("dpo", NS), "vs_prev_p"] < 0.05


def test_headline_with_and_without_the_run_directory(tmp_path):
    run_dir, summary = _run(tmp_path)
    text = headline(summary, run_dir)
    assert text.splitlines()[0] == "| task | base | sft | dpo | majority | random | n |"
    assert f"| {NS} | 0.000 constant |" in text
    assert "| task | comparison | Δ [95% CI] | p (Holm) | significant | MDE |" in text
    assert f"| {PD} | dpo vs sft | +0.000 | 1.000 | no |" in text
    plain = headline(summary)  # no predictions at hand: the scores alone
    assert "majority" not in plain and f"| {NS} | 0.000 |" in plain


def test_a_sweep_sft_stage_reads_the_sweep_predictions(tmp_path):
    sft_dir = tmp_path / "sft-abc"
    sweep_dir = sft_dir / "sweep" / "grid"
    sweep_dir.mkdir(parents=True)
    base = {NS: _preds(NS, 0.3, "b")}
    chosen = {NS: _preds(NS, 0.9, "t")}
    preds = pd.concat([_frame("base", base), _frame("all-s0", chosen), _frame("x-s0", base)])
    preds.to_parquet(sweep_dir / "test_predictions.parquet", index=False)
    (sft_dir / "stage.json").write_text(json.dumps({"result": {"trial_id": "all-s0"}}))
    summary = {
        "stages": [
            {"stage": "sft", "title": "", "dir": sft_dir.name, "seconds": 1.0, "skipped": False}
        ],  # fmt: skip
        "models": [_model("base", "sft", base), _model("sft", "sft", chosen)],
        "sweep_dir": "/elsewhere/moved",  # a pulled run: found by its layout instead
    }
    row = report_table(summary, tmp_path).set_index("stage").loc["sft"]
    assert row["vs_base_n"] == N and row["vs_base_significant"]
    assert row["vs_base_diff"] == pytest.approx(
        scorer_for(NS).score(GOLDS[NS], chosen[NS]) - scorer_for(NS).score(GOLDS[NS], base[NS])
    )


def test_missing_predictions_leave_the_scores_and_say_so(tmp_path):
    run_dir, summary = _run(tmp_path)
    for d in run_dir.glob("eval_*"):
        (d / "predictions.parquet").unlink()
    md_path, _ = write_pipeline_report(run_dir, summary)
    md = md_path.read_text(encoding="utf-8")
    assert "No test predictions found for the evaluated stages: no paired test." in md
    assert pd.read_csv(run_dir / "pipeline.csv")["majority"].isna().all()


def test_the_synthesis_section_draws_each_rounds_confidence_curves(tmp_path):
    from raysys.analysis.confidence import confidence_curves

    run_dir, summary = _run(tmp_path)
    labels = pd.DataFrame(
        {
            "majority_answered": True,
            "correct": [True] * 15 + [False] * 5,
            "agreement": [1.0] * 15 + [0.6] * 5,
            "margin": [0.8] * 15 + [0.2] * 5,
            "mean_logprob": [-0.2] * 15 + [-1.4] * 5,
        }
    )
    st = {"inputs": 20, "kept": 20, "yield": 1.0, "kept_label_accuracy": 0.75, "gold_yield": 1.0}
    st["confidence"] = confidence_curves(labels)
    no_gold = {"inputs": 5, "kept": 2, "yield": 0.4}
    summary["synthesis"] = [{"round": 1, "labeler": "sft", "tasks": {NS: st, PD: no_gold}}]
    md = write_pipeline_report(run_dir, summary)[0].read_text(encoding="utf-8")
    assert "### Confident labels: kept-label accuracy vs yield" in md
    assert (run_dir / "plots" / "confidence.png").stat().st_size > 1000
    csv = pd.read_csv(run_dir / "confidence.csv")
    assert set(csv["labels"]) == {f"round 1: {NS}"}  # the task without gold has no curve
    assert csv.set_index("rule").loc["vote margin", "yield ≥ 75%"].startswith("1.000 (15/15")
