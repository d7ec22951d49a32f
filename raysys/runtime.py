"""Attach to (or start) Ray the same way for every entry point."""

from __future__ import annotations

import logging
import os
from typing import Any

from raysys import console

log = logging.getLogger(__name__)

# Workers print through the driver: keep their logs to what a person reads.
WORKER_ENV = {
    "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    # Ray Train V2's controller takes one `ray.train.report` per worker poll (default
    # every 2 s), so each report could stall training up to 2 s; 0.5 s keeps reports
    # cheap at the cost of 2 polling RPCs per worker per second (BENCHMARKS.md).
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": os.environ.get("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5"),
}


def init_ray(
    address: str | None = None,
    num_cpus: int | None = None,
    temp_dir: str | None = None,
    metadata: dict[str, str] | None = None,
) -> None:
    """Connect to `address`, else $RAY_ADDRESS (set under `ray job submit`), else start a
    private local instance: never attach to a stranger's cluster by accident.

    `metadata` (e.g. the run's name and directory) goes into this driver's job config,
    which the dashboard's job list and `ray list jobs` show for a driver that attached
    itself; a `ray job submit` job shows its `--metadata-json` instead (Ray merges that
    over this, and keeps it in the job config too)."""
    import ray

    if ray.is_initialized():
        return
    target = address or os.environ.get("RAY_ADDRESS") or "local"
    kwargs: dict[str, Any] = {
        "address": target,
        "runtime_env": {"env_vars": worker_env()},
        "logging_level": logging.WARNING,
        "configure_logging": True,
        # quiet console: workers' output stays in Ray's session logs (printed once)
        "log_to_driver": not console.quiet(),
    }
    if metadata:
        from ray.job_config import JobConfig

        kwargs["job_config"] = JobConfig(metadata=dict(metadata))
    if target == "local":
        kwargs["num_cpus"] = num_cpus or os.cpu_count() or 1
        if temp_dir:
            kwargs["_temp_dir"] = temp_dir
    log.info("starting Ray (%s)", target)
    console.route_library_loggers()  # what ray.init itself logs (token auth, ...)
    ray.init(**kwargs)
    _quiet_driver_messages()
    global _STARTED_LOCALLY
    _STARTED_LOCALLY = target == "local"
    quiet_ray_data()
    console.route_library_loggers()
    console.note_ray_logs(_session_logs())


def _quiet_driver_messages() -> None:
    """Quiet console: the messages the raylet and GCS push to every driver (worker-pool
    warnings, "worker died" notices; the errors themselves reach raysys as exceptions)
    go to the driver's log file. Ray prints them from a listener thread through
    `print_to_stdstream`, with no option to route them: that function is wrapped."""
    stream = console.library_stream()
    if stream is None:
        return
    import ray._private.worker as worker

    original = getattr(worker, "print_to_stdstream", None)
    if original is None or getattr(original, "_raysys", False):
        return

    def to_log(data: dict[str, Any], ignore_prefix: bool) -> None:
        target = console.library_stream()
        if target is None:
            original(data, ignore_prefix)
            return
        for line in data.get("lines") or []:
            target.write(f"({data.get('pid', 'ray')}) {line}\n")

    to_log._raysys = True  # type: ignore[attr-defined]
    worker.print_to_stdstream = to_log


def _session_logs() -> str | None:
    """This node's Ray session log folder (workers' stdout/stderr, raylet, Ray Data)."""
    try:
        from ray._private.worker import _global_node

        return _global_node.get_logs_dir_path() if _global_node is not None else None
    except Exception:  # noqa: BLE001 - only a hint for the operator
        return None


def worker_env() -> dict[str, str]:
    """WORKER_ENV minus what the job's own runtime env sets: under `ray job submit` Ray
    refuses to merge two runtime envs that name the same variable, and the job's wins."""
    import json

    job = json.loads(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR") or "{}")
    taken = (job.get("runtime_env") or {}).get("env_vars") or {}
    return {k: v for k, v in WORKER_ENV.items() if k not in taken}


def quiet_ray_data() -> None:
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False  # raysys logs its own progress, one line a stage
    ctx.print_on_execution_start = False


_STARTED_LOCALLY = False


def started_locally() -> bool:
    """True when this process started its own Ray (no autoscaler will add CPUs)."""
    return _STARTED_LOCALLY


TRAIN_FAULTS = ("crash_at_step", "nan_at_step", "hold_at_step")


def faults_from_env(allowed: tuple[str, ...]) -> dict[str, int]:
    """Fault injection for tests and drills: RAYSYS_FAULTS="crash_at_step=5,nan_at_step=9".

    Keys another job understands are left to it; a malformed item is an error."""
    from raysys.errors import UserError

    out: dict[str, int] = {}
    for item in filter(None, os.environ.get("RAYSYS_FAULTS", "").split(",")):
        key, _, value = item.partition("=")
        if not value.isdigit():
            raise UserError(f"RAYSYS_FAULTS: {item!r}; use key=N, e.g. crash_at_step=5")
        if key in allowed:
            out[key] = int(value)
    return out
