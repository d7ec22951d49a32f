"""Kept-label accuracy against yield, per keep rule, where synthesis has held-back gold.

Each rule scores a labeled input; keeping the inputs whose score is >= a threshold gives
a yield (kept / gold inputs) and an accuracy (kept labels equal to gold / kept). One
point per distinct score, from the strictest threshold down: a threshold cannot split
inputs with equal scores, so the curve only holds yields a threshold can reach. Inputs
without a score (no extractable answer; a log-probability a shard written before scores
existed does not have) are never kept, and still count in the yield's denominator.

Rules: `agreement` (share of samples giving the majority answer), `margin` ((majority
votes - runner-up votes) / samples) and `logprob` (mean raw token log-probability of the
samples that gave the majority). No accuracy is given from fewer than MIN_ROWS kept rows
(DESIGN §5): the JSON keeps the counts, tables say "too few", plots leave those out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from raysys.analysis.render import Document, Heading, Para, fmt, table

RULES = {"agreement": "agreement", "margin": "vote margin", "logprob": "mean log-prob"}
MIN_ROWS = 10  # kept rows below which an accuracy is not given
TARGETS = (0.25, 0.5, 0.75, 1.0)  # yields of the operating-point table
MAX_POINTS = 200  # curve points kept in stats.json per rule (evenly over the curve)
TOO_FEW = "too few"


def yield_curve(scores: Sequence[Any], correct: Sequence[bool]) -> list[dict[str, Any]]:
    """Keep-if-score->=-threshold points, strictest first: {threshold, kept, correct,
    yield, accuracy}. `scores[i]` None/NaN: input i is never kept; the yield is over
    every input. accuracy is None below MIN_ROWS kept rows."""
    total = len(scores)
    known = [
        (float(s), bool(c))
        for s, c in zip(scores, correct, strict=True)
        if s is not None and not (isinstance(s, float) and math.isnan(s))
    ]
    known.sort(key=lambda p: -p[0])
    points: list[dict[str, Any]] = []
    kept = right = 0
    for i, (score, ok) in enumerate(known):
        kept, right = kept + 1, right + ok
        if i + 1 < len(known) and known[i + 1][0] == score:
            continue  # the same threshold keeps the whole tie
        points.append(
            {
                "threshold": score,
                "kept": kept,
                "correct": right,
                "yield": kept / total,
                "accuracy": right / kept if kept >= MIN_ROWS else None,
            }
        )
    return points


def operating_point(points: list[dict[str, Any]], target: float) -> dict[str, Any] | None:
    """The strictest threshold whose yield reaches `target`; None when none does."""
    return next((p for p in points if p["yield"] >= target - 1e-9), None)


def confidence_curves(labels: pd.DataFrame) -> dict[str, Any]:
    """The curves of every rule and their operating points, for gold-labeled inputs with
    columns `majority_answered` (bool), `correct`, `agreement`, `margin`, `mean_logprob`."""
    answered = labels["majority_answered"].astype(bool).to_numpy()
    correct = labels["correct"].astype(bool).tolist()
    columns = {"agreement": "agreement", "margin": "margin", "logprob": "mean_logprob"}
    rules: dict[str, Any] = {}
    table_rows = []
    for rule, col in columns.items():
        raw = pd.to_numeric(labels[col], errors="coerce").to_numpy(dtype=float)
        scores = [
            float(v) if a and math.isfinite(v) else None for v, a in zip(raw, answered, strict=True)
        ]
        points = yield_curve(scores, correct)
        rules[rule] = {
            "scored": sum(s is not None for s in scores),
            "points": _thin(points),
        }
        for t in TARGETS:
            p = operating_point(points, t)
            table_rows.append({"rule": rule, "target_yield": t, **(p or {})})
    return {
        "rows": len(labels),
        "min_rows": MIN_ROWS,
        "rules": rules,
        "operating_points": table_rows,
    }


def _thin(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if len(points) <= MAX_POINTS:
        return points
    keep = np.unique(np.linspace(0, len(points) - 1, MAX_POINTS).round().astype(int))
    return [points[i] for i in keep]


def operating_cells(curves: Mapping[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per (panel, rule), one column per target yield: accuracy (correct / kept,
    the threshold and the yield it reaches), "too few" under MIN_ROWS kept rows."""
    rows = []
    for panel, c in curves.items():
        by_rule: dict[str, dict[str, str]] = {}
        for op in c["operating_points"]:
            row = by_rule.setdefault(op["rule"], {"labels": panel, "rule": RULES[op["rule"]]})
            row[f"yield ≥ {op['target_yield']:.0%}"] = _cell(op, c["rules"][op["rule"]])
        rows += by_rule.values()
    return pd.DataFrame(rows)


