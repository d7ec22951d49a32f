"""Config loading, overrides and the one-line errors (exit code 2, nothing written)."""

from __future__ import annotations

import re
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
    if path.stem.startswith("search"):
        return "sweep"  # `raysys search` reads a sweep config with a search section
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


# --------------------------------------------------------------------------- hostile YAML


@pytest.mark.parametrize(
    "text, expected",
    [
        ("train: &a {epochs: 2}\nsft: *a\n", "line 1: YAML anchors (&a) are not accepted"),
        ("run: {name: *x}\n", "line 1: YAML aliases (*x) are not accepted"),
        ("x: " + "[" * 70 + "]" * 70, "line 1: nested more than 64 levels deep; flatten it"),
        (
            "train:\n  epochs: 1\n  epochs: 2\n",
            "line 3: key 'epochs' is given twice (also on line 2)",
        ),
        ("- 1\n- 2\n", ": top level must be a mapping of sections, got list"),
        ("train: [\n", "line 2: "),
    ],
)
def test_yaml_the_loader_refuses(tmp_path, text, expected):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(PipelineConfig, path)
    assert str(e.value).startswith(f"{path}") and expected in str(e.value)
    assert "\n" not in str(e.value)


def test_an_empty_or_comment_only_file_is_the_kinds_defaults(tmp_path):
    default = load_config(PipelineConfig, None)
    assert load_config(PipelineConfig, _write(tmp_path, "")) == default
    assert load_config(PipelineConfig, _write(tmp_path, "# nothing yet\n")) == default


def test_a_file_over_1_mib_or_not_utf8_is_refused(tmp_path):
    big = _write(tmp_path, "run:\n  name: " + "a" * (2**20))
    with pytest.raises(ConfigError, match=r"bytes; a YAML config is at most 1 MiB$"):
        load_config(PipelineConfig, big)
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("run:\n  name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 0xe9 at offset 16\)"):
        load_config(PipelineConfig, latin1)


def test_load_yaml_text_bounds_the_text_itself():
    from raysys.config import YamlShapeError, load_yaml_text
    from raysys.config.loader import MAX_YAML_BYTES

    assert load_yaml_text("a: [1, {b: c}]") == {"a": [1, {"b": "c"}]}
    with pytest.raises(YamlShapeError, match="over the 1,048,576 a config may hold"):
        load_yaml_text("a" * (MAX_YAML_BYTES + 1))


