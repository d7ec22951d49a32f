"""`raysys sweep CONFIG`: a Ray Tune grid of LoRA SFT trials, one test pass, a report.

Layout of a sweep directory `<run.storage_path>/<run.name>/<run_id>/`:

- `config.yaml` (resolved), `grid.json` (every trial's parameters)
- `tune/`: Ray Tune's experiment (state for `--resume`, per-trial CSV/JSON and
  TensorBoard event files, named by trial id)
- `trials/<trial_id>/`: `train/` (adapter, metrics, Ray Train checkpoints),
  `eval_validation/`, `result.json` once the trial is done
- `test_eval/<key>/`: every finished adapter and the base model on the test splits,
  in one engine pass
- `results.parquet|csv` (one row per (trial, task)), `test_predictions.parquet`,
  `sweep.json` (wall time, concurrency, data cache), and the report
  (`report.md`, `report.html`, `plots/`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from ray.tune import Callback

from raysys.config import SweepConfig
from raysys.data.io import write_csv, write_json, write_parquet
from raysys.errors import UserError
from raysys.sweep.grid import Plan, Trial, expand_grid, plan_resources
from raysys.sweep.trial import eval_rows, eval_task_names, sweep_trial
from raysys.tasks import scoped
from raysys.tasks.store import TASKS_DIR, Need, Prepared

log = logging.getLogger(__name__)

TRIAL_ID_KEY = "trial"
VAL_SUFFIX = "@validation"  # validation rows in the final pass (sweep.validate_in=final)
DRIVER_MEMORY = (
    256 * 2**20
)  # bytes reserved per trial driver  # Tune's param_space holds {"trial": Trial.params()}


class SweepIncompleteError(UserError):
    """Some trials errored; the others are analysed, and `--resume --retry-errored` retries."""

    exit_code = 1


@dataclass
class SweepOutcome:
    sweep_dir: Path
    results: pd.DataFrame
    meta: dict[str, Any]
    errored: list[str] = field(default_factory=list)
    report: dict[str, str] = field(default_factory=dict)


@scoped  # this run's task rows are registered for the run only
def run_sweep(cfg: SweepConfig, resume: bool = False, retry_errored: bool = False) -> SweepOutcome:
    """Run (or resume) the grid, score every adapter on test in one pass, write the report."""
    from raysys.engines import check_fits
    from raysys.models import resolve_model
    from raysys.runs import check_job_storage, check_writable, open_run, publish
    from raysys.runtime import init_ray
    from raysys.storage import local_root
    from raysys.train.launch import check_checkpoint_storage, check_local_budget

    check_job_storage(cfg.run.storage_path)
    check_checkpoint_storage(cfg.train)
    trials = expand_grid(cfg)  # bad grids fail here, before any output
    callbacks = tune_callbacks(cfg)
    cfg = locate_sweep(cfg, resume)  # nothing to resume, or a sweep in the way: refused now
    check_local_budget(cfg.train, cfg.ray)  # a trial this Ray could never hold: refused now
    check_fits(cfg.generate, cfg.ray)
    check_writable(local_root(cfg.run.storage_path))
    model_path = resolve_model(cfg.model.source)
    tasks = prepare_tasks(cfg, resume)  # every task's rows read and checked; nothing written
    data, data_stats = prepare_data(cfg, trials, model_path)  # bad data: refused here too
    init_ray(cfg.ray.address, cfg.ray.num_cpus)
    plan = plan_resources(cfg, len(trials), _cluster_resources())
    trial_resources(cfg, plan.available)  # a resource no node has: refused now
    sweep_dir = open_run(cfg)
    tasks.write()  # <sweep_dir>/tasks: what trials read, never the users' files
    publish(sweep_dir / TASKS_DIR)
    log.info("sweep: %d trials, %d at a time (%s)", len(trials), plan.concurrency, plan.why)
    write_json(sweep_dir / "grid.json", [t.params() for t in trials])
    publish(sweep_dir / "grid.json")
    start = time.perf_counter()
    failures = run_tune(
        cfg, trials, sweep_dir, model_path, data, plan, callbacks, resume, retry_errored
    )
    tune_seconds = time.perf_counter() - start
    finished, errored = collect_trials(sweep_dir, trials)
    if not finished:
        raise SweepIncompleteError(
            f"no trial finished ({len(errored)} errored){_first_cause(errored, failures)}; see "
            f"{sweep_dir / 'tune'}; fix the cause and run again with --resume --retry-errored"
        )
    test, preds = test_pass(cfg, sweep_dir, model_path, finished)
    finished, test = merge_final_validation(finished, test)
    results = results_table(cfg, finished, test)
    meta = sweep_meta(cfg, trials, finished, errored, plan, tune_seconds, resume) | data_stats
    meta["failures"] = failures  # retried ones included: a finished trial may have failed once
    write_parquet(sweep_dir / "results.parquet", results)
    write_csv(sweep_dir / "results.csv", results)
    write_parquet(sweep_dir / "test_predictions.parquet", preds)
    write_json(sweep_dir / "sweep.json", meta)
    report = write_sweep_report(sweep_dir)
    publish(sweep_dir)  # object-store runs: results, predictions, report up to the store
    outcome = SweepOutcome(sweep_dir, results, meta, errored, report)
    if errored:
        raise SweepIncompleteError(
            f"{len(errored)} of {len(trials)} trials errored ({', '.join(errored[:3])})"
            f"{_first_cause(errored, failures)}; the report covers the rest: {sweep_dir}; retry "
            "them with --resume --retry-errored"
        )
    return outcome


def dry_run(cfg: SweepConfig) -> tuple[list[Trial], Plan]:
    """The grid and the resources it will use, without starting Ray or writing anything."""
    from raysys.sweep.grid import local_resources

    trials = expand_grid(cfg)
    tune_callbacks(cfg)
    available = local_resources(cfg)
    if cfg.ray.address or os.environ.get("RAY_ADDRESS"):
        # An existing cluster (e.g. under `ray job submit`): attach and read what it has
        # now; attaching starts nothing and writes nothing.
        import ray

        from raysys.runtime import init_ray

        init_ray(cfg.ray.address)
        available = {k: float(v) for k, v in ray.cluster_resources().items()}
    return trials, plan_resources(cfg, len(trials), available)


# --------------------------------------------------------------------------- setup


def prepare_data(
    cfg: SweepConfig, trials: list[Trial], model_path: str
) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """Build every distinct (cocktail, shares, fraction) once and check it as training
    would (columns, chat template, EOS after truncation). Returns each trial's data
    (path, rows per task), which trials only read, and the build counts."""
    from raysys.storage import local_root, push
    from raysys.sweep.trial import trial_data
    from raysys.train.launch import preflight

    root = local_root(cfg.run.storage_path)
    datasets: dict[tuple, dict[str, Any]] = {}
    by_trial = {}
    for t in trials:
        key = (t.components, t.general, t.math, t.fraction)
        if key not in datasets:
            datasets[key] = trial_data(cfg, t, root)
            preflight(datasets[key]["path"], model_path, cfg.train)
            push(Path(datasets[key]["path"]).parent)  # object stores: workers read it there
        by_trial[t.trial_id] = {k: v for k, v in datasets[key].items() if k != "built"}
    built = sum(d["built"] for d in datasets.values())
    log.info(
        "training data: %d datasets (%d built, %d cached)",
        len(datasets),
        built,
        len(datasets) - built,
    )
    stats = {"datasets": len(datasets), "data_built": built, "data_cached": len(datasets) - built}
    return by_trial, stats


def task_needs(cfg: SweepConfig) -> list[Need]:
    """Every task's rows the sweep uses: train (trainable tasks and regularisers in use)
    and the held-out splits each task has."""
    from raysys.tasks import REGULARISERS, get_task

    sw = cfg.sweep
    hold = {"validation": sw.validation_size, "test": sw.test_size}
    regs = [t for t, s in zip(REGULARISERS, (sw.general, sw.math), strict=True) if max(s) > 0]
    needs = []
    for ref in [*sw.tasks, *regs, *(sw.eval_tasks or [])]:
        splits = get_task(ref).splits
        sizes = {s: n for s, n in hold.items() if s in splits}
        if ref in sw.tasks or ref in regs:
            sizes["train"] = sw.train_size
        needs.append(Need(ref, sizes))
    return needs


def prepare_tasks(cfg: SweepConfig, resume: bool) -> Prepared:
    """Read and check every task's rows (a resumed sweep reuses the rows it started with,
    fetched from its object store first); `write()` puts them in the sweep directory."""
    from raysys.runs import run_root
    from raysys.storage import local_root
    from raysys.tasks.store import prepare

    run = cfg.run
    sweep_dir = local_root(run.storage_path) / run.name / str(run.run_id)
    if resume:
        sweep_dir = run_root(run.storage_path, run.name, str(run.run_id))
    return prepare(sweep_dir, task_needs(cfg), run.seed)


def locate_sweep(cfg: SweepConfig, resume: bool) -> SweepConfig:
    """`cfg` with its run id fixed: new, or (with `resume`) an existing sweep with a Tune
    state (the latest of `run.name` when no run id is given). Checks only; writes nothing."""
    from ray.tune import Tuner

    from raysys.config import resolve_run_id
    from raysys.runs import latest_run_id
    from raysys.storage import exists, local_root, shown

    storage, name = cfg.run.storage_path, cfg.run.name
    where = shown(local_root(storage))  # the path, or the bucket URI without its options
    run_id = cfg.run.run_id
    if resume and run_id is None:
        run_id = latest_run_id(storage, name, "tune")
        if run_id is None:
            raise UserError(
                f"--resume: no sweep found under {where}/{name}; run it without --resume "
                "first, or set run.storage_path / run.run_id to the sweep to resume"
            )
    cfg = cfg.model_copy(update={"run": cfg.run.model_copy(update={"run_id": run_id})})
    cfg = cfg.model_copy(update={"run": cfg.run.model_copy(update={"run_id": resolve_run_id(cfg)})})
    shown_dir = f"{where}/{name}/{cfg.run.run_id}"
    tune_dir = tune_location(cfg, local_root(storage) / name / cfg.run.run_id)
    if resume and not Tuner.can_restore(tune_dir):
        raise UserError(
            f"--resume: {shown_dir} holds no sweep to resume; check run.run_id, or drop --resume"
        )
    if not resume and exists(tune_dir):
        raise UserError(
            f"{shown_dir} already holds a sweep; add --resume to continue it, or set a new "
            "run.run_id"
        )
    return cfg


def tune_location(cfg: SweepConfig, sweep_dir: Path) -> str:
    """Where Ray Tune keeps the experiment: `<sweep_dir>/tune`, in the object store itself
    when the run storage is one (Tune syncs its state there; `--resume` restores from it
    on any machine)."""
    from raysys.storage import join_uri

    return join_uri(tune_parent(cfg, sweep_dir), "tune")


def tune_parent(cfg: SweepConfig, sweep_dir: Path) -> str:
    from raysys.storage import is_remote, join_uri

    if is_remote(cfg.run.storage_path):
        return join_uri(cfg.run.storage_path, cfg.run.name, sweep_dir.name)
    return str(sweep_dir)


def _cluster_resources() -> dict[str, float]:
    import ray

    return dict(ray.cluster_resources())


def tune_callbacks(cfg: SweepConfig) -> list[Any]:
    """MLflow when configured (checked up front: a missing extra fails before any work)."""
    out: list[Any] = []
    ml = cfg.sweep.mlflow
    if ml.tracking_uri:
        try:
            import mlflow  # noqa: F401
            from ray.air.integrations.mlflow import MLflowLoggerCallback
        except ImportError:
            raise UserError(
                "sweep.mlflow.tracking_uri needs MLflow: pip install 'raysys[mlflow]', or unset it"
            ) from None
        out.append(
            MLflowLoggerCallback(
                tracking_uri=ml.tracking_uri, experiment_name=ml.experiment, save_artifact=False
            )
        )
    return out


def trial_dirname(trial: Any) -> str:
    """Tune's per-trial folder (and TensorBoard run) is the trial id."""
    return trial.config[TRIAL_ID_KEY]["trial_id"]


