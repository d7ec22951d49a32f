"""`raysys eval CONFIG` (`raysys.evaluate.job`) before any engine: adapters checked (and
refused by name), the rows each task needs, and a job with nothing to evaluate refused
before anything is written. The engine pass and the vLLM canary:
tests/integration/test_eval.py."""

from __future__ import annotations

import pytest

from raysys.config import EvalConfig, load_config
from raysys.errors import UserError
from raysys.evaluate.job import check_adapters, run_eval_job, task_needs, task_rows
from tests.fixtures import REPO


def _cfg(*overrides: str) -> EvalConfig:
    return load_config(EvalConfig, REPO / "configs" / "eval.yaml", list(overrides))


def test_adapters_are_checked_and_resolved(tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    (good / "adapter_config.json").write_text("{}")
    assert check_adapters({"sft": str(good / ".." / "good")}) == {"sft": str(good)}
    (tmp_path / "bad").mkdir()
    with pytest.raises(UserError, match=r"eval.adapters.dpo: .*bad is not a PEFT adapter dir"):
        check_adapters({"sft": str(good), "dpo": str(tmp_path / "bad")})
    assert check_adapters({}) == {}


def test_each_task_needs_its_split_at_the_eval_size():
    cfg = _cfg("eval.tasks=[news_sentiment,fomc_stance]", "eval.size=7", "eval.split=test")
    needs = [(n.ref, n.sizes) for n in task_needs(cfg)]
    assert needs == [("news_sentiment", {"test": 7}), ("fomc_stance", {"test": 7})]
    rows = task_rows(cfg)
    assert {k: len(r) for k, (_, r) in rows.items()} == {"news_sentiment": 7, "fomc_stance": 7}
    assert rows["fomc_stance"][0].name == "fomc_stance"


def test_a_split_a_task_lacks_is_refused():
    cfg = _cfg("eval.tasks=[fomc_stance]", "eval.split=validation", "eval.size=4")
    with pytest.raises(UserError, match=r"task fomc_stance has only the split\(s\) test"):
        task_rows(cfg)


def test_nothing_to_evaluate_is_refused_before_anything_is_written(tmp_path, tiny_model, no_ray):

    storage = tmp_path / "runs"
    cfg = _cfg(
        f"run.storage_path={storage}",
        "model.source=tiny-random",
        "eval.include_base=false",
        "ray.num_cpus=2",
    )
    with pytest.raises(UserError, match=r"eval: nothing to evaluate"):
        run_eval_job(cfg)
    assert not storage.exists()


def test_a_bad_adapter_is_refused_before_anything_is_written(tmp_path, tiny_model):
    storage = tmp_path / "runs"
    cfg = _cfg(
        f"run.storage_path={storage}",
        "model.source=tiny-random",
        f"eval.adapters={{sft: {tmp_path}}}",
        "ray.num_cpus=2",
    )
    with pytest.raises(UserError, match=r"eval.adapters.sft: .* is not a PEFT adapter dir"):
        run_eval_job(cfg)
    assert not storage.exists()


def test_a_file_uri_names_the_local_adapter(tmp_path):
    (tmp_path / "adapter_config.json").write_text("{}")
    cfg = _cfg(f"eval.adapters={{sft: file://{tmp_path}}}")
    assert check_adapters(cfg.eval.adapters) == {"sft": str(tmp_path)}
