"""What each pipeline stage used: what Ray scheduled for it x its wall time, and the
tokens it trained or generated (`raysys.analysis.cost`), by the kind of stage:

- training (`sft`, `sft_r<N>`, `dpo`): the Train workers of its train section;
- generation (`eval_*`, `dpo_probe`, `synth_r<N>`): the engine actors of `generate`;
- the SFT sweep (`sft` with a `sweep` section): the whole sweep, from its sweep.json;
- `data`: nothing scheduled (the driver reads and writes files).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from raysys.analysis import cost
from raysys.config import PipelineConfig

GENERATION = ("eval", "dpo_probe", "synth")


def stage_usage(
    cfg: PipelineConfig, name: str, result: Any, seconds: float, cluster_gpus: float
) -> dict[str, Any]:
    if name == "sft" and cfg.sweep is not None:
        return _sweep_usage(result)
    if name == "dpo" or name == "sft" or name.startswith("sft_r"):
        train = cfg.pipeline.dpo if name == "dpo" else cfg.train
        tokens = result.get("train_tokens") if isinstance(result, dict) else 0
        return cost.usage(cost.times(cost.train_resources(train), seconds), tokens or 0)
    if name.startswith(GENERATION):
        on_gpu = cost.engine_on_gpu(cfg.generate, cluster_gpus)
        held = cost.times(cost.engine_resources(cfg.generate, on_gpu), seconds)
        return cost.usage(held, tokens_generated=generated(name, result))
    return cost.usage()


def generated(name: str, result: Any) -> float:
    """Tokens a generation stage produced: an evaluation's records (n x mean tokens), a
    synthesis round's per-task stats; 0 where the stage records none (the DPO probe)."""
    if name.startswith("eval") and isinstance(result, list):
        return cost.generated_tokens(result)
    if name.startswith("synth") and isinstance(result, dict):
        tasks = (result.get("tasks") or {}).values()
        return sum(t.get("generated_tokens") or 0 for t in tasks if isinstance(t, dict))
    return 0.0


def answers(name: str, result: Any) -> int:
    """Test answers an evaluation stage scored (every model and task)."""
    if not (name.startswith("eval") and isinstance(result, list)):
        return 0
    return int(sum(r.get("n") or 0 for r in result if isinstance(r, dict)))


def _sweep_usage(result: Any) -> dict[str, Any]:
    where = result.get("sweep_dir") if isinstance(result, dict) else None
    try:
        meta = json.loads((Path(where) / "sweep.json").read_text()) if where else {}
    except (OSError, ValueError):
        meta = {}
    return cost.total([(meta.get("cost") or {}).get("study")])
