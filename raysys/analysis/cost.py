"""Cost per answer: what Ray scheduled for a trial or a stage x its wall time
(resource-seconds by kind: `CPU`, and each GPU type), the tokens it trained and
generated, and its cost at the prices of `cost.prices` (USD per hour per CPU or GPU).

A usage is plain data (it is written into result.json, sweep.json and pipeline.json):
`{"resource_seconds": {"CPU": 812.0, "H100": 40.0}, "tokens_trained": 51200,
"tokens_generated": 9600}`. A kind with seconds but no price makes the cost unknown
(None), never 0: `priced` names the kinds that lack one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

CPU = "CPU"
GPU = "GPU"  # a GPU of no stated type (train.accelerator_type / generate.accelerator_type)
COLUMNS = ("cpu_s", "gpu_s", "tokens_trained", "tokens_generated", "cost_usd")

Usage = dict[str, Any]


def train_resources(train: Any) -> dict[str, float]:
    """What a Ray Train run schedules (`train.launch`): per worker 1 GPU of
    `train.accelerator_type` (no CPU), or `train.cpus_per_worker` CPUs. The trial's own
    driver asks for memory only (`sweep.tune.trial_resources`)."""
    n = float(train.num_workers)
    if train.use_gpu:
        return {getattr(train, "accelerator_type", None) or GPU: n}
    return {CPU: n * float(train.cpus_per_worker)}


def engine_resources(gen: Any, on_gpu: bool) -> dict[str, float]:
    """What an evaluation or synthesis pass schedules: `generate.concurrency` engine
    actors, each `generate.num_cpus` CPUs (x tensor_parallel_size for vLLM on CPU), or
    on GPU one GPU of `generate.accelerator_type` and one CPU per tensor-parallel rank."""
    replicas, tp = float(gen.concurrency), float(gen.tensor_parallel_size)
    if on_gpu:
        return {CPU: replicas * tp, gen.accelerator_type or GPU: replicas * tp}
    return {CPU: replicas * float(gen.num_cpus) * tp}


def engine_on_gpu(gen: Any, cluster_gpus: float) -> bool:
    """Whether the engines run on GPUs: `generate.device`, or for `auto` a cluster with
    GPUs and an engine other than the CPU-only transformers pool."""
    if gen.device != "auto":
        return gen.device == "gpu"
    return cluster_gpus > 0 and gen.engine != "hf"


def times(resources: Mapping[str, float], seconds: float) -> dict[str, float]:
    """Resource-seconds of holding `resources` for `seconds`."""
    return {k: float(v) * max(float(seconds), 0.0) for k, v in resources.items() if v}


def usage(
    resource_seconds: Mapping[str, float] | None = None,
    tokens_trained: float = 0,
    tokens_generated: float = 0,
) -> Usage:
    return {
        "resource_seconds": {k: float(v) for k, v in (resource_seconds or {}).items() if v},
        "tokens_trained": int(_num(tokens_trained)),
        "tokens_generated": int(_num(tokens_generated)),
    }


def total(usages: Iterable[Mapping[str, Any] | None]) -> Usage:
    """The sum of usages (None and malformed entries count as nothing)."""
    seconds: dict[str, float] = {}
    trained = generated = 0.0
    for u in usages:
        if not isinstance(u, Mapping):
            continue
        for k, v in (u.get("resource_seconds") or {}).items():
            seconds[k] = seconds.get(k, 0.0) + _num(v)
        trained += _num(u.get("tokens_trained"))
        generated += _num(u.get("tokens_generated"))
    return usage(seconds, trained, generated)


def generated_tokens(records: Iterable[Mapping[str, Any]]) -> float:
    """Tokens an evaluation generated, from its per-(adapter, task) records
    (`n` rows x `mean_generated_tokens`)."""
    return sum(
        _num(r.get("n")) * _num(r.get("mean_generated_tokens"))
        for r in records
        if isinstance(r, Mapping)
    )


def cost(u: Mapping[str, Any], prices: Mapping[str, float]) -> tuple[float | None, list[str]]:
    """(USD, kinds without a price): None while no prices are set or a kind that was
    used has none."""
    seconds = {k: _num(v) for k, v in (u.get("resource_seconds") or {}).items()}
    missing = sorted(k for k, s in seconds.items() if s > 0 and k not in prices)
    if not prices or missing:
        return None, missing
    return sum(s / 3600.0 * float(prices[k]) for k, s in seconds.items()), []


def priced(u: Mapping[str, Any], prices: Mapping[str, float]) -> Usage:
    """`u` with `cost_usd` (None: unknown) and, when a used kind has no price, `unpriced`."""
    usd, missing = cost(u, prices)
    out = {**total([u]), "cost_usd": usd}
    if missing and prices:
        out["unpriced"] = missing
    return out


def columns(u: Mapping[str, Any] | None, prices: Mapping[str, float]) -> dict[str, Any]:
    """The results table's cost columns: CPU-seconds, GPU-seconds (every type), tokens
    trained and generated, USD (NaN when unknown)."""
    if not isinstance(u, Mapping):
        return dict.fromkeys(COLUMNS, math.nan)
    seconds = u.get("resource_seconds") or {}
    usd, _ = cost(u, prices)
    return {
        "cpu_s": _num(seconds.get(CPU)),
        "gpu_s": sum(_num(v) for k, v in seconds.items() if k != CPU),
        "tokens_trained": int(_num(u.get("tokens_trained"))),
        "tokens_generated": int(_num(u.get("tokens_generated"))),
        "cost_usd": math.nan if usd is None else usd,
    }


def per_answer(u: Mapping[str, Any], prices: Mapping[str, float], answers: int) -> float | None:
    """USD per evaluated answer; None when the cost is unknown or nothing was scored."""
    usd, _ = cost(u, prices)
    return usd / answers if usd is not None and answers > 0 else None


def describe(u: Mapping[str, Any], prices: Mapping[str, float]) -> str:
    """`812 CPU-s (0.23 CPU-h), 40 H100-s; 51,200 tokens trained, 9,600 generated; $0.0131`."""
    seconds = u.get("resource_seconds") or {}
    parts = [
        f"{_num(v):,.0f} {k}-s ({_num(v) / 3600:.3g} {k}-h)" for k, v in sorted(seconds.items())
    ]
    text = ", ".join(parts) or "0 CPU-s"
    text += (
        f"; {int(_num(u.get('tokens_trained'))):,} tokens trained, "
        f"{int(_num(u.get('tokens_generated'))):,} generated"
    )
    return f"{text}; {price_text(u, prices)}"


def price_text(u: Mapping[str, Any], prices: Mapping[str, float]) -> str:
    usd, missing = cost(u, prices)
    if not prices:
        return "cost not priced (set cost.prices, e.g. {CPU: 0.04, H100: 3.5} USD per hour)"
    if usd is None:
        return f"cost unknown: no price for {', '.join(missing)} (add it to cost.prices)"
    return f"${usd:,.4g}"


def _num(x: Any) -> float:
    ok = isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
    return float(x) if ok else 0.0
