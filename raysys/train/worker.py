"""The Ray Train worker: TRL `SFTTrainer` or `DPOTrainer` with a PEFT LoRA.

Runs once per worker inside a `TorchTrainer` (Train V2). The HF Trainer handles
DDP (gloo on CPU, NCCL on GPU) through the process group Ray Train set up, shards
the rows with its distributed sampler, and writes standard checkpoints (adapter,
LoRA optimizer state, scheduler, RNG, trainer state: never the frozen base).
`_RayReport` hands each checkpoint to Ray Train and reports metrics on the way,
so a restarted run resumes from the latest registered checkpoint.

Only plain dicts cross the driver/worker boundary (`worker_config`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from raysys.storage import localize
from raysys.train.guards import check_finite
from raysys.train.perf import model_flops_per_token, peak_memory_bytes, probe_peak_flops, versions

log = logging.getLogger(__name__)

HF_CKPT = "checkpoint"  # the HF checkpoint folder inside each Ray Train checkpoint


def worker_config(
    train_path: str,
    model_path: str,
    train_cfg: Any,
    model_dtype: str,
    seed: int,
    faults: dict[str, Any] | None = None,
    attn_implementation: str | None = None,
) -> dict[str, Any]:
    """The plain dict each worker gets (picklable; no pydantic objects cross to workers)."""
    return {
        "train_path": train_path,
        "model_path": model_path,
        "dtype": model_dtype,
        "attn_implementation": attn_implementation,
        "seed": seed,
        "train": train_cfg.model_dump(),
        "grad_accum": train_cfg.grad_accum_steps,
        "torch_threads": train_cfg.torch_threads,  # None: the node's cores / its workers
        "faults": faults or {},
    }


def train_worker(config: dict[str, Any]) -> None:
    """Ray Train worker: build the TRL trainer, resume if Ray Train has a checkpoint, train."""
    import ray.train
    import ray.train.torch
    import torch

    ctx = ray.train.get_context()
    config = {**config, "dtype": supported_dtype(config["dtype"], config["train"]["use_gpu"])}
    # Decided on the worker's node, not the driver's: clusters mix machine sizes.
    threads = config["torch_threads"] or max(1, _cores() // ctx.get_local_world_size())
    torch.set_num_threads(threads)
    device = ray.train.torch.get_device()
    dtype = _torch_dtype(config["dtype"])
    peak = probe_peak_flops(
        device, dtype if dtype in (torch.bfloat16, torch.float16) else torch.float32
    )
    trainer = build_trainer(config)
    check_tokenized(trainer, config["train"]["method"])

    resume = _restore(trainer.args.output_dir)
    trainer.add_callback(_RayReport(config, trainer, peak, device))
    trainer.train(resume_from_checkpoint=resume)


def build_trainer(config: dict[str, Any]) -> Any:
    """The TRL trainer of `config` (SFT or DPO), LoRA attached, not yet trained."""
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tc = config["train"]
    tok = AutoTokenizer.from_pretrained(config["model_path"])
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    dtype = _torch_dtype(config["dtype"])
    attn = {"attn_implementation": a} if (a := config.get("attn_implementation")) else {}
    if tc["init_adapter"]:
        # Merge in fp32, then cast: merging into bf16 weights would round the update.
        from peft import PeftModel

        model = AutoModelForCausalLM.from_pretrained(
            config["model_path"], dtype=torch.float32, **attn
        )
        init = localize(tc["init_adapter"])  # a URI when the run directory is in a store
        model = PeftModel.from_pretrained(model, init).merge_and_unload()
        if dtype not in ("auto", torch.float32):
            model = model.to(dtype)
    else:
        # The base is frozen under LoRA, so it can live in bf16; PEFT keeps the adapter
        # weights in fp32 (autocast_adapter_dtype), which is what the optimizer updates.
        model = AutoModelForCausalLM.from_pretrained(config["model_path"], dtype=dtype, **attn)
    lora = tc["lora"]
    peft_config = LoraConfig(
        r=lora["r"],
        lora_alpha=lora["alpha"],
        lora_dropout=lora["dropout"],
        target_modules=lora["target_modules"],
        task_type="CAUSAL_LM",
    )
    common = dict(
        output_dir=tempfile.mkdtemp(prefix=f"raysys-{tc['method']}-"),
        learning_rate=tc["learning_rate"],
        per_device_train_batch_size=tc["per_device_batch_size"],
        gradient_accumulation_steps=config["grad_accum"],
        num_train_epochs=tc["epochs"],
        max_steps=tc["max_steps"] or -1,
        lr_scheduler_type=tc["lr_scheduler"],
        warmup_steps=tc["warmup_ratio"],  # a float < 1 is a ratio of total steps
        weight_decay=tc["weight_decay"],
        logging_steps=tc["logging_steps"],
        logging_nan_inf_filter=False,  # the default hides a NaN loss behind the running mean
        max_length=tc["max_seq_length"],
        seed=config["seed"],
        data_seed=config["seed"],
        # Mixed precision autocast over fp32 adapter weights: bf16 is ~3x faster than
        # fp32 on CPUs with AMX and keeps LoRA updates stable.
        bf16=config["dtype"] == "bfloat16",
        fp16=config["dtype"] == "float16",
        use_cpu=not tc["use_gpu"],
        gradient_checkpointing=tc["gradient_checkpointing"],
        save_strategy="steps",
        save_steps=tc["save_steps"],
        save_total_limit=1,  # local copies; Ray Train storage keeps `keep_checkpoints`
        save_only_model=False,  # optimizer/scheduler/RNG of the adapter: exact resume
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,
    )
    if tc["method"] == "sft":
        from trl import SFTConfig, SFTTrainer

        args = SFTConfig(**common, packing=tc["packing"])
        return SFTTrainer(
            model=model,
            args=args,
            train_dataset=load_rows(localize(config["train_path"]), "sft"),
            processing_class=tok,
            peft_config=peft_config,
        )
    from trl import DPOConfig, DPOTrainer

    dpo = tc["dpo"]
    args = DPOConfig(
        **common,
        beta=dpo["beta"],
        loss_type=[dpo["loss_type"]],
        precompute_ref_log_probs=dpo["precompute_ref_log_probs"],
    )
    # ref_model=None with a peft_config: TRL's reference is this model with the new
    # adapter disabled, i.e. the base with the SFT adapter merged in (the SFT model).
    return DPOTrainer(
        model=model,
        ref_model=None,
        args=args,
        train_dataset=load_rows(localize(config["train_path"]), "dpo"),
        processing_class=tok,
        peft_config=peft_config,
    )


def load_rows(path: str, method: str) -> Any:
    """Parquet rows -> TRL conversational rows (prompt/completion or prompt/chosen/rejected)."""
    import datasets

    from raysys.train.guards import check_columns, completions

    ds = datasets.Dataset.from_parquet(path)
    check_columns(ds.column_names, len(ds), method, path)
    if method == "dpo":
        keep = ["prompt", "chosen", "rejected"]
        return ds.remove_columns([c for c in ds.column_names if c not in keep])

    def split(row: dict[str, Any]) -> dict[str, Any]:
        prompt, completion = completions(row, "sft")[0]
        return {"prompt": prompt, "completion": completion}

    return ds.map(split, remove_columns=ds.column_names)


def check_tokenized(trainer: Any, method: str) -> None:
    """The truth after TRL's own tokenization: every supervised sequence holds EOS."""
    from raysys.train.guards import DataGuardError

    eos = trainer.processing_class.eos_token_id
    ds = trainer.train_dataset
    if method == "sft" and "labels" in ds.column_names:
        seqs = ds["labels"]
    elif method == "sft":
        seqs = ds["input_ids"]
    else:
        seqs = list(ds["chosen_ids"]) + list(ds["rejected_ids"])
    missing = sum(1 for s in seqs if eos not in s)
    if missing and not trainer.args.__dict__.get("packing"):
        raise DataGuardError(
            f"{missing} of {len(seqs)} tokenized training sequences have no EOS token in "
            "their supervised part; fix the chat template or raise train.max_seq_length"
        )


class _RayReport(TrainerCallback):
    """HF TrainerCallback: NaN guard, per-step history, reports and checkpoints to Ray Train.

    Every rank calls `ray.train.report` at the same steps (Train V2 expects it).
    A report costs about one controller poll (~2 s, BENCHMARKS.md), so metrics go
    every `report_every_steps` and with each checkpoint, carrying the per-step
    history since the last report.
    """

    def __init__(self, config: dict[str, Any], trainer: Any, peak: float, device: Any) -> None:
        import ray.train

        self.ctx = ray.train.get_context()
        self.every = config["train"]["report_every_steps"]
        self.method = config["train"]["method"]
        self.faults = config["faults"]
        self.trainer = trainer
        self.peak = peak
        self.device = device
        self.batch = config["train"]["batch_size"]
        self.buffer: list[dict[str, Any]] = []
        self.losses: list[float] = []  # this attempt's, for the mean training loss
        self.step_seconds: list[float] = []
        self.t_step = 0.0
        self.tokens_seen: float | None = None  # TRL's count: this attempt, all workers

    def on_train_begin(self, args, state, control, **kw):
        self.start_step = state.global_step
        self.t_begin = time.perf_counter()

    def on_step_begin(self, args, state, control, **kw):
        self.t_step = time.perf_counter()
        if self.faults.get("nan_at_step") == state.global_step + 1:
            _poison(self.trainer.model)

    def on_step_end(self, args, state, control, **kw):
        self.step_seconds.append(time.perf_counter() - self.t_step)
        if state.global_step >= state.max_steps:
            control.should_save = True  # the last step always leaves a checkpoint
        hold = self.faults.get("hold_at_step")
        if hold == state.global_step and self.ctx.get_world_rank() == 0:
            _hold(Path(self.faults["marker_dir"]), hold)
        crash = self.faults.get("crash_at_step")
        if crash == state.global_step and self.ctx.get_world_rank() == 0:
            marker = Path(self.faults["marker_dir"]) / f"crashed-at-{crash}"
            if not marker.exists():
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.touch()
                log.warning("fault injection: worker exits at step %d", crash)
                os._exit(1)

    def on_log(self, args, state, control, logs=None, **kw):
        if not logs or "loss" not in logs:
            return
        check_finite(logs["loss"], state.global_step)
        self.losses.append(float(logs["loss"]))
        entry = {"step": state.global_step, **_scalars(logs)}
        if self.step_seconds:
            entry["step_seconds"] = self.step_seconds[-1]
        if "num_tokens" in logs:
            self.tokens_seen = float(logs["num_tokens"])
        self.buffer.append(entry)
        if not control.should_save and state.global_step % self.every == 0:
            self._report(state, None)

    def on_save(self, args, state, control, **kw):
        self._report(state, Path(args.output_dir) / f"checkpoint-{state.global_step}")

    def _report(self, state: Any, hf_ckpt: Path | None) -> None:
        import ray.train

        last = self.buffer[-1] if self.buffer else {}
        metrics: dict[str, Any] = {
            **{k: v for k, v in last.items() if k != "step"},
            "step": state.global_step,
            "max_steps": state.max_steps,
            "history": self.buffer,
        }
        if state.global_step >= state.max_steps:
            metrics.update(self.summary(state))
        self.buffer = []
        if self.ctx.get_world_rank() != 0:  # rank 0 speaks for the group; the rest sync
            metrics = {
                "step": state.global_step,
                "peak_memory_bytes": peak_memory_bytes(self.device),
            }
        if hf_ckpt is None or not hf_ckpt.is_dir():
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copytree(hf_ckpt, Path(tmp) / HF_CKPT)
            ray.train.report(
                metrics,
                checkpoint=ray.train.Checkpoint.from_directory(tmp),
                checkpoint_dir_name=f"checkpoint_{state.global_step:06d}",
            )

    def summary(self, state: Any) -> dict[str, Any]:
        """Throughput of this attempt, and what it means against the measured peak."""
        steps = len(self.step_seconds)
        secs = sum(self.step_seconds)
        world = self.ctx.get_world_size()
        out: dict[str, Any] = {
            "steps_this_attempt": steps,
            "train_loss": statistics.fmean(self.losses) if self.losses else None,
            "seconds_per_step_mean": secs / steps if steps else None,
            "seconds_per_step_median": statistics.median(self.step_seconds) if steps else None,
            "train_seconds": secs,
            # the loop as the HF Trainer times it (incl. reports and checkpoints until now)
            "train_runtime": time.perf_counter() - self.t_begin,
            "world_size": world,
            "device": str(self.device.type),
            "peak_flops_per_worker": self.peak,
            "peak_memory_bytes": peak_memory_bytes(self.device),
            "versions": versions(),
        }
        if self.tokens_seen and steps:
            tokens = self.tokens_seen
            per_step = tokens / steps
            # DPO rows are two sequences (chosen, rejected)
            seqs = self.batch * (2 if self.method == "dpo" else 1)
            flops = model_flops_per_token(self.trainer.model, per_step / seqs)
            per_token = flops["flops_per_token"]
            if self.method == "dpo" and not self.trainer.args.precompute_ref_log_probs:
                per_token += 2.0 * (
                    flops["linear_params_frozen"] + flops["linear_params_trainable"]
                )
            tps = tokens / secs
            out.update(
                train_tokens=tokens,
                tokens_per_second=tps,
                flops_per_token=per_token,
                linear_params_frozen=flops["linear_params_frozen"],
                linear_params_trainable=flops["linear_params_trainable"],
                mfu=tps * per_token / (self.peak * world),
            )
        return out


