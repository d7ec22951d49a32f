"""A `TrainSpec` -> TRL's `SFTTrainer` or `DPOTrainer` with a PEFT LoRA, not yet trained.

The spec becomes TRL's `SFTConfig`/`DPOConfig` in `training_args` and PEFT's
`LoraConfig` in `lora_config`, and nowhere else. No Ray here: the Ray Train worker
(`raysys.train.worker`) runs this, and so can a GPU machine that has torch,
transformers, peft and TRL but not Ray.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from typing import TYPE_CHECKING, Any, Literal

from raysys.storage import localize
from raysys.train.spec import TrainSpec

if TYPE_CHECKING:
    import datasets
    import torch
    from peft import LoraConfig
    from transformers import PreTrainedModel, PreTrainedTokenizerBase
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

log = logging.getLogger(__name__)


def build_trainer(spec: TrainSpec, output_dir: str | None = None) -> SFTTrainer | DPOTrainer:
    """The TRL trainer of `spec` (SFT or DPO), LoRA attached, not yet trained."""
    output_dir = output_dir or tempfile.mkdtemp(prefix=f"raysys-{spec.method}-")
    common = dict(
        model=load_model(spec),
        args=training_args(spec, output_dir),
        train_dataset=load_rows(localize(spec.train_path), spec.method),
        processing_class=load_tokenizer(spec.model_path),
        peft_config=lora_config(spec),
    )
    if spec.method == "sft":
        from trl import SFTTrainer

        return SFTTrainer(**common)
    from trl import DPOTrainer

    # ref_model=None with a peft_config: TRL's reference is this model with the new
    # adapter disabled, i.e. the base with the SFT adapter merged in (the SFT model).
    return DPOTrainer(ref_model=None, **common)


def lora_config(spec: TrainSpec) -> LoraConfig:
    from peft import LoraConfig

    lora = spec.lora
    targets = lora.target_modules
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=targets if isinstance(targets, str) else list(targets),
        task_type="CAUSAL_LM",
    )


def training_args(spec: TrainSpec, output_dir: str) -> SFTConfig | DPOConfig:
    """TRL's arguments for `spec`: `SFTConfig` or `DPOConfig`."""
    common: dict[str, Any] = dict(
        output_dir=output_dir,
        learning_rate=spec.learning_rate,
        per_device_train_batch_size=spec.per_device_batch_size,
        gradient_accumulation_steps=spec.grad_accum_steps,
        num_train_epochs=spec.epochs,
        max_steps=spec.max_steps or -1,
        lr_scheduler_type=spec.lr_scheduler,
        **warmup_args(spec.warmup_ratio),
        weight_decay=spec.weight_decay,
        logging_steps=spec.logging_steps,
        logging_nan_inf_filter=False,  # the default hides a NaN loss behind the running mean
        max_length=spec.max_seq_length,
        seed=spec.seed,
        data_seed=spec.seed,
        # Mixed precision autocast over fp32 adapter weights: bf16 is ~3x faster than
        # fp32 on CPUs with AMX and keeps LoRA updates stable.
        bf16=spec.dtype == "bfloat16",
        fp16=spec.dtype == "float16",
        use_cpu=not spec.use_gpu,
        gradient_checkpointing=spec.gradient_checkpointing,
        save_strategy="steps",
        save_steps=spec.save_steps,
        save_total_limit=1,  # local copies; Ray Train storage keeps `keep_checkpoints`
        save_only_model=False,  # optimizer/scheduler/RNG of the adapter: exact resume
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,
    )
    if spec.method == "sft":
        from trl import SFTConfig

        return SFTConfig(**common, packing=spec.packing)
    from trl import DPOConfig

    return DPOConfig(
        **common,
        beta=spec.dpo.beta,
        loss_type=[spec.dpo.loss_type],
        precompute_ref_log_probs=spec.dpo.precompute_ref_log_probs,
    )


def warmup_args(ratio: float, args_cls: type | None = None) -> dict[str, float]:
    """The warmup as a share of the total optimizer steps, in the field that reads it so.

    transformers 5 has no `warmup_ratio` and reads a float `warmup_steps` in [0, 1) as a
    ratio (0.5 over 10 steps: 5). transformers 4 has `warmup_ratio` and takes
    `warmup_steps` as a step count, so a ratio passed there would be half a step."""
    if args_cls is None:
        from transformers import TrainingArguments

        args_cls = TrainingArguments
    if "warmup_ratio" in {f.name for f in dataclasses.fields(args_cls)}:
        return {"warmup_ratio": ratio}
    return {"warmup_steps": ratio}


def load_tokenizer(model_path: str) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(spec: TrainSpec) -> PreTrainedModel:
    """The base model (with `init_adapter` merged in, if any) in the spec's dtype."""
    import torch
    from transformers import AutoModelForCausalLM

    dtype = torch_dtype(spec.dtype)
    attn = {"attn_implementation": spec.attn_implementation} if spec.attn_implementation else {}
    if not spec.init_adapter:
        # The base is frozen under LoRA, so it can live in bf16; PEFT keeps the adapter
        # weights in fp32 (autocast_adapter_dtype), which is what the optimizer updates.
        return AutoModelForCausalLM.from_pretrained(spec.model_path, dtype=dtype, **attn)
    # Merge in fp32, then cast: merging into bf16 weights would round the update.
    from peft import PeftModel

    model = AutoModelForCausalLM.from_pretrained(spec.model_path, dtype=torch.float32, **attn)
    init = localize(spec.init_adapter)  # a URI when the run directory is in a store
    model = PeftModel.from_pretrained(model, init).merge_and_unload()
    if dtype not in ("auto", torch.float32):
        model = model.to(dtype)
    return model


def load_rows(path: str, method: Literal["sft", "dpo"]) -> datasets.Dataset:
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


def check_tokenized(trainer: SFTTrainer | DPOTrainer, method: Literal["sft", "dpo"]) -> None:
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


def torch_dtype(name: str) -> torch.dtype | Literal["auto"]:
    import torch

    return "auto" if name == "auto" else getattr(torch, name)
