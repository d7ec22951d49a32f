"""`raysys sweep CONFIG`: a Ray Tune grid of LoRA SFT runs, one test pass, a report."""

from __future__ import annotations

import argparse
import time
from typing import Any

from raysys.cli._common import config_args, load, where
from raysys.errors import UserError

DESCRIPTION = (
    "Expand the grid (cocktail generators or explicit cocktails, regulariser shares, data "
    "fractions, seeds, optional learning rates / LoRA ranks), run every trial on Ray Tune (data "
    "-> Ray Train SFT -> validation scores), score every adapter and the base model on the test "
    "splits in one pass, and write results and report.html under "
    "<run.storage_path>/<run.name>/<run_id>/. --resume continues an interrupted sweep "
    "(finished trials are not run again)."
)


def add(sub: argparse._SubParsersAction) -> None:
    sw = sub.add_parser(
        "sweep",
        help="a Ray Tune grid of LoRA SFT runs (cocktails x fractions x seeds) and its report",
        description=DESCRIPTION,
    )
    config_args(sw, "configs/sweep.yaml")
    sw.add_argument("--dry-run", action="store_true", help="print the trials and resources only")
    sw.add_argument(
        "--timings",
        metavar="RUN",
        help="with --dry-run: also estimate this grid's wall time on 1-64 slots from the parts "
        "of a trial an earlier sweep of the same model measured (its directory, local, s3:// "
        "or gs://)",
    )
    sw.add_argument(
        "--resume",
        action="store_true",
        help="continue the sweep of run.run_id (default: the latest one of run.name)",
    )
    sw.add_argument(
        "--retry-errored", action="store_true", help="with --resume: run errored trials again"
    )
    sw.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from raysys.config import SweepConfig

    cfg = load(SweepConfig, args)
    check_flags(args, "sweep")
    if args.dry_run:
        return plan_only(cfg, args.timings)
    from raysys.analysis.report import sweep_headline
    from raysys.sweep.driver import run_sweep

    start = time.perf_counter()
    out = run_sweep(cfg, resume=args.resume, retry_errored=args.retry_errored)
    print(f"\n{sweep_headline(out.sweep_dir)}")
    print(summary_line(out.meta, time.perf_counter() - start))
    if retried := retried_line(out.meta):
        print(retried)
    print(f"Report: {where(out.sweep_dir / 'report.html')}")
    return 0


def check_flags(args: argparse.Namespace, what: str) -> None:
    """The flags that only mean something together (`sweep` and `search` share them)."""
    if args.retry_errored and not args.resume:
        raise UserError(f"--retry-errored needs --resume (it retries a {what}'s errored trials)")
    if args.timings and not args.dry_run:
        raise UserError(f"--timings needs --dry-run (it estimates a {what} before it runs)")


def plan_only(cfg: Any, timings: str | None) -> int:
    """--dry-run: the grid, its resources and (with --timings) its estimated wall time."""
    from raysys.sweep.grid import format_grid
    from raysys.sweep.plan import dry_run

    trials, plan = dry_run(cfg)
    estimate = None
    if timings:  # read and checked before anything is printed: a refusal is one line
        from raysys.sweep.estimate import estimate as estimated
        from raysys.sweep.estimate import format_estimate, read_timings

        estimate = format_estimate(estimated(cfg, trials, plan, read_timings(timings)))
    print(format_grid(trials, plan))
    if estimate:
        print(f"\n{estimate}")
    return 0


def summary_line(m: dict[str, Any], seconds: float) -> str:
    return (
        f"\n{m['finished']} trials, {m['concurrency']} at a time: "
        f"Tune {m['tune_wall_seconds']:.0f}s (ideal {m['ideal_seconds']:.0f}s, "
        f"{m['wall_vs_ideal']:.2f}x); {m['datasets']} datasets ({m['data_built']} built, "
        f"{m['data_cached']} cached); total {seconds:.0f}s"
    )


def retried_line(m: dict[str, Any]) -> str | None:
    """Trials that finished after Tune started them again (sweep.max_trial_failures)."""
    retried = {t: c for t, c in m.get("failures", {}).items() if t not in m["errored"]}
    if not retried:
        return None
    tid, causes = next(iter(retried.items()))
    return (
        f"{len(retried)} trial(s) finished after a retry ({tid}: {causes[-1]}); every failure "
        "is in sweep.json (failures)"
    )
