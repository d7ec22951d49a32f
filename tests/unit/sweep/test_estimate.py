"""`raysys sweep --dry-run --timings` (`raysys.sweep.estimate`): a trial's measured parts
read back from an earlier sweep's files, the grid's time on N slots from them, and the
refusal of timings measured on another model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raysys.cli import main
from raysys.config import SweepConfig, dump_config, load_config
from raysys.data.cocktail import mix
from raysys.errors import UserError
from raysys.sweep import estimate as est
from raysys.sweep.grid import Plan, Trial, expand_grid
from tests.fixtures import REPO

TINY = REPO / "configs" / "sweep_tiny.yaml"


def _cfg(tmp_path: Path, *overrides: str) -> SweepConfig:
    return load_config(SweepConfig, TINY, [f"run.storage_path={tmp_path / 'runs'}", *overrides])


def _write(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _earlier_sweep(tmp_path: Path) -> Path:
    """A finished tiny sweep's files with known parts: trial a (4 steps) and b (2 steps),
    0.5 s per step of 8 rows, 12 s validation passes of 16 rows, a 20 s test pass of 96."""
    run = tmp_path / "earlier" / "sweep_tiny" / "s1"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(dump_config(_cfg(tmp_path)))
    _write(run / "sweep.json", {"model": "tiny-random", "wall_vs_ideal": 1.1})
    for tid, fit, steps, trial_s in (("a", 30.0, 4, 45.0), ("b", 32.0, 2, 48.0)):
        train = {"wall_seconds": fit, "steps_this_attempt": steps, "step": steps}
        train |= {"seconds_per_step_median": 0.5, "train_tokens": steps * 8 * 10.0}
        val = {"n": 8, "mean_generated_tokens": 4.0}
        validation = {"news_sentiment": val, "price_direction": val}
        result = {"trial": {"trial_id": tid}, "train": train, "validation": validation}
        _write(run / "trials" / tid / "result.json", result | {"trial_seconds": trial_s})
        _write(run / "trials" / tid / "eval_validation" / "stage.json", {"seconds": 12.0})
        _write(run / "trials" / tid / "train" / "stage.json", {"seconds": fit + 2.0})
    records = [{"adapter": m, "task": t, "n": 16} for m in ("base", "a", "b") for t in "xy"]
    _write(run / "test_eval" / "k1" / "stage.json", {"result": records, "seconds": 20.0})
    return run


def test_the_parts_of_a_trial_are_read_back_from_its_files(tmp_path):
    t = est.read_timings(str(_earlier_sweep(tmp_path) / "sweep.json"))
    assert (t.model, t.dtype, t.use_gpu, t.trials) == ("tiny-random", "float32", False, 2)
    assert t.startup_s == pytest.approx(29.5)  # medians of 30 - 4 x 0.5 and 32 - 2 x 0.5
    assert t.row_s == pytest.approx(0.5 / 8)
    assert t.rest_s == pytest.approx(3.5)  # 45 - 30 - 12 and 48 - 32 - 12
    assert t.setup_s == pytest.approx(2.0)  # the training stage's 2 s outside the fit
    # 12 s for 16 rows and 20 s for 96: 0.1 s per row after a 10.4 s start-up
    assert t.generation_s == pytest.approx(0.1) and t.engine_start_s == pytest.approx(10.4)
    assert t.eval_method == "validation and test passes" and t.tune_overhead == 1.1


def test_a_trial_retried_after_its_training_finished_does_not_count_as_a_start_up(tmp_path):
    # b's last fit restored its final checkpoint and trained nothing: 6 s, 0 steps, and the
    # earlier fit's step time and tokens (its 2 steps' 160 tokens)
    run = _earlier_sweep(tmp_path)
    train = {"wall_seconds": 6.0, "steps_this_attempt": 0, "step": 2}
    train |= {"seconds_per_step_median": 0.5, "train_tokens": 2 * 8 * 10.0}
    result = {"trial": {"trial_id": "b"}, "train": train, "trial_seconds": 20.0}
    _write(run / "trials" / "b" / "result.json", result)
    t = est.read_timings(str(run))
    assert t.trials == 2
    assert t.startup_s == pytest.approx(28.0)  # a's 30 - 4 x 0.5 only (with b's: 17)
    assert t.tokens_per_row == pytest.approx(10.0)  # a's (with b's 160 per 0 rows: 85)
    # when no trial trained in its last attempt there is no start-up to read
    train = {"wall_seconds": 5.0, "steps_this_attempt": 0, "step": 4}
    _write(run / "trials" / "a" / "result.json", {"trial": {"trial_id": "a"}, "train": train})
    with pytest.raises(UserError, match="no trial .* trained in its last attempt"):
        est.read_timings(str(run))


def test_the_grid_estimate_runs_trials_longest_first_on_each_slot_count(tmp_path):
    timings = est.read_timings(str(_earlier_sweep(tmp_path)))
    cfg = _cfg(tmp_path, "sweep.seeds=[0,1,2]")
    trials = expand_grid(cfg)
    plan = Plan(2, {"CPU": 1.0}, {"CPU": 2.0}, "test")
    e = est.estimate(cfg, trials, plan, timings)
    costs = {c.trial_id: c for c in e.trials}
    half, full = costs["news_sentiment-g0-m0-f0p5-s0"], costs["news_sentiment-g0-m0-f1-s0"]
    assert (half.rows, half.steps, full.rows, full.steps) == (16, 2, 32, 4)
    # 29.5 start-up + steps x 8 rows x 1/16 s + validation 10.4 + 16 x 0.1 + rest 3.5
    assert half.seconds == pytest.approx(46.0) and full.seconds == pytest.approx(47.0)
    assert sorted(e.walls) == [1, 2, 8, 32, 64] and e.planned == 2
    assert e.walls[1] == pytest.approx(6 * (46 + 47) * 1.1)
    assert e.walls[2] == pytest.approx((3 * 47 + 3 * 46) * 1.1)
    assert e.walls[64] == pytest.approx(47 * 1.1)  # more slots than trials: the longest
    assert e.test_generations == 13 * 2 * 16  # base + 12 adapters x 2 tasks x 16 test rows
    assert e.tests[2] == pytest.approx(10.4 + 0.1 * 416)  # generate.concurrency=1 replica
    assert e.tests[8] == pytest.approx(10.4 + 0.1 * 416 / 8)
    text = est.format_estimate(e)
    assert "This grid: 12 trials of 2-4 training steps" in text
    assert "    2*" in text and "the timings hold for this model on the same hardware" in text


def test_the_estimate_says_when_the_trials_ran_in_another_dtype(tmp_path):
    """bfloat16 configured, float32 computed (a CPU without bf16 instructions): the same
    config runs at another speed where bf16 is native, so the estimate says so."""
    run = _earlier_sweep(tmp_path)
    plan = Plan(2, {"CPU": 1.0}, {"CPU": 2.0}, "test")
    cfg = _cfg(tmp_path)
    text = est.format_estimate(
        est.estimate(cfg, expand_grid(cfg), plan, est.read_timings(str(run)))
    )
    assert "of tiny-random (float32, CPU)" in text  # no dtype recorded: nothing claimed
    config = (run / "config.yaml").read_text().replace("dtype: float32", "dtype: bfloat16")
    (run / "config.yaml").write_text(config)
    for tid in "ab":
        result = json.loads((run / "trials" / tid / "result.json").read_text())
        result["train"]["dtype"] = "float32"
        _write(run / "trials" / tid / "result.json", result)
    timings = est.read_timings(str(run))
    assert timings.run_dtypes == ("float32",)
    cfg = _cfg(tmp_path, "model.dtype=bfloat16")
    text = est.format_estimate(est.estimate(cfg, expand_grid(cfg), plan, timings))
    assert "of tiny-random (bfloat16, run in float32 there, CPU)" in text


def test_validation_in_the_final_pass_moves_its_rows_there(tmp_path):
    timings = est.read_timings(str(_earlier_sweep(tmp_path)))
    cfg = _cfg(tmp_path, "sweep.validate_in=final")
    e = est.estimate(cfg, expand_grid(cfg), Plan(1, {}, {}, "test"), timings)
    assert all(c.validation_s == 0 for c in e.trials)
    assert e.test_generations == 5 * 2 * (16 + 8)


def test_timings_of_another_model_dtype_or_device_are_refused(tmp_path):
    timings = est.read_timings(str(_earlier_sweep(tmp_path)))
    for override, name in (
        ("model.source=smollm2-135m-instruct", "model.source"),
        ("model.dtype=bfloat16", "model.dtype"),
        ("train.use_gpu=true", "train.use_gpu"),
    ):
        with pytest.raises(UserError, match=f"was measured with {name}=") as err:
            est.check_comparable(_cfg(tmp_path, override), timings)
        assert "pass its directory" in str(err.value)
    differs = est.check_comparable(_cfg(tmp_path, "train.max_seq_length=512"), timings)
    assert differs == ["train.max_seq_length 256 (measured) vs 512"]


def test_a_folder_without_a_finished_sweep_is_refused(tmp_path):
    with pytest.raises(UserError, match="holds no finished sweep"):
        est.read_timings(str(tmp_path))


def test_the_cli_refuses_in_one_line_before_printing_the_grid(tmp_path, capsys, no_ray):
    earlier = str(_earlier_sweep(tmp_path))
    storage = f"run.storage_path={tmp_path / 'plan'}"
    big = str(REPO / "configs" / "sweep.yaml")
    assert main(["sweep", big, storage, "--dry-run", "--timings", earlier]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1
    assert "model.source='tiny-random'" in err
    assert main(["sweep", str(TINY), storage, "--timings", earlier]) == 2
    assert "--timings needs --dry-run" in capsys.readouterr().err
    assert main(["sweep", str(TINY), storage, "--dry-run", "--timings", earlier]) == 0
    assert "Estimate from" in capsys.readouterr().out
    assert not (tmp_path / "plan").exists()


@pytest.mark.parametrize(
    ("components", "fraction", "general", "maths"),
    [
        ((("a", 1.0),), 0.5, 0.0, 0.0),
        ((("a", 1.0), ("b", 1.0)), 0.25, 0.1, 0.0),
        ((("a", 2.0), ("b", 1.0)), 1.0, 0.1, 0.05),
    ],
)
def test_trial_rows_count_what_the_cocktail_mix_draws(components, fraction, general, maths):
    trial = Trial("t", "c", "explicit", components, general, maths, fraction, 0, 1e-4, 8)
    pools = {
        t: [{"id": f"{t}-{i}", "task": t, "input": "x", "gold": "y"} for i in range(30)]
        for t in ("a", "b", "general_instruct", "arith_math")
    }
    spec = _spec(trial)
    rows, _ = mix(spec, pools, fraction, seed=0)
    assert est.trial_rows(trial, 30) == len(rows)


def _spec(trial: Trial):
    from raysys.data.cocktail import parse_spec

    return parse_spec(trial.spec())


def test_steps_and_makespan():
    assert est.train_steps(17, 8, 1.0, None) == 3
    assert est.train_steps(17, 8, 2.0, None) == 6
    assert est.train_steps(17, 8, 1.0, 5) == 5
    assert est.makespan([3, 3, 2, 2, 2], 2) == 7  # 3+2+2 | 3+2
    assert est.makespan([3, 3, 2, 2, 2], 1) == 12
    assert est.makespan([3, 1], 8) == 3


def test_the_sweep_is_found_from_a_file_in_it():
    assert est._sweep_location("runs/s/1/sweep.json") == "runs/s/1"
    assert est._sweep_location("runs/s/1/results.parquet") == "runs/s/1"
    assert est._sweep_location("runs/s/1/") == "runs/s/1"
    uri = "s3://b/runs/s/1/sweep.json?endpoint_override=localhost:9000"
    assert est._sweep_location(uri) == "s3://b/runs/s/1?endpoint_override=localhost:9000"


def test_timings_are_read_in_an_object_store_without_a_mirror(tmp_path, monkeypatch):
    from pyarrow import fs

    from tests.fixtures import moto_s3

    monkeypatch.setenv("RAYSYS_CACHE", str(tmp_path / "cache"))
    local = _earlier_sweep(tmp_path)
    with moto_s3("timings") as where:
        s3 = fs.S3FileSystem(endpoint_override=where, scheme="http", region="us-east-1")
        fs.copy_files(str(local), "timings/runs/s1", destination_filesystem=s3)
        options = f"endpoint_override={where}&scheme=http&region=us-east-1"
        t = est.read_timings(f"s3://timings/runs/s1/sweep.json?{options}")
    assert t.source == "s3://timings/runs/s1" and t.trials == 2
    assert t.startup_s == pytest.approx(29.5) and t.generation_s == pytest.approx(0.1)
    assert not (tmp_path / "cache").exists()  # read in place: nothing fetched


def test_the_estimate_prices_what_the_trials_and_the_test_pass_would_hold(tmp_path, capsys):
    timings = est.read_timings(str(_earlier_sweep(tmp_path)))
    cfg = _cfg(tmp_path, "cost.prices={CPU: 3.6}", "generate.concurrency=2")
    trials = expand_grid(cfg)
    e = est.estimate(cfg, trials, Plan(2, {"CPU": 1.0}, {"CPU": 2.0}, "test"), timings)
    # each trial: 1 Train worker x 1 CPU for start-up + steps + setup (29.5 + 1 or 2 + 2 s),
    # 2 engine actors x 1 CPU for validation (10.4 + 16 rows x 0.1 s / 2 replicas)
    train = sum(29.5 + c.train_s + 2.0 for c in e.trials)
    val = 2 * sum(c.validation_s for c in e.trials)
    test = 2 * e.tests[2]
    assert e.trials_usage["resource_seconds"] == {"CPU": pytest.approx(train + val)}
    assert e.test_usage["resource_seconds"] == {"CPU": pytest.approx(test)}
    assert e.usage["resource_seconds"]["CPU"] == pytest.approx(train + val + test)
    text = est.format_estimate(e)
    usd = (train + val + test) / 3600 * 3.6
    assert f"Estimated cost (planned): {train + val + test:,.0f} CPU-s" in text
    assert f"${usd:,.4g}" in text
    # 10 tokens per training row and 4 per generated row, as measured
    assert e.usage["tokens_trained"] == sum(c.steps * 8 * 10 for c in e.trials)
    assert e.usage["tokens_generated"] == (len(e.trials) * 16 + e.test_generations) * 4
    gpu = _cfg(tmp_path, "cost.prices={CPU: 3.6}", "train.use_gpu=true")
    e = est.estimate(
        gpu,
        trials,
        Plan(2, {"GPU": 1.0}, {"GPU": 2.0}, "test"),
        timings.__class__(**{**timings.__dict__, "use_gpu": True}),
    )
    assert "cost unknown: no price for GPU" in est.format_estimate(e)
