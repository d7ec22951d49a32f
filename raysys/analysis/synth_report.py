"""The synthesis report: report.md, a self-contained report.html, plots/confidence.png
and confidence.csv beside a synthesis run's stats.json (same style as the sweep report).

What was kept and why the rest was not; where held-back gold exists, the accuracy of
the kept labels and, per keep rule, kept-label accuracy against yield (`confidence`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from raysys.analysis.confidence import MIN_ROWS, TOO_FEW, add_confidence_section
from raysys.analysis.render import Document, Heading, fmt, table


def write_synth_report(out_dir: Path, task: str, stats: dict[str, Any]) -> Path:
    """Write the report of one task's synthesis under `out_dir`; returns report.md."""
    from raysys.analysis.report import write_document

    doc = Document(title=f"Synthesis report: {task}")
    doc.add(Heading(2, "What was kept"), table(summary_cells(stats)))
    csvs: dict[str, pd.DataFrame] = {}
    curves = {task: stats["confidence"]} if stats.get("confidence") else {}
    own = {task: (stats.get("gold_yield", 0.0), stats.get("kept_label_accuracy"))}
    cells = add_confidence_section(doc, curves, own)
    if cells is not None:
        csvs["confidence"] = cells
    return write_document(Path(out_dir), doc, csvs).markdown


def summary_cells(stats: dict[str, Any]) -> pd.DataFrame:
    """Inputs, the keep rule, kept and rejected by reason, and kept-label accuracy (with
    its n; "too few" under MIN_ROWS kept gold rows)."""
    rule = f"agreement ≥ {stats['min_agreement']}"
    for key, value in (stats.get("min_confidence") or {}).items():
        rule += f", {key} ≥ {value}"
    rows = [
        ("inputs", fmt(stats["inputs"])),
        ("keep rule", rule),
        ("kept", f"{fmt(stats['kept'])} (yield {fmt(stats['yield'])})"),
        *[(f"rejected: {k}", fmt(v)) for k, v in stats.get("rejected", {}).items()],
        ("SFT rows", fmt(stats["sft_rows"])),
    ]
    if "gold_rows" in stats:
        kept_gold = stats["gold_kept"]
        acc = stats.get("kept_label_accuracy")
        shown = fmt(acc) if kept_gold >= MIN_ROWS and acc is not None else TOO_FEW
        rows.append(("kept-label accuracy vs gold", f"{shown} (n={kept_gold})"))
    return pd.DataFrame(rows, columns=["synthesis", "value"])
