"""`raysys.config.paths`: input paths a config names are made absolute against the YAML
file that names them (an override: the working directory); task names, generator names,
URIs, absolute paths and the run's storage path are left as they are."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from raysys.config import EvalConfig, TrainConfig, load_config
from raysys.config.paths import (
    PATH_FIELDS,
    cocktail_paths,
    file_path,
    resolve_paths,
    resolved,
    task_path,
)

BASE = Path("/base/cfg")


@pytest.mark.parametrize(
    "value, expected",
    [
        ("d.parquet", "/base/cfg/d.parquet"),
        ("sub/../d.parquet", "/base/cfg/d.parquet"),
        ("../data/d.parquet", "/base/data/d.parquet"),
        ("/abs/d.parquet", "/abs/d.parquet"),
        ("s3://bucket/d.parquet", "s3://bucket/d.parquet"),
        ("file:///abs/d.parquet", "file:///abs/d.parquet"),
        ("hf+https://x/y", "hf+https://x/y"),
        ("", ""),
        (None, None),
        (3, 3),
    ],
)
def test_file_path(value, expected):
    assert file_path(value, BASE) == expected


def test_file_path_expands_the_home_folder():
    assert file_path("~/d.parquet", BASE) == str(Path.home() / "d.parquet")


@pytest.mark.parametrize(
    "value, expected",
    [
        ("news_sentiment", "news_sentiment"),  # a registered name stays a name
        ("mine.yaml", "/base/cfg/mine.yaml"),
        ("tasks/mine.yml", "/base/cfg/tasks/mine.yml"),
        ("gs://b/mine.yaml", "gs://b/mine.yaml"),
        (None, None),
    ],
)
def test_task_path(value, expected):
    assert task_path(value, BASE) == expected


def test_cocktail_components_named_by_path_are_made_absolute():
    spec = {"name": "mix", "components": [{"task": "t.yaml", "weight": 2}, {"task": "fpb"}, "x"]}
    assert cocktail_paths(spec, BASE) == {
        "name": "mix",
        "components": [{"task": "/base/cfg/t.yaml", "weight": 2}, {"task": "fpb"}, "x"],
    }
    assert spec["components"][0]["task"] == "t.yaml"  # the input is not changed
    assert cocktail_paths("singletons", BASE) == "singletons"
    assert cocktail_paths({"components": "bad"}, BASE) == {"components": "bad"}


def test_resolve_paths_changes_every_path_field_and_nothing_else():
    data = {
        "task": {"name": "t.yaml"},
        "data": {"path": "d.parquet", "cocktail": "s3://b/c.yaml"},
        "eval": {"tasks": ["news_sentiment", "x/t.yml"], "adapters": {"a": "ad", "b": "/abs"}},
        "synth": {"task": "fomc_stance", "inputs": "in.parquet"},
        "sweep": {"cocktails": ["singletons", "c.yaml", {"components": [{"task": "t.yaml"}]}]},
        "pipeline": {"synth_tasks": ["fomc_stance", {"task": "my.yaml", "pool": "pool.csv"}]},
        "run": {"storage_path": "runs"},  # outputs: relative to where the command runs
        "model": {"source": "tiny-random"},
    }
    resolve_paths(data, BASE)
    assert data == {
        "task": {"name": "/base/cfg/t.yaml"},
        "data": {"path": "/base/cfg/d.parquet", "cocktail": "s3://b/c.yaml"},
        "eval": {
            "tasks": ["news_sentiment", "/base/cfg/x/t.yml"],
            "adapters": {"a": "/base/cfg/ad", "b": "/abs"},
        },
        "synth": {"task": "fomc_stance", "inputs": "/base/cfg/in.parquet"},
        "sweep": {
            "cocktails": [
                "singletons",
                "/base/cfg/c.yaml",
                {"components": [{"task": "/base/cfg/t.yaml"}]},
            ]
        },
        "pipeline": {
            "synth_tasks": [
                "fomc_stance",
                {"task": "/base/cfg/my.yaml", "pool": "/base/cfg/pool.csv"},
            ]
        },
        "run": {"storage_path": "runs"},
        "model": {"source": "tiny-random"},
    }


def test_resolved_takes_a_whole_section_or_one_field():
    assert resolved("eval", {"tasks": ["a.yaml"], "size": 3}, BASE) == {
        "tasks": ["/base/cfg/a.yaml"],
        "size": 3,
    }
    assert resolved("data.path", "d.parquet", BASE) == "/base/cfg/d.parquet"
    assert resolved("run.storage_path", "runs", BASE) == "runs"
    assert resolved("eval.tasks", "not-a-list.yaml", BASE) == "not-a-list.yaml"


def test_every_path_field_is_a_section_dot_field():
    assert all(k.count(".") == 1 for k in PATH_FIELDS)


def test_a_config_file_reads_its_paths_relative_to_itself(tmp_path, monkeypatch):
    folder, elsewhere = tmp_path / "configs", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    cfg_file = folder / "train.yaml"
    cfg_file.write_text(
        yaml.safe_dump({"data": {"path": "../data/rows.parquet"}, "run": {"storage_path": "out"}})
    )
    monkeypatch.chdir(elsewhere)
    cfg = load_config(TrainConfig, cfg_file)
    assert cfg.data.path == str(tmp_path / "data" / "rows.parquet")
    assert cfg.run.storage_path == "out"  # where outputs go: the working directory's


def test_an_override_reads_its_paths_relative_to_the_working_directory(tmp_path, monkeypatch):
    cfg_file = tmp_path / "configs" / "eval.yaml"
    cfg_file.parent.mkdir()
    cfg_file.write_text(yaml.safe_dump({"eval": {"adapters": {"a": "ad_in_file"}}}))
    monkeypatch.chdir(tmp_path)
    cfg = load_config(EvalConfig, cfg_file, ["eval.tasks=[news_sentiment,mine.yaml]"])
    assert cfg.eval.tasks == ["news_sentiment", str(tmp_path / "mine.yaml")]
    assert cfg.eval.adapters == {"a": str(tmp_path / "configs" / "ad_in_file")}
    cfg = load_config(EvalConfig, cfg_file, ["eval.adapters={b: s3://bucket/ad}"])
    assert cfg.eval.adapters == {"b": "s3://bucket/ad"}
