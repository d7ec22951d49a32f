"""`raysys.analysis.stages`: the pipeline's test predictions gathered from where each
evaluation stage (or a sweep as the SFT stage) wrote them, and per stage and task the
baselines, the `constant` mark and the paired tests against base and the stage before."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from raysys.analysis.stages import EVIDENCE_COLUMNS, _previous, stage_evidence, stage_predictions

TASK = "news_sentiment"
LABELS = ["positive", "negative", "neutral"]
GOLDS = [LABELS[i % 3] for i in range(45)]


def _preds(right: float, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [g if rng.random() < right else str(rng.choice(LABELS)) for g in GOLDS]


def _write(folder: Path, adapter: str, preds: list[str], name: str = "predictions.parquet") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(
        {
            "adapter": adapter,
            "task": TASK,
            "id": [f"r{i}" for i in range(45)],
            "input": "x",
            "gold": GOLDS,
            "pred": preds,
        }
    )
    path = folder / name
    if path.exists():
        frame = pd.concat([pd.read_parquet(path), frame])
    frame.to_parquet(path, index=False)


MODELS = {"base": _preds(0.1, 0), "sft": _preds(0.7, 1), "dpo": _preds(0.95, 2)}


def _summary(stages: dict[str, str]) -> dict:
    return {
        "stages": [{"stage": s, "dir": d} for s, d in stages.items()],
        "models": [
            {"stage": "base", "eval": "eval_base"},
            {"stage": "sft", "eval": "eval_sft"},
            {"stage": "dpo", "eval": "eval_dpo"},
        ],
    }


def test_stage_predictions_from_each_evaluation_folder(tmp_path):
    _write(tmp_path / "eval_base-1", "", MODELS["base"])  # the base model's rows: adapter ""
    _write(tmp_path / "eval_sft-2", "sft", MODELS["sft"])
    _write(tmp_path / "eval_sft-2", "other", MODELS["dpo"])  # not this stage's model
    _write(tmp_path / "eval_dpo-3", "dpo", MODELS["dpo"])
    summary = _summary(
        {"eval_base": "eval_base-1", "eval_sft": "eval_sft-2", "eval_dpo": "eval_dpo-3"}
    )
    got = stage_predictions(tmp_path, summary)
    assert got["adapter"].value_counts().to_dict() == {"base": 45, "sft": 45, "dpo": 45}
    assert got[got["adapter"] == "sft"]["pred"].tolist() == MODELS["sft"]
    assert set(got.columns) == {"adapter", "task", "id", "input", "gold", "pred"}


def test_a_stage_whose_predictions_are_gone_is_left_out(tmp_path, caplog):
    _write(tmp_path / "eval_base-1", "", MODELS["base"])
    summary = _summary({"eval_base": "eval_base-1", "eval_sft": "eval_sft-2"})
    got = stage_predictions(tmp_path, summary)
    assert set(got["adapter"]) == {"base"}
    assert "stage sft: no test predictions for the report" in caplog.text
    assert "stage dpo: no test predictions" in caplog.text  # no folder recorded at all
    assert stage_predictions(tmp_path, {"stages": [], "models": []}) is None


def test_a_sweep_as_the_sft_stage_reads_its_chosen_trial(tmp_path):
    grid = tmp_path / "sft-9" / "sweep" / "grid"
    _write(grid, "base", MODELS["base"], "test_predictions.parquet")
    _write(grid, "t-chosen", MODELS["sft"], "test_predictions.parquet")
    _write(grid, "t-other", MODELS["dpo"], "test_predictions.parquet")
    (tmp_path / "sft-9" / "stage.json").write_text(json.dumps({"result": {"trial_id": "t-chosen"}}))
    summary = {
        "sweep_dir": "/moved/elsewhere/grid",  # recorded before the run moved
        "stages": [{"stage": "sft", "dir": "sft-9"}],
        "models": [{"stage": "base", "eval": "sft"}, {"stage": "sft", "eval": "sft"}],
    }
    got = stage_predictions(tmp_path, summary)
    assert got.groupby("adapter")["pred"].apply(list).to_dict() == {
        "base": MODELS["base"],
        "sft": MODELS["sft"],
    }


def _long() -> pd.DataFrame:
    return pd.concat(
        pd.DataFrame(
            {"adapter": m, "task": TASK, "id": range(45), "input": "x", "gold": GOLDS, "pred": p}
        )
        for m, p in MODELS.items()
    )


def test_previous_is_the_stage_before_unless_that_is_the_base_model():
    order = ["base", "sft", "dpo", "sft_r1"]
    assert [_previous(s, order) for s in order] == [None, None, "sft", "dpo"]
    # base not evaluated (pipeline.stages.eval_base: false): dpo is still paired with sft
    assert [_previous(s, order[1:]) for s in order[1:]] == [None, "sft", "dpo"]


def test_stage_evidence_pairs_each_stage_with_base_and_the_stage_before():
    stages = pd.DataFrame({"stage": ["base", "sft", "dpo"], "task": TASK, "main": [0.1, 0.7, 0.9]})
    out = stage_evidence(stages, _long()).set_index("stage")
    assert list(out.columns) == ["task", "main", *EVIDENCE_COLUMNS]
    assert out["majority_answer"].nunique() == 1 and out["mde"].iloc[0] == pytest.approx(
        1.98 / math.sqrt(45), rel=0.01
    )
    assert math.isnan(out.loc["base", "vs_base_diff"]) and out.loc["base", "vs_base_test"] == "none"
    assert out.loc["sft", "vs_base_diff"] > 0.3 and out.loc["sft", "vs_base_n"] == 45
    assert pd.isna(out.loc["sft", "vs_prev_stage"]) and out.loc["dpo", "vs_prev_stage"] == "sft"
    assert out.loc["dpo", "vs_prev_diff"] > 0 and out.loc["dpo", "vs_prev_p"] < 0.05
    assert out.loc["sft", "vs_base_p_adj"] == pytest.approx(out.loc["sft", "vs_base_p"])  # one task
    assert (out["constant"] == 0).all()


def test_stage_evidence_without_predictions_is_nan():
    stages = pd.DataFrame({"stage": ["base", "sft"], "task": TASK, "main": [0.1, 0.7]})
    out = stage_evidence(stages, None)
    assert out[["majority", "mde", "constant", "vs_base_diff"]].isna().all().all()
    assert len(out) == 2
