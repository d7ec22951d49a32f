"""Where a sweep stands, read from the files it writes anyway: no Ray, no connection, so
it works from another terminal, on another machine (an s3:// or gs:// run) and on a run
long finished (`raysys status`).

What each file says:

- `grid.json`: every trial, in order (written before Tune starts)
- `trials/<id>/result.json`: the trial finished (raysys writes it last)
- `tune/experiment_state-<session>.json`: Tune's snapshot of every trial's status, start
  and last result (every `sweep.snapshot_seconds`; the newest session is the current one)
- `tune/<id>/error.txt`: each failure of a trial, retried or final
- `config.yaml`: rewritten when the sweep starts or resumes; `sweep.json` newer than it:
  this run of the sweep has its results (its errored trials, failures, concurrency)
- `report.html` newer than config.yaml: the report of this run; the sweep is finished
"""

from __future__ import annotations

import heapq
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from raysys.runs import RunFiles
from raysys.sweep.failures import failure_causes
from raysys.sweep.grid import tune_trial_id

DONE, RUNNING, ERRORED, PENDING = "done", "running", "errored", "pending"
STATES = (DONE, RUNNING, ERRORED, PENDING)
QUIET_SECONDS = 600  # no write for this long while "running": say the job may be gone
SHOWN_IDS = 6  # ids listed per state; the rest are counted

_STATE_FILE = re.compile(r"^experiment_state-.+\.json$")


@dataclass(frozen=True)
class TrialStatus:
    trial_id: str
    state: str  # one of STATES
    started: float | None = None  # Tune's start time (epoch seconds)
    seconds: float | None = None  # done: the trial's own wall time
    cause: str | None = None  # why a trial without a result ended, when Tune names nothing
    experiment: str = "tune"  # Tune's experiment folder that holds it (a search: per round)


@dataclass(frozen=True)
class SweepStatus:
    where: str
    phase: str  # starting | trials | test pass | report | stopped | finished
    trials: list[TrialStatus]
    started: float | None  # when this run of the sweep started (or resumed)
    ended: float | None
    updated: float | None  # the latest write anywhere in the run
    concurrency: int
    error: str | None  # the last error, one line
    report: str | None
    spent: dict[str, Any] | None = None  # usage so far (raysys.analysis.cost)
    prices: dict[str, float] | None = None  # cost.prices of the run's config
    spent_from: str = ""  # what `spent` sums

    @property
    def finished(self) -> bool:
        return self.phase in ("finished", "stopped")

    def of(self, state: str) -> list[TrialStatus]:
        return [t for t in self.trials if t.state == state]

    def remaining(self, now: float) -> float | None:
        """Seconds until the last trial ends: pending trials take the mean finished
        trial's time, a running one what is left of it, `concurrency` at a time (None:
        no trial finished yet, or the trials are over)."""
        mean = self.mean_trial()
        if self.phase != "trials" or mean is None:
            return None
        slots = [max(mean - (now - (t.started or now)), 0.0) for t in self.of(RUNNING)]
        slots += [0.0] * max(self.concurrency - len(slots), 0)
        heapq.heapify(slots)
        for _ in self.of(PENDING):  # each goes to the slot that frees first
            heapq.heappush(slots, heapq.heappop(slots) + mean)
        return max(slots)

    def mean_trial(self) -> float | None:
        done = [t.seconds for t in self.of(DONE) if t.seconds is not None]
        return sum(done) / len(done) if done else None

    def lines(self, now: float) -> list[str]:
        """The status as `label  value` lines (what `raysys status` prints)."""
        return [
            f"sweep     {self.where}",
            f"state     {self._state(now)}",
            f"trials    {self._counts()}",
            *self._trial_lines(now),
            f"elapsed   {since(self.started, self.ended or now)}",
            f"remaining {self._remaining(now)}",
            f"spent     {self._spent()}",
            f"error     {self.error or 'none'}",
            f"report    {self.report or 'none yet (written when the sweep finishes)'}",
        ]

    def _spent(self) -> str:
        from raysys.analysis.cost import describe

        if self.spent is None:
            return "nothing yet (no trial finished)"
        return f"{describe(self.spent, self.prices or {})} ({self.spent_from})"

    def _state(self, now: float) -> str:
        text = {
            "starting": "starting: checking and preparing data (no grid.json yet)",
            "trials": "running: trials on Ray Tune",
            "test pass": f"running: trials ended; test pass (base + {len(self.of(DONE))} "
            "adapters), then the report",
            "report": "running: results written; writing the report",
            "stopped": "stopped: no trial finished (see error)",
            "finished": "finished",
        }[self.phase]
        return text + quiet(self.updated, now, self.finished)

    def _counts(self) -> str:
        if not self.trials:
            return "unknown yet"
        counts = ", ".join(f"{len(self.of(s))} {s}" for s in STATES)
        return f"{len(self.trials)}: {counts}"

    def _trial_lines(self, now: float) -> list[str]:
        out = []
        for state in STATES:
            trials = self.of(state)
            if trials:
                ids = [_with_age(t, now) if state == RUNNING else t.trial_id for t in trials]
                out.append(f"  {state:<8}{listed(ids)}")
        return out

    def _remaining(self, now: float) -> str:
        if self.finished:
            return "none"
        if self.phase == "test pass":
            return "unknown (the test pass and the report are left)"
        if self.phase == "report":
            return "unknown (the report is left)"
        eta, mean = self.remaining(now), self.mean_trial()
        if eta is None or mean is None:
            return "unknown (no trial finished yet)"
        return (
            f"~{duration(eta)} for the trials (mean trial {duration(mean)}, "
            f"{self.concurrency} at a time), then the test pass"
        )


