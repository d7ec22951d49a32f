"""What the hf engine's per-token log-probabilities cost: `model.generate` on the embedded
model with and without the `TokenLogprobs` forward hook + stopping criterion that every hf
generation pass now carries, side by side in one process (alternating, 3 repeats each).

    .venv/bin/python bench/logprob_hook.py
"""

from __future__ import annotations

import statistics
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, StoppingCriteriaList

from raysys.engines.hf import TokenLogprobs
from raysys.models import local_model, resolve_model


def main(batch: int = 32, new_tokens: int = 32, repeats: int = 3) -> None:
    path = local_model(resolve_model("smollm2-135m-instruct"))
    tok = AutoTokenizer.from_pretrained(path, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16).eval()
    prompts = [
        f"Headline {i}: shares of company {i} rose after earnings. Tone?" for i in range(batch)
    ]
    enc = tok(prompts, return_tensors="pt", padding=True)

    def run(hooked: bool) -> float:
        record = TokenLogprobs()
        extra = {"stopping_criteria": StoppingCriteriaList([record])} if hooked else {}
        handle = model.register_forward_hook(record.hook) if hooked else None
        start = time.perf_counter()
        with torch.inference_mode():
            model.generate(**enc, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                           do_sample=False, pad_token_id=tok.eos_token_id, **extra)  # fmt: skip
        took = time.perf_counter() - start
        if handle:
            handle.remove()
            assert len(record.table(new_tokens)[0]) == new_tokens
        return took

    run(False)  # warm-up
    plain, hooked = [], []
    for _ in range(repeats):
        plain.append(run(False))
        hooked.append(run(True))
    p, h = statistics.median(plain), statistics.median(hooked)
    print(f"batch {batch} x {new_tokens} new tokens: plain {p:.2f} s, with log-probs {h:.2f} s, "
          f"ratio {h / p:.3f}x (medians of {repeats})")  # fmt: skip


if __name__ == "__main__":
    main()
