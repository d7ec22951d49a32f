"""`raysys pipeline`: its arguments, the synthesis lines it prints, bad input refused."""

from __future__ import annotations

from raysys.cli import main
from raysys.cli.pipeline import synthesis_lines
from tests.unit.cli._parsers import subparser


def test_pipeline_arguments():
    args = subparser("pipeline").parse_args(["p.yaml", "pipeline.rounds=2", "--resume"])
    assert (args.config, args.resume, args.overrides) == ("p.yaml", True, ["pipeline.rounds=2"])
    assert subparser("pipeline").parse_args([]).resume is False


def test_synthesis_lines_per_round_and_task():
    summary = {
        "synthesis": [
            {
                "round": 1,
                "tasks": {
                    "fomc_stance": {
                        "kept": 40,
                        "inputs": 64,
                        "yield": 0.625,
                        "kept_label_accuracy": 0.9,
                    },
                    "mine": {"kept": 0, "inputs": 10, "yield": 0.0, "kept_label_accuracy": None},
                },
            },
            {"round": 2, "tasks": {"fomc_stance": {"kept": 50, "inputs": 64, "yield": 0.78125}}},
        ]
    }
    assert synthesis_lines(summary) == [
        "Synthesis round 1 (fomc_stance): 40/64 kept (yield 0.62), kept-label accuracy 0.900",
        "Synthesis round 1 (mine): 0/10 kept (yield 0.00)",
        "Synthesis round 2 (fomc_stance): 50/64 kept (yield 0.78)",
    ]
    assert synthesis_lines({}) == []


def test_dpo_without_sft_is_exit_2_and_nothing_written(tmp_path, capsys):
    code = main(["pipeline", f"run.storage_path={tmp_path}", "pipeline.stages.sft=false"])
    assert code == 2 and "pipeline.stages.dpo needs the SFT stage" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
