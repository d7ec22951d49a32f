"""The `vllm` engine's own logic (`raysys.engines.vllm`) without vLLM or Ray running: the
sampling parameters, the work frame Ray's vLLM stage reads (reserved columns, unknown
adapters, samples and their seeds, each row's model), what base rows are served by,
the prompt encoder (the `hf` engine's rendering) and the post-processing of outputs.
Generation itself: tests/integration/test_engine_vllm.py (needs vLLM)."""

from __future__ import annotations

import pandas as pd
import pytest

from raysys.engines.base import BASE, OUTPUT_COLUMNS, Sampling
from raysys.engines.vllm import (
    PromptEncoder,
    _base_source,
    _postprocess,
    _work_frame,
    sampling_params,
    stop_token_ids,
)
from raysys.engines.vllm_config import (
    AUX_CPUS,
    NULL_PREFIX,
    ResourcePlan,
    null_adapter,
    sampled_logprobs,
)
from raysys.errors import UserError

MSG = [{"role": "user", "content": "Shares rose."}]
CPU = ResourcePlan("cpu", 1.0, 0, 1, AUX_CPUS)
GPU = ResourcePlan("gpu", 1.0, 1, 1, AUX_CPUS)


def test_sampling_params_leave_defaults_out():
    assert sampling_params(Sampling(max_new_tokens=8), [2]) == {
        "max_tokens": 8,
        "temperature": 0.0,
        "stop_token_ids": [2],
        "logprobs": 0,
    }
    s = Sampling(max_new_tokens=4, temperature=0.7, top_p=0.9, top_k=20, n=3, seed=1)
    assert sampling_params(s, [2, 7]) == {
        "max_tokens": 4,
        "temperature": 0.7,
        "stop_token_ids": [2, 7],
        "logprobs": 0,
        "top_p": 0.9,
        "top_k": 20,
    }


def test_each_row_and_sample_gets_its_model_and_seed():
    rows = [
        {"id": "a", "messages": MSG, "adapter": None},
        {"id": "b", "messages": MSG, "adapter": "sft"},
    ]
    s = Sampling(max_new_tokens=4, temperature=1.0, n=2, seed=5)
    df = _work_frame(rows, {"sft": "/ad/sft"}, {"max_tokens": 4}, s, "/base")
    assert df["id"].tolist() == ["a", "a", "b", "b"]
    assert df["adapter"].tolist() == [BASE, BASE, "sft", "sft"]
    assert df["model"].tolist() == ["/base", "/base", "/ad/sft", "/ad/sft"]
    assert df["_row"].tolist() == [0, 0, 1, 1] and df["_sample"].tolist() == [0, 1, 0, 1]
    seeds = [p["seed"] for p in df["sampling_params"]]
    assert seeds[0] == 5 * 1_000_003 % 2**31 and len(set(seeds)) == 4
    assert all(p["max_tokens"] == 4 for p in df["sampling_params"])
    unseeded = _work_frame(rows, {"sft": "/ad/sft"}, {"max_tokens": 4}, Sampling(4), "/base")
    assert len(unseeded) == 2 and "seed" not in unseeded["sampling_params"][0]


@pytest.mark.parametrize("column", ["prompt", "params", "model", "generated_text"])
def test_reserved_columns_are_refused(column):
    with pytest.raises(UserError, match=rf"reserved column name\(s\) \['{column}'\]"):
        _work_frame([{"messages": MSG, column: "x"}], {}, {}, Sampling(4), "/b")


def test_rows_without_messages_or_with_an_unknown_adapter_are_refused():
    with pytest.raises(UserError, match=r"every row needs `messages`"):
        _work_frame([{"id": 1}], {}, {}, Sampling(4), "/b")
    with pytest.raises(UserError, match=r"rows ask for adapter\(s\) \['dpo'\]; loaded: \['sft'\]"):
        _work_frame([{"messages": MSG, "adapter": "dpo"}], {"sft": "/s"}, {}, Sampling(4), "/b")
    with pytest.raises(UserError, match=r"\['sample'\]"):  # n > 1 writes its own
        _work_frame([{"messages": MSG, "sample": 0}], {}, {}, Sampling(4, 1.0, n=2), "/b")


