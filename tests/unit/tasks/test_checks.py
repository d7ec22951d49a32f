"""`raysys.tasks.checks`: what a config cannot check alone. Every task a job names must
exist; trained tasks need a train split; voted tasks a label set; the error names the
field (and the file)."""

from __future__ import annotations

import pytest
import yaml

from raysys.config import EvalConfig, PipelineConfig, SweepConfig, SynthConfig, TrainConfig
from raysys.errors import ConfigError
from raysys.tasks.checks import check_tasks, load


@pytest.mark.parametrize(
    "cls, overrides, expected",
    [
        (EvalConfig, ["eval.tasks=[news_sentiment,nope]"], "eval.tasks: unknown task 'nope'"),
        (
            SynthConfig,
            ["synth.task=fin_ner"],
            "synth.task: fin_ner is not a classification task (it is ner)",
        ),
        (SweepConfig, ["sweep.tasks=[nope]"], "sweep.tasks: unknown task 'nope'"),
        (SweepConfig, ["sweep.eval_tasks=[fomc_stance,nope]"], "sweep.eval_tasks: unknown task"),
        (
            PipelineConfig,
            ["pipeline.tasks=[fomc_stance]"],
            "pipeline.tasks: fomc_stance has no training data; move it to pipeline.synth_tasks",
        ),
        (
            PipelineConfig,
            ["pipeline.synth_tasks=[numeric_qa]"],
            "pipeline.synth_tasks: numeric_qa is not a classification task (it is numeric)",
        ),
        (
            PipelineConfig,
            ["pipeline.eval_tasks=[nope]"],
            "pipeline.eval_tasks: unknown task 'nope'",
        ),
    ],
)
def test_a_task_that_cannot_do_its_part_is_refused_by_field(cls, overrides, expected):
    with pytest.raises(ConfigError) as e:
        load(cls, None, overrides)
    assert str(e.value).startswith(expected) and "\n" not in str(e.value)


def test_the_file_is_named_in_front(tmp_path):
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump({"eval": {"tasks": ["nope"]}}))
    with pytest.raises(ConfigError, match=rf"^{path}: eval.tasks: unknown task 'nope'"):
        load(EvalConfig, path)


def test_valid_configs_load_and_test_only_tasks_may_be_evaluated_or_voted():
    cfg = load(EvalConfig, None, ["eval.tasks=[fomc_stance,fin_ner]"])
    assert cfg.eval.tasks == ["fomc_stance", "fin_ner"]
    assert load(SynthConfig, None, ["synth.task=fomc_stance"]).synth.task == "fomc_stance"
    assert load(PipelineConfig, None).pipeline.synth_tasks == ["fomc_stance"]


def test_a_train_config_names_no_task_to_check():
    cfg = TrainConfig.model_validate({"data": {"path": "x.parquet"}})
    check_tasks(cfg)  # nothing to look up


def test_a_task_yaml_named_by_path_is_read_and_checked(tmp_path, csv_task):
    task_file = csv_task("my_tone", {"test": 9})  # a test-only YAML task
    cfg = load(EvalConfig, None, [f"eval.tasks=[{task_file}]"])
    assert cfg.eval.tasks == [str(task_file)]
    with pytest.raises(ConfigError, match=r"pipeline.tasks: .*my_tone.yaml has no training data"):
        load(PipelineConfig, None, [f"pipeline.tasks=[{task_file}]"])
