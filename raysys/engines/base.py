"""The contract every engine keeps: what goes in (rows with `messages` and `adapter`, a
`Sampling`), what comes out (`OUTPUT_COLUMNS`, every row exactly once: `audit_rows`), and
the errors an engine raises. The engines import this module, never each other.

Light on purpose (no pandas, torch or Ray at import): `raysys.engines` re-exports it.
"""

from __future__ import annotations

import logging
import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from raysys.errors import AdapterIgnoredError, UserError, clip

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

BASE = ""  # the `adapter` value that means "no adapter"
OUTPUT_COLUMNS = [
    "generated_text",
    "num_generated_tokens",
    "num_input_tokens",
    "finish_reason",  # "stop" | "length"
    "overlong",  # hit max_new_tokens without a stop token
    "mean_logprob",  # mean raw log-probability of the generated tokens (see LOGPROB_DOC)
]
# What `mean_logprob` is, on both engines: the mean over the generated tokens (a final
# stop token included, as `num_generated_tokens` counts it) of log p(token | prefix) under
# the model's own distribution, log-softmax of its logits BEFORE temperature, top-k/top-p
# and any logits processor (vLLM's default `logprobs_mode="raw_logprobs"`; on the hf engine
# the logits `generate` receives from the model). Sampling settings therefore do not shift
# it: a threshold picked at temperature 0.7 means the same at 1.0. Always <= 0.
LOGPROB_DOC = "mean raw (pre-temperature) token log-probability of the generated tokens"
MAX_NEW_TOKENS = 8192  # as generate.max_new_tokens allows
MAX_SAMPLES = 1024
MAX_SEED = 2**32 - 1  # numpy's and torch's seeds must fit


class ResourceBudgetError(UserError):
    """The Ray cluster cannot hold the engine stage plus its helper stages."""


class VLLMUnavailableError(UserError):
    """vLLM is not installed (or fails to import) where the engine would run."""


@dataclass(frozen=True)
class Sampling:
    """How to decode, on either engine; the one place `max_new_tokens` lives in them.

    temperature 0 is greedy decoding (evaluation; top_p and top_k then do nothing). `n`
    outputs per row, told apart by a `sample` column (0..n-1) when n > 1. `top_k` None:
    no top-k cut. `seed` None: unseeded; else samples are reproducible per (row, sample).
    """

    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int | None = None
    n: int = 1
    seed: int | None = None

    def __post_init__(self) -> None:
        _check_int("max_new_tokens", self.max_new_tokens, 1, MAX_NEW_TOKENS)
        _check_int("n", self.n, 1, MAX_SAMPLES)
        if self.top_k is not None:
            _check_int("top_k", self.top_k, 1, None)
        if self.seed is not None:
            _check_int("seed", self.seed, 0, MAX_SEED)
        _check_float("temperature", self.temperature, lambda t: t >= 0, ">= 0")
        _check_float("top_p", self.top_p, lambda p: 0 < p <= 1, "in (0, 1]")
        # plain Python numbers (numpy's, a YAML `1` for a float), set on the frozen instance
        for name in ("max_new_tokens", "n", "top_k", "seed"):
            value = getattr(self, name)
            object.__setattr__(self, name, None if value is None else int(value))
        object.__setattr__(self, "temperature", float(self.temperature))
        object.__setattr__(self, "top_p", float(self.top_p))
        if self.n > 1 and self.greedy:  # allowed, but pointless
            log.warning(
                "sampling: n=%d with temperature 0 gives %d identical samples", self.n, self.n
            )

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def resolve_sampling(gen_cfg: Any, sampling: Sampling | Mapping[str, Any] | None) -> Sampling:
    """The `Sampling` a generation runs with. A `Sampling` is taken as is; a mapping (keys
    are `Sampling`'s fields; None means the default) or None takes `max_new_tokens` from
    `gen_cfg.max_new_tokens` unless it names its own. Both engines call this, so both
    honour the same fields the same way."""
    if isinstance(sampling, Sampling):
        return sampling
    given = {k: v for k, v in dict(sampling or {}).items() if v is not None}
    unknown = set(given) - {f.name for f in fields(Sampling)}
    if unknown:
        known = sorted(f.name for f in fields(Sampling))
        raise UserError(f"sampling: unknown key(s) {sorted(map(str, unknown))}; use {known}")
    return Sampling(**{"max_new_tokens": gen_cfg.max_new_tokens, **given})


