"""The sweep report's analysis sections: transfer, leaderboard with its paired comparisons
and baselines, scaling law. Each builds its table, adds it to the document and returns
the frame written as its CSV (the CSV carries every column the table shows, unformatted).
"""

from __future__ import annotations

import math

import pandas as pd

from raysys.analysis import render
from raysys.analysis.baselines import ALPHA, CONSTANT_SHARE, POWER
from raysys.analysis.leaderboard import COMPARISONS, leaderboard
from raysys.analysis.paired import CORRECTION
from raysys.analysis.render import (
    Document,
    Heading,
    Para,
    constant_mark,
    fmt,
    fmt_ci,
    fmt_p,
    table,
)
from raysys.analysis.results import COCKTAIL_KEY, arm_label, singleton_rows
from raysys.analysis.scaling import FITTED, MIN_SIZES, scaling_points, scaling_table, top_arms
from raysys.analysis.stats import MIN_SEEDS_FOR_T
from raysys.analysis.transfer import transfer_long

# Open FinLLM Leaderboard study: the data-scaling exponent to compare ours against.
REFERENCE_ALPHA = 0.28
# Scaling fits shown per task (table rows and plotted lines): the cocktail study's grid
# (11 cocktails x 4 regulariser arms) puts at most 24 arms on a task; beyond that the
# report shows the best and scaling.csv keeps every fit.
MAX_ARMS_PER_TASK = 24
_COMPARISON_NAMES = {"vs_single": "best vs single-task", "vs_base": "best vs base model"}

CONSTANT_RULE = (
    f"`constant`: at least {CONSTANT_SHARE:.0%} of the model's test predictions are one "
    'value ("missing", no extractable answer, counts as a value); with several seeds, '
    "`constant k/n seeds` says how many of them are."
)
BASELINE_RULE = (
    "Baselines on the same test rows: `majority` answers the most common gold answer on "
    "every row (the best constant predictor for accuracy and macro-F1; for NER, numeric and "
    "free text the most common answer); `random` is the exact expected score of a uniformly "
    "random label (classification only)."
)
PAIRED_RULE = (
    "Paired on the same test rows: Δ = the first model minus the second, with a paired "
    "row-bootstrap 95% CI; p from McNemar's exact test where the metric is per-row "
    "correctness (accuracy, exact match) and each side is one model, otherwise a paired "
    "permutation test (each row's two predictions swap sides); `p (Holm)` is corrected "
    f"across tasks ({CORRECTION.capitalize()}, one family per comparison), `significant` at "
    f"{ALPHA:g}. An arm with several seeds enters with its per-row counts averaged over seeds. "
    f"MDE: the smallest accuracy difference a test of n rows detects at α {ALPHA:g} "
    f"(two-sided) with power {POWER:g}, (z₀.₉₇₅ + z₀.₈)·√(0.5/n) ≈ 1.98/√n."
)


def transfer(
    doc: Document, results: pd.DataFrame, predictions: pd.DataFrame | None
) -> pd.DataFrame:
    from raysys.analysis.plots import transfer_heatmap

    doc.add(Heading(2, "Transfer matrix"))
    cells = transfer_long(results, predictions)
    relative = bool(cells["relative"].iloc[0])
    matrix = cells.pivot(index="trained_on", columns="evaluated", values="value")
    matrix = matrix.loc[
        list(dict.fromkeys(cells["trained_on"])), list(dict.fromkeys(cells["evaluated"]))
    ]
    if not relative:
        doc.add(Para("Absolute scores, not gains: the base model was not evaluated."))
    used = singleton_rows(results)
    text = [
        fmt(r.value, signed=relative) + constant_mark(r.constant, r.seeds)
        for r in cells.itertuples()
    ]
    shown = cells.assign(text=text).pivot(index="trained_on", columns="evaluated", values="text")
    shown = shown.loc[matrix.index, matrix.columns]
    if cells["majority"].notna().any():  # baselines need the test predictions
        shown = pd.concat([shown, _baseline_rows(cells, relative)])
    doc.add(
        Para(
            f"Rows: the task a singleton cocktail trained on; columns: the evaluated task; "
            f"cells: mean test main metric over seeds{' minus the base model' if relative else ''}"
            f". Singletons at their smallest regulariser shares and largest fraction "
            f"({_values(used, 'fraction')}); seeds: {_values(used, 'seed')}. The last rows: "
            f"the baselines of the evaluated task in the same units. {BASELINE_RULE} "
            f"{CONSTANT_RULE}"
        ),
        table(shown.rename_axis("trained_on").reset_index()),
    )
    matrix.index.name, matrix.columns.name = "trained_on", "evaluated"
    doc.image("transfer", transfer_heatmap(matrix, relative), "Transfer matrix")
    return cells


