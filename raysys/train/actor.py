"""Training in one Ray actor: the Ray Train worker's code without a worker group.

A one-worker run under Ray Train pays for a controller actor, a worker group, report
polling and a fresh worker process: about 12 s per run around a few seconds of steps on a
small model (BENCHMARKS.md, "Trial start-up"). Here the driver starts one actor with the
worker's resources, and it runs the same code (`raysys.train.worker.train_with`) and keeps
what Ray Train keeps, in the same storage layout, so readers of a run cannot tell the two
apart:

- checkpoints in `<storage>/<name>/checkpoint_<step:06d>/checkpoint/` (the HF folder);
- one report file per report (`raysys.train.reports`); a checkpoint is registered once the
  report naming it is written, so one half-uploaded by a crash is never resumed from;
- the newest `keep_checkpoints` registered checkpoints, older ones deleted;
- resume from the newest registered checkpoint (a run Ray Train started resumes too);
- after a failure (an error in training, the actor's process or node dying) a new actor
  resumes from that checkpoint, up to `max_failures` times, as `FailureConfig` does.

The driver passes each report to the run's Ray Train `UserCallback`s (a sweep trial's Tune
bridge) with no run context, as Train's controller would.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from raysys.train.reports import filesystem_of, read_reports, write_report
from raysys.train.spec import HF_CKPT, TrainSpec

if TYPE_CHECKING:
    import pyarrow.fs
    import torch
    from ray.train import Checkpoint, UserCallback

log = logging.getLogger(__name__)

POLL_S = 0.5  # how often the driver collects reports for its callbacks


class ActorSession:
    """`raysys.train.worker.RayTrainSession` for one process that writes its own storage."""

    world_rank = 0
    world_size = 1
    local_world_size = 1

    def __init__(self, storage: str, name: str, keep: int, outbox: list) -> None:
        self.storage, self.name, self.keep = storage, name, keep
        self.fs, root = filesystem_of(storage)
        self.folder = f"{root}/{name}"
        reports = read_reports(storage, name)
        self.registered = registered_checkpoints(reports)  # oldest first
        self.outbox = outbox  # (metrics, checkpoint path) for the driver's callbacks
        self.reports = 0  # written by this attempt
        # what a resumed run that has no step left (its newest checkpoint is its last
        # step) returns: the newest report's metrics and checkpoint, as Ray Train's result
        metrics = dict(reports[-1].get("metrics") or {}) if reports else {}
        self.last = (metrics, self.registered[-1] if self.registered else None)

    def device(self) -> torch.device:
        import ray
        import torch

        if ray.get_gpu_ids():  # Ray set CUDA_VISIBLE_DEVICES to this actor's GPU
            torch.cuda.set_device(0)
            return torch.device("cuda", 0)
        return torch.device("cpu")

    def restore(self, output_dir: str) -> str | None:
        """The newest registered checkpoint that is whole, next to the HF outputs."""
        from pyarrow.fs import FileType

        from raysys.train.worker import restore_from

        for path in reversed(self.registered):
            src = f"{path}/{HF_CKPT}"
            if self.fs.get_file_info(f"{src}/trainer_state.json").type != FileType.File:
                log.warning("registered checkpoint %s is gone; trying an older one", path)
                continue
            return restore_from(src, output_dir, self.fs)
        return None

    def report(self, metrics: dict[str, Any], hf_ckpt: Path | None, step: int) -> None:
        from pyarrow.fs import FileType, LocalFileSystem, copy_files

        path = None
        if hf_ckpt is not None:
            path = f"{self.folder}/checkpoint_{step:06d}"
            if self.fs.get_file_info(path).type != FileType.NotFound:
                self.fs.delete_dir(path)  # an unregistered leftover of a crashed attempt
            self.fs.create_dir(f"{path}/{HF_CKPT}", recursive=True)
            copy_files(
                str(hf_ckpt),
                f"{path}/{HF_CKPT}",
                source_filesystem=LocalFileSystem(),
                destination_filesystem=self.fs,
            )
        write_report(self.storage, self.name, [metrics], path)  # registers the checkpoint
        self.reports += 1
        self.last = (metrics, path or self.last[1])
        self.outbox.append((metrics, path))
        if path is not None:
            self.registered = [p for p in self.registered if p != path] + [path]
            for old in self.registered[: -self.keep]:
                if self.fs.get_file_info(old).type != FileType.NotFound:
                    self.fs.delete_dir(old)
            self.registered = self.registered[-self.keep :]


def registered_checkpoints(reports: list[dict[str, Any]]) -> list[str]:
    """Paths of the checkpoints a run's reports (`read_reports`) registered, oldest first,
    once each."""
    paths: list[str] = []
    for report in reports:
        path = report.get("checkpoint")
        if path:
            paths = [p for p in paths if p != path] + [path]
    return paths


class TrainActor:
    """The Ray actor (made remote by `fit_in_actor`, so importing this module stays light:
    torch, transformers, PEFT and TRL are imported in the actor's process)."""

    def __init__(self) -> None:
        self.outbox: list[tuple[dict[str, Any], str | None]] = []

    def train(self, spec: TrainSpec, storage: str, name: str) -> tuple[dict[str, Any], str]:
        from raysys.train.worker import train_with

        session = ActorSession(storage, name, spec.keep_checkpoints, self.outbox)
        train_with(spec, session)
        metrics, path = session.last
        if session.reports == 0 and metrics:
            # resumed with no step left: the run's last report once more for the callbacks
            # (a retried sweep trial's Tune then has its final training loss too)
            self.outbox.append((metrics, path))
        if path is None:
            raise RuntimeError("training finished without a checkpoint")
        return metrics, path

    def drain(self) -> list[tuple[dict[str, Any], str | None]]:
        out = self.outbox[:]
        del self.outbox[: len(out)]
        return out


def fit_in_actor(
    spec: TrainSpec, storage: str, name: str, callbacks: list[UserCallback]
) -> tuple[dict[str, Any], Checkpoint]:
    """Train `spec` in one Ray actor, restarting up to `spec.max_failures` times from the
    newest registered checkpoint; the last report's metrics and the final checkpoint."""
    import ray
    from ray.exceptions import RayActorError, RayTaskError
    from ray.train import Checkpoint

    from raysys.runtime import worker_env

    remote = ray.remote(TrainActor).options(
        num_cpus=0 if spec.use_gpu else spec.cpus_per_worker,
        num_gpus=1 if spec.use_gpu else 0,
        accelerator_type=spec.accelerator_type,
        resources=dict(spec.worker_resources) or None,
        runtime_env={"env_vars": worker_env()},
        max_concurrency=2,  # train, and drain while it trains
        max_restarts=0,  # a restart resumes from storage, here, counted
        # not inside a Tune trial's placement group (it reserves the trial's driver only):
        # the actor asks for the worker's resources itself, as Ray Train's group does
        scheduling_strategy="DEFAULT",
    )
    fs, _ = filesystem_of(storage)
    failures = 0
    while True:
        actor = remote.remote()
        try:
            ref = actor.train.remote(spec, storage, name)
            metrics, path = _follow(actor, ref, fs, callbacks)
            break
        except (RayActorError, RayTaskError) as e:
            failures += 1
            if failures > spec.max_failures:
                raise
            log.warning(
                "training failed (%s); restart %d of %d from the latest checkpoint",
                str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__,
                failures,
                spec.max_failures,
            )
        finally:
            ray.kill(actor)  # its process and memory go now, not when the handle is collected
    return metrics, Checkpoint(path, filesystem=fs)


def _follow(
    actor: Any, ref: Any, fs: pyarrow.fs.FileSystem, callbacks: list[UserCallback]
) -> tuple[dict[str, Any], str]:
    """The actor's result; meanwhile its reports go to `callbacks` (in order, all of them
    before the result)."""
    import ray
    from ray.train import Checkpoint

    if not callbacks:
        return ray.get(ref)
    while True:
        ready, _ = ray.wait([ref], timeout=POLL_S)
        for metrics, path in ray.get(actor.drain.remote()):
            ckpt = Checkpoint(path, filesystem=fs) if path else None
            for cb in callbacks:
                cb.after_report(None, [metrics], ckpt)  # type: ignore[arg-type]
        if ready:
            return ray.get(ref)
