"""The evaluation after a model stage: the same test rows for every stage, one engine
pass over the stage's adapter (or the base model)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from raysys.pipeline.stages import Row, Study, dumped, holdout, sizes


def eval_rows(study: Study) -> dict[str, tuple[Any, list[Row]]]:
    """Test rows of every evaluation task, read once: the rows a sweep of these sizes uses."""
    from raysys.tasks import held_out_rows

    if study.eval_rows is None:
        cfg = study.cfg
        refs = cfg.eval_task_names()
        study.eval_rows = held_out_rows(
            refs, holdout(cfg.pipeline), cfg.run.seed, "test", required=True
        )
    return study.eval_rows


def evaluate(
    study: Study,
    name: str,
    model: str,
    adapter: str | None,
    after: tuple[str, ...],
    train: dict[str, Any] | None = None,
) -> list[Row]:
    """Stage `name`: score `adapter` (None: the base model) on every test split."""
    cfg = study.cfg
    tasks = eval_rows(study)

    def run(d: Path) -> list[Row]:
        from raysys.evaluate.scoring import evaluate_tasks

        adapters = {model: adapter} if adapter else {}
        table = evaluate_tasks(
            tasks, study.model_path, adapters, cfg.generate, cfg.model.dtype, d, adapter is None
        )
        return table.to_dict("records")

    rows = study.st.run(
        name,
        f"evaluate {model} on {', '.join(tasks)} (test)",
        {
            "model": dumped(cfg.model),  # the base model, and (with seed) the test rows
            "seed": cfg.run.seed,
            "generate": dumped(cfg.generate),
            "tasks": list(tasks),
            "sizes": sizes(cfg.pipeline),
        },
        after if adapter else ("data",),
        run,
    )
    study.models.append({"stage": model, "eval": name, "results": rows, "train": train})
    return rows
