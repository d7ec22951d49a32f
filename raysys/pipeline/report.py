"""The pipeline report: per stage x task, the synthesis yield, the DPO gate, stage times;
with a sweep as the SFT stage, the sweep's sections (transfer, leaderboard, scaling).

Every stage's score stands next to the task's majority and random baselines, is marked
`constant` where the model predicts one value, and is compared, paired on the same test
rows, with the base model and with the stage before it (`analysis.stages`).

Same style and files as the sweep report: report.md, a self-contained report.html,
plots/*.png and pipeline.csv, all written atomically under the run directory.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raysys.analysis import render
from raysys.analysis.overlap import overlap_section
from raysys.analysis.render import (
    MISSING,
    Document,
    Heading,
    Para,
    constant_mark,
    fmt,
    fmt_ci,
    fmt_p,
    table,
)
from raysys.analysis.sections import BASELINE_RULE, CONSTANT_RULE, PAIRED_RULE

STAGE_COLUMNS = [
    "stage",
    "task",
    "metric",
    "n",
    "main",
    "change",
    "change_pct",
    "missing_rate",
    "overlength_ratio",
    "mean_generated_tokens",
]


def stage_table(summary: dict[str, Any]) -> pd.DataFrame:
    """One row per (evaluated stage, task); change vs the previous evaluated stage."""
    rows, prev = [], {}
    for m in summary.get("models", []):
        for r in m["results"]:
            task = r["task"]
            main = float(r.get("main", math.nan))
            before = prev.get(task)
            change = main - before if before is not None else math.nan
            pct = 100 * change / before if before not in (None, 0) else math.nan
            rows.append(
                {
                    "stage": m["stage"],
                    "task": task,
                    "metric": _metric_name(task),
                    "n": r.get("n"),
                    "main": main,
                    "change": change,
                    "change_pct": pct,
                    "missing_rate": r.get("missing_rate", math.nan),
                    "overlength_ratio": r.get("overlength_ratio", math.nan),
                    "mean_generated_tokens": r.get("mean_generated_tokens", math.nan),
                }
            )
            prev[task] = main
    return pd.DataFrame(rows, columns=STAGE_COLUMNS)


def synthesis_table(summary: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for rnd in summary.get("synthesis", []):
        for task, s in rnd["tasks"].items():
            rows.append(
                {
                    "round": rnd["round"],
                    "task": task,
                    "labeler": rnd["labeler"],
                    "inputs": s.get("inputs"),
                    "kept": s.get("kept"),
                    "yield": s.get("yield"),
                    "kept_label_accuracy": s.get("kept_label_accuracy"),
                    "unextractable_share": s.get("extraction", {}).get("unextractable_share"),
                    "sft_rows": s.get("sft_rows"),
                    "dpo_pairs": (s.get("dpo") or {}).get("pairs"),
                }
            )
    return pd.DataFrame(rows)


def report_table(summary: dict[str, Any], run_dir: Path | None) -> pd.DataFrame:
    """`stage_table` with the baselines, `constant` and the paired comparisons (read from
    the evaluation stages' predictions under `run_dir`; NaN without it): pipeline.csv."""
    from raysys.analysis.stages import stage_evidence, stage_predictions

    stages = stage_table(summary)
    preds = stage_predictions(run_dir, summary) if run_dir is not None else None
    return stage_evidence(stages, preds)


def headline(summary: dict[str, Any], run_dir: Path | None = None) -> str:
    """The terminal tables: main metric per task, one column per evaluated stage (marked
    `constant` where it is one), the task's baselines and test n; then each stage vs the
    base model and vs the stage before it, paired (Holm-adjusted p). The baselines and
    comparisons need the predictions under `run_dir`."""
    frame = report_table(summary, run_dir)
    if frame.empty:
        return "(no stage was evaluated)"
    order = list(dict.fromkeys(frame["stage"]))
    cells = frame.assign(
        cell=[
            fmt(m) + constant_mark(c) for m, c in zip(frame["main"], frame["constant"], strict=True)
        ]
    )
    wide = cells.pivot(index="task", columns="stage", values="cell").loc[
        list(dict.fromkeys(frame["task"])), order
    ]
    wide = wide.fillna(MISSING).reset_index()
    if frame["majority"].isna().all():
        return render.md_table(table(wide))
    per_task = frame.drop_duplicates("task").set_index("task")
    wide["majority"] = wide["task"].map(per_task["majority"]).map(fmt)
    wide["random"] = wide["task"].map(per_task["random"]).map(fmt)
    wide["n"] = wide["task"].map(per_task["n"]).map(_count)
    cols = ["task", "comparison", "Δ [95% CI]", "p (Holm)", "significant", "MDE"]
    return (
        render.md_table(table(wide))
        + "\n\n"
        + render.md_table(table(_comparison_cells(frame)[cols]))
    )


def write_pipeline_report(run_dir: Path, summary: dict[str, Any]) -> tuple[Path, Path]:
    from raysys.analysis.report import add_sweep_sections, write_document

    doc = Document(title=f"Pipeline report: {run_dir.name}")
    csvs: dict[str, pd.DataFrame] = {}
    _header(doc, summary)
    overlap_section(doc, run_dir)
    stages = report_table(summary, run_dir)
    csvs["pipeline"] = stages
    doc.add(
        Heading(2, "Stages x tasks (test split)"),
        Para(
            "`main` is the task's main metric on the strict `Answer:` extraction; `change` is "
            "against the previous evaluated stage (points, and % of the previous score; no % "
            "when that was 0); `missing` = no extractable answer; `overlength` = outputs that "
            "hit the token limit without EOS or loop. " + BASELINE_RULE + " " + CONSTANT_RULE
        ),
        table(_stage_cells(stages)),
    )
    if not stages.empty:
        doc.image("pipeline", _stage_plot(stages), "main metric per stage and task")
    _comparisons(doc, stages)
    _dpo(doc, summary)
    confidence = _synthesis(doc, summary)
    if confidence is not None:
        csvs["confidence"] = confidence
    _times(doc, summary)
    sweep_dir = summary.get("sweep_dir")
    if sweep_dir and (Path(sweep_dir) / "results.parquet").is_file():
        doc.add(Heading(2, "The SFT sweep"), Para(f"Sweep directory: `{sweep_dir}`."))
        results = pd.read_parquet(Path(sweep_dir) / "results.parquet")
        preds_path = Path(sweep_dir) / "test_predictions.parquet"
        preds = pd.read_parquet(preds_path) if preds_path.is_file() else None
        add_sweep_sections(doc, csvs, results, preds)
    paths = write_document(run_dir, doc, csvs)
    return paths.markdown, paths.html


def _comparisons(doc: Document, frame: pd.DataFrame) -> None:
    doc.add(Heading(2, "Is a stage better? (paired tests)"))
    cells = _comparison_cells(frame)
    if cells.empty or cells["p"].eq(MISSING).all():
        doc.add(Para("No test predictions found for the evaluated stages: no paired test."))
        return
    doc.add(
        Para(
            "Each stage against the base model and against the stage evaluated before it "
            "(e.g. `dpo vs sft`: what DPO changed). " + PAIRED_RULE
        ),
        table(cells),
    )


def _comparison_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """Per stage after the base model: its tasks vs base (when the base model was
    evaluated), then vs the previous stage."""
    rows = []
    stages = list(dict.fromkeys(frame["stage"]))
    prefixes = ("vs_base", "vs_prev") if "base" in stages else ("vs_prev",)
    for stage in stages:
        records = frame[frame["stage"] == stage].to_dict("records")
        for prefix in prefixes:
            for r in records:
                other = "base" if prefix == "vs_base" else r["vs_prev_stage"]
                if stage != "base" and isinstance(other, str):
                    rows.append(_comparison_row(r, prefix, f"{stage} vs {other}"))
    cols = ["task", "comparison", "Δ [95% CI]", "test", "n", "p", "p (Holm)", "significant", "MDE"]
    return pd.DataFrame(rows, columns=cols)


def _comparison_row(r: dict[str, Any], prefix: str, name: str) -> dict[str, str]:
    ran = not pd.isna(r[f"{prefix}_p"])
    return {
        "task": r["task"],
        "comparison": name,
        "Δ [95% CI]": fmt_ci(
            r[f"{prefix}_diff"], r[f"{prefix}_lo"], r[f"{prefix}_hi"], signed=True
        ),
        "test": render.text(r[f"{prefix}_test"]),
        "n": _count(r[f"{prefix}_n"]),
        "p": fmt_p(r[f"{prefix}_p"]),
        "p (Holm)": fmt_p(r[f"{prefix}_p_adj"]),
        "significant": fmt(bool(r[f"{prefix}_significant"])) if ran else MISSING,
        "MDE": fmt(r["mde"]),
    }


def _count(v: Any) -> str:
    return MISSING if v is None or pd.isna(v) else fmt(int(v))


def _metric_name(task: str) -> str:
    from raysys.tasks import get_task

    try:
        return get_task(task).main_metric
    except Exception:  # a YAML task from another machine: the name is enough
        return "main"


def _header(doc: Document, s: dict[str, Any]) -> None:
    final = s.get("final_model") or {}
    items = [
        ("model", s.get("model")),
        ("trained tasks (gold)", ", ".join(s.get("tasks", []))),
        ("synthesised tasks", ", ".join(s.get("synth_tasks", [])) or "none"),
        ("evaluated tasks", ", ".join(s.get("eval_tasks", []))),
        ("final model", f"{final.get('stage')} ({final.get('adapter') or 'no adapter'})"),
        ("wall time (this invocation)", f"{s.get('wall_seconds', 0):.0f} s"),
    ]
    doc.add(table(pd.DataFrame(items, columns=["pipeline", "value"])))


def _stage_cells(frame: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "stage": frame["stage"],
            "task": frame["task"],
            "metric": frame["metric"],
            "n": frame["n"].map(_count),
            "main": [
                fmt(m) + constant_mark(c)
                for m, c in zip(frame["main"], frame["constant"], strict=True)
            ],
            "change": frame["change"].map(lambda v: fmt(v, signed=True)),
            "change %": frame["change_pct"].map(lambda v: "—" if pd.isna(v) else f"{v:+.1f}%"),
            "missing": frame["missing_rate"].map(fmt),
            "overlength": frame["overlength_ratio"].map(fmt),
            "mean tokens": frame["mean_generated_tokens"].map(lambda v: fmt(v, 1)),
            "majority": frame["majority"].map(fmt),
            "random": frame["random"].map(fmt),
        }
    )
    return out


