"""Config loading, overrides and the one-line errors (exit code 2, nothing written)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from raysys.cli import main
from raysys.config import PipelineConfig, dump_config, load_config
from raysys.errors import ConfigError
from tests.fixtures import REPO


def _write(tmp_path: Path, data: dict | str) -> Path:
    p = tmp_path / "cfg.yaml"
    p.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return p


def test_the_quickstart_preset_is_the_embedded_model():
    from raysys.pipeline.presets import preset_path

    cfg = load_config(PipelineConfig, preset_path("embedded"))
    assert cfg.model.source == "smollm2-135m-instruct"


def test_study_defaults_for_training():
    from raysys.config import TrainSection

    t = TrainSection()
    assert (t.lora.r, t.lora.alpha, t.learning_rate, t.batch_size) == (128, 256, 5e-5, 64)
    assert t.grad_accum_steps == 8


def test_one_override_keeps_the_kinds_other_defaults(tmp_path):
    # The quickstart trains with batch 8; setting its lr must not reset batch to 64.
    cfg = load_config(PipelineConfig, None, ["train.learning_rate=1e-4"])
    assert cfg.train.batch_size == PipelineConfig().train.batch_size == 8
    cfg = load_config(PipelineConfig, _write(tmp_path, {"train": {"lora": {"r": 4}}}))
    assert cfg.train.learning_rate == PipelineConfig().train.learning_rate
    assert cfg.train.lora.alpha == 8  # alpha defaults to 2 x r, as in the study's settings


def test_dpo_gets_the_studys_dpo_defaults_and_sft_keeps_its_own():
    from raysys.config import TrainConfig

    dpo = load_config(TrainConfig, None, ["data.path=pairs.parquet", "train.method=dpo"])
    assert (dpo.train.lora.r, dpo.train.lora.alpha, dpo.train.dpo.beta) == (16, 32, 1.0)
    assert (dpo.train.learning_rate, dpo.train.batch_size) == (5e-5, 64)
    sft = load_config(TrainConfig, None, ["data.cocktail=c.yaml"])
    assert (sft.train.lora.r, sft.train.lora.alpha) == (128, 256)
    # the resolved config round-trips: a dumped DPO config reloads as the same config
    again = TrainConfig.model_validate(yaml.safe_load(dump_config(dpo)))
    assert again == dpo


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ([], "data: set exactly one of data.path"),
        (["data.path=a.parquet", "data.cocktail=c.yaml"], "data: set exactly one"),
        (["data.cocktail=c.yaml", "train.method=dpo"], "data.path: DPO trains on"),
        (["data.cocktail=c.yaml", "train.method=ppo"], "train.method"),
        (["data.path=a.parquet", "train.num_workers=3"], "not a multiple"),
        (["data.path=a.parquet", "train.method=dpo", "train.packing=true"], "sft only"),
        (["data.path=a.parquet", "train.packing=true"], "needs model.attn_implementation"),
    ],
)
def test_train_config_errors_name_the_field(overrides, expected):
    from raysys.config import TrainConfig

    with pytest.raises(ConfigError, match=expected):
        load_config(TrainConfig, None, overrides)


def test_overrides_are_typed_and_nested(tmp_path):
    cfg = load_config(
        PipelineConfig,
        _write(tmp_path, {"train": {"epochs": 2}}),
        ["train.learning_rate=1e-4", "train.lora.r=8", "train.use_gpu=true", "run.name=abc"],
    )
    assert cfg.train.learning_rate == 1e-4 and cfg.train.lora.r == 8
    assert cfg.train.use_gpu is True and cfg.train.epochs == 2 and cfg.run.name == "abc"


@pytest.mark.parametrize(
    "data, overrides, expected",
    [
        (
            {"train": {"lr": 1e-4}},
            [],
            "train.lr: unknown key; allowed keys here: method, learning_rate",
        ),
        ({}, ["train.learning_rate=-1"], "train.learning_rate: Input should be greater than 0"),
        ({}, ["train.num_workers=two"], "train.num_workers: Input should be a valid integer"),
        (
            {},
            ["model.dtype=fp8"],
            "model.dtype: Input should be 'auto', 'float32', 'bfloat16' or 'float16'",
        ),
        (
            {},
            ["pipeline.tasks=[nope]"],
            "pipeline.tasks: unknown task 'nope'; choose one of arith_math,",
        ),
        ({}, ["pipeline.tasks=[fomc_stance]"], "pipeline.tasks: fomc_stance has no training data"),
        ({}, ["train.batch_size=12"], "batch_size 12 is not a multiple of per_device_batch_size"),
        ({"bogus": 1}, [], "bogus: unknown key; allowed keys here: run, ray, model"),
    ],
)
def test_errors_name_the_field(tmp_path, data, overrides, expected):
    from raysys.tasks.checks import load  # the config's own checks, then the tasks it names

    with pytest.raises(ConfigError) as e:
        load(PipelineConfig, _write(tmp_path, data), overrides)
    assert expected in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(PipelineConfig, tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="line 3: mapping values are not allowed"):
        load_config(PipelineConfig, _write(tmp_path, "train:\n  lr: 1\n   x: [\n"))
    with pytest.raises(ConfigError, match="must look like section.key=value"):
        load_config(PipelineConfig, None, ["learning_rate"])


@pytest.mark.parametrize(
    "args",
    [
        ["train.learning_rate=-1"],
        ["train.bogus=1"],
        ["train.epochs=many"],
        ["model.source=no-such-model"],
    ],
)
def test_quickstart_bad_input_exits_2_and_writes_nothing(storage, capsys, args):
    rc = main(["quickstart", f"run.storage_path={storage}", *args])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith("raysys: error: ") and len(err.splitlines()) == 1
    assert list(storage.iterdir()) == []


def test_quickstart_missing_config_file(storage, capsys):
    assert main(["quickstart", "--config", str(storage / "nope.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err
    assert list(storage.iterdir()) == []


def test_validate_console_script(tmp_path):
    good = subprocess.run(
        [sys.executable, "-m", "raysys.cli", "validate", str(REPO / "configs" / "pipeline.yaml")],
        capture_output=True,
        text=True,
    )
    assert good.returncode == 0, good.stderr
    assert "valid quickstart config" in good.stdout  # --kind quickstart: a pipeline config
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "raysys.cli",
            "validate",
            str(_write(tmp_path, {"train": {"learning_rate": -1}})),
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "train.learning_rate" in bad.stderr


def _kind_of(path: Path) -> str:
    return next(
        k
        for k in ("quickstart", "train", "eval", "synth", "sweep", "pipeline")
        if path.stem.startswith(k)
    )


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_is_valid_and_says_what_it_runs(path):
    from raysys.config import CONFIG_KINDS

    assert path.read_text().startswith("#"), f"{path.name} must open with a comment"
    # train_dpo.yaml asks for its pairs on the command line, as its header says
    needs = ["data.path=pairs.parquet"] if path.stem == "train_dpo" else []
    load_config(CONFIG_KINDS[_kind_of(path)], path, needs)


@pytest.mark.parametrize(
    "path", sorted((REPO / "configs" / "cocktails").glob("*.yaml")), ids=lambda p: p.name
)
def test_every_shipped_cocktail_is_valid(path):
    from raysys.data.cocktail import parse_spec

    assert path.read_text().startswith("#")
    parse_spec(yaml.safe_load(path.read_text()))