def _baseline_rows(cells: pd.DataFrame, relative: bool) -> pd.DataFrame:
    """`majority baseline` and `random baseline` rows, minus the base model when the
    cells are gains, so a gain can be read against what a constant or a coin scores."""
    per_task = cells.drop_duplicates("evaluated").set_index("evaluated")
    rows = {}
    for name in ("majority", "random"):
        values = per_task[name] - per_task["base"] if relative else per_task[name]
        rows[f"{name} baseline"] = values.map(lambda v: fmt(v, signed=relative))
    return pd.DataFrame(rows).T


def board(doc: Document, results: pd.DataFrame, predictions: pd.DataFrame | None) -> pd.DataFrame:
    from raysys.analysis.plots import leaderboard_plot

    doc.add(Heading(2, "Leaderboard"))
    frame = leaderboard(results, predictions)
    doc.add(
        Para(
            "Per task, the cocktail with the best mean validation score (never test), then "
            "its test score with a 95% CI (`ci`): Student-t over seeds with at least "
            f"{MIN_SEEDS_FOR_T} seeds, otherwise a percentile bootstrap over the test rows; "
            "no interval where it has no spread or no test predictions. Regularisers Δ: the "
            f"chosen arm minus the same cocktail without general/math data. {BASELINE_RULE} "
            f"{CONSTANT_RULE}"
        ),
        table(board_cells(frame)),
    )
    doc.add(Heading(3, "Is the best cocktail better? (paired tests)"))
    if frame["n"].isna().all():
        doc.add(Para("No test predictions next to the results: no paired test was run."))
    else:
        doc.add(Para(PAIRED_RULE), table(comparison_cells(frame)))
    doc.image("leaderboard", leaderboard_plot(frame), "Base model, single-task and best cocktail")
    return frame


def board_cells(frame: pd.DataFrame) -> pd.DataFrame:
    seeds = frame["seeds"].fillna(0).astype(int).tolist()
    singles = frame["single_seeds"].fillna(0).astype(int).tolist()
    return pd.DataFrame(
        {
            "task": frame["task"],
            "metric": frame["main_metric"],
            "test n": frame["n"].map(_count),
            "best cocktail (val)": arm_cells(frame, "best_cocktail"),
            "seeds": frame["seeds"].map(lambda v: fmt(int(v))),
            "val": frame["val_mean"].map(fmt),
            "test [95% CI]": marked(frame, "test", seeds),
            "ci": frame["ci_method"].map(render.text),
            "single-task [95% CI]": marked(frame, "single", singles),
            "base": base_cells(frame),
            "majority": frame["majority"].map(fmt),
            "random": frame["random"].map(fmt),
            "regularisers Δ": frame["regularisers_delta"].map(lambda v: fmt(v, signed=True)),
        }
    )


def comparison_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """Two rows per task: best vs single-task and best vs base, with test n and MDE."""
    rows = []
    for r in frame.to_dict("records"):
        for prefix in COMPARISONS:
            rows.append(
                {
                    "task": r["task"],
                    "comparison": _COMPARISON_NAMES[prefix],
                    "Δ [95% CI]": fmt_ci(
                        r[f"{prefix}_diff"], r[f"{prefix}_lo"], r[f"{prefix}_hi"], signed=True
                    ),
                    "test": render.text(r[f"{prefix}_test"]),
                    "n": _count(r[f"{prefix}_n"]),
                    "p": fmt_p(r[f"{prefix}_p"]),
                    "p (Holm)": fmt_p(r[f"{prefix}_p_adj"]),
                    "significant": _yes_no(r[f"{prefix}_significant"], r[f"{prefix}_p"]),
                    "MDE": fmt(r["mde"]),
                }
            )
    return pd.DataFrame(rows)


