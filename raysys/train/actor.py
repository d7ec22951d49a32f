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
- the newest `keep_checkpoints` registered checkpoints by step, older ones deleted;
- resume from the newest registered checkpoint that is whole (its `trainer_state.json`,
  uploaded last, is there); a run Ray Train started resumes too;
- after a failure (an error in training, the actor's process or node dying) a new actor
  resumes from that checkpoint, up to `max_failures` times, as `FailureConfig` does.

The driver passes each report to the run's Ray Train `UserCallback`s (a sweep trial's Tune
bridge) with no run context, as Train's controller would: once each and in order, those a
dead actor wrote but never handed over read back from its report files (`_Delivery`).
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

    def __init__(self, storage: str, name: str, keep: int, outbox: list | None) -> None:
        self.storage, self.name, self.keep = storage, name, keep
        self.fs, root = filesystem_of(storage)
        self.folder = f"{root}/{name}"
        reports = read_reports(storage, name)
        self.registered = registered_checkpoints(reports)  # oldest first
        self.outbox = outbox  # (metrics, checkpoint path) for the driver's callbacks, if any
        # what a resumed run that has no step left (its newest checkpoint is its last
        # step) returns: the newest report's metrics and checkpoint, as Ray Train's result
        self.last = (
            report_metrics(reports[-1]) if reports else {},
            self.registered[-1] if self.registered else None,
        )

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
        from pyarrow.fs import FileType

        path = None
        if hf_ckpt is not None:
            path = f"{self.folder}/checkpoint_{step:06d}"
            self._upload(hf_ckpt, path)
        write_report(self.storage, self.name, [metrics], path)  # registers the checkpoint
        self.last = (metrics, path or self.last[1])
        if self.outbox is not None:
            self.outbox.append((metrics, path))
        if path is not None:
            self.registered = [p for p in self.registered if p != path] + [path]
            for old in self.registered[: -self.keep]:
                if self.fs.get_file_info(old).type != FileType.NotFound:
                    self.fs.delete_dir(old)
            self.registered = self.registered[-self.keep :]

    def _upload(self, hf_ckpt: Path, path: str) -> None:
        """The HF checkpoint folder to `path` with its `trainer_state.json` last, so that a
        folder holding that file is whole (`restore` checks it) even where a crash tore
        the copy of a path an older report registered (a run resumed from an older
        checkpoint writes the same step again)."""
        import shutil

        from pyarrow.fs import FileType, LocalFileSystem, copy_files

        state = f"{path}/{HF_CKPT}/trainer_state.json"
        if self.fs.get_file_info(path).type != FileType.NotFound:
            if self.fs.get_file_info(state).type == FileType.File:
                self.fs.delete_file(state)  # first: the folder is torn from here on
            self.fs.delete_dir(path)  # a leftover of a crashed attempt
        self.fs.create_dir(f"{path}/{HF_CKPT}", recursive=True)
        local = LocalFileSystem()
        staged = hf_ckpt.parent / f".upload-{hf_ckpt.name}"  # hard links: no copy
        shutil.rmtree(staged, ignore_errors=True)
        shutil.copytree(
            hf_ckpt,
            staged,
            copy_function=_link_or_copy,
            ignore=shutil.ignore_patterns("trainer_state.json"),
        )
        try:  # in parallel, as Ray Train uploads a checkpoint
            copy_files(
                str(staged),
                f"{path}/{HF_CKPT}",
                source_filesystem=local,
                destination_filesystem=self.fs,
            )
        finally:
            shutil.rmtree(staged, ignore_errors=True)
        copy_files(
            str(hf_ckpt / "trainer_state.json"),
            state,
            source_filesystem=local,
            destination_filesystem=self.fs,
        )


def _link_or_copy(src: str, dst: str) -> None:
    """A hard link (no bytes copied), or a copy where the disk has none."""
    import os
    import shutil

    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def report_metrics(report: dict[str, Any]) -> dict[str, Any]:
    """What a report file (`read_reports`) holds as the metrics the training reported: rank
    0's metrics with their per-step history."""
    return {**(report.get("metrics") or {}), "history": report.get("history", [])}


def _step_of(path: str) -> int | None:
    tail = path.rstrip("/").rsplit("/", 1)[-1]
    digits = tail.rsplit("_", 1)[-1]
    return int(digits) if tail.startswith("checkpoint_") and digits.isdigit() else None


def registered_checkpoints(reports: list[dict[str, Any]]) -> list[str]:
    """Paths of the checkpoints a run's reports (`read_reports`) registered, oldest first,
    once each."""
    paths: list[str] = []
    for report in reports:
        path = report.get("checkpoint")
        if path:
            paths = [p for p in paths if p != path] + [path]
    # by step where the folder names it (reports are ordered by their writers' clocks,
    # and a restarted actor may write from another node): a run's steps only grow
    return sorted(paths, key=lambda p: (_step_of(p) is None, _step_of(p) or 0))  # stable


