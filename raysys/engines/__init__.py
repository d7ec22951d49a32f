"""Generation engines: `hf` (transformers on a Ray Data actor pool) and `vllm`
(`ray.data.llm`). Both take rows with `messages` and `adapter` and a `Sampling`, and
return the same output columns (`base`); `generate` picks the one `gen_cfg.engine` names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from raysys.engines.base import (
    BASE,
    OUTPUT_COLUMNS,
    ResourceBudgetError,
    Sampling,
    VLLMUnavailableError,
    audit_rows,
    canary_failure,
    resolve_sampling,
)

__all__ = [
    "BASE",
    "OUTPUT_COLUMNS",
    "ResourceBudgetError",
    "Sampling",
    "VLLMUnavailableError",
    "audit_rows",
    "canary_failure",
    "check_fits",
    "generate",
    "resolve_engine",
    "resolve_sampling",
]


def generate(
    rows: list[dict[str, Any]],
    model_path: str,
    adapters: dict[str, str] | None,
    gen_cfg: Any,
    dtype: str,
    sampling: Sampling | Mapping[str, Any] | None = None,
) -> Any:
    """`sampling`: None for greedy with `gen_cfg.max_new_tokens`, else a `Sampling` (or its
    fields as a dict). With n > 1 each row yields n output rows told apart by a `sample`
    column (0..n-1), on both engines."""
    engine = resolve_engine(getattr(gen_cfg, "engine", "hf"))
    s = resolve_sampling(gen_cfg, sampling)
    try:
        if engine == "vllm":
            from raysys.engines import vllm

            return vllm.generate(rows, model_path, adapters, gen_cfg, dtype, sampling=s)
        from raysys.engines import hf

        return hf.generate(rows, model_path, adapters, gen_cfg, dtype, sampling=s)
    except Exception as e:
        canary = canary_failure(e)
        if canary is not None:
            raise canary from e
        raise


def check_fits(gen_cfg: Any, ray_cfg: Any = None) -> None:
    """Refuse an engine stage the Ray cluster can never hold (or shrink its actor pool),
    before a job starts, rather than let the first generation wait for it forever. Before
    Ray is up (`ray_cfg` given) this checks the local Ray the job will start."""
    import os

    import ray

    from raysys.runtime import started_locally

    if ray.is_initialized():
        cluster, fixed = ray.cluster_resources(), started_locally()
    elif ray_cfg is not None and not (ray_cfg.address or os.environ.get("RAY_ADDRESS")):
        cluster, fixed = {"CPU": float(ray_cfg.num_cpus or os.cpu_count() or 1)}, True
    else:
        return  # an attached cluster is checked once attached
    if resolve_engine(getattr(gen_cfg, "engine", "hf")) == "vllm":
        if ray.is_initialized():  # its GPU plan needs the real cluster
            from raysys.engines.vllm_config import plan_engines

            plan_engines(gen_cfg, cluster)
        return
    from raysys.engines.hf import actor_pool_size

    actor_pool_size(gen_cfg, cluster, fixed)


def resolve_engine(engine: str) -> str:
    """`auto`: vLLM on GPU clusters; on CPU the hf engine, which measured faster end to end
    for evaluation-sized jobs on 2 cores (vLLM-CPU starts in ~20 s; BENCHMARKS.md)."""
    if engine != "auto":
        return engine
    import ray

    if ray.is_initialized() and ray.cluster_resources().get("GPU", 0) > 0:
        try:
            from raysys.engines.vllm import require_vllm

            require_vllm()
            return "vllm"
        except Exception:  # no vLLM on this cluster: the hf engine serves
            return "hf"
    return "hf"
