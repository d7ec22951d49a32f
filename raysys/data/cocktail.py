"""Cocktails: weighted mixtures of finance tasks, plus general/math regularisers.

A `CocktailSpec` names tasks and weights; `mix` turns it into training rows at a
data fraction `f` for scaling-law studies; `materialize` writes them once to
`<root>/cocktails/<key>/train.parquet` and reuses them afterwards.

Guarantees, and how they are obtained:

* Stable across runs and machines. Every row gets a key from its id alone:
  `stable_unit(id, seed)` = first 8 bytes of sha256(f"{seed}:{id}") (big-endian) / 2**64.
  No global shuffle, no `random`, no dict-iteration order, no `hash()`: the same
  ids and seed give the same rows in the same order anywhere. Component order in
  the spec does not matter either (ties are broken by task name, the hash sorts
  components).
* Nested across fractions. A pool's *stable ranking* is its rows sorted by
  (stable key, id). `fraction_subset` keeps rows whose unit is below `f`, so a
  smaller `f` keeps a subset by construction; `fraction_subset_exact` keeps the
  first round(f*n) rows of the ranking, so a smaller `f` keeps a prefix of the same
  ranking. `mix` uses the exact rule: for every component, the rows at fraction `f`
  are the first n_f = round_half_up(f * target) rows of its ranking; n_f grows with
  `f`, so the rows at f1 < f2 are a subset of the rows at f2. The regulariser
  counts grow with the task rows, so they nest too, and the whole mixture does.
  The final order sorts rows by a key from (seed, spec hash without the fraction,
  id), so the order at f1 is also a subsequence of the order at f2.
* Exact counts. Targets come from the largest-remainder (Hamilton) method on
  exact rationals (`fractions.Fraction` of the float weights), so they sum to the
  total exactly, with no float ties; see `apportion`.

Rounding is half up, computed exactly on the binary value of the floats:
round_half_up(x) = floor(x + 1/2).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

from raysys.data.spec import (  # noqa: F401 - the cocktail module's public names
    GENERAL_TASK,
    MATH_TASK,
    REGULARISERS,
    CocktailComponent,
    CocktailSpec,
    parse_spec,
    spec_hash,
    validate_spec,
)
from raysys.errors import UserError
from raysys.io import write_json, write_parquet

log = logging.getLogger(__name__)

Row = dict[str, Any]

COLUMNS = ("id", "task", "messages", "gold", "source")
_TWO_64 = 2**64


# ------------------------------------------------------------- stable selection


def _stable_int(row_id: str, salt: int | str) -> int:
    digest = hashlib.sha256(f"{salt}:{row_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def stable_unit(row_id: str, seed: int) -> float:
    """A number in [0, 1) from (seed, id) alone: first 8 bytes of sha256 / 2**64."""
    return _stable_int(row_id, seed) / _TWO_64


def round_half_up(x: Fraction | int) -> int:
    """floor(x + 1/2), exact; Python's round() would round halves to even."""
    return math.floor(Fraction(x) + Fraction(1, 2))


def _check_fraction(fraction: float) -> None:
    if not (0 < fraction <= 1):  # `not` also rejects NaN
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")


def _rank_key(row: Row, seed: int) -> tuple[int, str]:
    # The id breaks a (2**-64-unlikely) tie, so the ranking never depends on input order.
    return _stable_int(row["id"], seed), str(row["id"])


def stable_ranking(rows: list[Row], seed: int) -> list[Row]:
    """Rows sorted by (stable key, id): independent of the input order."""
    return sorted(rows, key=lambda r: _rank_key(r, seed))


def fraction_subset(rows: list[Row], fraction: float, seed: int) -> list[Row]:
    """Rows with stable_unit(id, seed) < fraction, in input order (about fraction*n rows).

    Nested by construction: the 0.25 subset is inside the 0.5 subset. Compared on
    the integer (int < float is exact in Python) so fraction=1 keeps every row even
    where the float unit would round up to 1.0.
    """
    _check_fraction(fraction)
    bound = fraction * _TWO_64
    return [r for r in rows if _stable_int(r["id"], seed) < bound]


def fraction_subset_exact(rows: list[Row], fraction: float, seed: int) -> list[Row]:
    """The first round_half_up(fraction*n) rows of the stable ranking, in input order.

    Exactly that many rows; nested because a smaller fraction takes a shorter
    prefix of the same ranking.
    """
    _check_fraction(fraction)
    keep = round_half_up(Fraction(fraction) * len(rows))
    order = sorted(range(len(rows)), key=lambda i: _rank_key(rows[i], seed))
    chosen = set(order[:keep])
    return [r for i, r in enumerate(rows) if i in chosen]


# ------------------------------------------------------------------- apportion


