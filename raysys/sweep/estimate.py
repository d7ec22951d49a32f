"""`raysys sweep CONFIG --dry-run --timings RUN`: what this grid would cost, from the parts
of a trial an earlier sweep measured (same model, same hardware).

A trial's time splits into parts that scale differently with the grid:

- start-up: the training fit's wall time minus its steps (the training actor, or Ray Train's
  controller and worker group; the model load, checkpoints): the same for every trial;
- training: seconds per training row (a step's median time over the effective batch) x
  the rows the trial's cocktail has at its fraction;
- validation (`sweep.validate_in: trial`): an engine start-up plus seconds per generated
  row, split apart from the trials' validation passes and the one test pass (two sizes of
  the same kind of pass);
- the rest (reading data, writing results): the same for every trial.

The grid's trials then run longest first on N slots (Tune's order in `sweep.tune`), times
the Tune overhead (wall / ideal) the earlier sweep measured; the one test pass follows.
Reads only small files of the earlier run (local, s3:// or gs://); starts nothing.
"""

from __future__ import annotations

import functools
import heapq
import math
import statistics
from dataclasses import dataclass
from typing import Any

from raysys.analysis import cost
from raysys.config import SweepConfig
from raysys.errors import UserError, clip
from raysys.runs import RunFiles
from raysys.sweep.grid import Plan, Trial

SLOTS = (1, 8, 32, 64)  # besides the planned concurrency
FIELD = "--timings"
# Fields of the earlier run that change the time per training row, not refused: named.
_TRAIN_FIELDS = ("per_device_batch_size", "max_seq_length", "num_workers", "packing")
_TRAIN_FIELDS += ("gradient_checkpointing",)


@dataclass(frozen=True)
class Timings:
    """Per-trial parts measured by an earlier sweep (medians over its finished trials)."""

    source: str  # where they came from, as users name it
    model: str
    dtype: str
    use_gpu: bool
    trials: int  # finished trials measured
    startup_s: float  # Train fit wall minus its steps
    row_s: float  # training seconds per row (step median / effective batch)
    rest_s: float  # trial minus fit minus validation
    setup_s: float  # of the rest: the training stage outside Ray Train's fit
    engine_start_s: float  # an evaluation pass's start-up (engine, model load)
    generation_s: float  # seconds per generated row of one engine replica
    eval_method: str  # how the two evaluation parts were told apart
    tune_overhead: float  # that sweep's Tune wall / ideal (1 when unknown)
    train: dict[str, Any]  # its train section, to name what differs
    measured: dict[str, Any] | None = None  # that sweep's own study usage (sweep.json cost)
    tokens_per_row: float = 0.0  # tokens trained per training row (median)
    tokens_per_generation: float = 0.0  # tokens generated per evaluated row (median)
    # the dtypes the trials computed in there (metrics "dtype"): bfloat16 runs in float32
    # on a CPU without bf16 instructions (`raysys.models.supported_dtype`)
    run_dtypes: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrialCost:
    trial_id: str
    rows: int
    steps: int
    startup_s: float
    train_s: float
    validation_s: float
    rest_s: float

    @property
    def seconds(self) -> float:
        return self.startup_s + self.train_s + self.validation_s + self.rest_s


@dataclass(frozen=True)
class Estimate:
    timings: Timings
    trials: list[TrialCost]
    planned: int  # the plan's concurrency
    walls: dict[int, float]  # slots -> Tune wall time (overhead included)
    tests: dict[int, float]  # slots -> the test pass on as many engine replicas
    test_generations: int
    replicas: int  # generate.concurrency: the planned test pass's engine replicas
    differs: list[str]  # train fields that differ from the measured run
    usage: dict[str, Any] | None = None  # trials + the planned test pass (analysis.cost)
    trials_usage: dict[str, Any] | None = None  # of which the trials
    test_usage: dict[str, Any] | None = None  # and the test pass
    prices: dict[str, float] | None = None  # cost.prices


# --------------------------------------------------------------------------- reading


