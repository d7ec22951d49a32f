"""`raysys validate`: a valid config printed back resolved (credentials redacted), a bad
kind or config refused with one line."""

from __future__ import annotations

import yaml

from raysys.cli import main
from raysys.config import EvalConfig
from tests.fixtures import REPO
from tests.unit.cli._parsers import subparser

EVAL = str(REPO / "configs" / "eval.yaml")


def test_validate_arguments():
    args = subparser("validate").parse_args(["c.yaml", "a.b=1", "--kind", "eval"])
    assert (args.config, args.overrides, args.kind) == ("c.yaml", ["a.b=1"], "eval")
    assert subparser("validate").parse_args(["c.yaml"]).kind == "quickstart"


def test_a_valid_config_is_printed_back_resolved(capsys):
    assert main(["validate", EVAL, "--kind", "eval", "eval.size=9"]) == 0
    first, rest = capsys.readouterr().out.split("\n", 1)
    assert first == f"{EVAL}: valid eval config"
    cfg = EvalConfig.model_validate(yaml.safe_load(rest))
    assert cfg.eval.size == 9 and cfg.run.name == "eval"


def test_credentials_in_a_value_are_redacted_in_the_dump(capsys):
    assert main(["validate", EVAL, "--kind", "eval", "model.source=s3://AKIA:SECRET@b/m"]) == 0
    out = capsys.readouterr().out
    assert "source: s3://***@b/m" in out and "SECRET" not in out


def test_an_unknown_kind_names_the_kinds(capsys):
    assert main(["validate", EVAL, "--kind", "nope"]) == 2
    assert capsys.readouterr().err == (
        "raysys: error: --kind: unknown config kind 'nope'; choose one of quickstart, train, "
        "eval, synth, sweep, pipeline\n"
    )


def test_a_config_of_another_kind_is_refused_by_field(capsys):
    assert main(["validate", str(REPO / "configs" / "train_sft.yaml")]) == 2  # not a pipeline
    assert "unknown key" in capsys.readouterr().err
