"""The quickstart: evaluate the base model, LoRA-SFT it on Ray Train, evaluate again.

Every stage writes under `<storage_path>/<run.name>/<run_id>/` and finishes by
writing its `metrics.json`; re-running with the same `run.run_id` skips the
stages that finished.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raysys.config import QuickstartConfig
from raysys.data.io import write_json, write_parquet, write_text
from raysys.runs import open_run, stage
from raysys.tasks import build_splits, get_task
from raysys.tasks.base import Task

log = logging.getLogger(__name__)

# Shown when the task's metrics have them; the kind's main metric always leads.
TABLE_METRICS = (
    "accuracy",
    "macro_f1",
    "entity_f1",
    "exact_match",
    "missing_rate",
    "mean_generated_tokens",
    "overlong_rate",
    "finben_accuracy",
    "flexible_entity_f1",
    "flexible_exact_match",
)


@dataclass
class QuickstartResult:
    run_dir: Path
    before: dict[str, float]
    after: dict[str, float]
    train: dict[str, Any]

    def table(self) -> str:
        return format_table(self.before, self.after)


def run_quickstart(cfg: QuickstartConfig) -> QuickstartResult:
    from raysys.evaluate.run import changed_share, evaluate
    from raysys.models import resolve_model
    from raysys.runtime import init_ray
    from raysys.train.launch import check_local_budget, run_training

    task = get_task(cfg.task.name)
    model_path = resolve_model(cfg.model.source)  # before any output: a bad source writes nothing
    check_local_budget(cfg.train, cfg.ray)
    run_dir = open_run(cfg)
    init_ray(cfg.ray.address, cfg.ray.num_cpus)

    splits = _materialize_data(task, cfg, run_dir / "data")
    test_rows = splits["test"]
    gen = (cfg.generate, cfg.model.dtype)

    before = stage(
        run_dir / "eval_base",
        "evaluate base model",
        lambda d: evaluate(task, test_rows, model_path, {}, *gen, d)["base"],
    )
    train = stage(
        run_dir / "sft",
        "LoRA SFT on Ray Train",
        lambda d: run_training(
            str(run_dir / "data" / "train_sft.parquet"),
            model_path,
            cfg.train,
            cfg.model.dtype,
            d,
            cfg.run.seed,
            attn_implementation=cfg.model.attn_implementation,
        ),
    )
    adapter = {"sft": str(run_dir / "sft" / "adapter")}
    after = stage(
        run_dir / "eval_sft",
        "evaluate SFT adapter",
        lambda d: evaluate(task, test_rows, model_path, adapter, *gen, d, include_base=False)[
            "sft"
        ],
    )

    import pandas as pd

    base_out = pd.read_parquet(run_dir / "eval_base" / "predictions.parquet").set_index("id")
    sft_out = pd.read_parquet(run_dir / "eval_sft" / "predictions.parquet").set_index("id")
    after["changed_vs_base"] = changed_share(base_out["generated_text"], sft_out["generated_text"])
    result = QuickstartResult(run_dir, before, after, train)
    write_json(run_dir / "summary.json", {"before": before, "after": after, "train": train})
    write_text(run_dir / "table.md", result.table() + "\n")
    return result


def _materialize_data(
    task: Task, cfg: QuickstartConfig, data_dir: Path
) -> dict[str, list[dict[str, Any]]]:
    sizes = {
        s: getattr(cfg.task, f"{s}_size")
        for s in ("train", "validation", "test")
        if s in task.splits  # file-defined tasks may lack a validation split
    }
    splits = build_splits(cfg.task.name, sizes, cfg.run.seed)
    for split, rows in splits.items():
        write_parquet(data_dir / f"{split}.parquet", rows)
    sft_rows = [
        {
            "id": r["id"],
            "task": r["task"],
            "gold": r["gold"],
            "source": "gold",
            "messages": task.messages(r) + [{"role": "assistant", "content": task.target(r)}],
        }
        for r in splits["train"]
    ]
    write_parquet(data_dir / "train_sft.parquet", sft_rows)
    log.info("data: %s", ", ".join(f"{s}={len(r)}" for s, r in splits.items()))
    return splits


def format_table(before: dict[str, float], after: dict[str, float]) -> str:
    rows = ["| metric | base | LoRA SFT | change |", "| --- | ---: | ---: | ---: |"]
    for k in (k for k in TABLE_METRICS if k in before and k in after):
        b, a = before[k], after[k]
        rows.append(f"| {k} | {b:.3f} | {a:.3f} | {a - b:+.3f} |")
    return "\n".join(rows)
