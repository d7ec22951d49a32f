"""The Ray Train worker: the TRL trainer of a `TrainSpec`, trained under Ray Train.

Runs once per worker inside a `TorchTrainer` (Train V2). The HF Trainer handles
DDP (gloo on CPU, NCCL on GPU) through the process group Ray Train set up, shards
the rows with its distributed sampler, and writes standard checkpoints (adapter,
LoRA optimizer state, scheduler, RNG, trainer state: never the frozen base).
`_RayReport` hands each checkpoint to Ray Train and reports metrics on the way,
so a restarted run resumes from the latest registered checkpoint.

The trainer itself is built in `raysys.train.trainer` (no Ray there); what crosses
the driver/worker boundary is the frozen `TrainSpec`, as `{"spec": spec}`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray.train
import ray.train.torch
from transformers import PrinterCallback, TrainerCallback, TrainerState

from raysys.models import local_model, supported_dtype
from raysys.train.guards import check_finite
from raysys.train.perf import model_flops_per_token, peak_memory_bytes, probe_peak_flops, versions
from raysys.train.spec import HF_CKPT, TrainSpec
from raysys.train.trainer import build_trainer, check_tokenized, torch_dtype

if TYPE_CHECKING:
    import pyarrow.fs
    import torch
    from trl import DPOTrainer, SFTTrainer

log = logging.getLogger(__name__)


def train_worker(config: dict[str, TrainSpec]) -> None:
    """Ray Train worker: build the TRL trainer, resume if Ray Train has a checkpoint, train."""
    train_with(config["spec"], RayTrainSession())


class RayTrainSession:
    """What the training code needs from where it runs, here a Ray Train worker: its rank,
    device, the checkpoint to resume from, and where reports and checkpoints go.
    `raysys.train.actor.ActorSession` is the same for one Ray actor without Train."""

    def __init__(self) -> None:
        ctx = ray.train.get_context()
        self.world_rank = ctx.get_world_rank()
        self.world_size = ctx.get_world_size()
        self.local_world_size = ctx.get_local_world_size()

    def device(self) -> torch.device:
        return ray.train.torch.get_device()

    def restore(self, output_dir: str) -> str | None:
        """Copy Ray Train's latest checkpoint (if any) next to the HF outputs; its path."""
        ckpt = ray.train.get_checkpoint()
        if ckpt is None:
            return None
        with ckpt.as_directory() as d:
            return restore_from(str(Path(d) / HF_CKPT), output_dir)

    def report(self, metrics: dict[str, Any], hf_ckpt: Path | None, step: int) -> None:
        if hf_ckpt is None:
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copytree(hf_ckpt, Path(tmp) / HF_CKPT)
            ray.train.report(
                metrics,
                checkpoint=ray.train.Checkpoint.from_directory(tmp),
                checkpoint_dir_name=f"checkpoint_{step:06d}",
            )


