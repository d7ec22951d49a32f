"""Where a pipeline run stands (or a sweep: `run_status` tells them apart), read from the
files it writes anyway; no Ray, no connection (`raysys status`).

A stage is done when `<name>-<key>/stage.json` exists (`runs.stage`); a stage folder
without it is the stage running (or one an interrupted run left). The config's
`stage_plan` orders them and says what is left; a planned stage without a folder before
the last one that ran was left out (the DPO gate, a round that kept no row). The SFT
sweep lives in `sft-<key>/sweep/grid/` and is read as a sweep. `pipeline.json` and then
`report.html` newer than `config.yaml` (rewritten on every start and resume): this run of
the pipeline finished.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from raysys.errors import UserError
from raysys.pipeline.stages import stage_plan
from raysys.runs import RunFiles
from raysys.sweep.status import (
    SweepStatus,
    duration,
    listed,
    quiet,
    report_line,
    since,
    sweep_status,
)

DONE, RUNNING, PENDING = "done", "running", "pending"
SKIPPED = "skipped"  # the run went past it without a folder: the DPO gate, an empty round
STOPPED = "stopped"  # a folder without stage.json that the run went past (an earlier try)
STATES = (DONE, RUNNING, PENDING, SKIPPED, STOPPED)
SWEEP_DIR = "sweep/grid"  # the SFT sweep, under its stage folder (pipeline.sft.sweep_config)

_STAGE_DIR = re.compile(r"^([a-z][a-z0-9_]*)-([0-9a-f]{10})$")


@dataclass(frozen=True)
class StageStatus:
    name: str
    state: str  # one of STATES
    dir: str | None = None
    seconds: float | None = None


@dataclass(frozen=True)
class PipelineStatus:
    where: str
    finished: bool
    stages: list[StageStatus]
    started: float | None
    ended: float | None
    updated: float | None
    sweep: SweepStatus | None  # the SFT sweep, once its folder exists
    sweep_dir: str | None  # its folder in the run
    report: str | None
    cost: dict[str, Any] | None = None  # pipeline.json's cost, once the pipeline finished

    def of(self, state: str) -> list[StageStatus]:
        return [s for s in self.stages if s.state == state]

    def lines(self, now: float) -> list[str]:
        """The status as `label  value` lines (what `raysys status` prints)."""
        out = [
            f"pipeline  {self.where}",
            f"state     {self._state()}{quiet(self.updated, now, self.finished)}",
            f"stages    {self._counts()}",
            *self._stage_lines(),
            f"elapsed   {since(self.started, self.ended or now)}",
            f"remaining {self._remaining(now)}",
            f"spent     {self._spent()}",
            f"error     {self.sweep.error if self.sweep and self.sweep.error else 'none'}",
            f"report    {self.report or 'none yet (written when the pipeline finishes)'}",
        ]
        if self.sweep is not None:
            out += [f"sft sweep {self.sweep_dir}", *(f"  {ln}" for ln in self.sweep.lines(now)[1:])]
        return out

    def _spent(self) -> str:
        from raysys.analysis.cost import describe

        study = (self.cost or {}).get("study")
        if not isinstance(study, dict):
            return "known when the pipeline finishes (per stage in pipeline.json)"
        return f"{describe(study, self.cost.get('prices') or {})} (every stage)"

    def _state(self) -> str:
        if self.finished:
            return "finished"
        running = self.of(RUNNING)
        if running:
            n = self.stages.index(running[0]) + 1
            return f"running: stage {n}/{len(self.stages)} {running[0].name}"
        done = self.of(DONE)
        if not done:
            return "starting: checking the config and preparing the tasks"
        if not self.of(PENDING):
            return "running: every stage ended; writing pipeline.json and the report"
        return f"running: the stage after {done[-1].name} (it has written nothing yet)"

    def _counts(self) -> str:
        counts = ", ".join(f"{len(self.of(s))} {s}" for s in STATES if self.of(s))
        return f"{len(self.stages)}: {counts}" if self.stages else "none yet"

    def _stage_lines(self) -> list[str]:
        out = []
        for state in STATES:
            names = [_named(s) for s in self.of(state)]
            if names:
                out.append(f"  {state:<8}{listed(names, None)}")  # a few, each worth a look
        return out

    def _remaining(self, now: float) -> str:
        if self.finished:
            return "none"
        left = len(self.of(PENDING))
        after = f"{left} more stage(s) after it" if left else "the report after it"
        running = self.of(RUNNING)
        sweep_eta = self.sweep.remaining(now) if self.sweep else None
        if running and running[0].name == "sft" and sweep_eta is not None:
            return f"~{duration(sweep_eta)} for the sweep's trials; then its test pass, {after}"
        if running:
            return f"unknown; {after}"
        return f"unknown; {left} stage(s) left" if left else "unknown (the report is left)"


def run_status(location: str, cache: dict | None = None) -> SweepStatus | PipelineStatus:
    """The state of the sweep or pipeline run at `location` (a path or an s3:// / gs://
    URI), from its files; a location that is no such run is a `UserError` saying what to
    give instead. `cache` (kept across calls) saves reading unchanged files again."""
    run = RunFiles.listed(location, cache=cache)
    kind, now = run.kind(), time.time()
    if kind == "pipeline":
        return pipeline_status(run, now)
    if kind == "sweep":
        return sweep_status(run, now)
    raise UserError(not_a_run(run, kind))


def pipeline_status(run: RunFiles, now: float) -> PipelineStatus:
    """A pipeline's state from its files: each planned stage done / running / pending /
    skipped, times, the SFT sweep's trials, the last error and the report."""
    config = run.config()
    finished = run.fresh("pipeline.json") and run.fresh("report.html")  # the report last
    dirs = stage_dirs(run)
    plan = planned(config) or sorted(dirs, key=_written(run, dirs))
    stages = stage_states(run, plan, dirs, finished)
    sweep_root = f"{dirs['sft']}/{SWEEP_DIR}" if "sft" in dirs else None
    sweep = None
    if sweep_root and run.has(f"{sweep_root}/config.yaml"):
        sweep = sweep_status(run.under(sweep_root), now)
    return PipelineStatus(
        where=run.shown(),
        finished=finished,
        stages=stages,
        started=run.mtime("config.yaml"),
        ended=run.mtime("report.html") if finished else None,
        updated=run.newest(),
        sweep=sweep,
        sweep_dir=sweep_root if sweep is not None else None,
        report=report_line(run, run.fresh("report.html")),
        cost=(run.json("pipeline.json") or {}).get("cost") if finished else None,
    )


