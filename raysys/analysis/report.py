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

from raysys.analysis import render, sections
from raysys.analysis.leaderboard import leaderboard
from raysys.analysis.overlap import overlap_section
from raysys.analysis.render import Document, Heading, Para, fmt, table
from raysys.analysis.results import MissingInput, is_base, require_columns, trained
from raysys.analysis.sections import REFERENCE_ALPHA, arm_cells, base_cells, left_out, marked
from raysys.errors import UserError
from raysys.io import read_json, read_parquet

log = logging.getLogger(__name__)

RESULTS = "results.parquet"
PREDICTIONS = "test_predictions.parquet"
META = "sweep.json"
SEARCH_STATE = "search.json"  # written by `raysys search` (raysys.sweep.search)
__all__ = ["REFERENCE_ALPHA", "add_sweep_sections", "headline", "sweep_headline", "write_report"]
_PLOTS = ("transfer", "leaderboard", "scaling", "pipeline", "confidence")
_CSVS = ("transfer", "leaderboard", "scaling", "pipeline", "search", "confidence", "cost")
# Trials listed in the report: every trial of the cocktail study (~220); beyond that the
# best by validation, and results.csv has them all.
MAX_TRIAL_ROWS = 250
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
    "cost_usd": "cost USD",
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
        predictions = read_parquet(sweep_dir / PREDICTIONS)
    meta = _read_meta(sweep_dir) if meta is None else meta
    require_columns(results, ["trial_id", "cocktail", "cocktail_kind", "task"], "the report")
    if results.empty:
        raise UserError(f"the results table for {sweep_dir} has no rows; nothing to report")

    doc = Document(title=f"Sweep report: {sweep_dir.resolve().name}")
    csvs: dict[str, pd.DataFrame] = {}
    _header(doc, meta)
    overlap_section(doc, sweep_dir)
    if (sweep_dir / SEARCH_STATE).is_file():  # a `raysys search` run: its section first
        from raysys.analysis.search import add_search_section

        state = json.loads((sweep_dir / SEARCH_STATE).read_text())
        _section(
            doc, csvs, "search", lambda: add_search_section(doc, state, results, predictions, meta)
        )
    add_sweep_sections(doc, csvs, results, predictions)
    add_cost_section(doc, csvs, results, meta)
    paths = write_document(sweep_dir, doc, csvs)
    log.info("wrote the sweep report to %s", paths.html)
    return paths


def add_sweep_sections(
    doc: Document,
    csvs: dict[str, pd.DataFrame],
    results: pd.DataFrame,
    predictions: pd.DataFrame | None,
) -> None:
    """Summary, transfer matrix, leaderboard (with baselines and paired tests), scaling
    law and trials, appended to `doc` (the pipeline report embeds them after its own)."""
    _summary(doc, results)
    _section(doc, csvs, "transfer", lambda: sections.transfer(doc, results, predictions))
    _section(doc, csvs, "leaderboard", lambda: sections.board(doc, results, predictions))
    _section(doc, csvs, "scaling", lambda: sections.scaling(doc, results))
    _trials(doc, results)


def sweep_headline(sweep_dir: Path) -> str:
    """`headline` of a sweep directory: its results and, where written, its test predictions."""
    sweep_dir = Path(sweep_dir)
    preds = sweep_dir / PREDICTIONS
    predictions = read_parquet(preds) if preds.is_file() else None
    return headline(_read_results(sweep_dir), predictions)


def headline(results: pd.DataFrame, predictions: pd.DataFrame | None = None) -> str:
    """Markdown tables for a terminal: per task, base, single-task and the best cocktail
    (chosen on validation) with its test CI, marked `constant` where they are; with the
    test predictions also the baselines, test n, and the paired tests (Holm-adjusted p)."""
    board = leaderboard(results, predictions)
    singles = board["single_seeds"].fillna(0).astype(int).tolist()
    seeds = board["seeds"].fillna(0).astype(int).tolist()
    frame = pd.DataFrame(
        {
            "task": board["task"],
            "base": base_cells(board),
            "single-task": marked(board, "single", singles),
            "best cocktail": arm_cells(board, "best_cocktail"),
            "test [95% CI]": marked(board, "test", seeds),
        }
    )
    if board["n"].isna().all():
        return render.md_table(table(frame))
    frame = frame.assign(
        majority=board["majority"].map(fmt),
        random=board["random"].map(fmt),
        n=board["n"].map(lambda v: fmt(int(v)) if v == v else render.MISSING),
    )
    return render.md_table(table(frame)) + "\n\n" + _comparison_headline(board)


def _comparison_headline(board: pd.DataFrame) -> str:
    """Best cocktail vs single-task and vs base: Δ [95% CI], Holm-adjusted p, significant."""
    cells = sections.comparison_cells(board)
    cells = cells[["task", "comparison", "Δ [95% CI]", "p (Holm)", "significant", "MDE"]]
    return render.md_table(table(cells))


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
    rows = [(str(k), _meta_value(v)) for k, v in meta.items() if k != "cost"]  # its section
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


