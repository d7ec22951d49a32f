"""Model sources across processes and the embedded model: parallel resolution behind the
cache lock, and the embedded SmolLM2 converted once (slow)."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest

from raysys.models import resolve_model


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
