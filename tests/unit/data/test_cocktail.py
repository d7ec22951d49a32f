"""Cocktail mixing: nesting across fractions, determinism, exact counts, errors, caching."""

from __future__ import annotations

import functools
import math
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from raysys.data.cocktail import (
    GENERAL_TASK,
    MATH_TASK,
    CocktailSpec,
    apportion,
    fraction_subset,
    fraction_subset_exact,
    materialize,
    mix,
    pools_fingerprint,
    spec_hash,
    stable_ranking,
    stable_unit,
)
from raysys.errors import UserError

SETTINGS = settings(
    max_examples=50, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
REG_POOL = 1500  # enough for shares <= 0.3 each of at most 1500 task rows


@functools.cache
def _rows(task: str, n: int) -> tuple[dict, ...]:
    return tuple(
        {"id": f"{task}-{i}", "task": task, "input": f"{task} text {i}", "gold": f"g{i % 3}"}
        for i in range(n)
    )


def _pools(sizes: dict[str, int]) -> dict[str, list[dict]]:
    pools = {t: list(_rows(t, n)) for t, n in sizes.items()}
    pools[GENERAL_TASK] = list(_rows(GENERAL_TASK, REG_POOL))
    pools[MATH_TASK] = list(_rows(MATH_TASK, REG_POOL))
    return pools


def _spec(weights: dict[str, float], **kw) -> CocktailSpec:
    comps = [{"task": t, "weight": w} for t, w in weights.items()]
    return CocktailSpec.model_validate({"components": comps, **kw})


@st.composite
def cocktails(draw, oversample: bool = False):
    """(spec, pools): 2-5 tasks, pools of 20-300 rows, weights >= 0 with one > 0."""
    k = draw(st.integers(2, 5))
    tasks = [f"task{i}" for i in range(k)]
    sizes = {t: draw(st.integers(20, 300)) for t in tasks}
    weight = st.one_of(st.just(0.0), st.floats(0.05, 10.0), st.integers(1, 5).map(float))
    weights = draw(st.lists(weight, min_size=k, max_size=k).filter(lambda ws: any(ws)))
    share = st.one_of(st.just(0.0), st.floats(0.0, 0.3))
    kw = {"general": draw(share), "math": draw(share)}
    if oversample:
        kw.update(allow_oversample=True, size=draw(st.integers(1, 1500)))
    elif draw(st.booleans()):
        kw["size"] = draw(st.integers(1, 1500))  # may or may not fit: tests check
    return _spec(dict(zip(tasks, weights, strict=True)), **kw), _pools(sizes)


fractions_st = st.floats(0.01, 1.0)


# ---------------------------------------------------------------- reference rules


def _ref_apportion(total: int, weights: dict[str, float]) -> dict[str, int]:
    """Largest remainder, written out independently: floors, then +1 by remainder, name."""
    whole = sum(Fraction(w) for w in weights.values())
    quota = {t: Fraction(w) * total / whole for t, w in weights.items()}
    base = {t: int(q) for t, q in quota.items()}
    ranked = sorted(weights, key=lambda t: (base[t] - quota[t], t))
    for t in ranked[: total - sum(base.values())]:
        base[t] += 1
    return base


def _ref_total(spec: CocktailSpec, pools: dict[str, list[dict]]) -> int:
    if spec.size is not None:
        return spec.size
    weights = tuple((c.task, c.weight) for c in spec.components)
    return _brute_max_total(weights, tuple(len(pools[t]) for t, _ in weights))


@functools.cache
def _brute_max_total(weights: tuple[tuple[str, float], ...], sizes: tuple[int, ...]) -> int:
    """The largest total that fits every pool, by trying every total from sum(pools) down."""
    for total in range(sum(sizes), -1, -1):
        counts = _ref_apportion(total, dict(weights))
        if all(counts[t] <= n for (t, _), n in zip(weights, sizes, strict=True)):
            return total
    return 0


def _half_up(x: Fraction) -> int:
    return math.floor(x + Fraction(1, 2))


def _fits(spec: CocktailSpec, pools: dict[str, list[dict]]) -> bool:
    weights = {c.task: c.weight for c in spec.components}
    counts = _ref_apportion(_ref_total(spec, pools), weights)
    return spec.allow_oversample or all(counts[t] <= len(pools[t]) for t in weights)


def _ids(rows: list[dict]) -> list[str]:
    return [r["id"] for r in rows]


# --------------------------------------------------------------------- properties


@SETTINGS
@given(cocktails(), fractions_st, fractions_st, st.integers(0, 3))
def test_rows_are_nested_across_fractions(case, fa, fb, seed):
    spec, pools = case
    assume(_fits(spec, pools))
    f1, f2 = sorted((fa, fb))
    small, c1 = mix(spec, pools, f1, seed)
    large, c2 = mix(spec, pools, f2, seed)
    assert set(_ids(small)) <= set(_ids(large))
    assert all(c1[t] <= c2[t] for t in c1)
    # The order nests too: the smaller mixture is a subsequence of the larger one.
    keep = set(_ids(small))
    assert [i for i in _ids(large) if i in keep] == _ids(small)


@SETTINGS
@given(cocktails(), fractions_st, st.integers(0, 3))
def test_same_inputs_same_rows_in_the_same_order(case, f, seed):
    spec, pools = case
    assume(_fits(spec, pools))
    rows, counts = mix(spec, pools, f, seed)
    again, counts_again = mix(spec, pools, f, seed)
    assert rows == again and counts == counts_again
    # Neither the spec's component order nor the pools' dict order matters.
    flipped = spec.model_copy(update={"components": list(reversed(spec.components))})
    reordered = {t: list(reversed(pools[t])) for t in reversed(list(pools))}
    assert mix(flipped, reordered, f, seed) == (rows, counts)
    assert spec_hash(flipped, f, seed, {}) == spec_hash(spec, f, seed, {})


def test_a_different_seed_selects_different_rows():
    spec = _spec({"a": 1.0, "b": 2.0}, size=200)
    pools = _pools({"a": 300, "b": 300})
    ids0 = set(_ids(mix(spec, pools, 0.5, 0)[0]))
    ids1 = set(_ids(mix(spec, pools, 0.5, 1)[0]))
    # Targets 67 + 133; at 0.5 each rounds half up on its own: 34 + 67 = 101.
    assert len(ids0) == len(ids1) == 101
    assert ids0 != ids1


@SETTINGS
@given(cocktails(), fractions_st, st.integers(0, 3))
def test_counts_follow_largest_remainder_and_half_up_rounding(case, f, seed):
    spec, pools = case
    assume(_fits(spec, pools))
    rows, counts = mix(spec, pools, f, seed)
    weights = {c.task: c.weight for c in spec.components}
    targets = _ref_apportion(_ref_total(spec, pools), weights)
    assert sum(targets.values()) == _ref_total(spec, pools)
    for task, target in targets.items():
        assert counts[task] == _half_up(Fraction(f) * target)
    assert sum(counts.values()) == len(rows)
    assert Counter(r["task"] for r in rows) == Counter({t: n for t, n in counts.items() if n})
    assert len(set(_ids(rows))) == len(rows)


@SETTINGS
@given(cocktails(), fractions_st, st.integers(0, 3))
def test_regulariser_shares_are_within_one_row(case, f, seed):
    spec, pools = case
    assume(_fits(spec, pools))
    rows, counts = mix(spec, pools, f, seed)
    for task, share in ((GENERAL_TASK, spec.general), (MATH_TASK, spec.math)):
        assert abs(counts.get(task, 0) - share * len(rows)) <= 1
        assert (task in counts) == (share > 0)


@SETTINGS
@given(cocktails(), fractions_st, st.integers(0, 3))
def test_a_component_at_fraction_f_is_the_exact_subset_of_its_full_selection(case, f, seed):
    spec, pools = case
    assume(_fits(spec, pools))
    full, _ = mix(spec, pools, 1.0, seed)
    part, _ = mix(spec, pools, f, seed)
    for c in spec.components:
        mine = [r for r in full if r["task"] == c.task]
        expect = fraction_subset_exact(mine, f, seed)
        assert sorted(_ids(expect)) == sorted(r["id"] for r in part if r["task"] == c.task)


@SETTINGS
@given(cocktails(), st.integers(0, 3))
def test_no_oversampling_unless_allowed(case, seed):
    spec, pools = case
    too_big = spec.model_copy(update={"size": 2000, "allow_oversample": False})
    with pytest.raises(UserError) as e:
        mix(too_big, pools, 1.0, seed)
    msg = str(e.value)
    assert "\n" not in msg and "`cocktail.components[" in msg and "allow_oversample" in msg


@SETTINGS
@given(cocktails(oversample=True), fractions_st, st.integers(0, 3))
def test_oversampled_rows_are_unique_and_suffixed(case, f, seed):
    spec, pools = case
    rows, counts = mix(spec, pools, f, seed)
    assert len(set(_ids(rows))) == len(rows)
    pool_ids = {r["id"] for pool in pools.values() for r in pool}
    for r in rows:
        base, _, rep = r["id"].partition("#r")
        assert base in pool_ids and base.startswith(r["task"] + "-")
        assert rep == "" or int(rep) >= 1
    for task, n in counts.items():
        pool = len(pools[task])
        repeats = sum(1 for r in rows if r["task"] == task and "#r" in r["id"])
        assert repeats == max(0, n - pool)


def test_oversampling_repeats_the_ranking_in_order():
    spec = _spec({"a": 1.0}, size=25, allow_oversample=True)
    pools = {"a": list(_rows("a", 10))}
    rows, counts = mix(spec, pools, 1.0, 0)
    assert counts == {"a": 25}
    ranked = _ids(stable_ranking(pools["a"], 0))
    expect = ranked + [f"{i}#r1" for i in ranked] + [f"{i}#r2" for i in ranked[:5]]
    assert sorted(_ids(rows)) == sorted(expect)


def test_regulariser_pool_too_small_or_missing():
    spec = _spec({"a": 1.0}, general=0.5)
    pools = {"a": list(_rows("a", 100)), GENERAL_TASK: list(_rows(GENERAL_TASK, 10))}
    with pytest.raises(UserError, match=r"^`cocktail\.general`: needs 100 general_instruct"):
        mix(spec, pools, 1.0, 0)
    with pytest.raises(UserError, match=r"^`cocktail\.general`: no general_instruct"):
        mix(spec, {"a": pools["a"]}, 1.0, 0)


def test_apportion_examples():
    assert apportion(10, {"a": 1, "b": 1, "c": 1}) == {"a": 4, "b": 3, "c": 3}
    assert apportion(7, {"x": 0.0, "y": 2.0, "z": 1.0}) == {"x": 0, "y": 5, "z": 2}
    assert apportion(0, {"a": 1.0}) == {"a": 0}


def test_default_size_is_the_largest_without_oversampling():
    spec = _spec({"a": 1.0, "b": 2.0})
    rows, counts = mix(spec, {"a": list(_rows("a", 10)), "b": list(_rows("b", 10))}, 1.0, 0)
    assert counts == {"a": 5, "b": 10} and len(rows) == 15


# ------------------------------------------------------------- stable selection


def test_stable_unit_known_values():
    # Computed once; a change here changes every cocktail ever built.
    assert stable_unit("a-0", 0) == 3178285119796546100 / 2**64
    assert stable_unit("news_sentiment-train-000001", 7) == 5557891047970309266 / 2**64
    assert stable_unit("x", 123) == 8003472738003991456 / 2**64
    assert stable_unit("a-0", 0) == pytest.approx(0.17229518158308835, abs=1e-15)


@SETTINGS
@given(st.integers(0, 400), fractions_st, fractions_st, st.integers(0, 5))
def test_fraction_subsets_nest_and_keep_input_order(n, fa, fb, seed):
    rows = list(_rows("t", n))
    f1, f2 = sorted((fa, fb))
    for pick in (fraction_subset, fraction_subset_exact):
        small, large = pick(rows, f1, seed), pick(rows, f2, seed)
        assert set(_ids(small)) <= set(_ids(large))
        assert small == [r for r in rows if r in small]  # input order kept
    assert len(fraction_subset_exact(rows, f1, seed)) == _half_up(Fraction(f1) * n)
    assert fraction_subset(rows, 1.0, seed) == rows
    assert all(stable_unit(r["id"], seed) < f1 for r in fraction_subset(rows, f1, seed))


def test_fraction_subset_exact_ignores_input_order():
    rows = list(_rows("t", 50))
    a = fraction_subset_exact(rows, 0.3, 1)
    b = fraction_subset_exact(list(reversed(rows)), 0.3, 1)
    assert sorted(_ids(a)) == sorted(_ids(b)) and len(a) == 15


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, float("nan")])
def test_fraction_must_be_in_zero_one(bad):
    rows = list(_rows("t", 5))
    for fn in (fraction_subset, fraction_subset_exact):
        with pytest.raises(ValueError, match="fraction must be in"):
            fn(rows, bad, 0)
    with pytest.raises(ValueError, match="fraction must be in"):
        mix(_spec({"t": 1.0}), {"t": rows}, bad, 0)


