"""Base-model scores on every built-in task, in one engine pass (one model load).

Validation split where a task has one (model selection never looks at test), else
test. Prints a table and the wall time; writes bench/results/base_scores-<model>.json.

    python bench/base_scores.py [--model smollm2-135m-instruct] [--rows 60] [--max-new-tokens 48]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from raysys.config import GenerateSection
from raysys.engines import hf
from raysys.models import resolve_model
from raysys.runtime import init_ray
from raysys.tasks import build_splits, get_task, task_names

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--rows", type=int, default=60)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    args = ap.parse_args()
    init_ray()
    model_path = resolve_model(args.model)
    work, split_of = [], {}
    for name in task_names():
        task = get_task(name)
        split = "validation" if "validation" in task.splits else "test"
        split_of[name] = split
        for r in build_splits(name, {split: args.rows}, 0)[split]:
            work.append(
                {
                    "id": r["id"],
                    "task": name,
                    "input": r["input"],
                    "gold": r["gold"],
                    "messages": task.messages(r),
                    "adapter": "",
                }
            )
    gen = GenerateSection(max_new_tokens=args.max_new_tokens)
    start = time.perf_counter()
    df = hf.generate(work, model_path, {}, gen, "bfloat16")
    seconds = time.perf_counter() - start
    results = {}
    print(f"{'task':18s} {'split':10s} {'main':>6s} {'missing':>8s} {'lenient':>8s} {'tokens':>7s}")
    for name, g in df.groupby("task"):
        task = get_task(name)
        m = task.score(g["gold"].tolist(), g["generated_text"].tolist(), g["input"].tolist())
        m["mean_generated_tokens"] = float(g["num_generated_tokens"].mean())
        lenient = m[
            ("finben_" if task.kind == "classification" else "flexible_") + task.main_metric
        ]
        results[name] = {"split": split_of[name], **m}
        print(
            f"{name:18s} {split_of[name]:10s} {m['main']:6.3f} {m['missing_rate']:8.3f} "
            f"{lenient:8.3f} {m['mean_generated_tokens']:7.1f}"
        )
    tok_s = df["num_generated_tokens"].sum() / seconds
    print(f"{len(df)} generations in {seconds:.0f}s ({tok_s:.0f} generated tok/s)")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"base_scores-{args.model}.json").write_text(
        json.dumps({"args": vars(args), "seconds": seconds, "results": results}, indent=2)
    )


if __name__ == "__main__":
    main()