def _threads(cfg: SweepConfig, plan: Plan) -> int | None:
    """Intra-op threads per process on a one-node cluster, so concurrent trials do not
    oversubscribe the cores; multi-node clusters let each worker size itself."""
    import ray

    if len([n for n in ray.nodes() if n.get("Alive")]) != 1:
        return None
    return max(1, (os.cpu_count() or 1) // (plan.concurrency * cfg.train.num_workers))


# --------------------------------------------------------------------------- Tune


def run_tune(
    cfg: SweepConfig,
    trials: list[Trial],
    sweep_dir: Path,
    model_path: str,
    data: dict[str, dict[str, Any]],
    plan: Plan,
    callbacks: list[Any],
    resume: bool,
    retry_errored: bool,
) -> dict[str, list[str]]:
    """Every trial through Ray Tune (FIFO grid, or ASHA on the training loss). Returns
    each trial's failures (see `trial_failures`)."""
    from ray import tune

    from raysys.runtime import faults_from_env

    # Tune snapshots its state at most this often; a killed driver loses at most this
    # much bookkeeping (the trials themselves are idempotent, see sweep.trial).
    os.environ["TUNE_GLOBAL_CHECKPOINT_S"] = str(cfg.sweep.snapshot_seconds)
    ctx = {
        "config": cfg.model_dump(mode="json"),
        "sweep_dir": str(sweep_dir),
        "model_path": model_path,
        "data": data,  # trial id -> its prepared training data (path, rows per task)
        "tasks_dir": str(sweep_dir / TASKS_DIR),  # every task's rows: trials read only these
        "threads": _threads(cfg, plan),
    }
    faults = faults_from_env(("sweep_exit_after_trials", "sweep_fail_trial"))
    if "sweep_exit_after_trials" in faults:
        callbacks = [*callbacks, ExitAfterTrials(faults["sweep_exit_after_trials"])]
    if "sweep_fail_trial" in faults:  # the N-th trial of grid.json raises once
        ctx["fail_trial"] = trials[faults["sweep_fail_trial"] % len(trials)].trial_id
    trainable = tune.with_resources(
        tune.with_parameters(sweep_trial, ctx=ctx), trial_resources(cfg, plan.available)
    )
    if resume:
        tuner = tune.Tuner.restore(
            tune_location(cfg, sweep_dir),
            trainable,
            resume_unfinished=True,
            resume_errored=retry_errored,
        )
    else:
        tuner = tune.Tuner(
            trainable,
            param_space={
                TRIAL_ID_KEY: tune.grid_search([t.params() for t in longest_first(trials, data)])
            },
            tune_config=tune.TuneConfig(
                max_concurrent_trials=plan.concurrency,
                scheduler=_scheduler(cfg),
                trial_dirname_creator=trial_dirname,
                trial_name_creator=trial_dirname,
            ),
            run_config=tune.RunConfig(
                name="tune",
                storage_path=tune_parent(cfg, sweep_dir),
                callbacks=callbacks,
                verbose=1,
                failure_config=tune.FailureConfig(max_failures=cfg.sweep.max_trial_failures),
            ),
        )
    return trial_failures(tuner.fit())


def trial_failures(grid: Any) -> dict[str, list[str]]:
    """Every failure of every trial (trial id -> one line per failure, in order), retried
    or final, from Tune's per-trial `error.txt` (one `Failure # N` block per failure);
    the last error Tune kept where that file cannot be read."""
    out: dict[str, list[str]] = {}
    for r in grid:
        tid = r.config[TRIAL_ID_KEY]["trial_id"]
        try:
            with r.filesystem.open_input_stream(f"{r.path}/error.txt") as f:
                text = f.read().decode(errors="replace")
        except (FileNotFoundError, OSError):
            text = ""
        blocks = [b for b in _FAILURE_HEADER.split(text) if b.strip()]
        causes = [_cause(b) for b in blocks]
        if not causes and r.error is not None:
            causes = [_cause(str(r.error))]
        if causes:
            out[tid] = causes
    return out


_FAILURE_HEADER = re.compile(r"^Failure # \d+ \(occurred at [^)]*\)$", re.M)


_EXC_LINE = re.compile(
    r"^(?:[A-Za-z_][\w]*\.)*([A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt)): (.+)$"
)
_PYDANTIC_MSG = re.compile(r"^(?:Value error, )?(.*?) \[type=\w+.*\]$")


def cause(text: str) -> str:
    """One line that says why a trial failed: the traceback's last `Type: message` line
    without the module path; for a pydantic error the field and its message (its own last
    line is a documentation URL)."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith("For further information visit")]
    line = lines[-1] if lines else "unknown error"
    for i in range(len(lines) - 1, -1, -1):
        if (m := _PYDANTIC_MSG.match(lines[i])) and i > 0:
            line = f"ValidationError: {lines[i - 1]}: {m.group(1)}"
            break
        if m := _EXC_LINE.match(lines[i]):
            if "validation error" in m.group(2) and i + 2 < len(lines):
                continue  # its detail lines follow; the loop met them already
            line = f"{m.group(1)}: {m.group(2)}"
            break
    return line if len(line) <= 300 else line[:297] + "..."


_cause = cause


def _first_cause(errored: list[str], failures: dict[str, list[str]]) -> str:
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


# --------------------------------------------------------------------------- results


def collect_trials(
    sweep_dir: Path, trials: list[Trial]
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Finished trials' results by id; the ids of the others."""
    finished, errored = {}, []
    for t in trials:
        done = sweep_dir / "trials" / t.trial_id / "result.json"
        if done.is_file():
            res = json.loads(done.read_text())
            # where the adapter is now (the sweep may have been moved, or pulled from an
            # object store into another machine's mirror), not where it was written
            res["adapter"] = str(done.parent / "train" / "adapter")
            finished[t.trial_id] = res
        else:
            errored.append(t.trial_id)
    return finished, errored


def test_pass(
    cfg: SweepConfig, sweep_dir: Path, model_path: str, finished: dict[str, dict[str, Any]]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Base + every finished adapter on every test split, one engine load."""
    from raysys.evaluate.run import evaluate_tasks
    from raysys.runs import stage

    adapters = {tid: res["adapter"] for tid, res in sorted(finished.items())}
    final_val = cfg.sweep.validate_in == "final"
    blob = json.dumps([sorted(adapters), final_val] if final_val else sorted(adapters))
    key = hashlib.sha256(blob.encode()).hexdigest()[:12]
    out = sweep_dir / "test_eval" / key
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
    """One row per (trial, evaluated task), base model rows included (trial_id "base")."""
    from raysys.tasks import get_task

    test_by = {(r["adapter"], r["task"]): r for r in test.to_dict("records")}
    rows = []
    for tid, res in [("base", None), *sorted(finished.items())]:
        for name in eval_task_names(cfg):
            task = get_task(name)
            row = _trial_columns(tid, res, name) | {
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
    }


def write_sweep_report(sweep_dir: Path) -> dict[str, str]:
    from raysys.analysis.report import write_report

    paths = write_report(sweep_dir)
    log.info("report: %s", paths.html)
    return {"markdown": str(paths.markdown), "html": str(paths.html)}
