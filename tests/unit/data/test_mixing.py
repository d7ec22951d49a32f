"""Cocktails over the real task registry, and `raysys data mix`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from raysys.cli import main
from raysys.data.cocktail import parse_spec
from raysys.data.mixing import materialize_cocktail
from tests.fixtures import REPO

SHIPPED = REPO / "configs" / "cocktails" / "sentiment_mix.yaml"


def _spec():
    return parse_spec(yaml.safe_load(SHIPPED.read_text()))


def test_registry_cocktail_is_nested_and_chat_formatted(tmp_path):
    half, counts = materialize_cocktail(_spec(), 0.5, 0, tmp_path, train_size=120)
    quarter, _ = materialize_cocktail(_spec(), 0.25, 0, tmp_path, train_size=120)
    a, b = pd.read_parquet(half), pd.read_parquet(quarter)
    assert set(b["id"]) < set(a["id"])
    assert counts == {
        "news_sentiment": 60,
        "price_direction": 30,
        "general_instruct": 11,
        "arith_math": 11,
    }
    assert a["task"].value_counts().to_dict() == counts
    last = a["messages"].iloc[0][-1]
    assert last["role"] == "assistant" and last["content"] == f"Answer: {a['gold'].iloc[0]}"
    # A different train size is different data: never a stale reuse.
    other, _ = materialize_cocktail(_spec(), 0.5, 0, tmp_path, train_size=150)
    assert other != half


def test_cli_mix_builds_then_reuses(tmp_path, capsys):
    args = [
        "data",
        "mix",
        str(SHIPPED),
        "--fraction",
        "0.5",
        "--storage",
        str(tmp_path),
        "--train-size",
        "60",
    ]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "news_sentiment     30" in first and "price_direction    15" in first
    path = Path(first.strip().splitlines()[-1].removeprefix("Outputs: "))
    mtime = path.stat().st_mtime_ns
    assert main(args) == 0 and capsys.readouterr().out == first
    assert path.stat().st_mtime_ns == mtime


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            {"components": [{"task": "fomc_stance", "weight": 1}]},
            "fomc_stance has only a test split",
        ),
        ({"components": [{"task": "nope", "weight": 1}]}, "unknown task 'nope'"),
        ({"components": [{"task": "news_sentiment", "weight": 0}]}, "all weights are 0"),
        ({"components": [{"task": "news_sentiment"}], "general": 1.5}, "cocktail.general"),
    ],
)
def test_cli_mix_refuses_bad_specs_and_writes_nothing(tmp_path, capsys, spec, message):
    f = tmp_path / "spec.yaml"
    f.write_text(yaml.safe_dump(spec))
    store = tmp_path / "store"
    assert main(["data", "mix", str(f), "--storage", str(store)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not store.exists()


def test_a_yaml_task_file_mixes_like_a_builtin(tmp_path, capsys, csv_task):
    task_file = csv_task("mix_tone", {"train": 50})
    spec = tmp_path / "mix.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "components": [
                    {"task": str(task_file), "weight": 1},
                    {"task": "price_direction", "weight": 1},
                ]
            }
        )
    )
    args = ["data", "mix", str(spec), "--storage", str(tmp_path / "s"), "--train-size", "50"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "mix_tone           50" in out and "price_direction    50" in out
    df = pd.read_parquet(out.strip().splitlines()[-1].removeprefix("Outputs: "))
    tone = df[df["task"] == "mix_tone"].iloc[0]
    assert tone["messages"][0]["content"].startswith("Tone?")
