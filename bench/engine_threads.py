"""Generation on 2 cores: one hf actor with 2 threads vs two actors with 1 thread each.

The same 120 prompts (40 per task: news_sentiment, price_direction, fomc_stance) through
`raysys.engines.hf.generate` with the base embedded model, greedy, max_new_tokens 8, one
arm after the other in one process (each arm pays its own actor start-up and model load).

    python bench/engine_threads.py [--model smollm2-135m-instruct] [--prompts 40]
"""

from __future__ import annotations

import argparse
import os
import time

from raysys.config import GenerateSection
from raysys.engines import hf
from raysys.models import resolve_model
from raysys.runtime import init_ray
from raysys.tasks import build_splits, get_task

ARMS = [(1, 2, 40), (2, 1, 40), (1, 2, 16)]  # (actors, threads per actor, batch)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--prompts", type=int, default=40, help="per task")
    args = ap.parse_args()
    init_ray("local", os.cpu_count())
    model = resolve_model(args.model)
    dtype = "float32" if args.model.startswith("tiny") else "bfloat16"
    rows = []
    for name in ("news_sentiment", "price_direction", "fomc_stance"):
        task = get_task(name)
        rows += [
            {"id": r["id"], "messages": task.messages(r), "adapter": ""}
            for r in build_splits(name, {"test": args.prompts}, 0)["test"]
        ]
    first = None
    for actors, threads, batch in ARMS:
        gen = GenerateSection(
            engine="hf",
            max_new_tokens=8,
            batch_size=batch,
            concurrency=actors,
            torch_threads=threads,
        )
        start = time.perf_counter()
        out = hf.generate(rows, model, {}, gen, dtype)
        secs = time.perf_counter() - start
        first = first or secs
        print(
            f"actors={actors} threads={threads} batch={batch}: {len(out)} generations "
            f"{secs:.1f}s ({secs / len(out):.3f} s each) {secs / first:.2f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
