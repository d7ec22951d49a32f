"""Scale, measured: grid planning, Ray Tune with hundreds of short trials, the report over
big results tables, and a study's wall time from the measured parts of a trial.

Four parts, one command each; each writes bench/results/scale-<part>.json and rewrites its
own table in the "## Scale" section of BENCHMARKS.md (between `<!-- scale:<part> -->`
marks). Times on a shared 2-core machine are context; the ratios are the figures.

    .venv/bin/python bench/scale.py plan [--timings RUN_DIR]   # 132-10,032 trials, ~1 min
    .venv/bin/python bench/scale.py tune       # 25-200 one-second trials, 3 arms x 2, ~40 min
    .venv/bin/python bench/scale.py report [--baseline REF]  # 1,000-100,000 rows, ~3 (6) min
    .venv/bin/python bench/scale.py estimate --run configs/sweep_tiny.yaml   # ~3 min
    .venv/bin/python bench/scale.py estimate --run "configs/sweep_embedded.yaml \
        sweep.cocktails=[singletons] sweep.fractions=[0.25,1.0]"   # SmolLM2, ~20 min
    .venv/bin/python bench/scale.py estimate --timings RUN_DIR   # an earlier sweep's files

None belongs in `make bench` (bench/suite.py): together they take about an hour.

- plan: `raysys sweep configs/sweep.yaml --dry-run` with more seeds / learning rates, as a
  user runs it (wall, peak RSS, lines printed), and in one process what the driver holds
  for the grid (expand_grid + Tune's param space + grid.json: seconds, traced MiB, bytes).
- tune: Tune wall vs the ideal (trials x trial length / concurrency) as the trial count
  grows, three arms in fresh processes: Ray's own release-test trainable (`function_
  trainable`, `reuse_actors=True`, as in its 10,000-trial bookkeeping test), the same with
  a new actor per trial (Tune's default), and raysys's sweep machinery (`sweep.tune.
  run_tune`: its grid, param space, callbacks, snapshots and trial resources) with the
  trial body replaced by a sleep. Also the driver's RSS and Tune's experiment-state size.
- report: synthetic results tables in the sweep's schema (8 tasks; 125, 220 and 12,500
  trials: 1,000, 1,760 and 100,000 rows), with test predictions where it fits in memory;
  `raysys report DIR` timed as a user runs it, and what the report holds (table rows,
  plotted arms, the "not shown" notes).
- estimate: the parts of one trial as an earlier sweep measured them (`raysys.sweep.
  estimate.read_timings`, the code behind `raysys sweep --dry-run --timings`), the model
  load timed apart, and the cocktail study's grid at 220 trials (configs/sweep.yaml with 5
  fractions) on N slots of that hardware.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
BENCHMARKS = ROOT / "BENCHMARKS.md"
SECTION = "## Scale"

# configs/sweep.yaml is 132 trials (11 cocktails x 2 general x 2 math x 3 fractions).
PLAN_SIZES = {
    "132": [],
    "1,056": ["sweep.seeds=[0,1,2,3,4,5,6,7]"],
    "10,032": [
        f"sweep.seeds=[{','.join(map(str, range(19)))}]",
        "sweep.learning_rates=[2.0e-5,5.0e-5,1.0e-4,2.0e-4]",
    ],
}
STUDY_220 = ["sweep.fractions=[0.0625,0.125,0.25,0.5,1.0]"]  # 11 x 4 x 5 = 220 trials
REPORT_SIZES = [(125, 100), (220, 100), (12_500, 20)]  # (trials, test rows per task)
N_TASKS = 8


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="part", required=True)
    plan_p = sub.add_parser("plan")
    plan_p.add_argument("--timings", help="an earlier sweep: also time --dry-run --timings")
    tune = sub.add_parser("tune")
    tune.add_argument("--counts", default="25,50,100,200")
    tune.add_argument("--trial-seconds", type=float, default=1.0)
    tune.add_argument("--cpus", type=float, default=0.25, help="CPUs per trial")
    tune.add_argument("--arms", default="ray_release,ray_fresh_actors,raysys_tune")
    tune.add_argument("--repeats", type=int, default=2, help="interleaved; the fastest counts")
    rep = sub.add_parser("report")
    rep.add_argument("--repeats", type=int, default=2, help="interleaved; the fastest counts")
    rep.add_argument("--baseline", help="a git ref whose raysys runs beside this one")
    est = sub.add_parser("estimate")
    est.add_argument("--timings", action="append", default=[], help="an earlier sweep's dir")
    est.add_argument("--run", action="append", default=[], help="run this sweep config first")
    one = sub.add_parser("_tune_one")  # internal: one Tune run in a fresh process
    one.add_argument("arm")
    one.add_argument("count", type=int)
    one.add_argument("trial_seconds", type=float)
    one.add_argument("cpus", type=float)
    args = ap.parse_args()
    if args.part == "_tune_one":
        result = tune_one(args.arm, args.count, args.trial_seconds, args.cpus)
        print("\nRESULT " + json.dumps(result))  # after whatever Tune and the bar printed
        return
    {"plan": plan, "tune": tune_part, "report": report, "estimate": estimate}[args.part](args)


# --------------------------------------------------------------------------- helpers


def run_child(cmd: list[str], cwd: Path = ROOT, **kw: Any) -> dict[str, Any]:
    """Run `cmd`; its wall time, peak RSS (its own, from wait4) and output."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err, text=True, **kw)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd[:6])} failed ({proc.returncode}):\n{stderr[-3000:]}")
    return {"wall_s": wall, "peak_rss_mib": usage.ru_maxrss / 1024, "stdout": stdout}


