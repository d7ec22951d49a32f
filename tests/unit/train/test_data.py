"""The rows a training run reads (`raysys.train.data`): a given parquet, or a cocktail
materialised into the storage's cache (`raysys train` and `raysys data mix`), and what
is refused before anything is built."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from raysys.config import TrainConfig, load_config
from raysys.errors import UserError
from raysys.train.data import mix_file, training_data
from tests.fixtures import REPO

MIX = REPO / "configs" / "cocktails" / "sentiment_mix.yaml"


def _cfg(*overrides: str) -> TrainConfig:
    return load_config(TrainConfig, REPO / "configs" / "train_sft.yaml", list(overrides))


def test_a_given_parquet_is_used_where_it_is(tmp_path):
    data = tmp_path / "rows.parquet"
    pd.DataFrame({"messages": [[]]}).to_parquet(data)
    assert training_data(
        _cfg("data.cocktail=null", f"data.path={data}"), tmp_path / "store"
    ) == str(data.resolve())
    assert not (tmp_path / "store").exists()


def test_a_missing_parquet_is_refused(tmp_path):
    with pytest.raises(UserError, match=r"data.path: .*missing.parquet not found"):
        training_data(
            _cfg("data.cocktail=null", f"data.path={tmp_path / 'missing.parquet'}"), tmp_path
        )


def test_a_cocktail_is_built_into_the_storage_cache_once(tmp_path):
    cfg = _cfg("data.train_size=20", "data.fraction=0.5")
    path = Path(training_data(cfg, tmp_path))
    assert path.is_relative_to(tmp_path) and path.suffix == ".parquet"
    rows = pd.read_parquet(path)
    counts = rows["task"].value_counts().to_dict()
    assert counts["news_sentiment"] == 2 * counts["price_direction"]  # weights 2:1
    assert {"general_instruct", "arith_math"} <= set(counts)  # the regularisers
    assert training_data(cfg, tmp_path) == str(path)  # the cached file


@pytest.mark.parametrize(
    ("fraction", "size", "match"),
    [
        (0.0, 10, r"--fraction must be in \(0, 1\], got 0.0"),
        (1.5, 10, r"--fraction must be in \(0, 1\], got 1.5"),
        (0.5, 0, r"--train-size must be >= 1, got 0"),
    ],
)
def test_mix_refuses_bad_arguments_before_reading_anything(tmp_path, fraction, size, match):
    with pytest.raises(UserError, match=match):
        mix_file(tmp_path / "no-such.yaml", fraction, 0, str(tmp_path / "store"), size)
    assert not (tmp_path / "store").exists()


def test_mix_refuses_a_missing_cocktail_and_a_bad_storage(tmp_path):
    with pytest.raises(UserError, match=r"cocktail file"):
        mix_file(tmp_path / "no-such.yaml", 0.5, 0, str(tmp_path / "store"), 10)
    with pytest.raises(UserError, match=r"--storage: credentials in the URI"):
        mix_file(MIX, 0.5, 0, "s3://KEY:SECRET@bucket/x", 10)
    assert not (tmp_path / "store").exists()


def test_mix_writes_the_cocktail_and_names_its_folder(tmp_path):
    where, counts = mix_file(MIX, 1.0, 0, str(tmp_path), 12)
    folder = Path(where)
    assert folder.is_relative_to(tmp_path) and folder.is_dir()
    (parquet,) = folder.glob("*.parquet")
    assert pd.read_parquet(parquet)["task"].value_counts().to_dict() == counts
    assert counts["news_sentiment"] == 2 * counts["price_direction"]


def test_a_file_uri_names_the_local_parquet(tmp_path):
    data = tmp_path / "rows.parquet"
    pd.DataFrame({"messages": [[]]}).to_parquet(data)
    cfg = _cfg("data.cocktail=null", f"data.path=file://{data}")
    assert training_data(cfg, tmp_path / "store") == str(data)