def read_timings(location: str) -> Timings:
    """The measured parts of the finished sweep at `location` (its directory, or its
    sweep.json / results file); a run that has none is refused with what to point at."""
    location = _sweep_location(location)
    run = RunFiles.listed(location, FIELD)
    meta, config = run.json("sweep.json"), run.config()
    results = [r for r in (run.json(f"trials/{t}/result.json") for t in run.names("trials")) if r]
    if not isinstance(meta, dict) or not config.get("model") or not results:
        raise UserError(
            f"{FIELD}: {clip(run.shown(), 120)} holds no finished sweep (sweep.json, "
            "config.yaml and trials/*/result.json); point it at an earlier sweep's directory "
            "<run.storage_path>/<run.name>/<run_id>"
        )
    parts = [_trial_parts(r, run, config) for r in results]
    # a trial whose last fit resumed with no step left (a retry after its training had
    # finished) trained nothing there: its start-up and tokens are not a fit's
    trained = [p for p in parts if p["trained"]]
    if not trained:
        raise UserError(
            f"{FIELD}: no trial of {clip(run.shown(), 120)} trained in its last attempt (each "
            "resumed with no step left), so none measured a start-up; point it at a sweep "
            "whose trials trained"
        )
    val_s = _median(p["validation_s"] for p in parts)
    val_rows = _median(p["validation_rows"] for p in parts)
    start, per_row, method = _evaluation_parts(val_s, val_rows, _test_pass(run))
    replicas = _number((config.get("generate") or {}).get("concurrency"), 1.0)
    return Timings(
        source=run.shown(),
        model=str(config["model"].get("source")),
        dtype=str(config["model"].get("dtype")),
        use_gpu=bool(config.get("train", {}).get("use_gpu")),
        trials=len(parts),
        startup_s=_median(p["startup_s"] for p in trained),
        row_s=_median(p["row_s"] for p in parts),
        rest_s=_median(p["rest_s"] for p in parts),
        setup_s=_median(p["setup_s"] for p in parts),
        engine_start_s=start,
        generation_s=per_row * max(replicas, 1.0),
        eval_method=method,
        tune_overhead=max(_number(meta.get("wall_vs_ideal"), 1.0), 1.0),
        train=dict(config.get("train", {})),
        measured=(meta.get("cost") or {}).get("study"),
        tokens_per_row=_median(p["tokens_per_row"] for p in trained),
        tokens_per_generation=_median(p["tokens_per_generation"] for p in parts),
        run_dtypes=tuple(
            sorted(
                {str(r["train"]["dtype"]) for r in results if (r.get("train") or {}).get("dtype")}
            )
        ),
    )


def _sweep_location(location: str) -> str:
    """A sweep directory from what users may name: it, or a file in it (an object-store
    URI keeps its options, `?endpoint_override=...`)."""
    path, mark, options = location.partition("?")
    path = path.rstrip("/")
    for name in ("sweep.json", "results.parquet", "results.csv"):
        if path.endswith("/" + name) or path == name:
            path = path[: -len(name)].rstrip("/") or "."
            break
    return path + mark + options


def _trial_parts(result: dict[str, Any], run: RunFiles, config: dict[str, Any]) -> dict:
    train = result.get("train") or {}
    tid = (result.get("trial") or {}).get("trial_id", "")
    stage = run.json(f"trials/{tid}/eval_validation/stage.json") or {}
    train_stage = _number((run.json(f"trials/{tid}/train/stage.json") or {}).get("seconds"), 0.0)
    steps = _number(train.get("steps_this_attempt", train.get("step")), 0.0)
    step_s = _number(train.get("seconds_per_step_median"), 0.0)
    fit = _number(train.get("wall_seconds"), 0.0)
    validation = _number(stage.get("seconds"), 0.0)
    batch = _number(config.get("train", {}).get("batch_size"), 1.0)
    val = [v for v in (result.get("validation") or {}).values() if isinstance(v, dict)]
    val_n = sum(_number(v.get("n"), 0.0) for v in val)
    val_tokens = sum(
        _number(v.get("n"), 0.0) * _number(v.get("mean_generated_tokens"), 0.0) for v in val
    )
    return {
        "trained": steps > 0,
        "tokens_per_row": _number(train.get("train_tokens"), 0.0) / max(steps * batch, 1.0),
        "tokens_per_generation": val_tokens / val_n if val_n else 0.0,
        "startup_s": max(fit - steps * step_s, 0.0),
        "row_s": step_s / max(batch, 1.0),
        "validation_s": validation,
        "validation_rows": sum(
            _number(v.get("n"), 0.0) for v in (result.get("validation") or {}).values()
        ),
        "rest_s": max(_number(result.get("trial_seconds"), fit) - fit - validation, 0.0),
        "setup_s": max(train_stage - fit, 0.0),
    }