def machine() -> str:
    load = os.getloadavg()[0]
    return f"{platform.machine()} {os.cpu_count()} cores, load {load:.1f} at start"


def today() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")


def save(part: str, data: dict[str, Any], table: str, command: str) -> None:
    """bench/results/scale-<part>.json and the part's block in BENCHMARKS.md."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"bench": f"scale-{part}", "date": today(), "command": command}
    path = RESULTS / f"scale-{part}.json"
    path.write_text(json.dumps({**meta, **data}, indent=2, default=str) + "\n")
    block = f"<!-- scale:{part} -->\n`{command}` — {today()}, {data['machine']}:\n\n{table}\n"
    block += f"<!-- /scale:{part} -->"
    text = BENCHMARKS.read_text()
    begin, end = f"<!-- scale:{part} -->", f"<!-- /scale:{part} -->"
    if begin in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    elif SECTION in text:
        text = text.replace(f"{SECTION}\n", f"{SECTION}\n\n{block}\n", 1)
    else:
        text = text.rstrip("\n") + f"\n\n{SECTION}\n\n{block}\n"
    BENCHMARKS.write_text(text)
    print(f"wrote {path.relative_to(ROOT)} and its table in BENCHMARKS.md\n\n{table}")


def md(rows: list[list[str]], head: list[str]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


# --------------------------------------------------------------------------- plan


def plan(args: argparse.Namespace) -> None:
    storage = Path(tempfile.mkdtemp(prefix="bench-plan-"))
    out: dict[str, Any] = {"machine": machine(), "sizes": {}}
    for label, overrides in PLAN_SIZES.items():
        cmd = [sys.executable, "-m", "raysys.cli", "sweep", "configs/sweep.yaml", "--dry-run"]
        cli = [run_child([*cmd, f"run.storage_path={storage}", *overrides]) for _ in range(3)]
        inner = run_child([sys.executable, "-c", _PLAN_CODE, json.dumps(overrides)])
        size = json.loads(inner["stdout"].splitlines()[-1])
        if args.timings:
            timed = [*cmd, f"run.storage_path={storage}", *overrides, *_same_model(args.timings)]
            runs = [run_child([*timed, "--timings", args.timings]) for _ in range(3)]
            size["cli_timings_wall_s"] = statistics.median(r["wall_s"] for r in runs)
        size |= {
            "overrides": overrides,
            "cli_wall_s": statistics.median(c["wall_s"] for c in cli),
            "cli_peak_rss_mib": statistics.median(c["peak_rss_mib"] for c in cli),
            "cli_lines": len(cli[0]["stdout"].splitlines()),
        }
        out["sizes"][label] = size
        print(label, {k: v for k, v in size.items() if k != "overrides"})
    shutil.rmtree(storage, ignore_errors=True)
    base = out["sizes"]["132"]
    timed = "cli_timings_wall_s" in base
    rows = [
        [
            f"{s['trials']:,}",
            f"{s['cli_wall_s']:.1f} s ({s['cli_wall_s'] / base['cli_wall_s']:.2f}x)",
            *([f"{s['cli_timings_wall_s']:.1f} s"] if timed else []),
            f"{s['cli_peak_rss_mib']:.0f} MiB",
            f"{s['cli_lines']:,}",
            f"{s['expand_s'] * 1000:.0f} ms",
            f"{s['traced_mib']:.1f} MiB",
            f"{s['grid_json_bytes'] / 2**20:.2f} MiB",
        ]
        for s in out["sizes"].values()
    ]
    head = ["trials", "`--dry-run` wall (vs 132)"]
    head += ["with `--timings`"] if timed else []
    head += ["its peak RSS", "lines printed"]
    head += ["grid + param space + grid.json, in-process", "their memory", "grid.json"]
    overrides = "; ".join(" ".join(v) or "none" for v in PLAN_SIZES.values())
    table = md(rows, head) + (
        "\n\n`--dry-run` is the CLI as a user runs it (median of 3, interpreter start-up and "
        "imports included); the driver columns are `expand_grid` + `Trial.params()` for Tune's "
        f"`grid_search` + grid.json, in one process. Overrides: {overrides}."
    )
    command = "python bench/scale.py plan" + (f" --timings {args.timings}" if timed else "")
    save("plan", out, table, command)


def _same_model(location: str) -> list[str]:
    """Overrides that give configs/sweep.yaml the model of an earlier sweep's timings."""
    from raysys.sweep.estimate import read_timings

    t = read_timings(location)
    gpu = str(t.use_gpu).lower()
    return [f"model.source={t.model}", f"model.dtype={t.dtype}", f"train.use_gpu={gpu}"]


