"""Synthetic sweep results with known answers, in the sweep runner's schema: a power law
with a known exponent, a transfer matrix of known gains, arms whose validation and test
disagree. Shared by the analysis unit tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

ALPHA, A = 0.28, 0.9
NAN = float("nan")


def result_row(
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


def base_row(task: str, test: float) -> dict:
    row = result_row("base", "base", "base", (), task, NAN, test)
    nans = dict.fromkeys(["fraction", "lora_r", "tokens_per_s", "train_seconds"], NAN)
    return {**row, **nans, "train_rows": 0}


def arm_rows(cocktail, kind, tasks, scores, *, general=0.0, maths=0.0, fraction=1.0, seeds=(0,)):
    """Rows of one arm: `scores` maps evaluated task -> (val, test) per seed, or one pair."""
    rows = []
    for i, seed in enumerate(seeds):
        trial = f"{cocktail}-g{general}-m{maths}-f{fraction}-s{seed}"
        kw = {"general": general, "maths": maths, "fraction": fraction, "seed": seed}
        for task, pairs in scores.items():
            val, test = pairs[i] if isinstance(pairs, list) else pairs
            rows.append(result_row(trial, cocktail, kind, tasks, task, val, test, **kw))
    return rows


def power_law_points(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    d = np.repeat([100.0, 200.0, 400.0, 800.0], 3)  # 4 fractions x 3 seeds
    error = A * d**-ALPHA * np.exp(rng.normal(0, 0.02, d.size))
    return d, 1 - error


TASKS = ("t1", "t2", "t3")
BASE = {"t1": 0.30, "t2": 0.40, "t3": 0.50}
GAIN = np.array([[0.25, 0.05, -0.02], [0.01, 0.30, 0.00], [-0.04, 0.03, 0.20]])


def transfer_results() -> pd.DataFrame:
    rows = [base_row(t, BASE[t]) for t in TASKS]
    for i, trained in enumerate(TASKS):
        # Two seeds at +-0.01: the mean is the known value exactly.
        scores = {
            t: [(0.5, BASE[t] + GAIN[i, j] + e) for e in (0.01, -0.01)] for j, t in enumerate(TASKS)
        }
        rows += arm_rows(trained, "singleton", (trained,), scores, seeds=(0, 1))
        # Arms the matrix must ignore: a smaller fraction and regulariser shares.
        junk = {t: (0.9, 0.99) for t in TASKS}
        rows += arm_rows(trained, "singleton", (trained,), junk, fraction=0.5)
        rows += arm_rows(trained, "singleton", (trained,), junk, general=0.1)
    rows += arm_rows("all", "all", TASKS, {t: (0.9, 0.99) for t in TASKS})
    return pd.DataFrame(rows)


def board_results() -> pd.DataFrame:
    seeds = (0, 1, 2)
    rows = [base_row("t1", 0.20), base_row("t2", 0.25)]
    # t1: the singleton wins on test, the pair on validation -> the pair must be chosen.
    rows += arm_rows(
        "t1", "singleton", ("t1",), {"t1": [(0.60, 0.90), (0.62, 0.92), (0.61, 0.91)]}, seeds=seeds
    )
    rows += arm_rows(
        "t1+t2",
        "pair",
        ("t1", "t2"),
        {"t1": [(0.70, 0.80), (0.72, 0.84), (0.71, 0.83)], "t2": (0.50, 0.50)},
        seeds=seeds,
    )
    # The same pair with general data: best on t2's validation, and better on test.
    rows += arm_rows(
        "t1+t2",
        "pair",
        ("t1", "t2"),
        {"t1": (0.10, 0.10), "t2": [(0.80, 0.60), (0.82, 0.64), (0.81, 0.62)]},
        general=0.1,
        seeds=seeds,
    )
    rows += arm_rows("t2", "singleton", ("t2",), {"t2": (0.55, 0.58)})
    # The pair at a smaller fraction would win everything: not a candidate.
    rows += arm_rows(
        "t1+t2", "pair", ("t1", "t2"), {"t1": (0.99, 0.99), "t2": (0.99, 0.99)}, fraction=0.5
    )
    return pd.DataFrame(rows)


def full_sweep() -> pd.DataFrame:
    """Three tasks, singletons + all, three fractions, two seeds, one regulariser arm."""
    rng = np.random.default_rng(0)
    rows = [base_row(t, BASE[t]) for t in TASKS]
    arms = [(t, "singleton", (t,), 0.0) for t in TASKS] + [("all", "all", TASKS, 0.0)]
    arms.append(("all", "all", TASKS, 0.1))
    for cocktail, kind, trained, general in arms:
        for fraction in (0.25, 0.5, 1.0):
            scores = {}
            for t in TASKS:
                m = 1 - A * (400 * fraction) ** -ALPHA if t in trained else BASE[t] + 0.02
                scores[t] = [(m + rng.normal(0, 0.01), m + rng.normal(0, 0.01)) for _ in "ab"]
            rows += arm_rows(
                cocktail, kind, trained, scores, general=general, fraction=fraction, seeds=(0, 1)
            )
    return pd.DataFrame(rows)