def test_yaml_tags_build_no_python_objects(tmp_path):
    path = _write(tmp_path, "run: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match="could not determine a constructor"):
        load_config(PipelineConfig, path)


# --------------------------------------------------------------------------- overrides


def test_override_values_are_yaml_typed():
    cfg = load_config(
        PipelineConfig,
        None,
        [
            "train.epochs=2",
            "train.use_gpu=yes",
            "run.name='007'",
            "pipeline.tasks=[news_sentiment]",
        ],
    )
    assert cfg.train.epochs == 2 and cfg.train.use_gpu is True
    assert cfg.run.name == "007"  # quoted: YAML would read 007 as the number 7
    assert cfg.pipeline.tasks == ["news_sentiment"]


@pytest.mark.parametrize(
    "override, expected",
    [
        ("train.epochs=", "train.epochs: Input should be a valid number (got None)"),
        ("train.epochs=[1", "train.epochs: Input should be a valid number, unable to parse"),
        ("train.epochs=*a", "override train.epochs: YAML aliases (*a) are not accepted"),
        ("train..epochs=1", "override 'train..epochs=1' must look like section.key=value"),
        ("1train.epochs=1", "must look like section.key=value"),
        ("=1", "must look like section.key=value"),
    ],
)
def test_bad_overrides_are_one_line(override, expected):
    with pytest.raises(ConfigError) as e:
        load_config(PipelineConfig, None, [override])
    assert expected in str(e.value) and "\n" not in str(e.value)


def test_an_override_below_a_value_is_refused():
    with pytest.raises(ConfigError, match=r"override 'run\.name\.x=2': name is a value, not a"):
        load_config(PipelineConfig, None, ["run.name=a", "run.name.x=2"])


def test_later_overrides_win_and_keep_the_files_other_fields(tmp_path):
    path = _write(tmp_path, {"train": {"epochs": 3, "learning_rate": 1e-3}})
    cfg = load_config(PipelineConfig, path, ["train.epochs=1", "train.epochs=2"])
    assert (cfg.train.epochs, cfg.train.learning_rate) == (2, 1e-3)


# --------------------------------------------------------------------------- the errors


def test_a_huge_value_is_quoted_in_a_clipped_form():
    with pytest.raises(ConfigError) as e:
        load_config(PipelineConfig, None, ["model.source=[" + "a," * 50_000 + "]"])
    msg = str(e.value)
    assert msg.startswith("model.source: Input should be a valid string (got ['a', 'a',")
    assert msg.endswith("…)") and len(msg) < 200


def test_every_error_of_a_config_is_in_the_one_line(tmp_path):
    path = _write(tmp_path, {"train": {"epochs": 0, "learning_rate": "fast"}})
    with pytest.raises(ConfigError) as e:
        load_config(PipelineConfig, path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg
    assert "train.learning_rate: Input should be a valid number" in msg and "train.epochs" in msg


def test_credentials_in_a_bad_value_are_redacted():
    with pytest.raises(ConfigError) as e:
        load_config(PipelineConfig, None, ["model.dtype=s3://AKIAX:SECRETX@b/x"])
    assert "(got 's3://***@b/x')" in str(e.value) and "SECRETX" not in str(e.value)


@pytest.mark.parametrize("where", ["file", "override"])
def test_an_integer_too_long_to_convert_is_one_line(tmp_path, where):
    digits = "9" * 5000
    path = _write(tmp_path, f"train:\n  epochs: {digits}\n") if where == "file" else None
    overrides = [f"train.epochs={digits}"] if where == "override" else []
    where_ = r"cfg.yaml line 2" if where == "file" else "override train.epochs"
    with pytest.raises(ConfigError, match=rf"{where_}: a number of 5,000 digits"):
        load_config(PipelineConfig, path, overrides)


# --------------------------------------------------------------------------- run ids


def test_a_run_id_is_fixed_once():
    from raysys.config import resolve_run_id, with_run_id

    given = load_config(PipelineConfig, None, ["run.run_id=r1"])
    assert resolve_run_id(given) == "r1" and with_run_id(given).run.run_id == "r1"
    unset = load_config(PipelineConfig, None)
    assert unset.run.run_id is None
    fixed = with_run_id(unset)
    assert re.fullmatch(r"\d{8}-\d{6}", fixed.run.run_id)
    assert resolve_run_id(fixed) == fixed.run.run_id and unset.run.run_id is None


def test_epochs_without_max_steps_drop_an_earlier_layers_max_steps(tmp_path):
    """The pipeline's default DPO stops at 8 steps; a file or an override that asks for
    epochs (and no step count) gets those epochs, not 8 steps silently."""

    def dpo(path, *overrides):
        d = load_config(PipelineConfig, path, list(overrides)).pipeline.dpo
        return d.epochs, d.max_steps

    assert dpo(None) == (1.0, 8)  # the kind's default
    assert dpo(None, "pipeline.dpo.epochs=2") == (2.0, None)
    assert dpo(None, "pipeline.dpo.epochs=2", "pipeline.dpo.max_steps=5") == (2.0, 5)
    f = tmp_path / "p.yaml"
    f.write_text("pipeline:\n  dpo:\n    epochs: 3\n")
    assert dpo(f) == (3.0, None)
    f.write_text("pipeline:\n  dpo:\n    epochs: 3\n    max_steps: 6\n")
    assert dpo(f) == (3.0, 6)
    assert dpo(f, "pipeline.dpo.epochs=4") == (4.0, None)  # the override's epochs win
    assert dpo(f, "pipeline.dpo.learning_rate=1e-4") == (3.0, 6)
