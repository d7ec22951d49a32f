"""`raysys eval`: base + several adapters on several tasks in one engine pass."""

from __future__ import annotations

import pandas as pd
import pytest

from raysys.cli import main
from raysys.config import GenerateSection
from raysys.evaluate.scoring import LEAD, evaluate_tasks
from raysys.tasks import build_splits, get_task
from tests.integration.engine_helpers import lora_adapter, needs_vllm


@pytest.fixture(scope="module")
def three_adapters(tiny_model, tmp_path_factory):
    d = tmp_path_factory.mktemp("eval-adapters")
    return {
        n: lora_adapter(tiny_model, d / n, seed, trained=True)
        for n, seed in (("a", 1), ("b", 2), ("c", 3))
    }


def _tasks(n=4):
    return {
        name: (get_task(name), build_splits(name, {"test": n}, 0)["test"])
        for name in ("news_sentiment", "fin_ner")
    }


def test_base_and_three_adapters_on_two_tasks_in_one_pass(
    ray_local, tiny_model, three_adapters, tmp_path
):
    gen = GenerateSection(max_new_tokens=6, batch_size=8)
    res = evaluate_tasks(_tasks(), tiny_model, three_adapters, gen, "float32", tmp_path)
    assert list(res.columns[: len(LEAD)]) == LEAD
    assert sorted(zip(res["adapter"], res["task"], strict=True)) == sorted(
        (a, t) for a in ("base", "a", "b", "c") for t in ("news_sentiment", "fin_ner")
    )
    assert (res["n"] == 4).all()
    assert res["overlength_ratio"].between(0, 1).all() and res["missing_rate"].between(0, 1).all()
    ner = res[res["task"] == "fin_ner"]
    assert ner["entity_f1"].notna().all() and ner["macro_f1"].isna().all()
    preds = pd.read_parquet(tmp_path / "predictions.parquet")
    assert len(preds) == 4 * 2 * 4
    assert {"generated_text", "pred", "overlength", "adapter", "task"} <= set(preds.columns)
    # the adapters really differ from the base on the same prompts
    base = preds[preds["adapter"] == ""].set_index(["task", "id"])["generated_text"]
    for name in three_adapters:
        other = preds[preds["adapter"] == name].set_index(["task", "id"])["generated_text"]
        assert (other.loc[base.index] != base).any()
    assert (res[res["adapter"] != "base"]["changed_vs_base"] > 0).all()
    assert (tmp_path / "results.csv").is_file()


def test_cli_eval_and_broken_adapter(ray_local, tiny_model, three_adapters, tmp_path, capsys):
    args = [
        "eval",
        "model.source=tiny-random",
        "model.dtype=float32",
        f"run.storage_path={tmp_path}",
        "run.run_id=e1",
        "eval.tasks=[news_sentiment]",
        "eval.size=3",
        "generate.max_new_tokens=4",
        f"eval.adapters={{a: {three_adapters['a']}}}",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "| base | news_sentiment |" in out and "| a | news_sentiment |" in out
    zero = lora_adapter(tiny_model, tmp_path / "zero", 9, trained=False)  # changes nothing
    bad = [*args[:-1], "run.run_id=e2", f"eval.adapters={{z: {zero}}}"]
    assert main(bad) == 2
    assert "adapter 'z'" in capsys.readouterr().err
    missing = [*args[:-1], "run.run_id=e3", f"eval.adapters={{m: {tmp_path / 'nope'}}}"]
    assert main(missing) == 2
    assert "eval.adapters.m" in capsys.readouterr().err


@needs_vllm
def test_cli_eval_on_vllm_three_adapters_parity_canary(
    ray_local, tiny_vllm_model, tmp_path, capsys
):
    d = tmp_path / "ad"
    # r=8, 12 (vLLM pads to 16) and 16, alpha = 2r as after training
    ads = {
        n: lora_adapter(tiny_vllm_model, d / n, s, r=r)
        for n, s, r in (("a", 1, 8), ("b", 2, 12), ("c", 3, 16))
    }
    args = [
        "eval",
        f"model.source={tiny_vllm_model}",
        "model.dtype=float32",
        "generate.engine=vllm",
        "generate.max_new_tokens=4",
        f"run.storage_path={tmp_path}",
        "eval.tasks=[news_sentiment]",
        "eval.size=3",
        "eval.parity_probes=3",
    ]
    good = "{" + ", ".join(f"{k}: {v}" for k, v in ads.items()) + "}"
    assert main([*args, "run.run_id=v1", f"eval.adapters={good}"]) == 0
    out = capsys.readouterr().out
    for name in ("base", "a", "b", "c"):
        assert f"| {name} | news_sentiment |" in out
    parity = (tmp_path / "eval" / "v1" / "parity.json").read_text()
    assert '"a":1.0' in parity.replace(" ", "")
    zero = lora_adapter(tiny_vllm_model, d / "zero", 9, trained=False)
    assert main([*args, "run.run_id=v2", f"eval.adapters={{a: {ads['a']}, z: {zero}}}"]) == 2
    assert "'z'" in capsys.readouterr().err
