"""`raysys data mix`: its arguments, and the table of rows per task it prints."""

from __future__ import annotations

import pytest

from raysys.cli import main
from tests.fixtures import REPO
from tests.unit.cli._parsers import subparser

SPEC = str(REPO / "configs" / "cocktails" / "sentiment_mix.yaml")


def _mix_args(argv: list[str]):
    return subparser("data").parse_args(["mix", *argv])


def test_mix_defaults():
    args = _mix_args([SPEC])
    assert (args.spec, args.fraction, args.seed, args.storage, args.train_size) == (
        SPEC,
        1.0,
        0,
        "./runs",
        400,
    )


@pytest.mark.parametrize("flag", ["--fraction", "--seed", "--train-size"])
def test_mix_numbers_are_typed(flag, capsys):
    with pytest.raises(SystemExit) as e:
        _mix_args([SPEC, flag, "many"])
    assert e.value.code == 2 and f"argument {flag}: invalid" in capsys.readouterr().err


def test_mix_prints_rows_per_task_a_total_and_the_output(tmp_path, capsys):
    args = ["data", "mix", SPEC, "--storage", str(tmp_path), "--train-size", "40"]
    assert main(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["task", "rows"]
    rows = {ln.split()[0]: int(ln.split()[1]) for ln in lines[1:-2]}
    assert set(rows) == {"news_sentiment", "price_direction", "general_instruct", "arith_math"}
    assert lines[-2].split() == ["total", str(sum(rows.values()))]
    out = lines[-1].removeprefix("Outputs: ")
    assert out.startswith(str(tmp_path / "cocktails")) and out.endswith("/train.parquet")


def test_mix_of_a_missing_spec_is_exit_2(tmp_path, capsys):
    assert main(["data", "mix", str(tmp_path / "none.yaml"), "--storage", str(tmp_path)]) == 2
    assert "cocktail file: " in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_data_alone_prints_the_help(capsys):
    assert main(["data"]) == 2
    assert capsys.readouterr().out.startswith("usage: raysys")