def _check_int(name: str, value: Any, low: int, high: int | None) -> None:
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise UserError(f"sampling.{name} must be an integer {bound}, got {clip(value)}")


def _check_float(name: str, value: Any, ok: Any, bound: str) -> None:
    number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or not ok(value):
        raise UserError(f"sampling.{name} must be a number {bound}, got {clip(value)}")


def output_record(
    text: str, generated: int, prompt: int, cut: bool, token_logprobs: Any = None
) -> dict[str, Any]:
    """One generation's `OUTPUT_COLUMNS`. `cut`: stopped by max_new_tokens, not a stop
    token; `generated` counts a final stop token, as vLLM does. `token_logprobs`: the raw
    log-probability of each generated token (see `LOGPROB_DOC`); None: unknown."""
    return {
        "generated_text": text,
        "num_generated_tokens": int(generated),
        "num_input_tokens": int(prompt),
        "finish_reason": "length" if cut else "stop",
        "overlong": bool(cut),
        "mean_logprob": mean_logprob(token_logprobs),
    }


def mean_logprob(token_logprobs: Any) -> float | None:
    """The mean of per-token log-probabilities; None when there are none (or any is not a
    finite number: a -inf would make every mean it enters meaningless)."""
    if token_logprobs is None:
        return None
    values = [float(v) for v in token_logprobs]
    if not values or not all(math.isfinite(v) for v in values):
        return None
    return min(0.0, math.fsum(values) / len(values))  # rounding must not make it positive


def merge_eos_ids(generation_eos: int | list[int] | None, tokenizer_eos: int | None) -> list[int]:
    """Stop ids as both engines use them: generation_config's, plus the tokenizer's."""
    ids = [generation_eos] if isinstance(generation_eos, int) else list(generation_eos or [])
    if tokenizer_eos is not None and tokenizer_eos not in ids:
        ids.append(tokenizer_eos)
    return ids


def audit_rows(
    sent: pd.DataFrame, got: pd.DataFrame, keys: list[str] | None = None
) -> pd.DataFrame:
    """Every row sent comes back exactly once (a lost or doubled block after an actor
    restart would otherwise skew every metric silently). Both engines check this."""
    if keys is None:
        keys = [c for c in ("id", "adapter", "sample") if c in sent.columns]
    if len(got) != len(sent) or (keys and not _counts(got, keys).equals(_counts(sent, keys))):
        raise RuntimeError(
            f"generation returned {len(got)} rows for {len(sent)} sent (by {keys}); "
            "refusing to score a partial or duplicated pass"
        )
    return got


def _counts(frame: pd.DataFrame, keys: list[str]) -> pd.Series:
    # None and NaN (a None that went through Arrow) are the same missing key
    part = frame[keys].astype(object)
    return part.where(part.notna(), "").astype(str).value_counts().sort_index()


def canary_failure(e: BaseException) -> AdapterIgnoredError | None:
    """An engine actor's canary failure arrives wrapped by Ray: the one-line error inside."""
    cause = _find(e, AdapterIgnoredError)
    if cause is not None:
        return AdapterIgnoredError(str(cause).strip().splitlines()[-1])
    # an actor that died in its constructor carries the error only as text
    found = re.search(r"AdapterIgnoredError: (.+)", str(e))
    return AdapterIgnoredError(found.group(1).strip()) if found else None


def _find(exc: BaseException | None, kind: type) -> BaseException | None:
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kind):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def collect(ds: Any, total: int, desc: str = "generating") -> pd.DataFrame:
    """A Ray Data pipeline's rows as one frame (what `Dataset.to_pandas` gives), read block
    by block so a bar counts the rows as they arrive, with an ETA (`raysys.console`)."""
    import pandas as pd

    from raysys.console import Progress

    frames = []
    with Progress(desc, total=total, unit="rows") as bar:
        for batch in ds.iter_batches(batch_size=None, batch_format="pandas"):
            frames.append(batch)
            bar.update(len(batch))
    return pd.concat(frames, ignore_index=True) if frames else ds.to_pandas()