def _cell(op: dict[str, Any], rule: dict[str, Any]) -> str:
    if "kept" not in op:
        top = max((p["yield"] for p in rule["points"]), default=0.0)
        return f"not reached (max yield {top:.2f})"
    where = f"{op['correct']}/{op['kept']}, score ≥ {fmt(op['threshold'])}, yield {op['yield']:.2f}"
    if op["kept"] < MIN_ROWS:
        return f"{TOO_FEW} ({where})"
    return f"{fmt(op['accuracy'])} ({where})"


def add_confidence_section(
    doc: Document,
    curves: Mapping[str, dict[str, Any]],
    runs: Mapping[str, tuple[float, float | None]] | None = None,
    level: int = 2,
) -> pd.DataFrame | None:
    """Heading, the accuracy-vs-yield plot (one panel per key of `curves`, e.g. a task)
    and the operating-point table; returns the table (for a CSV), None without curves.
    `runs[panel]`: this run's own (yield, kept-label accuracy) over the gold inputs,
    marked on the plot."""
    doc.add(Heading(level, "Confident labels: kept-label accuracy vs yield"))
    if not curves:
        doc.add(Para("No held-back gold labels: accuracy against yield cannot be measured."))
        return None
    doc.add(
        Para(
            "For each keep rule, inputs are kept from the most confident down; a point is "
            "one threshold: the share of gold-labeled inputs it keeps (yield) and how many "
            "of those kept labels equal gold. `agreement` = share of samples giving the "
            "majority answer; `vote margin` = (majority votes - runner-up votes) / samples; "
            "`mean log-prob` = mean raw token log-probability of the samples that gave the "
            f"majority. No accuracy from fewer than {MIN_ROWS} kept rows. Pick the threshold "
            "where the curve still has the accuracy you need, and set it as "
            "`synth.min_confidence` (margin or logprob) or `synth.min_agreement`."
        )
    )
    if any(_drawable(c) for c in curves.values()):
        png = confidence_plot(curves, runs or {})
        doc.image("confidence", png, "kept-label accuracy vs yield")
    else:
        doc.add(Para(f"No threshold keeps {MIN_ROWS} gold-labeled inputs: no curve to draw."))
    cells = operating_cells(curves)
    doc.add(table(cells))
    return cells


def _drawable(curve: dict[str, Any]) -> bool:
    return any(p["accuracy"] is not None for r in curve["rules"].values() for p in r["points"])


def confidence_plot(
    curves: Mapping[str, dict[str, Any]], runs: Mapping[str, tuple[float, float | None]]
) -> bytes:
    """One panel per key of `curves`: accuracy against yield for each rule (points with
    fewer than MIN_ROWS kept rows left out), and this run's own rule as a black star."""
    from matplotlib.figure import Figure

    from raysys.analysis.plots import png_bytes

    n = len(curves)
    cols = min(n, 3)
    nrows = math.ceil(n / cols)
    fig = Figure(figsize=(1.0 + 3.6 * cols, 0.6 + 3.2 * nrows), layout="constrained")
    axes = fig.subplots(nrows, cols, squeeze=False).ravel()
    for ax, (panel, c) in zip(axes, curves.items(), strict=False):
        for (rule, label), style in zip(RULES.items(), ("-", "--", ":"), strict=True):
            pts = [p for p in c["rules"][rule]["points"] if p["accuracy"] is not None]
            if pts:  # line styles tell rules apart where their curves coincide
                xs, ys = [p["yield"] for p in pts], [p["accuracy"] for p in pts]
                mark = "o" if len(pts) < 30 else None
                ax.plot(xs, ys, ls=style, marker=mark, ms=3, lw=1.5, label=label)
        own = runs.get(panel)
        if own is not None and own[1] is not None:
            ax.plot([own[0]], [own[1]], "k*", ms=10, label="this run's rule")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{panel} ({c['rows']} gold inputs)", fontsize=9)
        ax.set_xlabel("yield (kept / gold inputs)", fontsize=8)
        ax.set_ylabel("kept-label accuracy", fontsize=8)
        ax.grid(True, alpha=0.25)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="lower left")
    for ax in axes[n:]:
        ax.set_visible(False)
    return png_bytes(fig)