def _dpo(doc: Document, s: dict[str, Any]) -> None:
    d = s.get("dpo")
    if d is None:
        return
    verdict = "ran" if d["run"] else "skipped"
    doc.add(Heading(2, "DPO gate"), Para(f"DPO {verdict}: {d['why']}."))


def _synthesis(doc: Document, s: dict[str, Any]) -> pd.DataFrame | None:
    """The synthesis table, then per round and task with held-back gold, kept-label
    accuracy against yield for each keep rule (returned for confidence.csv)."""
    from raysys.analysis.confidence import add_confidence_section

    frame = synthesis_table(s)
    if frame.empty:
        return None
    cells = frame.copy()
    for c in ("yield", "kept_label_accuracy", "unextractable_share"):
        cells[c] = cells[c].map(fmt)
    doc.add(
        Heading(2, "Synthesis"),
        Para(
            "Per round and task: inputs labeled by majority vote over CoT samples, how many "
            "passed `min_agreement` (yield), and - where the task has gold labels - how many "
            "kept labels are right."
        ),
        table(cells.rename(columns=lambda c: c.replace("_", " "))),
    )
    curves, runs = {}, {}
    for rnd in s.get("synthesis", []):
        for task, st in rnd["tasks"].items():
            if st.get("confidence"):
                key = f"round {rnd['round']}: {task}"
                curves[key] = st["confidence"]
                runs[key] = (st.get("gold_yield", 0.0), st.get("kept_label_accuracy"))
    return add_confidence_section(doc, curves, runs, level=3)


