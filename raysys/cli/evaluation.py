"""`raysys eval CONFIG`: the base model and any number of adapters, one engine pass."""

from __future__ import annotations

import argparse

from raysys.cli._common import config_args, load, where

DESCRIPTION = (
    "One Ray Data pass: each engine actor loads the base model once and every adapter by name "
    "(canary: each adapter must change the model's outputs). Writes the raw generations and a "
    "table with one row per (adapter, task) to <run.storage_path>/<run.name>/<run_id>/eval/."
)


def add(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser(
        "eval",
        help="evaluate the base model and any number of adapters on any tasks, in one pass",
        description=DESCRIPTION,
    )
    config_args(ev, "configs/eval.yaml")
    ev.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from raysys.config import EvalConfig
    from raysys.evaluate.job import run_eval_job
    from raysys.evaluate.scoring import format_results

    run_dir, results = run_eval_job(load(EvalConfig, args))
    print(f"\n{format_results(results)}")
    print(f"Outputs: {where(run_dir / 'eval')}")
    return 0
