"""Where a sweep stands, from its files alone (`raysys.sweep.status`): trials done /
running / errored / pending from raysys's markers and Tune's own records, the remaining
time, the last error, a finished or resumed sweep. Run trees built by the sweep's writers
(tests.fixtures.sweep_tree); no Ray is started."""

from __future__ import annotations

import os
import time

import pytest

from raysys.config import SweepConfig, load_config
from raysys.runs import RunFiles
from raysys.sweep.status import DONE, ERRORED, PENDING, RUNNING, sweep_status
from tests.fixtures import SWEEP_TINY, finish_sweep, sweep_tree

NOW = time.time()


@pytest.fixture(autouse=True)
def _no_ray_started(no_ray):
    yield


def _cfg(storage, *overrides: str) -> SweepConfig:
    args = [f"run.storage_path={storage}", "run.run_id=s1", *overrides]
    return load_config(SweepConfig, SWEEP_TINY, args)


def _status(sweep_dir, now: float = NOW):
    return sweep_status(RunFiles.listed(str(sweep_dir)), now)


def test_a_running_sweep_names_each_trial_by_its_state(tmp_path):
    cfg = _cfg(tmp_path)
    sweep_dir = sweep_tree(cfg, ["done", "running", "errored", "pending"], NOW)
    st = _status(sweep_dir)
    ids = [t.trial_id for t in st.trials]
    assert [(t.trial_id, t.state) for t in st.trials] == list(
        zip(ids, [DONE, RUNNING, ERRORED, PENDING], strict=True)
    )
    assert st.phase == "trials" and not st.finished
    text = "\n".join(st.lines(NOW))
    assert "state     running: trials on Ray Tune (last write " in text
    assert "trials    4: 1 done, 1 running, 1 errored, 1 pending" in text
    assert f"  running {ids[1]} (10s)" in text and f"  pending {ids[3]}" in text
    assert "elapsed   1m40s" in text  # since config.yaml was written
    # the failure's own line, from Tune's error.txt
    assert f"error     {ids[2]}: RuntimeError: fault injection: trial {ids[2]} fails once" in text
    assert "report    none yet" in text


def test_remaining_time_is_the_mean_trial_over_the_free_slots(tmp_path):
    cfg = _cfg(tmp_path)
    sweep_dir = sweep_tree(cfg, ["done", "running", "errored", "pending"], NOW, 30.0)
    st = _status(sweep_dir)
    # one slot (one trial runs): 20 s left of the running one, then 30 s for the pending one
    assert st.concurrency == 1 and st.remaining(NOW) == pytest.approx(50.0)
    assert "remaining ~50s for the trials (mean trial 30s, 1 at a time)" in "\n".join(st.lines(NOW))
    nothing_done = sweep_tree(_cfg(tmp_path / "b"), ["running", "pending"], NOW)
    st = _status(nothing_done)
    assert st.remaining(NOW) is None
    assert "remaining unknown (no trial finished yet)" in st.lines(NOW)


def test_before_tune_writes_its_state_raysys_markers_alone_tell(tmp_path):
    cfg = _cfg(tmp_path)
    sweep_dir = sweep_tree(cfg, ["", "", "", ""], NOW)
    assert not (sweep_dir / "tune").exists()
    ids = [t.trial_id for t in _status(sweep_dir).trials]  # one finished, one training:
    (sweep_dir / "trials" / ids[1]).mkdir(parents=True)
    (sweep_dir / "trials" / ids[1] / "train_attempts.jsonl").write_text("{}\n")
    done = sweep_dir / "trials" / ids[0] / "result.json"
    done.parent.mkdir()
    done.write_text('{"trial_seconds": 12.5}')
    st = _status(sweep_dir)
    assert [t.state for t in st.trials] == [DONE, RUNNING, PENDING, PENDING]
    assert st.trials[0].seconds == 12.5  # from result.json when Tune has no record


def test_a_finished_sweep_names_its_report_and_a_retried_failure(tmp_path):
    cfg = _cfg(tmp_path)
    sweep_dir = sweep_tree(cfg, ["done", "retried", "done", "done"], NOW)
    ids = [t.trial_id for t in _status(sweep_dir).trials]
    finish_sweep(cfg, sweep_dir, {ids[1]: ["RuntimeError: it broke once"]}, NOW - 10)
    st = _status(sweep_dir)
    assert st.phase == "finished" and st.finished
    text = "\n".join(st.lines(NOW))
    assert "trials    4: 4 done, 0 running, 0 errored, 0 pending" in text
    assert "elapsed   1m30s" in text  # config.yaml to sweep.json
    assert "remaining none" in text
    assert f"error     {ids[1]}: RuntimeError: it broke once (failed, then retried)" in text
    assert f"report    {sweep_dir / 'report.html'}" in text


def test_a_resumed_sweep_is_running_again_until_it_rewrites_sweep_json(tmp_path):
    cfg = _cfg(tmp_path)
    sweep_dir = sweep_tree(cfg, ["done", "errored", "done", "done"], NOW)
    finish_sweep(cfg, sweep_dir, {}, NOW - 200)  # before config.yaml: an earlier run's
    st = _status(sweep_dir)
    assert st.phase == "test pass" and not st.finished  # every trial ended, no new summary
    assert "remaining unknown (the test pass and the report are left)" in st.lines(NOW)
    assert st.report.endswith("report.html (an earlier run's, rewritten at the end)")


def test_a_sweep_is_finished_once_its_report_follows_its_results(tmp_path):
    cfg = _cfg(tmp_path)
    sweep_dir = sweep_tree(cfg, ["done"] * 4, NOW)
    finish_sweep(cfg, sweep_dir, {}, NOW - 10)
    os.remove(sweep_dir / "report.html")  # sweep.json is written, the report not yet
    st = _status(sweep_dir)
    assert st.phase == "report" and not st.finished
    assert "state     running: results written; writing the report" in "\n".join(st.lines(NOW))


def test_a_sweep_where_every_trial_errored_has_stopped(tmp_path):
    sweep_dir = sweep_tree(_cfg(tmp_path), ["errored"] * 4, NOW)
    st = _status(sweep_dir)
    assert st.phase == "stopped" and st.finished  # the driver exits without a summary
    assert "RuntimeError: fault injection" in st.error


def test_a_sweep_that_writes_nothing_for_long_may_be_gone(tmp_path):
    sweep_dir = sweep_tree(_cfg(tmp_path), ["done", "running"], NOW)
    later = NOW + 3600  # a killed driver leaves its trial "running"
    state = _status(sweep_dir, later).lines(later)[1]
    assert "is the job still running?" in state and "--resume" in state


def test_long_lists_of_ids_are_cut(tmp_path):
    sweep_dir = sweep_tree(_cfg(tmp_path, "sweep.seeds=[0,1]"), ["done"] * 8, NOW)
    line = next(ln for ln in _status(sweep_dir).lines(NOW) if ln.startswith("  done"))
    assert line.count(", ") == 6 and line.endswith(", +2 more")


def test_a_sweep_that_has_not_written_its_grid_is_starting(tmp_path):
    sweep_dir = sweep_tree(_cfg(tmp_path), [], NOW)
    os.remove(sweep_dir / "grid.json")
    st = _status(sweep_dir)
    assert st.phase == "starting" and st.trials == []
    assert "trials    unknown yet" in st.lines(NOW)
