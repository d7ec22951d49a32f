"""The engine contract (`engines/base.py`) and the vLLM-vs-PEFT parity check
(`engines/parity.py`), without an engine: schema, audit, records, canary, agreement."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from raysys.config import GenerateSection
from raysys.engines import base
from raysys.engines.base import Sampling, audit_rows, resolve_sampling
from raysys.engines.parity import ParityReport, agreement
from raysys.errors import AdapterIgnoredError, UserError

# ------------------------------------------------------------------------------ Sampling


def test_sampling_defaults_are_greedy_one_output_unseeded():
    s = Sampling(max_new_tokens=8)
    assert (s.temperature, s.top_p, s.top_k, s.n, s.seed) == (0.0, 1.0, None, 1, None)
    assert s.greedy and not Sampling(max_new_tokens=8, temperature=0.7).greedy
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.n = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    "field, value",
    [
        ("max_new_tokens", 0),
        ("max_new_tokens", 8193),
        ("max_new_tokens", 2.5),
        ("max_new_tokens", "8"),
        ("n", 0),
        ("n", True),
        ("temperature", -0.1),
        ("temperature", float("nan")),
        ("temperature", float("inf")),
        ("temperature", "hot"),
        ("top_p", 0.0),
        ("top_p", 1.5),
        ("top_k", 0),
        ("seed", -1),
        ("seed", 2**32),
    ],
)
def test_sampling_refuses_a_bad_field_by_name(field, value):
    kwargs = {"max_new_tokens": 8, field: value}
    with pytest.raises(UserError, match=rf"sampling\.{field} must be"):
        Sampling(**kwargs)


def test_sampling_takes_numpy_and_integral_numbers_as_plain_ones():
    s = Sampling(max_new_tokens=np.int64(8), temperature=1, top_p=np.float32(0.5), seed=np.int32(3))
    assert (type(s.max_new_tokens), type(s.temperature), type(s.seed)) == (int, float, int)
    assert (s.max_new_tokens, s.temperature, s.top_p, s.seed) == (8, 1.0, 0.5, 3)


def test_sampling_warns_when_n_samples_are_all_greedy(caplog):
    with caplog.at_level("WARNING"):
        Sampling(max_new_tokens=8, n=3)
    assert "n=3 with temperature 0 gives 3 identical samples" in caplog.text


def test_max_new_tokens_comes_from_the_config_unless_sampling_names_it():
    gen = GenerateSection(max_new_tokens=12)
    assert resolve_sampling(gen, None) == Sampling(max_new_tokens=12)
    got = resolve_sampling(gen, {"n": 2, "temperature": 0.5, "seed": 1})
    assert got == Sampling(max_new_tokens=12, n=2, temperature=0.5, seed=1)
    assert resolve_sampling(gen, {"max_new_tokens": 3}).max_new_tokens == 3
    assert resolve_sampling(gen, {"temperature": None}).temperature == 0.0  # None: default
    own = Sampling(max_new_tokens=5, top_k=40)
    assert resolve_sampling(gen, own) is own  # a Sampling is already decided
    with pytest.raises(UserError, match=r"unknown key\(s\) \['temp'\]"):
        resolve_sampling(gen, {"temp": 1.0})
    with pytest.raises(UserError, match=r"sampling\.n must be"):
        resolve_sampling(gen, {"n": 0, "temperature": 1.0})


# ---------------------------------------------------------------------- output contract


def test_output_record_has_the_output_columns():
    rec = base.output_record("Answer: up", 4, 30, cut=False)
    assert list(rec) == base.OUTPUT_COLUMNS
    assert (rec["finish_reason"], rec["overlong"]) == ("stop", False)
    assert rec["mean_logprob"] is None  # no logprobs given: unknown
    scored = base.output_record("Answer: up", 4, 30, cut=False, token_logprobs=[-1.0, -0.5])
    assert scored["mean_logprob"] == -0.75
    assert base.mean_logprob([]) is None and base.mean_logprob([-1.0, float("nan")]) is None
    assert base.mean_logprob(np.array([-0.0, -0.0])) == 0.0
    cut = base.output_record("Answer: u", np.int64(8), np.int64(30), cut=True)
    assert (cut["finish_reason"], cut["overlong"], type(cut["num_generated_tokens"])) == (
        "length",
        True,
        int,
    )


def test_eos_ids_merge_the_generation_config_and_the_tokenizer():
    assert base.merge_eos_ids(2, 2) == [2]
    assert base.merge_eos_ids([2, 7], 9) == [2, 7, 9]
    assert base.merge_eos_ids(None, 0) == [0]
    assert base.merge_eos_ids(None, None) == []


def test_a_partial_or_doubled_pass_is_refused():
    sent = pd.DataFrame({"id": ["a", "b", "c"], "adapter": ["", "", ""]})
    assert audit_rows(sent, sent.iloc[::-1]) is not None  # order does not matter
    with pytest.raises(RuntimeError, match="returned 2 rows for 3 sent"):
        audit_rows(sent, sent.iloc[:2])
    doubled = pd.concat([sent.iloc[:2], sent.iloc[:1]])  # 3 rows, "c" lost, "a" twice
    with pytest.raises(RuntimeError, match="returned 3 rows for 3 sent"):
        audit_rows(sent, doubled)
    # a base row's adapter may come back as NaN after Arrow: still the same row
    nan_base = pd.DataFrame({"id": ["a", "b"], "adapter": [None, "x"]})
    assert audit_rows(nan_base, nan_base.assign(adapter=[float("nan"), "x"])) is not None
    # samples are rows of their own: one sample doubled, another lost
    samples = pd.DataFrame({"id": ["a", "a", "b", "b"], "sample": [0, 1, 0, 1]})
    with pytest.raises(RuntimeError, match=r"by \['id', 'sample'\]"):
        audit_rows(samples, samples.iloc[[0, 0, 2, 3]])
    # the vllm engine keys by (row, sample): 2 rows x 2 samples, one sample lost
    work = pd.DataFrame({"_row": [0, 0, 1, 1], "_sample": [0, 1, 0, 1]})
    with pytest.raises(RuntimeError, match=r"by \['_row', '_sample'\]"):
        audit_rows(work, work.iloc[[0, 1, 2, 2]], keys=["_row", "_sample"])


def test_canary_failure_unwraps_what_ray_wraps():
    inner = AdapterIgnoredError("adapter 'zero' leaves the base model's logits unchanged")
    try:
        try:
            raise inner
        except AdapterIgnoredError as e:
            raise RuntimeError("ray: task failed\n  traceback ...") from e
    except RuntimeError as wrapped:
        got = base.canary_failure(wrapped)
    assert isinstance(got, AdapterIgnoredError) and str(got) == str(inner)
    # an actor that died in its constructor: only the text is left
    text = RuntimeError("ActorDiedError ... AdapterIgnoredError: adapter 'z' is not applied\n")
    assert str(base.canary_failure(text)) == "adapter 'z' is not applied"
    assert base.canary_failure(RuntimeError("out of memory")) is None


# ------------------------------------------------------------------------------ parity


def test_agreement_is_per_adapter():
    v = pd.DataFrame(
        {"id": [0, 1, 0, 1], "adapter": ["", "", "a", "a"], "generated_text": list("xyxz")}
    )
    h = v.assign(generated_text=list("xyqz"))
    got = agreement(v, h)
    assert got[""] == {"agreement": 1.0, "prefix_agreement": 1.0}
    assert got["a"] == {"agreement": 0.5, "prefix_agreement": 0.5, "changed_vs_base": 0.5}
    with pytest.raises(ValueError, match="same \\(id, adapter\\) rows"):
        agreement(v, h.iloc[:3])


def test_parity_report_names_each_failing_adapter():
    frame = pd.DataFrame()
    report = ParityReport(
        agreement={"": 1.0, "a": 0.5, "b": 1.0},
        prefix_agreement={"": 1.0, "a": 0.7, "b": 1.0},
        changed_vs_base={"a": 0.5, "b": 0.0},
        vllm=frame,
        hf=frame,
    )
    failures = report.failures()
    assert len(failures) == 2
    assert "adapter 'a': vLLM agrees with PEFT on 50% of probes (< 100%)" in failures
    assert "adapter 'b': vLLM outputs equal the base model's on every probe" in failures[1]
    assert len(report.failures(min_agreement=0.5)) == 1