def train_with(spec: TrainSpec, session: Any) -> None:
    """Build the TRL trainer of `spec`, resume from the session's checkpoint, train,
    reporting and checkpointing through `session` (`RayTrainSession` or `ActorSession`).
    Called once this module (torch, transformers, PEFT, TRL) is imported in the process."""
    import torch

    stamps = {"worker_entry": time.time(), "worker_process": _process_start()}
    device = session.device()
    # the model on this worker's node (a cluster's nodes share no disk; see local_model),
    # in a dtype this node's hardware computes natively
    spec = replace(
        spec,
        dtype=supported_dtype(spec.dtype, device.type),
        model_path=local_model(spec.model_path),
    )
    # Decided on the worker's node, not the driver's: clusters mix machine sizes.
    torch.set_num_threads(spec.torch_threads or max(1, _cores() // session.local_world_size))
    dtype = torch_dtype(spec.dtype)
    peak = probe_peak_flops(
        device, dtype if dtype in (torch.bfloat16, torch.float16) else torch.float32
    )
    stamps["probe_done"] = time.time()
    trainer = build_trainer(spec)
    check_tokenized(trainer, spec.method)
    stamps["trainer_built"] = time.time()

    # The loss of every step is in the reports and metrics.json, not printed to the log.
    trainer.remove_callback(PrinterCallback)
    try:
        resume = session.restore(trainer.args.output_dir)
        done = _global_step(resume) if resume is not None else 0
        if spec.max_steps and done >= spec.max_steps:
            # HF would train one more step past max_steps when max_steps ends inside an
            # epoch (it skips the epoch's trained batches, then steps before it checks)
            log.info("the checkpoint at step %d is the run's last: nothing left to train", done)
            return
        trainer.add_callback(_RayReport(spec, trainer, peak, device, session, stamps))
        trainer.train(resume_from_checkpoint=resume)
    finally:  # the local copies (storage has the checkpoints); a reused process keeps no junk
        shutil.rmtree(trainer.args.output_dir, ignore_errors=True)


class _RayReport(TrainerCallback):
    """HF TrainerCallback: NaN guard, per-step history, reports and checkpoints through the
    session (to Ray Train, or to storage from one actor).

    Every rank reports at the same steps (Train V2 expects it).
    A report costs about one controller poll (~2 s, BENCHMARKS.md), so metrics go
    every `report_every_steps` and with each checkpoint, carrying the per-step
    history since the last report.
    """

    def __init__(
        self,
        spec: TrainSpec,
        trainer: SFTTrainer | DPOTrainer,
        peak: float,
        device: torch.device,
        session: Any,
        stamps: dict[str, float] | None = None,
    ) -> None:
        self.session = session
        self.stamps = dict(stamps or {})  # wall-clock times of the worker's start-up phases
        self.spec = spec
        self.faults = spec.faults
        self.trainer = trainer
        self.peak = peak
        self.device = device
        self.buffer: list[dict[str, Any]] = []
        self.losses: list[float] = []  # this attempt's, for the mean training loss
        self.step_seconds: list[float] = []
        self.t_step = 0.0
        self.tokens_seen: float | None = None  # TRL's count: this attempt, all workers

    def on_train_begin(self, args, state, control, **kw):
        self.start_step = state.global_step
        self.t_begin = time.perf_counter()
        self.stamps["train_begin"] = time.time()

    def on_step_begin(self, args, state, control, **kw):
        self._sync()
        self.t_step = time.perf_counter()
        if self.faults.nan_at_step == state.global_step + 1:
            _poison(self.trainer.model)

    def on_step_end(self, args, state, control, **kw):
        self._sync()
        self.step_seconds.append(time.perf_counter() - self.t_step)
        self.stamps.setdefault("first_step_done", time.time())
        self.stamps["last_step_done"] = time.time()
        if state.global_step >= state.max_steps:
            control.should_save = True  # the last step always leaves a checkpoint
        rank0 = self.session.world_rank == 0
        hold, crash = self.faults.hold_at_step, self.faults.crash_at_step
        if hold == state.global_step and rank0:
            _hold(Path(self.faults.marker_dir), hold)  # run_spec sets it
        if crash == state.global_step and rank0:
            marker = Path(self.faults.marker_dir) / f"crashed-at-{crash}"
            if not marker.exists():
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.touch()
                log.warning("fault injection: worker exits at step %d", crash)
                os._exit(1)

    def _sync(self) -> None:
        """A GPU runs ahead of the Python that queues its kernels: without waiting for it,
        a step's time would be the time to queue it (tokens/s and MFU too good)."""
        if self.device.type == "cuda":
            import torch

            torch.cuda.synchronize(self.device)

    def on_log(self, args, state, control, logs=None, **kw):
        if not logs or "loss" not in logs:
            return
        check_finite(logs["loss"], state.global_step)
        self.losses.append(float(logs["loss"]))
        entry = {"step": state.global_step, **_scalars(logs)}
        if self.step_seconds:
            entry["step_seconds"] = self.step_seconds[-1]
        if "num_tokens" in logs:
            self.tokens_seen = float(logs["num_tokens"])
        self.buffer.append(entry)
        if not control.should_save and state.global_step % self.spec.report_every_steps == 0:
            self._report(state, None)

    def on_save(self, args, state, control, **kw):
        self._report(state, Path(args.output_dir) / f"checkpoint-{state.global_step}")

    def _report(self, state: TrainerState, hf_ckpt: Path | None) -> None:
        last = self.buffer[-1] if self.buffer else {}
        metrics: dict[str, Any] = {
            **{k: v for k, v in last.items() if k != "step"},
            "step": state.global_step,
            "max_steps": state.max_steps,
            "history": self.buffer,
        }
        if state.global_step >= state.max_steps:
            metrics.update(self.summary(state))
        self.buffer = []
        if self.session.world_rank != 0:  # rank 0 speaks for the group; the rest sync
            metrics = {
                "step": state.global_step,
                "peak_memory_bytes": peak_memory_bytes(self.device),
            }
        ckpt = hf_ckpt if hf_ckpt is not None and hf_ckpt.is_dir() else None
        self.session.report(metrics, ckpt, state.global_step)

    def summary(self, state: TrainerState) -> dict[str, Any]:
        """Throughput of this attempt, and what it means against the measured peak."""
        steps = len(self.step_seconds)
        secs = sum(self.step_seconds)
        world = self.session.world_size
        out: dict[str, Any] = {
            "steps_this_attempt": steps,
            "train_loss": statistics.fmean(self.losses) if self.losses else None,
            "seconds_per_step_mean": secs / steps if steps else None,
            "seconds_per_step_median": statistics.median(self.step_seconds) if steps else None,
            "train_seconds": secs,
            # the loop as the HF Trainer times it (incl. reports and checkpoints until now)
            "train_runtime": time.perf_counter() - self.t_begin,
            "world_size": world,
            "device": str(self.device.type),
            "dtype": self.spec.dtype,  # as run on this node (`supported_dtype`)
            "peak_flops_per_worker": self.peak,
            "peak_memory_bytes": peak_memory_bytes(self.device),
            "versions": versions(),
            "worker_stamps": dict(self.stamps),
        }
        if self.tokens_seen and steps:
            tokens = self.tokens_seen
            per_step = tokens / steps
            seqs = self.spec.sequences_per_step
            flops = model_flops_per_token(self.trainer.model, per_step / seqs)
            per_token = flops["flops_per_token"]
            if self.spec.method == "dpo" and not self.spec.dpo.precompute_ref_log_probs:
                per_token += 2.0 * (
                    flops["linear_params_frozen"] + flops["linear_params_trainable"]
                )
            tps = tokens / secs
            out.update(
                train_tokens=tokens,
                tokens_per_second=tps,
                flops_per_token=per_token,
                linear_params_frozen=flops["linear_params_frozen"],
                linear_params_trainable=flops["linear_params_trainable"],
                mfu=tps * per_token / (self.peak * world),
            )
        return out


def _process_start() -> float:
    """When this worker's process started (wall clock): Ray starts it for the group."""
    import psutil

    return psutil.Process().create_time()


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _global_step(hf_checkpoint: str) -> int:
    """The global step an HF checkpoint folder on this machine holds."""
    return int(json.loads((Path(hf_checkpoint) / "trainer_state.json").read_text())["global_step"])


def restore_from(src: str, output_dir: str, fs: pyarrow.fs.FileSystem | None = None) -> str:
    """A checkpoint's HF folder (`src` on `fs`, default the local disk) copied next to the
    HF outputs, where `Trainer.train` resumes from it; its path."""
    from pyarrow.fs import LocalFileSystem, copy_files

    local = LocalFileSystem()
    fs = fs or local
    with fs.open_input_stream(f"{src}/trainer_state.json") as f:
        step = json.loads(f.read())["global_step"]
    dst = Path(output_dir) / f"checkpoint-{step}"
    dst.mkdir(parents=True, exist_ok=True)
    copy_files(src, str(dst), source_filesystem=fs, destination_filesystem=local)
    log.info("resuming from the checkpoint at step %d", step)
    return str(dst)


def _hold(marker_dir: Path, step: int, timeout: float = 300.0) -> None:
    """Fault drill (RAYSYS_FAULTS=hold_at_step=N): rank 0 pauses after step N, before its
    checkpoint is saved, until `release` appears next to `held-at-N` (a drill breaks the
    storage meanwhile). Once per run: a resumed attempt does not hold again."""
    held = marker_dir / f"held-at-{step}"
    if held.exists():
        return
    marker_dir.mkdir(parents=True, exist_ok=True)
    held.touch()
    log.warning("fault injection: worker holds at step %d until %s exists", step, "release")
    deadline = time.monotonic() + timeout
    while not (marker_dir / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.1)


def _poison(model: torch.nn.Module) -> None:
    """Fault injection: a NaN in the first trainable weight (a real NaN loss follows)."""
    import torch

    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.fill_(float("nan"))
                return


def _scalars(d: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in d.items() if isinstance(v, (int, float))}
