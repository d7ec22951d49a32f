"""The engines' face (`raysys.engines`): which engine `auto` means, what a local Ray could
never hold (refused before it starts), and sampling checked before any engine. No Ray is
started; engines running: tests/integration/test_engine_*.py."""

from __future__ import annotations

import pytest

from raysys.config.sections import GenerateSection, RaySection
from raysys.engines import ResourceBudgetError, check_fits, generate, resolve_engine
from raysys.errors import UserError


@pytest.fixture(autouse=True)
def _no_ray(no_ray):
    yield


def test_auto_is_hf_without_a_gpu_cluster():
    assert resolve_engine("auto") == "hf"  # no Ray up: no GPUs to use
    assert resolve_engine("hf") == "hf" and resolve_engine("vllm") == "vllm"


def test_a_local_ray_that_could_never_place_an_actor_is_refused():
    with pytest.raises(ResourceBudgetError, match=r"generate.num_cpus=3 per engine actor"):
        check_fits(GenerateSection(num_cpus=3.0), RaySection(num_cpus=2))
    check_fits(GenerateSection(concurrency=4, num_cpus=1.0), RaySection(num_cpus=2))  # shrunk
    check_fits(GenerateSection(num_cpus=0.5), RaySection(num_cpus=1))


def test_what_is_checked_elsewhere_is_not_checked_here(monkeypatch):
    import ray

    # before any Ray is up (a Ray the session may run would rightly be checked against)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    huge = GenerateSection(num_cpus=64.0)
    check_fits(huge)  # no Ray config: nothing to check against
    check_fits(huge, RaySection(address="auto", num_cpus=1))  # checked once attached
    check_fits(GenerateSection(engine="vllm", num_cpus=64.0), RaySection(num_cpus=1))  # GPU plan
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    check_fits(huge, RaySection(num_cpus=1))


def test_bad_sampling_is_refused_before_any_engine_starts():
    rows = [{"messages": [{"role": "user", "content": "x"}]}]
    with pytest.raises(UserError, match=r"sampling: unknown key\(s\) \['temp'\]"):
        generate(rows, "/no/model", None, GenerateSection(), "float32", sampling={"temp": 1.0})
    with pytest.raises(UserError, match=r"sampling.top_p must be a number in \(0, 1\]"):
        generate(rows, "/no/model", None, GenerateSection(), "float32", sampling={"top_p": 2})
