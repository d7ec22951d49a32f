"""The sweep's Ray Tune wiring: the trainable with its resources, the Tuner (new or
restored), callbacks, the scheduler, and every trial's failures read back as one line each."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from ray.tune import Callback

from raysys.config import SweepConfig
from raysys.console import quiet
from raysys.errors import UserError
from raysys.sweep.failures import cause, failure_causes
from raysys.sweep.grid import TUNE_KEY, Plan, Trial, tune_trial_id
from raysys.sweep.progress import SweepProgress
from raysys.sweep.trial import sweep_trial

log = logging.getLogger(__name__)


DRIVER_MEMORY = (
    256 * 2**20
)  # bytes reserved per trial driver  # Tune's param_space holds {"trial": Trial.params()}


def tune_location(cfg: SweepConfig, sweep_dir: Path, experiment: str = "tune") -> str:
    """Where Ray Tune keeps the experiment: `<sweep_dir>/tune` (a search: one per round),
    in the object store itself when the run storage is one (Tune syncs its state there;
    `--resume` restores from it on any machine)."""
    return _run(cfg, sweep_dir).location(experiment)


def tune_parent(cfg: SweepConfig, sweep_dir: Path) -> str:
    return _run(cfg, sweep_dir).location()


def _run(cfg: SweepConfig, sweep_dir: Path) -> Any:
    from raysys.runs import RunDir

    return RunDir.of(cfg.run.storage_path, cfg.run.name, sweep_dir.name)


def cluster_resources() -> dict[str, float]:
    import ray

    return dict(ray.cluster_resources())


def tune_callbacks(cfg: SweepConfig) -> list[Any]:
    """MLflow when configured (checked up front: a missing extra or a server that does not
    answer fails before any work); the driver binds it to the sweep's parent run
    (`raysys.sweep.tracking`)."""
    ml = cfg.sweep.mlflow
    if not ml.tracking_uri:
        return []
    from raysys.sweep.tracking import TrialRuns, probe_server, require_mlflow

    require_mlflow()
    probe_server(ml.tracking_uri)
    return [TrialRuns(ml.tracking_uri, ml.experiment)]


def trial_dirname(trial: Any) -> str:
    """Tune's per-trial folder (and TensorBoard run) is the trial id."""
    return tune_trial_id(trial.config)


