"""Training reports, recorded where checkpoints live: one small JSON per Ray Train report
(written whole by `ReportRecorder` on the controller), read back in order, and the
per-step history deduplicated across restarts (a replayed step keeps its later entry)."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray.train import UserCallback

if TYPE_CHECKING:
    import pyarrow.fs
    from ray.train import Checkpoint
    from ray.train.v2._internal.execution.context import TrainRunContext

log = logging.getLogger(__name__)

REPORTS = "raysys_reports"


class ReportRecorder(UserCallback):
    """Train V2 `UserCallback` (runs on the controller): each report -> one JSON file.

    Files are named by wall-clock time, so reading them in name order replays the
    run's reports in order, across restarts and re-runs.
    """

    def __init__(self, storage: str, name: str) -> None:
        self.storage = storage
        self.name = name

    def after_report(
        self,
        run_context: TrainRunContext,
        metrics: list[dict[str, Any]],
        checkpoint: Checkpoint | None,
    ) -> None:
        write_report(self.storage, self.name, metrics, getattr(checkpoint, "path", None))

    def after_exception(
        self, run_context: TrainRunContext, worker_exceptions: dict[int, Exception]
    ) -> None:
        pass


def write_report(
    storage: str, name: str, metrics: list[dict[str, Any]], checkpoint: str | None
) -> None:
    """One report of run `name` (every rank's metrics, rank 0 first; the path of the
    checkpoint it registers, as the storage's filesystem names it) as one whole file."""
    rank0 = dict(metrics[0]) if metrics else {}
    record = {
        "time": time.time(),
        "step": rank0.get("step"),
        "metrics": {k: v for k, v in rank0.items() if k != "history"},
        "history": rank0.get("history", []),
        "checkpoint": checkpoint,
        "peak_memory_bytes_by_rank": [m.get("peak_memory_bytes") for m in metrics],
    }
    fs, root = filesystem_of(storage)
    folder = f"{root}/{name}/{REPORTS}"
    fs.create_dir(folder, recursive=True)
    file = f"{time.time_ns():020d}-{int(rank0.get('step') or 0):06d}.json"
    _write_whole(fs, folder, file, json.dumps(record, default=str).encode())


def _write_whole(fs: pyarrow.fs.FileSystem, folder: str, name: str, data: bytes) -> None:
    """A report file that readers see whole or not at all: on a local (or mounted) disk
    under a temporary name, moved into place when written; an object store shows an
    object only once its upload completes, so there it is written in place."""
    if fs.type_name in ("s3", "gcs"):
        with fs.open_output_stream(f"{folder}/{name}") as f:  # atomic: a whole upload or none
            f.write(data)
        return
    tmp = f"{folder}/.{name}.tmp-{os.getpid()}"
    with fs.open_output_stream(tmp) as f:
        f.write(data)
    fs.move(tmp, f"{folder}/{name}")


def read_reports(storage: str, name: str) -> list[dict[str, Any]]:
    """Every report of run `name`, in the order they were made. A file that is not a
    whole report (torn by a crash of an older raysys that wrote in place) is skipped
    with a warning: losing one step's metrics beats losing the run's explanation."""
    fs, infos = _report_files(storage, name)
    out = []
    for info in infos:
        with fs.open_input_stream(info.path) as f:
            report = _parse_report(f.read())
        if report is None:
            log.warning("skipping %s: not a whole report file", info.base_name)
        else:
            out.append(report)
    return out


def count_reports(storage: str, name: str) -> int:
    """How many report files run `name` has (a listing, no reads)."""
    return len(_report_files(storage, name)[1])


def _report_files(storage: str, name: str) -> tuple[pyarrow.fs.FileSystem, list]:
    """The storage's filesystem and run `name`'s report files (pyarrow `FileInfo`s), in
    the order they were made; none where the run has no reports yet."""
    from pyarrow.fs import FileSelector, FileType

    fs, root = filesystem_of(storage)
    folder = f"{root}/{name}/{REPORTS}"
    if fs.get_file_info(folder).type != FileType.Directory:
        return fs, []
    infos = sorted(fs.get_file_info(FileSelector(folder)), key=lambda i: i.base_name)
    return fs, [
        i for i in infos if i.base_name.endswith(".json") and not i.base_name.startswith(".")
    ]


def _parse_report(data: bytes) -> dict[str, Any] | None:
    try:
        report = json.loads(data)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError both are
        return None
    if not isinstance(report, dict) or not isinstance(report.get("history"), list):
        return None
    return report


def dedupe_history(reports: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Per-step history over all reports; a replayed step keeps its latest entry."""
    by_step: dict[int, dict[str, Any]] = {}
    replayed = 0
    for rep in reports:
        for entry in rep["history"]:
            step = int(entry["step"])
            replayed += step in by_step
            by_step[step] = entry
    return [by_step[s] for s in sorted(by_step)], replayed


def check_history(history: list[dict[str, Any]], final: dict[str, Any], every: int) -> None:
    """`final["history_complete"]`: a history entry every `every` (logging) steps."""
    steps = [int(e["step"]) for e in history]
    last = int(final.get("step") or 0)
    expected = list(range(every, last + 1, every))
    missing = sorted(set(expected) - set(steps))
    final["history_complete"] = not missing
    if missing:
        log.warning("steps missing from the metrics history: %s", missing[:10])


def filesystem_of(storage: str) -> tuple[pyarrow.fs.FileSystem, str]:
    import pyarrow.fs

    if "://" in storage:
        return pyarrow.fs.FileSystem.from_uri(storage)
    return pyarrow.fs.LocalFileSystem(), str(Path(storage).resolve())


def latest_report(storage: str, name: str) -> dict[str, Any] | None:
    """The newest report of run `name` (one listing, one read), or None."""
    from pyarrow.fs import FileSelector, FileType

    fs, root = filesystem_of(storage)
    folder = f"{root}/{name}/{REPORTS}"
    if fs.get_file_info(folder).type != FileType.Directory:
        return None
    names = [
        i.path
        for i in fs.get_file_info(FileSelector(folder))
        if i.base_name.endswith(".json") and not i.base_name.startswith(".")
    ]
    if not names:
        return None
    with fs.open_input_stream(max(names)) as f:
        return _parse_report(f.read())


class StepProgress:
    """A driver-side bar of a Ray Train run's steps, read from its report files every
    `every_s` seconds in a thread (the workers report to Train's controller, not here).
    Only in a CLI process (`raysys.console.active`): a sweep trial has Tune's bar."""

    def __init__(self, storage: str, name: str, title: str, every_s: float = 5.0) -> None:
        import threading

        self.storage, self.name, self.title, self.every_s = storage, name, title, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True, name="raysys-steps")

    def __enter__(self) -> StepProgress:
        from raysys.console import active

        if active():
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _poll(self) -> None:
        from raysys.console import Progress

        bar = Progress(self.title, total=None, unit="steps")
        bar.set(0, "starting workers")
        try:
            stopped = False
            while not stopped:
                stopped = self._stop.wait(self.every_s)  # then one last read: the final report
                try:
                    report = latest_report(self.storage, self.name)
                except OSError:
                    continue  # storage hiccup: the next poll tries again
                if not report or report.get("step") is None:
                    continue
                metrics = report.get("metrics") or {}
                loss = metrics.get("loss")
                bar.set(
                    int(report["step"]),
                    f"loss {loss:.3g}" if isinstance(loss, int | float) else "training",
                    total=metrics.get("max_steps"),
                )
        finally:
            bar.close()