_PLAN_CODE = """
import json, sys, time, tracemalloc
from raysys.config import SweepConfig, load_config
from raysys.sweep.grid import expand_grid
cfg = load_config(SweepConfig, "configs/sweep.yaml", json.loads(sys.argv[1]))
def grid():
    trials = expand_grid(cfg)
    space = [t.params() for t in trials]
    return trials, space, json.dumps(space)
start = time.perf_counter()
trials, _, blob = grid()
seconds = time.perf_counter() - start  # cold: lazy imports included, as in the driver
del trials, blob
tracemalloc.start()  # a second pass for its memory (tracemalloc slows it several-fold)
kept = grid()
_, peak = tracemalloc.get_traced_memory()
print(json.dumps({"trials": len(kept[0]), "expand_s": seconds, "traced_mib": peak / 2**20,
                  "grid_json_bytes": len(kept[2])}))
"""


# --------------------------------------------------------------------------- tune


def tune_part(args: argparse.Namespace) -> None:
    counts = [int(c) for c in args.counts.split(",")]
    arms = args.arms.split(",")
    out: dict[str, Any] = {"machine": machine(), "trial_seconds": args.trial_seconds}
    out |= {"cpus_per_trial": args.cpus, "counts": counts, "repeats": args.repeats, "runs": []}
    for _, count, arm in itertools.product(range(args.repeats), counts, arms):  # interleaved
        cmd = [sys.executable, str(Path(__file__)), "_tune_one", arm, str(count)]
        child = run_child([*cmd, str(args.trial_seconds), str(args.cpus)])
        line = next(ln for ln in child["stdout"].splitlines() if ln.startswith("RESULT "))
        run = json.loads(line.removeprefix("RESULT "))
        run["process_peak_rss_mib"] = child["peak_rss_mib"]
        out["runs"].append(run)
        ratio = f"{run['tune_wall_s']:.1f}s / ideal {run['ideal_s']:.1f}s"
        print(f"{arm} {count}: {ratio} = {run['wall_vs_ideal']:.2f}x", flush=True)
    save("tune", out, tune_table(out, arms, counts), tune_command(args))


def tune_command(args: argparse.Namespace) -> str:
    cmd = "python bench/scale.py tune"
    if args.counts != "25,50,100,200":
        cmd += f" --counts {args.counts}"
    if args.trial_seconds != 1.0:
        cmd += f" --trial-seconds {args.trial_seconds:g}"
    if args.cpus != 0.25:
        cmd += f" --cpus {args.cpus:g}"
    if args.repeats != 2:
        cmd += f" --repeats {args.repeats}"
    return cmd


