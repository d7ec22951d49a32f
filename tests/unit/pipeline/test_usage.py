"""What each pipeline stage used (`raysys.pipeline.usage`): Train workers for training
stages, engine actors for generation stages, the whole sweep for a sweep's SFT stage."""

from __future__ import annotations

import json

import pytest

from raysys.config import PipelineConfig, load_config
from raysys.pipeline.usage import answers, stage_usage
from tests.fixtures import REPO

TINY = REPO / "configs" / "pipeline_tiny.yaml"


def _cfg(*overrides: str) -> PipelineConfig:
    return load_config(PipelineConfig, TINY, list(overrides))


def test_training_and_generation_stages_hold_what_their_sections_schedule():
    cfg = _cfg("train.num_workers=2", "train.batch_size=16", "generate.concurrency=3")
    sft = stage_usage(cfg, "sft", {"train_tokens": 5000.0}, 10.0, cluster_gpus=0)
    assert sft == {"resource_seconds": {"CPU": 20.0}, "tokens_trained": 5000, "tokens_generated": 0}
    dpo = stage_usage(cfg, "dpo", {}, 4.0, cluster_gpus=0)  # pipeline.dpo: 1 worker
    assert dpo["resource_seconds"] == {"CPU": 4.0}
    rows = [{"n": 16, "mean_generated_tokens": 4.0}, {"n": 8, "mean_generated_tokens": 2.0}]
    ev = stage_usage(cfg, "eval_sft", rows, 2.0, cluster_gpus=0)
    assert ev == {"resource_seconds": {"CPU": 6.0}, "tokens_trained": 0, "tokens_generated": 80}
    assert answers("eval_sft", rows) == 24 and answers("sft", rows) == 0
    synth = {"tasks": {"fomc_stance": {"generated_tokens": 700}}, "rows": 3}
    assert stage_usage(cfg, "synth_r1", synth, 1.0, 0)["tokens_generated"] == 700
    assert stage_usage(cfg, "data", {}, 9.0, 0)["resource_seconds"] == {}


def test_a_sweeps_sft_stage_is_the_whole_sweep(tmp_path):
    cfg = _cfg("sweep.fractions=[1.0]")
    study = {"resource_seconds": {"CPU": 123.0}, "tokens_trained": 9, "tokens_generated": 4}
    (tmp_path / "sweep.json").write_text(json.dumps({"cost": {"study": study}}))
    used = stage_usage(cfg, "sft", {"sweep_dir": str(tmp_path)}, 500.0, 0)
    assert used == study
    assert stage_usage(cfg, "sft", {"sweep_dir": str(tmp_path / "gone")}, 1.0, 0) == {
        "resource_seconds": {},
        "tokens_trained": 0,
        "tokens_generated": 0,
    }


def test_gpu_training_is_priced_by_its_accelerator_type():
    cfg = _cfg("train.use_gpu=true", "train.accelerator_type=H100", "cost.prices={H100: 3.6}")
    used = stage_usage(cfg, "sft_r1", {}, 1000.0, cluster_gpus=1)
    assert used["resource_seconds"] == {"H100": 1000.0}
    from raysys.analysis.cost import cost

    assert cost(used, cfg.cost.prices)[0] == pytest.approx(1.0)


def test_the_pipeline_report_lists_each_stages_cost_and_the_cost_per_answer():
    from raysys.analysis.render import Document, to_markdown
    from raysys.pipeline.report import _times

    used = {"resource_seconds": {"CPU": 3600.0}, "tokens_trained": 10, "tokens_generated": 0}
    stage = {"stage": "sft", "title": "LoRA SFT", "seconds": 1800.0, "skipped": False}
    summary = {
        "stages": [stage | {"usage": used | {"cost_usd": 0.04}}, {**stage, "stage": "old"}],
        "cost": {
            "prices": {"CPU": 0.04},
            "study": used,
            "answers": 8,
            "cost_per_answer_usd": 0.005,
        },
    }
    doc = Document(title="t")
    _times(doc, summary)
    md = to_markdown(doc)
    assert "Stage wall times and cost" in md and "| whole study |" in md
    assert "0.04" in md and "Cost per answer: $0.005 (8 test answers scored)" in md
    assert "| old | LoRA SFT | 1800 |  | — | — | — | — | — |" in md  # recorded before costs
