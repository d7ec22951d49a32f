"""The pipeline's bookkeeping (`raysys.pipeline.stages`): a stage's folder is keyed by its
config and its inputs' keys, so a re-run skips what is done and redoes what a change
touched (and everything downstream); the study's summary. Real folders, no Ray."""

from __future__ import annotations

import json
from pathlib import Path

from raysys.config import PipelineConfig, load_config
from raysys.pipeline.presets import preset_path
from raysys.pipeline.stages import Stages, Study, dumped, holdout, sizes, stage_plan
from tests.fixtures import REPO

TINY = REPO / "configs" / "pipeline_tiny.yaml"


def _chain(run_dir: Path, data_cfg: dict, sft_cfg: dict, calls: list[str]) -> Stages:
    st = Stages(run_dir, 2)

    def fn(name: str):
        def run(d: Path) -> dict:
            calls.append(name)
            (d / "out.txt").write_text(name)
            return {"stage": name}

        return run

    st.run("data", "data", data_cfg, (), fn("data"))
    st.run("sft", "sft", sft_cfg, ("data",), fn("sft"))
    return st


def test_the_same_config_finds_its_stages_done(tmp_path):
    calls: list[str] = []
    first = _chain(tmp_path, {"rows": 8}, {"lr": 1e-3}, calls)
    assert calls == ["data", "sft"]
    assert not any(r.skipped for r in first.records.values())
    again = _chain(tmp_path, {"rows": 8}, {"lr": 1e-3}, calls)
    assert calls == ["data", "sft"]  # nothing ran again
    assert all(r.skipped for r in again.records.values())
    assert {n: r.key for n, r in again.records.items()} == {
        n: r.key for n, r in first.records.items()
    }
    assert again.records["sft"].result == {"stage": "sft"}
    assert again.dir("sft") == tmp_path / f"sft-{first.records['sft'].key}"
    assert (again.dir("sft") / "out.txt").read_text() == "sft"


def test_a_changed_stage_and_everything_downstream_get_new_folders(tmp_path):
    calls: list[str] = []
    base = _chain(tmp_path, {"rows": 8}, {"lr": 1e-3}, calls)
    own = _chain(tmp_path, {"rows": 8}, {"lr": 2e-3}, calls)  # sft's own config changed
    assert calls == ["data", "sft", "sft"]
    assert own.records["data"].key == base.records["data"].key
    assert own.records["sft"].key != base.records["sft"].key
    upstream = _chain(tmp_path, {"rows": 16}, {"lr": 1e-3}, calls)  # only data changed
    assert calls == ["data", "sft", "sft", "data", "sft"]
    assert upstream.records["sft"].key not in (base.records["sft"].key, own.records["sft"].key)
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("sft-")]) == 3


def test_keys_ignore_key_order_and_stages_that_did_not_run(tmp_path):
    a, b = Stages(tmp_path, 1), Stages(tmp_path, 1)
    a.run("s", "s", {"x": 1, "y": 2}, ("never_ran",), lambda d: 1)
    b.run("s", "s", {"y": 2, "x": 1}, (), lambda d: 2)
    assert a.records["s"].key == b.records["s"].key and b.records["s"].result == 1
    seconds = json.loads((a.dir("s") / "stage.json").read_text())["seconds"]
    assert a.records["s"].seconds == seconds


def test_the_summary_lists_stages_models_and_the_final_model(tmp_path):
    cfg = load_config(PipelineConfig, TINY)
    st = Stages(tmp_path, 1)
    st.run("data", "training data", {}, (), lambda d: {"path": "x"})
    study = Study(cfg, "/models/tiny", tmp_path, st)
    study.models.append({"stage": "base", "eval": "eval_base", "results": [], "train": None})
    study.current = ("sft", "/run/sft/adapter")
    summary = study.summary(12.5)
    assert summary["model"] == "tiny-random" and summary["tasks"] == ["news_sentiment"]
    assert summary["synth_tasks"] == ["news_sentiment"]
    assert summary["eval_tasks"] == ["news_sentiment", "fomc_stance"]
    assert summary["stages"] == [
        {
            "stage": "data",
            "title": "training data",
            "dir": st.dir("data").name,
            "seconds": st.records["data"].seconds,
            "skipped": False,
            "usage": {  # the driver reads and writes files: nothing scheduled
                "resource_seconds": {},
                "tokens_trained": 0,
                "tokens_generated": 0,
                "cost_usd": None,
            },
        }
    ]
    assert summary["cost"]["answers"] == 0 and summary["cost"]["cost_per_answer_usd"] is None
    assert summary["final_model"] == {"stage": "sft", "adapter": "/run/sft/adapter"}
    assert summary["wall_seconds"] == 12.5 and summary["dpo"] is None
    assert "sweep_dir" not in summary


def test_a_sweep_study_names_its_sweep(tmp_path):
    cfg = load_config(PipelineConfig, preset_path("embedded"))
    st = Stages(tmp_path, 1)
    st.run("sft", "sweep", {}, (), lambda d: {"sweep_dir": "/runs/sweep/grid"})
    assert Study(cfg, "m", tmp_path, st).summary(1.0)["sweep_dir"] == "/runs/sweep/grid"


def test_the_stage_plan_is_the_run_order():
    def plan(cfg: PipelineConfig) -> list[str]:
        p = cfg.pipeline
        return stage_plan(p.stages, p.rounds, with_sweep=cfg.sweep is not None)

    tiny = load_config(PipelineConfig, TINY)
    assert plan(tiny) == [
        "data",
        "eval_base",
        "sft",
        "eval_sft",
        "dpo_probe",
        "dpo",
        "eval_dpo",
        "synth_r1",
        "sft_r1",
        "eval_r1",
    ]
    two = load_config(PipelineConfig, TINY, ["pipeline.rounds=2", "pipeline.stages.dpo=false"])
    assert plan(two)[4:] == ["synth_r1", "sft_r1", "eval_r1", "synth_r2", "sft_r2", "eval_r2"]
    off = load_config(PipelineConfig, TINY, ["pipeline.stages.synth=false"])
    assert plan(off)[-1] == "eval_dpo"
    embedded = load_config(PipelineConfig, preset_path("embedded"))  # the sweep is the SFT stage
    assert plan(embedded) == ["sft", "dpo_probe", "dpo", "eval_dpo", *plan(tiny)[-3:]]


def test_section_helpers():
    cfg = load_config(PipelineConfig, TINY)
    assert dumped(None) is None and dumped(cfg.model)["source"] == "tiny-random"
    assert sizes(cfg.pipeline) == {"train": 48, "validation": 8, "test": 16}
    assert holdout(cfg.pipeline) == {"test": 16, "validation": 8}