def _times(doc: Document, s: dict[str, Any]) -> None:
    from raysys.analysis import cost

    info = s.get("cost") or {}
    prices = info.get("prices") or {}
    stages = s.get("stages", [])
    rows = [
        (st["stage"], st["title"], f"{st['seconds']:.0f}", "yes" if st["skipped"] else "")
        + _usage_cells(st.get("usage"), prices)
        for st in stages
    ]
    if info:
        rows.append(("whole study", "", "", "", *_usage_cells(info.get("study"), prices)))
    cols = ["stage", "what", "seconds", "done earlier", "CPU-h", "GPU-h", "tokens trained"]
    cols += ["tokens generated", "cost USD"]
    doc.add(Heading(2, "Stage wall times and cost"), table(pd.DataFrame(rows, columns=cols)))
    if not info:
        return
    per = info.get("cost_per_answer_usd")
    scored = fmt(int(info.get("answers") or 0))
    why = cost.price_text(info.get("study") or {}, prices)
    answer = (
        f"Cost per answer: ${per:.3g} ({scored} test answers scored)."
        if per is not None
        else f"Cost per answer: not shown; {why}."
    )
    doc.add(
        Para(
            "Resource-hours are what Ray scheduled for each stage (Train workers, engine "
            "actors) × its wall time. " + answer
        )
    )


def _usage_cells(u: Any, prices: dict[str, float]) -> tuple[str, ...]:
    from raysys.analysis import cost

    c = cost.columns(u, prices)
    if not isinstance(u, dict):
        return ("—",) * 5
    usd = "—" if c["cost_usd"] != c["cost_usd"] else f"{c['cost_usd']:.4g}"
    return (
        fmt(c["cpu_s"] / 3600, 3),
        fmt(c["gpu_s"] / 3600, 3),
        fmt(c["tokens_trained"]),
        fmt(c["tokens_generated"]),
        usd,
    )


def _stage_plot(frame: pd.DataFrame) -> bytes:
    from matplotlib.figure import Figure

    from raysys.analysis.plots import png_bytes

    tasks = list(dict.fromkeys(frame["task"]))
    stages = list(dict.fromkeys(frame["stage"]))
    fig = Figure(figsize=(2.0 + 1.6 * len(tasks), 4.0), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(tasks))
    width = 0.8 / max(len(stages), 1)
    for k, st in enumerate(stages):
        part = frame[frame["stage"] == st].set_index("task")["main"]
        heights = [float(part.get(t, np.nan)) for t in tasks]
        ax.bar(x + (k - (len(stages) - 1) / 2) * width, heights, width, label=st)
    ax.set_xticks(x, tasks, fontsize=8)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("test main metric")
    ax.grid(True, axis="y", alpha=0.25)
    fig.legend(fontsize=8, loc="outside upper center", ncols=min(len(stages), 6), frameon=False)
    return png_bytes(fig)
