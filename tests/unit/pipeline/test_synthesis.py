"""A synthesis round's training rows (`raysys.pipeline.synthesis.round_data`): gold and
kept synthetic rows, shuffled by the run seed. Labeling itself needs an engine:
tests/integration/test_pipeline.py."""

from __future__ import annotations

import pandas as pd
import pytest

from raysys.config import PipelineConfig, load_config
from raysys.errors import UserError
from raysys.pipeline.stages import Stages, Study
from raysys.pipeline.synthesis import round_data
from tests.fixtures import REPO

TINY = REPO / "configs" / "pipeline_tiny.yaml"


def _rows(source: str, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [f"{source}-{i}" for i in range(n)],
            "task": "news_sentiment",
            "messages": [[{"role": "user", "content": f"q{i}"}] for i in range(n)],
            "gold": "positive",
            "source": source,
            "pred": "positive",  # synthesis writes more columns than training reads
        }
    )


def _study(tmp_path, gold: int | None, seed: int = 0) -> Study:
    cfg = load_config(PipelineConfig, TINY, [f"run.seed={seed}"])
    study = Study(cfg, "unused", tmp_path, Stages(tmp_path, 1))
    if gold is not None:
        study.gold_path = str(tmp_path / "gold.parquet")
        _rows("gold", gold).to_parquet(study.gold_path)
    return study


def test_gold_and_synthetic_rows_are_mixed_by_the_seed(tmp_path):
    syn = tmp_path / "synthetic.parquet"
    _rows("synth:news_sentiment", 6).to_parquet(syn)
    (tmp_path / "a").mkdir()
    path = round_data(_study(tmp_path, gold=10), tmp_path / "a", str(syn))
    rows = pd.read_parquet(path)
    assert path == str(tmp_path / "a" / "train.parquet")
    assert list(rows.columns) == ["id", "task", "messages", "gold", "source"]
    assert rows["source"].value_counts().to_dict() == {"gold": 10, "synth:news_sentiment": 6}
    assert rows["id"].tolist() != sorted(rows["id"].tolist())  # shuffled
    (tmp_path / "b").mkdir()
    again = pd.read_parquet(round_data(_study(tmp_path, gold=10), tmp_path / "b", str(syn)))
    assert again["id"].tolist() == rows["id"].tolist()  # the same seed, the same order
    (tmp_path / "c").mkdir()
    other = pd.read_parquet(round_data(_study(tmp_path, 10, seed=1), tmp_path / "c", str(syn)))
    assert other["id"].tolist() != rows["id"].tolist()


def test_a_round_on_top_of_the_current_model_trains_on_synthetic_rows_only(tmp_path):
    syn = tmp_path / "synthetic.parquet"
    _rows("synth:news_sentiment", 4).to_parquet(syn)
    path = round_data(_study(tmp_path, gold=10), tmp_path, str(syn), with_gold=False)
    assert set(pd.read_parquet(path)["source"]) == {"synth:news_sentiment"}
    no_gold = round_data(_study(tmp_path, gold=None), tmp_path, str(syn))
    assert len(pd.read_parquet(no_gold)) == 4


def test_nothing_to_train_on_is_refused(tmp_path):
    syn = tmp_path / "synthetic.parquet"
    _rows("synth:news_sentiment", 0).to_parquet(syn)
    with pytest.raises(UserError, match=r"no gold rows and no synthetic row was kept"):
        round_data(_study(tmp_path, gold=None), tmp_path, str(syn))
    assert not (tmp_path / "train.parquet").exists()
