"""`raysys.config.sections`, the sections every job shares: ranges and syntax checked
once, with messages that name the fix (no task registry at this layer)."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from raysys.config.sections import (
    MAX_ROWS,
    MAX_SEED,
    EvalSection,
    GenerateSection,
    ModelSection,
    RunSection,
    SynthSection,
    TaskSection,
    share_problem,
    storage_problem,
    unique_list,
)


def _error(cls, **fields) -> str:
    with pytest.raises(ValidationError) as e:
        cls(**fields)
    return str(e.value)


@pytest.mark.parametrize(
    "v, ok", [(0, True), (0.5, True), (0.999, True), (1, False), (-0.1, False)]
)
def test_share_problem(v, ok):
    assert (share_problem(v) is None) is ok
    if not ok:
        assert share_problem(v) == f"share must be in [0, 1), got {v}"


def test_storage_problem_is_the_location_rule():
    assert storage_problem("./runs") is None and storage_problem("s3://b/runs") is None
    assert storage_problem("ftp://h/x").startswith("unsupported scheme 'ftp://'")
    assert storage_problem("s3://K:S@b/x").startswith("credentials in the URI")


def test_sections_refuse_unknown_keys_and_non_finite_numbers():
    assert "Extra inputs are not permitted" in _error(TaskSection, nmae="x")
    assert "finite number" in _error(SynthSection, temperature=math.inf)
    assert "finite number" in _error(GenerateSection, num_cpus=math.nan)


@pytest.mark.parametrize("path, kept", [("file:///data/runs", "/data/runs"), ("FILE:///x", "/x")])
def test_a_file_uri_storage_path_is_the_local_path(path, kept):
    assert RunSection(storage_path=path).storage_path == kept


def test_run_section_refuses_what_cannot_be_a_folder_or_a_seed():
    assert "credentials in the URI" in _error(RunSection, storage_path="s3://K:S@b/x")
    assert "String should match pattern" in _error(RunSection, name="../up")
    assert "String should match pattern" in _error(RunSection, run_id="a b")
    assert RunSection(seed=MAX_SEED).seed == MAX_SEED
    assert "less than or equal to 4294967295" in _error(RunSection, seed=MAX_SEED + 1)
    assert RunSection().storage_path == "./runs" and RunSection().run_id is None


def test_task_sizes_are_bounded():
    assert TaskSection(train_size=MAX_ROWS).train_size == MAX_ROWS
    assert "less than or equal to 100000000" in _error(TaskSection, test_size=MAX_ROWS + 1)
    assert "greater than or equal to 1" in _error(TaskSection, validation_size=0)


def test_model_section_choices():
    assert ModelSection().source == "smollm2-135m-instruct"
    assert "'auto', 'float32', 'bfloat16' or 'float16'" in _error(ModelSection, dtype="fp8")
    assert "flash_attention_2" in _error(ModelSection, attn_implementation="flash")
    assert "at least 1 character" in _error(ModelSection, source="")


def test_generate_section_ranges():
    g = GenerateSection()
    assert (g.engine, g.max_new_tokens, g.concurrency, g.device) == ("auto", 24, 1, "auto")
    assert "less than or equal to 8192" in _error(GenerateSection, max_new_tokens=8193)
    assert "greater than or equal to 16" in _error(GenerateSection, max_model_len=8)
    assert "greater than 0" in _error(GenerateSection, kv_cache_gib=0)


def test_eval_section_tasks_once_and_adapter_names_peft_accepts():
    assert EvalSection().tasks == ["news_sentiment"]
    assert "tasks listed twice" in _error(EvalSection, tasks=["fpb", "fpb"])
    assert "at least 1 item" in _error(EvalSection, tasks=[])
    assert EvalSection(adapters={"sft-r1_b": "/a"}).adapters == {"sft-r1_b": "/a"}
    for name in ("a.b", "base", "-x", ""):
        assert f"adapter name {name!r}: use letters" in _error(EvalSection, adapters={name: "/a"})


def test_synth_section_refuses_several_greedy_samples():
    msg = _error(SynthSection, samples=3, temperature=0)
    assert "synth.samples > 1 with synth.temperature=0" in msg and "synth.samples=1" in msg
    assert SynthSection(samples=1, temperature=0).samples == 1
    assert "less than or equal to 1" in _error(SynthSection, min_agreement=1.5)
    assert "'cot' or 'answer'" in _error(SynthSection, assistant="both")


def test_unique_list():
    assert unique_list(None) is None
    assert unique_list(["a", "b"]) == ["a", "b"]
    with pytest.raises(ValueError, match=r"tasks listed twice in \['a', 'a'\]"):
        unique_list(["a", "a"])


@pytest.mark.parametrize(
    "override, expected",
    [
        ("{margin: 1.5}", "synth.min_confidence.margin: Input should be less than or equal to 1"),
        ("{margin: -0.1}", "synth.min_confidence.margin: Input should be greater than or equal"),
        ("{logprob: 0.5}", "synth.min_confidence.logprob: Input should be less than or equal to 0"),
        ("{}", "synth.min_confidence: give margin and/or logprob (e.g. {margin: 0.5})"),
        ("{agreement: 0.5}", "synth.min_confidence.agreement: unknown key; allowed keys"),
        ("{margin: .nan}", "synth.min_confidence.margin: Input should be a finite number"),
    ],
)
def test_min_confidence_errors_are_one_line_and_name_the_field(override, expected):
    from raysys.config import SynthConfig, load_config
    from raysys.errors import UserError

    with pytest.raises(UserError) as e:
        load_config(SynthConfig, None, [f"synth.min_confidence={override}"])
    assert expected in str(e.value) and "\n" not in str(e.value)


def test_min_confidence_takes_either_rule_or_both_and_defaults_to_none():
    assert SynthSection().min_confidence is None  # min_agreement alone, as before
    assert SynthSection(min_confidence={"margin": 0.5}).min_confidence.margin == 0.5
    both = SynthSection(min_confidence={"margin": 0, "logprob": -0.8}).min_confidence
    assert (both.margin, both.logprob) == (0, -0.8)


def test_cost_prices_are_named_non_negative_numbers():
    from raysys.config.sections import CostSection

    assert CostSection(prices={"CPU": 0.04, "H100": 3.5, "GPU": 0}).prices["H100"] == 3.5
    assert CostSection().prices == {}
    assert "price of H100: -1.0 must be a number >= 0 (USD per hour)" in _error(
        CostSection, prices={"H100": -1}
    )
    assert "valid number" in _error(CostSection, prices={"CPU": "cheap"})
    assert "name a resource, e.g. CPU, GPU, A100 or H100" in _error(CostSection, prices={"a b": 1})
    assert "finite number" in _error(CostSection, prices={"CPU": math.inf})
