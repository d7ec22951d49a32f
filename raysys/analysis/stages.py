"""The pipeline's evaluated models on the same test rows: baselines, `constant` marks and
paired comparisons, each stage against the base model and against the stage before it
(e.g. dpo vs sft: what DPO changed), Holm-corrected across tasks per comparison.

The predictions live where each evaluation stage wrote them: `<run>/<eval stage dir>/
predictions.parquet` (base rows with adapter "", a stage's with its model name), or for a
sweep as the SFT stage the sweep's `test_predictions.parquet` (base rows "base", the
chosen trial's under its id, recorded in the sft stage's stage.json).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import pandas as pd

from raysys.analysis.evidence import (
    COMPARISON_FIELDS,
    TaskRows,
    add_correction,
    baseline_values,
    compare,
    comparison_values,
    task_rows,
)
from raysys.analysis.paired import NO_TEST
from raysys.io import read_parquet

log = logging.getLogger(__name__)

BASE = "base"
_KEEP = ["task", "id", "input", "gold", "pred"]
EVIDENCE_COLUMNS = [
    "majority_answer",
    "majority",
    "random",
    "mde",
    "constant",
    *[f"vs_base_{f}" for f in COMPARISON_FIELDS],
    "vs_prev_stage",
    *[f"vs_prev_{f}" for f in COMPARISON_FIELDS],
]


def stage_predictions(run_dir: Path, summary: dict[str, Any]) -> pd.DataFrame | None:
    """One long frame (adapter = the model's stage name, task, id, input, gold, pred) of
    every evaluated model that still has its predictions on disk; None without any."""
    dirs = {s["stage"]: s["dir"] for s in summary.get("stages", [])}
    frames = []
    for model in summary.get("models", []):
        try:
            found = _model_predictions(Path(run_dir), summary, dirs, model)
        except (OSError, KeyError, ValueError) as err:  # a moved or partial run: say, go on
            log.warning("stage %s: no test predictions for the report (%s)", model["stage"], err)
            continue
        if found is not None and not found.empty:
            frames.append(found.assign(adapter=model["stage"]))
    return pd.concat(frames, ignore_index=True) if frames else None


def stage_evidence(stages: pd.DataFrame, predictions: pd.DataFrame | None) -> pd.DataFrame:
    """`stages` (one row per stage x task, in evaluation order) with EVIDENCE_COLUMNS:
    the task's baselines, whether the stage's model is constant, and its paired tests
    against the base model and the previous stage (NaN where predictions are missing)."""
    order = list(dict.fromkeys(stages["stage"]))
    by_task = {t: task_rows(predictions, t) for t in dict.fromkeys(stages["task"])}
    rows = []
    for rec in stages.to_dict("records"):
        found = by_task[rec["task"]]
        rows.append(rec | _evidence(found, rec["stage"], order))
    out = pd.DataFrame(rows, columns=[*stages.columns, *EVIDENCE_COLUMNS])
    return _correct(out)


def _evidence(found: TaskRows | None, stage: str, order: list[str]) -> dict[str, Any]:
    base = baseline_values(found)
    out: dict[str, Any] = {k: base[k] for k in ("majority_answer", "majority", "random", "mde")}
    out["constant"] = (
        found.constant([stage]) if found is not None and found.has([stage]) else math.nan
    )
    prev = _previous(stage, order)
    out["vs_prev_stage"] = prev
    out |= comparison_values(
        "vs_base", compare(found, [BASE], [stage]) if stage != BASE else NO_TEST
    )
    out |= comparison_values("vs_prev", compare(found, [prev], [stage]) if prev else NO_TEST)
    return out


def _previous(stage: str, order: list[str]) -> str | None:
    """The stage evaluated just before, unless that is the base model (vs base covers it)
    or there is none. A pipeline run without `eval_base` starts at its first stage."""
    i = order.index(stage)
    return order[i - 1] if i >= 1 and order[i - 1] != BASE else None


def _correct(frame: pd.DataFrame) -> pd.DataFrame:
    """Holm across tasks, one family per comparison (e.g. "dpo vs sft" over all tasks)."""
    parts = []
    for _, part in frame.groupby("stage", sort=False):
        for prefix in ("vs_base", "vs_prev"):
            part = add_correction(part, prefix)
        parts.append(part)
    return pd.concat(parts).loc[frame.index] if parts else frame


def _model_predictions(
    run_dir: Path, summary: dict[str, Any], dirs: dict[str, str], model: dict[str, Any]
) -> pd.DataFrame | None:
    if summary.get("sweep_dir") and model["eval"] == "sft":
        path = _sweep_dir(run_dir, summary, dirs) / "test_predictions.parquet"
        wanted = [BASE] if model["stage"] == BASE else [_chosen_trial(run_dir, dirs)]
    else:
        path = run_dir / dirs[model["eval"]] / "predictions.parquet"
        wanted = ["", BASE] if model["stage"] == BASE else [model["stage"]]
    if not path.is_file():
        raise OSError(f"{path} does not exist")
    preds = read_parquet(path)
    return preds.loc[preds["adapter"].isin(wanted), _KEEP]


def _sweep_dir(run_dir: Path, summary: dict[str, Any], dirs: dict[str, str]) -> Path:
    """The recorded sweep directory, else where the pipeline puts it (a run moved or
    pulled from an object store keeps its layout, not its absolute paths)."""
    recorded = Path(summary["sweep_dir"])
    return recorded if recorded.is_dir() else run_dir / dirs["sft"] / "sweep" / "grid"


def _chosen_trial(run_dir: Path, dirs: dict[str, str]) -> str:
    """The sweep trial the pipeline continued from, as the sft stage recorded it."""
    stage = json.loads((run_dir / dirs["sft"] / "stage.json").read_text(encoding="utf-8"))
    return str(stage["result"]["trial_id"])
