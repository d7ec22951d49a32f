"""`raysys search CONFIG`: task mixtures found by a model fitted to early trials, in rounds
of Ray Tune trials, instead of a whole grid.

A search directory is a sweep directory (the same `tasks/`, `trials/<id>/`, test pass,
results table and report) plus `search.json`, the search's state:

- `rounds`: in order, each `{name, kind, trials, mixtures}`; `grid` (the sweep section's
  grid, the baseline of equal budget, when `search.baseline=grid`), `r0` (space-filling
  mixtures), then `r1`, `r2`, ... (the surrogate's proposals, each with the objective and
  per-task scores it predicted *before* the round ran). A round is written before its
  trials start, so a resumed search runs exactly the mixtures it proposed, and each
  round's Tune experiment (`tune-<round>/`) resumes like a sweep's.
- `space` and `objective`: what the mixtures range over and what the search maximises
  (validation scores, never test: the test pass is the final one, as in a sweep).

The surrogate, the space-filling design and the proposals are `raysys.sweep.mixture`.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

from raysys.config import SweepConfig
from raysys.data import contamination
from raysys.errors import UserError
from raysys.io import write_json
from raysys.sweep.driver import (
    Grid,
    SweepIncompleteError,
    SweepOutcome,
    check_sweep,
    finish,
    gather_trials,
    open_tracking,
)
from raysys.sweep.grid import Trial, _num, plan_resources
from raysys.sweep.mixture import Mixture, Space, Surrogate, propose, space_filling
from raysys.sweep.prepare import check_contamination, prepare_data, prepare_tasks
from raysys.sweep.results import collect_trials
from raysys.sweep.trial import eval_task_names, trial_path
from raysys.sweep.tune import cluster_resources, run_tune, trial_resources, tune_location
from raysys.tasks import scoped
from raysys.tasks.store import TASKS_DIR

log = logging.getLogger(__name__)

SEARCH_FILE = "search.json"
SEARCH_KIND = "search"  # the cocktail_kind of a search trial


def search_space(cfg: SweepConfig) -> Space:
    se, sw = cfg.search, cfg.sweep
    assert se is not None
    fixed = lambda r: (0.0, 0.0) if r is None else (float(r[0]), float(r[1]))  # noqa: E731
    fraction = (max(sw.fractions),) * 2 if se.fraction is None else tuple(se.fraction)
    return Space(
        tasks=tuple(sorted(_trainable_names(sw.tasks))),
        general=fixed(se.general),
        math=fixed(se.math),
        fraction=(float(fraction[0]), float(fraction[1])),
        min_weight=se.min_weight,
    )


def _trainable_names(refs: list[str]) -> list[str]:
    from raysys.tasks import get_task

    return [get_task(r).name for r in refs]


def mixture_trials(cfg: SweepConfig, mixtures: list[Mixture]) -> list[Trial]:
    """Each mixture once per seed of `sweep.seeds`, at the training defaults."""
    out = []
    for m in mixtures:
        for seed in cfg.sweep.seeds:
            tid = f"{m.name}-g{_num(m.general)}-m{_num(m.math)}-f{_num(m.fraction)}-s{seed}"
            out.append(
                Trial(
                    tid,
                    m.name,
                    SEARCH_KIND,
                    m.weights,
                    m.general,
                    m.math,
                    m.fraction,
                    seed,
                    cfg.train.learning_rate,
                    cfg.train.lora.r,
                )
            )
    return out


# ---------------------------------------------------------------------------- state


def new_state(cfg: SweepConfig, grid_trials: list[Trial]) -> dict[str, Any]:
    se = cfg.search
    assert se is not None
    space = search_space(cfg)
    rounds = []
    if se.baseline == "grid":
        rounds.append({"name": "grid", "kind": "grid", "trials": [t.params() for t in grid_trials]})
    return {
        "version": 1,
        "surrogate": se.surrogate,
        "objective": se.objective_weights(eval_task_names(cfg)),
        "space": space.to_json(),
        "budget": budget_of(cfg, grid_trials),
        "rounds": rounds,
    }


def budget_of(cfg: SweepConfig, grid_trials: list[Trial]) -> dict[str, Any]:
    b = cfg.search.budget  # type: ignore[union-attr]
    out = {"trials": b.trials, "gpu_hours": b.gpu_hours, "cpu_hours": b.cpu_hours}
    if all(v is None for v in out.values()):
        out["trials"] = len(grid_trials)  # equal budget with the grid baseline
        out["equal_to_grid"] = True
    return out


def load_state(sweep_dir: Path) -> dict[str, Any] | None:
    path = sweep_dir / SEARCH_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def save_state(sweep_dir: Path, state: dict[str, Any]) -> None:
    from raysys.runs import RunDir

    write_json(sweep_dir / SEARCH_FILE, state)  # atomic
    RunDir.at(sweep_dir).keep(SEARCH_FILE)  # object-store runs: up to the store now


def spent(
    cfg: SweepConfig, state: dict[str, Any], finished: dict[str, dict[str, Any]]
) -> dict[str, float]:
    """Search trials run (finished or not) and the resource-hours of the finished ones: what
    Ray scheduled for them (their `usage`: Train workers and validation engines), or for a
    trial that predates usage records, its wall time x the workers' GPUs or CPUs."""
    from raysys.analysis.cost import CPU, times, train_resources

    kind = "gpu" if cfg.train.use_gpu else "cpu"
    ids = [p["trial_id"] for r in state["rounds"] if r["kind"] != "grid" for p in r["trials"]]
    seconds = 0.0
    for i in (i for i in ids if i in finished):
        used = (finished[i].get("usage") or {}).get("resource_seconds")
        if not (isinstance(used, dict) and used):  # a trial from before usage records
            used = times(train_resources(cfg.train), finished[i]["trial_seconds"])
        seconds += sum(v for k, v in used.items() if (k == CPU) == (kind == "cpu"))
    return {"trials": float(len(ids)), f"{kind}_hours": seconds / 3600}