# ----------------------------------------------------------------- materialize


def _messages(row: dict) -> list[dict]:
    return [
        {"role": "user", "content": row["input"]},
        {"role": "assistant", "content": f"Answer: {row['gold']}"},
    ]


def test_materialize_writes_reuses_and_keys_by_seed_and_fraction(tmp_path: Path):
    spec = _spec({"a": 1.0, "b": 3.0}, name="mini", general=0.1)
    pools = _pools({"a": 40, "b": 90})
    path, counts = materialize(spec, pools, 0.5, 0, tmp_path, _messages)
    extra = {"pools": pools_fingerprint(pools), "stratify": [], "ranking": 2}
    key = spec_hash(spec, 0.5, 0, extra)
    assert path == tmp_path / "cocktails" / key / "train.parquet"
    df = pd.read_parquet(path)
    assert list(df.columns) == ["id", "task", "messages", "gold", "source"]
    assert len(df) == sum(counts.values()) and set(df["source"]) == {"cocktail:mini"}
    rows, expect = mix(spec, pools, 0.5, 0)
    assert counts == expect and list(df["id"]) == _ids(rows)
    assert [m["role"] for m in df["messages"].iloc[0]] == ["user", "assistant"]
    manifest = pd.read_json(path.parent / "manifest.json", typ="series")
    assert manifest["key"] == key and manifest["rows"] == len(df)

    mtime = path.stat().st_mtime_ns
    again, counts_again = materialize(spec, pools, 0.5, 0, tmp_path, _messages)
    assert (again, counts_again) == (path, counts) and path.stat().st_mtime_ns == mtime

    other_seed, _ = materialize(spec, pools, 0.5, 1, tmp_path, _messages)
    other_frac, _ = materialize(spec, pools, 0.25, 0, tmp_path, _messages)
    dirs = sorted(p.name for p in (tmp_path / "cocktails").iterdir() if p.is_dir())
    assert len({path.parent, other_seed.parent, other_frac.parent}) == 3
    assert len(dirs) == 3 and not [d for d in dirs if d.startswith(".")]
    # Other pool contents (say, a larger train split) never reuse a stale cocktail.
    bigger = _pools({"a": 41, "b": 90})
    assert materialize(spec, bigger, 0.5, 0, tmp_path, _messages)[0] != path


