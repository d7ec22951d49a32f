"""Sweep analysis on synthetic results with known answers: power-law exponent, transfer
matrix, validation-based selection, confidence intervals, and the written report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from raysys.analysis.leaderboard import leaderboard
from raysys.analysis.report import headline, write_report
from raysys.analysis.results import MissingInput
from raysys.analysis.scaling import ScalingFit, data_for_target, fit_power_law, scaling_table
from raysys.analysis.stats import bootstrap_main_ci, mean_ci
from raysys.analysis.transfer import transfer_matrix
from raysys.errors import UserError
from raysys.tasks import get_task

ALPHA, A = 0.28, 0.9
NAN = float("nan")


def _row(
    trial: str,
    cocktail: str,
    kind: str,
    tasks: tuple[str, ...],
    task: str,
    val: float,
    test: float,
    *,
    general: float = 0.0,
    maths: float = 0.0,
    fraction: float = 1.0,
    seed: int = 0,
    task_rows: int | None = None,
) -> dict:
    """One results row in the sweep runner's schema."""
    if task_rows is None:
        task_rows = round(400 * fraction) if task in tasks else 0
    return {
        "trial_id": trial, "cocktail": cocktail, "cocktail_kind": kind,
        "cocktail_tasks": ",".join(sorted(tasks)), "general": general, "math": maths,
        "fraction": fraction, "seed": seed, "learning_rate": 2e-4, "lora_r": 8.0,
        "train_rows": round(400 * fraction) * len(tasks), "task_train_rows": task_rows,
        "train_tokens": 1e4, "train_seconds": 10.0, "tokens_per_s": 1e3, "final_loss": 0.5,
        "trial_seconds": 12.0, "task": task, "task_kind": "classification",
        "main_metric": "macro_f1", "val_main": val, "val_missing_rate": 0.0, "test_main": test,
        "test_missing_rate": 0.0, "test_overlength_ratio": 0.0,
    }  # fmt: skip


def _base(task: str, test: float) -> dict:
    row = _row("base", "base", "base", (), task, NAN, test)
    nans = dict.fromkeys(["fraction", "lora_r", "tokens_per_s", "train_seconds"], NAN)
    return {**row, **nans, "train_rows": 0}


def _arm(cocktail, kind, tasks, scores, *, general=0.0, maths=0.0, fraction=1.0, seeds=(0,)):
    """Rows of one arm: `scores` maps evaluated task -> (val, test) per seed, or one pair."""
    rows = []
    for i, seed in enumerate(seeds):
        trial = f"{cocktail}-g{general}-m{maths}-f{fraction}-s{seed}"
        kw = {"general": general, "maths": maths, "fraction": fraction, "seed": seed}
        for task, pairs in scores.items():
            val, test = pairs[i] if isinstance(pairs, list) else pairs
            rows.append(_row(trial, cocktail, kind, tasks, task, val, test, **kw))
    return rows


# --- scaling -----------------------------------------------------------------------------