def remaining_trials(cfg: SweepConfig, state: dict[str, Any], used: dict[str, float]) -> int:
    """How many more search trials the budget allows (0: the search is over)."""
    b = state["budget"]
    left = math.inf
    if b.get("trials") is not None:
        left = b["trials"] - used["trials"]
    for key in ("gpu_hours", "cpu_hours"):
        if b.get(key) is not None and used.get(key, 0.0) >= b[key]:
            left = 0
    return 0 if left <= 0 else (int(left) if left != math.inf else 10**9)


def _fault(name: str) -> int | None:
    from raysys.runtime import faults_from_env

    return faults_from_env((name,)).get(name)


# ------------------------------------------------------------------------- rounds


def measured(
    state: dict[str, Any], finished: dict[str, dict[str, Any]]
) -> list[tuple[Mixture, dict[str, float]]]:
    """(search mixture, {task: validation score averaged over its finished seeds})."""
    out = []
    for r in state["rounds"]:
        for m in r.get("mixtures", []):  # the grid round has none
            mix = Mixture.from_json(m)
            scores: dict[str, list[float]] = {}
            for tid in m["trial_ids"]:
                for task, val in (finished.get(tid, {}).get("validation") or {}).items():
                    if isinstance(val.get("main"), int | float) and math.isfinite(val["main"]):
                        scores.setdefault(task, []).append(float(val["main"]))
            if scores:
                out.append((mix, {t: sum(v) / len(v) for t, v in scores.items()}))
    return out