def test_base_rows_beside_adapter_rows_on_cpu_get_a_zero_lora(tmp_path, monkeypatch):
    import json

    import torch
    from safetensors.torch import save_file

    monkeypatch.setenv("RAYSYS_CACHE", str(tmp_path / "cache"))
    (tmp_path / "sft").mkdir()
    (tmp_path / "sft" / "adapter_config.json").write_text(json.dumps({"r": 2}))
    save_file(
        {"w.lora_A.weight": torch.ones(2, 4)}, str(tmp_path / "sft" / "adapter_model.safetensors")
    )
    adapters = {"sft": str(tmp_path / "sft")}
    mixed = [{"messages": MSG}, {"messages": MSG, "adapter": "sft"}]
    zero = _base_source(mixed, "/base", adapters, CPU)
    # named by its template: each engine replica builds it on its own node (vllm_udf)
    assert zero == NULL_PREFIX + str(tmp_path / "sft")
    assert null_adapter(zero[len(NULL_PREFIX) :]).startswith(str(tmp_path / "cache" / "null-lora"))
    assert _base_source(mixed, "/base", adapters, GPU) == "/base"
    assert _base_source([{"messages": MSG}], "/base", adapters, CPU) == "/base"  # base only
    assert _base_source([{"messages": MSG, "adapter": "sft"}], "/base", adapters, CPU) == "/base"


def test_stop_ids_and_prompts_match_the_hf_engine(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    assert stop_token_ids(tiny_model) == [tok.eos_token_id]
    batch = pd.DataFrame({"messages": [MSG, [*MSG, {"role": "assistant", "content": "ok"}]]})
    out = PromptEncoder(tiny_model)(batch.copy())
    for msgs, ids in zip(batch["messages"], out["tokenized_prompt"], strict=True):
        text = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        assert list(ids) == tok(text, add_special_tokens=False)["input_ids"]
        assert ids[0] == tok.convert_tokens_to_ids("<|im_start|>")  # no BOS added on top


def test_outputs_say_whether_they_stopped_or_were_cut():
    row = {
        "id": "a",
        "_row": 0,
        "generated_tokens": [5, 6, 2],
        "generated_text": "Answer",
        "num_generated_tokens": 3,
        "num_input_tokens": 9,
        "model": "/m",
    }
    out = _postprocess(row, ["id", "_row"], stop_ids=[2], max_tokens=3)
    assert set(out) == {"id", "_row", *OUTPUT_COLUMNS}
    assert (out["finish_reason"], out["overlong"], out["num_input_tokens"]) == ("stop", False, 9)
    cut = _postprocess({**row, "generated_tokens": [5, 6, 7]}, ["id"], [2], 3)
    assert (cut["finish_reason"], cut["overlong"]) == ("length", True)
    short = _postprocess({**row, "generated_tokens": [5]}, ["id"], [2], 3)
    assert short["finish_reason"] == "stop"  # ended early without reaching the limit
    assert out["mean_logprob"] is None  # vLLM returned no logprobs: unknown
    scored = _postprocess({**row, "logprobs": [-0.5, -1.0, -3.0]}, ["id"], [2], 3)
    assert scored["mean_logprob"] == pytest.approx(-1.5)


def test_the_sampled_tokens_logprobs_are_read_from_vllms_dicts():
    # what Ray's stage returns for logprobs=0: one {token_id: info} per generated token
    steps = [{5: {"logprob": -0.25, "rank": 1}}, {6: {"logprob": -2.0, "rank": 3}}]
    assert sampled_logprobs([5, 6], steps) == [-0.25, -2.0]
    # with alternatives asked for, the sampled token's entry, not the first
    wide = [{9: {"logprob": -0.1}, 5: {"logprob": -0.7}}, {6: {"logprob": -2.0}}]
    assert sampled_logprobs([5, 6], wide) == [-0.7, -2.0]
    assert sampled_logprobs([5, 6], None) is None
    assert sampled_logprobs([5, 6], steps[:1]) is None  # not one per token: unknown
