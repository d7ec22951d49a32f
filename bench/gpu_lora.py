"""LoRA SFT and generation on one GPU, on a Qwen2.5-1.5B-shaped model (issue #25 item 4).

The model is built from its config with random weights (no hub): Qwen2.5-1.5B's shape
(hidden 1536, intermediate 8960, 28 layers, 12 heads, 2 KV heads, vocab 151936, tied
embeddings, rope theta 1e6), saved in bf16 to a temp dir with the tiny model's tokenizer
(trained in code, `raysys.models`). Training goes through `raysys.train.trainer.build_trainer`,
the code the Ray Train worker runs (no Ray here), with the study's SFT settings: LoRA r=128,
alpha=256, dropout 0.05 on all linear layers, bf16, per-device batch 8, sequences of 1024
tokens (synthetic chat rows that fill them), SDPA attention. After --warmup steps, --steps
steps are timed (synchronised on the GPU). Reported:

- tokens/s: non-pad tokens of the timed steps (TRL's `num_tokens`) over their wall time;
- MFU: tokens/s x `perf.model_flops_per_token` over the measured bf16 matmul peak
  (`perf.probe_peak_flops`, the probe the worker uses), not a datasheet number;
- peak memory: `torch.cuda.max_memory_allocated` on GPU; on CPU the process's peak RSS;
- the hf engine (`HFGenerator`, called directly, on the GPU) at batch --gen-batch, greedy,
  --new-tokens per prompt on the base model: generated tokens/s, and prefill (one new
  token) vs decode split.

Anchor: torchtune's LoRA on Llama-3.2-3B at 8,210 tokens/s on one A100 (about 35-50 % MFU);
the goal here is >= 40 % MFU. Needs torch, transformers, peft, accelerate, TRL and datasets,
not Ray: on a GPU machine without network, `bench/gpu_wheels.sh` (run where pip works) puts
the missing wheels in bench/wheels/ and prints the command to run there.

    PYTHONPATH=. python3 bench/gpu_lora.py [--out bench/results/gpu_lora.json]
    PYTHONPATH=. python bench/gpu_lora.py --smoke     # CPU, tiny shape, seconds: same path
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from anywhere, raysys from this tree (not installed there)
    sys.path.insert(0, str(ROOT))

from raysys.train.perf import (  # noqa: E402
    model_flops_per_token,
    peak_memory_bytes,
    probe_peak_flops,
    versions,
)
from raysys.train.spec import DpoSpec, LoraSpec, TrainSpec  # noqa: E402

# Qwen2.5-1.5B(-Instruct)'s config.json, the fields that set the compute.
QWEN25_1_5B = dict(
    hidden_size=1536,
    intermediate_size=8960,
    num_hidden_layers=28,
    num_attention_heads=12,
    num_key_value_heads=2,
    vocab_size=151936,
    tie_word_embeddings=True,
    rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
    max_position_embeddings=32768,
    rms_norm_eps=1e-6,
)
# The smoke shape: the same architecture, small enough for seconds on a CPU
# (vocab: the tokenizer's own size).
TINY = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    tie_word_embeddings=True,
    rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
    max_position_embeddings=2048,
    rms_norm_eps=1e-6,
)
# The study's SFT settings (raysys.config.training's defaults; a test checks they agree).
STUDY_LORA = LoraSpec(r=128, alpha=256, dropout=0.05, target_modules="all-linear")
STUDY_LR = 5e-5
STUDY_PER_DEVICE_BATCH = 8
STUDY_SEQ = 1024

ANCHOR = "torchtune LoRA, Llama-3.2-3B, one A100: 8,210 tokens/s (about 35-50 % MFU)"
GOAL_MFU = 0.40

WORDS = (
    "revenue margin guidance quarter outlook dividend rate inflation hawkish dovish "
    "earnings growth decline rose fell percent billion million forecast analyst upgrade "
    "downgrade liquidity credit spread yield curve treasury equity bond market sector "
    "consumer demand supply chain cost pressure profit loss balance sheet cash flow the "
    "of and in to a for on with by from at as is was were will would could should"
).split()


def build_model(out: Path, shape: dict[str, Any], device: str) -> dict[str, Any]:
    """A Qwen2 causal LM of `shape`, random weights in bf16, with the tiny tokenizer."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from raysys.models import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model("tiny-random"))  # trained in code
    shape = {"vocab_size": len(tok), **shape}
    cfg = Qwen2Config(
        **shape,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    with torch.device(device):  # initialised where it runs: seconds, not minutes, at 1.5B
        model = Qwen2ForCausalLM._from_config(cfg, dtype=torch.bfloat16)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out)
    tok.save_pretrained(out)
    params = sum(p.numel() for p in model.parameters())
    del model
    return {"params": params, "vocab_size": shape["vocab_size"], "tokenizer_vocab": len(tok)}


