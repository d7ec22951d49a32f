"""`raysys synth CONFIG`: label unlabeled inputs by CoT sampling and majority vote."""

from __future__ import annotations

import argparse
from typing import Any

from raysys.cli._common import config_args, load, where

DESCRIPTION = (
    "Sample synth.samples step-by-step answers per input, extract each answer (strict regex, "
    "then flexible), keep the majority when at least synth.min_agreement of the samples agree; "
    "write SFT rows, DPO pairs and statistics to <run.storage_path>/<run.name>/<run_id>/synth/. "
    "Re-run with the same run.run_id to resume: inputs already labeled are skipped."
)


def add(sub: argparse._SubParsersAction) -> None:
    sy = sub.add_parser(
        "synth",
        help="label unlabeled inputs by chain-of-thought sampling and majority vote",
        description=DESCRIPTION,
    )
    config_args(sy, "configs/synth.yaml")
    sy.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from raysys.config import SynthConfig
    from raysys.synth.job import run_synth_job

    cfg = load(SynthConfig, args)
    run_dir, st = run_synth_job(cfg)
    print(
        f"\n{cfg.synth.task}: {st['inputs']} inputs x {cfg.synth.samples} samples, kept "
        f"{st['kept']} (yield {st['yield']:.2f}) at agreement >= {cfg.synth.min_agreement}"
        f"{_confidence_rule(cfg.synth.min_confidence)}; "
        f"{st['sft_rows']} SFT rows, {st.get('dpo', {}).get('pairs', 0)} DPO pairs"
    )
    if st.get("kept_label_accuracy") is not None:
        print(f"accuracy of kept labels vs held-back gold: {st['kept_label_accuracy']:.3f}")
    print(f"Outputs: {where(run_dir / 'synth')}")
    print(f"Report (kept-label accuracy vs yield): {where(run_dir / 'synth' / 'report.html')}")
    return 0


def _confidence_rule(mc: Any) -> str:
    if mc is None:
        return ""
    return "".join(f", {k} >= {v}" for k, v in mc.model_dump(exclude_none=True).items())
