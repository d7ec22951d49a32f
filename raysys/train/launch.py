"""Driver side of training: checks, the `TorchTrainer`, resume, outputs.

`run_spec` (or `run_training`, from a `train` section) checks the data before any
worker starts (columns, rows, chat template, EOS after truncation), trains a `TrainSpec`
on its runner (`train.runner`: one Ray actor, `raysys.train.actor`, or a Ray Train V2
worker group), and leaves in `out_dir`:

- `adapter/`: PEFT layout, loadable on the raw base (`PeftModel.from_pretrained`,
  vLLM's LoRA loader). With `train.init_adapter` (DPO after SFT) it is the exact
  concatenation of the init adapter and the new one (rank r1 + r2), and the new
  adapter alone (relative to the merged base) is in `delta_adapter/`.
- `metrics.json`: the final summary (loss, tokens, tokens/s, s/step, peak memory,
  MFU, versions) and the per-step history, deduplicated by step.

Ray Train storage (`train.checkpoint_storage`, default `out_dir/ray_train`, may
be `s3://` or `gs://`) holds the checkpoints and one small JSON per report
(written by `ReportRecorder` on the controller). A re-run with the same storage
resumes from the latest registered checkpoint; the steps it replays appear twice
in the report files and once in `metrics.json` (the later report wins).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray.train import UserCallback

from raysys.errors import UserError
from raysys.io import copy_tree_atomic, replace_tree, write_json
from raysys.storage import for_workers, localize, remote_of
from raysys.train.guards import DataGuardError, TrainingDivergedError, check_columns, check_eos
from raysys.train.reports import (  # noqa: F401 - read_reports is the module's public name
    REPORTS,
    ReportRecorder,
    StepProgress,
    check_history,
    count_reports,
    dedupe_history,
    filesystem_of,
    read_reports,
)
from raysys.train.spec import HF_CKPT, TrainSpec

if TYPE_CHECKING:
    from ray.train import Checkpoint
    from ray.train.torch import TorchTrainer

    from raysys.config import RaySection, TrainSection

log = logging.getLogger(__name__)

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
)


class TrainingInterruptedError(UserError):
    """Training stopped (a worker died, an error); re-running the same run resumes it."""

    exit_code = 1


def run_training(
    train_path: str,
    model_path: str,
    train_cfg: TrainSection,
    model_dtype: str,
    out_dir: Path,
    seed: int,
    faults: dict[str, int] | None = None,
    name: str = "train",
    attn_implementation: str | None = None,
    callbacks: list[UserCallback] | None = None,
) -> dict[str, Any]:
    """`run_spec` for a validated `train` section, one model, dataset and seed."""
    spec = TrainSpec.from_section(
        train_cfg,
        model_path=model_path,
        train_path=train_path,
        dtype=model_dtype,
        seed=seed,
        attn_implementation=attn_implementation,
        faults=faults,
    )
    return run_spec(spec, out_dir, name=name, callbacks=callbacks)


def run_spec(
    spec: TrainSpec,
    out_dir: Path,
    name: str = "train",
    callbacks: list[UserCallback] | None = None,
    checked: bool = False,
) -> dict[str, Any]:
    """Train a LoRA adapter (SFT or DPO) in one Ray actor or on Ray Train; the summary.

    `callbacks`: more Train `UserCallback`s (a sweep passes Tune's report bridge).
    `checked`: the caller ran `preflight` on this data, model and spec already (a sweep's
    driver checks each dataset once; its trials skip the tokenizer load and the EOS check)."""
    stamps = {"entry": time.time()}
    if not checked:
        preflight(spec.train_path, spec.model_path, spec)
    stamps["preflight_done"] = time.time()
    # In a mirrored (object-store) run directory the default goes straight to the store.
    local_ckpt = (out_dir / "ray_train").resolve()
    storage = spec.checkpoint_storage or remote_of(local_ckpt) or str(local_ckpt)
    _check_cpu_budget(spec)
    start = time.perf_counter()
    try:
        earlier = count_reports(storage, name)  # a resumed run's reports from earlier fits
        with StepProgress(storage, name, f"training {name}"):
            metrics, checkpoint = _fit(
                _worker_spec(spec, out_dir), storage, name, callbacks or [], stamps, earlier
            )
    except Exception as e:  # TrainingFailedError and friends: explain, keep the cause
        raise _explain(e, storage, name) from e
    stamps["fit_done"] = time.time()
    reports = read_reports(storage, name)
    history, replayed = dedupe_history(reports)
    final = {k: v for k, v in metrics.items() if k != "history"}
    final["wall_seconds"] = time.perf_counter() - start
    final["replayed_steps"] = replayed
    final["runner"] = "actor" if spec.in_actor else "ray_train"
    worker_stamps = final.pop("worker_stamps", None) or {}
    if earlier and count_reports(storage, name) == earlier:  # resumed with no step left: this
        final["steps_this_attempt"] = 0  # fit restored and trained nothing; the throughput
        worker_stamps = {}  # fields stay the last fit's that trained
    check_history(history, final, spec.logging_steps)
    final.update(_write_adapter(checkpoint, spec.init_adapter, out_dir))
    stamps["adapter_written"] = time.time()
    final["phases"] = startup_phases(stamps, worker_stamps)
    write_json(
        out_dir / "metrics.json",
        {"final": final, "history": history, "checkpoint": checkpoint.path},
    )
    return {k: v for k, v in final.items() if not isinstance(v, (dict, list))}


# (phase, from stamp, to stamp): where a training run's wall time goes, from the driver's
# and rank 0's wall clocks (one machine's clock when local; a cluster's nodes are assumed
# NTP-synchronised, good to milliseconds against phases of seconds)
PHASES = (
    ("preflight", "entry", "preflight_done"),
    ("driver_setup", "preflight_done", "fit_start"),
    ("worker_group_start", "fit_start", "worker_process"),
    ("worker_setup", "worker_process", "worker_entry"),
    ("peak_probe", "worker_entry", "probe_done"),
    ("build_trainer", "probe_done", "trainer_built"),
    ("train_setup", "trainer_built", "train_begin"),
    ("first_step", "train_begin", "first_step_done"),
    ("other_steps", "first_step_done", "last_step_done"),
    ("finish", "last_step_done", "fit_done"),
    ("write_adapter", "fit_done", "adapter_written"),
)


def startup_phases(driver: dict[str, float], worker: dict[str, float]) -> dict[str, float]:
    """Seconds per phase of a training run (`PHASES`); a phase whose stamps are missing
    (a resumed attempt's worker, a run that never reached a step) is left out. A Ray
    worker process started before the fit (Ray keeps idle workers) counts from the fit."""
    stamps = {**driver, **worker}
    if "worker_process" in stamps and "fit_start" in stamps:
        stamps["worker_process"] = max(stamps["worker_process"], stamps["fit_start"])
    return {
        name: round(stamps[b] - stamps[a], 3)
        for name, a, b in PHASES
        if a in stamps and b in stamps
    }


def _worker_spec(spec: TrainSpec, out_dir: Path) -> TrainSpec:
    """What the workers get: mirrored inputs as URIs (workers may run on other nodes and
    fetch them with `localize`), and the fault drills' marker folder in this run."""
    marker_dir = spec.faults.marker_dir or str((out_dir / "faults").resolve())
    return replace(
        spec,
        train_path=for_workers(spec.train_path),
        init_adapter=for_workers(spec.init_adapter),
        faults=replace(spec.faults, marker_dir=marker_dir),
    )


def _fit(
    spec: TrainSpec,
    storage: str,
    name: str,
    callbacks: list[UserCallback],
    stamps: dict[str, float],
    earlier: int,
) -> tuple[dict[str, Any], Checkpoint]:
    """Train on the spec's runner: one Ray actor (`raysys.train.actor`) or a Ray Train
    worker group; the last report's metrics and the final checkpoint. `earlier`: the run's
    report files from earlier fits."""
    if spec.in_actor:
        from raysys.train.actor import fit_in_actor

        stamps["fit_start"] = time.time()
        return fit_in_actor(spec, storage, name, callbacks, earlier)
    trainer = _torch_trainer(spec, storage, name, callbacks)
    stamps["fit_start"] = time.time()
    result = trainer.fit()
    if result.checkpoint is None:
        raise TrainingInterruptedError("training finished without a checkpoint; see the Ray logs")
    return dict(result.metrics or {}), result.checkpoint


def _torch_trainer(
    spec: TrainSpec, storage: str, name: str, callbacks: list[UserCallback]
) -> TorchTrainer:
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.train.v2.api.config import LoggingConfig

    from raysys.runtime import WORKER_ENV

    return TorchTrainer(
        _train_loop,
        train_loop_config={"spec": spec},
        scaling_config=ScalingConfig(
            num_workers=spec.num_workers,
            use_gpu=spec.use_gpu,
            accelerator_type=spec.accelerator_type,
            resources_per_worker=({"GPU": 1} if spec.use_gpu else {"CPU": spec.cpus_per_worker})
            | spec.worker_resources,
        ),
        run_config=RunConfig(
            name=name,
            storage_path=storage,
            failure_config=FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=spec.keep_checkpoints),
            worker_runtime_env={"env_vars": WORKER_ENV},
            callbacks=[ReportRecorder(storage, name), *callbacks],
            # Ray Train logs every report's full metrics at INFO; ours go to metrics.json.
            logging_config=LoggingConfig(log_level="WARNING"),
        ),
    )


def _train_loop(config: dict[str, TrainSpec]) -> None:
    """Ray Train's per-worker function, by reference: the process that calls `fit` (a sweep
    trial's) pickles only this light module's name; torch, transformers, PEFT and TRL are
    imported by the workers, which train (BENCHMARKS.md, "Trial start-up")."""
    from raysys.train.worker import train_worker

    train_worker(config)


def _write_adapter(
    checkpoint: Checkpoint, init_adapter: str | None, out_dir: Path
) -> dict[str, Any]:
    """The trained adapter into `out_dir/adapter`; after an init adapter (DPO after SFT)
    the new one alone goes to `delta_adapter` and `adapter` is the two concatenated."""
    trained = out_dir / ("delta_adapter" if init_adapter else "adapter")
    with checkpoint.as_directory() as ckpt:
        _copy_adapter(Path(ckpt) / HF_CKPT, trained)
    if not init_adapter:
        return {}
    from raysys.train.adapters import concat_adapters

    tmp = out_dir / ".adapter.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    init_local = localize(init_adapter, "train.init_adapter")
    combined = concat_adapters([init_local, trained], tmp)
    for f in TOKENIZER_FILES:
        if (trained / f).is_file():
            shutil.copy2(trained / f, tmp / f)
    replace_tree(tmp, out_dir / "adapter")  # a crash leaves the old adapter or the new
    return {"combined_adapter": combined}


def preflight(
    train_path: str, model_path: str, train_cfg: TrainSection | TrainSpec
) -> dict[str, int]:
    """Everything that can be checked before a worker starts; a one-line error else."""
    import pyarrow.parquet as pq
    from transformers import AutoTokenizer

    from raysys.models import local_model

    # a sweep trial may run on a node other than the driver's (nothing shared but the store)
    shown_path, train_path = train_path, localize(train_path, "data.path")
    model_path = local_model(model_path)
    if not Path(train_path).exists():
        raise DataGuardError(f"training data not found: {shown_path}; check data.path")
    init = train_cfg.init_adapter and localize(train_cfg.init_adapter, "train.init_adapter")
    if init and not (Path(init) / "adapter_config.json").is_file():
        raise DataGuardError(
            f"train.init_adapter: {train_cfg.init_adapter} is not a PEFT adapter dir "
            "(no adapter_config.json); point it at a finished run's adapter/"
        )
    try:
        table = pq.read_table(train_path)
    except (ValueError, OSError) as e:  # not parquet, truncated: ArrowInvalid is a ValueError
        raise DataGuardError(
            f"data.path: {train_path} is not a readable parquet file ({type(e).__name__}); "
            "point it at training parquet (e.g. a synth sft.parquet)"
        ) from None
    check_columns(table.column_names, table.num_rows, train_cfg.method, train_path)
    tok = AutoTokenizer.from_pretrained(model_path)
    found = check_eos(tok, table.to_pylist(), train_cfg.method, train_cfg.max_seq_length)
    check_context(model_path, found["longest_tokens"], train_cfg.max_seq_length)
    return found


def check_context(model_path: str, longest: int, max_seq_length: int) -> None:
    """Rows the truncation limit lets through must fit the model's context window."""
    from transformers import AutoConfig

    context = getattr(AutoConfig.from_pretrained(model_path), "max_position_embeddings", None)
    if context and longest > context and max_seq_length > context:
        raise DataGuardError(
            f"rows of up to {longest} tokens exceed the model's context "
            f"(max_position_embeddings={context}) and train.max_seq_length={max_seq_length} "
            f"would not cut them; set train.max_seq_length <= {context} or shorten the rows"
        )


def scoped_checkpoint_storage(train_cfg: TrainSection, *parts: str) -> TrainSection:
    """`train_cfg` with `train.checkpoint_storage` narrowed to `<storage>/<parts...>`: one
    folder per run (and sweep trial or pipeline stage), since Ray Train resumes from
    whatever checkpoint it finds there. `TrainSpec.scoped` does the same to a spec."""
    if not train_cfg.checkpoint_storage:
        return train_cfg
    from raysys.storage import join_uri

    scoped = join_uri(train_cfg.checkpoint_storage, *parts)
    return train_cfg.model_copy(update={"checkpoint_storage": scoped})


def check_checkpoint_storage(train_cfg: TrainSection) -> None:
    """An object-store `train.checkpoint_storage` answers and takes a write, before any
    work starts (an unreachable endpoint would otherwise fail at the first checkpoint)."""
    if train_cfg.checkpoint_storage:
        from raysys.storage import probe

        probe(train_cfg.checkpoint_storage, "train.checkpoint_storage")


def check_local_budget(train_cfg: TrainSection, ray_cfg: RaySection) -> None:
    """Before Ray starts: a new local Ray (no address given) that could never hold the
    workers is refused now, before a run directory exists."""

    import ray

    if ray_cfg.address or os.environ.get("RAY_ADDRESS"):
        return  # attached clusters are checked (or autoscale) once attached
    if ray.is_initialized():  # this process's own Ray (init_ray will reuse it)
        _refuse_if_short(train_cfg, ray.cluster_resources().get("CPU", 0))
    else:
        _refuse_if_short(train_cfg, float(ray_cfg.num_cpus or os.cpu_count() or 1))


def _check_cpu_budget(train_cfg: TrainSection | TrainSpec) -> None:
    """A local Ray that cannot fit the workers would wait forever: say so now."""
    import ray

    from raysys.runtime import started_locally

    if train_cfg.use_gpu or not started_locally():
        return  # an autoscaling cluster may grow to fit
    _refuse_if_short(train_cfg, ray.cluster_resources().get("CPU", 0))


def _refuse_if_short(train_cfg: TrainSection | TrainSpec, have: float) -> None:
    if train_cfg.use_gpu:
        return
    need = train_cfg.num_workers * train_cfg.cpus_per_worker
    if need > have:
        raise UserError(
            f"train.num_workers x train.cpus_per_worker = {need:g} CPUs, but this Ray has "
            f"{have:g}; lower train.cpus_per_worker (fractions are fine) or raise ray.num_cpus"
        )


def _copy_adapter(hf_ckpt: Path, dst: Path) -> None:
    """The adapter and tokenizer files of an HF checkpoint (no optimizer state)."""
    keep = [
        f for f in hf_ckpt.iterdir() if f.name.startswith("adapter_") or f.name in TOKENIZER_FILES
    ]
    if not any(f.name == "adapter_config.json" for f in keep):
        raise TrainingInterruptedError(f"checkpoint {hf_ckpt} holds no adapter")
    tmp = dst.parent / f".{dst.name}.src"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in keep:
        shutil.copy2(f, tmp / f.name)
    copy_tree_atomic(tmp, dst)
    shutil.rmtree(tmp, ignore_errors=True)


def _causes(exc: BaseException) -> list[BaseException]:
    """`exc`, the per-worker failures inside a WorkerGroupError, and their causes."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop()
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        todo.extend(getattr(e, "worker_failures", {}).values())
        # RayTaskError (the actor runner) carries the training's exception as `cause`
        links = (e.__cause__, getattr(e, "controller_failure", None), getattr(e, "cause", None))
        todo.extend(x for x in links if isinstance(x, BaseException))
    return seen


def _latest_checkpoint_step(storage: str, name: str) -> int | None:
    steps = [r["step"] for r in read_reports(storage, name) if r.get("checkpoint")]
    return max(steps) if steps else None


def _explain(exc: Exception, storage: str, name: str) -> UserError:
    from raysys.storage import bare, is_storage_error, one_line

    causes = _causes(exc)
    for e in causes:
        if isinstance(e, DataGuardError):
            return DataGuardError(str(e).splitlines()[0])
    step = _latest_checkpoint_step(storage, name)
    kept = (
        f"the last good checkpoint (step {step}) is kept in {bare(storage)}/{name}"
        if step is not None
        else "no checkpoint was registered yet"
    )
    storage_error = next((e for e in causes if is_storage_error(e)), None)
    if storage_error is not None:
        return TrainingInterruptedError(
            f"storage not writable: {one_line(storage_error)}; {kept}; fix the storage (space, "
            "permissions, mount) and run it again with the same run.run_id to resume"
        )
    for e in causes:
        if isinstance(e, FloatingPointError):
            msg = next(
                (ln for ln in str(e).splitlines() if "training loss is" in ln), str(e)
            ).strip()
            msg = msg[msg.find("training loss is") :] if "training loss is" in msg else msg
            return TrainingDivergedError(f"{msg}; {kept}")
    from ray.exceptions import RayActorError

    from raysys.train.actor import failure_line

    # the actor runner's process (or its node) died: its log has the rest
    where = "; its log is in the Ray dashboard" if isinstance(exc, RayActorError) else ""
    return TrainingInterruptedError(
        f"training failed ({failure_line(exc)}{where}); {kept}; run it again with the same "
        "run.run_id to resume"
    )
