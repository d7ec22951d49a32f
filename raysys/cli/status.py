"""`raysys status RUN_DIR [--watch [SECONDS]]`: where a sweep or a pipeline stands, read
from its files (no Ray, no connection): from another terminal, another machine, or long
after it finished."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING

from raysys.errors import UserError

if TYPE_CHECKING:  # not imported for `raysys --help`
    from raysys.pipeline.status import PipelineStatus
    from raysys.sweep.status import SweepStatus

WATCH_SECONDS = 5.0
_CLEAR = "\033[H\033[2J"  # cursor home, clear the screen (a terminal only)


def add(sub: argparse._SubParsersAction) -> None:
    st = sub.add_parser(
        "status",
        help="where a sweep or pipeline run stands: stage, trials, times, last error, report",
        description="Read a sweep's or a pipeline's run directory (a path, s3:// or gs://) and "
        "print its kind, stage, trials done / running / errored / pending, elapsed and "
        "remaining time, the last error and where the report is. Reads only the files the run "
        "writes (Tune's experiment state, stage markers, grid.json): no Ray connection.",
    )
    st.add_argument("run_dir", metavar="RUN_DIR", help="<run.storage_path>/<run.name>/<run_id>")
    st.add_argument(
        "--watch",
        nargs="?",
        const=WATCH_SECONDS,
        type=float,
        metavar="SECONDS",
        help=f"refresh every SECONDS (default {WATCH_SECONDS:g}) until the run finishes or Ctrl-C",
    )
    st.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from raysys.pipeline.status import run_status

    if args.watch is None:
        print(_block(run_status(args.run_dir)))
        return 0
    if not args.watch > 0:
        raise UserError(f"--watch: SECONDS must be > 0, got {args.watch:g}; e.g. --watch 10")
    try:
        return watch(args.run_dir, args.watch)
    except KeyboardInterrupt:
        print()
        return 130


def watch(location: str, seconds: float) -> int:
    """Print the status every `seconds` until the run finishes: redrawn in place on a
    terminal, one block after another (no control codes) when piped or logged."""
    from raysys.pipeline.status import run_status

    tty, cache = sys.stdout.isatty(), {}
    while True:
        status = run_status(location, cache)
        stamp = time.strftime("%H:%M:%S")
        if tty:
            print(f"{_CLEAR}{_block(status)}\n\n{stamp}: every {seconds:g}s, Ctrl-C to stop")
        else:
            print(f"--- {stamp}\n{_block(status)}\n", flush=True)
        if status.finished:
            return 0
        time.sleep(seconds)


def _block(status: SweepStatus | PipelineStatus) -> str:
    return "\n".join(status.lines(time.time()))
