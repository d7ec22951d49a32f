"""Ray's vLLM engine stage (ray.data.llm) with the model and the adapters found on the
engine's own node: on a cluster an engine replica runs wherever Ray places it, and the
nodes share no disk.

Ray's stage loads `model_source` and each row's LoRA (its `model` column) from paths on
the replica's node; its remote loading (`dynamic_lora_loading_path`) wants every adapter
under one folder of one bucket. raysys hands the stage URIs instead (`storage.for_workers`:
an adapter in an object-store run) and this stage resolves them where it runs: the model
with `models.local_model` (built-in models are built into the node's cache), an adapter
with `storage.localize` (fetched once per node), the zero LoRA for base rows
(`vllm_config.null_adapter`, a row model `NULL_PREFIX + <template>`) built on the node from
its template. Imported only inside a Ray Data job (it imports Ray's vLLM stage).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ray.llm._internal.batch.stages.vllm_engine_stage import vLLMEngineStageUDF

from raysys.engines.vllm_config import NULL_PREFIX, null_adapter, sampled_logprobs
from raysys.models import local_model
from raysys.storage import localize


class NodeLocalVLLMEngineUDF(vLLMEngineStageUDF):
    """`vLLMEngineStageUDF` whose model and LoRA paths may be URIs (see the module doc)."""

    def __init__(self, *args: Any, model: str, **kwargs: Any) -> None:
        super().__init__(*args, model=local_model(model), **kwargs)
        here = self.llm.model  # the model on this node, as the engine knows it
        inner = self.llm._maybe_get_lora_request
        local: dict[str, str] = {model: here}  # a row's `model` -> what this node has

        def resolve(name: str) -> str:
            if name not in local:
                if name.startswith(NULL_PREFIX):
                    template = localize(name[len(NULL_PREFIX) :], "adapter")
                    local[name] = null_adapter(template)
                else:
                    local[name] = localize(name, "adapter")
            return local[name]

        async def lora_request(row: dict[str, Any]) -> Any:
            name = row.get("model")
            if name:
                row = {**row, "model": resolve(name)}
            return await inner(row)

        # the wrapper asks this for every request (Ray 2.60: vLLMEngineWrapper)
        self.llm._maybe_get_lora_request = lora_request

    async def udf(self, batch: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
        """Ray's outputs with `logprobs` reduced to the sampled tokens' values."""
        async for out in super().udf(batch):
            if out.get("logprobs") is not None:
                out["logprobs"] = sampled_logprobs(out["generated_tokens"], out["logprobs"])
            yield out