def _trials(doc: Document, results: pd.DataFrame) -> None:
    runs = trained(results)
    total = runs["trial_id"].nunique()
    if total > MAX_TRIAL_ROWS:
        runs = runs[runs["trial_id"].isin(best_trials(runs, MAX_TRIAL_ROWS))]
    runs = runs.drop_duplicates("trial_id")
    cols = [c for c in _TRIAL_COLUMNS if c in runs]
    sort = [c for c in ("cocktail", "general", "math", "fraction", "seed") if c in runs]
    runs = runs.sort_values(sort)[cols].rename(columns=_TRIAL_COLUMNS)
    doc.add(Heading(2, "Trials"))
    if runs.empty:
        doc.add(Para("No fine-tuned trials in the results: only the base model was evaluated."))
        return
    cells = runs.apply(lambda col: col.map(lambda v: _trial_cell(col.name, v)))
    doc.add(table(cells))
    if len(runs) < total:
        rule = (
            f"the {len(runs)} with the best mean validation score over the evaluated tasks are "
            "listed; every trial is in results.csv"
        )
        doc.add(Para(left_out(total - len(runs), total, "trials", rule)))


def best_trials(runs: pd.DataFrame, n: int) -> list[str]:
    """The `n` trial ids with the best mean `val_main` over tasks (no score last; ties by
    id, so a rerun lists the same trials)."""
    if "val_main" not in runs:
        return sorted(runs["trial_id"].unique())[:n]
    means = runs.groupby("trial_id")["val_main"].mean().reset_index()
    means = means.sort_values(["val_main", "trial_id"], ascending=[False, True])
    return means["trial_id"].head(n).tolist()


def _trial_cell(column: str, value: Any) -> str:
    if isinstance(value, float) and math.isnan(value):
        return render.MISSING
    if column in ("seed", "train rows"):
        return fmt(int(value))
    if column in ("tokens/s", "train s"):
        return fmt(float(value), 1)
    if column == "cost USD":
        return f"{float(value):.4g}"
    if column in ("general", "math", "fraction"):
        return f"{value:g}"
    return fmt(value)


_USAGE = {"cpu_s": "CPU-h", "gpu_s": "GPU-h", "tokens_trained": "tokens trained"}
_USAGE |= {"tokens_generated": "tokens generated", "cost_usd": "cost USD"}


def add_cost_section(
    doc: Document, csvs: dict[str, pd.DataFrame], results: pd.DataFrame, meta: dict[str, Any]
) -> None:
    """Resource-hours, tokens and cost: the trials, the test pass and the whole study
    (sweep.json), per cocktail (the results table), and the cost per evaluated answer."""
    from raysys.analysis import cost

    doc.add(Heading(2, "Cost"))
    info = meta.get("cost") if isinstance(meta.get("cost"), dict) else None
    if info is None or "cost_usd" not in results:
        doc.add(Para("Not available: this sweep recorded no usage (it predates cost tracking)."))
        return
    prices = info.get("prices") or {}
    priced = ", ".join(f"{k} {v:g}" for k, v in sorted(prices.items()))
    priced = f"prices (USD per hour): {priced}." if prices else "no `cost.prices` set, so no cost."
    doc.add(
        Para(
            "Resource-seconds are what Ray scheduled (Train workers while training, engine "
            "actors while generating) × wall time; " + priced
        )
    )
    parts = [("trials", "trials"), ("test pass", "test_pass"), ("whole study", "study")]
    rows = [{"part": name, **cost.columns(info.get(key), prices)} for name, key in parts]
    doc.add(table(_usage_cells(pd.DataFrame(rows))))
    study = info.get("study") or {}
    per = info.get("cost_per_answer_usd")
    answers = info.get("answers") or 0
    if per is not None:
        doc.add(Para(f"Cost per answer: ${per:.3g} ({fmt(int(answers))} test answers scored)."))
    else:
        doc.add(Para(f"Cost per answer: not shown; {cost.price_text(study, prices)}."))
    runs = trained(results).drop_duplicates("trial_id")
    if runs.empty:
        return
    keys = [c for c in ("cocktail", "general", "math") if c in runs]
    arms = runs.groupby(keys, dropna=False)
    frame = arms[list(_USAGE)].sum(min_count=1).reset_index()
    frame.insert(len(keys), "trials", arms.size().values)
    csvs["cost"] = frame
    doc.add(Heading(3, "Per cocktail (all its fractions and seeds)"), table(_usage_cells(frame)))


def _usage_cells(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for col in ("cpu_s", "gpu_s"):
        out[col] = out[col].map(lambda v: fmt(float(v) / 3600, 3))
    for col in ("tokens_trained", "tokens_generated"):
        out[col] = out[col].map(lambda v: fmt(int(v)) if v == v else render.MISSING)
    out["cost_usd"] = out["cost_usd"].map(lambda v: f"{v:.4g}" if v == v else render.MISSING)
    for col in ("general", "math"):
        if col in out:
            out[col] = out[col].map(lambda v: f"{v:g}")
    if "trials" in out:
        out["trials"] = out["trials"].map(lambda v: fmt(int(v)))
    return out.rename(columns=_USAGE)


def _read_results(sweep_dir: Path) -> pd.DataFrame:
    path = sweep_dir / RESULTS
    if not path.exists():
        raise UserError(f"{path} does not exist; run the sweep first or pass the results table")
    return read_parquet(path)


def _read_meta(sweep_dir: Path) -> dict[str, Any]:
    path = sweep_dir / META
    if not path.exists():
        return {}
    meta = read_json(path)
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
