"""A synthetic sweep and its report, to look at the report without running a sweep.

Writes results.parquet and sweep.json in the results schema the
sweep runner produces (known transfer, a power law with alpha = 0.28 per task, seed
noise), then calls `write_report` on it and prints where the report is.

    python bench/demo_report.py /tmp/demo-sweep [--seeds 3] [--fractions 0.25 0.5 1]
"""

from __future__ import annotations

import argparse
import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from raysys.analysis.report import headline, write_report

# task -> (kind, main metric, base score, A of 1 - m = A * d**-alpha)
TASKS = {
    "news_sentiment": ("classification", "macro_f1", 0.38, 1.6),
    "price_direction": ("classification", "macro_f1", 0.47, 2.4),
    "fomc_stance": ("classification", "macro_f1", 0.34, 2.0),
    "fin_ner": ("ner", "entity_f1", 0.12, 2.2),
    "numeric_qa": ("numeric", "exact_match", 0.06, 3.0),
}
ALPHA = 0.28
ROWS = 800  # per task at fraction 1
# Off-diagonal gain over the base model from training on (row) for (column).
TRANSFER = {
    ("news_sentiment", "fomc_stance"): 0.06,
    ("fomc_stance", "news_sentiment"): 0.04,
    ("news_sentiment", "price_direction"): -0.03,
    ("numeric_qa", "fin_ner"): -0.05,
    ("fin_ner", "news_sentiment"): 0.02,
    ("price_direction", "numeric_qa"): 0.03,
}
REG_GAIN = 0.015  # what general/math data adds on top (a little, with noise)


def _cocktails() -> list[tuple[str, str, tuple[str, ...], float, float]]:
    names = sorted(TASKS)
    arms = [(t, "singleton", (t,), 0.0, 0.0) for t in names]
    arms += [(f"{a}+{b}", "pair", (a, b), 0.0, 0.0) for a, b in combinations(names[:3], 2)]
    arms += [
        (f"loo-{t}", "leave_one_out", tuple(n for n in names if n != t), 0.0, 0.0)
        for t in names[:2]
    ]
    arms += [("all", "all", tuple(names), g, m) for g, m in ((0.0, 0.0), (0.1, 0.05))]
    return arms


def _score(task: str, trained: tuple[str, ...], d: int, reg: float, rng) -> float:
    kind, _, base, a = TASKS[task]
    if task in trained:
        m = 1 - a * d**-ALPHA + 0.01 * (len(trained) - 1) + reg
    else:
        m = base + np.mean([TRANSFER.get((s, task), 0.0) for s in trained])
    return float(np.clip(m + rng.normal(0, 0.012), 0, 1))


def synthetic_results(seeds: int = 3, fractions: tuple[float, ...] = (0.25, 0.5, 1.0)):
    rng = np.random.default_rng(0)
    rows = [_base_row(task) for task in TASKS]
    for name, kind, tasks, g, m in _cocktails():
        for frac in fractions:
            for seed in range(seeds):
                trial = f"{name}-g{g:g}-m{m:g}-f{frac:g}-s{seed}"
                per_task = round(ROWS * frac)
                total = round(per_task * len(tasks) * (1 + g + m))
                info = _trial_info(trial, name, kind, tasks, g, m, frac, seed, total, rng)
                for task in TASKS:
                    d = per_task if task in tasks else 0
                    test = _score(task, tasks, max(d, 1), REG_GAIN * (g + m) * 10, rng)
                    val = float(np.clip(test + rng.normal(0, 0.01), 0, 1))
                    rows.append({**info, **_task_cols(task, d, val, test, rng)})
    return pd.DataFrame(rows)


def _trial_info(trial, name, kind, tasks, g, m, frac, seed, total, rng) -> dict:
    tokens = total * 140.0
    seconds = tokens / rng.uniform(2200, 2600)
    return {
        "trial_id": trial, "cocktail": name, "cocktail_kind": kind,
        "cocktail_tasks": ",".join(sorted(tasks)), "general": g, "math": m,
        "fraction": frac, "seed": seed, "learning_rate": 2e-4, "lora_r": 16.0,
        "train_rows": total, "train_tokens": tokens, "train_seconds": seconds,
        "tokens_per_s": tokens / seconds, "final_loss": float(rng.uniform(0.4, 0.9)),
        "trial_seconds": seconds + 40.0,
    }  # fmt: skip


def _task_cols(task: str, d: int, val: float, test: float, rng) -> dict:
    kind, metric, _, _ = TASKS[task]
    return {
        "task_train_rows": d, "task": task, "task_kind": kind, "main_metric": metric,
        "val_main": val, "val_missing_rate": float(rng.uniform(0, 0.05)),
        "test_main": test, "test_missing_rate": float(rng.uniform(0, 0.05)),
        "test_overlength_ratio": float(rng.uniform(0, 0.1)),
    }  # fmt: skip


def _base_row(task: str) -> dict:
    kind, metric, base, _ = TASKS[task]
    nan = float("nan")
    return {
        "trial_id": "base", "cocktail": "base", "cocktail_kind": "base", "cocktail_tasks": "",
        "general": 0.0, "math": 0.0, "fraction": nan, "seed": 0, "learning_rate": nan,
        "lora_r": nan, "train_rows": 0, "train_tokens": nan, "train_seconds": nan,
        "tokens_per_s": nan, "final_loss": nan, "trial_seconds": nan, "task_train_rows": 0,
        "task": task, "task_kind": kind, "main_metric": metric, "val_main": nan,
        "val_missing_rate": nan, "test_main": base, "test_missing_rate": 0.2,
        "test_overlength_ratio": 0.3,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep_dir", type=Path)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    args = ap.parse_args()
    args.sweep_dir.mkdir(parents=True, exist_ok=True)
    results = synthetic_results(args.seeds, tuple(args.fractions))
    results.to_parquet(args.sweep_dir / "results.parquet", index=False)
    meta = {
        "name": "finance-demo (synthetic)",
        "model": "smollm2-135m-instruct",
        "grid": {"fractions": args.fractions, "seeds": args.seeds, "regularisers": [0, 0.15]},
        "trials": int(results["trial_id"].nunique() - 1),
        "concurrency": 4,
        "wall_seconds": 5234.2,
    }
    (args.sweep_dir / "sweep.json").write_text(json.dumps(meta, indent=2))
    paths = write_report(args.sweep_dir)
    print(headline(results))
    print(f"\nreport: {paths.html}\n        {paths.markdown}")


if __name__ == "__main__":
    main()
