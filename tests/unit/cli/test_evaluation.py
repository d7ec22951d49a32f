"""`raysys eval`: its arguments; bad input refused with exit 2 before any engine starts."""

from __future__ import annotations

from raysys.cli import main
from tests.unit.cli._parsers import subparser


def test_eval_takes_a_config_and_overrides():
    args = subparser("eval").parse_args(["configs/eval.yaml", "eval.size=3"])
    assert (args.config, args.overrides) == ("configs/eval.yaml", ["eval.size=3"])
    assert args.func.__module__ == "raysys.cli.evaluation"
    assert "one row per (adapter, task)" in subparser("eval").description


def test_an_unknown_task_is_exit_2_and_nothing_written(tmp_path, capsys):
    code = main(["eval", f"run.storage_path={tmp_path}", "eval.tasks=[nope]"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("raysys: error: eval.tasks: unknown task 'nope'")
    assert list(tmp_path.iterdir()) == []


def test_a_bad_adapter_name_is_exit_2(tmp_path, capsys):
    code = main(["eval", f"run.storage_path={tmp_path}", "eval.adapters={base: /x}"])
    assert code == 2 and "adapter name 'base'" in capsys.readouterr().err