def supported_dtype(dtype: str, use_gpu: bool) -> str:
    """bf16 where the hardware has it; GPUs without it (before Ampere) fall back to fp16."""
    import torch

    if dtype == "bfloat16" and use_gpu and torch.cuda.is_available():
        if not torch.cuda.is_bf16_supported():
            log.warning("this GPU has no bf16; training in float16 autocast instead")
            return "float16"
    return dtype


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _restore(output_dir: str) -> str | None:
    """Copy Ray Train's latest checkpoint (if any) next to the HF outputs; its path."""
    import ray.train

    ckpt = ray.train.get_checkpoint()
    if ckpt is None:
        return None
    with ckpt.as_directory() as d:
        src = Path(d) / HF_CKPT
        state = json.loads((src / "trainer_state.json").read_text())
        dst = Path(output_dir) / f"checkpoint-{state['global_step']}"
        shutil.copytree(src, dst, dirs_exist_ok=True)
    log.info("resuming from the checkpoint at step %d", state["global_step"])
    return str(dst)


def _hold(marker_dir: Path, step: int, timeout: float = 300.0) -> None:
    """Fault drill (RAYSYS_FAULTS=hold_at_step=N): rank 0 pauses after step N, before its
    checkpoint is saved, until `release` appears next to `held-at-N` (a drill breaks the
    storage meanwhile). Once per run: a resumed attempt does not hold again."""
    held = marker_dir / f"held-at-{step}"
    if held.exists():
        return
    marker_dir.mkdir(parents=True, exist_ok=True)
    held.touch()
    log.warning("fault injection: worker holds at step %d until %s exists", step, "release")
    deadline = time.monotonic() + timeout
    while not (marker_dir / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.1)


def _poison(model: Any) -> None:
    """Fault injection: a NaN in the first trainable weight (a real NaN loss follows)."""
    import torch

    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.fill_(float("nan"))
                return


def _torch_dtype(name: str) -> Any:
    import torch

    return "auto" if name == "auto" else getattr(torch, name)


def _scalars(d: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in d.items() if isinstance(v, (int, float))}
