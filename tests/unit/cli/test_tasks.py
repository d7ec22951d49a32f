"""`raysys tasks list|show`: every registered task with its kind and splits; one task's
rows, labels, prompt and target."""

from __future__ import annotations

from raysys.cli import main
from raysys.cli.tasks import _labels
from raysys.tasks import REGULARISERS, get_task, task_names
from tests.unit.cli._parsers import subparser


def test_tasks_arguments():
    args = subparser("tasks").parse_args(["show", "fpb.yaml", "--seed", "3"])
    assert (args.name, args.seed) == ("fpb.yaml", 3)
    assert subparser("tasks").parse_args(["show", "x"]).seed == 0


def test_list_has_one_line_per_task(capsys):
    assert main(["tasks", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["task", "kind", "splits"]
    assert [ln.split()[0] for ln in lines[1:]] == task_names()
    for line in lines[1:]:
        name, kind, splits = line.split()[:3]
        task = get_task(name)
        assert kind == task.kind and splits == ",".join(task.splits)
        assert line.endswith("(regulariser)") == (name in REGULARISERS)
    assert "positive, negative, neutral" in next(
        ln for ln in lines if ln.startswith("news_sentiment ")
    )


def test_show_prints_sizes_labels_prompt_and_target(capsys):
    assert main(["tasks", "show", "news_sentiment"]) == 0
    out = capsys.readouterr().out
    task = get_task("news_sentiment")
    assert out.startswith(f"news_sentiment: {task.description}\n")
    assert "kind: classification   main metric: macro_f1" in out
    assert "labels: positive, negative, neutral" in out
    assert "  train: generated, 400 used" in out and "  test: generated, 120 used" in out
    assert "    used:   negative 40 (33%), neutral 40 (33%), positive 40 (33%)" in out
    assert "--- prompt (news_sentiment-train-000000) ---" in out
    assert out.rstrip().endswith("--- target ---\nAnswer: positive")


def test_show_of_an_unknown_task_is_exit_2(capsys):
    assert main(["tasks", "show", "nope"]) == 2
    assert capsys.readouterr().err.startswith("raysys: error: unknown task 'nope'; choose one of")


def test_labels_are_counts_with_shares():
    assert _labels({"a": 3, "b": 1}) == "a 3 (75%), b 1 (25%)"
    assert _labels({}) == ""
