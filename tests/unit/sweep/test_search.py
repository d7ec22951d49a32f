"""`raysys.sweep.search`: the search's state, its budget and the rounds it proposes, from
finished-trial records as trials write them (no Ray: the integration test runs one)."""

from __future__ import annotations

import math

import pytest
import yaml

from raysys.config import SweepConfig
from raysys.errors import UserError
from raysys.sweep.grid import expand_grid
from raysys.sweep.mixture import Mixture
from raysys.sweep.search import (
    SEARCH_KIND,
    budget_of,
    measured,
    mixture_trials,
    new_state,
    next_round,
    remaining_trials,
    search_plan,
    spent,
)
from tests.fixtures import REPO


def _cfg(**search) -> SweepConfig:
    raw = yaml.safe_load((REPO / "configs" / "search_tiny.yaml").read_text())
    raw["search"] |= {"initial": 3, "per_round": 2, "budget": {"trials": 5}} | search
    return SweepConfig(**raw)


def _finish(state, score, seconds=60.0) -> dict:
    """Every trial of `state` finished, its validation scores from `score(mixture)`."""
    out = {}
    for r in state["rounds"]:
        for p in r["trials"]:
            comps = dict((t, w) for t, w in p["components"])
            m = Mixture(tuple(sorted(comps.items())), p["general"], p["math"], p["fraction"])
            val = {t: {"main": v} for t, v in score(m).items()}
            out[p["trial_id"]] = {"validation": val, "trial_seconds": seconds}
    return out


def _score(m: Mixture) -> dict[str, float]:
    a, b = m.weight("news_sentiment"), m.weight("price_direction")
    return {"news_sentiment": 0.2 + 0.6 * a, "price_direction": 0.3 + 0.2 * b}


def test_the_budget_defaults_to_the_grid_and_rounds_stop_there():
    cfg = _cfg()
    grid = expand_grid(cfg)
    assert budget_of(_cfg(budget={}), grid) == {
        "trials": 1,
        "gpu_hours": None,
        "cpu_hours": None,
        "equal_to_grid": True,
    }
    state = new_state(cfg, grid)
    assert [r["name"] for r in state["rounds"]] == ["grid"]
    r0 = next_round(cfg, state, {})
    assert r0["name"] == "r0" and r0["kind"] == "initial" and len(r0["mixtures"]) == 3
    assert all(m["predicted"] is None for m in r0["mixtures"])
    r1 = next_round(cfg, state, _finish(state, _score))
    assert r1["kind"] == "proposed" and len(r1["mixtures"]) == 2 and r1["fitted_on"] == 3
    assert all(isinstance(m["predicted"], float) for m in r1["mixtures"])
    # 5 search trials = the budget: no third round
    assert next_round(cfg, state, _finish(state, _score)) is None
    assert [r["name"] for r in state["rounds"]] == ["grid", "r0", "r1"]
    assert all(p["cocktail_kind"] == SEARCH_KIND for p in r1["trials"])


def test_proposals_follow_the_objective():
    cfg = _cfg(objective="news_sentiment", budget={"trials": 6}, per_round=3)
    state = new_state(cfg, expand_grid(cfg))
    next_round(cfg, state, {})
    r1 = next_round(cfg, state, _finish(state, _score))
    best = r1["mixtures"][0]
    assert dict(map(tuple, best["weights"])).get("news_sentiment", 0) > 0.8


def test_an_hours_budget_stops_once_spent():
    cfg = _cfg(budget={"cpu_hours": 0.05})  # 3 one-CPU trials of 60 s = 0.05 h
    state = new_state(cfg, expand_grid(cfg))
    next_round(cfg, state, {})
    done = _finish(state, _score, seconds=60.0)
    used = spent(cfg, state, done)
    assert used == {"trials": 3.0, "cpu_hours": pytest.approx(0.05)}
    assert remaining_trials(cfg, state, used) == 0
    assert next_round(cfg, state, done) is None


def test_too_few_finished_mixtures_to_fit_is_one_line():
    cfg = _cfg()
    state = new_state(cfg, expand_grid(cfg))
    next_round(cfg, state, {})
    one = dict(list(_finish(state, _score).items())[2:3])  # one mixture of round 0 finished
    with pytest.raises(UserError, match="too few to fit the surrogate"):
        next_round(cfg, state, one)


def test_measured_averages_seeds_and_skips_missing_scores():
    cfg = _cfg(budget={"trials": 4})
    cfg = cfg.model_copy(update={"sweep": cfg.sweep.model_copy(update={"seeds": [0, 1]})})
    state = new_state(cfg, expand_grid(cfg))
    r0 = next_round(cfg, state, {})
    assert len(r0["mixtures"]) == 2 and len(r0["trials"]) == 4
    ids = r0["mixtures"][0]["trial_ids"]
    done = {
        ids[0]: {"validation": {"news_sentiment": {"main": 0.2}}, "trial_seconds": 1},
        ids[1]: {
            "validation": {"news_sentiment": {"main": 0.4}, "price_direction": {"main": math.nan}},
            "trial_seconds": 1,
        },
    }
    [(mix, scores)] = measured(state, done)
    assert mix.name == r0["mixtures"][0]["name"]
    assert scores == {"news_sentiment": pytest.approx(0.3)}


def test_trial_ids_name_the_mixture_and_seed():
    cfg = _cfg()
    m = Mixture((("news_sentiment", 0.7), ("price_direction", 0.3)), 0.0, 0.0, 1.0)
    [t] = mixture_trials(cfg, [m])
    assert t.trial_id == f"{m.name}-g0-m0-f1-s0" and t.cocktail == m.name
    assert t.components == m.weights and t.learning_rate == cfg.train.learning_rate


def test_a_budget_below_one_mixture_is_refused_in_the_plan():
    with pytest.raises(UserError, match="search.budget.trials: 1 is fewer than one mixture x 2"):
        cfg = _cfg(budget={"trials": 1})
        search_plan(
            cfg.model_copy(update={"sweep": cfg.sweep.model_copy(update={"seeds": [0, 1]})})
        )