def tune_table(out: dict[str, Any], arms: list[str], counts: list[int]) -> str:
    by: dict[tuple[str, int], dict[str, Any]] = {}
    for r in out["runs"]:  # the fastest repeat: others' jobs only ever add time here
        key = (r["arm"], r["count"])
        if key not in by or r["tune_wall_s"] < by[key]["tune_wall_s"]:
            by[key] = r
    head = ["trials", *[f"{a}: wall/ideal (overhead per trial)" for a in arms]]
    rows = []
    for n in counts:
        cells = []
        for a in arms:
            r = by[(a, n)]
            cells.append(f"{r['wall_vs_ideal']:.2f}x ({r['overhead_per_trial_s']:.2f} s)")
        rows.append([f"{n} ({by[(arms[0], n)]['ideal_s']:.1f} s ideal)", *cells])
    mem = "; ".join(
        f"{a}: {by[(a, counts[0])]['driver_rss_mib']:.0f} → "
        f"{by[(a, counts[-1])]['driver_rss_mib']:.0f} MiB"
        for a in arms
    )
    state = by.get(("raysys_tune", counts[-1]), {}).get("state_bytes")
    conc = int(round(2 / out["cpus_per_trial"]))
    note = (
        f"\n\nEach trial: {out['trial_seconds']:g} s, {out['cpus_per_trial']:g} CPU (raysys: "
        f"no CPU, `sweep.max_concurrent_trials={conc}`), {conc} at a time on 2 CPUs; ideal = "
        f"trials x {out['trial_seconds']:g} s / {conc}; overhead per trial = (wall - ideal) x "
        f"{conc} / trials, in slot-seconds; the fastest of {out['repeats']} interleaved "
        f"repeats. Driver RSS from {counts[0]} to {counts[-1]} trials: "
        f"{mem}."
    )
    if state:
        note += f" Tune's experiment state at {counts[-1]} raysys trials: {state / 1024:.0f} KiB."
    loads = [r["load_after"] for r in out["runs"]]
    note += f" Load average after each run: {min(loads):.1f}-{max(loads):.1f}."
    return md(rows, head) + note


def tune_one(arm: str, count: int, trial_s: float, cpus: float) -> dict[str, Any]:
    """One Tune run on a fresh local Ray with 2 CPUs; its wall time vs the ideal."""
    import psutil
    import ray

    temp = tempfile.mkdtemp(prefix="rs-", dir="/tmp")
    storage = Path(tempfile.mkdtemp(prefix="bench-tune-"))
    ray.init(address="local", num_cpus=2, _temp_dir=temp, include_dashboard=False,
             log_to_driver=False, logging_level="WARNING")  # fmt: skip
    concurrency = int(round(2 / cpus))
    try:
        start = time.perf_counter()
        if arm == "raysys_tune":
            _raysys_tune(storage, count, trial_s, concurrency)
        else:
            _ray_release(storage, arm, count, trial_s, cpus)
        wall = time.perf_counter() - start
        rss = psutil.Process().memory_info().rss / 2**20
        states = list(storage.rglob("experiment_state-*.json"))
        state_bytes = max((p.stat().st_size for p in states), default=0)
    finally:
        ray.shutdown()
        shutil.rmtree(storage, ignore_errors=True)
        shutil.rmtree(temp, ignore_errors=True)
    ideal = count * trial_s / concurrency
    return {
        "arm": arm,
        "count": count,
        "concurrency": concurrency,
        "tune_wall_s": wall,
        "ideal_s": ideal,
        "wall_vs_ideal": wall / ideal,
        "overhead_per_trial_s": (wall - ideal) * concurrency / count,
        "driver_rss_mib": rss,
        "state_bytes": state_bytes,
        "load_after": os.getloadavg()[0],  # others share the machine: a run to discount
    }


def _ray_release(storage: Path, arm: str, count: int, trial_s: float, cpus: float) -> None:
    """Ray's bookkeeping-overhead release test (`timed_tune_run`), on `count` trials."""
    from ray import tune
    from ray.tune.utils.release_test_util import function_trainable

    os.environ["TUNE_GLOBAL_CHECKPOINT_S"] = "100"  # as the release test sets it
    config = {
        "score": tune.uniform(0.0, 1.0),
        "num_iters": int(trial_s),
        "sleep_time": 1.0,
        "checkpoint_iters": -1,
        "checkpoint_size_b": 0,
        "checkpoint_num_files": 1,
    }
    tuner = tune.Tuner(
        tune.with_resources(function_trainable, {"cpu": cpus}),
        param_space=config,
        tune_config=tune.TuneConfig(num_samples=count, reuse_actors=arm == "ray_release"),
        run_config=tune.RunConfig(name=arm, storage_path=str(storage), verbose=0),
    )
    tuner.fit()