def _test_pass(run: RunFiles) -> tuple[float, float]:
    """(seconds, generated rows) of the newest test pass; (0, 0) without one."""
    keys = [k for k in run.names("test_eval") if run.has(f"test_eval/{k}/stage.json")]
    if not keys:
        return 0.0, 0.0
    newest = max(keys, key=lambda k: run.mtime(f"test_eval/{k}/stage.json") or 0.0)
    stage = run.json(f"test_eval/{newest}/stage.json") or {}
    rows = sum(_number(r.get("n"), 0.0) for r in stage.get("result") or [] if isinstance(r, dict))
    return _number(stage.get("seconds"), 0.0), rows


def _evaluation_parts(
    val_s: float, val_rows: float, test: tuple[float, float]
) -> tuple[float, float, str]:
    """(engine start-up, seconds per generated row, method) from a trial's validation
    pass and the test pass: two passes of different sizes give both; with one pass its
    start-up is counted in its rows."""
    test_s, test_rows = test
    if val_rows > 0 and test_rows > val_rows:
        per_row = max((test_s - val_s) / (test_rows - val_rows), 0.0)
        start = max(val_s - per_row * val_rows, 0.0)
        return start, per_row, "validation and test passes"
    if test_rows > 0:
        return 0.0, test_s / test_rows, "the test pass alone (start-up counted per row)"
    if val_rows > 0:
        return 0.0, val_s / val_rows, "the validation passes alone (start-up counted per row)"
    return 0.0, 0.0, "no evaluation pass measured"


def _median(values: Any) -> float:
    values = list(values)
    return float(statistics.median(values)) if values else 0.0


def _number(value: Any, default: float) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else default


# --------------------------------------------------------------------------- checking


def check_comparable(cfg: SweepConfig, timings: Timings) -> list[str]:
    """Refuse timings of another model, dtype or device (they say nothing about this
    one); returns the training fields that differ (the estimate names them)."""
    ours = {
        "model.source": cfg.model.source,
        "model.dtype": cfg.model.dtype,
        "train.use_gpu": cfg.train.use_gpu,
    }
    theirs = {"model.source": timings.model, "model.dtype": timings.dtype}
    theirs["train.use_gpu"] = timings.use_gpu
    for name, value in ours.items():
        if str(value) != str(theirs[name]):
            raise UserError(
                f"{FIELD}: {timings.source} was measured with {name}={clip(theirs[name], 60)} "
                f"but this sweep has {name}={clip(value, 60)}; time a "
                f"short sweep of this config first (e.g. sweep.fractions=[0.25] sweep.seeds=[0] "
                f"on the same hardware) and pass its directory"
            )
    mine = cfg.train.model_dump()
    return [
        f"train.{k} {timings.train.get(k)} (measured) vs {mine.get(k)}"
        for k in _TRAIN_FIELDS
        if k in timings.train and timings.train.get(k) != mine.get(k)
    ]


# --------------------------------------------------------------------------- estimating


def estimate(cfg: SweepConfig, trials: list[Trial], plan: Plan, timings: Timings) -> Estimate:
    """Each trial's parts, the Tune wall time on the planned and the usual slot counts,
    and the one test pass."""
    differs = check_comparable(cfg, timings)
    replicas = cfg.generate.concurrency
    validation = 0.0  # every trial scores the same validation rows
    if cfg.sweep.validate_in == "trial":
        validation = pass_seconds(timings, split_rows(cfg, "validation"), replicas)
    costs = [trial_cost(cfg, t, timings, validation) for t in trials]
    slots = sorted({plan.concurrency, *SLOTS})
    walls = {n: makespan([c.seconds for c in costs], n) * timings.tune_overhead for n in slots}
    rows = test_generations(cfg, len(trials))
    tests = {
        n: pass_seconds(timings, rows, replicas if n == plan.concurrency else n) for n in slots
    }
    trials_used, test_used = usage_estimate(cfg, timings, costs, tests[plan.concurrency], rows)
    return Estimate(
        timings,
        costs,
        plan.concurrency,
        walls,
        tests,
        rows,
        replicas,
        differs,
        usage=cost.total([trials_used, test_used]),
        trials_usage=trials_used,
        test_usage=test_used,
        prices=dict(cfg.cost.prices),
    )