def sweep_status(run: RunFiles, now: float) -> SweepStatus:
    """A sweep's state from its files: trials done / running / errored / pending, times,
    the last error and the report."""
    tune = tune_trials(run)
    grid = trial_ids(run)
    trials = [trial_status(run, tid, tune.get(tid)) for tid in grid]
    meta = finished_meta(run)
    spent, spent_from = spent_so_far(run, trials, meta)
    reported = run.fresh("report.html")  # written after sweep.json
    ended = [run.mtime(f) for f in ("sweep.json", "report.html")] if meta and reported else []
    return SweepStatus(
        where=run.shown(),
        phase=phase(grid, trials, meta, reported),
        trials=trials,
        started=run.mtime("config.yaml"),
        ended=max((t for t in ended if t is not None), default=None),
        updated=run.newest(),
        concurrency=max(len([t for t in trials if t.state == RUNNING]), _meta_slots(meta), 1),
        error=last_error(run, trials, meta),
        report=report_line(run, reported),
        spent=spent,
        prices=_prices(run),
        spent_from=spent_from,
    )


def spent_so_far(
    run: RunFiles, trials: list[TrialStatus], meta: dict[str, Any] | None
) -> tuple[dict[str, Any] | None, str]:
    """What the sweep has used: the whole study (sweep.json) once written, else the sum of
    the finished trials' own usage (running trials are not counted until they finish)."""
    from raysys.analysis import cost

    study = ((meta or {}).get("cost") or {}).get("study")
    if isinstance(study, dict):
        return study, "the whole study: trials and the test pass"
    done = [t.trial_id for t in trials if t.state == DONE]
    usages = [(run.json(f"trials/{tid}/result.json") or {}).get("usage") for tid in done]
    if not any(usages):
        return None, ""
    return cost.total(usages), f"{len(done)} finished trial(s); running ones not yet counted"


def _prices(run: RunFiles) -> dict[str, float]:
    prices = ((run.config() or {}).get("cost") or {}).get("prices")
    return prices if isinstance(prices, dict) else {}


def report_line(run: RunFiles, fresh: bool) -> str | None:
    """Where the report is; one an earlier run left is named as such."""
    if not run.has("report.html"):
        return None
    return run.shown("report.html") + ("" if fresh else " (an earlier run's, rewritten at the end)")


def trial_ids(run: RunFiles) -> list[str]:
    """Every trial known so far: a sweep's grid.json, or every round a search recorded."""
    grid = run.json("grid.json")
    if isinstance(grid, list):
        return [p["trial_id"] for p in grid if isinstance(p, dict)]
    search = run.json("search.json")
    rounds = search.get("rounds", []) if isinstance(search, dict) else []
    return [p["trial_id"] for r in rounds for p in r.get("trials", []) if isinstance(p, dict)]


def experiments(run: RunFiles) -> list[str]:
    """Tune's experiment folders: `tune` (a sweep), `tune-<round>` (a search)."""
    return [n for n in run.names() if n == "tune" or n.startswith("tune-")]


def tune_trials(run: RunFiles) -> dict[str, dict[str, Any]]:
    """Trial id -> Tune's record of it (status, start, failures, last result), from each
    experiment's newest state; {} before Tune wrote one."""
    out: dict[str, dict[str, Any]] = {}
    for exp in experiments(run):
        states = sorted(n for n in run.names(exp) if _STATE_FILE.match(n))
        state = run.json(f"{exp}/{states[-1]}") if states else None
        for pair in (state or {}).get("trial_data", []):
            try:
                trial, runtime = (json.loads(p) for p in pair)
                tid = tune_trial_id(trial["config"])
            except (KeyError, TypeError, ValueError):
                continue  # another Tune version's record: the trial counts by raysys's files
            out[tid] = {"status": trial.get("status"), "experiment": exp, **runtime}
    return out


