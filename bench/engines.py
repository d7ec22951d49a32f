"""Generation engine benchmarks, side by side in one run (hf engine; vllm when installed).

Arms, all on the same prompts (news_sentiment test rows), greedy:
- one_pass_8_adapters: base model + 8 LoRA adapters evaluated in ONE Ray Data pass
  vs separate_8_runs: 8 separate passes of one adapter each (what a job per adapter costs);
- ray_data vs direct: the same engine through Ray Data vs called in this process: a whole
  pass (each arm's first, model load included), and the steady state (the marginal cost
  of the rows beyond 2: a whole pass minus a 2-prompt pass, Ray Data in a warm Ray);
- batched vs batch_1: generate() batch size 32 vs 1 (tokens/s).

Adapters are random LoRAs (r=8, non-zero B) so each one really changes the outputs.

    python bench/engines.py [--model smollm2-135m-instruct] [--prompts 32] [--max-new-tokens 16]
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

from raysys.config import GenerateSection
from raysys.engines import Sampling, generate
from raysys.engines.hf import HFGenerator
from raysys.models import resolve_model
from raysys.runtime import init_ray
from raysys.tasks import build_splits, get_task

ROOT = Path(__file__).resolve().parents[1]


def make_adapters(model_path: str, n: int, root: Path) -> dict[str, str]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = {}
    for i in range(n):
        torch.manual_seed(i)
        base = AutoModelForCausalLM.from_pretrained(model_path)
        cfg = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False)
        model = get_peft_model(base, cfg)
        with torch.no_grad():  # small random updates: outputs change but stay fluent
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.mul_(0.01)
        model.save_pretrained(root / f"a{i}")
        out[f"a{i}"] = str(root / f"a{i}")
    return out


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--dtype", default=None, help="default: float32 for tiny, else bfloat16")
    ap.add_argument(
        "--no-adapters", action="store_true", help="skip the 8-adapter arms (the slow ones)"
    )
    ap.add_argument("--suffix", default="", help="added to the results file's name")
    ap.add_argument(
        "--skip-batch-1", action="store_true", help="skip the batch-1 arm (slow on many prompts)"
    )
    args = ap.parse_args()
    init_ray(address="local", num_cpus=os.cpu_count())
    model = resolve_model(args.model)
    dtype = args.dtype or ("float32" if args.model.startswith("tiny") else "bfloat16")
    task = get_task("news_sentiment")
    test = build_splits(task.name, {"test": args.prompts}, 0)["test"]
    adapters = (
        {}
        if args.no_adapters
        else make_adapters(model, 8, Path(tempfile.mkdtemp(prefix="bench-adapters-")))
    )
    gen = GenerateSection(max_new_tokens=args.max_new_tokens, batch_size=32)

    def rows(names):
        return [
            {"id": r["id"], "messages": task.messages(r), "adapter": n} for n in names for r in test
        ]

    res: dict[str, float] = {}
    if not args.no_adapters:
        res["one_pass_8_adapters_s"], _ = timed(
            lambda: generate(rows(list(adapters)), model, adapters, gen, dtype)
        )
        res["separate_8_runs_s"] = sum(
            timed(lambda n=n: generate(rows([n]), model, {n: adapters[n]}, gen, dtype))[0]
            for n in adapters
        )
    base_rows = rows([""])
    # the first pass of this Ray instance, as a pipeline's first generation pass
    res["ray_data_s"], out = timed(lambda: generate(base_rows, model, None, gen, dtype))
    # Ray Data's fixed cost per pass in a warm Ray instance: the same pass over 2 prompts
    # (executor, a fresh actor process importing torch + transformers, model load) ...
    res["ray_data_2_prompts_s"], _ = timed(lambda: generate(base_rows[:2], model, None, gen, dtype))
    # ... and the whole pass again: the difference is the marginal cost of the other rows
    res["ray_data_warm_s"], _ = timed(lambda: generate(base_rows, model, None, gen, dtype))
    # the same pass on 2 actors x 1 thread (vs 1 actor x all threads above)
    gen2 = gen.model_copy(update={"concurrency": 2})
    res["ray_data_2_actors_s"], _ = timed(lambda: generate(base_rows, model, None, gen2, dtype))
    tokens = int(out["num_generated_tokens"].sum())
    import pandas as pd

    # direct: load the model in this process and call the engine; both arms load it once
    greedy = Sampling(max_new_tokens=args.max_new_tokens)
    t_load, engine = timed(lambda: HFGenerator(model, None, greedy, 32, dtype, os.cpu_count()))
    t_gen2, _ = timed(lambda: engine(pd.DataFrame(base_rows[:2])))
    t_gen, _ = timed(lambda: engine(pd.DataFrame(base_rows)))
    res["direct_load_s"], res["direct_2_prompts_s"] = t_load, t_gen2
    res["direct_generate_s"] = t_gen
    res["direct_s"] = t_load + t_gen
    res["batched_tokens_per_s"] = tokens / t_gen
    if not args.skip_batch_1:
        one = HFGenerator(model, None, greedy, 1, dtype, os.cpu_count())
        t1, out1 = timed(lambda: one(pd.DataFrame(base_rows)))
        res["batch_1_tokens_per_s"] = int(out1["num_generated_tokens"].sum()) / t1
    # per-pass fixed cost beyond generating: Ray Data's (warm Ray) and direct's model load
    res["ray_data_fixed_s"] = res["ray_data_2_prompts_s"] - t_gen2
    res["ray_data_first_pass_extra_s"] = res["ray_data_s"] - res["ray_data_warm_s"]
    ratios = {
        "ray_data_vs_direct_throughput": res["direct_s"] / res["ray_data_s"],
        "ray_data_2_actors_vs_direct_throughput": res["direct_s"] / res["ray_data_2_actors_s"],
        "2_actors_vs_1_wall": res["ray_data_2_actors_s"] / res["ray_data_s"],
        # steady state: the marginal cost of the rows beyond 2, direct vs Ray Data (warm)
        "ray_data_vs_direct_steady_state": (t_gen - t_gen2)
        / max(res["ray_data_warm_s"] - res["ray_data_2_prompts_s"], 1e-9),
    }
    if not args.skip_batch_1:
        ratios["batched_vs_batch_1"] = res["batched_tokens_per_s"] / res["batch_1_tokens_per_s"]
    if not args.no_adapters:
        ratios["one_pass_vs_separate"] = res["one_pass_8_adapters_s"] / res["separate_8_runs_s"]
    result = {
        "bench": "engines",
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"),
        "args": vars(args),
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "engine": "hf",
        "seconds": res,
        "ratios": ratios,
    }
    print(json.dumps(result, indent=2))
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    (
        ROOT
        / "bench"
        / "results"
        / f"engines-hf-{args.model}{'-noadapters' if args.no_adapters else ''}"
        f"{'-' + args.dtype if args.dtype else ''}{'-' + args.suffix if args.suffix else ''}.json"
    ).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
