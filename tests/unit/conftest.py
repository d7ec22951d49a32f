"""Unit tests start no Ray: `no_ray` makes starting or attaching one fail the test (a
check that must refuse before Ray starts is a unit test, and Ray starting is its bug),
whatever Ray the rest of the session may already run."""

from __future__ import annotations

from typing import Any

import pytest


def _refuse(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("a unit test started or attached to Ray")


@pytest.fixture
def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    import raysys.runtime

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(raysys.runtime, "init_ray", _refuse)
    monkeypatch.setattr(ray, "init", _refuse)
