"""What a sweep prepares before Tune (`raysys.sweep.prepare`): the rows every task needs,
read and checked without writing; every distinct training set built once (and found in
the cache the second time), checked on the tiny model's tokenizer. No Ray."""

from __future__ import annotations

import pytest

from raysys.config import SweepConfig, load_config
from raysys.sweep.grid import expand_grid
from raysys.sweep.prepare import prepare_data, prepare_tasks, task_needs
from raysys.train.guards import DataGuardError
from tests.fixtures import REPO

TINY = REPO / "configs" / "sweep_tiny.yaml"


def _cfg(tmp_path, *overrides: str) -> SweepConfig:
    args = [f"run.storage_path={tmp_path / 'runs'}", "run.run_id=s1", *overrides]
    return load_config(SweepConfig, TINY, args)


def test_trained_tasks_get_train_rows_and_every_task_its_held_out_splits(tmp_path):
    needs = {n.ref: n.sizes for n in task_needs(_cfg(tmp_path))}
    held = {"validation": 8, "test": 16}
    assert needs == {
        "news_sentiment": {**held, "train": 32},
        "price_direction": {**held, "train": 32},
    }


def test_regularisers_in_use_and_eval_only_tasks_are_needed_too(tmp_path):
    cfg = _cfg(tmp_path, "sweep.math=[0,0.1]", "sweep.eval_tasks=[news_sentiment,fomc_stance]")
    needs = [(n.ref, n.sizes) for n in task_needs(cfg)]
    assert needs == [
        ("news_sentiment", {"validation": 8, "test": 16, "train": 32}),
        ("price_direction", {"validation": 8, "test": 16, "train": 32}),
        ("arith_math", {"validation": 8, "test": 16, "train": 32}),  # sweep.math > 0
        ("news_sentiment", {"validation": 8, "test": 16, "train": 32}),
        ("fomc_stance", {"test": 16}),  # test-only: evaluated, never trained on
    ]
    assert "general_instruct" not in {r for r, _ in needs}  # sweep.general is 0


def test_prepare_tasks_reads_every_task_and_writes_nothing(tmp_path):
    prepared = prepare_tasks(_cfg(tmp_path), resume=False)
    assert sorted(prepared.folders) == ["news_sentiment", "price_direction"]
    assert prepared.folders["news_sentiment"] == (
        tmp_path.resolve() / "runs" / "sweep_tiny" / "s1" / "tasks" / "news_sentiment"
    )
    sizes = {n.ref: {s: len(r) for s, r in rows.items()} for n, rows, _ in prepared.todo}
    assert sizes["news_sentiment"] == {"train": 32, "validation": 8, "test": 16}
    assert not (tmp_path / "runs").exists()


def test_each_distinct_dataset_is_built_once_then_cached(tmp_path, tiny_model):
    cfg = _cfg(tmp_path, "sweep.seeds=[0,1]")
    trials = expand_grid(cfg)
    assert len(trials) == 8  # 2 cocktails x 2 fractions x 2 seeds
    by_trial, stats = prepare_data(cfg, trials, tiny_model)
    # seeds share their data: 4 datasets for 8 trials
    assert stats == {"datasets": 4, "data_built": 4, "data_cached": 0}
    assert set(by_trial) == {t.trial_id for t in trials}
    for t in trials:
        d = by_trial[t.trial_id]
        assert d["rows"] == sum(d["counts"].values()) == round(32 * t.fraction)
        assert set(d["counts"]) == {c for c, _ in t.components}
    same = [by_trial[t.trial_id]["path"] for t in trials if t.cocktail == trials[0].cocktail]
    assert len(set(same)) == 2  # one file per fraction, whatever the seed
    _, again = prepare_data(cfg, trials, tiny_model)
    assert again == {"datasets": 4, "data_built": 0, "data_cached": 4}


def test_training_data_that_would_lose_its_eos_is_refused_here(tmp_path, tiny_model):
    cfg = _cfg(tmp_path, "train.max_seq_length=16")
    with pytest.raises(DataGuardError, match=r"lose their EOS .* train.max_seq_length=16"):
        prepare_data(cfg, expand_grid(cfg), tiny_model)