def planned(config: dict[str, Any]) -> list[str]:
    """The stages the run's config makes, in order ([] when it cannot tell)."""
    from pydantic import ValidationError

    from raysys.config import PipelineStages

    p = config.get("pipeline") or {}
    try:
        stages = PipelineStages.model_validate(p.get("stages") or {})
        rounds = int(p.get("rounds", 0))
    except (ValidationError, TypeError, ValueError, AttributeError):
        return []
    return stage_plan(stages, rounds, with_sweep=config.get("sweep") is not None)


def stage_dirs(run: RunFiles) -> dict[str, str]:
    """Stage name -> its folder; of several (a config changed between runs), the one
    written to last."""
    found: dict[str, str] = {}
    for name in run.names():
        if m := _STAGE_DIR.match(name):
            old = found.get(m.group(1))
            if old is None or (run.newest(name) or 0.0) > (run.newest(old) or 0.0):
                found[m.group(1)] = name
    return found


def stage_states(
    run: RunFiles, plan: list[str], dirs: dict[str, str], finished: bool
) -> list[StageStatus]:
    """Each planned stage's state. The stage running is the unfinished folder written to
    last; what comes after it in the plan is pending."""
    done = {n for n in plan if n in dirs and run.has(f"{dirs[n]}/stage.json")}
    unfinished = [n for n in plan if n in dirs and n not in done]
    current = None if finished else max(unfinished, key=_written(run, dirs), default=None)
    reached = max((i for i, n in enumerate(plan) if n in done or n == current), default=-1)
    out = []
    for i, name in enumerate(plan):
        d = dirs.get(name)
        if name in done:
            seconds = (run.json(f"{d}/stage.json") or {}).get("seconds")
            out.append(StageStatus(name, DONE, d, seconds))
        elif name == current:
            out.append(StageStatus(name, RUNNING, d))
        elif i > reached and not finished:
            out.append(StageStatus(name, PENDING, d))
        else:
            out.append(StageStatus(name, STOPPED if d else SKIPPED, d))
    return out


def _written(run: RunFiles, dirs: dict[str, str]) -> Any:
    return lambda name: run.newest(dirs[name]) or 0.0


def _named(s: StageStatus) -> str:
    return f"{s.name} ({duration(s.seconds)})" if isinstance(s.seconds, int | float) else s.name


def not_a_run(run: RunFiles, kind: str | None) -> str:
    """The one line for a RUN_DIR that is no sweep or pipeline run."""
    where = run.shown()
    fix = "give a sweep's or a pipeline's run directory, <run.storage_path>/<run.name>/<run_id>"
    if not run.files:
        return f"RUN_DIR: nothing at {where}; {fix}"
    if kind is not None:
        return f"RUN_DIR: {where} is a {kind} run, not a sweep or a pipeline; {fix}"
    runs = [n for n in run.names() if run.has(f"{n}/config.yaml")]
    if runs:
        return (
            f"RUN_DIR: {where} holds runs ({listed(runs[-3:])}), not one run; give one of "
            f"them, e.g. raysys status {run.shown(runs[-1])}"
        )
    return f"RUN_DIR: {where} is not a raysys run (no config.yaml); {fix}"