def scaling(doc: Document, results: pd.DataFrame) -> pd.DataFrame:
    from raysys.analysis.plots import scaling_plot

    doc.add(Heading(2, "Scaling law"))
    fits = scaling_table(results)
    points = scaling_points(results)
    shown = top_arms(fits, points, MAX_ARMS_PER_TASK)
    doc.add(
        Para(
            "Per task and cocktail: (1 − test main) = A · d^−α with d the task's training "
            f"rows, fitted in log-log space, only from at least {MIN_SIZES} distinct sizes (a "
            "line through two points always fits: R² 1, no test of the law); fewer say `not "
            "fitted: N sizes`. α's 95% CI: a bootstrap of the seeds within each size where "
            "every size has 2 or more seeds, else the least-squares t-interval of the slope "
            "(n − 2 degrees of freedom); none where it has no spread. R² with its number of "
            "points. `d for target`: rows the fit needs to halve the task's best observed "
            "error. For comparison, the Open FinLLM Leaderboard study reports "
            f"α ≈ {REFERENCE_ALPHA}."
        ),
        table(scaling_cells(shown)),
    )
    if len(shown) < len(fits):
        doc.add(Para(left_out(len(fits) - len(shown), len(fits), "scaling fits", SCALING_RULE)))
    plotted = points.merge(shown[["task", *COCKTAIL_KEY]], on=["task", *COCKTAIL_KEY])
    png = scaling_plot(plotted, shown)
    doc.image("scaling", png, "1 − test main vs task training rows (log-log)")
    return fits


SCALING_RULE = (
    f"per task, the {MAX_ARMS_PER_TASK} cocktails with the best test score at their largest "
    "data size are shown and plotted; every fit is in scaling.csv"
)


def left_out(hidden: int, total: int, what: str, rule: str) -> str:
    """The note under a table cut to size: how many were left out, which are shown."""
    return f"{hidden:,} of {total:,} {what} not shown: {rule}."


def scaling_cells(fits: pd.DataFrame) -> pd.DataFrame:
    fitted = fits["fit"] == FITTED
    alpha = [
        fmt_ci(a, lo, hi, 2) if ok else status
        for a, lo, hi, ok, status in zip(
            fits["alpha"], fits["alpha_lo"], fits["alpha_hi"], fitted, fits["fit"], strict=True
        )
    ]
    r2 = [
        f"{fmt(v, 2)} (n={int(n)})" if ok else render.MISSING
        for v, n, ok in zip(fits["r2"], fits["n_points"], fitted, strict=True)
    ]
    return pd.DataFrame(
        {
            "task": fits["task"],
            "cocktail": arm_cells(fits),
            "α [95% CI]": alpha,
            "ci": [
                m if ok else render.MISSING for m, ok in zip(fits["ci_method"], fitted, strict=True)
            ],
            "A": fits["A"].map(fmt),
            "R² (points)": r2,
            "sizes": fits["n_sizes"].map(int).map(fmt),
            "target": [
                fmt(t) if ok else render.MISSING
                for t, ok in zip(fits["target"], fitted, strict=True)
            ],
            "d for target": fits["d_for_target"].map(_rows_fmt),
        }
    )


def arm_cells(frame: pd.DataFrame, cocktail: str = "cocktail") -> list[str]:
    """`all + general 0.1` per row; an en dash where no cocktail was chosen."""
    rows = zip(frame[cocktail], frame["general"], frame["math"], strict=True)
    return [arm_label(c, g, m) if isinstance(c, str) else render.MISSING for c, g, m in rows]


def base_cells(frame: pd.DataFrame) -> list[str]:
    pairs = zip(frame["base_test"], frame["base_constant"], strict=True)
    return [fmt(v) + constant_mark(c) for v, c in pairs]


def triples(frame: pd.DataFrame, prefix: str) -> list[tuple[float, float, float]]:
    mean = "test_mean" if prefix == "test" else f"{prefix}_test"
    cols = [mean, f"{prefix}_lo", f"{prefix}_hi"]
    return [tuple(map(float, r)) for r in frame[cols].itertuples(index=False)]


def marked(frame: pd.DataFrame, prefix: str, seeds: list[int]) -> list[str]:
    """`0.712 [0.690, 0.734] constant`: the arm's score, CI and constant mark per row."""
    marks = frame[f"{prefix}_constant"].tolist()
    return [
        fmt_ci(*t) + constant_mark(c, s)
        for t, c, s in zip(triples(frame, prefix), marks, seeds, strict=True)
    ]


def _count(v: object) -> str:
    return render.MISSING if v is None or (isinstance(v, float) and math.isnan(v)) else fmt(int(v))


def _yes_no(significant: object, p: float) -> str:
    return render.MISSING if p is None or math.isnan(p) else fmt(bool(significant))


def _rows_fmt(d: float) -> str:
    return fmt(d) if not math.isfinite(d) else f"{d:,.0f}"


def _values(rows: pd.DataFrame, col: str) -> str:
    if col not in rows:
        return render.MISSING
    return ", ".join(f"{v:g}" for v in sorted(rows[col].dropna().unique())) or render.MISSING
