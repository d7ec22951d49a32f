"""The mixture search's report section, from `search.json`, the results table and the test
predictions: each round's predicted vs measured validation objective (rank correlation),
the chosen mixture against the grid's best point with paired tests on test rows, and the
budget spent.

Choices follow the sweep's rules: the chosen mixture and the grid's best point are picked
on validation (the objective's weighted mean of `val_main`, seeds averaged), their test
scores are read afterwards; per task, the paired test of `analysis.paired`, Holm-corrected
across tasks. A rank correlation is printed from 3 mixtures up, with its p-value.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from raysys.analysis import render
from raysys.analysis.evidence import (
    add_correction,
    baseline_values,
    compare,
    comparison_values,
    task_rows,
)
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
from raysys.analysis.results import COCKTAIL_KEY

MIN_POINTS_FOR_RANK = 3
ARM = [*COCKTAIL_KEY, "fraction"]  # a search mixture or a grid point (its seeds pooled)


def objective_by_arm(results: pd.DataFrame, weights: dict[str, float], split: str) -> pd.Series:
    """Objective (weighted mean of `<split>_main` over tasks, seeds averaged) per
    (cocktail, general, math, fraction) arm; NaN where a weighted task has no score."""
    col = f"{split}_main"
    trained = results[results["trial_id"] != "base"]
    keys = ARM
    per = trained.groupby([*keys, "task"], dropna=False)[col].mean().unstack("task")
    total = pd.Series(0.0, index=per.index)
    for task, w in weights.items():
        total = total + w * (per[task] if task in per else np.nan)
    return total


def round_rows(state: dict[str, Any], results: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per mixture of each search round: predicted and measured validation objective; per
    round: mixtures, best so far, rank correlation of predicted vs measured."""
    from scipy.stats import spearmanr

    val = objective_by_arm(results, state["objective"], "val")
    by_cocktail = val.groupby(level="cocktail").max()
    mixtures, rounds, best = [], [], -math.inf
    for r in state["rounds"]:
        if r["kind"] == "grid":
            continue
        pred, meas = [], []
        for m in r.get("mixtures", []):
            got = float(by_cocktail.get(m["name"], math.nan))
            weights = ", ".join(f"{t} {w:g}" for t, w in m["weights"])
            mixtures.append(
                {
                    "round": r["name"],
                    "mixture": m["name"],
                    "weights": weights,
                    "general": m["general"],
                    "math": m["math"],
                    "fraction": m["fraction"],
                    "predicted": m.get("predicted"),
                    "measured": got,
                }
            )
            if m.get("predicted") is not None and math.isfinite(got):
                pred.append(float(m["predicted"]))
                meas.append(got)
            if math.isfinite(got):
                best = max(best, got)
        rho, p = math.nan, math.nan
        if len(pred) >= MIN_POINTS_FOR_RANK and np.ptp(pred) > 0 and np.ptp(meas) > 0:
            res = spearmanr(pred, meas)
            rho, p = float(res.statistic), float(res.pvalue)
        rounds.append(
            {
                "round": r["name"],
                "kind": r["kind"],
                "mixtures": len(r.get("mixtures", [])),
                "fitted on": r.get("fitted_on", 0),
                "best so far (val)": best if math.isfinite(best) else math.nan,
                "spearman": rho,
                "p": p,
                "n": len(pred),
                "propose s": r.get("propose_seconds", math.nan),
                "Tune s": r.get("tune_seconds", math.nan),
            }
        )
    return pd.DataFrame(rounds), pd.DataFrame(mixtures)


def _pick(val: pd.Series, kinds: set[str], results: pd.DataFrame) -> tuple | None:
    arms = results[results["cocktail_kind"].isin(kinds)]
    keys = set(map(tuple, arms[ARM].to_numpy().tolist()))
    cand = val[[k in keys for k in val.index]].dropna()
    return None if cand.empty else cand.idxmax()


def _trial_ids(results: pd.DataFrame, arm: tuple) -> list[str]:
    match = (results[ARM] == pd.Series(arm, index=ARM)).all(axis=1)
    return sorted(results.loc[match, "trial_id"].unique())


