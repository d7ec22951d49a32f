"""`raysys train`: its arguments; bad input refused with exit 2 before Ray starts."""

from __future__ import annotations

import pytest

from raysys.cli import main
from tests.unit.cli._parsers import subparser


def test_train_takes_a_config_and_overrides():
    args = subparser("train").parse_args(["configs/train_sft.yaml", "train.epochs=2"])
    assert (args.config, args.overrides) == ("configs/train_sft.yaml", ["train.epochs=2"])
    assert args.func.__module__ == "raysys.cli.train"


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ([], "data: set exactly one of data.path (a parquet file) or data.cocktail"),
        (["data.path=x.parquet", "train.method=ppo"], "train.method: Input should be 'sft' or"),
        (["data.path=x.parquet", "train.batch_size=7"], "batch_size 7 is not a multiple"),
    ],
)
def test_bad_train_input_is_exit_2_and_nothing_written(tmp_path, capsys, overrides, expected):
    assert main(["train", f"run.storage_path={tmp_path}", *overrides]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []
