"""The sweep grid (`raysys.sweep.grid`): every axis crossed, stable trial ids, explicit
cocktails, bad grids refused by field, concurrency from the resources. No Ray."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from raysys.config import SweepConfig, load_config
from raysys.errors import ConfigError, UserError
from raysys.sweep.grid import expand_grid, plan_resources
from tests.fixtures import REPO

TINY = REPO / "configs" / "sweep_tiny.yaml"
THREE = "sweep.tasks=[news_sentiment,price_direction,causal_detection]"


def _cfg(*overrides: str) -> SweepConfig:
    return load_config(SweepConfig, TINY, list(overrides))


def test_generators_cross_every_axis():
    trials = expand_grid(
        _cfg(
            THREE,
            "sweep.cocktails=[singletons,pairs,leave_one_out,all]",
            "sweep.general=[0,0.1]",
            "sweep.fractions=[1.0,0.25,0.5]",
            "sweep.seeds=[0,1]",
        )
    )
    kinds = pd.Series([t.cocktail_kind for t in trials]).value_counts().to_dict()
    # with 3 tasks a leave-one-out cocktail is a pair: kept once, as the pair
    per_cocktail = 2 * 3 * 2
    assert kinds == {"singleton": 3 * per_cocktail, "pair": 3 * per_cocktail, "all": per_cocktail}
    assert len({t.trial_id for t in trials}) == len(trials)
    assert sorted({t.fraction for t in trials}) == [0.25, 0.5, 1.0]
    assert all("." not in t.trial_id for t in trials)  # ids name PEFT adapters


def test_trial_ids_depend_on_parameters_not_order():
    a = expand_grid(_cfg("sweep.cocktails=[singletons,all]"))
    b = expand_grid(_cfg("sweep.cocktails=[all,singletons]"))
    assert {t.trial_id: t for t in a} == {t.trial_id: t for t in b}


def test_learning_rate_and_rank_axes_name_their_trials():
    trials = expand_grid(_cfg("sweep.learning_rates=[1e-4,1e-3]", "sweep.lora_ranks=[4,16]"))
    assert len(trials) == 2 * 2 * 2 * 2
    t = next(t for t in trials if t.lora_r == 16 and t.learning_rate == 1e-4)
    assert t.trial_id.endswith("-lr0p0001-r16")


def test_explicit_cocktails_from_yaml_and_inline(tmp_path):
    spec = tmp_path / "mix.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "sent_heavy",
                "components": [
                    {"task": "news_sentiment", "weight": 3},
                    {"task": "price_direction", "weight": 1},
                ],
            }
        )
    )
    inline = {"components": [{"task": "causal_detection"}, {"task": "news_sentiment"}]}
    cfg = load_config(SweepConfig, TINY, [f"sweep.cocktails=[{spec}]"])
    cfg.sweep.cocktails.append(inline)
    trials = expand_grid(cfg)
    assert {t.cocktail for t in trials} == {"sent_heavy", "causal_detection+news_sentiment"}
    heavy = next(t for t in trials if t.cocktail == "sent_heavy")
    assert dict(heavy.components) == {"news_sentiment": 3.0, "price_direction": 1.0}


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["sweep.tasks=[fomc_stance]"], "sweep.tasks: fomc_stance has only a test split"),
        (["sweep.cocktails=[pairs]", "sweep.tasks=[news_sentiment]"], "pairs needs at least 2"),
        (["sweep.cocktails=[no_such.yaml]"], "no_such.yaml not found"),
    ],
)
def test_bad_grids_fail_before_anything_runs(overrides, message):
    with pytest.raises(UserError, match=message):
        expand_grid(_cfg(*overrides))


@pytest.mark.parametrize(
    "override, field",
    [
        ("sweep.fractions=[0]", "sweep.fractions"),
        ("sweep.fractions=[1.5]", "sweep.fractions"),
        ("sweep.general=[1]", "sweep.general"),
        ("sweep.cocktails=[everything]", "sweep.cocktails"),
        ("sweep.cocktails=[]", "sweep.cocktails"),
        ("sweep.scheduler=asha", "sweep.scheduler=asha"),
        ("train.method=dpo", "train.method"),
    ],
)
def test_bad_sweep_configs_name_the_field(override, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        _cfg(override)


def test_an_unknown_task_is_refused_by_the_checks_naming_the_field():
    from raysys.config import SweepConfig
    from raysys.tasks.checks import load

    with pytest.raises(ConfigError, match=r"sweep\.tasks: unknown task 'no_such_task'"):
        load(SweepConfig, None, ["sweep.tasks=[no_such_task]"])


def test_concurrency_from_resources():
    cfg = _cfg()
    assert plan_resources(cfg, 4, {"CPU": 2.0}).concurrency == 2
    assert plan_resources(cfg, 4, {"CPU": 8.0}).concurrency == 4  # never more than the trials
    two = _cfg("train.num_workers=2", "train.batch_size=16")
    assert plan_resources(two, 4, {"CPU": 5.0}).concurrency == 2
    gpu = _cfg("train.use_gpu=true", "train.num_workers=2", "train.batch_size=16")
    assert plan_resources(gpu, 9, {"CPU": 8.0, "GPU": 8.0}).concurrency == 4
    none = plan_resources(gpu, 9, {"CPU": 8.0})  # autoscaling from zero GPUs
    assert none.concurrency == 1 and "max_concurrent_trials" in none.why
    assert plan_resources(_cfg("sweep.max_concurrent_trials=3"), 9, {}).concurrency == 3