def usage_estimate(
    cfg: SweepConfig, t: Timings, costs: list[TrialCost], test_s: float, test_rows: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Resource-seconds as the trials record them (`sweep.trial.trial_usage`): the Train
    workers for the training stage (start-up + steps + the stage outside the fit), the
    engine actors for the validation pass, and the engine actors for the one test pass;
    tokens at the measured tokens per training row and per generated row."""
    train = cost.train_resources(cfg.train)
    engines = cost.engine_resources(cfg.generate, cost.engine_on_gpu(cfg.generate, t.use_gpu))
    val_rows = split_rows(cfg, "validation") if cfg.sweep.validate_in == "trial" else 0
    trials = cost.total(
        part
        for c in costs
        for part in (
            cost.usage(
                cost.times(train, c.startup_s + c.train_s + t.setup_s),
                tokens_trained=c.steps * cfg.train.batch_size * t.tokens_per_row,
            ),
            cost.usage(
                cost.times(engines, c.validation_s),
                tokens_generated=val_rows * t.tokens_per_generation,
            ),
        )
    )
    test = cost.usage(
        cost.times(engines, test_s), tokens_generated=test_rows * t.tokens_per_generation
    )
    return trials, test


def pass_seconds(t: Timings, rows: int, replicas: int) -> float:
    """An evaluation pass of `rows` generations: one start-up (replicas start side by
    side), then the rows split evenly over the engine replicas."""
    return t.engine_start_s + t.generation_s * rows / max(replicas, 1)


def trial_cost(cfg: SweepConfig, trial: Trial, t: Timings, validation: float) -> TrialCost:
    rows = trial_rows(trial, cfg.sweep.train_size)
    steps = train_steps(rows, cfg.train.batch_size, cfg.train.epochs, cfg.train.max_steps)
    train_s = steps * cfg.train.batch_size * t.row_s
    return TrialCost(trial.trial_id, rows, steps, t.startup_s, train_s, validation, t.rest_s)


def trial_rows(trial: Trial, train_size: int) -> int:
    """The training rows of `trial`'s cocktail at its fraction when every task has
    `train_size` train rows: `data.cocktail.row_counts`, what `mix` draws."""
    return _rows(trial.components, trial.fraction, trial.general, trial.math, train_size)


@functools.lru_cache(maxsize=4096)  # seeds, learning rates and ranks share their data
def _rows(
    components: tuple[tuple[str, float], ...],
    fraction: float,
    general: float,
    maths: float,
    train_size: int,
) -> int:
    from raysys.data.cocktail import parse_spec, row_counts

    spec = parse_spec(
        {
            "name": "estimate",
            "components": [{"task": t, "weight": w} for t, w in components],
            "general": general,
            "math": maths,
        }
    )
    return sum(row_counts(spec, dict.fromkeys(dict(components), train_size), fraction).values())


def train_steps(rows: int, batch_size: int, epochs: float, max_steps: int | None) -> int:
    if max_steps:
        return max_steps
    return max(1, math.ceil(math.ceil(rows / batch_size) * epochs))


def split_rows(cfg: SweepConfig, split: str) -> int:
    """Rows one adapter generates on `split`: the split's size per task that has it."""
    from raysys.sweep.trial import eval_task_names
    from raysys.tasks import get_task

    size = cfg.sweep.validation_size if split == "validation" else cfg.sweep.test_size
    return sum(size for name in eval_task_names(cfg) if split in get_task(name).splits)


def test_generations(cfg: SweepConfig, n_trials: int) -> int:
    """Rows of the one final pass: base + every adapter on the test splits (and on the
    validation splits with `sweep.validate_in: final`)."""
    per_model = split_rows(cfg, "test")
    if cfg.sweep.validate_in == "final":
        per_model += split_rows(cfg, "validation")
    return (n_trials + 1) * per_model


def makespan(seconds: list[float], slots: int) -> float:
    """Wall time of `seconds` run longest first, each on the slot that frees first."""
    free = [0.0] * max(1, min(slots, len(seconds)))
    for s in sorted(seconds, reverse=True):
        heapq.heapreplace(free, free[0] + s)
    return max(free)


# --------------------------------------------------------------------------- printing


def _ran_in(t: Timings) -> str:
    """The dtypes the trials computed in, when they differ from the configured one (bf16
    runs in float32 on a CPU without bf16 instructions): hardware with bf16 runs the same
    config at another speed. Empty when they match or were not recorded."""
    if any(d != t.dtype for d in t.run_dtypes):
        return f", run in {' and '.join(t.run_dtypes)} there"
    return ""


def format_estimate(est: Estimate) -> str:
    t, costs = est.timings, est.trials
    lines = [
        f"Estimate from {t.source}: {t.trials} finished trial(s) of {t.model} ({t.dtype}"
        f"{_ran_in(t)}, {'GPU' if t.use_gpu else 'CPU'}); the timings hold for this model on "
        "the same hardware only.",
        f"  a trial there: start-up {duration(t.startup_s)} (runner, model load, checkpoints) "
        f"+ {t.row_s:.3g} s per training row + rest {duration(t.rest_s)} (of which "
        f"{duration(t.setup_s)} in the training stage outside the fit: imports, the "
        "data preflight, copying the adapter)",
        f"  evaluation:    engine start-up {duration(t.engine_start_s)} + {t.generation_s:.3g} s "
        f"per generated row and engine replica (from {t.eval_method})",
        f"  Tune overhead: wall/ideal {t.tune_overhead:.2f} in that sweep, applied below",
        _grid_line(costs),
        "",
        f"{'slots':>6} {'Tune wall':>10} {'+ test pass':>12} {'total':>10}",
    ]
    for n, wall in est.walls.items():
        mark = "*" if n == est.planned else " "
        lines.append(
            f"{n:>5}{mark} {duration(wall):>10} {duration(est.tests[n]):>12} "
            f"{duration(wall + est.tests[n]):>10}"
        )
    lines.append(
        f"* planned: its test pass on generate.concurrency={est.replicas} engine replica(s); "
        "the other rows on as many replicas as slots. The test pass (base + "
        f"{len(costs):,} adapters, {est.test_generations:,} generated rows) runs once after "
        "Tune. Not counted: building the training data, starting Ray and the cluster."
    )
    lines += _cost_lines(est)
    if est.differs:
        differs = "; ".join(est.differs)
        lines.append(f"Differs from the measured run (time per row not rescaled): {differs}")
    return "\n".join(lines)


def _cost_lines(est: Estimate) -> list[str]:
    """The planned run's resource-seconds and cost (trials + test pass), and what the
    measured sweep itself recorded, for comparison."""
    if est.usage is None:
        return []
    prices = est.prices or {}
    lines = [
        f"Estimated cost (planned): {cost.describe(est.usage, prices)}",
        f"  trials {cost.price_text(est.trials_usage or {}, prices)}, test pass "
        f"{cost.price_text(est.test_usage or {}, prices)}; resource-seconds are what Ray "
        "schedules (Train workers while training, engine actors while generating) x time",
    ]
    if est.timings.measured:
        lines.append(
            f"  measured in {est.timings.source} (its own grid, {est.timings.trials} trial(s)): "
            f"{cost.describe(est.timings.measured, prices)}"
        )
    return lines


def _grid_line(costs: list[TrialCost]) -> str:
    total = sum(c.seconds for c in costs) or 1.0
    split = {
        "start-up": sum(c.startup_s for c in costs),
        "training": sum(c.train_s for c in costs),
        "validation": sum(c.validation_s for c in costs),
        "rest": sum(c.rest_s for c in costs),
    }
    shares = ", ".join(f"{k} {v / total:.0%}" for k, v in split.items())
    steps = [c.steps for c in costs]
    return (
        f"This grid: {len(costs):,} trials of {min(steps):,}-{max(steps):,} training steps, "
        f"{duration(total)} of trial time in all: {shares}"
    )


def duration(seconds: float) -> str:
    """`42 s`, `12.5 min`, `3.2 h`, `2.1 d`."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
