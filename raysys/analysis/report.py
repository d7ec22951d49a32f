"""The sweep report: report.md, a self-contained report.html, plots/*.png and CSVs.

Each section is built from the results table alone; a section whose inputs the sweep
lacks (no singletons, one fraction, no base rows) says why in one line instead.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from raysys.analysis import render
from raysys.analysis.leaderboard import leaderboard
from raysys.analysis.render import Document, Heading, Para, fmt, fmt_ci, table
from raysys.analysis.results import (
    MissingInput,
    arm_label,
    is_base,
    require_columns,
    singleton_rows,
    trained,
)
from raysys.analysis.scaling import scaling_points, scaling_table
from raysys.analysis.transfer import transfer_matrix
from raysys.errors import UserError

log = logging.getLogger(__name__)

RESULTS = "results.parquet"
PREDICTIONS = "test_predictions.parquet"
META = "sweep.json"
# Open FinLLM Leaderboard study: the data-scaling exponent to compare ours against.
REFERENCE_ALPHA = 0.28
_PLOTS = ("transfer", "leaderboard", "scaling", "pipeline")
_CSVS = ("transfer", "leaderboard", "scaling", "pipeline")
_TRIAL_COLUMNS = {
    "trial_id": "trial",
    "cocktail": "cocktail",
    "general": "general",
    "math": "math",
    "fraction": "fraction",
    "seed": "seed",
    "train_rows": "train rows",
    "tokens_per_s": "tokens/s",
    "train_seconds": "train s",
}


@dataclass(frozen=True)
class ReportPaths:
    markdown: Path
    html: Path
    plots: dict[str, Path]  # name -> plots/<name>.png, only the plots the sweep allowed
    tables: dict[str, Path]  # name -> <name>.csv, likewise


def write_report(
    sweep_dir: Path,
    results: pd.DataFrame | None = None,
    predictions: pd.DataFrame | None = None,
    meta: dict[str, Any] | None = None,
) -> ReportPaths:
    """Analyse a sweep and write its report under `sweep_dir`; reads results.parquet,
    test_predictions.parquet and sweep.json from there for what is not passed in."""
    sweep_dir = Path(sweep_dir)
    results = _read_results(sweep_dir) if results is None else results
    if predictions is None and (sweep_dir / PREDICTIONS).exists():
        predictions = pd.read_parquet(sweep_dir / PREDICTIONS)
    meta = _read_meta(sweep_dir) if meta is None else meta
    require_columns(results, ["trial_id", "cocktail", "cocktail_kind", "task"], "the report")
    if results.empty:
        raise UserError(f"the results table for {sweep_dir} has no rows; nothing to report")

    doc = Document(title=f"Sweep report: {sweep_dir.resolve().name}")
    csvs: dict[str, pd.DataFrame] = {}
    _header(doc, meta)
    add_sweep_sections(doc, csvs, results, predictions)
    paths = write_document(sweep_dir, doc, csvs)
    log.info("wrote the sweep report to %s", paths.html)
    return paths


def add_sweep_sections(
    doc: Document,
    csvs: dict[str, pd.DataFrame],
    results: pd.DataFrame,
    predictions: pd.DataFrame | None,
) -> None:
    """Summary, transfer matrix, leaderboard, scaling law and trials, appended to `doc`
    (the pipeline report embeds them after its own sections)."""
    _summary(doc, results)
    _section(doc, csvs, "transfer", lambda: _transfer(doc, results))
    _section(doc, csvs, "leaderboard", lambda: _leaderboard(doc, results, predictions))
    _section(doc, csvs, "scaling", lambda: _scaling(doc, results))
    _trials(doc, results)


def headline(results: pd.DataFrame) -> str:
    """A short Markdown table for a terminal: per task, base, single-task and the best
    cocktail (chosen on validation) with its test CI."""
    board = leaderboard(results)
    frame = pd.DataFrame(
        {
            "task": board["task"],
            "base": board["base_test"].map(fmt),
            "single-task": [fmt_ci(*r) for r in _triples(board, "single")],
            "best cocktail": _arm_cells(board, "best_cocktail"),
            "test [95% CI]": [fmt_ci(*r) for r in _triples(board, "test")],
        }
    )
    return render.md_table(table(frame))


def _section(
    doc: Document, csvs: dict[str, pd.DataFrame], name: str, build: Callable[[], pd.DataFrame]
) -> None:
    """Run one section; a sweep that lacks its inputs gets the reason, not a traceback."""
    try:
        csvs[name] = build()
    except MissingInput as why:
        doc.add(Para(f"Not available: {why}."))


def _header(doc: Document, meta: dict[str, Any]) -> None:
    if not meta:
        doc.add(Para(f"No `{META}` next to the results: sweep metadata not shown."))
        return
    rows = [(str(k), _meta_value(v)) for k, v in meta.items()]
    doc.add(table(pd.DataFrame(rows, columns=["sweep", "value"])))


def _meta_value(value: Any, limit: int = 160) -> str:
    if isinstance(value, float):  # seconds and ratios: 4 significant digits are plenty
        return f"{value:.4g}"
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _summary(doc: Document, results: pd.DataFrame) -> None:
    runs = trained(results)
    arms = runs.drop_duplicates(["cocktail", "general", "math"]) if "math" in runs else runs
    test = runs["test_main"] if "test_main" in runs else pd.Series(dtype=float)
    items = [
        ("trials", fmt(int(runs["trial_id"].nunique()))),
        ("cocktails (with regulariser shares)", fmt(len(arms))),
        ("evaluated tasks", ", ".join(sorted(results["task"].unique()))),
        ("seeds", _values(runs, "seed")),
        ("data fractions", _values(runs, "fraction")),
        ("base model evaluated", fmt(bool(is_base(results).any()))),
        ("trial × task rows without a test score", fmt(int(test.isna().sum()))),
    ]
    doc.add(Heading(2, "Results summary"), table(pd.DataFrame(items, columns=["results", "value"])))


def _values(rows: pd.DataFrame, col: str) -> str:
    if col not in rows:
        return render.MISSING
    return ", ".join(f"{v:g}" for v in sorted(rows[col].dropna().unique())) or render.MISSING


def _transfer(doc: Document, results: pd.DataFrame) -> pd.DataFrame:
    from raysys.analysis.plots import transfer_heatmap

    doc.add(Heading(2, "Transfer matrix"))
    relative = bool(is_base(results).any())
    matrix = transfer_matrix(results, relative=relative)
    if not relative:
        doc.add(Para("Absolute scores, not gains: the base model was not evaluated."))
    used = singleton_rows(results)
    doc.add(
        Para(
            f"Rows: the task a singleton cocktail trained on; columns: the evaluated task; "
            f"cells: mean test main metric over seeds{' minus the base model' if relative else ''}"
            f". Singletons at their smallest regulariser shares and largest fraction "
            f"({_values(used, 'fraction')}); seeds: {_values(used, 'seed')}."
        ),
        table(matrix.map(lambda v: fmt(v, signed=relative)).reset_index()),
    )
    doc.image("transfer", transfer_heatmap(matrix, relative), "Transfer matrix")
    return matrix.reset_index()


def _leaderboard(
    doc: Document, results: pd.DataFrame, predictions: pd.DataFrame | None
) -> pd.DataFrame:
    from raysys.analysis.plots import leaderboard_plot

    doc.add(Heading(2, "Leaderboard"))
    board = leaderboard(results, predictions)
    doc.add(
        Para(
            "Per task, the cocktail with the best mean validation score (never test), then "
            "its test score with a 95% CI: Student-t over seeds, or with one seed a bootstrap "
            "over test rows (`ci` column). Regularisers Δ: the chosen arm minus the same "
            "cocktail without general/math data."
        ),
        table(_board_cells(board)),
    )
    doc.image("leaderboard", leaderboard_plot(board), "Base model, single-task and best cocktail")
    return board


def _board_cells(board: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "task": board["task"],
            "metric": board["main_metric"],
            "best cocktail (val)": _arm_cells(board, "best_cocktail"),
            "seeds": board["seeds"].map(lambda v: fmt(int(v))),
            "val": board["val_mean"].map(fmt),
            "test [95% CI]": [fmt_ci(*r) for r in _triples(board, "test")],
            "ci": board["ci_method"].map(render.text),
            "single-task [95% CI]": [fmt_ci(*r) for r in _triples(board, "single")],
            "base": board["base_test"].map(fmt),
            "Δ single": board["delta_vs_single"].map(lambda v: fmt(v, signed=True)),
            "Δ base": board["delta_vs_base"].map(lambda v: fmt(v, signed=True)),
            "regularisers Δ": board["regularisers_delta"].map(lambda v: fmt(v, signed=True)),
        }
    )


def _arm_cells(frame: pd.DataFrame, cocktail: str = "cocktail") -> list[str]:
    """`all + general 0.1` per row; an en dash where no cocktail was chosen."""
    rows = zip(frame[cocktail], frame["general"], frame["math"], strict=True)
    return [arm_label(c, g, m) if isinstance(c, str) else render.MISSING for c, g, m in rows]


def _triples(board: pd.DataFrame, prefix: str) -> list[tuple[float, float, float]]:
    mean = "test_mean" if prefix == "test" else f"{prefix}_test"
    cols = [mean, f"{prefix}_lo", f"{prefix}_hi"]
    return [tuple(map(float, r)) for r in board[cols].itertuples(index=False)]


def _scaling(doc: Document, results: pd.DataFrame) -> pd.DataFrame:
    from raysys.analysis.plots import scaling_plot

    doc.add(Heading(2, "Scaling law"))
    fits = scaling_table(results)
    doc.add(
        Para(
            "Per task and cocktail: (1 − test main) = A · d^−α with d the task's training "
            "rows, fitted in log-log space; α's 95% CI bootstraps the points. `d for target`: "
            "rows the fit needs to halve the task's best observed error. For comparison, the "
            f"Open FinLLM Leaderboard study reports α ≈ {REFERENCE_ALPHA}."
        ),
        table(_scaling_cells(fits)),
    )
    png = scaling_plot(scaling_points(results), fits)
    doc.image("scaling", png, "1 − test main vs task training rows (log-log)")
    return fits


def _scaling_cells(fits: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "task": fits["task"],
            "cocktail": _arm_cells(fits),
            "α [95% CI]": [
                fmt_ci(a, lo, hi, 2)
                for a, lo, hi in zip(fits["alpha"], fits["alpha_lo"], fits["alpha_hi"], strict=True)
            ],
            "A": fits["A"].map(fmt),
            "R²": fits["r2"].map(lambda v: fmt(v, 2)),
            "points": fits["n_points"].map(int).map(fmt),
            "sizes": fits["n_sizes"].map(int).map(fmt),
            "target": fits["target"].map(fmt),
            "d for target": fits["d_for_target"].map(_rows_fmt),
        }
    )


def _rows_fmt(d: float) -> str:
    return fmt(d) if not math.isfinite(d) else f"{d:,.0f}"


def _trials(doc: Document, results: pd.DataFrame) -> None:
    runs = trained(results).drop_duplicates("trial_id")
    cols = [c for c in _TRIAL_COLUMNS if c in runs]
    sort = [c for c in ("cocktail", "general", "math", "fraction", "seed") if c in runs]
    runs = runs.sort_values(sort)[cols].rename(columns=_TRIAL_COLUMNS)
    doc.add(Heading(2, "Trials"))
    if runs.empty:
        doc.add(Para("No fine-tuned trials in the results: only the base model was evaluated."))
        return
    cells = runs.apply(lambda col: col.map(lambda v: _trial_cell(col.name, v)))
    doc.add(table(cells))


def _trial_cell(column: str, value: Any) -> str:
    if isinstance(value, float) and math.isnan(value):
        return render.MISSING
    if column in ("seed", "train rows"):
        return fmt(int(value))
    if column in ("tokens/s", "train s"):
        return fmt(float(value), 1)
    if column in ("general", "math", "fraction"):
        return f"{value:g}"
    return fmt(value)


def _read_results(sweep_dir: Path) -> pd.DataFrame:
    path = sweep_dir / RESULTS
    if not path.exists():
        raise UserError(f"{path} does not exist; run the sweep first or pass the results table")
    return pd.read_parquet(path)


def _read_meta(sweep_dir: Path) -> dict[str, Any]:
    path = sweep_dir / META
    if not path.exists():
        return {}
    meta = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(meta, dict):
        raise UserError(f"{path} must hold a JSON object, got {type(meta).__name__}")
    return meta


def write_document(sweep_dir: Path, doc: Document, csvs: dict[str, pd.DataFrame]) -> ReportPaths:
    """Every file atomically; files of sections this run could not build are removed so
    a rerun never leaves a stale plot or CSV beside a report that says it is missing."""
    plots, tables = {}, {}
    for name in _PLOTS:
        path = sweep_dir / "plots" / f"{name}.png"
        if name in doc.plots:
            plots[name] = _atomic(path, doc.plots[name])
        else:
            path.unlink(missing_ok=True)
    for name in _CSVS:
        path = sweep_dir / f"{name}.csv"
        if name in csvs:
            tables[name] = _atomic(path, csvs[name].to_csv(index=False).encode())
        else:
            path.unlink(missing_ok=True)
    md = _atomic(sweep_dir / "report.md", render.to_markdown(doc).encode())
    page = _atomic(sweep_dir / "report.html", render.to_html(doc).encode())
    return ReportPaths(markdown=md, html=page, plots=plots, tables=tables)


def _atomic(path: Path, data: bytes) -> Path:
    """Temp file in the same directory, then rename: readers see the old file or the new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
