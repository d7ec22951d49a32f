"""`raysys report DIR`: (re)write a sweep's or a pipeline's report."""

from __future__ import annotations

import argparse
from pathlib import Path

from raysys.cli._common import where
from raysys.errors import UserError


def add(sub: argparse._SubParsersAction) -> None:
    rp = sub.add_parser(
        "report",
        help="(re)write a sweep's or a pipeline's report (transfer, leaderboard, scaling, stages)",
        description="Read <SWEEP_DIR>/results.parquet (or a pipeline's pipeline.json) and write "
        "report.md, report.html (plots embedded, readable offline), plots/*.png and the analysis "
        "CSVs next to it. An s3:// or gs:// run is fetched, rewritten and sent back.",
    )
    rp.add_argument(
        "sweep_dir", help="a sweep directory (results.parquet) or a pipeline run (pipeline.json)"
    )
    rp.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from raysys.tasks import scoped

    return scoped(_report)(args)  # the run's tasks are registered for this report only


def _report(args: argparse.Namespace) -> int:
    from raysys.runs import RunDir

    run = RunDir.fetched(args.sweep_dir, field="SWEEP_DIR")  # s3:// or gs://: fetched first
    register_run_tasks(run.path)
    if (run / "pipeline.json").is_file():
        html, text = _pipeline(run.path)
    elif (run / "results.parquet").is_file():
        html, text = _sweep(run.path)
    else:
        raise UserError(
            f"{run.path}: no results.parquet or pipeline.json; point it at a finished sweep or "
            "pipeline directory (<run.storage_path>/<run.name>/<run_id>)"
        )
    print(text)
    run.keep()  # rewritten in place: back to the store
    print(f"Report: {where(html)}")
    return 0


def register_run_tasks(run_dir: Path) -> None:
    """The tasks the run materialised (`<run_dir>/tasks`), registered as its trials and
    workers saw them: a task YAML from another folder or machine is scored by its own
    kind, labels and answer regex, not skipped."""
    import logging

    from raysys.tasks.store import load_run_tasks

    if (run_dir / "tasks").is_dir():
        try:
            load_run_tasks(run_dir / "tasks")
        except (OSError, ValueError, KeyError) as err:  # a damaged folder: report without it
            logging.getLogger(__name__).warning("%s/tasks: not read (%s)", run_dir, err)


def _pipeline(run_dir: Path) -> tuple[Path, str]:
    from raysys.io import read_json
    from raysys.pipeline.report import headline, write_pipeline_report

    summary = read_json(run_dir / "pipeline.json", "SWEEP_DIR")
    if not isinstance(summary, dict) or "models" not in summary:
        raise UserError(
            f"{run_dir / 'pipeline.json'} is not a pipeline summary; rerun the pipeline with "
            "--resume to rewrite it"
        )
    _, html = write_pipeline_report(run_dir, summary)
    return html, headline(summary, run_dir)


def _sweep(run_dir: Path) -> tuple[Path, str]:
    from raysys.analysis.report import sweep_headline, write_report

    write_report(run_dir)
    return run_dir / "report.html", sweep_headline(run_dir)
