"""`raysys search CONFIG`: mixtures proposed by a surrogate fitted to finished trials."""

from __future__ import annotations

import argparse
import time
from typing import Any

from raysys.cli._common import config_args, load, where
from raysys.errors import UserError

DESCRIPTION = (
    "A sweep config with a `search` section: the sweep's grid as the baseline (unless "
    "search.baseline=none), round 0 (space-filling mixtures of sweep.tasks and, where "
    "search.general / search.math / search.fraction give ranges, regulariser shares and data "
    "fraction), then rounds proposed by a surrogate fitted to the finished trials' validation "
    "scores (ridge on log-weights, or a Gaussian process) until search.budget is spent; one "
    "test pass and the report with predicted vs measured scores and the chosen mixture vs the "
    "grid's best point. --resume continues an interrupted search."
)


def add(sub: argparse._SubParsersAction) -> None:
    se = sub.add_parser(
        "search",
        help="find a task mixture from a model fitted to early trials (rounds of Ray Tune)",
        description=DESCRIPTION,
    )
    config_args(se, "configs/search_tiny.yaml")
    se.add_argument(
        "--dry-run", action="store_true", help="print the baseline, round 0 and the budget only"
    )
    se.add_argument(
        "--timings",
        metavar="RUN",
        help="with --dry-run: also estimate the study's wall time from an earlier sweep's or "
        "search's measured trial parts (as `sweep --dry-run --timings`)",
    )
    se.add_argument("--resume", action="store_true", help="continue the search of run.run_id")
    se.add_argument(
        "--retry-errored", action="store_true", help="with --resume: run errored trials again"
    )
    se.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from raysys.config import SweepConfig

    cfg = load(SweepConfig, args)
    if cfg.search is None:
        raise UserError(
            "search: the config has no `search` section; add one, e.g. `search: {initial: 6, "
            "per_round: 3}` (see README, Mixture search)"
        )
    from raysys.cli.sweep import check_flags, summary_line

    check_flags(args, "search")
    if args.dry_run:
        return plan_only(cfg, args.timings)
    from raysys.analysis.report import sweep_headline
    from raysys.sweep.search import run_search

    start = time.perf_counter()
    out = run_search(cfg, resume=args.resume, retry_errored=args.retry_errored)
    print(f"\n{sweep_headline(out.sweep_dir)}")
    print(summary_line(out.meta, time.perf_counter() - start))
    print(search_line(out.meta["search"]))
    print(f"Report: {where(out.sweep_dir / 'report.html')}")
    return 0


def search_line(s: dict[str, Any]) -> str:
    used = ", ".join(f"{k} {v:.3g}" for k, v in s["spent"].items())
    return f"search: rounds {', '.join(s['rounds'])}; spent {used} ({s['surrogate']} surrogate)"


def plan_only(cfg: Any, timings: str | None) -> int:
    from raysys.sweep.grid import format_grid, local_resources, plan_resources
    from raysys.sweep.search import format_mixtures, mixture_trials, search_plan

    grid, mixtures, budget = search_plan(cfg)
    r0 = mixture_trials(cfg, mixtures)
    plan = plan_resources(cfg, max(len(grid), len(r0)), local_resources(cfg))
    estimate = None
    if timings:
        from raysys.sweep.estimate import estimate as estimated
        from raysys.sweep.estimate import format_estimate, read_timings

        # the rounds after 0 are not known yet: sized like round 0's trials
        n = int(budget["trials"]) if budget.get("trials") else len(r0)
        future = [r0[i % len(r0)] for i in range(n)]
        estimate = format_estimate(estimated(cfg, grid + future, plan, read_timings(timings)))
    if grid:
        print("grid baseline:")
        print(format_grid(grid, plan))
    limits = ", ".join(f"{k} {v:g}" for k, v in budget.items() if v and not isinstance(v, bool))
    print(
        f"\nsearch budget: {limits}"
        + (" (the grid's trials)" if budget.get("equal_to_grid") else "")
    )
    print(f"round 0: {len(mixtures)} mixtures x {len(cfg.sweep.seeds)} seed(s)")
    print(format_mixtures(mixtures))
    if estimate:
        print(f"\n{estimate}")
        print("(the rounds after round 0 are not proposed yet: sized like round 0's trials)")
    return 0
