"""`raysys.config.training`: the study's LoRA defaults per method, the alpha rule, the
batch arithmetic, packing only where attention keeps rows apart, the data section."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from raysys.config.sections import ModelSection
from raysys.config.training import (
    STUDY_LORA_RANK,
    DataSection,
    DpoSection,
    LoraSection,
    TrainSection,
    check_packing,
)


def _error(cls, **fields) -> str:
    with pytest.raises(ValidationError) as e:
        cls(**fields)
    return str(e.value)


@pytest.mark.parametrize("method, r, alpha", [("sft", 128, 256), ("dpo", 16, 32)])
def test_lora_defaults_follow_the_method(method, r, alpha):
    t = TrainSection(method=method)
    assert (t.lora.r, t.lora.alpha) == (r, alpha) == (STUDY_LORA_RANK[method], 2 * r)
    assert "r" not in t.lora.model_fields_set  # resolved, not set: a reload re-resolves


def test_an_explicit_rank_gets_twice_its_alpha_and_an_explicit_alpha_stays():
    assert TrainSection(lora={"r": 4}).lora.alpha == 8
    assert TrainSection(lora={"r": 4, "alpha": 5}).lora.alpha == 5
    assert TrainSection(method="dpo", lora={"alpha": 64}).lora.r == 16


def test_the_shared_default_lora_section_is_never_changed():
    TrainSection(method="dpo")
    assert LoraSection().r is None and TrainSection.model_fields["lora"].default.r is None


def test_alpha_for_keeps_the_ratio_and_needs_a_rank():
    assert LoraSection().alpha_for(8) == 16
    assert LoraSection(r=8, alpha=8).alpha_for(32) == 32
    assert LoraSection(r=64, alpha=1).alpha_for(4) == 1  # never 0
    with pytest.raises(ValueError, match="rank is not resolved yet"):
        LoraSection(alpha=16).alpha_for(8)


def test_batch_arithmetic():
    t = TrainSection(batch_size=64, per_device_batch_size=8, num_workers=2)
    assert t.grad_accum_steps == 4
    msg = _error(TrainSection, batch_size=20, per_device_batch_size=8, num_workers=1)
    assert "batch_size 20 is not a multiple of per_device_batch_size × num_workers = 8 × 1" in msg


@pytest.mark.parametrize(
    "fields, expected",
    [
        ({"learning_rate": 0}, "greater than 0"),
        ({"warmup_ratio": 1}, "less than 1"),
        ({"epochs": 10_001}, "less than or equal to 10000"),
        ({"max_seq_length": 8}, "greater than or equal to 16"),
        ({"lr_scheduler": "step"}, "'linear', 'cosine', 'constant' or 'constant_with_warmup'"),
        ({"checkpoint_storage": "s3://K:S@b/ckpt"}, "credentials in the URI"),
        ({"method": "dpo", "packing": True}, "train.packing applies to sft only"),
        ({"lora": {"dropout": 1}}, "less than 1"),
    ],
)
def test_train_section_refuses(fields, expected):
    assert expected in _error(TrainSection, **fields)


def test_packing_needs_flash_attention():
    packed = TrainSection(packing=True)
    with pytest.raises(ValueError, match="train.packing needs model.attn_implementation"):
        check_packing(ModelSection(attn_implementation="sdpa"), packed)
    check_packing(ModelSection(attn_implementation="flash_attention_2"), packed)
    check_packing(ModelSection(), TrainSection())  # no packing: any attention


def test_dpo_and_data_sections():
    assert (DpoSection().beta, DpoSection().loss_type) == (1.0, "sigmoid")
    assert "greater than 0" in _error(DpoSection, beta=0)
    d = DataSection()
    assert (d.path, d.cocktail, d.fraction, d.train_size) == (None, None, 1.0, 400)
    assert "less than or equal to 1" in _error(DataSection, fraction=1.5)
    assert "greater than 0" in _error(DataSection, fraction=0)


def test_custom_resources_steer_train_workers_and_engines():
    from raysys.config.sections import GenerateSection

    assert TrainSection(worker_resources={"trainer": 0.5}).worker_resources == {"trainer": 0.5}
    assert GenerateSection(resources={"inference": 1}).resources == {"inference": 1}
    assert "not a custom resource" in _error(TrainSection, worker_resources={"CPU": 1})
    assert "not a custom resource" in _error(GenerateSection, resources={"GPU": 1})
    assert "must be > 0" in _error(TrainSection, worker_resources={"trainer": 0})
