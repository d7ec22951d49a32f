"""Sweep overhead: Tune wall time vs the ideal (sum of trial times / concurrency), the data
cache, and where a trial's time goes (Train start-up, training, validation scoring).

Runs `raysys sweep CONFIG` as a user would, in fresh storage, with 2 trials at a time and
then 1 at a time (same grid, data now cached), and reads each sweep's own figures
(`sweep.json`, `results.parquet`, each trial's stage files). Writes
bench/results/sweep_overhead-<config>.json and a row in BENCHMARKS.md.

    .venv/bin/python bench/sweep_overhead.py                     # tiny model, ~5 min
    .venv/bin/python bench/sweep_overhead.py --config configs/sweep_embedded.yaml
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from train_overhead import _insert_row  # noqa: E402


def run_sweep(config: str, storage: Path, run_id: str, *overrides: str) -> dict:
    cmd = [sys.executable, "-m", "raysys.cli", "sweep", config]
    cmd += [f"run.storage_path={storage}", f"run.run_id={run_id}", *overrides]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    total = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"sweep failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    sweep_dir = next(storage.glob(f"*/{run_id}"))
    meta = json.loads((sweep_dir / "sweep.json").read_text())
    return {"command_seconds": total, **meta, **trial_breakdown(sweep_dir)}


def trial_breakdown(sweep_dir: Path) -> dict:
    """Median per trial: whole trial, Train fit wall (start-up + loop), HF training loop,
    validation scoring; start-up = fit wall - loop."""
    parts: dict[str, list[float]] = {"trial": [], "fit": [], "loop": [], "validation": []}
    for trial in (sweep_dir / "trials").iterdir():
        result = json.loads((trial / "result.json").read_text())
        final = json.loads((trial / "train" / "metrics.json").read_text())["final"]
        val = json.loads((trial / "eval_validation" / "stage.json").read_text())
        parts["trial"].append(result["trial_seconds"])
        parts["fit"].append(final["wall_seconds"])
        parts["loop"].append(final["train_runtime"])
        parts["validation"].append(val["seconds"])
    med = {f"median_{k}_seconds": statistics.median(v) for k, v in parts.items()}
    med["median_train_startup_seconds"] = statistics.median(
        f - lp for f, lp in zip(parts["fit"], parts["loop"], strict=True)
    )
    rows = pd.read_parquet(sweep_dir / "results.parquet")
    med["results_rows"] = len(rows)
    return med


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/sweep_tiny.yaml")
    args = p.parse_args()
    storage = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    arms = {
        "concurrent_2_fresh_data": run_sweep(args.config, storage, "c2"),
        "concurrent_1_cached_data": run_sweep(
            args.config, storage, "c1", "sweep.max_concurrent_trials=1"
        ),
    }
    two, one = arms["concurrent_2_fresh_data"], arms["concurrent_1_cached_data"]
    ratios = {
        "wall_vs_ideal_2": two["wall_vs_ideal"],
        "wall_vs_ideal_1": one["wall_vs_ideal"],
        "wall_2_vs_wall_1": two["tune_wall_seconds"] / one["tune_wall_seconds"],
    }
    for name, arm in arms.items():
        print(
            f"{name}: Tune {arm['tune_wall_seconds']:.0f}s, ideal {arm['ideal_seconds']:.0f}s "
            f"({arm['wall_vs_ideal']:.2f}x); datasets {arm['datasets']} built "
            f"{arm['data_built']} cached {arm['data_cached']}; "
            f"median trial {arm['median_trial_seconds']:.1f}s "
            f"(Train start-up {arm['median_train_startup_seconds']:.1f}s, loop "
            f"{arm['median_loop_seconds']:.1f}s, "
            f"validation {arm['median_validation_seconds']:.1f}s)"
        )
    print(f"2 at a time vs 1 at a time: {ratios['wall_2_vs_wall_1']:.2f}x the Tune wall time")
    record(args, arms, ratios)


def record(args: argparse.Namespace, arms: dict, ratios: dict) -> None:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    machine = f"{platform.machine()} {os.cpu_count()} cores"
    name = Path(args.config).stem
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    result = {"bench": "sweep_overhead", "date": stamp, "config": args.config, "machine": machine}
    (out / f"sweep_overhead-{name}.json").write_text(
        json.dumps({**result, "ratios": ratios, "arms": arms}, indent=2, default=str)
    )
    two, one = arms["concurrent_2_fresh_data"], arms["concurrent_1_cached_data"]
    line = (
        f"| {stamp} | `python bench/sweep_overhead.py --config {args.config}` | {machine} | "
        f"{two['trials']} trials; 2 at a time: wall/ideal **{ratios['wall_vs_ideal_2']:.2f}x** "
        f"({two['tune_wall_seconds']:.0f}s), datasets built {two['data_built']}/"
        f"{two['datasets']}; 1 at a time: wall/ideal {ratios['wall_vs_ideal_1']:.2f}x "
        f"({one['tune_wall_seconds']:.0f}s), datasets cached {one['data_cached']}/"
        f"{one['datasets']}; 2 vs 1 at a time: {ratios['wall_2_vs_wall_1']:.2f}x wall; "
        f"median trial {two['median_trial_seconds']:.0f}s = Train start-up "
        f"{two['median_train_startup_seconds']:.0f}s + loop {two['median_loop_seconds']:.0f}s + "
        f"validation {two['median_validation_seconds']:.0f}s + rest |\n"
    )
    _insert_row(ROOT / "BENCHMARKS.md", "## Sweep overhead", line)


if __name__ == "__main__":
    main()
