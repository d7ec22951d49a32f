"""`raysys.sweep.mixture`: the mixture space, round 0's design, the surrogate and its
proposals, on functions whose best mixture is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from raysys.sweep.mixture import (
    MIN_DISTANCE,
    Mixture,
    Space,
    Surrogate,
    latin_points,
    propose,
    space_filling,
)

TASKS = ("a", "b", "c")


def _space(**kw) -> Space:
    base = {"general": (0.0, 0.0), "math": (0.0, 0.0), "fraction": (1.0, 1.0), "min_weight": 0.05}
    return Space(TASKS, **(base | kw))


def test_points_of_the_cube_become_valid_mixtures():
    space = _space(general=(0.0, 0.2), fraction=(0.25, 1.0))
    assert space.dims == 5
    for u in latin_points(200, space.dims, seed=3):
        m = space.from_unit(u)
        assert math.isclose(sum(w for _, w in m.weights), 1.0, abs_tol=1e-9)
        assert all(w >= 0.05 for _, w in m.weights) and m.weights == tuple(sorted(m.weights))
        assert 0 <= m.general <= 0.2 and 0.25 <= m.fraction <= 1.0 and m.math == 0.0


def test_round_zero_is_distinct_reproducible_and_spread_over_the_simplex():
    space = _space()
    a, b = space_filling(space, 12, seed=7), space_filling(space, 12, seed=7)
    assert a == b and len(set(a)) == 12
    # every task leads at least one mixture: the design is not stuck in one corner
    leaders = {max(m.weights, key=lambda tw: tw[1])[0] for m in a}
    assert leaders == set(TASKS)
    assert space_filling(space, 12, seed=8) != a


def test_a_space_survives_search_json():
    import json

    space = _space(general=(0.0, 0.2), fraction=(0.25, 1.0))
    assert Space.from_json(json.loads(json.dumps(space.to_json()))) == space


def test_names_are_stable_and_tell_mixtures_apart():
    m = Mixture((("a", 0.5), ("b", 0.5)), 0.0, 0.0, 1.0)
    assert m.name == Mixture((("a", 0.5), ("b", 0.5)), 0.0, 0.0, 1.0).name
    assert m.name != Mixture((("a", 0.6), ("b", 0.4)), 0.0, 0.0, 1.0).name
    assert Mixture.from_json(m.to_json()) == m


def _truth(m: Mixture) -> dict[str, float]:
    """Task a gains from its own weight, b from its own, c hurts both: best is a+b, no c."""
    a, b, c = (m.weight(t) for t in TASKS)
    return {"a": 0.4 + 0.5 * math.sqrt(a) - 0.2 * c, "b": 0.3 + 0.5 * math.sqrt(b) - 0.2 * c}


@pytest.mark.parametrize("kind", ["ridge", "gp"])
def test_the_surrogate_ranks_held_out_mixtures_and_proposes_near_the_optimum(kind):
    from scipy.stats import spearmanr

    space = _space()
    seen = [(m, _truth(m)) for m in space_filling(space, 12, seed=0)]
    sur = Surrogate.fit(kind, space, seen)
    held = space_filling(space, 30, seed=99)
    weights = {"a": 0.5, "b": 0.5}
    pred, _ = sur.objective(held, weights)
    real = [0.5 * _truth(m)["a"] + 0.5 * _truth(m)["b"] for m in held]
    assert spearmanr(pred, real).statistic > 0.7
    picks = propose(sur, weights, [m for m, _ in seen], 3, 2048, seed=1)
    assert len(picks) == 3
    best_seen = max(0.5 * s["a"] + 0.5 * s["b"] for _, s in seen)
    top = picks[0][0]
    assert top.weight("c") < 0.2  # it learnt that c hurts
    assert 0.5 * _truth(top)["a"] + 0.5 * _truth(top)["b"] >= best_seen - 0.05
    chosen = [p[0] for p in picks]
    for i, m in enumerate(chosen):  # apart from what ran and from each other
        assert all(space.distance(m, o) >= MIN_DISTANCE for o, _ in seen)
        assert all(space.distance(m, o) >= MIN_DISTANCE for o in chosen[:i])


def test_a_task_with_one_value_is_predicted_as_that_value():
    space = _space()
    seen = [(m, {"a": 0.5, "b": 0.1 * i}) for i, m in enumerate(space_filling(space, 4, seed=0))]
    mean, sd = Surrogate.fit("ridge", space, seen).predict([seen[0][0]])
    assert mean["a"][0] == 0.5 and sd["a"][0] == 0.0 and np.isfinite(mean["b"][0])
