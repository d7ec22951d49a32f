"""The `hf` engine: a Ray Data actor pool around transformers `generate`.

Each actor loads the base model once and every LoRA adapter it is given by
name (PEFT multi-adapter); a batch is split by its `adapter` column so one
engine load serves the base model and any number of adapters. Output columns
are the ones every engine produces (`base.OUTPUT_COLUMNS` plus `adapter`); decoding
follows a `base.Sampling`, as on the vllm engine.
"""

from __future__ import annotations

import itertools
import logging
import os
from typing import Any

import pandas as pd

from raysys.engines.base import (
    BASE,
    OUTPUT_COLUMNS,
    ResourceBudgetError,
    Sampling,
    audit_rows,
    collect,
    merge_eos_ids,
    output_record,
    resolve_sampling,
)

log = logging.getLogger(__name__)

BLOCK_RETRIES = 2  # in-actor retries of a block whose generation raised
PREFIX_MIN_TOKENS = 16  # a shorter shared prefix is not worth a separate forward


class HFGenerator:
    """Callable class for `Dataset.map_batches`; rows need `messages` and `adapter`.
    One output per row: `generate` repeats the rows for `sampling.n` samples."""

    def __init__(
        self,
        model_path: str,
        adapters: dict[str, str] | None,
        sampling: Sampling,
        batch_size: int = 16,
        dtype: str = "bfloat16",
        torch_threads: int | None = None,
        faults: dict[str, Any] | None = None,
        device: str | None = None,
        prefix_cache: bool = True,
    ) -> None:
        """`device`: where the model runs ("cuda", "cuda:1"); None keeps it on the CPU,
        where the Ray Data pass runs it. Inputs follow the model to its device.
        `dtype` "bfloat16" runs in float32 on a CPU without bf16 instructions
        (`raysys.models.supported_dtype`). `prefix_cache`: compute the prompt prefix a
        batch shares (system prompt, task instruction) once, see `_prefix_plan`."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if sampling.n != 1:
            raise ValueError(f"HFGenerator makes one output per row, got n={sampling.n}")
        self.sampling = sampling
        self.faults = dict(faults or {})
        self.calls = 0

        if torch_threads:
            torch.set_num_threads(torch_threads)
        from raysys.models import local_model

        model_path = local_model(model_path)  # this actor may be on any node of a cluster
        self.tok = AutoTokenizer.from_pretrained(model_path)
        self.tok.padding_side = "left"  # decoder-only: new tokens follow the prompt directly
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        from raysys.models import supported_dtype

        run_dtype = supported_dtype(dtype, str(device or "cpu"))
        torch_dtype = "auto" if run_dtype == "auto" else getattr(torch, run_dtype)
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch_dtype)
        from raysys.storage import localize

        # URIs when the run directory is in an object store (this actor may be on any node)
        self.adapters = {name: localize(path) for name, path in (adapters or {}).items()}
        if self.adapters:
            from peft import PeftModel

            names = list(self.adapters)
            model = PeftModel.from_pretrained(model, self.adapters[names[0]], adapter_name=names[0])
            for name in names[1:]:
                model.load_adapter(self.adapters[name], adapter_name=name)
        if device:
            model = model.to(device)
        self.model = model.eval()
        self.canary = {name: self._canary(name) for name in self.adapters}
        self.batch_size = batch_size
        self.eos_ids = merge_eos_ids(
            self.model.generation_config.eos_token_id, self.tok.eos_token_id
        )
        self.prefix_cache = prefix_cache and self._prefix_cache_agrees()

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        """One block. An error while generating it (a transient OOM, a driver hiccup) is
        retried in place up to BLOCK_RETRIES times and counted in `attempts`; after that
        the pass fails with the error: rows are never dropped."""
        self.calls += 1
        self._maybe_die()
        for attempt in range(1, BLOCK_RETRIES + 2):
            try:
                self._maybe_raise()
                out = self._generate_block(batch)
            except Exception as e:
                if attempt > BLOCK_RETRIES:
                    raise
                log.warning(
                    "engine: block of %d rows failed (%s); retry %d", len(batch), e, attempt
                )
                continue
            out["attempts"] = attempt
            return out
        raise AssertionError("unreachable")

    def _seed_block(self, batch: pd.DataFrame) -> None:
        """Sampling seeded by the run seed and the block's own rows, not by the actor: the
        same block gives the same samples on whichever actor, after a retry, or in a
        resumed run (one seed per actor would depend on which blocks it happened to get)."""
        import zlib

        import torch

        keys = [str(v) for v in batch.get("id", pd.Series(range(len(batch))))]
        if "sample" in batch:
            keys += [str(v) for v in batch["sample"]]
        torch.manual_seed(int(self.sampling.seed) * 1_000_003 + zlib.crc32("|".join(keys).encode()))

    def _maybe_raise(self) -> None:
        """Fault drill (RAYSYS_FAULTS=engine_raise_at_block=N): generating the N-th block
        raises once (per marker), as a transient engine error would."""
        n, marker = self.faults.get("engine_raise_at_block"), self.faults.get("marker")
        if n == self.calls and marker and not os.path.exists(marker + ".raised"):
            with open(marker + ".raised", "w") as f:  # atomic: a fault-drill marker
                f.write(str(os.getpid()))
            raise RuntimeError(f"fault injection: engine error on block {n}")

    def _generate_block(self, batch: pd.DataFrame) -> pd.DataFrame:
        batch = batch.reset_index(drop=True)
        if self.sampling.seed is not None:
            self._seed_block(batch)
        results: list[dict[str, Any] | None] = [None] * len(batch)
        adapters = (
            batch["adapter"].fillna(BASE) if "adapter" in batch else pd.Series([BASE] * len(batch))
        )
        for name, idx in adapters.groupby(adapters).groups.items():
            prompts = [self._render(batch.at[i, "messages"]) for i in idx]
            for i, out in zip(idx, self._generate_for(name, prompts), strict=True):
                results[i] = out
        out = pd.DataFrame(results)
        for col in OUTPUT_COLUMNS:
            batch[col] = out[col]
        batch["adapter"] = adapters.values
        return batch

    def _maybe_die(self) -> None:
        """Fault drill (RAYSYS_FAULTS=engine_exit_at_block=N): the actor process exits
        while holding its N-th block, once per marker (as a node loss would kill it)."""
        n, marker = self.faults.get("engine_exit_at_block"), self.faults.get("marker")
        if n == self.calls and marker and not os.path.exists(marker):
            with open(marker, "w") as f:  # atomic: a fault-drill marker, only its existence counts
                f.write(str(os.getpid()))
            os._exit(1)

    def _canary(self, name: str) -> float:
        """Max |logit difference| between adapter `name` and the base on a fixed prompt."""
        import torch

        from raysys.errors import AdapterIgnoredError

        enc = self.tok("Revenue rose 4% in the third quarter.", return_tensors="pt")
        enc = enc.to(self.model.device)
        with torch.inference_mode():
            self.model.set_adapter(name)
            with_adapter = self.model(**enc).logits.float()
            with self.model.disable_adapter():
                base = self.model(**enc).logits.float()
        diff = float((with_adapter - base).abs().max())
        if diff == 0.0:
            raise AdapterIgnoredError(
                f"adapter {name!r} ({self.adapters[name]}) leaves the base model's logits "
                "unchanged: it is not applied (untrained, or its target modules miss the model)"
            )
        return diff

    def _render(self, messages: Any) -> str:
        msgs = [{"role": m["role"], "content": m["content"]} for m in messages]
        return self.tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)

    def _generate_for(self, adapter: str, prompts: list[str]) -> list[dict[str, Any]]:
        from contextlib import nullcontext

        if adapter != BASE and adapter not in self.adapters:
            raise KeyError(f"adapter {adapter!r} was not loaded; loaded: {sorted(self.adapters)}")
        if self.adapters:
            ctx = self.model.disable_adapter() if adapter == BASE else nullcontext()
            if adapter != BASE:
                self.model.set_adapter(adapter)
        else:
            ctx = nullcontext()
        # Sort by length so each sub-batch pads as little as possible.
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        outs: list[dict[str, Any] | None] = [None] * len(prompts)
        with ctx:
            for s in range(0, len(order), self.batch_size):
                chunk = order[s : s + self.batch_size]
                for i, res in zip(chunk, self._generate([prompts[i] for i in chunk]), strict=True):
                    outs[i] = res
        return outs  # type: ignore[return-value]

    def _generate(self, prompts: list[str]) -> list[dict[str, Any]]:
        import torch

        ids = self.tok(prompts, add_special_tokens=False)["input_ids"]
        shared = self._prefix_plan(ids) if self.prefix_cache else 0
        input_ids, mask = _pad(ids, shared, self.tok.pad_token_id)
        input_ids, mask = input_ids.to(self.model.device), mask.to(self.model.device)
        s = self.sampling
        kwargs: dict[str, Any] = {"do_sample": False}
        if not s.greedy:  # top_k 0: no top-k cut (transformers' default would be 50)
            kwargs = {"do_sample": True, "temperature": s.temperature, "top_p": s.top_p}
            kwargs["top_k"] = s.top_k or 0
        from transformers import StoppingCriteriaList

        record = TokenLogprobs()
        inner = self.model.get_base_model() if self.adapters else self.model
        hook = inner.register_forward_hook(record.hook)
        try:
            with torch.inference_mode():
                if shared:
                    kwargs["past_key_values"] = self._prefix_kv(input_ids[:1, :shared], len(ids))
                gen = self.model.generate(
                    input_ids=input_ids,
                    attention_mask=mask,
                    max_new_tokens=s.max_new_tokens,
                    **kwargs,
                    eos_token_id=self.eos_ids,
                    pad_token_id=self.tok.pad_token_id,
                    stopping_criteria=StoppingCriteriaList([record]),
                )
        finally:
            hook.remove()
        new = gen[:, input_ids.shape[1] :]
        n_in = [len(x) for x in ids]
        lps = record.table(new.shape[1])
        return [self._row(seq.tolist(), n, lp) for seq, n, lp in zip(new, n_in, lps, strict=True)]

    def _prefix_plan(self, ids: list[list[int]]) -> int:
        """How many leading tokens every prompt of this batch shares (the chat template's
        system prompt, a task's instruction): their keys and values are computed once and
        copied to each row, as vLLM's automatic prefix caching does across requests. 0
        (no cache) for a single prompt or a prefix under PREFIX_MIN_TOKENS; each row keeps
        at least one token of its own, so the first step's logits are the row's."""
        if len(ids) < 2:
            return 0
        n = _common_prefix(ids)
        return n if n >= PREFIX_MIN_TOKENS else 0

    def _prefix_kv(self, prefix: Any, rows: int) -> Any:
        """The KV cache of `prefix` (1 x n tokens, under the active adapter), repeated for
        `rows` rows; `generate` then runs only the tokens after it."""
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        self.model(input_ids=prefix, past_key_values=cache, use_cache=True, logits_to_keep=1)
        cache.batch_repeat_interleave(rows)
        return cache

    def _prefix_cache_agrees(self) -> bool:
        """At load: the next-token logits of two prompts that share a prefix, with the
        prefix cached and without, must agree (to the dtype's rounding). A model whose
        positions or cache do not follow the attention mask (middle padding) fails this
        and generates without the cache, with a warning."""
        import torch

        prompts = [
            "Classify the sentiment of this headline. Headline: revenue rose 4% in Q3.",
            "Classify the sentiment of this headline. Headline: the firm cut 900 jobs.",
        ]
        ids = self.tok(prompts, add_special_tokens=False)["input_ids"]
        shared = _common_prefix(ids)
        if shared < 1:
            return False
        dev = self.model.device
        with torch.inference_mode():
            plain = [self.model(input_ids=torch.tensor([x], device=dev)).logits[0, -1] for x in ids]
            input_ids, mask = _pad(ids, shared, self.tok.pad_token_id)
            cache = self._prefix_kv(input_ids[:1, :shared].to(dev), len(ids))
            pos = (mask.cumsum(-1) - 1).clamp(min=0)[:, shared:]
            cached = self.model(
                input_ids=input_ids[:, shared:].to(dev),
                attention_mask=mask.to(dev),
                position_ids=pos.to(dev),
                past_key_values=cache,
            ).logits[:, -1]
        want = torch.stack(plain).float()
        err = float((cached.float() - want).abs().max())
        scale = float(want.abs().max()) or 1.0
        tol = 1e-3 if self.model.dtype == torch.float32 else 5e-2
        if err > tol * scale:
            log.warning(
                "hf engine: the prefix cache changes this model's logits (max |diff| %.3g "
                "of %.3g): generating without it",
                err,
                scale,
            )
            return False
        return True

    def _row(self, ids: list[int], n_input: int, logprobs: list[float]) -> dict[str, Any]:
        stop = next((k for k, t in enumerate(ids) if t in self.eos_ids), None)
        kept = ids if stop is None else ids[:stop]
        n_gen = len(ids) if stop is None else stop + 1  # count the EOS, as vLLM does
        text = self.tok.decode(kept, skip_special_tokens=True)
        return output_record(
            text, n_gen, n_input, cut=stop is None, token_logprobs=logprobs[:n_gen]
        )


class TokenLogprobs:
    """The raw log-probability of each token `generate` picks (`base.LOGPROB_DOC`), kept
    step by step in O(batch x vocab) memory: `output_logits=True` would hold every step's
    logits (steps x batch x vocab floats, GBs for chain-of-thought lengths).

    A forward hook on the model keeps the last position's log-softmax of each step's
    logits: what `generate` receives before any logits processor or temperature. As a
    stopping criterion (called once per step, after the picked token is appended) it
    reads that token's value; it never stops anything."""

    def __init__(self) -> None:
        self.last: Any = None
        self.steps: list[Any] = []

    def hook(self, module: Any, args: Any, output: Any) -> None:
        import torch

        logits = output.logits if hasattr(output, "logits") else output[0]
        self.last = torch.log_softmax(logits[:, -1].float(), dim=-1)

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        self.steps.append(self.last.gather(1, input_ids[:, -1:].to(self.last.device))[:, 0])
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    def table(self, n_new: int) -> list[list[float]]:
        """Per row, the logprob of each new token (a row that finished early has values
        for its padding too: callers keep the first `num_generated_tokens`)."""
        import torch

        # a deferred stop check may run steps it later undoes: they are the last ones
        return torch.stack(self.steps[:n_new], dim=1).cpu().tolist()


def _common_prefix(ids: list[list[int]]) -> int:
    """Leading tokens all rows share, leaving each row at least one token of its own."""
    limit = min(len(x) for x in ids) - 1
    n = 0
    while n < limit and all(x[n] == ids[0][n] for x in ids):
        n += 1
    return n


def _pad(ids: list[list[int]], shared: int, pad_id: int) -> tuple[Any, Any]:
    """Token ids and attention mask for a batch: each row is its first `shared` tokens
    (the same in every row), then padding, then the rest of the row, so every row ends at
    the last column (decoder-only: new tokens follow the prompt directly). With `shared`
    0 this is plain left padding. Positions follow the mask (`generate` counts them from
    it), so the padding in the middle shifts no token's position."""
    import torch

    width = shared + max(len(x) - shared for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, x in enumerate(ids):
        rest = len(x) - shared
        input_ids[i, :shared] = torch.tensor(x[:shared], dtype=torch.long)
        input_ids[i, width - rest :] = torch.tensor(x[shared:], dtype=torch.long)
        mask[i, :shared] = 1
        mask[i, width - rest :] = 1
    return input_ids, mask


def actor_pool_size(gen_cfg: Any, cluster: dict[str, float], fixed: bool) -> int:
    """Engine actors to start. A pool whose actors can never all be placed waits for them
    (an actor needing more CPUs than the cluster has, forever): on a cluster that cannot
    grow (`fixed`: the local Ray this process started) that is refused or the pool is
    shrunk to what fits, with a message; an autoscaling cluster may still add nodes."""
    cpus, per, want = float(cluster.get("CPU", 0)), float(gen_cfg.num_cpus), gen_cfg.concurrency
    fit = int((cpus + 1e-9) // per)
    if fit >= want:
        return want
    if not fixed:
        log.warning(
            "generate.concurrency=%d x generate.num_cpus=%g needs %g CPUs; the cluster has %g "
            "now and waits for its autoscaler to add the rest",
            want,
            per,
            want * per,
            cpus,
        )
        return want
    if fit < 1:
        raise ResourceBudgetError(
            f"generate.num_cpus={per:g} per engine actor, but this Ray has {cpus:g} CPU(s), so "
            "no actor could ever start; lower generate.num_cpus or raise ray.num_cpus"
        )
    log.warning(
        "generate.concurrency=%d engine actors x %g CPU(s) do not fit this Ray's %g CPUs: "
        "running %d actor(s)",
        want,
        per,
        cpus,
        fit,
    )
    return fit


def generate(
    rows: list[dict[str, Any]],
    model_path: str,
    adapters: dict[str, str] | None,
    gen_cfg: Any,
    dtype: str,
    sampling: Sampling | dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Run `rows` (with `messages` and `adapter`) through the actor pool; returns all columns.

    `sampling`: a `Sampling` or its fields as a dict (see `resolve_sampling`); None is
    greedy with `gen_cfg.max_new_tokens`. With n > 1 each row yields n output rows told
    apart by a `sample` column (0..n-1); transformers batches the copies like any prompts."""
    import dataclasses

    import ray

    from raysys.runtime import started_locally
    from raysys.storage import for_workers

    s = resolve_sampling(gen_cfg, sampling)
    if s.n > 1:
        rows = [{**r, "sample": k} for r in rows for k in range(s.n)]
    actors = actor_pool_size(gen_cfg, ray.cluster_resources(), started_locally())
    threads = gen_cfg.torch_threads or max(1, (os.cpu_count() or 1) // actors)
    df = pd.DataFrame(rows)
    out = ray.data.from_pandas(_blocks(df, actors, gen_cfg.batch_size)).map_batches(
        HFGenerator,
        fn_constructor_kwargs={
            "model_path": model_path,
            "adapters": {k: for_workers(v) for k, v in (adapters or {}).items()},
            "sampling": dataclasses.replace(s, n=1),  # rows are already repeated n times
            "batch_size": gen_cfg.batch_size,
            "dtype": dtype,
            "torch_threads": threads,
            "faults": _faults(),
            "prefix_cache": bool(getattr(gen_cfg, "prefix_cache", True)),
        },
        batch_format="pandas",
        batch_size=None,  # whole blocks: the actor re-batches by length itself
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=gen_cfg.num_cpus,
        **({"resources": dict(gen_cfg.resources)} if gen_cfg.resources else {}),
    )
    got = audit_rows(df, collect(out, len(df)))
    retried = int((got.pop("attempts") > 1).sum())
    if retried:
        log.warning("generation: %d of %d rows were retried after engine errors", retried, len(got))
    return got


BLOCKS_PER_ACTOR = 4  # the most blocks an engine actor gets in one pass (see `_blocks`)


def _blocks(df: pd.DataFrame, actors: int, batch_size: int) -> list[pd.DataFrame]:
    """Blocks for `actors` engine actors that each re-batch their block by `batch_size`.

    One actor: up to 4 blocks (a dead actor retries little) of whole batches, never more
    blocks than full batches: a block of 12 rows runs its decode steps at batch 12, so 48
    rows in 4 blocks cost 1.4x one block of 48 in the engine (BENCHMARKS "Generation: Ray
    Data vs direct"). Several actors: 4 blocks per actor, so an actor that starts late
    (model load) still gets a share; on a small pass that balance is worth more than full
    batches (48 rows on 2 actors: 8 blocks of 6 took 0.8x the wall of 2 blocks of 24).
    Blocks hold whole batches when there are enough, spread evenly, and the rows short of
    a full batch join the last block (it has the fewest batches); otherwise the rows are
    split evenly.

    Blocks made here, not by `repartition`: a repartition runs CPU tasks, which starve
    (forever) when every CPU is held by engine actors, e.g. two sweep trials scoring at
    once on a 2-CPU node. With ready blocks the pipeline is actors only."""
    n, batch_size = len(df), max(1, batch_size)
    full = n // batch_size
    n_blocks = max(
        1, min(n, BLOCKS_PER_ACTOR * actors) if actors > 1 else min(BLOCKS_PER_ACTOR, full)
    )
    if full >= n_blocks:
        per, extra = divmod(full, n_blocks)
        sizes = [(per + (i < extra)) * batch_size for i in range(n_blocks)]
        sizes[-1] += n - full * batch_size
    else:
        sizes = [n // n_blocks + (i < n % n_blocks) for i in range(n_blocks)]
    bounds = [0, *itertools.accumulate(sizes)]
    return [df.iloc[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


def _faults() -> dict[str, Any]:
    """The fault drills RAYSYS_FAULTS asks of the engine actors, with a marker file so each
    fires once per pass."""
    from raysys.runtime import faults_from_env

    faults: dict[str, Any] = dict(
        faults_from_env(("engine_exit_at_block", "engine_raise_at_block"))
    )
    if faults:
        import tempfile

        faults["marker"] = os.path.join(tempfile.mkdtemp(prefix="raysys-fault-"), "died")
    return faults