def next_round(
    cfg: SweepConfig, state: dict[str, Any], finished: dict[str, dict[str, Any]]
) -> dict[str, Any] | None:
    """The next round's mixtures (proposed and recorded in `state`), or None once the budget
    is spent."""
    se = cfg.search
    assert se is not None
    seeds = len(cfg.sweep.seeds)
    left = remaining_trials(cfg, state, spent(cfg, state, finished)) // seeds
    if left < 1:
        return None
    space = Space.from_json(state["space"])
    search_rounds = [r for r in state["rounds"] if r["kind"] != "grid"]
    index = len(search_rounds)
    seed = cfg.run.seed + 1000 * index
    seen = measured(state, finished) if index else []
    if index == 0:
        proposals = [(m, None, None) for m in space_filling(space, min(se.initial, left), seed)]
        kind = "initial"
    else:
        if len(seen) < 2:
            raise SweepIncompleteError(
                f"search: only {len(seen)} mixture(s) of the earlier rounds finished, too few "
                "to fit the surrogate; see the trials' errors, then --resume --retry-errored"
            )
        surrogate = Surrogate.fit(state["surrogate"], space, seen)
        taken = [Mixture.from_json(m) for r in search_rounds for m in r["mixtures"]]
        proposals = propose(
            surrogate, state["objective"], taken, min(se.per_round, left), se.candidates, seed
        )
        kind = "proposed"
        if not proposals:
            log.info("search: the surrogate has no new mixture to propose; stopping")
            return None
    mixtures = [m for m, _, _ in proposals]
    trials = mixture_trials(cfg, mixtures)
    by_name = {m.name: [t.trial_id for t in trials if t.cocktail == m.name] for m in mixtures}
    rnd = {
        "name": f"r{index}",
        "kind": kind,
        "trials": [t.params() for t in trials],
        "mixtures": [
            m.to_json()
            | {"trial_ids": by_name[m.name], "predicted": pred, "predicted_tasks": tasks}
            for m, pred, tasks in proposals
        ],
        "fitted_on": len(seen),
    }
    state["rounds"].append(rnd)
    return rnd


@scoped  # this run's task rows are registered for the run only
def run_search(cfg: SweepConfig, resume: bool = False, retry_errored: bool = False) -> SweepOutcome:
    """Run (or resume) the search: the grid baseline, round 0, then proposed rounds until
    the budget is spent; one test pass over every adapter; the report with its search
    section."""
    from raysys.models import resolve_model
    from raysys.runs import RunDir, open_run
    from raysys.runtime import init_ray

    if cfg.search is None:
        raise UserError("search: the config has no search section; add one (see README)")
    cfg, grid_trials, callbacks = check_sweep(cfg, resume, marker=SEARCH_FILE)
    if cfg.search.baseline == "none":
        grid_trials = []
    model_path = resolve_model(cfg.model.source)
    tasks = prepare_tasks(cfg, resume)
    overlap = check_contamination(cfg, tasks)  # training rows in an evaluation split: refused
    where = RunDir.of(cfg.run.storage_path, cfg.run.name, str(cfg.run.run_id))
    init_ray(cfg.ray.address, cfg.ray.num_cpus, metadata=where.job_metadata("search"))
    run = open_run(cfg)
    tasks.write()
    run.keep(TASKS_DIR)
    contamination.write(run.path, overlap)  # the report's overlap table
    run.keep(contamination.FILE)
    sweep_dir = run.path
    state = load_state(sweep_dir) or new_state(cfg, grid_trials)
    save_state(sweep_dir, state)
    plan = plan_resources(cfg, max(len(grid_trials), cfg.search.per_round), cluster_resources())
    trial_resources(cfg, plan.available)  # a resource no node has: refused now

    def grid_of(trials: list[Trial], data: Any, experiment: str) -> Grid:
        return Grid(
            cfg, trials, sweep_dir, model_path, run / TASKS_DIR, *data, plan, callbacks, experiment
        )

    tracking = open_tracking(grid_of(grid_trials, ({}, {}), "tune"))
    try:
        tune_seconds, failures, stats = _rounds(
            cfg, state, sweep_dir, model_path, grid_of, retry_errored
        )
        every = [Trial.from_params(p) for r in state["rounds"] for p in r["trials"]]
        final = grid_of(every, ({}, stats), "tune")
        finished, _ = collect_trials(sweep_dir, every)
        extra = {"search": _summary(cfg, state, finished)}
        return finish(final, failures, tune_seconds, resume, tracking, extra)
    except BaseException:
        if tracking:
            tracking.close("FAILED")
        raise