def trial_status(run: RunFiles, tid: str, tune: dict[str, Any] | None) -> TrialStatus:
    """raysys's `result.json` says done; otherwise Tune's status, or before Tune wrote
    one, whether the trial's folder has started to fill."""
    tune = tune or {}
    started = _number(tune.get("start_time"))
    status = tune.get("status")
    exp = {"experiment": tune.get("experiment", "tune")}
    if run.has(f"trials/{tid}/result.json"):
        return TrialStatus(tid, DONE, started, _seconds(run, tid, tune), **exp)
    if status == "ERROR":
        return TrialStatus(tid, ERRORED, started, **exp)
    if status == "TERMINATED":  # ended without a result: an early stop (ASHA) or a kill
        why = "ended without a result (stopped early?)"
        return TrialStatus(tid, ERRORED, started, cause=why, **exp)
    if status in ("RUNNING", "PAUSED") or (status is None and run.names(f"trials/{tid}")):
        return TrialStatus(tid, RUNNING, started, **exp)
    return TrialStatus(tid, PENDING, started, **exp)


def _seconds(run: RunFiles, tid: str, tune: dict[str, Any]) -> float | None:
    """A finished trial's time: what it reported to Tune, else its result.json."""
    reported = (tune.get("last_result") or {}).get("trial_seconds")
    if _number(reported) is None:
        reported = (run.json(f"trials/{tid}/result.json") or {}).get("trial_seconds")
    return _number(reported)


def _number(x: Any) -> float | None:
    ok = isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
    return float(x) if ok else None


def finished_meta(run: RunFiles) -> dict[str, Any] | None:
    """sweep.json when this run of the sweep wrote it (a resumed sweep rewrote config.yaml
    after the last one)."""
    meta = run.json("sweep.json") if run.fresh("sweep.json") else None
    return meta if isinstance(meta, dict) else None


def _meta_slots(meta: dict[str, Any] | None) -> int:
    slots = (meta or {}).get("concurrency")
    return slots if isinstance(slots, int) else 0


def phase(
    grid: list[str], trials: list[TrialStatus], meta: dict[str, Any] | None, reported: bool
) -> str:
    if meta is not None:
        return "finished" if reported else "report"
    if not grid:
        return "starting"
    if any(t.state in (RUNNING, PENDING) for t in trials):
        return "trials"
    if not any(t.state == DONE for t in trials):
        return "stopped"  # the driver exits when no trial finished
    return "test pass"


def last_error(run: RunFiles, trials: list[TrialStatus], meta: dict[str, Any] | None) -> str | None:
    """`<trial>: <cause>` of the errored trial that failed last; else of the last failure
    Tune retried; None when nothing failed."""
    failures = (meta or {}).get("failures") or {}

    def causes(t: TrialStatus) -> list[str]:
        return failures.get(t.trial_id) or failure_causes(run.text(_error_file(t)) or "")

    def latest(ts: list[TrialStatus]) -> list[TrialStatus]:
        return sorted(ts, key=lambda t: run.mtime(_error_file(t)) or 0.0)

    errored = latest([t for t in trials if t.state == ERRORED])
    if errored:
        t = errored[-1]
        why = causes(t) or [t.cause or "errored (Tune kept no error.txt)"]
        return f"{t.trial_id}: {why[-1]}"
    failed = [t for t in trials if t.trial_id in failures or run.has(_error_file(t))]
    for t in reversed(latest(failed)):
        if why := causes(t):
            return f"{t.trial_id}: {why[-1]} (failed, then retried)"
    return None


def _error_file(t: TrialStatus) -> str:
    return f"{t.experiment}/{t.trial_id}/error.txt"


# --------------------------------------------------------------------------- formatting


def duration(seconds: float) -> str:
    s = max(int(round(seconds)), 0)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def since(start: float | None, end: float) -> str:
    return duration(end - start) if start is not None else "unknown"


def quiet(updated: float | None, now: float, finished: bool) -> str:
    """` (last write 3s ago)`; past QUIET_SECONDS while running, a hint that the job may
    have died (it cannot say so itself: a killed driver leaves its trials "running")."""
    if updated is None:
        return ""
    ago = f" (last write {duration(now - updated)} ago"
    if finished or now - updated < QUIET_SECONDS:
        return ago + ")"
    return ago + ": is the job still running? `ray job status`, or resume it with --resume)"


def listed(items: list[str], limit: int | None = SHOWN_IDS) -> str:
    """`a, b, c, +7 more`: the first `limit` items (None: all)."""
    limit = len(items) if limit is None else limit
    more = f", +{len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _with_age(t: TrialStatus, now: float) -> str:
    return f"{t.trial_id} ({duration(now - t.started)})" if t.started else t.trial_id
