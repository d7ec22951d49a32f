"""`raysys quickstart`: a small complete study on the embedded model (a pipeline preset)."""

from __future__ import annotations

import argparse

DESCRIPTION = (
    "On local Ray (or the cluster of $RAY_ADDRESS): evaluate the base model; a small "
    "cocktail x fraction SFT sweep on Ray Tune + Ray Train; DPO if the SFT model's outputs run "
    "overlong or miss the answer format; label the test-only stance task by CoT voting and "
    "train on it; score every adapter in one engine pass; write report.html (pipeline table, "
    "baselines and paired tests, transfer matrix, leaderboard, scaling points). --preset full "
    "runs the same study at the study's size and hyperparameters (needs a GPU cluster)."
)


def add(sub: argparse._SubParsersAction) -> None:
    q = sub.add_parser(
        "quickstart",
        help="a small complete study on the embedded model: sweep, DPO gate, synthesis, report",
        description=DESCRIPTION,
    )
    q.add_argument(
        "--preset",
        choices=["embedded", "full"],
        default="embedded",
        help="embedded: ~7 min on 2 CPU cores (default); full: the study's size, GPUs",
    )
    q.add_argument("--config", help="a pipeline YAML instead of the preset")
    q.add_argument(
        "--resume", action="store_true", help="continue the latest quickstart run (or run.run_id)"
    )
    q.add_argument("overrides", nargs="*", metavar="a.b=c", help="override config fields")
    q.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from raysys.cli.pipeline import run_and_print
    from raysys.config import PipelineConfig
    from raysys.pipeline.presets import preset_path
    from raysys.tasks.checks import load

    cfg = load(PipelineConfig, args.config or preset_path(args.preset), args.overrides)
    return run_and_print(cfg, args.resume)
