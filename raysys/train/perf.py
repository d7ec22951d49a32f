"""What a training run costs: measured peak FLOP/s, model FLOPs per token, MFU, memory.

MFU here is model FLOPs per second (from tokens/s and an analytic FLOPs-per-token
count for LoRA training) over the *measured* peak of the same device and dtype
(a short matmul probe at start-up), not a datasheet number: on CPUs there is no
datasheet number worth quoting, and on GPUs the probe shows what the clocks give.
"""

from __future__ import annotations

import importlib.metadata
import resource
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

VERSIONED = ("ray", "torch", "transformers", "peft", "trl", "datasets", "accelerate")


def versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Python's and the training stack's versions ("absent" where not installed), and
    those of the `extra` packages."""
    out = {"python": sys.version.split()[0]}
    for pkg in (*VERSIONED, *extra):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "absent"
    return out


def probe_peak_flops(device: torch.device, dtype: torch.dtype, seconds: float = 0.5) -> float:
    """Dense matmul FLOP/s of `device` in `dtype`: square matmuls for about `seconds`."""
    import torch

    n = 4096 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(3):  # warm-up: kernel selection, AMX tile config, clocks
        a @ b
    sync()
    iters, start = 0, time.perf_counter()
    while True:
        a @ b
        iters += 1
        if iters % 4 == 0:
            sync()
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                return 2 * n**3 * iters / elapsed


def model_flops_per_token(model: torch.nn.Module, mean_seq_len: float) -> dict[str, float]:
    """Training FLOPs per token of a (PEFT-wrapped) causal LM.

    Linear layers: forward 2N; backward needs input gradients through every layer
    (2N) but weight gradients only for trainable ones (2N_trainable). So LoRA costs
    4·N_frozen + 6·N_trainable per token, not the full-training 6·N. Attention
    scores and values add 12·layers·hidden·seq per token (the PaLM convention,
    no causal discount). Embedding lookups are not matmuls and are left out.
    """
    import torch

    frozen = trainable = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            n = module.weight.numel()
            if module.weight.requires_grad:
                trainable += n
            else:
                frozen += n
    cfg = getattr(model, "config", None)
    cfg = getattr(cfg, "text_config", cfg)
    layers = getattr(cfg, "num_hidden_layers", 0) or 0
    hidden = getattr(cfg, "hidden_size", 0) or 0
    attention = 12 * layers * hidden * mean_seq_len
    return {
        "linear_params_frozen": float(frozen),
        "linear_params_trainable": float(trainable),
        "flops_per_token": 4.0 * frozen + 6.0 * trainable + attention,
    }


def peak_memory_bytes(device: torch.device) -> int:
    """Peak accelerator memory on GPU; peak resident memory of this process on CPU."""
    if device.type == "cuda":
        import torch

        return int(torch.cuda.max_memory_allocated(device))
    # Linux reports ru_maxrss in KiB (macOS in bytes).
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)