def fill_text(tok: Any, n_tokens: int, rng: Any) -> str:
    """Random words from WORDS that come to about `n_tokens` tokens."""
    words = [rng.choice(WORDS) for _ in range(n_tokens * 2)]
    lo, hi = 1, len(words)
    while lo < hi:  # the most words whose text stays within n_tokens
        mid = (lo + hi + 1) // 2
        if len(tok(" ".join(words[:mid]), add_special_tokens=False)["input_ids"]) <= n_tokens:
            lo = mid
        else:
            hi = mid - 1
    return " ".join(words[:lo])


def chat_rows(tok: Any, n: int, seq: int, distinct: int = 8) -> list[dict[str, Any]]:
    """`n` SFT rows whose chat-templated tokens come to just under `seq` (so none is cut
    and each keeps its EOS): a quarter prompt, the rest the assistant's answer."""
    import random

    rng = random.Random(0)
    base: list[dict[str, Any]] = []
    for i in range(min(n, distinct)):
        prompt = fill_text(tok, seq // 4, rng)
        shell = [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": ""},
        ]
        used = len(_template_ids(tok, shell))
        answer = fill_text(tok, seq - used - 8, rng)  # margin: words merge at the seams
        msgs = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
        if len(_template_ids(tok, msgs)) > seq:
            raise AssertionError(f"synthetic row {i} is over {seq} tokens")
        base.append({"messages": msgs})
    return [{"id": f"r{i}", **base[i % len(base)]} for i in range(n)]


def _template_ids(tok: Any, msgs: list[dict[str, str]]) -> list[int]:
    out = tok.apply_chat_template(msgs, tokenize=True)
    return list(out["input_ids"] if not isinstance(out, list) else out)


def train_spec(model_path: str, train_path: str, steps: int, batch: int, seq: int, gpu: bool):
    return TrainSpec(
        method="sft",
        model_path=model_path,
        train_path=train_path,
        dtype="bfloat16",
        attn_implementation="sdpa",  # what transformers picks by default; no flash-attn there
        seed=0,
        lora=STUDY_LORA,
        dpo=DpoSpec(beta=1.0, loss_type="sigmoid", precompute_ref_log_probs=False),
        learning_rate=STUDY_LR,
        batch_size=batch,  # one micro-batch per optimizer step: the step is what is timed
        per_device_batch_size=batch,
        epochs=1.0,
        max_steps=steps,
        max_seq_length=seq,
        warmup_ratio=0.0,
        weight_decay=0.0,
        lr_scheduler="linear",
        packing=False,
        gradient_checkpointing=False,
        num_workers=1,
        use_gpu=gpu,
        cpus_per_worker=1.0,
        accelerator_type=None,
        worker_resources={},
        torch_threads=None,
        max_failures=0,
        logging_steps=1,
        report_every_steps=10,
        save_steps=10**6,  # no checkpoint inside the timed steps
        keep_checkpoints=1,
        checkpoint_storage=None,
    )


def train(args: argparse.Namespace, model_path: str, work: Path, device: Any) -> dict[str, Any]:
    import dataclasses

    import torch
    from transformers import AutoTokenizer, TrainerCallback
    from transformers.trainer_utils import SaveStrategy

    from raysys.io import write_parquet
    from raysys.models import supported_dtype
    from raysys.train.trainer import build_trainer, check_tokenized

    gpu = device.type == "cuda"
    steps = args.warmup + args.steps
    tok = AutoTokenizer.from_pretrained(model_path)
    rows = chat_rows(tok, steps * args.batch, args.seq)
    train_path = work / "train.parquet"
    write_parquet(train_path, rows)
    spec = train_spec(model_path, str(train_path), steps, args.batch, args.seq, gpu)
    spec = dataclasses.replace(spec, dtype=supported_dtype(spec.dtype, device.type))
    # the worker's probe, in the dtype the model runs in here (bf16 unless the hardware lacks it)
    peak = probe_peak_flops(device, getattr(torch, spec.dtype))

    trainer = build_trainer(spec, str(work / "out"))
    check_tokenized(trainer, "sft")
    # No checkpoint at the end (adapter + optimizer state, GBs at r=128): it falls outside
    # the timed steps anyway, and only costs device time here.
    trainer.args.save_strategy = SaveStrategy.NO

    def sync() -> None:
        if gpu:
            torch.cuda.synchronize(device)

    class Clock(TrainerCallback):
        """Per-step wall time (GPU work finished at both ends) and TRL's token count."""

        def __init__(self) -> None:
            self.begin: dict[int, float] = {}
            self.end: dict[int, float] = {}
            self.tokens: dict[int, float] = {}
            self.losses: dict[int, float] = {}

        def on_step_begin(self, args, state, control, **kw):
            sync()
            self.begin[state.global_step + 1] = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            sync()
            self.end[state.global_step] = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "num_tokens" in logs:
                self.tokens[state.global_step] = float(logs["num_tokens"])
            if logs and "loss" in logs:
                self.losses[state.global_step] = float(logs["loss"])

    clock = Clock()
    trainer.add_callback(clock)
    if gpu:  # the training's peak: model, adapter, optimizer state, activations
        torch.cuda.reset_peak_memory_stats(device)
    trainer.train()

    timed = list(range(args.warmup + 1, steps + 1))
    if not all(s in clock.tokens for s in [args.warmup, *timed] if s > 0):
        raise RuntimeError("TRL logged no num_tokens for every step; cannot count tokens/s")
    tokens = clock.tokens[steps] - clock.tokens.get(args.warmup, 0.0)
    wall = clock.end[steps] - clock.begin[args.warmup + 1]
    step_s = [clock.end[s] - clock.begin[s] for s in timed]
    tps = tokens / wall
    flops = model_flops_per_token(trainer.model, tokens / len(timed) / args.batch)
    mfu = tps * flops["flops_per_token"] / peak
    losses = [clock.losses[s] for s in timed if s in clock.losses]
    return {
        "steps_timed": len(timed),
        "warmup_steps": args.warmup,
        "batch": args.batch,
        "max_seq_length": args.seq,
        "tokens_timed": tokens,
        "tokens_per_step_mean": tokens / len(timed),
        # real tokens over batch x seq: how full the synthetic rows keep the sequences
        "sequence_fill": tokens / (len(timed) * args.batch * args.seq),
        "wall_seconds": wall,
        "seconds_per_step_median": statistics.median(step_s),
        "seconds_per_step_min": min(step_s),
        "seconds_per_step_max": max(step_s),
        "tokens_per_second": tps,
        "flops_per_token": flops["flops_per_token"],
        "linear_params_frozen": flops["linear_params_frozen"],
        "linear_params_trainable": flops["linear_params_trainable"],
        "peak_flops_measured": peak,
        "mfu": mfu,
        "peak_memory_bytes": peak_memory_bytes(device),
        "loss_first_timed": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
        "attn_implementation": getattr(trainer.model.config, "_attn_implementation", None),
        "dtype": spec.dtype,
        "lora": {
            "r": spec.lora.r,
            "alpha": spec.lora.alpha,
            "dropout": spec.lora.dropout,
            "target_modules": spec.lora.target_modules,
        },
    }


def generate(args: argparse.Namespace, model_path: str, device: Any) -> dict[str, Any]:
    """The hf engine called directly (no Ray Data) on the base model, greedy."""
    import dataclasses
    import random

    import pandas as pd
    import torch

    from raysys.engines.base import Sampling
    from raysys.engines.hf import HFGenerator

    gpu = device.type == "cuda"
    greedy = Sampling(max_new_tokens=args.new_tokens)
    engine = HFGenerator(
        model_path,
        None,
        greedy,
        batch_size=args.gen_batch,
        dtype="bfloat16",
        torch_threads=None if gpu else (os.cpu_count() or 1),
        device=str(device) if gpu else None,
    )
    rng = random.Random(1)
    prompts = [fill_text(engine.tok, args.prompt_tokens, rng) for _ in range(args.gen_batch)]
    rows = pd.DataFrame(
        {
            "id": [f"p{i}" for i in range(len(prompts))],
            "messages": [[{"role": "user", "content": p}] for p in prompts],
        }
    )

    def timed(sampling: Sampling) -> tuple[float, pd.DataFrame]:
        engine.sampling = sampling
        if gpu:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        out = engine(rows.copy())
        if gpu:
            torch.cuda.synchronize(device)
        return time.perf_counter() - start, out

    timed(dataclasses.replace(greedy, max_new_tokens=2))  # warm-up: kernels, allocator
    if gpu:
        torch.cuda.reset_peak_memory_stats(device)
    t_prefill, _ = timed(dataclasses.replace(greedy, max_new_tokens=1))
    t_full, out = timed(greedy)
    generated = int(out["num_generated_tokens"].sum())
    steps = int(out["num_generated_tokens"].max())
    decode_s = max(t_full - t_prefill, 1e-9)
    return {
        "batch": len(rows),
        "prompt_tokens_mean": float(out["num_input_tokens"].mean())
        if "num_input_tokens" in out
        else None,
        "max_new_tokens": args.new_tokens,
        "generated_tokens": generated,
        "rows_at_max_new_tokens": int((out["num_generated_tokens"] == args.new_tokens).sum()),
        "seconds": t_full,
        "tokens_per_second": generated / t_full,
        "prefill_seconds": t_prefill,  # the prompts plus one new token
        "decode_seconds": decode_s,
        "decode_tokens_per_second": (generated - len(rows)) / decode_s if steps > 1 else None,
        "decode_ms_per_step": 1000 * decode_s / (steps - 1) if steps > 1 else None,
        "peak_memory_bytes": peak_memory_bytes(device),
    }


def device_name(device: Any) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.machine()} {os.cpu_count()} cores (CPU)"


