"""The TRL trainer of a spec (`raysys.train.trainer`) beyond the configs `test_spec.py`
checks: rows as TRL reads them, the tokenizer and model as training loads them (an init
adapter merged in), dtypes, and EOS after TRL's own tokenization. Tiny model, no Ray."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import torch

from raysys.config import TrainConfig, load_config
from raysys.train.guards import DataGuardError
from raysys.train.spec import TrainSpec
from raysys.train.trainer import (
    build_trainer,
    check_tokenized,
    load_model,
    load_rows,
    load_tokenizer,
    torch_dtype,
)

MSGS = [
    {"role": "system", "content": "Classify."},
    {"role": "user", "content": "Shares rose."},
    {"role": "assistant", "content": "Answer: positive"},
]


def _spec(tiny_model: str, train_path: str = "unused", **kw) -> TrainSpec:
    section = load_config(
        TrainConfig,
        None,
        [
            "data.path=unused.parquet",
            "train.batch_size=2",
            "train.per_device_batch_size=2",
            "train.max_steps=1",
            "train.lora.r=2",
        ],
    ).train
    spec = TrainSpec.from_section(
        section, model_path=tiny_model, train_path=train_path, dtype="float32", seed=0
    )
    return dataclasses.replace(spec, **kw)


def test_sft_rows_become_prompt_and_completion(tmp_path):
    path = tmp_path / "sft.parquet"
    pd.DataFrame({"id": ["a", "b"], "messages": [MSGS, MSGS[1:]], "gold": ["x", "y"]}).to_parquet(
        path
    )
    ds = load_rows(str(path), "sft")
    assert ds.column_names == ["prompt", "completion"]
    assert ds[0]["prompt"] == MSGS[:2] and ds[0]["completion"] == MSGS[2:]
    assert ds[1]["prompt"] == MSGS[1:2]


def test_dpo_rows_keep_only_what_trl_reads(tmp_path):
    path = tmp_path / "dpo.parquet"
    pair = {
        "id": "a",
        "reason": "wrong",
        "prompt": MSGS[:2],
        "chosen": [MSGS[2]],
        "rejected": [{"role": "assistant", "content": "no"}],
    }
    pd.DataFrame([pair]).to_parquet(path)
    ds = load_rows(str(path), "dpo")
    assert sorted(ds.column_names) == ["chosen", "prompt", "rejected"]
    assert ds[0]["rejected"] == [{"role": "assistant", "content": "no"}]
    with pytest.raises(DataGuardError, match=r"sft rows need column\(s\) messages"):
        load_rows(str(path), "sft")


def test_dtypes():
    assert torch_dtype("auto") == "auto" and torch_dtype("bfloat16") is torch.bfloat16
    assert torch_dtype("float32") is torch.float32


def test_a_tokenizer_without_padding_pads_with_eos(tiny_model, tmp_path):
    assert load_tokenizer(tiny_model).pad_token == "<|pad|>"  # its own is kept
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    tok.pad_token = None
    tok.save_pretrained(tmp_path)
    assert load_tokenizer(str(tmp_path)).pad_token == "<|im_end|>"


def test_the_model_loads_in_the_spec_dtype(tiny_model):
    model = load_model(_spec(tiny_model, dtype="bfloat16"))
    assert next(model.parameters()).dtype is torch.bfloat16


def test_an_init_adapter_is_merged_into_the_base(tiny_model, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    cfg = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"], init_lora_weights=False)
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model), cfg).save_pretrained(tmp_path)
    model = load_model(_spec(tiny_model, init_adapter=str(tmp_path)))
    assert not hasattr(model, "peft_config")  # merged: a plain model a new LoRA goes on
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    ref = PeftModel.from_pretrained(base, str(tmp_path)).merge_and_unload()
    key = "model.layers.0.self_attn.q_proj.weight"
    torch.testing.assert_close(model.state_dict()[key], ref.state_dict()[key])
    plain = AutoModelForCausalLM.from_pretrained(tiny_model).state_dict()[key]
    assert not torch.allclose(model.state_dict()[key], plain)  # the adapter changed it


def test_tokenized_training_sequences_must_hold_eos(tiny_model, tmp_path):
    import datasets

    path = tmp_path / "sft.parquet"
    pd.DataFrame({"messages": [MSGS] * 2}).to_parquet(path)
    trainer = build_trainer(_spec(tiny_model, train_path=str(path)), str(tmp_path / "out"))
    check_tokenized(trainer, "sft")  # the chat template closes each answer with EOS
    eos = trainer.processing_class.eos_token_id
    trainer.train_dataset = datasets.Dataset.from_dict({"input_ids": [[5, 6, eos], [5, 6, 7]]})
    with pytest.raises(DataGuardError, match=r"1 of 2 tokenized training sequences have no EOS"):
        check_tokenized(trainer, "sft")
