"""Shared fixtures: one real local Ray per test session, a private model cache."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# A private cache per session unless the caller points at one (CI may reuse the
# embedded model's conversion across runs with RAYSYS_TEST_CACHE).
_OWN_CACHE = not os.environ.get("RAYSYS_TEST_CACHE")
_CACHE = os.environ.get("RAYSYS_TEST_CACHE") or tempfile.mkdtemp(prefix="raysys-cache-")
os.environ["RAYSYS_CACHE"] = _CACHE
os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.pop("RAY_ADDRESS", None)  # never attach to a stranger's cluster
# The S3 tests talk to a local S3 server that takes any credentials; Ray's processes keep
# the environment Ray started with, so they are set before it starts. No test reaches AWS.
for _k, _v in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}.items():
    os.environ.setdefault(_k, _v)


def pytest_sessionfinish(session, exitstatus):
    """The session's own model cache (≈ 0.5 GB: the embedded model's conversion) goes with
    it: one left behind per run adds up on a machine that runs the suite often."""
    if _OWN_CACHE:
        shutil.rmtree(_CACHE, ignore_errors=True)


@pytest.fixture(autouse=True)
def _task_registry(monkeypatch):
    """Tasks a test registers (a task YAML it loads) are forgotten after it. The registry
    is process-wide, and building `tiny-random` reads every registered task, so a task
    left behind by one test can break another that runs later."""
    import raysys.tasks

    monkeypatch.setattr(raysys.tasks, "_REGISTRY", dict(raysys.tasks._REGISTRY))


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray with 2 logical CPUs, started once, in a private temp dir."""
    import ray

    from raysys.runtime import init_ray

    # Short path: Ray's unix sockets live under it and have a length limit.
    temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")
    init_ray(address="local", num_cpus=2, temp_dir=temp_dir)
    yield ray
    ray.shutdown()
    shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_model() -> str:
    from raysys.models import resolve_model

    return resolve_model("tiny-random")


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    d = tmp_path / "runs"
    d.mkdir()
    return d


@pytest.fixture
def csv_task(tmp_path: Path):
    """Factory: a task defined only in YAML over CSV files (news_sentiment rows, renamed
    columns), as a user would write one. Returns the YAML path."""

    def make(
        name: str, sizes: dict[str, int], prompt: str = "Tone?\n{input}\nEnd with 'Answer: <tone>'."
    ) -> Path:
        import pandas as pd
        import yaml

        from raysys.tasks import build_splits

        for split, rows in build_splits("news_sentiment", sizes, 3).items():
            pd.DataFrame(
                {"headline": [r["input"] for r in rows], "tone": [r["gold"] for r in rows]}
            ).to_csv(tmp_path / f"{split}.csv", index=False)
        task_file = tmp_path / f"{name}.yaml"
        task_file.write_text(
            yaml.safe_dump(
                {
                    "name": name,
                    "kind": "classification",
                    "labels": ["positive", "negative", "neutral"],
                    "prompt": prompt,
                    "source": {"format": "csv", "splits": {s: f"{s}.csv" for s in sizes}},
                    "columns": {"input": "headline", "gold": "tone"},
                }
            )
        )
        return task_file

    return make


@pytest.fixture(scope="session")
def tiny_vllm_model(tiny_model, tmp_path_factory) -> str:
    """The tiny Llama with head_dim 32: vLLM's CPU attention has no head_dim 16 kernel."""
    import torch
    from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM

    out = tmp_path_factory.mktemp("tiny-vllm")
    cfg = AutoConfig.from_pretrained(tiny_model)
    cfg.head_dim = 32
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(out)
    return str(out)
