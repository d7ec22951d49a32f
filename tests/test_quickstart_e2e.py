"""One real end-to-end run on the tiny model: Ray Data eval -> Ray Train SFT -> eval."""

from __future__ import annotations

import json

import pytest
import yaml

from raysys.config import QuickstartConfig, load_config
from raysys.quickstart import run_quickstart

TINY = [
    "model.source=tiny-random",
    "model.dtype=float32",
    "task.train_size=192",
    "task.validation_size=12",
    "task.test_size=24",
    "train.learning_rate=3e-3",
    "train.batch_size=8",
    "train.epochs=3",
    "train.lora.r=16",
    "train.lora.alpha=32",
    "train.cpus_per_worker=1",
    "generate.max_new_tokens=8",
    "generate.batch_size=8",
]


@pytest.fixture(scope="module")
def run(ray_local, tiny_model, tmp_path_factory):
    storage = tmp_path_factory.mktemp("runs")
    cfg = load_config(
        QuickstartConfig, None, [*TINY, f"run.storage_path={storage}", "run.run_id=e2e"]
    )
    return cfg, run_quickstart(cfg)


def test_training_teaches_the_answer_format(run):
    _, res = run
    assert res.before["missing_rate"] == 1.0  # a random model never writes "Answer: X"
    assert res.after["missing_rate"] <= 0.1
    assert res.after["mean_generated_tokens"] < res.before["mean_generated_tokens"]
    assert res.after["changed_vs_base"] > 0.9
    assert res.train["step"] == 72  # 192 rows / batch 8 * 3 epochs


def test_run_directory_holds_config_adapter_and_metrics(run):
    cfg, res = run
    d = res.run_dir
    assert load_config(QuickstartConfig, d / "config.yaml") == cfg
    assert (d / "sft" / "adapter" / "adapter_model.safetensors").is_file()
    adapter_cfg = json.loads((d / "sft" / "adapter" / "adapter_config.json").read_text())
    assert adapter_cfg["r"] == 16 and adapter_cfg["lora_alpha"] == 32
    summary = json.loads((d / "summary.json").read_text())
    assert summary["after"]["accuracy"] == res.after["accuracy"]
    history = json.loads((d / "sft" / "metrics.json").read_text())["history"]
    steps = [h["step"] for h in history if "loss" in h]
    assert steps == list(range(1, 73))  # every step once
    # A random 2-layer model learns the format ("Answer: " + a label + EOS) but not
    # the sentiment: token accuracy goes from 0 to most tokens, the loss drops by > 1 nat.
    logs = [h for h in history if "loss" in h]
    assert logs[-1]["loss"] < logs[0]["loss"] - 1.0
    assert logs[0]["mean_token_accuracy"] < 0.1 and logs[-1]["mean_token_accuracy"] > 0.7
    for stage in ("eval_base", "eval_sft"):
        m = json.loads((d / stage / "metrics.json").read_text())
        assert {r["task"] for r in m["results"]} == {"news_sentiment"}
    assert "| accuracy |" in (d / "table.md").read_text()


def test_adapter_loads_with_peft(run, tiny_model):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    _, res = run
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    model = PeftModel.from_pretrained(base, res.run_dir / "sft" / "adapter")
    ids = torch.tensor([[1, 5, 9, 12]])
    with torch.no_grad():
        tuned = model(ids).logits
        with model.disable_adapter():
            plain = model(ids).logits
    assert not torch.allclose(tuned, plain)


def test_rerun_with_same_run_id_skips_finished_stages(run):
    cfg, res = run
    stamps = {p: p.stat().st_mtime_ns for p in res.run_dir.glob("*/stage.json")}
    assert len(stamps) == 3
    again = run_quickstart(cfg)
    assert again.after == res.after and again.before == res.before
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert yaml.safe_load((res.run_dir / "config.yaml").read_text())["run"]["run_id"] == "e2e"


def test_resume_with_another_config_is_refused(run):
    from raysys.errors import UserError

    cfg, res = run
    changed = cfg.model_copy(update={"train": cfg.train.model_copy(update={"learning_rate": 1e-5})})
    before = (res.run_dir / "config.yaml").read_text()
    with pytest.raises(
        UserError, match=r"run e2e exists with another config \(train.learning_rate"
    ):
        run_quickstart(changed)
    assert (res.run_dir / "config.yaml").read_text() == before


def test_yaml_task_over_local_csv_trains_and_evaluates(ray_local, tiny_model, tmp_path, csv_task):
    import pandas as pd

    task_file = csv_task(
        "csv_tone",
        {"train": 96, "test": 16},
        "What is the tone?\n{input}\nEnd with 'Answer: <tone>'.",
    )
    cfg = load_config(
        QuickstartConfig,
        None,
        [
            *TINY,
            f"task.name={task_file}",
            "train.epochs=2",
            f"run.storage_path={tmp_path / 'runs'}",
            "run.run_id=csv",
        ],
    )
    res = run_quickstart(cfg)
    assert res.before["missing_rate"] == 1.0 and res.after["missing_rate"] <= 0.2
    assert res.train["step"] == 24  # 96 rows / batch 8 * 2 epochs
    preds = pd.read_parquet(res.run_dir / "eval_sft" / "predictions.parquet")
    assert sorted(preds["id"]) == [f"csv_tone-test-{i:06d}" for i in range(16)]
    assert not (res.run_dir / "data" / "validation.parquet").exists()
