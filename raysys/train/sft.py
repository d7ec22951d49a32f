"""LoRA SFT with TRL inside a Ray Train V2 `TorchTrainer`.

The driver side (`run_sft`) builds the trainer; the worker side
(`sft_worker`) runs TRL's `SFTTrainer` with a PEFT `LoraConfig`. Each worker
reads the train parquet itself and lets the HF Trainer's distributed sampler
shard it, so rows are never split twice. Rows are stored as chat `messages`
and turned into TRL's conversational prompt/completion form, which makes the
loss cover the assistant answer only.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from raysys.data.io import copy_tree_atomic, write_json

log = logging.getLogger(__name__)

ADAPTER_CKPT_DIR = "adapter"


def run_sft(
    train_path: str,
    model_path: str,
    train_cfg: Any,
    model_dtype: str,
    out_dir: Path,
    seed: int,
) -> dict[str, Any]:
    """Train a LoRA adapter; copy it to `out_dir/adapter`; return the final metrics."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    trainer = TorchTrainer(
        sft_worker,
        train_loop_config=worker_config(train_path, model_path, train_cfg, model_dtype, seed),
        scaling_config=ScalingConfig(
            num_workers=train_cfg.num_workers,
            use_gpu=train_cfg.use_gpu,
            resources_per_worker=None if train_cfg.use_gpu else {"CPU": train_cfg.cpus_per_worker},
        ),
        run_config=RunConfig(
            name="sft",
            storage_path=str((out_dir / "ray_train").resolve()),
            failure_config=FailureConfig(max_failures=train_cfg.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            worker_runtime_env={"env_vars": {"RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}},
        ),
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError("training finished without a checkpoint; see the Ray Train logs above")
    with result.checkpoint.as_directory() as ckpt:
        copy_tree_atomic(Path(ckpt) / ADAPTER_CKPT_DIR, out_dir / "adapter")
        history = json.loads((Path(ckpt) / "log_history.json").read_text())
    metrics = {k: v for k, v in result.metrics.items() if not isinstance(v, (dict, list))}
    write_json(out_dir / "metrics.json", {"final": metrics, "log_history": history})
    return metrics


def worker_config(
    train_path: str, model_path: str, train_cfg: Any, model_dtype: str, seed: int
) -> dict[str, Any]:
    """The plain dict each worker gets (picklable; no pydantic objects cross to workers)."""
    return {
        "train_path": train_path,
        "model_path": model_path,
        "dtype": model_dtype,
        "seed": seed,
        "train": train_cfg.model_dump(),
        "grad_accum": train_cfg.grad_accum_steps,
        "torch_threads": train_cfg.torch_threads
        or max(1, (os.cpu_count() or 1) // train_cfg.num_workers),
    }


def sft_worker(config: dict[str, Any]) -> None:
    """Ray Train worker: TRL SFTTrainer + PEFT LoRA; reports metrics and the adapter."""
    import ray.train
    import torch
    from transformers import TrainerCallback

    torch.set_num_threads(config["torch_threads"])
    ctx = ray.train.get_context()
    trainer = _build_trainer(config)

    every = config["train"]["report_every_steps"]

    class _Report(TrainerCallback):
        # Every rank reports (Train V2 expects all workers to call report). Back-to-back
        # reports wait ~2 s each (one per controller health-check poll; BENCHMARKS.md), so
        # report every few steps; the per-step history travels with the final checkpoint.
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                _check_finite(logs["loss"], state.global_step)
                if state.global_step % every == 0:
                    ray.train.report({"step": state.global_step, **_scalars(logs)})

    trainer.add_callback(_Report())
    out = trainer.train()
    _check_finite(out.training_loss, trainer.state.global_step)
    final = {
        "step": trainer.state.global_step,
        "train_loss": out.training_loss,
        **_scalars(out.metrics),
    }
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = None
        if ctx.get_world_rank() == 0:
            trainer.model.save_pretrained(Path(tmp) / ADAPTER_CKPT_DIR)  # adapter weights only
            trainer.processing_class.save_pretrained(Path(tmp) / ADAPTER_CKPT_DIR)
            (Path(tmp) / "log_history.json").write_text(json.dumps(trainer.state.log_history))
            checkpoint = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report(final, checkpoint=checkpoint)


def _build_trainer(config: dict[str, Any]) -> Any:
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tc = config["train"]
    use_gpu = tc["use_gpu"]
    tok = AutoTokenizer.from_pretrained(config["model_path"])
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    dtype = config["dtype"]
    bf16 = dtype == "bfloat16"
    # The base is frozen under LoRA, so it can live in bf16; PEFT keeps the adapter
    # weights in fp32 (autocast_adapter_dtype), which is what the optimizer updates.
    model = AutoModelForCausalLM.from_pretrained(
        config["model_path"], dtype="auto" if dtype == "auto" else getattr(torch, dtype)
    )
    args = SFTConfig(
        output_dir=tempfile.mkdtemp(prefix="raysys-sft-"),
        learning_rate=tc["learning_rate"],
        per_device_train_batch_size=tc["per_device_batch_size"],
        gradient_accumulation_steps=config["grad_accum"],
        num_train_epochs=tc["epochs"],
        max_steps=tc["max_steps"] or -1,
        lr_scheduler_type=tc["lr_scheduler"],
        warmup_steps=tc["warmup_ratio"],  # a float < 1 is a ratio of total steps
        weight_decay=tc["weight_decay"],
        logging_steps=tc["logging_steps"],
        max_length=tc["max_seq_length"],
        seed=config["seed"],
        data_seed=config["seed"],
        # Mixed precision autocast over fp32 master weights: bf16 is ~3x faster
        # than fp32 on CPUs with AMX and keeps LoRA updates stable.
        bf16=bf16,
        use_cpu=not use_gpu,
        gradient_checkpointing=False,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,
    )
    lora = tc["lora"]
    peft_config = LoraConfig(
        r=lora["r"],
        lora_alpha=lora["alpha"],
        lora_dropout=lora["dropout"],
        target_modules=lora["target_modules"],
        task_type="CAUSAL_LM",
    )
    return SFTTrainer(
        model=model,
        args=args,
        train_dataset=load_sft_dataset(config["train_path"]),
        processing_class=tok,
        peft_config=peft_config,
    )


def load_sft_dataset(path: str) -> Any:
    """Chat `messages` rows -> TRL conversational prompt/completion rows."""
    import datasets

    ds = datasets.Dataset.from_parquet(path)
    if len(ds) == 0:
        raise ValueError(f"{path} holds no training rows; check the task sizes and data fraction")

    def split(row: dict[str, Any]) -> dict[str, Any]:
        msgs = row["messages"]
        if not msgs or msgs[-1]["role"] != "assistant":
            raise ValueError(
                f"row {row.get('id')}: the last message must be the assistant's answer"
            )
        return {"prompt": msgs[:-1], "completion": msgs[-1:]}

    return ds.map(split, remove_columns=ds.column_names)


def _check_finite(loss: float, step: int) -> None:
    if loss is None or not math.isfinite(loss):
        raise FloatingPointError(
            f"training loss is {loss} at step {step}; lower train.learning_rate or check the data"
        )


def _scalars(d: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in d.items() if isinstance(v, (int, float))}
