"""What training costs (`raysys.train.perf`): the LoRA FLOPs-per-token formula on real
torch modules, the measured peak, memory and versions."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
import torch

from raysys.train.perf import (
    VERSIONED,
    model_flops_per_token,
    peak_memory_bytes,
    probe_peak_flops,
    versions,
)


class _TwoLayers(torch.nn.Module):
    def __init__(self, config: object) -> None:
        super().__init__()
        self.config = config
        self.frozen = torch.nn.Linear(8, 4, bias=False)  # 32 weights
        self.trainable = torch.nn.Linear(4, 2)  # 8 weights (+ a bias, not counted)
        self.embed = torch.nn.Embedding(100, 8)  # a lookup, not a matmul
        self.frozen.weight.requires_grad_(False)


def test_lora_costs_four_per_frozen_and_six_per_trainable_weight_plus_attention():
    model = _TwoLayers(SimpleNamespace(num_hidden_layers=3, hidden_size=8))
    f = model_flops_per_token(model, mean_seq_len=10.0)
    assert f["linear_params_frozen"] == 32.0 and f["linear_params_trainable"] == 8.0
    assert f["flops_per_token"] == 4 * 32 + 6 * 8 + 12 * 3 * 8 * 10.0


def test_full_training_is_six_per_weight_and_no_config_means_no_attention_term():
    model = _TwoLayers(None)
    model.frozen.weight.requires_grad_(True)
    assert model_flops_per_token(model, 50.0)["flops_per_token"] == 6 * (32 + 8)


def test_multimodal_configs_read_their_text_config():
    text = SimpleNamespace(num_hidden_layers=2, hidden_size=4)
    model = _TwoLayers(SimpleNamespace(text_config=text))
    assert model_flops_per_token(model, 1.0)["flops_per_token"] == 4 * 32 + 6 * 8 + 12 * 2 * 4


def test_peft_lora_on_the_tiny_model(tiny_model):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    linear = sum(m.weight.numel() for m in base.modules() if isinstance(m, torch.nn.Linear))
    lora = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    f = model_flops_per_token(lora, 32.0)
    # per layer: q_proj 64 -> 64 and v_proj 64 -> 32 (2 KV heads of 16), each with A and B
    per_layer = 4 * 64 + 64 * 4 + 4 * 64 + 32 * 4
    assert f["linear_params_trainable"] == 2 * per_layer
    assert f["linear_params_frozen"] == linear  # the base's linears, all frozen
    assert f["flops_per_token"] == 4 * linear + 6 * 2 * per_layer + 12 * 2 * 64 * 32.0


def test_the_peak_is_measured_and_positive():
    peak = probe_peak_flops(torch.device("cpu"), torch.float32, seconds=0.05)
    assert 1e6 < peak < 1e15  # FLOP/s of a real CPU, whatever it is


def test_cpu_memory_is_the_process_peak_in_bytes():
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    got = peak_memory_bytes(torch.device("cpu"))
    assert got >= rss * (1 if sys.platform == "darwin" else 1024)
    assert got > 10 * 2**20  # a Python process with torch loaded


def test_versions_name_every_package_that_shapes_a_run():
    v = versions()
    assert set(v) == {"python", *VERSIONED}
    assert v["python"] == sys.version.split()[0]
    assert v["torch"] == torch.__version__ and v["trl"] != "absent"


@pytest.mark.parametrize("name", ["raysys-no-such-package"])
def test_a_missing_package_is_absent(monkeypatch, name):
    from raysys.train import perf

    monkeypatch.setattr(perf, "VERSIONED", (name,))
    assert perf.versions()[name] == "absent"
