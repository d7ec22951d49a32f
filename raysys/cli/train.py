"""`raysys train CONFIG`: one LoRA SFT or DPO run on Ray Train (resumable)."""

from __future__ import annotations

import argparse

from raysys.cli._common import config_args, load, where

DESCRIPTION = (
    "Train a LoRA adapter with TRL in one Ray actor (one worker) or a Ray Train "
    "TorchTrainer (train.runner): SFT on chat rows or a "
    "cocktail, or DPO on prompt/chosen/rejected rows (after SFT: set train.init_adapter to the "
    "SFT adapter; the DPO reference is then the SFT model). Outputs go to "
    "<run.storage_path>/<run.name>/<run_id>/train/; re-run with run.run_id=<id> to resume from "
    "the latest checkpoint."
)


def add(sub: argparse._SubParsersAction) -> None:
    tr = sub.add_parser(
        "train",
        help="LoRA SFT or DPO of any model on Ray (resumable)",
        description=DESCRIPTION,
    )
    config_args(tr, "configs/train_sft.yaml")
    tr.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from raysys.config import TrainConfig
    from raysys.train.job import run_train_job

    cfg = load(TrainConfig, args)
    run_dir, s = run_train_job(cfg)
    workers = s.get("world_size", 1)
    print(f"\n{cfg.train.method.upper()} on {workers} worker(s), model {cfg.model.source}")
    print(
        f"steps {s.get('step', 0):.0f}, final loss {s.get('loss', float('nan')):.4f}, "
        f"{s.get('seconds_per_step_mean') or 0:.2f} s/step, "
        f"{s.get('tokens_per_second') or 0:.0f} tokens/s, MFU {100 * (s.get('mfu') or 0):.2f}%, "
        f"peak memory {(s.get('peak_memory_bytes') or 0) / 2**30:.2f} GiB"
    )
    print(f"Adapter: {where(run_dir / 'train' / 'adapter')}")
    print(f"Outputs: {where(run_dir)}")
    return 0
