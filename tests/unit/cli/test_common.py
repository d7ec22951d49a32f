"""`raysys.cli._common`: the config arguments every job command takes, loading them
(overrides alone, without a file), and how output paths are shown."""

from __future__ import annotations

import argparse

import pytest

from raysys.cli._common import config_args, load, where
from raysys.config import EvalConfig
from raysys.errors import ConfigError
from tests.fixtures import REPO


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    config_args(p, "configs/eval.yaml")
    return p.parse_args(argv)


def test_config_args_take_a_file_and_overrides():
    args = _parse(["cfg.yaml", "a.b=1", "c.d=x"])
    assert (args.config, args.overrides) == ("cfg.yaml", ["a.b=1", "c.d=x"])
    assert (_parse([]).config, _parse([]).overrides) == (None, [])


def test_load_reads_the_file_then_the_overrides():
    cfg = load(EvalConfig, _parse([str(REPO / "configs" / "eval.yaml"), "eval.size=5"]))
    assert isinstance(cfg, EvalConfig) and cfg.eval.size == 5


def test_an_override_in_the_config_place_is_an_override():
    cfg = load(EvalConfig, _parse(["eval.size=6", "eval.split=validation"]))
    assert (cfg.eval.size, cfg.eval.split) == (6, "validation")


def test_load_checks_the_tasks_the_config_names():
    with pytest.raises(ConfigError, match="eval.tasks: unknown task 'nope'"):
        load(EvalConfig, _parse(["eval.tasks=[nope]"]))


def test_a_local_output_is_shown_as_its_path(tmp_path):
    assert where(tmp_path / "eval") == str(tmp_path / "eval")
