"""`raysys quickstart`: the presets, a config instead of a preset, bad input refused."""

from __future__ import annotations

import pytest

from raysys.cli import main
from tests.unit.cli._parsers import subparser


def test_quickstart_arguments():
    args = subparser("quickstart").parse_args([])
    assert (args.preset, args.config, args.resume, args.overrides) == ("embedded", None, False, [])
    args = subparser("quickstart").parse_args(["--preset", "full", "--resume", "run.run_id=a"])
    assert (args.preset, args.resume, args.overrides) == ("full", True, ["run.run_id=a"])


def test_an_unknown_preset_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["quickstart", "--preset", "huge"])
    assert e.value.code == 2
    assert "invalid choice: 'huge' (choose from" in capsys.readouterr().err


@pytest.mark.parametrize("preset, name", [("embedded", "embedded.yaml"), ("full", "full.yaml")])
def test_a_bad_override_names_the_preset_file(preset, name, tmp_path, capsys):
    code = main(
        ["quickstart", "--preset", preset, f"run.storage_path={tmp_path}", "train.epochs=0"]
    )
    err = capsys.readouterr().err
    assert code == 2 and f"{name}: train.epochs: Input should be greater than 0" in err
    assert list(tmp_path.iterdir()) == []


def test_config_replaces_the_preset(tmp_path, capsys):
    cfg = tmp_path / "mine.yaml"
    cfg.write_text("train:\n  epochs: -1\n")
    assert main(["quickstart", "--config", str(cfg)]) == 2
    assert f"{cfg}: train.epochs" in capsys.readouterr().err