def _raysys_tune(storage: Path, count: int, trial_s: float, concurrency: int) -> None:
    """raysys's `run_tune` on a tiny-sweep grid of `count` trials whose body sleeps."""
    from raysys import console
    from raysys.config import SweepConfig, load_config
    from raysys.sweep import tune as sweep_tune
    from raysys.sweep.driver import Grid
    from raysys.sweep.grid import Plan, expand_grid

    seeds = ",".join(map(str, range(-(-count // 4))))  # the tiny grid: 4 trials per seed
    overrides = [f"run.storage_path={storage}", "run.run_id=b", f"sweep.seeds=[{seeds}]"]
    overrides.append(f"sweep.max_concurrent_trials={concurrency}")
    cfg = load_config(SweepConfig, ROOT / "configs" / "sweep_tiny.yaml", overrides)
    trials = expand_grid(cfg)[:count]
    sweep_dir = storage / cfg.run.name / "b"
    sweep_dir.mkdir(parents=True)
    plan = Plan(concurrency, {}, {"CPU": 2.0}, "bench")
    data = {t.trial_id: {"rows": 16} for t in trials}
    grid = Grid(cfg, trials, sweep_dir, "unused", sweep_dir / "tasks", data, {}, plan, [])
    sweep_tune.sweep_trial = _sleeping_trial(trial_s)  # the only part replaced
    console.setup()  # quiet, as `raysys sweep` runs: its bar, not Tune's table
    try:
        sweep_tune.run_tune(grid, resume=False, retry_errored=False)
    finally:
        console.restore()


def _sleeping_trial(seconds: float) -> Any:
    def trial(config: dict[str, Any], ctx: dict[str, Any]) -> None:
        from ray import tune

        time.sleep(seconds)
        tune.report({"val_main_mean": 0.0, "trial_seconds": seconds})

    return trial


# --------------------------------------------------------------------------- report


def synthetic_sweep(
    n_trials: int, n_test: int, n_tasks: int = N_TASKS, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """A results table in the sweep's schema ((trials + base) x tasks rows) and its test
    predictions (`n_test` rows per task, 3 labels): cocktails are the tasks' subsets
    (singletons first) x general 0/0.1 x fractions 0.25/0.5/1 x as many seeds as needed;
    a task trained on scores on a power law of its rows, the others near the base."""
    rng = np.random.default_rng(seed)
    tasks = [f"task{i}" for i in range(n_tasks)]
    base = dict(zip(tasks, rng.uniform(0.2, 0.4, n_tasks), strict=True))
    per_seed = (2**n_tasks - 1) * 6
    seeds = range(max(1, -(-n_trials // per_seed)))
    subsets = itertools.chain.from_iterable(
        itertools.combinations(tasks, k) for k in range(1, n_tasks + 1)
    )
    grid = itertools.islice(
        itertools.product(subsets, seeds, (0.0, 0.1), (0.25, 0.5, 1.0)), n_trials
    )
    rows = [_row("base", (), "base", 0.0, np.nan, 0, t, np.nan, base[t]) for t in tasks]
    for combo, s, g, f in sorted(grid, key=lambda x: (len(x[0]), x[0], x[2], x[3], x[1])):
        name = "+".join(combo)
        kind = {1: "singleton", n_tasks: "all"}.get(len(combo), "explicit")
        tid = f"{name}-g{g:g}-f{f:g}-s{s}"
        for t in tasks:
            m = base[t] + (0.55 - 0.9 * (400 * f) ** -0.28 if t in combo else 0.02) + g / 20
            val, test = np.clip(m + rng.normal(0, 0.02, 2), 0, 1)
            rows.append(_row(tid, combo, kind, g, f, s, t, val, test))
    results = pd.DataFrame(rows)
    return results, (_predictions(results, n_test, rng) if n_test else None)


def _row(tid, combo, kind, g, f, s, task, val, test) -> dict[str, Any]:
    d = 0 if not f == f else round(400 * f)  # NaN fraction: the base model
    return {
        "trial_id": tid, "cocktail": "+".join(combo) or "base", "cocktail_kind": kind,
        "cocktail_tasks": ",".join(combo), "general": g, "math": 0.0, "fraction": f,
        "seed": s, "learning_rate": 2e-4, "lora_r": 16.0, "train_rows": d * len(combo),
        "task_train_rows": d if task in combo else 0, "train_tokens": 3e4 * len(combo),
        "train_seconds": 60.0, "tokens_per_s": 500.0, "final_loss": 0.8, "trial_seconds": 90.0,
        "task": task, "task_kind": "classification", "main_metric": "macro_f1",
        "val_main": val, "val_missing_rate": 0.0, "test_main": test, "test_missing_rate": 0.0,
        "test_overlength_ratio": 0.0,
    }  # fmt: skip


def _predictions(results: pd.DataFrame, n_test: int, rng: np.random.Generator) -> pd.DataFrame:
    """Each (model, task): `n_test` rows, right with the row's test score, else a random label."""
    labels = np.array(["negative", "neutral", "positive"])
    pairs = results[["trial_id", "task", "test_main"]].to_numpy()
    golds = {t: rng.integers(0, 3, n_test) for t in results["task"].unique()}  # per task
    gold_idx = np.stack([golds[t] for t in pairs[:, 1]])
    right = rng.random((len(pairs), n_test)) < pairs[:, 2:3].astype(float)
    pred_idx = np.where(right, gold_idx, rng.integers(0, 3, size=gold_idx.shape))
    ids = np.array([f"r{i}" for i in range(n_test)])
    return pd.DataFrame(
        {
            "adapter": np.repeat(pairs[:, 0], n_test),
            "task": np.repeat(pairs[:, 1], n_test),
            "id": np.tile(ids, len(pairs)),
            "input": "text",
            "gold": labels[gold_idx.ravel()],
            "generated_text": "",
            "pred": labels[pred_idx.ravel()],
        }
    )


def report(args: argparse.Namespace) -> None:
    code = {"this": ROOT}
    if args.baseline:  # that commit's raysys, exported beside this one (no worktree)
        code["baseline"] = _export(args.baseline)
    out: dict[str, Any] = {"machine": machine(), "baseline": args.baseline, "runs": []}
    for n_trials, n_test in REPORT_SIZES:
        for tests in (0, n_test):
            where = _synthetic_dir(n_trials, tests)
            for _, (arm, src) in itertools.product(range(args.repeats), code.items()):
                run = {"arm": arm, **_time_report(where, src)}
                out["runs"].append(run)
                print({k: v for k, v in run.items() if k != "notes"}, flush=True)
            shutil.rmtree(where, ignore_errors=True)
    if "baseline" in code:
        shutil.rmtree(code["baseline"], ignore_errors=True)
    command = "python bench/scale.py report" + (
        f" --baseline {args.baseline}" if args.baseline else ""
    )
    save("report", out, report_table(out, list(code)), command)


def report_table(out: dict[str, Any], arms: list[str]) -> str:
    best: dict[tuple, dict[str, Any]] = {}
    for r in out["runs"]:  # the fastest repeat
        key = (r["arm"], r["rows"], r["prediction_rows"])
        if key not in best or r["wall_s"] < best[key]["wall_s"]:
            best[key] = r
    rows = []
    for (arm, n, preds), s in best.items():
        if arm != "this":
            continue
        cells = [f"{n:,} ({s['trials']:,} trials)", f"{preds:,}" if preds else "none"]
        cells.append(f"{s['wall_s']:.1f} s")
        if "baseline" in arms:
            before = best[("baseline", n, preds)]
            cells.append(f"{before['wall_s']:.1f} s ({s['wall_s'] / before['wall_s']:.2f}x)")
        cells += [f"{s['peak_rss_mib']:.0f} MiB", f"{s['trial_rows_shown']:,}"]
        cells += [f"{s['scaling_rows_shown']:,}", f"{s['report_md_kib']:.0f} / "
                  f"{s['report_html_kib']:.0f} KiB", "; ".join(s["notes"]) or "none"]  # fmt: skip
        rows.append(cells)
    head = ["results rows", "test predictions", "`raysys report` wall"]
    head += [f"before ({out['baseline']}; this / before)"] if "baseline" in arms else []
    head += ["peak RSS", "trials listed", "scaling fits listed", "report.md / .html"]
    head += ["notes in the report"]
    reps = len([r for r in out["runs"] if r["arm"] == "this"]) // max(len(rows), 1)
    return md(rows, head) + (
        f"\n\nSynthetic sweeps in the runner's schema, {N_TASKS} tasks (cocktails = task "
        "subsets x general 0/0.1 x fractions 0.25/0.5/1 x seeds); predictions: 100 test rows "
        "per task (20 at 12,500 trials). Wall: the CLI as a user runs it (interpreter "
        f"start-up and imports included), the fastest of {reps} interleaved runs."
    )


def _export(ref: str) -> Path:
    """`ref`'s raysys package in a temp folder (`git archive`): the code before a change."""
    where = Path(tempfile.mkdtemp(prefix="bench-baseline-"))
    archive = subprocess.run(
        ["git", "archive", ref, "raysys"], cwd=ROOT, capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive.stdout, check=True)
    return where


def _synthetic_dir(n_trials: int, n_test: int) -> Path:
    results, preds = synthetic_sweep(n_trials, n_test)
    where = Path(tempfile.mkdtemp(prefix="bench-report-"))
    results.to_parquet(where / "results.parquet", index=False)
    if preds is not None:
        preds.to_parquet(where / "test_predictions.parquet", index=False)
    (where / "sweep.json").write_text(json.dumps({"trials": n_trials, "synthetic": True}))
    return where


def _time_report(where: Path, code: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(code)}  # run from there: `-m` puts the cwd first
    run = run_child([sys.executable, "-m", "raysys.cli", "report", str(where)], code, env=env)
    text = (where / "report.md").read_text()
    results = pd.read_parquet(where / "results.parquet", columns=["trial_id"])
    preds = where / "test_predictions.parquet"
    return {
        "trials": results["trial_id"].nunique() - 1,
        "rows": len(results),
        "prediction_rows": len(pd.read_parquet(preds, columns=["id"])) if preds.exists() else 0,
        "wall_s": run["wall_s"],
        "peak_rss_mib": run["peak_rss_mib"],
        "trial_rows_shown": _table_rows(text, "Trials"),
        "scaling_rows_shown": _table_rows(text, "Scaling law"),
        "report_md_kib": (where / "report.md").stat().st_size / 1024,
        "report_html_kib": (where / "report.html").stat().st_size / 1024,
        "notes": [ln.split(":")[0] for ln in text.splitlines() if " not shown: " in ln],
    }


def _table_rows(text: str, heading: str) -> int:
    """Body rows of the tables in a report.md section."""
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    rules = sum(set(ln) <= set("|-: ") for ln in lines)  # one per table, under its header
    return len(lines) - 2 * rules


# --------------------------------------------------------------------------- estimate


def estimate(args: argparse.Namespace) -> None:
    sources = list(args.timings)
    storage = Path(tempfile.mkdtemp(prefix="bench-estimate-"))  # kept: --timings for plan
    for i, config in enumerate(args.run):  # "CONFIG a.b=c ...": a sweep as a user runs it
        cmd = [sys.executable, "-m", "raysys.cli", "sweep", *shlex.split(config)]
        run_child([*cmd, f"run.storage_path={storage}", f"run.run_id=e{i}"])
        sources.append(str(next(storage.glob(f"*/e{i}"))))
        print(f"timed sweep: {sources[-1]}", flush=True)
    if not sources:
        raise SystemExit("estimate: pass --timings RUN_DIR or --run CONFIG")
    out: dict[str, Any] = {"machine": machine(), "runs": []}
    for source in sources:
        out["runs"].append(_estimate_one(source))
    save("estimate", out, estimate_table(out), estimate_command(args))


def estimate_command(args: argparse.Namespace) -> str:
    parts = [f"--run {shlex.quote(c)}" for c in args.run]
    parts += [f"--timings {t}" for t in args.timings]
    return "python bench/scale.py estimate " + " ".join(parts)


def _estimate_one(source: str) -> dict[str, Any]:
    from raysys.config import SweepConfig, load_config
    from raysys.sweep.estimate import estimate as estimated
    from raysys.sweep.estimate import read_timings
    from raysys.sweep.grid import Plan, expand_grid

    t = read_timings(source)
    overrides = [f"model.source={t.model}", f"model.dtype={t.dtype}"]
    overrides += [f"train.use_gpu={str(t.use_gpu).lower()}", *STUDY_220]
    cfg = load_config(SweepConfig, ROOT / "configs" / "sweep.yaml", overrides)
    trials = expand_grid(cfg)
    slots = cfg.sweep.max_concurrent_trials or 16
    e = estimated(cfg, trials, Plan(slots, {}, {}, "sweep.max_concurrent_trials"), t)
    parts = {
        "startup_s": t.startup_s,
        "model_load_s": _model_load_seconds(t.model, t.dtype),
        "row_s": t.row_s,
        "engine_start_s": t.engine_start_s,
        "generation_s": t.generation_s,
        "rest_s": t.rest_s,
        "setup_s": t.setup_s,
        "tune_overhead": t.tune_overhead,
        "trials_measured": t.trials,
        "eval_method": t.eval_method,
    }
    costs = e.trials
    return {
        "source": source,
        "model": t.model,
        "dtype": t.dtype,
        "device": "GPU" if t.use_gpu else "CPU",
        "parts": parts,
        "study": {
            "trials": len(costs),
            "steps": [min(c.steps for c in costs), max(c.steps for c in costs)],
            "trial_seconds": {
                k: sum(getattr(c, k) for c in costs)
                for k in ("startup_s", "train_s", "validation_s", "rest_s")
            },
            "walls": e.walls,
            "planned": e.planned,
            "replicas": e.replicas,
            "tests": e.tests,
            "test_generations": e.test_generations,
            "differs": e.differs,
        },
    }


def _model_load_seconds(model: str, dtype: str) -> float:
    """`from_pretrained` of the resolved model in a fresh process (median of 3): the part
    of a trial's start-up the model load is."""
    code = (
        "import sys, time, torch\nfrom transformers import AutoModelForCausalLM\n"
        "from raysys.models import resolve_model\np = resolve_model(sys.argv[1])\n"
        "t = time.perf_counter()\n"
        "AutoModelForCausalLM.from_pretrained(p, dtype=getattr(torch, sys.argv[2]))\n"
        "print(time.perf_counter() - t)"
    )
    runs = [run_child([sys.executable, "-c", code, model, dtype]) for _ in range(3)]
    return statistics.median(float(r["stdout"].split()[-1]) for r in runs)


def estimate_table(out: dict[str, Any]) -> str:
    from raysys.sweep.estimate import duration as _dur

    blocks = []
    for r in out["runs"]:
        p, s = r["parts"], r["study"]
        split = md(
            [
                ["Ray Train start-up (controller, worker group, model load, checkpoints)",
                 f"{_dur(p['startup_s'])} (model load alone: {p['model_load_s']:.1f} s)"],
                ["training", f"{p['row_s']:.3g} s per training row"],
                ["evaluation", f"engine start-up {_dur(p['engine_start_s'])} + "
                 f"{p['generation_s']:.3g} s per generated row (from {p['eval_method']})"],
                ["rest of a trial", f"{_dur(p['rest_s'])}, of which {_dur(p['setup_s'])} in "
                 "the training stage outside Ray Train's fit (imports, data preflight, "
                 "adapter copy)"],
                ["Tune wall / ideal in that sweep", f"{p['tune_overhead']:.2f}x"],
            ],
            ["one trial of " + f"{r['model']} ({r['dtype']}, {r['device']})", "measured"],
        )  # fmt: skip
        total = sum(s["trial_seconds"].values())
        shares = ", ".join(
            f"{k.removesuffix('_s').replace('train', 'training')} {v / total:.0%}"
            for k, v in s["trial_seconds"].items()
        )
        walls = md(
            [
                [
                    f"{n}{'*' if n == s['planned'] else ''}",
                    _dur(w),
                    _dur(s["tests"][n]),
                    _dur(w + s["tests"][n]),
                ]
                for n, w in s["walls"].items()
            ],
            ["slots like the measured one", "Tune wall", "+ test pass", "total"],
        )
        blocks.append(
            f"{split}\n\nThe cocktail study's grid at {s['trials']} trials (`configs/sweep.yaml`"
            f" with {STUDY_220[0]}, {s['steps'][0]}-{s['steps'][1]} steps of 64 rows each), "
            f"timed with these parts: {_dur(total)} of trial time ({shares}); test pass "
            f"{s['test_generations']:,} generated rows.\n\n{walls}\n\n* `sweep.max_concurrent_"
            f"trials`, its test pass on `generate.concurrency={s['replicas']}` engine replicas; "
            "the other rows' test pass on as many replicas as slots. "
            f"Differs from the measured run: {'; '.join(s['differs']) or 'nothing'}. "
            f"Timings from `{r['source']}` ({p['trials_measured']} trials)."
        )
    return "\n\n".join(blocks)


if __name__ == "__main__":
    main()
