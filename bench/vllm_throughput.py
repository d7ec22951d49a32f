"""Throughput: vLLM via ray.data.llm vs direct `LLM.generate` vs the hf engine.

SmolLM2 (embedded), news_sentiment test prompts, greedy, max_new_tokens 32. One arm per
process (vLLM holds its cores), run them back to back on a quiet machine:

    for n in 64 256; do for m in direct ray hf; do
      python bench/vllm_throughput.py $m $n bfloat16; done; done

Each prints a JSON line (engine start, generation and total seconds, tokens).
"""

import json
import os
import sys
import tempfile
import time


def prompts(n):
    from raysys.tasks import build_splits, get_task

    task = get_task("news_sentiment")
    rows = build_splits("news_sentiment", {"test": n}, 0)["test"]
    return [{"id": r["id"], "messages": task.messages(r), "adapter": ""} for r in rows]


if __name__ == "__main__":
    mode, n, dtype = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    pass  # RAYSYS_CACHE as for every raysys command
    t0 = time.perf_counter()
    from raysys.models import resolve_model

    path = resolve_model("smollm2-135m-instruct")
    rows = prompts(n)
    res = {
        "mode": mode,
        "n": n,
        "dtype": dtype,
        "load_before": os.getloadavg()[0],
        "start": time.strftime("%H:%M:%S"),
    }
    if mode == "direct":
        from transformers import AutoTokenizer
        from vllm import LLM, SamplingParams

        from raysys.engines.vllm import stop_token_ids

        tok = AutoTokenizer.from_pretrained(path)
        ids = [
            tok(
                tok.apply_chat_template(r["messages"], add_generation_prompt=True, tokenize=False),
                add_special_tokens=False,
            )["input_ids"]
            for r in rows
        ]
        t1 = time.perf_counter()
        llm = LLM(
            model=path,
            dtype=dtype,
            kv_cache_memory_bytes=1 << 30,
            enforce_eager=True,
            disable_log_stats=True,
        )
        t2 = time.perf_counter()
        outs = llm.generate(
            [{"prompt_token_ids": i} for i in ids],
            SamplingParams(max_tokens=32, temperature=0, stop_token_ids=stop_token_ids(path)),
            use_tqdm=False,
        )
        t3 = time.perf_counter()
        res.update(
            engine_s=t2 - t1,
            gen_s=t3 - t2,
            total_s=t3 - t1,
            tokens=sum(len(o.outputs[0].token_ids) for o in outs),
        )
        res["texts"] = [o.outputs[0].text for o in outs]
    else:
        from raysys.config import GenerateSection
        from raysys.runtime import init_ray

        init_ray(address="local", num_cpus=2, temp_dir=tempfile.mkdtemp(prefix="rt", dir="/tmp"))
        cfg = GenerateSection(
            max_new_tokens=32, batch_size=int(os.environ.get("BS", 32)), num_cpus=1.0
        )
        if mode == "ray":
            from raysys.engines.vllm import generate
        else:
            from raysys.engines.hf import generate
        t1 = time.perf_counter()
        df = generate(rows, path, None, cfg, dtype)
        t3 = time.perf_counter()
        res.update(total_s=t3 - t1, tokens=int(df["num_generated_tokens"].sum()))
        res["texts"] = df.sort_values("id")["generated_text"].tolist()
    res["tok_per_s_total"] = res["tokens"] / res["total_s"]
    res["load_after"] = os.getloadavg()[0]
    out = os.path.join(
        os.path.dirname(__file__), "results", f"vllm_throughput-{mode}-{n}-{dtype}.json"
    )
    json.dump(res, open(out, "w"))
    print(
        "RESULT",
        json.dumps(
            {
                k: (round(v, 2) if isinstance(v, float) else v)
                for k, v in res.items()
                if k != "texts"
            }
        ),
    )
