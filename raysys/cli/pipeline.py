"""`raysys pipeline CONFIG`: the study's sequence as one resumable job."""

from __future__ import annotations

import argparse
import time
from typing import Any

from raysys.cli._common import config_args, load, where

DESCRIPTION = (
    "Evaluate the base model, LoRA-SFT on pipeline.tasks (or run a sweep as the SFT stage), run "
    "DPO when the SFT model's outputs on training inputs are overlong or miss the answer format "
    "more than the thresholds, then for pipeline.rounds rounds label pipeline.synth_tasks by CoT "
    "voting with the current model and SFT on gold + synthetic rows; evaluate after every "
    "stage; write pipeline.json and report.html under <run.storage_path>/<run.name>/<run_id>/. "
    "Stages are keyed by their config: --resume (or the same run.run_id) skips finished stages "
    "and resumes the interrupted one."
)


def add(sub: argparse._SubParsersAction) -> None:
    pl = sub.add_parser(
        "pipeline",
        help="the study's sequence: SFT, DPO (gated), N x (synthesis, SFT), eval after each",
        description=DESCRIPTION,
    )
    config_args(pl, "configs/pipeline.yaml")
    pl.add_argument(
        "--resume", action="store_true", help="continue run.run_id (default: the latest run)"
    )
    pl.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from raysys.config import PipelineConfig

    return run_and_print(load(PipelineConfig, args), args.resume)


def run_and_print(cfg: Any, resume: bool) -> int:
    from raysys.pipeline.driver import run_pipeline
    from raysys.pipeline.report import headline

    start = time.perf_counter()
    out = run_pipeline(cfg, resume=resume)
    s = out.summary
    print(f"\nTest main metric per task and stage (model {cfg.model.source}):")
    print(headline(s, out.run_dir))
    if s.get("dpo"):
        print(f"\nDPO {'ran' if s['dpo']['run'] else 'skipped'}: {s['dpo']['why']}")
    for line in synthesis_lines(s):
        print(line)
    if s.get("sweep_dir"):
        from raysys.analysis.report import sweep_headline

        print(f"\n{sweep_headline(s['sweep_dir'])}")
    times = ", ".join(
        f"{st['stage']} {st['seconds']:.0f}s" for st in s["stages"] if not st["skipped"]
    )
    print(f"\nStages: {times or 'all done earlier'}; total {time.perf_counter() - start:.0f}s")
    print(f"Report: {where(out.report['html'])}")
    return 0


def synthesis_lines(summary: dict[str, Any]) -> list[str]:
    out = []
    for rnd in summary.get("synthesis", []):
        for task, st in rnd["tasks"].items():
            acc = st.get("kept_label_accuracy")
            acc_s = f", kept-label accuracy {acc:.3f}" if acc is not None else ""
            out.append(
                f"Synthesis round {rnd['round']} ({task}): {st['kept']}/{st['inputs']} kept "
                f"(yield {st['yield']:.2f}){acc_s}"
            )
    return out
