"""The sweep report on a synthetic sweep with test predictions: a single-label arm is
marked `constant`, two data sizes fit no law and print no interval, the baselines and
the paired comparisons are in report.md, the CSVs and the terminal headline."""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from raysys.analysis.leaderboard import leaderboard
from raysys.analysis.report import headline, sweep_headline, write_report
from raysys.analysis.rowscore import scorer_for
from raysys.analysis.scaling import scaling_table
from raysys.errors import UserError
from tests.unit.analysis.synthetic import TASKS as SWEEP_TASKS
from tests.unit.analysis.synthetic import arm_rows, base_row, board_results, full_sweep

NS, PD = "news_sentiment", "price_direction"
TASKS = (NS, PD)
N_TEST = 60
GOLDS = {
    NS: ["positive"] * 30 + ["negative"] * 18 + ["neutral"] * 12,
    PD: ["up"] * 36 + ["down"] * 24,
}


def _preds(task: str, right: float, seed: int, constant: str | None = None) -> list[str]:
    if constant is not None:
        return [constant] * N_TEST
    rng = np.random.default_rng(seed)
    labels = scorer_for(task).labels
    return [g if rng.random() < right else str(rng.choice(labels)) for g in GOLDS[task]]


def _trial(trial, cocktail, kind, trained, fraction, seed, quality, val):
    """Results rows and prediction rows of one trial; `quality[task]` is (right share,
    constant label or None)."""
    rows, preds = [], []
    for task in TASKS:
        right, constant = quality[task]
        pred = _preds(task, right, seed + zlib.crc32(trial.encode()), constant)
        test = scorer_for(task).score(GOLDS[task], pred)
        rows.append(
            {
                "trial_id": trial, "cocktail": cocktail, "cocktail_kind": kind,
                "cocktail_tasks": ",".join(sorted(trained)), "general": 0.0, "math": 0.0,
                "fraction": fraction, "seed": seed, "train_rows": 0,
                "task_train_rows": round(200 * fraction) if task in trained else 0,
                "task": task, "task_kind": "classification", "main_metric": "macro_f1",
                "val_main": val.get(task, 0.5), "test_main": test,
            }
        )  # fmt: skip
        preds.append(
            pd.DataFrame(
                {"adapter": trial, "task": task, "id": [f"{task}-{i}" for i in range(N_TEST)],
                 "input": "text", "gold": GOLDS[task], "generated_text": "", "pred": pred}
            )
        )  # fmt: skip
    return rows, preds


