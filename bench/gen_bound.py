"""The hf engine's generation against its compute bound, and this tree vs a baseline git ref.

On the embedded model (bf16, CPU), `HFGenerator` is called directly (no Ray Data) on the
same news_sentiment test prompts, greedy, `--max-new-tokens` new tokens, batch 32, in this
tree and in `--baseline` (a temporary worktree), alternating fresh processes. Reported:
generated rows per second of each (median of `--repeats`), their ratio (issue 25's goal:
≥ 2x), and for this tree the time of a prefill-only forward of the same batches against
the compute bound of that prefill: 2 x non-embedding parameters x prompt tokens at the
bf16 matmul peak the training probe measures (`raysys.train.perf.probe_peak_flops`).

    python bench/gen_bound.py [--baseline REF] [--prompts 64] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import baseline

ROOT = Path(__file__).resolve().parents[1]


def child(out: str, prompts: str, max_new_tokens: str, bound: str, prefix: str = "") -> None:
    """In a fresh process: rows/s of the engine called directly (and, if `bound` is "1",
    the prefill-only time and its compute bound); JSON to `out`. `prefix` "0"/"1": the
    engine's prefix cache off/on (a tree before it existed takes no such argument)."""
    import torch

    from raysys.engines import Sampling
    from raysys.engines.base import BASE
    from raysys.engines.hf import HFGenerator
    from raysys.models import resolve_model
    from raysys.tasks import build_splits, get_task

    n = int(prompts)
    model = resolve_model("smollm2-135m-instruct")
    task = get_task("news_sentiment")
    rows = build_splits(task.name, {"test": n}, 0)["test"]
    kw = {"prefix_cache": prefix == "1"} if prefix else {}
    engine = HFGenerator(
        model,
        None,
        Sampling(max_new_tokens=int(max_new_tokens)),
        32,
        "bfloat16",
        os.cpu_count(),
        **kw,
    )
    texts = [engine._render(task.messages(r)) for r in rows]
    engine._generate(texts[:4])  # warm-up: first-call allocations
    t0 = time.perf_counter()
    outs = engine._generate_for(BASE, texts)
    seconds = time.perf_counter() - t0
    result: dict = {"rows": n, "seconds": seconds, "rows_per_second": n / seconds}
    result["dtype"] = str(engine.model.dtype).removeprefix("torch.")
    result["prefix_cache"] = bool(getattr(engine, "prefix_cache", False))
    result["generated_tokens"] = sum(o["num_generated_tokens"] for o in outs)
    if bound == "1":
        from raysys.train.perf import probe_peak_flops

        lens = [len(x) for x in engine.tok(texts, add_special_tokens=False)["input_ids"]]
        order = sorted(range(n), key=lambda i: lens[i])
        prefill = 0.0
        for s in range(0, n, 32):
            enc = engine.tok(
                [texts[i] for i in order[s : s + 32]],
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
            )
            t = time.perf_counter()
            with torch.inference_mode():
                engine.model(**enc, logits_to_keep=1)
            prefill += time.perf_counter() - t
        computed = 0  # prompt tokens the pass computes with the prefix cache
        for s in range(0, n, 32):
            chunk = [lens[i] for i in order[s : s + 32]]
            ids = engine.tok([texts[i] for i in order[s : s + 32]], add_special_tokens=False)
            shared = engine._prefix_plan(ids["input_ids"]) if result["prefix_cache"] else 0
            computed += shared + sum(x - shared for x in chunk)
        result["prompt_tokens_computed"] = computed
        m = engine.model
        params = sum(p.numel() for p in m.parameters()) - m.get_input_embeddings().weight.numel()
        flops = 2.0 * params * sum(lens)
        peak = probe_peak_flops(torch.device("cpu"), engine.model.dtype)  # the dtype it ran in
        result.update(
            prompt_tokens=sum(lens),
            prefill_seconds=prefill,
            prefill_flops=flops,
            peak_flops=peak,
            bound_seconds=flops / peak,
            prefill_fraction_of_bound=(flops / peak) / prefill,
            pass_fraction_of_bound=(flops / peak) / seconds,
        )
    Path(out).write_text(json.dumps(result))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", default="8620033", help="git ref to compare with")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    arms = {  # name: (tree, prefix cache argument); "" = a tree without the argument
        "baseline": (baseline.tree(args.baseline), ""),
        "this tree, no prefix cache": (ROOT, "0"),
        "this tree": (ROOT, "1"),
    }
    load = os.getloadavg()[0]
    got: dict[str, list[dict]] = {k: [] for k in arms}
    for i in range(args.repeats):  # interleaved: drift hits every arm alike
        for name, (where, prefix) in arms.items():
            bound = "1" if name == "this tree" and i == 0 else "0"
            got[name].append(
                baseline.run_child(
                    where, "gen_bound", "child", args.prompts, args.max_new_tokens, bound, prefix
                )
            )
    rps = {k: statistics.median(r["rows_per_second"] for r in v) for k, v in got.items()}
    ratio = rps["this tree"] / rps["baseline"]
    cache = rps["this tree"] / rps["this tree, no prefix cache"]
    b = got["this tree"][0]
    dtypes = {k: v[0]["dtype"] for k, v in got.items()}
    print(f"rows/s: {', '.join(f'{k} {v:.2f} ({dtypes[k]})' for k, v in rps.items())}")
    print(f"this tree vs baseline {ratio:.2f}x; prefix cache on vs off {cache:.2f}x")
    print(
        f"prefill {b['prefill_seconds']:.2f} s vs compute bound {b['bound_seconds']:.2f} s "
        f"({b['prefill_fraction_of_bound']:.0%}); whole pass {b['pass_fraction_of_bound']:.0%}; "
        f"prompt tokens computed {b['prompt_tokens_computed']} of {b['prompt_tokens']}"
    )
    baseline.record(
        "gen_bound",
        args,
        load,
        rows_per_second=rps,
        ratio_vs_baseline=ratio,
        prefix_cache_ratio=cache,
        dtypes=dtypes,
        bound={k: v for k, v in b.items() if k != "rows"},
        runs=got,
    )


if __name__ == "__main__":
    main()
