"""A sweep's results: finished trials, the one test pass (base + every adapter), the
results table (one row per trial x task), the sweep's own figures, and its report."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from raysys.config import SweepConfig
from raysys.sweep.grid import Plan, Trial
from raysys.sweep.trial import adapter_path, eval_rows, eval_task_names, trial_path

log = logging.getLogger(__name__)

VAL_SUFFIX = "@validation"  # validation rows in the final pass (sweep.validate_in=final)


def collect_trials(
    sweep_dir: Path, trials: list[Trial]
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Finished trials' results by id; the ids of the others."""
    finished, errored = {}, []
    for t in trials:
        done = trial_path(sweep_dir, t.trial_id) / "result.json"
        if done.is_file():
            res = json.loads(done.read_text())
            # where the adapter is now (the sweep may have been moved, or pulled from an
            # object store into another machine's mirror), not where it was written
            res["adapter"] = str(adapter_path(done.parent))
            finished[t.trial_id] = res
        else:
            errored.append(t.trial_id)
    return finished, errored


def test_pass(
    cfg: SweepConfig, sweep_dir: Path, model_path: str, finished: dict[str, dict[str, Any]]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Base + every finished adapter on every test split, one engine load."""
    from raysys.evaluate.scoring import evaluate_tasks
    from raysys.runs import stage

    adapters = {tid: res["adapter"] for tid, res in sorted(finished.items())}
    final_val = cfg.sweep.validate_in == "final"
    out = test_dir(cfg, sweep_dir, finished)
    tasks = eval_rows(cfg, "test")
    if final_val:  # validation rows ride along, keyed "<task>@validation"
        tasks |= {f"{k}{VAL_SUFFIX}": v for k, v in eval_rows(cfg, "validation").items()}
    stage(
        out,
        f"test evaluation: base + {len(adapters)} adapters x {len(tasks)} task splits, one pass",
        lambda d: evaluate_tasks(
            tasks, model_path, adapters, cfg.generate, cfg.model.dtype, d, include_base=True
        ).to_dict("records"),
    )
    preds = pd.read_parquet(out / "predictions.parquet")
    preds["adapter"] = preds["adapter"].replace("", "base")
    preds = preds[~preds["task"].str.endswith(VAL_SUFFIX)]
    cols = ["adapter", "task", "id", "input", "gold", "generated_text", "pred"]
    return pd.read_parquet(out / "results.parquet"), preds[cols]


def test_dir(cfg: SweepConfig, sweep_dir: Path, finished: dict[str, dict[str, Any]]) -> Path:
    """The test pass's folder, keyed by the adapters it scores."""
    adapters = sorted(finished)
    final_val = cfg.sweep.validate_in == "final"
    blob = json.dumps([adapters, final_val] if final_val else adapters)
    return sweep_dir / "test_eval" / hashlib.sha256(blob.encode()).hexdigest()[:12]


def test_usage(
    cfg: SweepConfig, sweep_dir: Path, finished: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """What the one test pass held (the engine actors x its wall time) and generated."""
    import ray

    from raysys.analysis import cost
    from raysys.sweep.trial import stage_seconds

    out = test_dir(cfg, sweep_dir, finished)
    gpus = float(ray.cluster_resources().get("GPU", 0)) if ray.is_initialized() else 0.0
    engines = cost.engine_resources(cfg.generate, cost.engine_on_gpu(cfg.generate, gpus))
    try:
        records = json.loads((out / "stage.json").read_text()).get("result") or []
    except (OSError, ValueError):
        records = []
    return cost.usage(
        cost.times(engines, stage_seconds(out)), tokens_generated=cost.generated_tokens(records)
    )


def study_cost(
    cfg: SweepConfig,
    finished: dict[str, dict[str, Any]],
    test: dict[str, Any] | None,
    answers: int,
) -> dict[str, Any]:
    """The sweep's usage and cost: its trials, per cocktail, the test pass, the whole
    study, and the cost per evaluated answer (test rows scored)."""
    from raysys.analysis import cost

    prices = cfg.cost.prices
    trials = cost.total(r.get("usage") for r in finished.values())
    study = cost.total([trials, test])
    arms: dict[str, list[Any]] = {}
    for res in finished.values():
        arms.setdefault(cocktail_label(res["trial"]), []).append(res.get("usage"))
    return {
        "prices": dict(prices),
        "trials": cost.priced(trials, prices),
        "per_cocktail": {k: cost.priced(cost.total(v), prices) for k, v in sorted(arms.items())},
        "test_pass": cost.priced(test or cost.usage(), prices),
        "study": cost.priced(study, prices),
        "answers": answers,
        "cost_per_answer_usd": cost.per_answer(study, prices, answers),
    }


def cocktail_label(trial: dict[str, Any]) -> str:
    """A cocktail with its regulariser shares: `news_sentiment`, `all (general 0.1)`."""
    shares = [f"{k} {trial[k]:g}" for k in ("general", "math") if trial.get(k)]
    return trial["cocktail"] + (f" ({', '.join(shares)})" if shares else "")


def merge_final_validation(
    finished: dict[str, dict[str, Any]], table: pd.DataFrame
) -> tuple[dict[str, dict[str, Any]], pd.DataFrame]:
    """Split the final pass's "<task>@validation" rows off the test table into each
    trial's `validation` (as a trial-time validation would have written it)."""
    is_val = table["task"].str.endswith(VAL_SUFFIX)
    out = {tid: dict(res) for tid, res in finished.items()}
    for rec in table[is_val].to_dict("records"):
        tid = rec.pop("adapter")
        task = rec.pop("task")[: -len(VAL_SUFFIX)]
        if tid in out:
            val = dict(out[tid].get("validation") or {})
            val[task] = {k: v for k, v in rec.items() if not _isnan(v)}
            out[tid]["validation"] = val
    return out, table[~is_val].reset_index(drop=True)


def _isnan(v: Any) -> bool:
    return isinstance(v, float) and v != v


def results_table(
    cfg: SweepConfig, finished: dict[str, dict[str, Any]], test: pd.DataFrame
) -> pd.DataFrame:
    """One row per (trial, evaluated task), base model rows included (trial_id "base").
    The cost columns are the trial's own (training and its validation pass), repeated on
    each of its task rows; the test pass is in sweep.json's cost."""
    from raysys.analysis import cost
    from raysys.tasks import get_task

    test_by = {(r["adapter"], r["task"]): r for r in test.to_dict("records")}
    rows = []
    for tid, res in [("base", None), *sorted(finished.items())]:
        for name in eval_task_names(cfg):
            task = get_task(name)
            row = _trial_columns(tid, res, name) | {
                **cost.columns((res or {}).get("usage"), cfg.cost.prices),
                "task": name,
                "task_kind": task.kind,
                "main_metric": task.main_metric,
            }
            val = (res or {}).get("validation", {}).get(name, {})
            row |= {f"val_{k}": v for k, v in val.items()}
            tst = test_by.get((tid, name), {})
            row |= {f"test_{k}": v for k, v in tst.items() if k not in ("adapter", "task")}
            rows.append(row)
    df = pd.DataFrame(rows)
    for col in ("val_main", "test_main"):
        if col not in df:
            df[col] = float("nan")
    return df


def _trial_columns(tid: str, res: dict[str, Any] | None, task: str) -> dict[str, Any]:
    nan = float("nan")
    if res is None:
        return {
            "trial_id": "base",
            "cocktail": "base",
            "cocktail_kind": "base",
            "cocktail_tasks": "",
            **dict.fromkeys(("general", "math"), 0.0),
            **dict.fromkeys(("fraction", "learning_rate", "lora_r"), nan),
            "seed": 0,
            **dict.fromkeys(("train_rows", "task_train_rows"), 0),
            **dict.fromkeys(
                ("train_tokens", "train_seconds", "tokens_per_s", "final_loss", "trial_seconds"),
                nan,
            ),
        }
    p, tr, data = res["trial"], res["train"], res["data"]
    return {
        "trial_id": tid,
        "cocktail": p["cocktail"],
        "cocktail_kind": p["cocktail_kind"],
        "cocktail_tasks": ",".join(sorted(t for t, _ in p["components"])),
        "general": p["general"],
        "math": p["math"],
        "fraction": p["fraction"],
        "seed": p["seed"],
        "learning_rate": p["learning_rate"],
        "lora_r": p["lora_r"],
        "train_rows": data["rows"],
        "task_train_rows": data["counts"].get(task, 0),
        "train_tokens": tr.get("train_tokens", nan),
        "train_seconds": tr.get("wall_seconds", nan),
        "tokens_per_s": tr.get("tokens_per_second", nan),
        "final_loss": tr.get("train_loss", nan),
        "trial_seconds": res["trial_seconds"],
    }


def sweep_meta(
    cfg: SweepConfig,
    trials: list[Trial],
    finished: dict[str, dict[str, Any]],
    errored: list[str],
    plan: Plan,
    tune_seconds: float,
    resumed: bool,
    test: dict[str, Any] | None = None,
    answers: int = 0,
) -> dict[str, Any]:
    """The sweep's own figures: grid, concurrency, wall time vs ideal, data cache."""
    sw = cfg.sweep
    trial_secs = sum(r["trial_seconds"] for r in finished.values())
    ideal = trial_secs / plan.concurrency if plan.concurrency else float("nan")
    return {
        "model": cfg.model.source,
        "trials": len(trials),
        "finished": len(finished),
        "errored": errored,
        "cocktails": sorted({t.cocktail for t in trials}),
        "general": sw.general,
        "math": sw.math,
        "fractions": sw.fractions,
        "seeds": sw.seeds,
        "eval_tasks": eval_task_names(cfg),
        "concurrency": plan.concurrency,
        "tune_wall_seconds": tune_seconds,
        "trial_seconds_sum": trial_secs,
        "ideal_seconds": ideal,
        "wall_vs_ideal": tune_seconds / ideal if ideal else float("nan"),
        "resumed": resumed,
        "cost": study_cost(cfg, finished, test, answers),
    }


def write_sweep_report(sweep_dir: Path) -> dict[str, str]:
    from raysys.analysis.report import write_report

    paths = write_report(sweep_dir)  # it logs where the report is
    return {"markdown": str(paths.markdown), "html": str(paths.html)}