def _sweep(fractions=(0.5, 1.0), seeds=(0,)) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Base (weak), the news_sentiment singleton predicting `positive` on every row, the
    price_direction singleton, and the pair (best on validation, and truly better)."""
    base = {NS: (0.2, None), PD: (0.2, None)}
    arms = [
        ("base", "base", "base", (), base, {}),
        (NS, NS, "singleton", (NS,), {NS: (0, "positive"), PD: (0.3, None)}, {NS: 0.4}),
        (PD, PD, "singleton", (PD,), {NS: (0.3, None), PD: (0.7, None)}, {PD: 0.6}),
        ("pair", f"{NS}+{PD}", "pair", TASKS, {NS: (0.9, None), PD: (0.75, None)},
         {NS: 0.9, PD: 0.7}),
    ]  # fmt: skip
    rows, preds = [], []
    for name, cocktail, kind, trained, quality, val in arms:
        for fraction in fractions if kind != "base" else (math.nan,):
            for seed in seeds if kind != "base" else (0,):
                trial = "base" if kind == "base" else f"{name}-f{fraction}-s{seed}"
                r, p = _trial(trial, cocktail, kind, trained, fraction, seed, quality, val)
                rows += r
                preds += p
    return pd.DataFrame(rows), pd.concat(preds, ignore_index=True)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, str]:
    results, preds = _sweep()
    out = tmp_path_factory.mktemp("sweep")
    results.to_parquet(out / "results.parquet", index=False)
    preds.to_parquet(out / "test_predictions.parquet", index=False)
    paths = write_report(out, meta={"name": "demo"})
    return out, paths.markdown.read_text(encoding="utf-8")


def _md_rows(md: str, first_cell: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip("|").split("|")]
        for line in md.splitlines()
        if line.startswith(f"| {first_cell} |")
    ]


def test_a_single_label_arm_is_marked_constant(report):
    sweep_dir, md = report
    assert "`constant`: at least 90% of the model's test predictions are one value" in md
    # the transfer matrix row of the news_sentiment singleton: its in-task cell is constant
    transfer = _md_rows(md, NS)[0]
    assert transfer[1].endswith(" constant") and not transfer[2].endswith("constant")
    # the leaderboard's single-task column for news_sentiment
    board = pd.read_csv(sweep_dir / "leaderboard.csv").set_index("task")
    assert board.loc[NS, "single_constant"] == 1 and board.loc[PD, "single_constant"] == 0
    assert board.loc[NS, "test_constant"] == 0
    cells = pd.read_csv(sweep_dir / "transfer.csv")
    diag = cells[(cells["trained_on"] == NS) & (cells["evaluated"] == NS)].iloc[0]
    assert diag["constant"] == 1 and diag["seeds"] == 1


def test_two_sizes_fit_no_law_and_print_no_interval(report):
    sweep_dir, md = report
    scaling = md.split("## Scaling law")[1].split("## Trials")[0]
    assert "not fitted: 2 sizes" in scaling
    table_lines = [line for line in scaling.splitlines() if line.startswith(f"| {NS} |")]
    assert table_lines and all("[" not in line for line in table_lines)  # no interval at all
    fits = pd.read_csv(sweep_dir / "scaling.csv")
    assert set(fits["fit"]) == {"not fitted: 2 sizes"} and fits["alpha"].isna().all()


def test_baselines_and_paired_comparisons_are_reported(report):
    sweep_dir, md = report
    board = pd.read_csv(sweep_dir / "leaderboard.csv").set_index("task")
    # majority answer on every row: macro-F1 of a 50/30/20 set = (2 * 0.5 / 1.5) / 3
    assert board.loc[NS, "majority"] == pytest.approx((2 * 0.5 / 1.5) / 3)
    assert board.loc[NS, "majority_answer"] == "positive" and board.loc[NS, "n"] == N_TEST
    assert board.loc[PD, "random"] == pytest.approx(
        np.mean([2 * p * 0.5 / (p + 0.5) for p in (0.6, 0.4)]), abs=0.02
    )
    # the pair is chosen on validation and beats the constant singleton for real
    assert board.loc[NS, "best_cocktail"] == f"{NS}+{PD}"
    assert board.loc[NS, "vs_single_significant"] and board.loc[NS, "vs_base_significant"]
    assert board.loc[NS, "vs_single_test"] == "permutation"
    assert board.loc[NS, "vs_single_p_adj"] >= board.loc[NS, "vs_single_p"]
    for text in ("Is the best cocktail better?", "p (Holm)", "significant", "MDE", "Holm"):
        assert text in md
    comparisons = _md_rows(md, NS)
    assert any(r[1] == "best vs single-task" and r[7] == "yes" for r in comparisons)


def test_headline_shows_baselines_constant_and_paired_tests(report):
    sweep_dir, _ = report
    text = sweep_headline(sweep_dir)
    assert (
        "| task | base | single-task | best cocktail | test [95% CI] | majority | random | n |"
        in text
    )
    assert " constant |" in text  # the news_sentiment singleton
    assert "| task | comparison | Δ [95% CI] | p (Holm) | significant | MDE |" in text
    results = pd.read_parquet(sweep_dir / "results.parquet")
    assert "majority" not in headline(results)  # without predictions: no baselines to show


def test_identical_arms_are_not_significant():
    results, preds = _sweep()
    # the pair's predictions replaced by the singleton's: same rows, same answers
    for task, single in ((PD, f"{PD}-f1.0-s0"),):
        mine = preds[(preds["adapter"] == single) & (preds["task"] == task)]["pred"].to_numpy()
        preds.loc[(preds["adapter"] == "pair-f1.0-s0") & (preds["task"] == task), "pred"] = mine
    row = leaderboard(results, preds).set_index("task").loc[PD]
    assert row["vs_single_diff"] == 0 and row["vs_single_p"] == 1.0
    assert not row["vs_single_significant"] and math.isnan(row["vs_single_lo"])


def test_ci_rule_t_from_three_seeds_bootstrap_below():
    results, preds = _sweep(fractions=(1.0,), seeds=(0, 1))
    row = leaderboard(results, preds).set_index("task").loc[PD]
    assert row["ci_method"] == "bootstrap" and row["seeds"] == 2  # never t from two seeds
    assert row["test_lo"] < row["test_mean"] < row["test_hi"]
    results, preds = _sweep(fractions=(1.0,), seeds=(0, 1, 2))
    assert leaderboard(results, preds).set_index("task").loc[PD, "ci_method"] == "t"


def test_three_sizes_fit_with_the_slope_t_interval():
    results, _ = _sweep(fractions=(0.25, 0.5, 1.0))
    fits = scaling_table(results).set_index(["task", "cocktail"])
    fit = fits.loc[(PD, PD)]
    assert fit["fit"] == "fitted" and fit["n_sizes"] == 3 and fit["n_points"] == 3
    assert fit["ci_method"] == "t"  # one seed per size: the slope's t-interval, df = 1
    assert fit["alpha_lo"] < fit["alpha"] < fit["alpha_hi"]


# --- the report of a sweep without predictions ------------------------------------------


def test_write_report_writes_a_self_contained_report(tmp_path: Path):
    results = full_sweep()
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
        "## Overlap with evaluation splits",  # always, here "the check did not run"
        "## Transfer matrix",
        "## Leaderboard",
        "## Scaling law",
        "## Trials",
        "α ≈ 0.28",
        "(plots/scaling.png)",
    ):
        assert section in md
    assert not list(tmp_path.glob(".*tmp*"))  # no temp files left behind
    assert len(pd.read_csv(paths.tables["leaderboard"])) == len(SWEEP_TASKS)


def test_write_report_says_why_sections_are_missing(tmp_path: Path):
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "scaling.png").write_bytes(b"stale")  # from an earlier report
    rows = [base_row("t1", 0.3)]
    rows += arm_rows("all", "all", ("t1", "t2"), {"t1": (0.5, 0.6), "t2": (0.4, 0.5)}, seeds=(0, 1))
    paths = write_report(tmp_path, results=pd.DataFrame(rows), meta={})
    md = paths.markdown.read_text(encoding="utf-8")
    assert "Not available: the sweep has no singleton cocktails" in md
    assert "Not available: no cocktail was trained at >= 2 data fractions" in md
    assert set(paths.plots) == {"leaderboard"} and set(paths.tables) == {"leaderboard"}
    assert not (tmp_path / "plots" / "scaling.png").exists()
    assert paths.html.read_text(encoding="utf-8").count("data:image/png;base64,") == 1


def test_headline_lists_every_task():
    text = headline(board_results())
    assert text.splitlines()[0].startswith("| task | base | single-task | best cocktail")
    assert "| t1 | 0.200 | 0.910 [" in text and "t1+t2" in text


def test_bad_inputs_name_the_problem(tmp_path: Path):
    with pytest.raises(UserError, match="results.parquet does not exist"):
        write_report(tmp_path)
    with pytest.raises(UserError, match="needs the results column.*val_main"):
        leaderboard(board_results().drop(columns=["val_main"]))


# --- a sweep far larger than the cocktail study: the report stays bounded -------------


def _huge_sweep(n_cocktails: int = 40) -> pd.DataFrame:
    """`n_cocktails` mixtures of t1 and t2 x 3 fractions x 3 seeds (360 trials): cocktail i
    scores 0.5 + i/200 + fraction/10 on validation and test: the last are the best."""
    rows = [base_row("t1", 0.2), base_row("t2", 0.2)]
    for i in range(n_cocktails):
        for fraction in (0.25, 0.5, 1.0):
            m = 0.5 + i / 200 + fraction / 10
            scores = {t: [(m + e, m + e) for e in (-0.01, 0.0, 0.01)] for t in ("t1", "t2")}
            rows += arm_rows(
                f"c{i:02d}", "explicit", ("t1", "t2"), scores, fraction=fraction, seeds=(0, 1, 2)
            )
    return pd.DataFrame(rows)


def _section(md: str, heading: str) -> str:
    return md.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]


def test_a_huge_sweep_yields_a_bounded_report(tmp_path: Path, monkeypatch):
    from raysys.analysis import plots, report, sections

    plotted = []
    draw = plots.scaling_plot
    monkeypatch.setattr(plots, "scaling_plot", lambda p, t: plotted.append(t) or draw(p, t))
    results = _huge_sweep()
    paths = write_report(tmp_path, results=results, meta={})
    md = paths.markdown.read_text(encoding="utf-8")

    trials = _section(md, "Trials")
    listed = {ln.split("|")[1].strip() for ln in trials.splitlines() if ln.startswith("| c")}
    assert len(listed) == report.MAX_TRIAL_ROWS == 250
    assert "110 of 360 trials not shown: the 250 with the best mean validation score" in trials
    assert "every trial is in results.csv" in trials
    val = results[results["trial_id"] != "base"].groupby("trial_id")["val_main"].mean()
    assert val[list(listed)].min() >= val.drop(list(listed)).max()  # the best are listed

    per_task = sections.MAX_ARMS_PER_TASK
    assert len(plotted) == 1 and len(plotted[0]) == 2 * per_task  # lines in the plot
    assert plotted[0].groupby("task").size().tolist() == [per_task, per_task]
    assert set(plotted[0]["cocktail"]) == {f"c{i:02d}" for i in range(40 - per_task, 40)}
    scaling = _section(md, "Scaling law")
    fits = [ln for ln in scaling.splitlines() if ln.startswith(("| t1 ", "| t2 "))]
    assert len(fits) == 2 * per_task
    assert f"32 of 80 scaling fits not shown: per task, the {per_task} cocktails" in scaling
    assert len(pd.read_csv(paths.tables["scaling"])) == 80  # the CSV keeps every fit
