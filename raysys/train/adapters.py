"""Adapter files: the standard PEFT layout, and exact concatenation of LoRA adapters.

DPO after SFT trains a second LoRA on top of the base with the SFT adapter merged
in. Both are low-rank updates of the same weights, so their sum is itself a LoRA
of rank r1 + r2: A = [A1; A2], B = [s1·B1, s2·B2] with scaling 1. The result
loads on the *raw* base with `PeftModel.from_pretrained` or vLLM's LoRA loader,
so an SFT+DPO model is evaluated next to plain SFT adapters in one engine pass.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")


def lora_scale(cfg: dict[str, Any]) -> float:
    r = cfg["r"]
    return cfg["lora_alpha"] / (math.sqrt(r) if cfg.get("use_rslora") else r)


def read_adapter(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    from safetensors.torch import load_file

    path = Path(path)
    if not (path / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{path} is not a PEFT adapter dir (no adapter_config.json)")
    cfg = json.loads((path / "adapter_config.json").read_text())
    return cfg, load_file(str(path / "adapter_model.safetensors"))


def concat_adapters(paths: list[str | Path], out: str | Path) -> dict[str, Any]:
    """Write the LoRA adapter equal to applying every adapter in `paths` together."""
    import torch
    from safetensors.torch import save_file

    loaded = [read_adapter(p) for p in paths]
    for (cfg, _), p in zip(loaded, paths, strict=True):
        if cfg.get("peft_type") != "LORA" or cfg.get("use_dora"):
            raise ValueError(f"{p}: only plain LoRA adapters can be concatenated")
        if cfg.get("rank_pattern") or cfg.get("alpha_pattern") or cfg.get("modules_to_save"):
            raise ValueError(f"{p}: rank/alpha patterns and modules_to_save are not supported")
    modules = sorted({k.rsplit(".lora_", 1)[0] for _, sd in loaded for k in sd if ".lora_A." in k})
    ranks = [cfg["r"] for cfg, _ in loaded]
    total = sum(ranks)
    merged: dict[str, Any] = {}
    for mod in modules:
        a_parts, b_parts = [], []
        ref_a = next(sd[f"{mod}.lora_A.weight"] for _, sd in loaded if f"{mod}.lora_A.weight" in sd)
        ref_b = next(sd[f"{mod}.lora_B.weight"] for _, sd in loaded if f"{mod}.lora_B.weight" in sd)
        for (cfg, sd), r in zip(loaded, ranks, strict=True):
            a = sd.get(f"{mod}.lora_A.weight")
            b = sd.get(f"{mod}.lora_B.weight")
            if a is None:  # this adapter leaves the module alone: a zero block
                a = torch.zeros(r, ref_a.shape[1])
                b = torch.zeros(ref_b.shape[0], r)
            a_parts.append(a.float())
            b_parts.append(b.float() * lora_scale(cfg))
        merged[f"{mod}.lora_A.weight"] = torch.cat(a_parts, 0).contiguous()
        merged[f"{mod}.lora_B.weight"] = torch.cat(b_parts, 1).contiguous()
    cfg = dict(loaded[-1][0])
    targets = set()
    for c, _ in loaded:
        t = c["target_modules"]
        targets.update([t] if isinstance(t, str) else t)
    cfg.update(
        r=total,
        lora_alpha=total,  # scaling 1: the per-adapter scales are folded into B
        use_rslora=False,
        target_modules=sorted(targets),
        lora_dropout=0.0,
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # atomic: `out` is the caller's temporary folder, renamed into place when whole
    save_file(merged, str(out / "adapter_model.safetensors"))  # atomic: see above
    (out / "adapter_config.json").write_text(json.dumps(cfg, indent=2))  # atomic: see above
    return {"r": total, "parts": [str(p) for p in paths], "modules": len(modules)}
