"""bfloat16 vs float32 for a LoRA training step of the embedded model on this CPU.

Why `model.dtype: bfloat16` resolves per machine (`raysys.models.supported_dtype`): a CPU
without bf16 instructions (no AVX512-BF16, no AMX) emulates bf16 matmuls. Both arms build
the model as the trainer does — bf16: base weights in bf16 under bf16 autocast, LoRA
weights in fp32; fp32: everything in fp32 — and time forward + backward of the same batch,
interleaved, median of `--steps` after one warm-up step.

    python bench/cpu_dtype.py [--steps 2] [--batch 4] [--seq 128]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time

import baseline


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=128)
    args = ap.parse_args()
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from raysys.models import cpu_has_bf16, local_model, resolve_model

    load = os.getloadavg()[0]
    torch.set_num_threads(os.cpu_count() or 1)
    path = local_model(resolve_model("smollm2-135m-instruct"))
    models = {}
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        torch.manual_seed(0)
        base = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        cfg = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear")
        models[name] = get_peft_model(base, cfg)
    x = torch.randint(0, 1000, (args.batch, args.seq))

    def step(name: str) -> float:
        ctx = (
            torch.autocast("cpu", dtype=torch.bfloat16)
            if name == "bfloat16"
            else contextlib.nullcontext()
        )
        t = time.perf_counter()
        with ctx:
            loss = models[name](input_ids=x, labels=x).loss
        loss.backward()
        return time.perf_counter() - t

    for name in models:
        step(name)  # warm-up
    got: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(args.steps):  # interleaved: drift hits both arms alike
        for name in models:
            got[name].append(step(name))
    med = {k: statistics.median(v) for k, v in got.items()}
    ratio = med["bfloat16"] / med["float32"]
    has = cpu_has_bf16()
    print(
        f"cpu bf16 instructions: {has}; step seconds fp32 {med['float32']:.2f}, "
        f"bf16 {med['bfloat16']:.2f}: bf16/fp32 {ratio:.2f}x"
    )
    baseline.record(
        "cpu_dtype", args, load, cpu_has_bf16=has, step_seconds=got, median=med, ratio=ratio
    )


if __name__ == "__main__":
    main()