def _power_law_points(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    d = np.repeat([100.0, 200.0, 400.0, 800.0], 3)  # 4 fractions x 3 seeds
    error = A * d**-ALPHA * np.exp(rng.normal(0, 0.02, d.size))
    return d, 1 - error


def test_fit_recovers_known_alpha_and_inverts():
    d, metric = _power_law_points()
    fit = fit_power_law(d, metric)
    assert abs(fit.alpha - ALPHA) < 0.03
    assert fit.alpha_lo <= ALPHA <= fit.alpha_hi
    assert fit.alpha_lo < fit.alpha < fit.alpha_hi
    assert fit.r2 > 0.97
    assert fit.A == pytest.approx(A, rel=0.15)
    assert (fit.n_points, fit.n_sizes) == (12, 4)
    assert data_for_target(fit, float(fit.predict(5000.0))) == pytest.approx(5000.0, rel=1e-9)
    assert fit_power_law(d, metric) == fit  # the bootstrap is seeded


def test_data_for_target_never_reached():
    flat = ScalingFit(A=0.5, alpha=0.0, alpha_lo=0, alpha_hi=0, r2=0, n_points=4, n_sizes=2)
    assert data_for_target(flat, 0.6) == math.inf
    fit = fit_power_law(*_power_law_points())
    assert data_for_target(fit, 1.0) == math.inf


def test_fit_one_size_is_a_clear_error():
    with pytest.raises(ValueError, match=r"needs >= 3 distinct data sizes d, got 1 \(d = 400\)"):
        fit_power_law([400, 400, 400], [0.7, 0.72, 0.71])
    with pytest.raises(MissingInput, match=r"^not fitted: 2 sizes; .*got 2 \(d = 200, 400\)"):
        fit_power_law([200, 400, 200, 400], [0.6, 0.7, 0.61, 0.72])


def test_fit_clips_a_perfect_score():
    fit = fit_power_law([100, 200, 400], [0.9, 0.99, 1.0], n_boot=50)
    assert math.isfinite(fit.alpha) and fit.alpha > 0


def test_scaling_table_fits_each_arm_swept_at_two_fractions():
    rows = [_base("t1", 0.3)]
    for fraction in (0.25, 0.5, 1.0):
        d = round(400 * fraction)
        tests = [1 - A * d**-ALPHA * (1 + e) for e in (-0.01, 0.0, 0.01)]
        pairs = [(t, t) for t in tests]
        rows += _arm("t1", "singleton", ("t1",), {"t1": pairs}, fraction=fraction, seeds=(0, 1, 2))
    rows += _arm("t1+t2", "pair", ("t1", "t2"), {"t1": (0.5, 0.5)})  # one fraction: no fit
    table = scaling_table(pd.DataFrame(rows))
    assert table[["task", "cocktail"]].values.tolist() == [["t1", "t1"]]
    fit = table.iloc[0]
    assert fit["alpha"] == pytest.approx(ALPHA, abs=0.01)
    best = 1 - A * 400**-ALPHA * 0.99
    assert fit["target"] == pytest.approx(best + (1 - best) / 2)
    assert fit["d_for_target"] > 400
    assert scaling_table(pd.DataFrame(rows), target=0.5)["target"].iloc[0] == 0.5


def test_scaling_table_with_one_fraction_says_why():
    rows = _arm("t1", "singleton", ("t1",), {"t1": (0.5, 0.5)}, seeds=(0, 1))
    with pytest.raises(MissingInput, match="at least 3 fractions"):
        scaling_table(pd.DataFrame(rows))


# --- transfer ----------------------------------------------------------------------------

TASKS = ("t1", "t2", "t3")
BASE = {"t1": 0.30, "t2": 0.40, "t3": 0.50}
GAIN = np.array([[0.25, 0.05, -0.02], [0.01, 0.30, 0.00], [-0.04, 0.03, 0.20]])


def _transfer_results() -> pd.DataFrame:
    rows = [_base(t, BASE[t]) for t in TASKS]
    for i, trained in enumerate(TASKS):
        # Two seeds at +-0.01: the mean is the known value exactly.
        scores = {
            t: [(0.5, BASE[t] + GAIN[i, j] + e) for e in (0.01, -0.01)] for j, t in enumerate(TASKS)
        }
        rows += _arm(trained, "singleton", (trained,), scores, seeds=(0, 1))
        # Arms the matrix must ignore: a smaller fraction and regulariser shares.
        junk = {t: (0.9, 0.99) for t in TASKS}
        rows += _arm(trained, "singleton", (trained,), junk, fraction=0.5)
        rows += _arm(trained, "singleton", (trained,), junk, general=0.1)
    rows += _arm("all", "all", TASKS, {t: (0.9, 0.99) for t in TASKS})
    return pd.DataFrame(rows)


def test_transfer_matrix_reproduces_known_gains():
    results = _transfer_results()
    expected = pd.DataFrame(GAIN, index=list(TASKS), columns=list(TASKS))
    got = transfer_matrix(results)
    pd.testing.assert_frame_equal(got, expected, check_names=False, atol=1e-12)
    absolute = transfer_matrix(results, relative=False)
    pd.testing.assert_frame_equal(
        absolute, expected + pd.Series(BASE), check_names=False, atol=1e-12
    )


def test_transfer_matrix_falls_back_to_smallest_shares():
    rows = [_base("t1", 0.3)]
    rows += _arm("t1", "singleton", ("t1",), {"t1": (0.5, 0.6)}, general=0.05)
    rows += _arm("t1", "singleton", ("t1",), {"t1": (0.5, 0.9)}, general=0.2)
    assert transfer_matrix(pd.DataFrame(rows)).loc["t1", "t1"] == pytest.approx(0.3)


def test_transfer_matrix_without_singletons_says_why():
    rows = [_base("t1", 0.3), *_arm("all", "all", ("t1", "t2"), {"t1": (0.5, 0.5)})]
    with pytest.raises(MissingInput, match="no singleton cocktails"):
        transfer_matrix(pd.DataFrame(rows))


# --- leaderboard -------------------------------------------------------------------------


def _board_results() -> pd.DataFrame:
    seeds = (0, 1, 2)
    rows = [_base("t1", 0.20), _base("t2", 0.25)]
    # t1: the singleton wins on test, the pair on validation -> the pair must be chosen.
    rows += _arm(
        "t1", "singleton", ("t1",), {"t1": [(0.60, 0.90), (0.62, 0.92), (0.61, 0.91)]}, seeds=seeds
    )
    rows += _arm(
        "t1+t2",
        "pair",
        ("t1", "t2"),
        {"t1": [(0.70, 0.80), (0.72, 0.84), (0.71, 0.83)], "t2": (0.50, 0.50)},
        seeds=seeds,
    )
    # The same pair with general data: best on t2's validation, and better on test.
    rows += _arm(
        "t1+t2",
        "pair",
        ("t1", "t2"),
        {"t1": (0.10, 0.10), "t2": [(0.80, 0.60), (0.82, 0.64), (0.81, 0.62)]},
        general=0.1,
        seeds=seeds,
    )
    rows += _arm("t2", "singleton", ("t2",), {"t2": (0.55, 0.58)})
    # The pair at a smaller fraction would win everything: not a candidate.
    rows += _arm(
        "t1+t2", "pair", ("t1", "t2"), {"t1": (0.99, 0.99), "t2": (0.99, 0.99)}, fraction=0.5
    )
    return pd.DataFrame(rows)


def test_leaderboard_chooses_on_validation_and_reports_test():
    board = leaderboard(_board_results()).set_index("task")
    t1 = board.loc["t1"]
    assert t1["best_cocktail"] == "t1+t2" and t1["general"] == 0.0
    values = [0.80, 0.84, 0.83]
    lo, hi = stats.t.interval(0.95, 2, loc=np.mean(values), scale=stats.sem(values))
    assert (t1["test_mean"], t1["test_lo"], t1["test_hi"]) == pytest.approx(
        (np.mean(values), lo, hi)
    )
    assert t1["ci_method"] == "t" and t1["seeds"] == 3
    assert t1["single_test"] == pytest.approx(0.91)
    assert t1["delta_vs_single"] == pytest.approx(np.mean(values) - 0.91)
    assert t1["delta_vs_base"] == pytest.approx(np.mean(values) - 0.20)
    assert pd.isna(t1["regularisers_helped"]) and math.isnan(t1["regularisers_delta"])


def test_leaderboard_regularisers_helped():
    board = leaderboard(_board_results())
    t2 = board.set_index("task").loc["t2"]
    assert (t2["best_cocktail"], t2["general"], t2["fraction"]) == ("t1+t2", 0.1, 1.0)
    assert t2["regularisers_delta"] == pytest.approx(0.62 - 0.50)
    assert board["regularisers_helped"].tolist() == [pd.NA, True]  # t1's arm has none
    assert t2["single_test"] == pytest.approx(0.58) and math.isnan(t2["single_lo"])  # one seed


def test_leaderboard_single_seed_bootstraps_predictions():
    task = get_task("news_sentiment")
    labels = ["positive", "negative", "neutral"] * 10
    outputs = [f"Answer: {g}" for g in labels[:22]] + ["Answer: positive"] * 8
    score = task.score(labels, outputs)["main"]
    rows = [_base("news_sentiment", 0.3)]
    rows += _arm(
        "news_sentiment", "singleton", ("news_sentiment",), {"news_sentiment": (score, score)}
    )
    results = pd.DataFrame(rows)
    trial = results.loc[results["cocktail"] != "base", "trial_id"].iloc[0]
    preds = pd.DataFrame(
        {"adapter": trial, "task": "news_sentiment", "id": range(30), "input": "text",
         "gold": labels, "generated_text": outputs}
    )  # fmt: skip
    row = leaderboard(results, preds, n_boot=100).iloc[0]
    assert row["ci_method"] == "bootstrap" and row["seeds"] == 1
    assert row["test_lo"] < score < row["test_hi"]
    assert math.isnan(leaderboard(results).iloc[0]["test_lo"])  # no predictions, no CI


# --- stats -------------------------------------------------------------------------------


def test_mean_ci_matches_scipy_and_degenerate_cases():
    values = [0.61, 0.65, 0.58, 0.66]
    lo, hi = stats.t.interval(0.9, 3, loc=np.mean(values), scale=stats.sem(values))
    assert mean_ci(values, 0.9) == pytest.approx((np.mean(values), lo, hi))
    mean, lo, hi = mean_ci([0.7])
    assert mean == 0.7 and math.isnan(lo) and math.isnan(hi)
    # identical seeds have no spread: no interval, never a zero-width one
    mean, lo, hi = mean_ci([0.5, 0.5, 0.5, NAN])
    assert mean == 0.5 and math.isnan(lo) and math.isnan(hi)
    # two seeds: a t-interval from two points is no interval unless asked for
    assert math.isnan(mean_ci([0.6, 0.7])[1])
    assert mean_ci([0.6, 0.7], min_values=2)[1] < 0.6


def test_bootstrap_main_ci_is_deterministic_and_uses_the_task_scorer():
    golds = ["positive", "negative", "neutral"] * 8
    outputs = [f"Answer: {g}" for g in golds[:18]] + ["no idea"] * 6
    a = bootstrap_main_ci("news_sentiment", golds, outputs, n_boot=60, seed=3)
    assert a == bootstrap_main_ci("news_sentiment", golds, outputs, n_boot=60, seed=3)
    assert a[0] < get_task("news_sentiment").score(golds, outputs)["main"] < a[1]
    perfect = [f"Answer: {g}" for g in golds]
    # every resample scores 1.0: no spread, so no (zero-width) interval
    assert all(math.isnan(v) for v in bootstrap_main_ci("news_sentiment", golds, perfect))


# --- report ------------------------------------------------------------------------------


def _full_sweep() -> pd.DataFrame:
    """Three tasks, singletons + all, three fractions, two seeds, one regulariser arm."""
    rng = np.random.default_rng(0)
    rows = [_base(t, BASE[t]) for t in TASKS]
    arms = [(t, "singleton", (t,), 0.0) for t in TASKS] + [("all", "all", TASKS, 0.0)]
    arms.append(("all", "all", TASKS, 0.1))
    for cocktail, kind, trained, general in arms:
        for fraction in (0.25, 0.5, 1.0):
            scores = {}
            for t in TASKS:
                m = 1 - A * (400 * fraction) ** -ALPHA if t in trained else BASE[t] + 0.02
                scores[t] = [(m + rng.normal(0, 0.01), m + rng.normal(0, 0.01)) for _ in "ab"]
            rows += _arm(
                cocktail, kind, trained, scores, general=general, fraction=fraction, seeds=(0, 1)
            )
    return pd.DataFrame(rows)


def test_write_report_writes_a_self_contained_report(tmp_path: Path):
    results = _full_sweep()
    results.to_parquet(tmp_path / "results.parquet", index=False)
    (tmp_path / "sweep.json").write_text(json.dumps({"name": "<demo>", "wall_seconds": 12.5}))
    paths = write_report(tmp_path)
    assert set(paths.plots) == set(paths.tables) == {"transfer", "leaderboard", "scaling"}
    for path in [paths.markdown, paths.html, *paths.plots.values(), *paths.tables.values()]:
        assert path.exists() and path.stat().st_size > 0
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in paths.plots.values())
    page = paths.html.read_text(encoding="utf-8")
    assert page.count('src="data:image/png;base64,') >= 3
    for external in ('src="http', "href=", "<link", "<script", "@import", "url("):
        assert external not in page
    assert "&lt;demo&gt;" in page and "<demo>" not in page  # metadata is escaped
    md = paths.markdown.read_text(encoding="utf-8")
    for section in (
        "## Results summary",
        "## Transfer matrix",
        "## Leaderboard",
        "## Scaling law",
        "## Trials",
        "α ≈ 0.28",
        "(plots/scaling.png)",
    ):
        assert section in md
    assert not list(tmp_path.glob(".*tmp*"))  # no temp files left behind
    assert len(pd.read_csv(paths.tables["leaderboard"])) == len(TASKS)


