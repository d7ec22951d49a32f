"""Mixture search overhead: what a round costs beyond its trials.

1. The driver's work between rounds (`--surrogate`): fitting the surrogate to n finished
   mixtures and scoring `search.candidates` (4096) candidates to propose a round of 8, for
   the study's 5 tasks plus the general/math shares and the fraction, ridge and gp,
   n = 8, 32, 128. Pure CPU, no Ray.
2. Per round on Ray Tune (`--run`): `raysys search configs/search_tiny.yaml` in fresh
   storage; from its search.json, each round's Tune wall time against the ideal (the sum
   of its trials' times / the trials at a time) and its proposal time.

    .venv/bin/python bench/search.py            # both, ~5 min on 2 cores
    .venv/bin/python bench/search.py --surrogate-only

Writes bench/results/search.json and prints the rows BENCHMARKS.md records.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("causal_detection", "fin_ner", "news_sentiment", "numeric_qa", "price_direction")


def surrogate_overhead(kind: str, n: int, candidates: int = 4096, per_round: int = 8) -> dict:
    from raysys.sweep.mixture import Space, Surrogate, propose, space_filling

    space = Space(TASKS, (0.0, 0.2), (0.0, 0.2), (0.25, 1.0), 0.05)
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(len(TASKS), len(TASKS)))
    seen = []
    for m in space_filling(space, n, seed=1):
        w = np.array([m.weight(t) for t in TASKS])
        seen.append((m, {t: float(np.tanh(truth[i] @ w)) for i, t in enumerate(TASKS)}))
    weights = dict.fromkeys(TASKS, 1 / len(TASKS))
    t0 = time.perf_counter()
    sur = Surrogate.fit(kind, space, seen)
    t1 = time.perf_counter()
    picks = propose(sur, weights, [m for m, _ in seen], per_round, candidates, seed=2)
    t2 = time.perf_counter()
    return {"surrogate": kind, "finished": n, "candidates": candidates, "proposed": len(picks),
            "fit_s": t1 - t0, "propose_s": t2 - t1}  # fmt: skip


def tune_rounds() -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        cmd = [sys.executable, "-m", "raysys.cli", "search", "configs/search_tiny.yaml",
               f"run.storage_path={tmp}", "run.run_id=b1"]  # fmt: skip
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        total = time.perf_counter() - start
        if proc.returncode:
            raise SystemExit(f"search failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        run = Path(tmp) / "search_tiny" / "b1"
        state = json.loads((run / "search.json").read_text())
        meta = json.loads((run / "sweep.json").read_text())
        rounds = []
        for r in state["rounds"]:
            secs = [
                json.loads((run / "trials" / p["trial_id"] / "result.json").read_text())[
                    "trial_seconds"
                ]
                for p in r["trials"]
            ]
            slots = min(meta["concurrency"], len(secs))
            ideal = sum(secs) / slots
            rounds.append({"round": r["name"], "trials": len(secs), "ideal_s": ideal,
                           "tune_s": r["tune_seconds"],
                           "propose_s": r.get("propose_seconds", 0.0)})  # fmt: skip
        return {"command_seconds": total, "rounds": rounds, "concurrency": meta["concurrency"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--surrogate-only", action="store_true")
    args = ap.parse_args()
    out = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
        "surrogate": [surrogate_overhead(k, n) for k in ("ridge", "gp") for n in (8, 32, 128)],
    }
    print("| surrogate | finished mixtures | fit s | score 4096 candidates + pick 8, s |")
    print("| --- | ---: | ---: | ---: |")
    for r in out["surrogate"]:
        print(f"| {r['surrogate']} | {r['finished']} | {r['fit_s']:.2f} | {r['propose_s']:.2f} |")
    if not args.surrogate_only:
        out["tune"] = tune_rounds()
        print("\n| round | trials | Tune wall s | ideal s | Tune / ideal | propose s |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for r in out["tune"]["rounds"]:
            print(f"| {r['round']} | {r['trials']} | {r['tune_s']:.0f} | {r['ideal_s']:.0f} | "
                  f"{r['tune_s'] / r['ideal_s']:.2f}x | {r['propose_s']:.2f} |")  # fmt: skip
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "search.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
