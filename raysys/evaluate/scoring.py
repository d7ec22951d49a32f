"""Evaluate the base model and any number of adapters on any tasks, in one engine pass.

Every (adapter, task, row) goes through one Ray Data pipeline: each engine actor
loads the base model once and every adapter by name. Out come the raw generations
(`predictions.parquet`) and a tidy table, one row per (adapter, task), with the
task's metrics, the missing rate, the overlength ratio and mean generated tokens.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd

from raysys.engines.base import BASE
from raysys.evaluate.overlength import is_overlength
from raysys.io import write_csv, write_json, write_parquet
from raysys.tasks.base import Task

log = logging.getLogger(__name__)

# The columns of the tidy table that lead; each task's own metrics follow.
LEAD = ["adapter", "task", "n", "main", "missing_rate", "overlength_ratio", "mean_generated_tokens"]


def evaluate_tasks(
    tasks: dict[str, tuple[Task, list[dict[str, Any]]]],
    model_path: str,
    adapters: dict[str, str],
    gen_cfg: Any,
    dtype: str,
    out_dir: Path,
    include_base: bool = True,
) -> pd.DataFrame:
    """Score base (if `include_base`) and each adapter on every task's rows; one pass.

    `tasks`: task name -> (Task, rows with id/input/gold). Writes predictions.parquet,
    results.parquet, results.csv and metrics.json under `out_dir`; returns the table.
    """
    from raysys.engines import generate

    names = ([BASE] if include_base else []) + list(adapters)
    # rows carry their key in `tasks` (a task name, or e.g. "name@validation" when one
    # pass scores two splits of a task)
    work = [
        {**_eval_row(task, r), "task": key, "adapter": name}
        for name in names
        for key, (task, rows) in tasks.items()
        for r in rows
    ]
    log.info(
        "evaluating %d model(s) x %d task(s): %d generations in one pass",
        len(names),
        len(tasks),
        len(work),
    )
    start = time.perf_counter()
    df = _extracted(generate(work, model_path, adapters, gen_cfg, dtype), tasks)
    seconds = time.perf_counter() - start
    results = _table(df, tasks, names, include_base)
    write_parquet(out_dir / "predictions.parquet", df.drop(columns=["messages"]))
    write_parquet(out_dir / "results.parquet", results)
    write_csv(out_dir / "results.csv", results)
    summary = {"generations": len(df), "seconds": seconds, "results": results.to_dict("records")}
    write_json(out_dir / "metrics.json", summary)
    return results


def _extracted(df: pd.DataFrame, tasks: dict[str, tuple[Task, Any]]) -> pd.DataFrame:
    """Each generation's strict and lenient answers, and whether it ran overlong."""
    texts = zip(df["task"], df["generated_text"], strict=True)
    pairs = [(tasks[t][0].extract(x), tasks[t][0].extract_lenient(x)) for t, x in texts]
    df["pred"] = [p for p, _ in pairs]
    df["pred_lenient"] = [q for _, q in pairs]
    df["overlength"] = [
        is_overlength(t, o) for t, o in zip(df["generated_text"], df["overlong"], strict=True)
    ]
    return df


def _table(
    df: pd.DataFrame, tasks: dict[str, tuple[Task, Any]], names: list[str], include_base: bool
) -> pd.DataFrame:
    """One row per (model, task): its metrics, and what an adapter changed vs the base."""
    table = []
    for name in names:
        for tname, (task, _) in tasks.items():
            part = df[(df["adapter"] == name) & (df["task"] == tname)]
            rec = {"adapter": _label(name), "task": tname, **_metrics(task, part)}
            if include_base and name != BASE:  # the text-level canary: what the adapter changed
                base = df[(df["adapter"] == BASE) & (df["task"] == tname)]
                rec["changed_vs_base"] = changed_share(
                    base.set_index("id")["generated_text"], part.set_index("id")["generated_text"]
                )
            table.append(rec)
    results = pd.DataFrame(table)
    return results[LEAD + [c for c in results.columns if c not in LEAD]]


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
    """One task: {adapter name ("base" for the base model): metrics}."""
    start = time.perf_counter()
    table = evaluate_tasks(
        {task.name: (task, rows)}, model_path, adapters, gen_cfg, dtype, out_dir, include_base
    )
    seconds = time.perf_counter() - start
    out = {}
    for rec in table.to_dict("records"):
        name = rec.pop("adapter")
        rec.pop("task")
        out[name] = {k: v for k, v in rec.items() if pd.notna(v)} | {"eval_seconds": seconds}
    return out


def changed_share(base_outputs: pd.Series, adapter_outputs: pd.Series) -> float:
    """Share of rows (matched by index) where the adapter's text differs from the base's."""
    a, b = base_outputs.sort_index(), adapter_outputs.sort_index()
    if not a.index.equals(b.index):
        raise ValueError("changed_share needs outputs for the same row ids")
    return float((a != b).mean())


def format_results(results: pd.DataFrame) -> str:
    """The tidy table as markdown: the leading columns, 3 decimals."""
    cols = [c for c in LEAD if c in results.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    for rec in results[cols].to_dict("records"):
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in rec.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _eval_row(task: Task, row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "task": task.name,
        "input": row["input"],
        "gold": None if row.get("gold") is None else str(row["gold"]),
        "messages": task.messages(row),
    }


def _label(name: str) -> str:
    return "base" if name == BASE else name


def _metrics(task: Task, df: pd.DataFrame) -> dict[str, float]:
    m = task.score(df["gold"].tolist(), df["generated_text"].tolist(), df["input"].tolist())
    m["n"] = len(df)
    m["mean_generated_tokens"] = float(df["num_generated_tokens"].mean())
    m["overlong_rate"] = float(df["overlong"].mean())
    m["overlength_ratio"] = float(df["overlength"].mean())
    return m