def test_write_report_says_why_sections_are_missing(tmp_path: Path):
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "scaling.png").write_bytes(b"stale")  # from an earlier report
    rows = [_base("t1", 0.3)]
    rows += _arm("all", "all", ("t1", "t2"), {"t1": (0.5, 0.6), "t2": (0.4, 0.5)}, seeds=(0, 1))
    paths = write_report(tmp_path, results=pd.DataFrame(rows), meta={})
    md = paths.markdown.read_text(encoding="utf-8")
    assert "Not available: the sweep has no singleton cocktails" in md
    assert "Not available: no cocktail was trained at >= 2 data fractions" in md
    assert set(paths.plots) == {"leaderboard"} and set(paths.tables) == {"leaderboard"}
    assert not (tmp_path / "plots" / "scaling.png").exists()
    assert paths.html.read_text(encoding="utf-8").count("data:image/png;base64,") == 1


def test_headline_lists_every_task():
    text = headline(_board_results())
    assert text.splitlines()[0].startswith("| task | base | single-task | best cocktail")
    assert "| t1 | 0.200 | 0.910 [" in text and "t1+t2" in text


def test_bad_inputs_name_the_problem(tmp_path: Path):
    with pytest.raises(UserError, match="results.parquet does not exist"):
        write_report(tmp_path)
    with pytest.raises(UserError, match="needs the results column.*val_main"):
        leaderboard(_board_results().drop(columns=["val_main"]))