def _threads(cfg: SweepConfig, plan: Plan) -> int | None:
    """Intra-op threads per process on a one-node cluster, so concurrent trials do not
    oversubscribe the cores; multi-node clusters let each worker size itself."""
    import ray

    if len([n for n in ray.nodes() if n.get("Alive")]) != 1:
        return None
    return max(1, (os.cpu_count() or 1) // (plan.concurrency * cfg.train.num_workers))


def run_tune(grid: Any, resume: bool, retry_errored: bool) -> dict[str, list[str]]:
    """Every trial of `grid` (a `driver.Grid`) through Ray Tune (FIFO grid, or ASHA on the
    training loss). Returns each trial's failures (see `trial_failures`)."""
    from ray import tune

    cfg = grid.cfg
    # Tune snapshots its state at most this often; a killed driver loses at most this
    # much bookkeeping (the trials themselves are idempotent, see sweep.trial).
    os.environ["TUNE_GLOBAL_CHECKPOINT_S"] = str(cfg.sweep.snapshot_seconds)
    ctx, callbacks = _trial_context(grid)
    trainable = tune.with_resources(
        tune.with_parameters(sweep_trial, ctx=ctx), trial_resources(cfg, grid.plan.available)
    )
    if resume:
        tuner = tune.Tuner.restore(
            tune_location(cfg, grid.sweep_dir, grid.experiment),
            trainable,
            resume_unfinished=True,
            resume_errored=retry_errored,
        )
    else:
        tuner = tune.Tuner(
            trainable,
            param_space={TUNE_KEY: tune.grid_search(_grid_order(grid))},
            tune_config=tune.TuneConfig(
                max_concurrent_trials=grid.plan.concurrency,
                scheduler=_scheduler(cfg),
                trial_dirname_creator=trial_dirname,
                trial_name_creator=trial_dirname,
            ),
            run_config=tune.RunConfig(
                name=grid.experiment,
                storage_path=tune_parent(cfg, grid.sweep_dir),
                callbacks=callbacks,
                verbose=0 if quiet() else 1,  # quiet: our bar (sweep.progress) instead
                failure_config=tune.FailureConfig(max_failures=cfg.sweep.max_trial_failures),
            ),
        )
    return trial_failures(_fit(tuner))


def _fit(tuner: Any) -> Any:
    """`tuner.fit()`; quiet, with Tune's legacy reporter at verbosity 0 (its new output
    prints the experiment's table even at verbose=0): the sweep's bar says the rest."""
    if not quiet():
        return tuner.fit()
    before = os.environ.get("RAY_AIR_NEW_OUTPUT")
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    try:
        return tuner.fit()
    finally:
        if before is None:
            os.environ.pop("RAY_AIR_NEW_OUTPUT", None)
        else:
            os.environ["RAY_AIR_NEW_OUTPUT"] = before


def _grid_order(grid: Any) -> list[dict[str, Any]]:
    return [t.params() for t in longest_first(grid.trials, grid.data)]


def _trial_context(grid: Any) -> tuple[dict[str, Any], list[Any]]:
    """What every trial gets (plain data: it travels to the trial's process) and the
    callbacks, with the fault drills the environment asks for."""
    from raysys.runtime import faults_from_env
    from raysys.storage import for_workers, mirror_location

    # each distinct dataset once (grids share them across seeds, learning rates, ranks)
    shipped = {p: for_workers(p) for p in {d["path"] for d in grid.data.values()}}
    ctx = {
        "config": grid.cfg.model_dump(mode="json"),
        "sweep_dir": str(grid.sweep_dir),
        "sweep_mirror": mirror_location(grid.sweep_dir),  # where it is on other nodes
        "model_path": grid.model_path,  # each node builds a built-in model into its cache
        # trial id -> its prepared training data (path, rows per task); what trials read
        # is handed over as URIs when the sweep is in an object store (trials run anywhere)
        "data": {t: d | {"path": shipped[d["path"]]} for t, d in grid.data.items()},
        "tasks_dir": for_workers(grid.tasks_dir),  # every task's rows: trials read only these
        "threads": _threads(grid.cfg, grid.plan),
    }
    callbacks = [*grid.callbacks, SweepProgress(len(grid.trials))]
    faults = faults_from_env(("sweep_exit_after_trials", "sweep_fail_trial"))
    if "sweep_exit_after_trials" in faults:
        callbacks.append(ExitAfterTrials(faults["sweep_exit_after_trials"]))
    if "sweep_fail_trial" in faults:  # the N-th trial of grid.json raises once
        ctx["fail_trial"] = grid.trials[faults["sweep_fail_trial"] % len(grid.trials)].trial_id
    return ctx, callbacks


def trial_failures(grid: Any) -> dict[str, list[str]]:
    """Every failure of every trial (trial id -> one line per failure, in order), retried
    or final, from Tune's per-trial `error.txt` (one `Failure # N` block per failure);
    the last error Tune kept where that file cannot be read."""
    out: dict[str, list[str]] = {}
    for r in grid:
        tid = tune_trial_id(r.config)
        try:
            with r.filesystem.open_input_stream(f"{r.path}/error.txt") as f:
                text = f.read().decode(errors="replace")
        except (FileNotFoundError, OSError):
            text = ""
        causes = failure_causes(text)
        if not causes and r.error is not None:
            causes = [cause(str(r.error))]
        if causes:
            out[tid] = causes
    return out


def first_cause(errored: list[str], failures: dict[str, list[str]]) -> str:
    """`; <trial> failed with: <cause>` for the error line (nothing when Tune gave none)."""
    for tid in errored:
        if failures.get(tid):
            return f"; {tid} failed with: {failures[tid][-1]}"
    return ""


def longest_first(trials: list[Trial], data: dict[str, dict[str, Any]]) -> list[Trial]:
    """Trials with the most training rows first (ties keep the grid's order): with a
    fixed number of slots, starting the longest trials first keeps the last slot from
    running one long trial alone while the others idle (LPT scheduling)."""
    return sorted(trials, key=lambda t: -data.get(t.trial_id, {}).get("rows", 0))


def trial_resources(cfg: SweepConfig, available: dict[str, float]) -> dict[str, float]:
    """What a trial's driver asks Tune for: no CPU (it only waits on Train and Ray Data,
    so N one-worker trials fit N CPUs), the memory it uses (Tune needs a non-empty
    request), and the custom resource (when set) that keeps it on on-demand nodes."""
    resources: dict[str, float] = {"memory": DRIVER_MEMORY}
    name = cfg.sweep.driver_resource
    if name:
        if name not in available:  # no autoscaler adds it: the head (always up) has it or not
            raise UserError(
                f"sweep.driver_resource: no node of this cluster advertises {name!r}, so no "
                f"trial could start; start the head with --resources='{{\"{name}\": 100}}' "
                "(cluster/*.yaml do), or unset sweep.driver_resource"
            )
        resources[name] = 0.001
    return resources


def _scheduler(cfg: SweepConfig) -> Any:
    if cfg.sweep.scheduler == "fifo":
        return None
    from ray.tune.schedulers import ASHAScheduler

    # Training loss, reported by Train every train.report_every_steps steps.
    return ASHAScheduler(
        time_attr="training_iteration", metric="loss", mode="min", grace_period=2, max_t=10**6
    )


class ExitAfterTrials(Callback):
    """Fault drill (RAYSYS_FAULTS=sweep_exit_after_trials=N): the driver dies like a
    SIGKILL (no cleanup, no final snapshot) once N trials have completed."""

    def __init__(self, n: int) -> None:
        self.n, self.done = n, 0

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        from raysys.runtime import faults_from_env

        # Tuner.restore brings back the callbacks of the original run: a resumed driver
        # must not repeat the drill unless its own environment asks for it.
        if "sweep_exit_after_trials" not in faults_from_env(("sweep_exit_after_trials",)):
            return
        self.done += 1
        if self.done >= self.n:
            log.warning("fault drill: the sweep driver exits after %d trial(s)", self.done)
            os._exit(137)
