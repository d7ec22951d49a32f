"""The quiet console: raysys's lines on the console, the libraries' output (Python loggers
and what C code writes to fd 2) in the run's driver.log, bars as plain lines off a terminal."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import time

import pytest

from raysys import console
from raysys.console import Progress
from tests.fixtures import REPO

SCRIPT = textwrap.dedent(
    """
    import logging, os, sys
    from pathlib import Path
    from raysys import console

    console.setup(verbose=sys.argv[2] == "verbose")
    lib = logging.getLogger("ray.data")
    lib.propagate = False
    lib.addHandler(logging.StreamHandler(sys.stderr))
    console.route_library_loggers()
    logging.getLogger("raysys.demo").info("own line before the run dir")
    logging.getLogger("transformers").warning("library warning before the run dir")
    os.write(2, b"C-level line before the run dir\\n")
    console.attach_run(Path(sys.argv[1]))
    lib.warning("ray data warning after")
    os.write(2, b"C-level line after\\n")
    import warnings; warnings.warn("a python warning")
    print("raysys: error: the one error line", file=sys.stderr)
    console.restore()
    os.write(2, b"fd 2 is the terminal again\\n")
    """
)


def _run(tmp_path, mode):
    r = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "run"), mode],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    return r


def test_quiet_keeps_the_libraries_output_in_the_run_driver_log(tmp_path):
    r = _run(tmp_path, "quiet")
    log = (tmp_path / "run" / "logs" / "driver.log").read_text()
    assert "own line before the run dir" in r.stdout
    assert "libraries' output" in r.stdout and "driver.log" in r.stdout
    assert r.stderr.splitlines() == [
        "raysys: error: the one error line",
        "fd 2 is the terminal again",
    ]
    for line in (
        "library warning before the run dir",  # spooled, then moved into the run
        "C-level line before the run dir",
        "ray data warning after",
        "C-level line after",
        "a python warning",
    ):
        assert line in log and line not in r.stdout + r.stderr, line
    assert "own line" not in log


def test_verbose_leaves_everything_on_the_console(tmp_path):
    r = _run(tmp_path, "verbose")
    both = r.stdout + r.stderr
    for line in ("own line", "library warning", "C-level line after", "ray data warning after"):
        assert line in both, line
    assert not (tmp_path / "run" / "logs").exists()


def test_a_bar_off_a_terminal_is_plain_lines_with_counts_and_eta(monkeypatch, caplog):
    monkeypatch.setattr(console, "PLAIN_EVERY_S", 0.0)
    caplog.set_level(logging.INFO, logger="raysys.console")
    with Progress("generating", total=4, unit="rows") as bar:
        bar.update(1)
        bar.update(3, "2 actors")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("generating: 1/4 rows [00:00<")
    assert lines[1].startswith("generating: 4/4 rows [") and lines[1].endswith(", 2 actors")
    assert all("\r" not in ln and "\x1b" not in ln for ln in lines)


def test_a_short_step_prints_no_bar_lines(caplog):
    caplog.set_level(logging.INFO, logger="raysys.console")
    with Progress("generating", total=4) as bar:
        bar.update(4)
    assert caplog.records == []


class _Trial:
    def __init__(self, tid, status):
        self.trial_id, self.status, self.config = tid, status, {"trial": {"trial_id": tid}}


def test_the_sweep_bar_counts_trials_by_tunes_status(monkeypatch, caplog):
    pytest.importorskip("ray.tune")
    from raysys.sweep.progress import SweepProgress

    monkeypatch.setattr(console, "PLAIN_EVERY_S", 0.0)
    caplog.set_level(logging.INFO, logger="raysys.console")
    cb = SweepProgress(total=4)
    trials = [_Trial("a", "TERMINATED"), _Trial("b", "RUNNING"), _Trial("c", "ERROR")]
    cb.on_trial_result(0, trials, trials[1], {"step": 3, "loss": 0.5})
    cb.on_step_end(0, trials)
    cb.on_experiment_end(trials)
    line = caplog.records[0].getMessage()
    assert line.startswith("sweep trials: 1/4 trials [")
    assert "1 running, 1 failed; b step 3 loss 0.5" in line
    # Tune pickles its callbacks into the experiment state: the bar is left behind
    import pickle

    cb.bar = Progress("x", 1)
    assert pickle.loads(pickle.dumps(cb)).bar is None


def test_a_training_bar_reads_the_newest_report(tmp_path, monkeypatch, caplog):
    from raysys.train.reports import REPORTS, StepProgress, latest_report

    folder = tmp_path / "run" / REPORTS
    folder.mkdir(parents=True)
    assert latest_report(str(tmp_path), "run") is None
    for step in (2, 4):
        record = {"step": step, "metrics": {"max_steps": 8, "loss": 1.0 / step}, "history": []}
        (folder / f"{time.time_ns():020d}-{step:06d}.json").write_text(json.dumps(record))
    assert latest_report(str(tmp_path), "run")["step"] == 4
    monkeypatch.setattr(console, "PLAIN_EVERY_S", 0.0)
    monkeypatch.setattr(console._State, "active", True)
    caplog.set_level(logging.INFO, logger="raysys.console")

    def lines():
        return [r.getMessage() for r in caplog.records]

    with StepProgress(str(tmp_path), "run", "training run", every_s=0.05):
        deadline = time.monotonic() + 10
        while not any("4/8" in ln for ln in lines()) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert lines()[0].startswith("training run: 0 steps [00:00], starting workers")
    assert any(ln.startswith("training run: 4/8 steps [") and "loss 0.25" in ln for ln in lines())


def test_a_report_note_repeated_by_each_report_build_is_shown_once(capsys):
    console.setup(verbose=False)
    try:
        for _ in range(3):
            logging.getLogger("raysys.analysis.scaling").info("no scaling fit for 4 of 4")
        logging.getLogger("raysys.pipeline").info("stage line")
        logging.getLogger("raysys.pipeline").info("stage line")
    finally:
        console.restore()
    out = capsys.readouterr().out
    assert out.count("no scaling fit for 4 of 4") == 1 and out.count("stage line") == 2


def test_a_training_bar_ends_on_the_last_report_written_before_it_stopped(tmp_path, caplog):
    """A run whose only report lands between two polls still ends its bar on that step."""
    from raysys.train.reports import REPORTS, StepProgress

    folder = tmp_path / "run" / REPORTS
    folder.mkdir(parents=True)
    caplog.set_level(logging.INFO, logger="raysys.console")
    import unittest.mock as mock

    with (
        mock.patch.object(console._State, "active", True),
        mock.patch.object(console, "PLAIN_EVERY_S", 0.0),
    ):
        with StepProgress(str(tmp_path), "run", "training run", every_s=30):
            record = {"step": 2, "metrics": {"max_steps": 2, "loss": 0.5}, "history": []}
            (folder / f"{time.time_ns():020d}-000002.json").write_text(json.dumps(record))
    assert caplog.records[-1].getMessage().startswith("training run: 2/2 steps [")
