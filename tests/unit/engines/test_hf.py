"""The `hf` engine (`raysys.engines.hf`) without Ray: the actor class itself run on
pandas blocks of the tiny model (outputs per row in order, EOS and length cuts, seeded
sampling, block retries, adapters and their canary), the actor pool's size and its
blocks. The Ray Data pool around it: tests/integration/test_engine_hf.py."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from raysys.config.sections import GenerateSection
from raysys.engines.base import BASE, OUTPUT_COLUMNS, ResourceBudgetError, Sampling
from raysys.engines.hf import (
    PREFIX_MIN_TOKENS,
    HFGenerator,
    _blocks,
    _faults,
    _pad,
    actor_pool_size,
)
from raysys.errors import AdapterIgnoredError

GREEDY = Sampling(max_new_tokens=6)


def _batch(n: int = 4, adapter: str = BASE) -> pd.DataFrame:
    prompts = [
        "Shares rose.",
        "The central bank held rates steady for a third meeting.",
        "Hi",
        "Net income fell 3%.",
    ]
    return pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(n)],
            "messages": [[{"role": "user", "content": prompts[i % 4]}] for i in range(n)],
            "adapter": adapter,
        }
    )


@pytest.fixture(scope="module")
def gen(tiny_model) -> HFGenerator:
    return HFGenerator(tiny_model, None, GREEDY, batch_size=3, dtype="float32", torch_threads=1)


@pytest.fixture(scope="module")
def adapter_dir(tiny_model, tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("lora")
    torch.manual_seed(0)
    cfg = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model), cfg).save_pretrained(out)
    return str(out)


def test_every_row_gets_its_outputs_in_order(gen):
    out = gen(_batch())
    assert out["id"].tolist() == ["r0", "r1", "r2", "r3"]
    assert set(OUTPUT_COLUMNS) <= set(out.columns) and (out["attempts"] == 1).all()
    for rec in out.to_dict("records"):
        prompt = gen._render(rec["messages"])
        assert rec["num_input_tokens"] == len(
            gen.tok(prompt, add_special_tokens=False)["input_ids"]
        )
        assert 1 <= rec["num_generated_tokens"] <= 6
        assert rec["overlong"] == (rec["finish_reason"] == "length")
    # each row alone gives what it gave in the block: re-batching by length keeps rows apart
    alone = gen(_batch().iloc[[1]])
    assert alone["generated_text"].tolist() == [out["generated_text"][1]]
    assert gen(_batch())["generated_text"].tolist() == out["generated_text"].tolist()


def test_generation_stops_at_eos_and_counts_it(gen):
    eos = gen.tok.eos_token_id
    text_ids = gen.tok("Answer: positive", add_special_tokens=False)["input_ids"]
    n = len(text_ids)
    lps = [-1.0] * n + [-3.0, -50.0, -50.0]  # the EOS counts; what follows it is padding
    stopped = gen._row([*text_ids, eos, 5, 6], n_input=10, logprobs=lps)
    assert stopped["generated_text"] == "Answer: positive"
    assert stopped["num_generated_tokens"] == n + 1
    assert (stopped["finish_reason"], stopped["overlong"]) == ("stop", False)
    assert stopped["mean_logprob"] == pytest.approx((-n - 3.0) / (n + 1))
    cut = gen._row(text_ids, n_input=10, logprobs=[-0.5] * n)
    assert cut["mean_logprob"] == -0.5
    assert (cut["num_generated_tokens"], cut["finish_reason"], cut["overlong"]) == (
        len(text_ids),
        "length",
        True,
    )


def test_one_output_per_row_only(tiny_model):
    with pytest.raises(ValueError, match=r"one output per row, got n=3"):
        HFGenerator(tiny_model, None, Sampling(max_new_tokens=4, temperature=1.0, n=3))


def test_sampling_is_seeded_by_the_block_not_the_actor(tiny_model):
    s = Sampling(max_new_tokens=8, temperature=1.0, seed=3)
    a = HFGenerator(tiny_model, None, s, dtype="float32")
    b = HFGenerator(tiny_model, None, s, dtype="float32")
    batch = _batch().assign(sample=[0, 1, 2, 3])
    first = a(batch)["generated_text"].tolist()
    assert b(batch)["generated_text"].tolist() == first  # another actor, the same samples
    other = HFGenerator(tiny_model, None, Sampling(max_new_tokens=8, temperature=1.0, seed=4))
    assert other(batch)["generated_text"].tolist() != first


def test_a_failing_block_is_retried_in_place(tiny_model, tmp_path):
    faults = {"engine_raise_at_block": 1, "marker": str(tmp_path / "died")}
    g = HFGenerator(tiny_model, None, GREEDY, dtype="float32", faults=faults)
    out = g(_batch(2))
    assert (out["attempts"] == 2).all() and len(out) == 2
    assert (tmp_path / "died.raised").exists()


def test_a_row_for_an_adapter_not_loaded_fails_the_block(gen):
    with pytest.raises(KeyError, match=r"adapter 'sft' was not loaded; loaded: \[\]"):
        gen(_batch(2, adapter="sft"))


def test_adapters_serve_their_rows_and_base_rows_stay_the_base(gen, tiny_model, adapter_dir):
    g = HFGenerator(tiny_model, {"sft": adapter_dir}, GREEDY, dtype="float32")
    assert g.canary["sft"] > 0
    mixed = pd.concat([_batch(4), _batch(4, adapter="sft")], ignore_index=True)
    out = g(mixed)
    assert out["adapter"].tolist() == [BASE] * 4 + ["sft"] * 4
    base_alone = gen(_batch(4))["generated_text"].tolist()
    assert out["generated_text"][:4].tolist() == base_alone  # the adapter is off for base rows


def test_the_model_runs_on_the_device_named_and_inputs_follow_it(gen, tiny_model, adapter_dir):
    device = "cuda" if torch.cuda.is_available() else "cpu"  # bench/gpu_lora.py: "cuda"
    g = HFGenerator(tiny_model, {"sft": adapter_dir}, GREEDY, dtype="float32", device=device)
    assert g.model.device.type == device and g.canary["sft"] > 0
    out = g(_batch(4))
    assert (out["num_generated_tokens"] > 0).all()
    if device == "cpu":
        assert out["generated_text"].tolist() == gen(_batch(4))["generated_text"].tolist()


def test_an_adapter_that_changes_nothing_is_refused(tiny_model, tmp_path):
    # PEFT's default init: B = 0, an adapter that was never trained
    cfg = LoraConfig(r=2, target_modules=["q_proj"])
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model), cfg).save_pretrained(tmp_path)
    with pytest.raises(AdapterIgnoredError, match=r"adapter 'untrained' .* leaves the base"):
        HFGenerator(tiny_model, {"untrained": str(tmp_path)}, GREEDY, dtype="float32")


# --------------------------------------------------------------------------- prefix cache

INSTRUCTION = (
    "Read the headline and answer with one word: positive, negative or neutral. Think "
    "about what it means for the company's shareholders before you answer. Headline: "
)
HEADLINES = [
    "Shares rose.",
    "Net income fell 3% on weaker demand in Europe.",
    "The board met.",
    "Guidance was cut for the year.",
    "Hi",
    "Revenue doubled.",
]


def _shared(adapter: str = BASE) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [f"{adapter}{i}" for i in range(len(HEADLINES))],
            "messages": [[{"role": "user", "content": INSTRUCTION + h}] for h in HEADLINES],
            "adapter": adapter,
        }
    )


def _widths(g: HFGenerator, batch: pd.DataFrame) -> list[tuple[int, int]]:
    """(rows, tokens) of each forward pass the model runs for `batch`."""
    seen: list[tuple[int, int]] = []
    inner = g.model.get_base_model() if g.adapters else g.model
    embed = inner.get_input_embeddings()
    hook = embed.register_forward_hook(lambda m, args, out: seen.append(tuple(args[0].shape)))
    try:
        g(batch)
    finally:
        hook.remove()
    return seen


def test_a_shared_prompt_prefix_is_computed_once_and_changes_no_output(tiny_model, adapter_dir):
    kw = {"batch_size": 6, "dtype": "float32", "torch_threads": 1}
    cached = HFGenerator(tiny_model, {"sft": adapter_dir}, GREEDY, **kw)
    plain = HFGenerator(tiny_model, {"sft": adapter_dir}, GREEDY, prefix_cache=False, **kw)
    assert cached.prefix_cache and not plain.prefix_cache
    prompts = [cached._render(m) for m in _shared()["messages"]]
    ids = cached.tok(prompts, add_special_tokens=False)["input_ids"]
    shared = cached._prefix_plan(ids)
    assert shared >= PREFIX_MIN_TOKENS and len({tuple(x[:shared]) for x in ids}) == 1
    width = max(len(x) for x in ids)
    # the prefix runs once (1 row), then only each row's own tokens; plain runs all of them
    assert _widths(cached, _shared())[:2] == [(1, shared), (6, width - shared)]
    assert _widths(plain, _shared())[0] == (6, width)

    mixed = pd.concat([_shared(), _shared("sft")], ignore_index=True)
    a, b = cached(mixed), plain(mixed)
    cols = ["generated_text", "num_generated_tokens", "num_input_tokens", "finish_reason"]
    assert a[cols].equals(b[cols])  # the base rows and the adapter's rows alike
    assert a["mean_logprob"].tolist() == pytest.approx(b["mean_logprob"].tolist(), abs=1e-4)
    assert a["num_input_tokens"].tolist()[:6] == [len(x) for x in ids]
    s = Sampling(max_new_tokens=8, temperature=1.0, seed=3)
    sampled = HFGenerator(tiny_model, None, s, **kw)
    unsampled = HFGenerator(tiny_model, None, s, prefix_cache=False, **kw)
    batch = _shared().assign(sample=range(6))
    assert sampled(batch)["generated_text"].tolist() == unsampled(batch)["generated_text"].tolist()


def test_the_prefix_plan_shares_only_what_is_worth_it():
    long = list(range(100, 100 + PREFIX_MIN_TOKENS))
    assert HFGenerator._prefix_plan(None, [long + [1, 2]]) == 0  # type: ignore[arg-type]
    assert HFGenerator._prefix_plan(None, [long[:-1] + [1], long[:-1] + [2]]) == 0  # type: ignore[arg-type]
    assert HFGenerator._prefix_plan(None, [long + [1, 2], long + [3]]) == len(long)  # type: ignore[arg-type]
    # identical prompts: each row keeps its last token (its first step's logits are its own)
    assert HFGenerator._prefix_plan(None, [long + [7], long + [7]]) == len(long)  # type: ignore[arg-type]


def test_rows_pad_between_the_shared_prefix_and_their_own_tokens():
    ids, mask = _pad([[1, 2, 3, 4], [1, 2, 5]], 2, 0)
    assert ids.tolist() == [[1, 2, 3, 4], [1, 2, 0, 5]]
    assert mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 1]]
    ids, mask = _pad([[1, 2, 3, 4], [1, 2, 5]], 0, 0)  # no prefix: left padding
    assert ids.tolist() == [[1, 2, 3, 4], [0, 1, 2, 5]]
    assert mask.tolist() == [[1, 1, 1, 1], [0, 1, 1, 1]]


def test_a_model_whose_cache_disagrees_generates_without_it(tiny_model, monkeypatch, caplog):
    def shifted(self, prefix, rows):  # keys at the wrong positions, as a model would
        from transformers import DynamicCache  # whose positions ignore the mask

        cache = DynamicCache(config=self.model.config)
        pos = torch.arange(prefix.shape[1]).unsqueeze(0) + 7
        self.model(input_ids=prefix, position_ids=pos, past_key_values=cache, use_cache=True)
        cache.batch_repeat_interleave(rows)
        return cache

    monkeypatch.setattr(HFGenerator, "_prefix_kv", shifted)
    with caplog.at_level("WARNING", logger="raysys.engines.hf"):
        g = HFGenerator(tiny_model, None, GREEDY, dtype="float32")
    assert not g.prefix_cache
    assert "the prefix cache changes this model's logits" in caplog.text
    assert _widths(g, _shared())[0][0] == 6  # no prefix pass


# --------------------------------------------------------------------------- the pool


@pytest.mark.parametrize(
    ("concurrency", "num_cpus", "cluster", "fixed", "expected"),
    [
        (2, 1.0, 2.0, True, 2),
        (4, 1.0, 2.0, True, 2),  # shrunk to what fits a Ray that cannot grow
        (4, 1.0, 2.0, False, 4),  # an autoscaler may add the rest
        (3, 0.5, 2.0, True, 3),
    ],
)
def test_the_pool_is_what_the_cluster_can_hold(concurrency, num_cpus, cluster, fixed, expected):
    g = GenerateSection(concurrency=concurrency, num_cpus=num_cpus)
    assert actor_pool_size(g, {"CPU": cluster}, fixed) == expected


def test_an_actor_no_node_can_hold_is_refused():
    with pytest.raises(
        ResourceBudgetError, match=r"generate.num_cpus=4 per engine actor, .* 2 CPU"
    ):
        actor_pool_size(GenerateSection(num_cpus=4.0), {"CPU": 2.0}, True)


def _sizes(n: int, actors: int, batch_size: int) -> list[int]:
    df = pd.DataFrame({"id": range(n)})
    blocks = _blocks(df, actors, batch_size)
    assert pd.concat(blocks)["id"].tolist() == list(range(n))  # every row once, in order
    return [len(b) for b in blocks]


def test_one_actor_gets_blocks_of_whole_batches():
    # a block smaller than a batch would decode at a smaller batch than direct generate()
    assert _sizes(48, 1, 32) == [48]
    assert _sizes(10, 1, 32) == [10]
    # the rows short of a full batch join the last block: 4 batches in all, as direct
    assert _sizes(100, 1, 32) == [32, 32, 36]
    # never more than 4 blocks per actor
    assert _sizes(1000, 1, 32) == [256, 256, 256, 232]
    assert _sizes(1, 1, 32) == [1]


def test_several_actors_get_four_blocks_each_and_never_an_empty_one():
    # a small pass: balance over actors that start at different times beats full batches
    assert _sizes(48, 2, 32) == [6] * 8
    assert _sizes(3, 2, 32) == [1, 1, 1]
    assert _sizes(1, 4, 32) == [1]
    # a large one: whole batches, spread evenly
    assert _sizes(1000, 2, 32) == [128] * 7 + [104]
    assert _blocks(pd.DataFrame({"id": []}), 2, 32) == []


def test_fault_drills_come_from_the_environment(monkeypatch):
    monkeypatch.delenv("RAYSYS_FAULTS", raising=False)
    assert _faults() == {}
    monkeypatch.setenv("RAYSYS_FAULTS", "engine_exit_at_block=2,crash_at_step=3")
    faults = _faults()
    assert faults["engine_exit_at_block"] == 2 and "crash_at_step" not in faults
    assert faults["marker"].endswith("/died")


def _teacher_forced(model, tok, prompt: str, new_ids: list[int]) -> float:
    """The mean raw log-probability of `new_ids` after `prompt`, by one forward pass."""
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        logits = model(torch.tensor([ids + new_ids])).logits[0].float()
    lp = torch.log_softmax(logits[len(ids) - 1 : -1], dim=-1)
    return float(lp.gather(1, torch.tensor(new_ids)[:, None]).mean())


class _Recording(HFGenerator):
    """Keeps (prompt, generated ids, mean_logprob) per generated row: the text does not
    always re-tokenize to the ids the model picked."""

    def _generate(self, prompts):
        self.ids = []
        rows = super()._generate(prompts)
        self.seen += zip(prompts, self.ids, [r["mean_logprob"] for r in rows], strict=True)
        return rows

    def _row(self, ids, n_input, logprobs):
        out = super()._row(ids, n_input, logprobs)
        self.ids.append(ids[: out["num_generated_tokens"]])
        return out


@pytest.mark.parametrize("sampling", [GREEDY, Sampling(max_new_tokens=6, temperature=0.5, seed=1)])
def test_mean_logprob_is_the_raw_logprob_of_the_generated_tokens(tiny_model, adapter_dir, sampling):
    """Batched, left-padded generation (rows of different lengths, some ending at EOS,
    base and adapter rows) gives each row the mean log-softmax of the model's raw logits
    at the tokens it generated (EOS included), as one teacher-forced pass computes it;
    sampling at temperature 0.5 does not change what is measured (raw, not tempered)."""
    g = _Recording(
        tiny_model, {"sft": adapter_dir}, sampling, batch_size=4, dtype="float32", torch_threads=1
    )
    for name in ("sft", BASE):
        g.seen = []
        out = g(_batch(4, adapter=name))
        assert out["mean_logprob"].le(0).all() and out["mean_logprob"].notna().all()
        assert len(g.seen) == 4
        for prompt, ids, got in g.seen:
            if name == BASE:
                with g.model.disable_adapter():
                    want = _teacher_forced(g.model, g.tok, prompt, ids)
            else:
                g.model.set_adapter(name)
                want = _teacher_forced(g.model, g.tok, prompt, ids)
            assert got == pytest.approx(want, abs=1e-4)