def chosen_vs_grid(
    state: dict[str, Any], results: pd.DataFrame, predictions: pd.DataFrame | None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per evaluated task: the search's choice vs the grid's best point on test, paired."""
    val = objective_by_arm(results, state["objective"], "val")
    chosen = _pick(val, {"search"}, results)
    grid = _pick(val, set(results["cocktail_kind"]) - {"search", "base"}, results)
    info = {"chosen": chosen, "grid": grid}
    if chosen is None or grid is None:
        return pd.DataFrame(), info
    a, b = _trial_ids(results, grid), _trial_ids(results, chosen)
    test = objective_by_arm(results, state["objective"], "test")
    info |= {
        "chosen_val": float(val[chosen]),
        "grid_val": float(val[grid]),
        "chosen_test": float(test.get(chosen, math.nan)),
        "grid_test": float(test.get(grid, math.nan)),
    }
    rows = []
    for task in sorted(results.loc[results["trial_id"] != "base", "task"].unique()):
        kind = results.loc[results["task"] == task, "task_kind"].iloc[0]
        tr = task_rows(predictions, task, kind)
        mine = results[results["task"] == task]
        mean = lambda ids, mine=mine: mine[mine["trial_id"].isin(ids)]["test_main"].mean()  # noqa: E731
        constant = {
            f"{arm}_constant": tr.constant(ids) if tr is not None else 0
            for arm, ids in (("grid", a), ("chosen", b))
        }
        rows.append(
            {"task": task, "grid": mean(a), "chosen": mean(b), "models": (len(a), len(b))}
            | constant
            | {"majority": baseline_values(tr)["majority"]}
            | comparison_values("c", compare(tr, a, b))
        )
    frame = add_correction(pd.DataFrame(rows), "c")
    return frame, info


def add_search_section(
    doc: Document,
    state: dict[str, Any],
    results: pd.DataFrame,
    predictions: pd.DataFrame | None,
    meta: dict[str, Any],
) -> pd.DataFrame:
    doc.add(Heading(2, "Mixture search"))
    weights = ", ".join(f"{t} {w:.3g}" for t, w in state["objective"].items())
    doc.add(
        Para(
            f"Surrogate `{state['surrogate']}` fitted to the finished search trials' validation "
            f"scores; objective: {weights} (weighted mean of validation `main`). Round 0 is a "
            "space-filling set; each later round's mixtures were proposed, with the objective "
            "predicted, before they ran. Spearman's rank correlation of predicted vs measured "
            f"is shown from {MIN_POINTS_FOR_RANK} mixtures up. `propose s`: fitting the "
            "surrogate and scoring the candidates; `Tune s`: the round's Ray Tune run."
        )
    )
    rounds, mixtures = round_rows(state, results)
    if not rounds.empty:
        doc.add(
            table(
                rounds.assign(
                    **{
                        "best so far (val)": rounds["best so far (val)"].map(fmt),
                        "spearman": rounds["spearman"].map(fmt),
                        "p": rounds["p"].map(fmt_p),
                        "propose s": rounds["propose s"].map(lambda v: fmt(v, 2)),
                        "Tune s": rounds["Tune s"].map(lambda v: fmt(v, 0)),
                    }
                )
            )
        )
    if not mixtures.empty:
        doc.add(Heading(3, "Mixtures: predicted vs measured validation objective"))
        doc.add(
            table(
                mixtures.assign(
                    predicted=mixtures["predicted"].map(
                        lambda v: "(round 0)" if v is None or pd.isna(v) else fmt(v)
                    ),
                    measured=mixtures["measured"].map(fmt),
                )
            )
        )
    frame, info = chosen_vs_grid(state, results, predictions)
    doc.add(Heading(3, "Chosen mixture vs the grid's best point"))
    if frame.empty:
        why = "no grid baseline ran (search.baseline=none)" if info["grid"] is None else ""
        doc.add(Para(f"No comparison: {why or 'no finished search mixture'}."))
    else:
        doc.add(
            Para(
                f"Chosen on validation: search `{info['chosen'][0]}` (objective "
                f"{fmt(info['chosen_val'])} val, {fmt(info['chosen_test'])} test) vs grid "
                f"`{info['grid'][0]}` (general {info['grid'][1]:g}, math {info['grid'][2]:g}, "
                f"fraction {info['grid'][3]:g}; {fmt(info['grid_val'])} val, "
                f"{fmt(info['grid_test'])} test). Per task on the test rows: chosen minus grid, "
                "paired, Holm-corrected across tasks; `majority`: what always answering the "
                "test rows' most common label scores; `constant` marks a model that gives one "
                "answer on ≥ 90% of its rows."
            ),
            table(
                pd.DataFrame(
                    {
                        "task": frame["task"],
                        "grid": [
                            fmt(v) + constant_mark(c, n[0])
                            for v, c, n in zip(
                                frame["grid"], frame["grid_constant"], frame["models"], strict=True
                            )
                        ],
                        "chosen": [
                            fmt(v) + constant_mark(c, n[1])
                            for v, c, n in zip(
                                frame["chosen"],
                                frame["chosen_constant"],
                                frame["models"],
                                strict=True,
                            )
                        ],
                        "majority": frame["majority"].map(fmt),
                        "Δ [95% CI]": [
                            fmt_ci(d, lo, hi, signed=True)
                            for d, lo, hi in zip(
                                frame["c_diff"], frame["c_lo"], frame["c_hi"], strict=True
                            )
                        ],
                        "test": frame["c_test"].map(render.text),
                        "n": frame["c_n"].map(lambda v: fmt(int(v)) if v == v else "-"),
                        "p": frame["c_p"].map(fmt_p),
                        "p (Holm)": frame["c_p_adj"].map(fmt_p),
                    }
                )
            ),
        )
    doc.add(Heading(3, "Budget"))
    doc.add(table(budget_rows(state, results, meta)))
    return mixtures


def budget_rows(state: dict[str, Any], results: pd.DataFrame, meta: dict[str, Any]) -> pd.DataFrame:
    trials = results[results["trial_id"] != "base"].drop_duplicates("trial_id")
    rows = []
    for label, part in (
        ("grid baseline", trials[trials["cocktail_kind"] != "search"]),
        ("search", trials[trials["cocktail_kind"] == "search"]),
    ):
        row = {"arm": label, "trials": len(part)}
        row["trial hours"] = fmt(part["trial_seconds"].sum() / 3600)
        if "cost_usd" in part:  # NaN where cost.prices are unset (shown as unknown)
            usd = part["cost_usd"]
            row["cost USD"] = fmt(usd.sum(), 4) if usd.notna().all() and len(usd) else "–"
        rows.append(row)
    b = state["budget"]
    limit = ", ".join(
        f"{k} {v:g}"
        for k, v in b.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and v
    )
    note = " (equal to the grid's trials)" if b.get("equal_to_grid") else ""
    rows.append({"arm": "search budget", "trials": "", "trial hours": limit + note})
    frame = pd.DataFrame(rows)
    return frame.fillna("") if "cost USD" in frame else frame
