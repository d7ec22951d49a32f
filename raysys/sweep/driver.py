"""`raysys sweep CONFIG`: a Ray Tune grid of LoRA SFT trials, one test pass, a report.

Layout of a sweep directory `<run.storage_path>/<run.name>/<run_id>/`:

- `config.yaml` (resolved), `grid.json` (every trial's parameters), `tasks/` (every
  task's rows: what trials read)
- `tune/`: Ray Tune's experiment (state for `--resume`, per-trial CSV/JSON and
  TensorBoard event files, named by trial id)
- `trials/<trial_id>/`: `train/` (adapter, metrics, Ray Train checkpoints),
  `eval_validation/`, `result.json` once the trial is done
- `test_eval/<key>/`: every finished adapter and the base model on the test splits,
  in one engine pass
- `results.parquet|csv` (one row per (trial, task)), `test_predictions.parquet`,
  `sweep.json` (wall time, concurrency, data cache), and the report
  (`report.md`, `report.html`, `plots/`).
- `mlflow.json` with `sweep.mlflow.tracking_uri` set: the MLflow experiment and the ids of
  the sweep's parent run and its trial runs (`raysys.sweep.tracking`).

`run_sweep` is the job (every check, then the grid); `make_grid` and `execute` are
the grid alone, which the pipeline's SFT stage calls with its own checks done.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raysys.config import SweepConfig
from raysys.data import contamination
from raysys.errors import UserError
from raysys.io import write_csv, write_json, write_parquet
from raysys.sweep.grid import Plan, Trial, expand_grid, plan_resources
from raysys.sweep.prepare import check_contamination, prepare_data, prepare_tasks
from raysys.sweep.results import (
    collect_trials,
    merge_final_validation,
    results_table,
    sweep_meta,
    test_pass,
    test_usage,
    write_sweep_report,
)
from raysys.sweep.tune import (
    cluster_resources,
    first_cause,
    run_tune,
    trial_resources,
    tune_callbacks,
)
from raysys.tasks import scoped
from raysys.tasks.store import TASKS_DIR

log = logging.getLogger(__name__)


class SweepIncompleteError(UserError):
    """Some trials errored; the others are analysed, and `--resume --retry-errored` retries."""

    exit_code = 1


@dataclass
class SweepOutcome:
    sweep_dir: Path
    results: Any  # pandas.DataFrame: one row per (trial, task)
    meta: dict[str, Any]
    errored: list[str] = field(default_factory=list)
    report: dict[str, str] = field(default_factory=dict)


@dataclass
class Grid:
    """A sweep ready for Ray Tune: its trials, their data and the resources they get."""

    cfg: SweepConfig
    trials: list[Trial]
    sweep_dir: Path
    model_path: str
    tasks_dir: Path
    data: dict[str, dict[str, Any]]
    data_stats: dict[str, int]
    plan: Plan
    callbacks: list[Any]
    experiment: str = "tune"  # Tune's experiment folder under the sweep (a search: per round)


@scoped  # this run's task rows are registered for the run only
def run_sweep(cfg: SweepConfig, resume: bool = False, retry_errored: bool = False) -> SweepOutcome:
    """Run (or resume) the grid, score every adapter on test in one pass, write the report."""
    from raysys.models import resolve_model
    from raysys.runs import RunDir, open_run
    from raysys.runtime import init_ray

    cfg, trials, callbacks = check_sweep(cfg, resume)  # bad input refused: nothing written
    model_path = resolve_model(cfg.model.source)
    tasks = prepare_tasks(cfg, resume)  # every task's rows read and checked; nothing written
    overlap = check_contamination(cfg, tasks)  # training rows in an evaluation split: refused
    data = prepare_data(cfg, trials, model_path)  # bad training data: refused here too
    where = RunDir.of(cfg.run.storage_path, cfg.run.name, str(cfg.run.run_id))
    init_ray(cfg.ray.address, cfg.ray.num_cpus, metadata=where.job_metadata("sweep"))
    run = open_run(cfg)
    tasks.write()  # <sweep_dir>/tasks: what trials read, never the users' files
    run.keep(TASKS_DIR)
    contamination.write(run.path, overlap)  # the report's overlap table
    run.keep(contamination.FILE)
    grid = make_grid(cfg, trials, run.path, model_path, run / TASKS_DIR, data, callbacks)
    return execute(grid, resume, retry_errored)


def check_sweep(
    cfg: SweepConfig, resume: bool, marker: str = "tune"
) -> tuple[SweepConfig, list[Trial], list[Any]]:
    """Everything that can be refused before a file is written or Ray starts; returns the
    config with its run id fixed, the trials and the Tune callbacks."""
    from raysys.engines import check_fits
    from raysys.runs import check_job_storage, check_writable, storage_root
    from raysys.train.launch import check_checkpoint_storage, check_local_budget

    check_job_storage(cfg.run.storage_path)
    check_checkpoint_storage(cfg.train)
    trials = expand_grid(cfg)  # bad grids fail here, before any output
    callbacks = tune_callbacks(cfg)
    cfg = locate_sweep(cfg, resume, marker)  # nothing to resume, or a sweep in the way: refused now
    check_local_budget(cfg.train, cfg.ray)  # a trial this Ray could never hold: refused now
    check_fits(cfg.generate, cfg.ray)
    check_writable(storage_root(cfg.run.storage_path))
    return cfg, trials, callbacks


def make_grid(
    cfg: SweepConfig,
    trials: list[Trial],
    sweep_dir: Path,
    model_path: str,
    tasks_dir: Path,
    data: tuple[dict[str, dict[str, Any]], dict[str, int]],
    callbacks: list[Any],
) -> Grid:
    """Plan the concurrency on the running Ray and record the grid (`grid.json`)."""
    from raysys.runs import RunDir

    plan = plan_resources(cfg, len(trials), cluster_resources())
    trial_resources(cfg, plan.available)  # a resource no node has: refused now
    log.info("sweep: %d trials, %d at a time (%s)", len(trials), plan.concurrency, plan.why)
    write_json(sweep_dir / "grid.json", [t.params() for t in trials])
    RunDir.at(sweep_dir).keep("grid.json")
    return Grid(cfg, trials, sweep_dir, model_path, tasks_dir, *data, plan, callbacks)


ADAPTER_FILES = ("*/adapter/*", "*/delta_adapter/*")


def execute(grid: Grid, resume: bool, retry_errored: bool) -> SweepOutcome:
    """Every trial through Tune, then one test pass, the results table and the report;
    tracked in MLflow when `sweep.mlflow.tracking_uri` is set."""
    tracking = open_tracking(grid)  # the sweep's parent run; the trial runs nest under it
    try:
        return _execute(grid, resume, retry_errored, tracking)
    except BaseException:
        if tracking:  # (finish() ends it otherwise)
            tracking.close("FAILED")
        raise


def _execute(grid: Grid, resume: bool, retry_errored: bool, tracking: Any) -> SweepOutcome:
    start = time.perf_counter()
    failures = run_tune(grid, resume, retry_errored)
    gather_trials(grid.sweep_dir)
    return finish(grid, failures, time.perf_counter() - start, resume, tracking)


def gather_trials(sweep_dir: Path) -> None:
    """Trials on other nodes wrote to their own mirrors and the store: their results here
    (not their adapters: the test pass's engines fetch those from the store themselves)."""
    from raysys.runs import RunDir

    RunDir.at(sweep_dir).gather("trials", exclude=ADAPTER_FILES)


def finish(
    grid: Grid,
    failures: dict[str, list[str]],
    tune_seconds: float,
    resume: bool,
    tracking: Any,
    extra_meta: dict[str, Any] | None = None,
) -> SweepOutcome:
    """After Tune: one test pass over every finished adapter, the results table, sweep.json
    and the report (a search calls this once, over every round's trials)."""
    from raysys.runs import RunDir

    finished, errored = collect_trials(grid.sweep_dir, grid.trials)
    if not finished:
        raise SweepIncompleteError(
            f"no trial finished ({len(errored)} errored){first_cause(errored, failures)}; see "
            f"{grid.sweep_dir / 'tune'}; fix the cause and run again with --resume "
            "--retry-errored"
        )
    test, preds = test_pass(grid.cfg, grid.sweep_dir, grid.model_path, finished)
    finished, test = merge_final_validation(finished, test)
    results = results_table(grid.cfg, finished, test)
    used = test_usage(grid.cfg, grid.sweep_dir, finished)
    answers = int(test["n"].fillna(0).sum()) if "n" in test else 0  # test rows scored
    meta = sweep_meta(
        grid.cfg, grid.trials, finished, errored, grid.plan, tune_seconds, resume, used, answers
    )
    meta |= grid.data_stats | {"failures": failures} | (extra_meta or {})  # retried ones too
    _write_results(grid.sweep_dir, results, preds, meta)
    report = write_sweep_report(grid.sweep_dir)
    if tracking:  # test scores into each trial's run, the report onto the sweep's
        tracking.finish(finished, results, errored)
    RunDir.at(grid.sweep_dir).keep()  # object-store runs: results and report up to the store
    if errored:
        raise SweepIncompleteError(
            f"{len(errored)} of {len(grid.trials)} trials errored ({', '.join(errored[:3])})"
            f"{first_cause(errored, failures)}; the report covers the rest: {grid.sweep_dir}; "
            "retry them with --resume --retry-errored"
        )
    return SweepOutcome(grid.sweep_dir, results, meta, errored, report)


def open_tracking(grid: Grid) -> Any:
    """The sweep's MLflow parent run (`raysys.sweep.tracking.SweepTracking`), with the
    trial callback bound to it; None when `sweep.mlflow.tracking_uri` is unset."""
    if not grid.cfg.sweep.mlflow.tracking_uri:
        return None
    from raysys.sweep.tracking import SweepTracking

    return SweepTracking.open(grid.cfg, grid.sweep_dir, grid.callbacks)


def _write_results(sweep_dir: Path, results: Any, preds: Any, meta: dict[str, Any]) -> None:
    write_parquet(sweep_dir / "results.parquet", results)
    write_csv(sweep_dir / "results.csv", results)
    write_parquet(sweep_dir / "test_predictions.parquet", preds)
    write_json(sweep_dir / "sweep.json", meta)


def locate_sweep(cfg: SweepConfig, resume: bool, marker: str = "tune") -> SweepConfig:
    """`cfg` with its run id fixed: new, or (with `resume`) an existing sweep with a Tune
    state (the latest of `run.name` when no run id is given). Checks only; writes nothing.
    `marker`: what a started run has (a sweep: Tune's state; a search: search.json)."""
    from ray.tune import Tuner

    from raysys.config import with_run_id
    from raysys.runs import RunDir, latest_run_id, shown, storage_root

    storage, name = cfg.run.storage_path, cfg.run.name
    where = shown(storage_root(storage))  # the path, or the bucket URI without its options
    run_id = cfg.run.run_id
    if resume and run_id is None:
        run_id = latest_run_id(storage, name, marker)
        if run_id is None:
            raise UserError(
                f"--resume: no sweep found under {where}/{name}; run it without --resume "
                "first, or set run.storage_path / run.run_id to the sweep to resume"
            )
    cfg = with_run_id(cfg.model_copy(update={"run": cfg.run.model_copy(update={"run_id": run_id})}))
    run = RunDir.of(storage, name, str(cfg.run.run_id))
    shown_dir = f"{where}/{name}/{cfg.run.run_id}"
    started = run.exists(marker) if marker != "tune" else Tuner.can_restore(run.location("tune"))
    if resume and not started:
        raise UserError(
            f"--resume: {shown_dir} holds no {'sweep' if marker == 'tune' else 'search'} to "
            "resume; check run.run_id, or drop --resume"
        )
    if not resume and run.exists(marker):
        what = "a sweep" if marker == "tune" else "a search"
        raise UserError(
            f"{shown_dir} already holds {what}; add --resume to continue it, or set a new "
            "run.run_id"
        )
    return cfg