class TrainActor:
    """The Ray actor (made remote by `fit_in_actor`, so importing this module stays light:
    torch, transformers, PEFT and TRL are imported in the actor's process)."""

    def __init__(self) -> None:
        self.outbox: list[tuple[dict[str, Any], str | None]] = []

    def train(
        self, spec: TrainSpec, storage: str, name: str, collect: bool
    ) -> tuple[dict[str, Any], str]:
        """Train; the last report's metrics and checkpoint path. `collect`: keep each report
        for `drain` (the driver has callbacks to feed)."""
        from raysys.train.worker import train_with

        session = ActorSession(
            storage, name, spec.keep_checkpoints, self.outbox if collect else None
        )
        train_with(spec, session)
        metrics, path = session.last
        if path is None:
            raise RuntimeError("training finished without a checkpoint")
        return metrics, path

    def drain(self) -> list[tuple[dict[str, Any], str | None]]:
        out = self.outbox[:]
        del self.outbox[: len(out)]
        return out


class _Delivery:
    """A run's reports to its callbacks, each once and in order: the actor's while it runs
    (`drain`), and after an actor died, what its report files hold that it never handed
    over (it writes the file, then queues the report). Ray Train's controller does both
    in one place."""

    def __init__(
        self,
        callbacks: list[UserCallback],
        fs: pyarrow.fs.FileSystem,
        storage: str,
        name: str,
        before: int,
    ) -> None:
        self.callbacks, self.fs, self.storage, self.name = callbacks, fs, storage, name
        self.before = before  # report files of earlier fits (`count_reports` before this one)
        self.delivered = 0  # reports handed to the callbacks in this fit

    def __call__(self, metrics: dict[str, Any], path: str | None) -> None:
        from ray.train import Checkpoint

        ckpt = Checkpoint(path, filesystem=self.fs) if path else None
        for cb in self.callbacks:
            cb.after_report(None, [metrics], ckpt)  # type: ignore[arg-type]
        self.delivered += 1

    def catch_up(self) -> None:
        """The reports a dead actor wrote but never handed over."""
        if not self.callbacks:
            return
        for report in read_reports(self.storage, self.name)[self.before + self.delivered :]:
            self(report_metrics(report), report.get("checkpoint"))


def fit_in_actor(
    spec: TrainSpec, storage: str, name: str, callbacks: list[UserCallback], earlier: int
) -> tuple[dict[str, Any], Checkpoint]:
    """Train `spec` in one Ray actor, restarting up to `spec.max_failures` times from the
    newest registered checkpoint; the last report's metrics and the final checkpoint.
    `earlier`: the run's report files from earlier fits (`count_reports`)."""
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
    deliver = _Delivery(callbacks, fs, storage, name, earlier)
    failures = 0
    while True:
        actor = remote.remote()
        try:
            ref = actor.train.remote(spec, storage, name, bool(callbacks))
            metrics, path = _follow(actor, ref, deliver)
            break
        except (RayActorError, RayTaskError) as e:
            deliver.catch_up()
            failures += 1
            if failures > spec.max_failures:
                raise
            log.warning(
                "training failed (%s); restart %d of %d from the latest checkpoint",
                failure_line(e),
                failures,
                spec.max_failures,
            )
        finally:
            ray.kill(actor)  # its process and memory go now, not when the handle is collected
    if callbacks and not deliver.delivered:
        # resumed with no step left: the run's last report once more for the callbacks
        # (a retried sweep trial's Tune then has its final training loss too)
        deliver(metrics, path)
    return metrics, Checkpoint(path, filesystem=fs)


def failure_line(exc: BaseException) -> str:
    """One line on why training failed: the error raised in it (a `RayTaskError`'s first
    line is Ray's header), or why the actor's process died; URIs redacted."""
    from ray.exceptions import RayActorError

    from raysys.uris import redact

    if isinstance(exc, RayActorError):
        text = " ".join(str(exc).split())
        if "low on memory" in text:
            return "its process died: Ray killed it, the node ran low on memory"
        for marker in ("Worker exit detail:", "The actor died because", "The actor is dead"):
            at = text.find(marker)
            if at >= 0:
                why = text[at:].split(" There are some potential root causes")[0]
                return f"its process died: {redact(why)[:200].rstrip('. ')}"  # clipped after
        return f"its process died: {type(exc).__name__}"
    exc = getattr(exc, "cause", None) or exc
    text = str(exc).strip()
    return redact(text.splitlines()[0]) if text else type(exc).__name__


def _follow(actor: Any, ref: Any, deliver: _Delivery) -> tuple[dict[str, Any], str]:
    """The actor's result; meanwhile its reports go to the callbacks (in order, all of them
    before the result)."""
    import ray

    if not deliver.callbacks:
        return ray.get(ref)
    while True:
        ready, _ = ray.wait([ref], timeout=POLL_S)
        for metrics, path in ray.get(actor.drain.remote()):
            deliver(metrics, path)
        if ready:
            return ray.get(ref)
