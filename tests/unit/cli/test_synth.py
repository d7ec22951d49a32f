"""`raysys synth`: its arguments; bad input refused with exit 2 before any engine starts."""

from __future__ import annotations

import pytest

from raysys.cli import main
from tests.unit.cli._parsers import subparser


def test_synth_takes_a_config_and_overrides():
    args = subparser("synth").parse_args(["configs/synth.yaml", "synth.samples=3"])
    assert (args.config, args.overrides) == ("configs/synth.yaml", ["synth.samples=3"])
    assert args.func.__module__ == "raysys.cli.synth"


@pytest.mark.parametrize(
    "override, expected",
    [
        ("synth.samples=0", "synth.samples: Input should be greater than or equal to 1"),
        ("synth.task=nope", "synth.task: unknown task 'nope'"),
        ("synth.temperature=0", "synth.samples > 1 with synth.temperature=0"),
        ("synth.min_confidence={logprob: 1}", "synth.min_confidence.logprob: Input should be"),
    ],
)
def test_bad_synth_input_is_exit_2_and_nothing_written(tmp_path, capsys, override, expected):
    assert main(["synth", f"run.storage_path={tmp_path}", override]) == 2
    assert expected in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