def apportion(total: int, weights: dict[str, float]) -> dict[str, int]:
    """Largest-remainder (Hamilton) split of `total` by weight; counts sum to `total`.

    quota_t = total * w_t / sum(w), exact rationals. Each task gets floor(quota_t);
    the seats left go one each to the largest remainders, ties to the
    alphabetically first task. Weight 0 always gets 0.
    """
    exact = {t: Fraction(w) for t, w in weights.items()}
    whole = sum(exact.values())
    quotas = {t: total * w / whole for t, w in exact.items()}
    counts = {t: math.floor(q) for t, q in quotas.items()}
    left = total - sum(counts.values())
    order = sorted(quotas, key=lambda t: (-(quotas[t] - counts[t]), t))
    for t in order[:left]:
        counts[t] += 1
    return counts


def max_total(weights: dict[str, float], pool_sizes: dict[str, int]) -> int:
    """The largest total whose apportionment needs no more rows than any pool holds.

    A total T is only feasible if floor(quota) <= pool, i.e. T < (pool+1)/share, so
    the search starts at that bound and walks down. It cannot use bisection:
    largest remainder is not monotone in T (the Alabama paradox). floor(min
    pool/share) is always feasible, so the walk is short.
    """
    exact = {t: Fraction(w) for t, w in weights.items() if w > 0}
    whole = sum(exact.values())
    upper = min(math.ceil((pool_sizes[t] + 1) * whole / w) - 1 for t, w in exact.items())
    for total in range(upper, -1, -1):
        counts = apportion(total, weights)
        if all(counts[t] <= pool_sizes[t] for t in counts):
            return total
    return 0


# ------------------------------------------------------------------------ mix


def _targets(spec: CocktailSpec, sizes: dict[str, int]) -> dict[str, int]:
    """Rows per component at fraction 1 from the pools' sizes; UserError where a pool is
    too small."""
    weights = {c.task: c.weight for c in spec.components}
    total = spec.size if spec.size is not None else max_total(weights, sizes)
    targets = apportion(total, weights)
    for i, c in enumerate(spec.components):
        if targets[c.task] > sizes[c.task] and not spec.allow_oversample:
            raise UserError(
                f"`cocktail.components[{i}].task`: {c.task} needs {targets[c.task]} rows but "
                f"has only {sizes[c.task]} train rows; lower cocktail.size or its weight, "
                "or set cocktail.allow_oversample=true"
            )
    return targets


def _ranking(pool: list[Row], seed: int, stratified: bool) -> list[Row]:
    if not stratified:
        return stable_ranking(pool, seed)
    from raysys.tasks.sampling import stratified_order

    return stratified_order(pool, seed, "gold")


def _take(ranked: list[Row], n: int) -> list[Row]:
    """The first n rows of the ranking repeated as often as needed; repeat r gets `#r<r>`."""
    if n > 0 and not ranked:  # validate_spec refuses this; guard the loop below anyway
        raise ValueError("cannot take rows from an empty pool")
    out = [dict(r) for r in ranked[:n]]
    rep = 1
    while len(out) < n:  # only with allow_oversample: _targets refused otherwise
        more = ranked[: n - len(out)]
        out.extend(dict(r, id=f"{r['id']}#r{rep}") for r in more)
        rep += 1
    return out


def _regulariser_counts(spec: CocktailSpec, n_tasks: int) -> dict[str, int]:
    """round_half_up(share * n_final) with n_final = n_tasks / (1 - general - math)."""
    g, m = Fraction(spec.general), Fraction(spec.math)
    n_final = n_tasks / (1 - g - m)
    shares = {GENERAL_TASK: g, MATH_TASK: m}
    return {t: round_half_up(s * n_final) for t, s in shares.items() if s > 0}


def _draw_regulariser(task: str, n: int, pools: dict[str, list[Row]], seed: int) -> list[Row]:
    pool = pools.get(task, [])
    if n > len(pool):
        field = "general" if task == GENERAL_TASK else "math"
        raise UserError(
            f"`cocktail.{field}`: needs {n} {task} rows but the pool has {len(pool)}; "
            f"lower cocktail.{field} or provide more {task} train rows"
        )
    return _take(stable_ranking(pool, seed), n)


def _final_order(rows: list[Row], spec: CocktailSpec, seed: int) -> list[Row]:
    # Keyed by the spec without the fraction, so the order at a smaller fraction
    # is a subsequence of the order at a larger one.
    salt = spec_hash(spec, 1.0, seed, {"use": "order"})
    return sorted(rows, key=lambda r: (_stable_int(r["id"], salt), str(r["task"]), str(r["id"])))