def markdown_row(res: dict[str, Any]) -> str:
    t, g = res["train"], res["generate"]
    mem = "GPU max allocated" if res["device_type"] == "cuda" else "CPU peak RSS"
    label = " (smoke, CPU)" if res["smoke"] else ""
    return (
        f"| {res['date']} | `{res['command']}` | {res['device']} | "
        f"{t['tokens_per_second']:,.0f} tok/s, {t['seconds_per_step_median']:.3f} s/step, "
        f"MFU {100 * t['mfu']:.1f} % of {t['peak_flops_measured'] / 1e12:.1f} TFLOP/s "
        f"measured, {t['peak_memory_bytes'] / 2**30:.2f} GiB ({mem}){label} | "
        f"gen batch {g['batch']} x {g['max_new_tokens']}: {g['tokens_per_second']:,.0f} tok/s "
        f"(prefill {g['prefill_seconds']:.2f} s, decode "
        + (f"{g['decode_ms_per_step']:.1f} ms/step" if g["decode_ms_per_step"] else "n/a")
        + ") |"
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="tiny Qwen2 shape on CPU: 1 + 2 steps, seq 64, batch 2, generation 4 x 8",
    )
    ap.add_argument(
        "--out",
        default=None,
        help="JSON path (default bench/results/gpu_lora.json; with --smoke gpu_lora-smoke.json)",
    )
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps (default 5; smoke 1)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default 20; smoke 2)")
    ap.add_argument("--batch", type=int, default=None, help="per-device batch (default 8)")
    ap.add_argument("--seq", type=int, default=None, help="sequence length (default 1024)")
    ap.add_argument("--gen-batch", type=int, default=None, help="prompts (default 64)")
    ap.add_argument("--new-tokens", type=int, default=None, help="per prompt (default 128)")
    ap.add_argument("--prompt-tokens", type=int, default=None, help="per prompt (default 256)")
    ap.add_argument(
        "--allow-cpu",
        action="store_true",
        help="run the full shape without a GPU (hours); default: refuse",
    )
    args = ap.parse_args(argv)
    defaults = (
        dict(warmup=1, steps=2, batch=2, seq=64, gen_batch=4, new_tokens=8, prompt_tokens=16)
        if args.smoke
        else dict(
            warmup=5,
            steps=20,
            batch=STUDY_PER_DEVICE_BATCH,
            seq=STUDY_SEQ,
            gen_batch=64,
            new_tokens=128,
            prompt_tokens=256,
        )
    )
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)

    import torch

    gpu = torch.cuda.is_available() and not args.smoke
    if not gpu and not args.smoke and not args.allow_cpu:
        print(
            "bench/gpu_lora.py: no GPU here; run --smoke for the CPU check of the same code "
            "path, or --allow-cpu for the full shape on the CPU (hours)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    device = torch.device("cuda", torch.cuda.current_device()) if gpu else torch.device("cpu")
    if not gpu:
        torch.set_num_threads(os.cpu_count() or 1)
    shape = TINY if args.smoke else QWEN25_1_5B
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-gpu-lora-") as tmp:
        work = Path(tmp)
        model_dir = work / "model"
        model = build_model(model_dir, shape, str(device))
        if gpu:
            torch.cuda.empty_cache()
        t_train = time.perf_counter()
        train_res = train(args, str(model_dir), work, device)
        gc.collect()  # the trainer's model and optimizer state, before generation's peak
        if gpu:
            torch.cuda.empty_cache()
        t_gen = time.perf_counter()
        gen_res = generate(args, str(model_dir), device)
        t_end = time.perf_counter()
    cmd = "python bench/gpu_lora.py" + (" --smoke" if args.smoke else "")
    res = {
        "bench": "gpu_lora",
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"),
        "command": cmd,
        "smoke": args.smoke,
        "device": device_name(device),
        "device_type": device.type,
        "peak_memory_kind": "torch.cuda.max_memory_allocated"
        if gpu
        else "process peak RSS (ru_maxrss; CPU)",
        "mfu_peak_kind": f"measured matmul on {device.type}, dtype run (perf.probe_peak_flops)",
        "model": {
            "shape": "tiny Qwen2" if args.smoke else "Qwen2.5-1.5B",
            **model,
            "weights": "random, bf16",
        },
        "anchor": ANCHOR,
        "goal_mfu": GOAL_MFU,
        "train": train_res,
        "generate": gen_res,
        "seconds": {
            "build_model": t_train - start,
            "train_total": t_gen - t_train,
            "generate_total": t_end - t_gen,
            "all": t_end - start,
        },
        # and the packages the GPU machine brings itself
        "versions": versions(("pyarrow", "fsspec", "tokenizers", "huggingface-hub", "pandas")),
        "ray_imported": "ray" in sys.modules,  # the trainer path runs without Ray
    }
    name = "gpu_lora-smoke.json" if args.smoke else "gpu_lora.json"
    out = Path(args.out or ROOT / "bench" / "results" / name)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))
    print(markdown_row(res))
    return res


if __name__ == "__main__":
    main()
