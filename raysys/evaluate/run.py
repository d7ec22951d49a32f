"""Evaluate a model and any number of adapters on one task split, in one engine pass."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd

from raysys.data.io import write_json, write_parquet
from raysys.engines.hf import BASE
from raysys.tasks.base import Task

log = logging.getLogger(__name__)


def evaluate(
    task: Task,
    rows: list[dict[str, Any]],
    model_path: str,
    adapters: dict[str, str],
    gen_cfg: Any,
    dtype: str,
    out_dir: Path,
    include_base: bool = True,
) -> dict[str, dict[str, float]]:
    """Score the base model (if `include_base`) and each adapter; write predictions and metrics.

    Returns {adapter name ("base" for the base model): metrics}.
    """
    from raysys.engines import hf

    names = ([BASE] if include_base else []) + list(adapters)
    work = [{**_eval_row(task, r), "adapter": name} for name in names for r in rows]
    start = time.perf_counter()
    df = hf.generate(work, model_path, adapters, gen_cfg, dtype)
    seconds = time.perf_counter() - start
    df["pred"] = [task.extract(t) for t in df["generated_text"]]
    df["pred_lenient"] = [task.extract_lenient(t) for t in df["generated_text"]]
    results = {_label(n): _metrics(task, df[df["adapter"] == n]) for n in names}
    for m in results.values():
        m["eval_seconds"] = seconds
    write_parquet(out_dir / "predictions.parquet", df.drop(columns=["messages"]))
    write_json(out_dir / "metrics.json", {"task": task.name, "results": results})
    return results


def changed_share(base_outputs: pd.Series, adapter_outputs: pd.Series) -> float:
    """Share of rows (matched by index) where the adapter's text differs from the base's."""
    a, b = base_outputs.sort_index(), adapter_outputs.sort_index()
    if not a.index.equals(b.index):
        raise ValueError("changed_share needs outputs for the same row ids")
    return float((a != b).mean())


def _eval_row(task: Task, row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "task": task.name,
        "input": row["input"],
        "gold": row["gold"],
        "messages": task.messages(row),
    }


def _label(name: str) -> str:
    return "base" if name == BASE else name


def _metrics(task: Task, df: pd.DataFrame) -> dict[str, float]:
    m = task.score(df["gold"].tolist(), df["generated_text"].tolist(), df["input"].tolist())
    m["n"] = len(df)
    m["mean_generated_tokens"] = float(df["num_generated_tokens"].mean())
    m["overlong_rate"] = float(df["overlong"].mean())
    return m
