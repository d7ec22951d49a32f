"""`raysys eval CONFIG`: base + any number of adapters on any tasks, one engine pass.

Outputs under `<run.storage_path>/<run.name>/<run_id>/eval/`: predictions.parquet
(every generation with its extraction), results.parquet / results.csv / table.md
(one row per (adapter, task)), metrics.json.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from raysys.config import EvalConfig
from raysys.errors import UserError
from raysys.io import write_text
from raysys.tasks import scoped

log = logging.getLogger(__name__)


def check_adapters(adapters: dict[str, str]) -> dict[str, str]:
    out = {}
    from raysys.storage import localize

    for name, path in adapters.items():
        # s3:// or gs://: fetched into the cache first
        p = Path(localize(path, f"eval.adapters.{name}")).expanduser()
        if not (p / "adapter_config.json").is_file():
            raise UserError(
                f"eval.adapters.{name}: {p} is not a PEFT adapter dir (no adapter_config.json); "
                "point it at a run's train/adapter"
            )
        out[name] = str(p.resolve())
    return out


def task_needs(cfg: EvalConfig) -> list[Any]:
    from raysys.tasks.store import Need

    return [Need(name, {cfg.eval.split: cfg.eval.size}) for name in cfg.eval.tasks]


def task_rows(cfg: EvalConfig) -> dict[str, tuple[Any, list[dict[str, Any]]]]:
    from raysys.tasks import build_splits, get_task

    out = {}
    for name in cfg.eval.tasks:
        task = get_task(name)
        rows = build_splits(name, {cfg.eval.split: cfg.eval.size}, cfg.run.seed)[cfg.eval.split]
        if not rows:
            raise UserError(f"eval.tasks: {name} has no {cfg.eval.split} rows")
        out[task.name] = (task, rows)
    return out


def vllm_parity(
    model_path: str, adapters: dict[str, str], cfg: EvalConfig, tasks: dict, run_dir: Path
) -> None:
    """The vLLM canary: each adapter's greedy outputs on probe prompts equal PEFT's."""
    from raysys.engines.parity import compare_with_hf
    from raysys.errors import AdapterIgnoredError

    task, rows = next(iter(tasks.values()))
    probes = [task.messages(r) for r in rows[: cfg.eval.parity_probes]]
    from raysys.engines import canary_failure

    try:
        report = compare_with_hf(model_path, adapters, cfg.generate, "float32", probes)
    except Exception as e:
        canary = canary_failure(e)
        if canary is not None:
            raise canary from e
        raise
    write_text(
        run_dir / "parity.json", pd.Series(report.agreement, name="agreement").to_json(indent=2)
    )
    failures = report.failures()
    if failures:
        raise AdapterIgnoredError("vLLM LoRA canary: " + "; ".join(failures))
    log.info("vLLM LoRA canary: every adapter matches PEFT on %d probes", len(probes))


@scoped  # this run's task rows are registered for the run only
def run_eval_job(cfg: EvalConfig) -> tuple[Path, pd.DataFrame]:
    from raysys.engines import check_fits, resolve_engine
    from raysys.models import resolve_model
    from raysys.runs import check_job_storage, open_run_with_tasks
    from raysys.runtime import init_ray

    check_job_storage(cfg.run.storage_path)  # before anything is built or written
    check_fits(cfg.generate, cfg.ray)  # an engine pool this Ray could never place
    model_path = resolve_model(cfg.model.source)
    adapters = check_adapters(cfg.eval.adapters)
    if not adapters and not cfg.eval.include_base:
        raise UserError("eval: nothing to evaluate; add eval.adapters or set eval.include_base")
    run_dir = open_run_with_tasks(cfg, task_needs(cfg))  # <run>/tasks: the rows evaluated
    tasks = task_rows(cfg)
    init_ray(cfg.ray.address, cfg.ray.num_cpus, metadata=run_dir.job_metadata("eval"))
    if resolve_engine(cfg.generate.engine) == "vllm" and adapters and cfg.eval.parity_probes:
        vllm_parity(model_path, adapters, cfg, tasks, run_dir.path)
    records = run_dir.stage(
        "eval", "evaluation", lambda d: _evaluate(d, cfg, tasks, model_path, adapters)
    )
    run_dir.publish()
    return run_dir.path, pd.DataFrame(records)


def _evaluate(
    d: Path, cfg: EvalConfig, tasks: dict[str, Any], model_path: str, adapters: dict[str, str]
) -> list[dict[str, Any]]:
    from raysys.evaluate.scoring import evaluate_tasks, format_results

    res = evaluate_tasks(
        tasks, model_path, adapters, cfg.generate, cfg.model.dtype, d, cfg.eval.include_base
    )
    write_text(d / "table.md", format_results(res) + "\n")
    return res.to_dict("records")
