"""bench/gpu_lora.py stays ready for a GPU machine: its --smoke mode runs the same path
(a Qwen2 model built from its config, `build_trainer`, the hf engine called directly) on
the CPU at a tiny shape, in a subprocess, and writes every figure the GPU run reports."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "gpu_lora.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_gpu_lora", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_bench_trains_with_the_study_settings():
    from raysys.config.training import TrainSection

    bench = _bench()
    study = TrainSection()  # the defaults: the study's SFT
    lora = bench.STUDY_LORA
    assert (lora.r, lora.alpha, lora.dropout) == (study.lora.r, study.lora.alpha, 0.05)
    assert lora.dropout == study.lora.dropout
    assert lora.target_modules == study.lora.target_modules
    assert bench.STUDY_LR == study.learning_rate
    assert bench.STUDY_PER_DEVICE_BATCH == study.per_device_batch_size
    shape = bench.QWEN25_1_5B
    assert (shape["hidden_size"], shape["num_hidden_layers"], shape["vocab_size"]) == (
        1536,
        28,
        151936,
    )


def test_the_full_shape_refuses_to_run_without_a_gpu(tmp_path, monkeypatch):
    import torch

    # no GPU, on any machine (on a GPU machine the full shape would start a 10-min run)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as e:
        _bench().main(["--out", str(tmp_path / "x.json")])
    assert e.value.code == 2 and not (tmp_path / "x.json").exists()


def test_smoke_writes_every_figure(tmp_path):
    out = tmp_path / "gpu_lora.json"
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    res = json.loads(out.read_text())
    assert res["smoke"] is True and res["device_type"] == "cpu"
    assert res["ray_imported"] is False
    t, g = res["train"], res["generate"]
    assert t["steps_timed"] == 2 and t["warmup_steps"] == 1
    assert t["tokens_per_second"] > 0 and t["tokens_timed"] > 0
    assert 0 < t["mfu"] < 1 and t["peak_flops_measured"] > 0
    assert t["peak_memory_bytes"] > 0 and "RSS" in res["peak_memory_kind"]
    assert t["sequence_fill"] > 0.75  # the synthetic rows fill their sequences (99 % at 1024)
    assert (t["lora"]["r"], t["lora"]["alpha"]) == (128, 256)
    assert t["attn_implementation"] == "sdpa"
    assert g["batch"] == 4 and g["max_new_tokens"] == 8
    assert g["generated_tokens"] > 0 and g["tokens_per_second"] > 0
    assert "| tok/s" not in proc.stdout and "(smoke, CPU)" in proc.stdout.splitlines()[-1]
