"""Adapter concatenation (`raysys.train.adapters`): two random LoRA adapters made with PEFT
on the tiny model (different ranks, scalings and target modules) concatenate into one
LoRA whose outputs on the raw base equal the first merged in and the second on top; what
cannot be concatenated is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM

from raysys.train.adapters import concat_adapters, lora_scale, read_adapter


def _base(tiny_model: str):
    return AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def adapters(tiny_model, tmp_path_factory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("adapters")
    torch.manual_seed(0)
    # init_lora_weights=False: B is random too, so each adapter changes the outputs
    sft = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    get_peft_model(_base(tiny_model), sft).save_pretrained(out / "sft")
    dpo = LoraConfig(
        r=2,
        lora_alpha=6,
        use_rslora=True,
        target_modules=["q_proj", "o_proj"],
        init_lora_weights=False,
    )
    get_peft_model(_base(tiny_model), dpo).save_pretrained(out / "dpo")
    return out / "sft", out / "dpo"


def _logits(model) -> torch.Tensor:
    ids = torch.tensor([[5, 17, 42, 99, 7, 300, 12]])
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_the_concatenation_equals_the_two_adapters_applied_together(tiny_model, adapters, tmp_path):
    sft, dpo = adapters
    info = concat_adapters([sft, dpo], tmp_path / "both")
    assert info == {"r": 6, "parts": [str(sft), str(dpo)], "modules": 3 * 2}  # 3 kinds x 2 layers

    # DPO after SFT: the SFT adapter merged into the base, the DPO adapter on top
    merged = PeftModel.from_pretrained(_base(tiny_model), str(sft)).merge_and_unload()
    expected = _logits(PeftModel.from_pretrained(merged, str(dpo)).eval())
    combined = PeftModel.from_pretrained(_base(tiny_model), str(tmp_path / "both")).eval()
    got = _logits(combined)
    assert not torch.allclose(got, _logits(_base(tiny_model)), atol=1e-3)  # it does something
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_the_combined_config_has_scale_one_and_every_target(adapters, tmp_path):
    sft, dpo = adapters
    concat_adapters([sft, dpo], tmp_path / "both")
    cfg, weights = read_adapter(tmp_path / "both")
    assert (cfg["r"], cfg["lora_alpha"], cfg["use_rslora"], cfg["lora_dropout"]) == (
        6,
        6,
        False,
        0.0,
    )
    assert cfg["target_modules"] == ["o_proj", "q_proj", "v_proj"]
    _, w1 = read_adapter(sft)
    _, w2 = read_adapter(dpo)
    key = next(k for k in weights if k.endswith("layers.0.self_attn.v_proj.lora_A.weight"))
    assert weights[key].shape[0] == 6
    assert torch.equal(weights[key][:4], w1[key].float())
    assert torch.count_nonzero(weights[key][4:]) == 0  # the DPO adapter leaves v_proj alone
    b = key.replace("lora_A", "lora_B")
    torch.testing.assert_close(weights[b][:, :4], w1[b].float() * 2.0)  # alpha 8 / r 4
    o = next(k for k in weights if k.endswith("layers.0.self_attn.o_proj.lora_B.weight"))
    torch.testing.assert_close(weights[o][:, 4:], w2[o].float() * (6 / 2**0.5))  # rsLoRA


def test_lora_scale():
    assert lora_scale({"r": 4, "lora_alpha": 8}) == 2.0
    assert lora_scale({"r": 4, "lora_alpha": 8, "use_rslora": True}) == 4.0


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"use_dora": True}, "only plain LoRA adapters"),
        ({"peft_type": "IA3"}, "only plain LoRA adapters"),
        ({"rank_pattern": {"q_proj": 8}}, "rank/alpha patterns and modules_to_save"),
        ({"modules_to_save": ["lm_head"]}, "rank/alpha patterns and modules_to_save"),
    ],
)
def test_what_is_not_a_plain_lora_is_refused(adapters, tmp_path, change, match):
    sft, dpo = adapters
    odd = tmp_path / "odd"
    shutil.copytree(sft, odd)
    cfg = json.loads((odd / "adapter_config.json").read_text())
    (odd / "adapter_config.json").write_text(json.dumps({**cfg, **change}))
    with pytest.raises(ValueError, match=match):
        concat_adapters([odd, dpo], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_folder_without_an_adapter_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"is not a PEFT adapter dir"):
        read_adapter(tmp_path)