def mix(
    spec: CocktailSpec,
    pools: dict[str, list[Row]],
    fraction: float,
    seed: int,
    stratify: frozenset[str] = frozenset(),
) -> tuple[list[Row], dict[str, int]]:
    """The cocktail's rows at `fraction`, and rows per task (components, then regularisers).

    Tasks in `stratify` (classification) take their rows in the stratified order of
    `raysys.tasks.sampling`: every fraction keeps each label's share of the pool."""
    sizes = {t: len(rows) for t, rows in pools.items()}
    validate_spec(spec, sizes, set())
    counts = row_counts(spec, sizes, fraction)
    components = {c.task for c in spec.components}
    rows: list[Row] = []
    for task, n in counts.items():  # components first, then regularisers (their shares)
        if task in components:
            rows.extend(_take(_ranking(pools[task], seed, task in stratify), n))
        else:
            rows.extend(_draw_regulariser(task, n, pools, seed))
    return _final_order(rows, spec, seed), counts


def row_counts(spec: CocktailSpec, sizes: dict[str, int], fraction: float) -> dict[str, int]:
    """Rows per task of the cocktail at `fraction` (components sorted by name, then the
    regularisers), from the pools' sizes alone: what `mix` draws, and what a planner
    counts without the rows."""
    _check_fraction(fraction)
    targets = _targets(spec, sizes)
    # sorted: nothing depends on dict or spec order
    counts = {t: round_half_up(Fraction(fraction) * targets[t]) for t in sorted(targets)}
    return counts | _regulariser_counts(spec, sum(counts.values()))


# ---------------------------------------------------------------- materialize


def pools_fingerprint(pools: dict[str, list[Row]]) -> str:
    """sha256 over every row's (task, id, input, gold): what the mixture is made of."""
    h = hashlib.sha256()
    for task in sorted(pools):
        for r in sorted(pools[task], key=lambda r: str(r["id"])):
            h.update(
                json.dumps([task, r["id"], r.get("input"), r.get("gold")], default=str).encode()
            )
    return h.hexdigest()[:16]


def _existing(target: Path) -> tuple[Path, dict[str, int]] | None:
    manifest = target / "manifest.json"
    if not manifest.is_file():
        return None
    log.debug("cocktail %s: reusing %s", target.name, target)
    return target / "train.parquet", json.loads(manifest.read_text())["counts"]


def _records(rows: list[Row], source: str, to_messages: Callable[[Row], list[dict]]) -> list[Row]:
    # gold as text: tasks may carry numbers, and one parquet column needs one type.
    return [
        {
            "id": r["id"],
            "task": r["task"],
            "messages": to_messages(r),
            "gold": None if r.get("gold") is None else str(r["gold"]),
            "source": source,
        }
        for r in rows
    ]


def _build(tmp: Path, rows: list[Row], manifest: dict[str, Any]) -> None:
    tmp.mkdir(parents=True)
    write_parquet(tmp / "train.parquet", rows)
    # The manifest goes last: its presence is what marks a cocktail as complete.
    write_json(tmp / "manifest.json", manifest)


def materialize(
    spec: CocktailSpec,
    pools: dict[str, list[Row]],
    fraction: float,
    seed: int,
    root: Path,
    to_messages: Callable[[Row], list[dict]],
    stats: dict[str, Any] | None = None,
    stratify: frozenset[str] = frozenset(),
) -> tuple[Path, dict[str, int]]:
    """Write the cocktail once to root/cocktails/<key>/; later calls reuse it.

    The key covers the pools' contents too, so other train sizes or generator seeds
    never reuse a stale cocktail. `stats`, when given, receives `built` (this call
    wrote the data) and `key`.
    """
    stats = {} if stats is None else stats
    from filelock import FileLock

    extra = {"pools": pools_fingerprint(pools), "stratify": sorted(stratify), "ranking": 2}
    key = spec_hash(spec, fraction, seed, extra)
    target = Path(root) / "cocktails" / key
    stats.update(key=key, built=False)
    if found := _existing(target):
        return found
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):  # one builder; the others wait, then reuse
        if found := _existing(target):
            return found
        rows, counts = mix(spec, pools, fraction, seed, stratify)
        source = f"cocktail:{spec.name or key}"
        manifest = {"spec": spec.model_dump(mode="json"), "fraction": fraction, "seed": seed}
        manifest.update(key=key, counts=counts, rows=len(rows))
        tmp = target.parent / f".{key}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            _build(tmp, _records(rows, source, to_messages), manifest)
            shutil.rmtree(target, ignore_errors=True)  # a leftover without a manifest
            os.replace(tmp, target)  # atomic: readers see no cocktail or a whole one
            stats["built"] = True
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    log.debug("cocktail %s: %d rows %s", key, len(rows), counts)
    return target / "train.parquet", counts