def test_materialize_source_defaults_to_the_key(tmp_path: Path):
    spec = _spec({"a": 1.0})
    path, _ = materialize(spec, {"a": list(_rows("a", 20))}, 1.0, 0, tmp_path, _messages)
    assert set(pd.read_parquet(path)["source"]) == {f"cocktail:{path.parent.name}"}


def test_materialize_failure_leaves_nothing_behind(tmp_path: Path):
    spec = _spec({"a": 1.0}, size=50)  # pool of 20: refused
    with pytest.raises(UserError):
        materialize(spec, {"a": list(_rows("a", 20))}, 1.0, 0, tmp_path, _messages)
    assert not [p for p in (tmp_path / "cocktails").iterdir() if p.is_dir()]


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 1.0])
def test_stratified_fractions_keep_each_labels_share_of_a_sorted_pool(fraction):
    """A classification pool sorted by label (60/25/15): every fraction keeps each
    label within one row of its share, and smaller fractions nest in larger ones."""
    labels = ["pos"] * 120 + ["neg"] * 50 + ["neu"] * 30
    pool = [
        {"id": f"a-{i:04d}", "task": "a", "input": f"x{i}", "gold": g} for i, g in enumerate(labels)
    ]
    spec = _spec({"a": 1.0})
    rows, _ = mix(spec, {"a": pool}, fraction, 0, stratify=frozenset({"a"}))
    n = len(rows)
    for lab, share in (("pos", 0.6), ("neg", 0.25), ("neu", 0.15)):
        assert abs(sum(r["gold"] == lab for r in rows) - share * n) <= 1, lab
    half, _ = mix(spec, {"a": pool}, fraction / 2, 0, stratify=frozenset({"a"}))
    assert set(_ids(half)) <= set(_ids(rows))
