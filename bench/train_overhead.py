"""Ray Train overhead on the SFT path, side by side in one run.

Same data, model and TRL settings, the same trainer code (`build_trainer`), four
ways: plain TRL in this process (all cores), Ray Train with 1 worker reporting
every 10 steps, the same reporting every step, Ray Train with 2 workers
(DDP over gloo, same effective batch, cores split between them), and the actor runner
(`train.runner=actor`, the default for one worker) reporting every 10 steps. The measure is
the training loop from its start to the final checkpoint written by the HF
Trainer (incl. reports on the way; excludes model load, worker start-up and
the upload of the final checkpoint), `train_runtime` in raysys's metrics. Prints the median of
--repeats interleaved runs and ratios against plain TRL; writes JSON to
bench/results/ and a row to BENCHMARKS.md.

    python bench/train_overhead.py [--model tiny-random] [--steps 24] [--repeats 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from raysys.config import TrainConfig, load_config
from raysys.io import write_parquet
from raysys.models import resolve_model
from raysys.runtime import init_ray
from raysys.tasks import build_splits, get_task
from raysys.train.launch import run_training
from raysys.train.spec import TrainSpec
from raysys.train.trainer import build_trainer

ROOT = Path(__file__).resolve().parents[1]


def _cfg(
    model: str,
    steps: int,
    every: int,
    workers: int = 1,
    dtype: str | None = None,
    runner: str = "ray_train",
) -> TrainConfig:
    dtype = dtype or ("float32" if model.startswith("tiny") else "bfloat16")
    return load_config(
        TrainConfig,
        None,
        [
            f"model.source={model}",
            f"model.dtype={dtype}",
            "data.path=unused.parquet",  # main() passes the real path to the trainers
            f"train.max_steps={steps}",
            f"train.report_every_steps={every}",
            f"train.save_steps={steps}",
            f"train.num_workers={workers}",
            f"train.runner={runner}",
            "train.batch_size=8",  # one optimizer step = one micro-batch per worker
            f"train.per_device_batch_size={8 // workers}",
            "train.lora.r=16",
        ],
    )


def plain_trl(cfg: TrainConfig, train_path: str, model_path: str) -> float:
    import torch

    spec = TrainSpec.from_section(
        cfg.train,
        model_path=model_path,
        train_path=train_path,
        dtype=cfg.model.dtype,
        seed=cfg.run.seed,
    )
    torch.set_num_threads(os.cpu_count() or 1)
    trainer = build_trainer(spec)
    from transformers import TrainerCallback

    marks: dict[str, float] = {}

    class Clock(TrainerCallback):
        # the same span raysys reports as train_runtime: loop start -> last checkpoint saved
        def on_train_begin(self, args, state, control, **kw):
            marks["begin"] = time.perf_counter()

        def on_save(self, args, state, control, **kw):
            marks["end"] = time.perf_counter()

    trainer.add_callback(Clock())
    trainer.train()
    return marks["end"] - marks["begin"]


THROUGHPUT: dict[str, list[dict[str, float]]] = {}  # arm -> tokens/s, MFU per run


def ray_train(cfg: TrainConfig, train_path: str, model_path: str, arm: str = "") -> float:
    out = Path(tempfile.mkdtemp(prefix="bench-sft-"))
    final = run_training(train_path, model_path, cfg.train, cfg.model.dtype, out, cfg.run.seed)
    # tokens/s and MFU as the worker measured them: MFU is against a matmul probe run
    # in the same worker at start-up, same device and dtype
    THROUGHPUT.setdefault(arm, []).append(
        {k: final[k] for k in ("tokens_per_second", "mfu") if k in final}
    )
    return final["train_runtime"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="tiny-random")
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--arms", default="", help="comma-separated subset of the arms")
    args = ap.parse_args()
    init_ray(address="local", num_cpus=os.cpu_count())
    model_path = resolve_model(args.model)
    data = Path(tempfile.mkdtemp(prefix="bench-data-"))
    base = _cfg(args.model, args.steps, 10)
    task = get_task("news_sentiment")
    rows = build_splits(task.name, {"train": 256}, 0)["train"]
    train_path = str(data / "train_sft.parquet")
    write_parquet(
        Path(train_path),
        [
            {
                "id": r["id"],
                "messages": task.messages(r) + [{"role": "assistant", "content": task.target(r)}],
            }
            for r in rows
        ],
    )
    other = "bfloat16" if base.model.dtype == "float32" else "float32"
    arms = {
        "plain_trl": lambda: plain_trl(base, train_path, model_path),
        "ray_report_every_step": lambda: ray_train(
            _cfg(args.model, args.steps, 1), train_path, model_path, "ray_report_every_step"
        ),
        "ray_report_every_10": lambda: ray_train(
            base, train_path, model_path, "ray_report_every_10"
        ),
        "ray_2_workers_every_10": lambda: ray_train(
            _cfg(args.model, args.steps, 10, workers=2),
            train_path,
            model_path,
            "ray_2_workers_every_10",
        ),
        "actor_every_10": lambda: ray_train(
            _cfg(args.model, args.steps, 10, runner="actor"),
            train_path,
            model_path,
            "actor_every_10",
        ),
        f"ray_{other}_every_10": lambda: ray_train(
            _cfg(args.model, args.steps, 10, dtype=other),
            train_path,
            model_path,
            f"ray_{other}_every_10",
        ),
    }
    if args.arms:
        keep = ["plain_trl", *args.arms.split(",")]
        unknown = sorted(set(keep) - set(arms))
        if unknown:
            raise SystemExit(f"--arms: unknown {unknown}; choose from {sorted(arms)}")
        arms = {k: v for k, v in arms.items() if k in keep}
    times: dict[str, list[float]] = {k: [] for k in arms}
    for _ in range(args.repeats):  # interleaved, so drift hits every arm alike
        for name, fn in arms.items():
            times[name].append(fn())
    med = {k: statistics.median(v) for k, v in times.items()}
    ratios = {k: med[k] / med["plain_trl"] for k in med}
    for k in arms:
        print(f"{k:24s} {med[k] / args.steps:7.3f} s/step   ratio vs plain TRL {ratios[k]:.2f}x")
    _record(args, med, ratios, times)


def _record(args, med, ratios, times) -> None:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    result = {
        "bench": "train_overhead",
        "date": stamp,
        "args": vars(args),
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "median_train_runtime_s": med,
        "ratios_vs_plain_trl": ratios,
        "throughput": {
            arm: {
                k: statistics.median(r[k] for r in runs if k in r)
                for k in ("tokens_per_second", "mfu")
                if any(k in r for r in runs)
            }
            for arm, runs in THROUGHPUT.items()
        },
        "ray_env": {k: v for k, v in os.environ.items() if k.startswith("RAY_")},
        "runs": times,
    }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"train_overhead-{args.model}.json").write_text(json.dumps(result, indent=2))
    arms = f" --arms {args.arms}" if args.arms else ""
    tp = result["throughput"]

    def cell(k: str) -> str:
        extra = ""
        if k in tp and "tokens_per_second" in tp[k]:
            extra = f", {tp[k]['tokens_per_second']:.0f} tok/s, MFU {tp[k].get('mfu', 0):.2%}"
        return f"{k} {ratios[k]:.2f}x ({med[k] / args.steps:.2f} s/step{extra})"

    line = (
        f"| {stamp} | `python bench/train_overhead.py --model {args.model} --steps {args.steps} "
        f"--repeats {args.repeats}{arms}` | {result['machine']} | "
        + ", ".join(cell(k) for k in med)
        + " |\n"
    )
    _insert_row(ROOT / "BENCHMARKS.md", "## Ray Train overhead", line)


def _insert_row(path: Path, section: str, line: str) -> None:
    """Add `line` after the last table row of `section` (other sections follow it)."""
    lines = path.read_text().splitlines(keepends=True)
    start = next(i for i, text in enumerate(lines) if text.startswith(section))
    end = start + 1
    while end < len(lines) and not lines[end].startswith("## "):
        end += 1
    rows = [i for i in range(start, end) if lines[i].startswith("|")]
    lines.insert(rows[-1] + 1, line)
    path.write_text("".join(lines))


if __name__ == "__main__":
    main()
