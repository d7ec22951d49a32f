"""The `raysys` console script (`raysys.cli`): every command on the help page, a help that
imports nothing heavy, overrides after flags, and the one-line errors (exit 2 for bad
input, 1 for storage trouble, a traceback for anything else)."""

from __future__ import annotations

import argparse
import errno
import re
import subprocess
import sys

import pytest

from raysys import cli
from raysys.cli import COMMANDS, build_parser, main
from tests.fixtures import REPO

NAMES = [
    "quickstart",
    "pipeline",
    "train",
    "eval",
    "synth",
    "sweep",
    "search",
    "report",
    "status",
    "tasks",
    "data",
    "validate",
]


def test_help_lists_every_command_with_its_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in NAMES:  # each with its help line (the usage line's {...} is abbreviated)
        assert re.search(rf"^    {name} +\S", out, re.M), name
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == NAMES
    for name, parser in sub.choices.items():
        assert parser.prog == f"raysys {name}"
    assert len(COMMANDS) == len(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_each_command_has_its_own_help(name, capsys):
    with pytest.raises(SystemExit) as e:
        main([name, "--help"])
    assert e.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: raysys {name}")


def test_no_command_prints_the_help_and_exits_2(capsys):
    assert main([]) == 2
    assert capsys.readouterr().out.startswith("usage: raysys")


def test_help_imports_no_ray_torch_or_pandas(tmp_path):
    r = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "raysys.cli", "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert r.returncode == 0 and "validate" in r.stdout
    imported = {
        line.split("|")[-1].strip()
        for line in r.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "raysys.cli.validate" in imported  # the measurement sees our modules
    heavy = {"ray", "torch", "pandas", "numpy", "transformers", "pyarrow", "pydantic", "yaml"}
    assert not {m for m in imported if m.split(".")[0] in heavy}


def test_overrides_after_a_flag_are_overrides(capsys):
    cfg = str(REPO / "configs" / "eval.yaml")
    assert (
        main(["validate", cfg, "--kind", "eval", "eval.size=7", "generate.max_new_tokens=5"]) == 0
    )
    out = capsys.readouterr().out
    assert "  size: 7\n" in out and "  max_new_tokens: 5\n" in out


def test_an_unknown_flag_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["validate", str(REPO / "configs" / "eval.yaml"), "--nope"])
    assert e.value.code == 2
    assert "unrecognized arguments: --nope" in capsys.readouterr().err


def test_a_user_error_is_one_redacted_line_and_exit_2(capsys):
    code = main(
        [
            "validate",
            str(REPO / "configs" / "eval.yaml"),
            "--kind",
            "eval",
            "model.dtype=s3://AK:SECRET@b/x\nnext",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"raysys: error: {REPO / 'configs' / 'eval.yaml'}: model.dtype: ")
    assert err.count("\n") == 1  # the newline in the value is folded
    assert "SECRET" not in err and "s3://***@b/x" in err


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES])
def test_storage_trouble_mid_run_is_one_line_and_exit_1(monkeypatch, capsys, code):
    def full(args):
        raise OSError(code, "the disk said no", "/runs/x/train.parquet")

    monkeypatch.setattr(cli.validate, "run", full)
    assert main(["validate", "x.yaml"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("raysys: error: storage not writable: ") and err.count("\n") == 1
    assert "what finished is kept" in err and "--resume" in err


def test_other_os_errors_are_not_dressed_up_as_storage_trouble(monkeypatch):
    def refused(args):
        raise ConnectionRefusedError(errno.ECONNREFUSED, "refused")

    monkeypatch.setattr(cli.validate, "run", refused)
    with pytest.raises(ConnectionRefusedError):
        main(["validate", "x.yaml"])


def test_python_dash_m_runs_the_console_script(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "raysys.cli", "validate", "missing.yaml"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "RAYSYS_CACHE": str(tmp_path)},
        timeout=60,
    )
    assert r.returncode == 2
    assert (
        r.stderr
        == "raysys: error: config file not found: missing.yaml (pass the path of a YAML file)\n"
    )
