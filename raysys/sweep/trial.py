"""One sweep trial, run by Ray Tune: data -> LoRA SFT (`train.runner`) -> validation -> report.

The trial function is idempotent: its folder `<sweep_dir>/trials/<trial_id>/` holds
a `stage.json` per finished stage and `result.json` when the whole trial is done,
so Tune may start it again (a restored driver, a retried error) and nothing that
finished is trained or scored twice; an interrupted training run resumes from its
latest registered checkpoint (same storage, same run name).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray.train import UserCallback
from ray.tune.integration.ray_train import TuneReportCallback

from raysys.config import SweepConfig
from raysys.io import write_json
from raysys.sweep.grid import TUNE_KEY, Trial
from raysys.tasks import scoped

if TYPE_CHECKING:
    from ray.train import Checkpoint
    from ray.train.v2._internal.execution.context import TrainRunContext

    from raysys.config import GenerateSection
    from raysys.train.spec import TrainSpec

log = logging.getLogger(__name__)

# Scalars only: Tune logs every reported key to its CSV/JSON/TensorBoard files.
_SCALARS = (int, float, str, bool)
# The key only a finished trial's last report has (its Train reports have none).
FINAL_METRIC = "val_main_mean"


class TrainToTune(TuneReportCallback):
    """Tune's Train V2 -> Tune bridge, without the per-step history lists."""

    def after_report(
        self,
        run_context: TrainRunContext,
        metrics: list[dict[str, Any]],
        checkpoint: Checkpoint | None,
    ) -> None:
        slim = [{k: v for k, v in m.items() if isinstance(v, _SCALARS)} for m in metrics]
        super().after_report(run_context, slim, checkpoint)


class ReportInTrial(UserCallback):
    """The actor runner's reports -> Tune. The runner calls this in the trial function's
    own thread, so `tune.report` hands each report over in order and waits for Tune to
    take it. (Tune's `TuneReportCallback` goes through a one-slot queue meant for Train's
    controller, another process: fed from the trial's thread, its last report could
    deadlock with the trial's final `tune.report`.)"""

    def after_report(
        self,
        run_context: TrainRunContext | None,
        metrics: list[dict[str, Any]],
        checkpoint: Checkpoint | None,
    ) -> None:
        from ray import tune
        from ray.tune.integration.ray_train import CHECKPOINT_PATH_KEY

        slim = {k: v for k, v in metrics[0].items() if isinstance(v, _SCALARS)}
        if checkpoint is not None:
            slim[CHECKPOINT_PATH_KEY] = checkpoint.path
        tune.report(slim)


def trial_path(sweep_dir: str | Path, trial_id: str) -> Path:
    """A trial's folder in its sweep."""
    return Path(sweep_dir) / "trials" / trial_id


def adapter_path(trial_dir: Path) -> Path:
    """Where a trial's PEFT adapter is, under its folder."""
    return trial_dir / "train" / "adapter"


@scoped  # this run's task rows are registered for the run only
def sweep_trial(config: dict[str, Any], ctx: dict[str, Any]) -> None:
    """Tune trial function: `config["trial"]` is one `Trial.params()`."""
    from ray import tune

    from raysys.runs import RunDir, stage
    from raysys.runtime import quiet_ray_data
    from raysys.storage import join_uri, localize, pull
    from raysys.tasks.store import load_run_tasks

    trial = Trial.from_params(config[TUNE_KEY])
    cfg = trial_config(ctx["config"])
    # the run's rows (never the users' files), fetched once per node from an object store
    load_run_tasks(Path(localize(ctx["tasks_dir"], "sweep tasks")))
    trial_dir = trial_path(on_this_node(ctx), trial.trial_id)
    sweep = RunDir.at(trial_dir.parents[1])
    if sweep.uri:  # what earlier attempts (maybe on other nodes) left: its finished stages
        pull(join_uri(sweep.uri, "trials", trial.trial_id), trial_dir)
    done = trial_dir / "result.json"
    if done.is_file():  # finished before the driver restarted: report it, do nothing else
        tune.report(tune_metrics(json.loads(done.read_text())))
        return
    if ctx.get("fail_trial") == trial.trial_id:
        _fail_once(trial_dir / "faults" / "sweep_fail_trial", trial.trial_id)
    quiet_ray_data()
    start = time.perf_counter()
    data = ctx["data"][trial.trial_id]  # built and checked by the driver
    spec, gen_cfg = trial_sections(cfg, trial, ctx["threads"], data["path"], ctx["model_path"])
    summary = stage(
        trial_dir / "train",
        f"{trial.trial_id}: LoRA SFT",
        lambda d: _train(d, spec, cfg.run.name, trial.trial_id),
    )
    validation = (
        stage(
            trial_dir / "eval_validation",
            f"{trial.trial_id}: validation",
            lambda d: _validate(d, cfg, trial, ctx["model_path"], gen_cfg),
        )
        if cfg.sweep.validate_in == "trial"
        else {}  # scored in the sweep's final pass, with the test split
    )
    result = {
        "trial": trial.params(),
        "data": {k: v for k, v in data.items() if k != "path"},
        "train": summary,
        "validation": validation,
        "trial_seconds": time.perf_counter() - start,
        "adapter": str(adapter_path(trial_dir)),
        "usage": trial_usage(cfg, trial_dir, summary, validation),
    }
    write_json(done, result)
    RunDir.at(trial_dir).keep()  # object-store sweeps: kept even if the driver dies
    tune.report(tune_metrics(result))


