"""The hf engine on Ray Data: one engine load, base + several adapters, fixed columns, canary."""

from __future__ import annotations

import pytest

from raysys.config import GenerateSection
from raysys.engines.base import OUTPUT_COLUMNS, Sampling
from raysys.engines.hf import HFGenerator, generate
from raysys.errors import AdapterIgnoredError
from raysys.tasks import build_splits, get_task
from tests.integration.engine_helpers import lora_adapter

GREEDY = Sampling(max_new_tokens=4)


@pytest.fixture(scope="module")
def adapters(tiny_model, tmp_path_factory):
    d = tmp_path_factory.mktemp("adapters")
    return {
        "a": lora_adapter(tiny_model, d / "a", 1, trained=True),
        "b": lora_adapter(tiny_model, d / "b", 2, trained=True),
        "zero": lora_adapter(tiny_model, d / "zero", 3, trained=False),
    }


def test_canary_refuses_an_adapter_that_changes_nothing(tiny_model, adapters):
    with pytest.raises(AdapterIgnoredError, match="'zero'"):
        HFGenerator(
            tiny_model, {"a": adapters["a"], "zero": adapters["zero"]}, GREEDY, dtype="float32"
        )
    gen = HFGenerator(tiny_model, {"a": adapters["a"]}, GREEDY, dtype="float32")
    assert gen.canary["a"] > 0


def test_one_pass_serves_base_and_adapters(ray_local, tiny_model, adapters):
    task = get_task("news_sentiment")
    rows = build_splits("news_sentiment", {"test": 6}, 0)["test"]
    names = ["", "a", "b"]
    work = [
        {"id": r["id"], "messages": task.messages(r), "adapter": n} for n in names for r in rows
    ]
    cfg = GenerateSection(max_new_tokens=5, batch_size=4, concurrency=1)
    df = generate(work, tiny_model, {"a": adapters["a"], "b": adapters["b"]}, cfg, "float32")
    assert len(df) == len(work)
    assert set(OUTPUT_COLUMNS) <= set(df.columns)
    assert sorted(df["adapter"].unique()) == names
    assert df.groupby("adapter")["id"].nunique().tolist() == [6, 6, 6]
    assert df["num_generated_tokens"].between(1, 5).all()
    assert (df["overlong"] == (df["finish_reason"] == "length")).all()
    assert (df["num_input_tokens"] > 20).all()
    assert df["mean_logprob"].notna().all() and (df["mean_logprob"] <= 0).all()
    # Each adapter really changes the outputs (random LoRA on a random model).
    by = df.pivot(index="id", columns="adapter", values="generated_text")
    assert (by[""] != by["a"]).any() and (by["a"] != by["b"]).any()
    # Batched-and-sorted generation equals one-by-one generation for the base model.
    single = HFGenerator(tiny_model, {}, Sampling(max_new_tokens=5), batch_size=1, dtype="float32")
    ref = single(df[df["adapter"] == ""][["id", "messages", "adapter"]].copy())
    base = df[df["adapter"] == ""].set_index("id")["generated_text"]
    assert ref["generated_text"].tolist() == base.loc[ref["id"]].tolist()


def _base_rows(n: int) -> list[dict]:
    """`n` news_sentiment test prompts for the base model."""
    task = get_task("news_sentiment")
    return [
        {"id": r["id"], "messages": task.messages(r), "adapter": ""}
        for r in build_splits("news_sentiment", {"test": n}, 0)["test"]
    ]


def test_an_engine_actor_killed_mid_pass_is_restarted_and_no_row_is_lost(
    ray_local, tiny_model, monkeypatch
):
    """The actor process exits (os._exit) while holding its 2nd block; Ray Data restarts
    the actor and retries the block: every row comes back exactly once."""
    monkeypatch.setenv("RAYSYS_FAULTS", "engine_exit_at_block=2")
    rows = _base_rows(16)
    gen = GenerateSection(engine="hf", max_new_tokens=4, batch_size=8, concurrency=1)
    out = generate(rows, tiny_model, {}, gen, "float32")
    assert sorted(out["id"]) == sorted(r["id"] for r in rows)
    assert out["generated_text"].notna().all()


def test_an_engine_error_on_one_block_is_retried_and_counted(
    ray_local, tiny_model, monkeypatch, caplog
):
    """Generating the 2nd block raises once: the block is retried in the actor, every row
    comes back exactly once, and the driver reports how many rows were retried."""
    monkeypatch.setenv("RAYSYS_FAULTS", "engine_raise_at_block=2")
    rows = _base_rows(8)
    # batch 2: 4 blocks of 2 rows
    gen = GenerateSection(engine="hf", max_new_tokens=2, batch_size=2, concurrency=1)
    with caplog.at_level("WARNING"):
        out = generate(rows, tiny_model, {}, gen, "float32")
    assert sorted(out["id"]) == sorted(r["id"] for r in rows)
    assert "attempts" not in out.columns
    assert "generation: 2 of 8 rows were retried after engine errors" in caplog.text


