"""Where a pipeline run stands, from its files alone (`raysys.pipeline.status`): stages done
/ running / pending / skipped from the stage markers, in the config's order, and the SFT
sweep's trials inside. Stages written by the pipeline's own `Stages`, sweeps by the
sweep's writers (tests.fixtures.sweep_tree); no Ray is started."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from raysys.config import PipelineConfig, load_config
from raysys.io import write_json, write_text
from raysys.pipeline.driver import stage_count
from raysys.pipeline.sft import sweep_config
from raysys.pipeline.stages import Stages, Study
from raysys.pipeline.status import run_status
from raysys.runs import open_run
from tests.fixtures import PIPELINE_TINY, finish_sweep, sweep_tree

NOW = time.time()
WITH_SWEEP = ("sweep.cocktails=[singletons]", "sweep.fractions=[0.5,1.0]")


@pytest.fixture(autouse=True)
def _no_ray_started(no_ray):
    yield


def _run(tmp_path: Path, *overrides: str) -> tuple[PipelineConfig, Path, Stages]:
    cfg = load_config(
        PipelineConfig, PIPELINE_TINY, [f"run.storage_path={tmp_path}", "run.run_id=p1", *overrides]
    )
    run = open_run(cfg, check=False)  # config.yaml, as run_pipeline writes it
    return cfg, run.path, Stages(run.path, stage_count(cfg))


def _done(st: Stages, *names: str) -> None:
    for name in names:
        st.run(name, name, {"stage": name}, (), lambda d: write_text(d / "out.txt", "x"))


def _interrupted(st: Stages, name: str, fn=None) -> None:
    """The stage started (its folder has files) and has not finished."""

    def run(d: Path) -> None:
        (fn or (lambda d: write_text(d / "part.txt", "x")))(d)
        raise KeyboardInterrupt  # the stage is still at work: no stage.json

    with pytest.raises(KeyboardInterrupt):
        st.run(name, name, {"stage": name}, (), run)


def _text(run_dir: Path) -> str:
    os.utime(run_dir / "config.yaml", (NOW - 100, NOW - 100))
    return "\n".join(run_status(str(run_dir)).lines(NOW))


def test_a_pipeline_mid_stage_shows_the_stage_and_what_is_left(tmp_path):
    cfg, run_dir, st = _run(tmp_path)
    _done(st, "data", "eval_base", "sft", "eval_sft", "dpo_probe")
    text = _text(run_dir)
    assert "running: the stage after dpo_probe (it has written nothing yet)" in text
    # a training stage mid-way has written only its checkpoints (a folder no status reads)
    _interrupted(st, "dpo", lambda d: write_text(d / "ray_train" / "checkpoint_0" / "a", "x"))
    text = _text(run_dir)
    assert text.startswith(f"pipeline  {run_dir}\n")
    assert "state     running: stage 6/10 dpo (last write " in text
    assert "stages    10: 5 done, 1 running, 4 pending" in text
    assert "  done    data (0s), eval_base (0s), sft (0s), eval_sft (0s), dpo_probe (0s)" in text
    assert "  running dpo\n  pending eval_dpo, synth_r1, sft_r1, eval_r1\n" in text
    assert "remaining unknown; 4 more stage(s) after it" in text
    assert "report    none yet" in text and "sft sweep" not in text
    assert not run_status(str(run_dir)).finished


def test_a_pipeline_in_its_sweep_stage_shows_the_trials(tmp_path):
    cfg, run_dir, st = _run(tmp_path, *WITH_SWEEP)

    def half_done(d: Path) -> None:
        sweep_tree(sweep_config(cfg, d), ["done", "running"], NOW, trial_seconds=40.0)

    _interrupted(st, "sft", half_done)
    text = _text(run_dir)
    assert "state     running: stage 1/7 sft" in text
    # 40 s per trial, 10 s into the running one: 30 s left
    assert "remaining ~30s for the sweep's trials; then its test pass, 6 more stage(s)" in text
    sweep = next(run_dir.glob("sft-*")).name + "/sweep/grid"
    assert f"sft sweep {sweep}\n  state     running: trials on Ray Tune" in text
    assert "  trials    2: 1 done, 1 running, 0 errored, 0 pending" in text


def test_a_finished_pipeline_names_skipped_stages_its_sweep_and_report(tmp_path):
    cfg, run_dir, st = _run(tmp_path, *WITH_SWEEP, "pipeline.dpo_gate.force=false")

    def sweep(d: Path) -> dict:
        scfg = sweep_config(cfg, d)
        sweep_dir = sweep_tree(scfg, ["done", "done"], NOW)
        finish_sweep(scfg, sweep_dir, {}, NOW - 50)
        return {"sweep_dir": str(sweep_dir)}

    st.run("sft", "SFT sweep", {}, (), sweep)
    _done(st, "dpo_probe", "synth_r1", "sft_r1", "eval_r1")  # the DPO gate said no
    summary = Study(cfg, "model", run_dir, st).summary(60.0)
    write_json(run_dir / "pipeline.json", summary)  # as run_pipeline, then its report
    os.utime(run_dir / "pipeline.json", (NOW - 10, NOW - 10))
    text = _text(run_dir)  # pipeline.json is written, the report not yet
    assert "state     running: every stage ended; writing pipeline.json and the report" in text
    assert "remaining unknown (the report is left)" in text
    write_text(run_dir / "report.html", "<html></html>")
    os.utime(run_dir / "report.html", (NOW - 10, NOW - 10))
    text = _text(run_dir)
    assert "state     finished (last write " in text
    assert "stages    7: 5 done, 2 skipped" in text and "  skipped dpo, eval_dpo" in text
    assert "elapsed   1m30s" in text and "remaining none" in text
    assert f"report    {run_dir / 'report.html'}" in text
    assert "  state     finished" in text and "  trials    2: 2 done, 0 running" in text
    assert run_status(str(run_dir)).finished


def test_a_resumed_pipeline_is_running_until_it_writes_its_summary_again(tmp_path):
    cfg, run_dir, st = _run(tmp_path)
    _done(st, "data", "eval_base")
    write_json(run_dir / "pipeline.json", {"stages": []})
    os.utime(run_dir / "pipeline.json", (NOW - 500, NOW - 500))  # an earlier run's
    text = _text(run_dir)
    assert "state     running: the stage after eval_base" in text
    assert "pending sft, eval_sft" in text