def on_this_node(ctx: dict[str, Any]) -> Path:
    """The sweep directory a trial writes: the driver's, or for an object-store sweep
    this node's mirror of it (nodes share no disk; the same layout under this node's
    cache, so Ray Train's run names and checkpoint URIs are the same on every node, and
    what a trial writes reaches the driver through the store)."""
    from raysys.storage import in_local_mirror

    if ctx.get("sweep_mirror") is None:
        return Path(ctx["sweep_dir"])  # local storage: a path every node mounts
    return in_local_mirror(tuple(ctx["sweep_mirror"]))


class TrialError(RuntimeError):
    """A trial's cause in one line (Tune records the exception's last line)."""


def trial_config(data: dict[str, Any]) -> SweepConfig:
    """The sweep's config inside a trial: a validation error becomes its first line with
    the field, not pydantic's multi-line text (whose last line is a documentation URL)."""
    from pydantic import ValidationError

    try:
        return SweepConfig.model_validate(data)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in err["loc"]) or "config"
        raise TrialError(f"{loc}: {err['msg'].removeprefix('Value error, ')}") from None


def _fail_once(marker: Path, trial_id: str) -> None:
    """Fault drill (RAYSYS_FAULTS=sweep_fail_trial=N): the N-th trial of grid.json raises
    on its first attempt only (the marker remembers), as a transient error would."""
    if not marker.exists():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()  # atomic: an empty marker, only its existence counts
        raise RuntimeError(f"fault injection: trial {trial_id} fails once (sweep_fail_trial)")


def trial_data(cfg: SweepConfig, trial: Trial, storage_root: Path) -> dict[str, Any]:
    """The trial's cocktail at its fraction, from the shared cache (or built into it):
    the training seed does not change the data, so seeds differ only in initialisation
    and order."""
    from raysys.data.cocktail import parse_spec
    from raysys.data.mixing import materialize_cocktail

    stats: dict[str, Any] = {}
    path, counts = materialize_cocktail(
        parse_spec(trial.spec()),
        trial.fraction,
        cfg.run.seed,
        storage_root,
        cfg.sweep.train_size,
        stats=stats,
        holdout=holdout_sizes(cfg),
    )
    return {"path": str(path), "counts": counts, "rows": sum(counts.values()), **stats}


def holdout_sizes(cfg: SweepConfig) -> dict[str, int]:
    return {"test": cfg.sweep.test_size, "validation": cfg.sweep.validation_size}


def trial_sections(
    cfg: SweepConfig, trial: Trial, threads: int | None, train_path: str, model_path: str
) -> tuple[TrainSpec, GenerateSection]:
    """The trial's training spec (the base `train` section with this trial's learning rate,
    LoRA rank and seed) and its generation section, each with the thread budget unless
    the config set one. The sections were validated with the sweep; nothing here
    validates them again."""
    from raysys.train.spec import TrainSpec

    base = cfg.train
    spec = TrainSpec.from_section(
        base,
        model_path=model_path,
        train_path=train_path,
        dtype=cfg.model.dtype,
        seed=trial.seed,
        attn_implementation=cfg.model.attn_implementation,
    )
    lora = replace(spec.lora, r=trial.lora_r, alpha=base.lora.alpha_for(trial.lora_r))
    spec = replace(
        spec,
        learning_rate=trial.learning_rate,
        lora=lora,
        torch_threads=spec.torch_threads or threads,
    )
    gen = cfg.generate
    if threads and gen.torch_threads is None:
        gen = gen.model_copy(update={"torch_threads": threads})
    return spec, gen