@pytest.mark.parametrize(
    "concurrency, num_cpus, cluster, fixed, expect",
    [
        (2, 1.0, 2.0, True, 2),  # fits
        (3, 1.0, 2.0, True, 2),  # a fixed local Ray: shrunk to what fits, with a warning
        (4, 0.5, 2.0, True, 4),  # fractions fit
        (3, 1.0, 2.0, False, 3),  # an autoscaling cluster may add nodes: kept, warned
        (1, 3.0, 2.0, False, 1),
    ],
)
def test_engine_pool_is_sized_to_what_the_cluster_can_hold(
    concurrency, num_cpus, cluster, fixed, expect, caplog
):
    from raysys.config import GenerateSection
    from raysys.engines.hf import actor_pool_size

    gen = GenerateSection(concurrency=concurrency, num_cpus=num_cpus)
    with caplog.at_level("WARNING"):
        assert actor_pool_size(gen, {"CPU": cluster}, fixed) == expect
    assert ("generate.concurrency" in caplog.text) == (concurrency * num_cpus > cluster)


def test_an_engine_actor_no_node_can_hold_is_refused_on_a_fixed_ray():
    from raysys.config import GenerateSection
    from raysys.engines.base import ResourceBudgetError
    from raysys.engines.hf import actor_pool_size

    with pytest.raises(ResourceBudgetError, match="generate.num_cpus=3 per engine actor"):
        actor_pool_size(GenerateSection(num_cpus=3), {"CPU": 2.0}, True)


def test_a_pool_bigger_than_the_local_ray_runs_shrunk(ray_local, tiny_model, caplog):
    """3 actors asked, 2 CPUs: the pass runs on 2 actors (no wait for a third) and says so."""
    from raysys.config import GenerateSection
    from raysys.engines.hf import generate

    rows = [
        {"id": f"r{i}", "messages": [{"role": "user", "content": f"q {i}"}], "adapter": None}
        for i in range(6)
    ]
    gen = GenerateSection(engine="hf", concurrency=3, max_new_tokens=2)
    with caplog.at_level("WARNING"):
        out = generate(rows, tiny_model, None, gen, "float32")
    assert sorted(out["id"]) == sorted(r["id"] for r in rows)
    assert "running 2 actor(s)" in caplog.text


def test_a_sampling_max_new_tokens_overrides_the_config(ray_local, tiny_model):
    """A `max_new_tokens` in `sampling` is honoured by the hf engine, as by vllm (it once
    generated `generate.max_new_tokens` whatever `sampling` said)."""
    from raysys.engines import generate as generate_any

    rows = _base_rows(4)
    gen = GenerateSection(engine="hf", max_new_tokens=2, batch_size=4, concurrency=1)
    out = generate_any(rows, tiny_model, {}, gen, "float32", sampling={"max_new_tokens": 6})
    cut = out[out["finish_reason"] == "length"]
    assert len(cut) > 0 and (cut["num_generated_tokens"] == 6).all()
    assert out["num_generated_tokens"].between(1, 6).all()


def test_every_sampling_field_reaches_transformers(tiny_model):
    """top_k=1 sampling is greedy decoding at any temperature; a seed makes a block's
    samples reproducible; max_new_tokens caps every row; n is the driver's (rows repeated)."""
    import pandas as pd

    rows = pd.DataFrame(_base_rows(4))
    greedy = HFGenerator(tiny_model, {}, Sampling(max_new_tokens=5), dtype="float32")(rows.copy())
    top1 = Sampling(max_new_tokens=5, temperature=1.5, top_k=1, seed=0)
    same = HFGenerator(tiny_model, {}, top1, dtype="float32")(rows.copy())
    assert same["generated_text"].tolist() == greedy["generated_text"].tolist()
    hot = HFGenerator(tiny_model, {}, Sampling(max_new_tokens=5, temperature=1.5, seed=3))
    first, again = hot(rows.copy()), hot(rows.copy())
    assert first["generated_text"].tolist() == again["generated_text"].tolist()
    assert first["generated_text"].tolist() != greedy["generated_text"].tolist()
    assert first["num_generated_tokens"].between(1, 5).all()
    with pytest.raises(ValueError, match="one output per row, got n=2"):
        HFGenerator(tiny_model, {}, Sampling(max_new_tokens=5, temperature=1.0, n=2))
