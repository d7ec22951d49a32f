"""A short SFT then DPO run on the embedded model, on 2 cores: what each stage costs.

1. LoRA SFT (r=128, the study's rank) on the sentiment cocktail through Ray Train.
2. One engine pass over training prompts with the base model and the SFT adapter.
3. DPO pairs mined from those generations (rejected: wrong / unextractable /
   overlong / looping; chosen: a correct generation or the gold target).
4. DPO (r=16, beta=1) with the SFT adapter merged in (reference = SFT model).
5. One engine pass on the held-out test split: SFT adapter vs SFT(+)DPO adapter.

Prints and records seconds/step, tokens/s, MFU (against the measured matmul peak)
and peak memory of both training stages, plus the eval before/after DPO.

    python bench/sft_dpo_embedded.py [--sft-steps 20] [--dpo-steps 8] [--prompts 96]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from raysys.config import GenerateSection, TrainConfig, load_config
from raysys.evaluate.scoring import evaluate
from raysys.io import write_parquet
from raysys.models import resolve_model
from raysys.runtime import init_ray
from raysys.synth.pairs import mine_pairs
from raysys.tasks import build_splits, get_task
from raysys.train.data import training_data
from raysys.train.launch import run_training

ROOT = Path(__file__).resolve().parents[1]
MODEL = "smollm2-135m-instruct"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sft-steps", type=int, default=20)
    ap.add_argument("--dpo-steps", type=int, default=8)
    ap.add_argument("--prompts", type=int, default=96)
    ap.add_argument("--test-rows", type=int, default=120)
    args = ap.parse_args()
    init_ray(address="local", num_cpus=os.cpu_count())
    work = Path(tempfile.mkdtemp(prefix="bench-sftdpo-"))
    model = resolve_model(MODEL)
    task = get_task("news_sentiment")
    t0 = time.perf_counter()

    sft_cfg = load_config(
        TrainConfig,
        ROOT / "configs" / "train_sft.yaml",
        [
            f"data.cocktail={ROOT / 'configs' / 'cocktails' / 'sentiment_mix.yaml'}",
            "data.train_size=200",
            f"train.max_steps={args.sft_steps}",
            "train.batch_size=8",
            "train.learning_rate=2e-4",
            "train.save_steps=1000",
        ],
    )
    sft_data = training_data(sft_cfg, work)
    sft = run_training(sft_data, model, sft_cfg.train, "bfloat16", work / "sft", 0)

    gen = GenerateSection(max_new_tokens=24, batch_size=32)
    prompts = build_splits(task.name, {"train": 400}, 0)["train"][: args.prompts]
    from raysys.engines import hf

    rows = [
        {"id": r["id"], "messages": task.messages(r), "adapter": a}
        for a in ("", "sft")
        for r in prompts
    ]
    t_gen = time.perf_counter()
    gens = hf.generate(rows, model, {"sft": str(work / "sft" / "adapter")}, gen, "bfloat16")
    gen_seconds = time.perf_counter() - t_gen
    pairs, stats = mine_pairs(task, prompts, gens.to_dict("records"))
    write_parquet(work / "pairs.parquet", pairs)

    dpo_cfg = load_config(
        TrainConfig,
        ROOT / "configs" / "train_dpo.yaml",
        [
            f"data.path={work / 'pairs.parquet'}",
            f"train.init_adapter={work / 'sft' / 'adapter'}",
            f"train.max_steps={args.dpo_steps}",
            "train.batch_size=8",
            "train.save_steps=1000",
        ],
    )
    dpo = run_training(
        str(work / "pairs.parquet"), model, dpo_cfg.train, "bfloat16", work / "dpo", 0
    )
    test = build_splits(task.name, {"test": args.test_rows}, 0)["test"]
    adapters = {"sft": str(work / "sft" / "adapter"), "sft_dpo": str(work / "dpo" / "adapter")}
    scores = evaluate(task, test, model, adapters, gen, "bfloat16", work / "eval", False)
    total = time.perf_counter() - t0

    keys = (
        "step",
        "seconds_per_step_median",
        "tokens_per_second",
        "mfu",
        "peak_memory_bytes",
        "train_tokens",
        "peak_flops_per_worker",
        "loss",
        "wall_seconds",
    )
    result = {
        "bench": "sft_dpo_embedded",
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"),
        "args": vars(args),
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "sft": {k: sft.get(k) for k in keys},
        "dpo": {k: dpo.get(k) for k in keys},
        "generation": {"rows": len(rows), "seconds": gen_seconds},
        "pairs": stats,
        "eval": {
            name: {
                k: m[k]
                for k in (
                    "accuracy",
                    "macro_f1",
                    "missing_rate",
                    "mean_generated_tokens",
                    "overlong_rate",
                )
            }
            for name, m in scores.items()
        },
        "total_seconds": total,
    }
    print(json.dumps(result, indent=2))
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "sft_dpo_embedded.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