def _train(out_dir: Path, spec: TrainSpec, run_name: str, trial_id: str) -> dict[str, Any]:
    from raysys.runtime import TRAIN_FAULTS, faults_from_env
    from raysys.storage import SyncError, push
    from raysys.train.launch import run_spec
    from raysys.train.spec import Faults

    # One line per training attempt: how a resumed sweep proves it retrained nothing.
    attempts = out_dir.parent / "train_attempts.jsonl"
    # atomic: one short line per O_APPEND write; the file is a log, never resumed from
    with open(attempts, "a") as f:
        f.write(json.dumps({"time": time.time(), "pid": os.getpid()}) + "\n")
    # object-store sweeps: in the store now, so a retry on another node (this one may die
    # mid-training: a spot preemption) pulls this line and appends its own. Best effort: a
    # log must not cost a trial attempt (the trial folder goes up again when it finishes)
    try:
        push(attempts)
    except SyncError as e:
        log.warning("%s: the attempt log stays on this node for now (%s)", trial_id, e)
    sweep_dir = out_dir.parents[2]  # <sweep_dir>/trials/<trial_id>/train
    # <name>/<run_id>/<trial>: another sweep's trial of the same id never resumes there
    spec = spec.scoped(run_name, sweep_dir.name, trial_id)
    spec = replace(spec, faults=Faults(**faults_from_env(TRAIN_FAULTS)))
    # the driver checked this dataset with the same train section (prepare_data)
    to_tune = ReportInTrial() if spec.in_actor else TrainToTune()
    return run_spec(spec, out_dir, callbacks=[to_tune], checked=True)


def eval_task_names(cfg: SweepConfig) -> list[str]:
    from raysys.tasks import get_task

    return [get_task(n).name for n in (cfg.sweep.eval_tasks or cfg.sweep.tasks)]


def eval_rows(cfg: SweepConfig, split: str) -> dict[str, tuple[Any, list[dict[str, Any]]]]:
    """Every evaluation task that has `split`, with the same rows in every trial."""
    from raysys.tasks import held_out_rows

    refs = cfg.sweep.eval_tasks or cfg.sweep.tasks
    return held_out_rows(refs, holdout_sizes(cfg), cfg.run.seed, split)


def _validate(
    out_dir: Path, cfg: SweepConfig, trial: Trial, model_path: str, gen_cfg: GenerateSection
) -> dict[str, dict[str, Any]]:
    from raysys.evaluate.scoring import evaluate_tasks

    tasks = eval_rows(cfg, "validation")
    if not tasks:
        return {}
    adapter = {trial.trial_id: str(adapter_path(out_dir.parent))}
    table = evaluate_tasks(
        tasks, model_path, adapter, gen_cfg, cfg.model.dtype, out_dir, include_base=False
    )
    return {
        rec["task"]: {k: v for k, v in rec.items() if k not in ("adapter", "task")}
        for rec in table.to_dict("records")
    }


def stage_seconds(stage_dir: Path) -> float:
    """A finished stage's own wall time (its stage.json), 0 when it has none."""
    try:
        seconds = json.loads((stage_dir / "stage.json").read_text()).get("seconds")
    except (OSError, ValueError):
        return 0.0
    return float(seconds) if isinstance(seconds, int | float) else 0.0


def trial_usage(
    cfg: SweepConfig, trial_dir: Path, summary: dict[str, Any], validation: dict[str, Any]
) -> dict[str, Any]:
    """What Ray scheduled for the trial x how long: the Train workers for the training
    stage, the engine actors for its validation pass (the trial's driver holds no CPU);
    tokens trained and generated."""
    import ray

    from raysys.analysis import cost

    gpus = float(ray.cluster_resources().get("GPU", 0)) if ray.is_initialized() else 0.0
    train = cost.times(cost.train_resources(cfg.train), stage_seconds(trial_dir / "train"))
    engines = cost.engine_resources(cfg.generate, cost.engine_on_gpu(cfg.generate, gpus))
    val = cost.times(engines, stage_seconds(trial_dir / "eval_validation")) if validation else {}
    return cost.total(
        [
            cost.usage(train, tokens_trained=summary.get("train_tokens") or 0),
            cost.usage(val, tokens_generated=cost.generated_tokens(validation.values())),
        ]
    )


def tune_metrics(result: dict[str, Any]) -> dict[str, Any]:
    """What a finished trial reports to Tune: validation scores and training figures."""
    val = result["validation"]
    mains = [m["main"] for m in val.values() if m.get("main") is not None]
    out: dict[str, Any] = {f"val_main/{t}": m["main"] for t, m in val.items()}
    out[FINAL_METRIC] = sum(mains) / len(mains) if mains else float("nan")
    train = result["train"]
    for key in ("train_loss", "train_tokens", "tokens_per_second", "step"):
        if isinstance(train.get(key), _SCALARS):
            out[key] = train[key]
    out["loss"] = train.get("train_loss", float("nan"))
    out["trial_seconds"] = result["trial_seconds"]
    seconds = (result.get("usage") or {}).get("resource_seconds") or {}
    out["cpu_s"] = float(seconds.get("CPU", 0.0))
    out["gpu_s"] = float(sum(v for k, v in seconds.items() if k != "CPU"))
    return out