def _rounds(
    cfg: SweepConfig,
    state: dict[str, Any],
    sweep_dir: Path,
    model_path: str,
    grid_of: Any,
    retry: bool,
) -> tuple[float, dict[str, list[str]], dict[str, int]]:
    """Every round through Tune, the recorded ones first (a resumed search), then new
    ones while the budget lasts. Returns Tune's wall time, the failures, the data counts."""
    from ray.tune import Tuner

    seconds, failures = 0.0, {}
    stats = {"datasets": 0, "data_built": 0, "data_cached": 0}
    i = 0
    while True:
        every = [Trial.from_params(p) for r in state["rounds"] for p in r["trials"]]
        finished, _ = collect_trials(sweep_dir, every)
        if i == len(state["rounds"]):
            t0 = time.perf_counter()
            if next_round(cfg, state, finished) is None:
                break
            n = state["rounds"][-1]
            n["propose_seconds"] = time.perf_counter() - t0  # fit + score the candidates
            save_state(sweep_dir, state)  # proposed before it runs: a resume runs the same
            log.info(
                "search round %s: %d mixtures, %d trials",
                n["name"],
                len(n["mixtures"]),
                len(n["trials"]),
            )
            if _fault("search_exit_after_proposal") == len(
                [r for r in state["rounds"] if r["kind"] == "proposed"]
            ):
                log.warning("fault drill: the search driver exits after proposing %s", n["name"])
                import os

                os._exit(137)
        rnd = state["rounds"][i]
        i += 1
        trials = [Trial.from_params(p) for p in rnd["trials"]]
        if all((trial_path(sweep_dir, t.trial_id) / "result.json").is_file() for t in trials):
            continue  # done before the driver restarted
        data = prepare_data(cfg, trials, model_path)
        for k in stats:
            stats[k] += data[1][k]
        experiment = f"tune-{rnd['name']}"
        restore = Tuner.can_restore(tune_location(cfg, sweep_dir, experiment))
        start = time.perf_counter()
        failures |= run_tune(grid_of(trials, data, experiment), restore, retry)
        took = time.perf_counter() - start
        seconds += took
        gather_trials(sweep_dir)
        rnd["tune_seconds"] = rnd.get("tune_seconds", 0.0) + took  # a resumed round adds up
        save_state(sweep_dir, state)
    return seconds, failures, stats


def _summary(
    cfg: SweepConfig, state: dict[str, Any], finished: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    used = spent(cfg, state, finished)
    return {
        "rounds": [r["name"] for r in state["rounds"]],
        "budget": state["budget"],
        "spent": used,
        "surrogate": state["surrogate"],
    }


# ------------------------------------------------------------------------ dry run


def search_plan(cfg: SweepConfig) -> tuple[list[Trial], list[Mixture], dict[str, Any]]:
    """What `search --dry-run` shows: the grid baseline, round 0's mixtures, the budget."""
    from raysys.sweep.grid import expand_grid

    if cfg.search is None:
        raise UserError("search: the config has no search section; add one (see README)")
    grid_trials = expand_grid(cfg) if cfg.search.baseline == "grid" else []
    budget = budget_of(cfg, grid_trials)
    n = cfg.search.initial
    if budget.get("trials") is not None:
        n = min(n, budget["trials"] // len(cfg.sweep.seeds))
    if n < 1:
        raise UserError(
            f"search.budget.trials: {budget['trials']} is fewer than one mixture x "
            f"{len(cfg.sweep.seeds)} seeds; raise it or use fewer sweep.seeds"
        )
    return grid_trials, space_filling(search_space(cfg), n, cfg.run.seed), budget


def format_mixtures(mixtures: list[Mixture]) -> str:
    lines = [f"{'mixture':<13} {'general':>7} {'math':>5} {'frac':>5}  weights"]
    for m in mixtures:
        w = ", ".join(f"{t} {x:g}" for t, x in m.weights)
        lines.append(f"{m.name:<13} {m.general:>7g} {m.math:>5g} {m.fraction:>5g}  {w}")
    return "\n".join(lines)
