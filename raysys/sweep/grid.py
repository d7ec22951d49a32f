"""The sweep grid: cocktails (generated or explicit) x regulariser shares x fractions x seeds
(x learning rates x LoRA ranks), as a list of `Trial`s with stable ids.

A trial's id comes from its parameters, not its position, so a resumed sweep finds
each trial's folder (and its checkpoints) again whatever order Tune runs them in.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from raysys.config import COCKTAIL_GENERATORS, SweepConfig
from raysys.errors import UserError, clip

TUNE_KEY = "trial"  # a trial's parameters (`Trial.params()`) sit under this key of Tune's config


def tune_trial_id(config: dict[str, Any]) -> str:
    """The raysys trial id in a Tune trial's config (Tune's own trial id is another)."""
    return config[TUNE_KEY]["trial_id"]


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Trial:
    trial_id: str
    cocktail: str
    cocktail_kind: str  # singleton | pair | leave_one_out | all | explicit
    components: tuple[tuple[str, float], ...]  # (task, weight), weight > 0
    general: float
    math: float
    fraction: float
    seed: int
    learning_rate: float
    lora_r: int

    def params(self) -> dict[str, Any]:
        out = asdict(self)
        out["components"] = [list(c) for c in self.components]
        return out

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> Trial:
        comps = tuple((str(t), float(w)) for t, w in p["components"])
        return cls(**{**p, "components": comps})

    def spec(self) -> dict[str, Any]:
        """The trial's cocktail spec (with its regulariser shares) as a mapping."""
        return {
            "name": self.cocktail,
            "components": [{"task": t, "weight": w} for t, w in self.components],
            "general": self.general,
            "math": self.math,
        }


def expand_grid(cfg: SweepConfig) -> list[Trial]:
    """Every trial of the sweep, in FIFO order; bad cocktails fail before anything runs."""
    sw = cfg.sweep
    cocktails = _cocktails(sw.cocktails, _trainable(sw.tasks))
    lrs = sw.learning_rates or [cfg.train.learning_rate]
    ranks = sw.lora_ranks or [cfg.train.lora.r]
    trials, checked, ids = [], set(), {}
    for (name, kind, comps), g, m, f, seed, lr, r in itertools.product(
        cocktails, sw.general, sw.math, sw.fractions, sw.seeds, lrs, ranks
    ):
        parts = [_slug(name), f"g{_num(g)}", f"m{_num(m)}", f"f{_num(f)}", f"s{seed}"]
        parts += [f"lr{_num(lr)}"] if sw.learning_rates else []
        parts += [f"r{r}"] if sw.lora_ranks else []
        trial = Trial("-".join(parts), name, kind, comps, g, m, f, seed, lr, r)
        if (other := ids.get(trial.trial_id)) is not None:
            raise UserError(_collision(trial, other))
        ids[trial.trial_id] = trial
        if (comps, g, m) not in checked:  # once per mixture, not once per trial
            _check_cocktail(trial)
            checked.add((comps, g, m))
        trials.append(trial)
    return trials  # never empty: the config requires a cocktail and a value on every axis


def _collision(a: Trial, b: Trial) -> str:
    """Two parameter sets that would share a trial id (its folder, data and results),
    named by the parameters in which they differ."""
    pa, pb = b.params(), a.params()
    diff = [f"{k} {clip(pa[k], 40)} vs {clip(pb[k], 40)}" for k in pa if pa[k] != pb[k]]
    return (
        f"sweep: two trials would share the id {clip(a.trial_id, 60)} ({'; '.join(diff)[:120]}); "
        "rename a cocktail or make the values differ in their first 6 digits"
    )


def _trainable(tasks: list[str]) -> list[str]:
    from raysys.tasks import get_task

    out = []
    for name in tasks:
        task = get_task(name)
        if "train" not in task.splits:
            raise UserError(
                f"sweep.tasks: {name} has only a test split and cannot be trained on; "
                "move it to sweep.eval_tasks"
            )
        out.append(task.name)
    return out


Cocktail = tuple[str, str, tuple[tuple[str, float], ...]]


def _cocktails(items: list[str | dict[str, Any]], tasks: list[str]) -> list[Cocktail]:
    out: list[Cocktail] = []
    for item in items:
        out.extend(_generate(item, tasks) if item in COCKTAIL_GENERATORS else [_explicit(item)])
    seen: dict[Any, str] = {}
    names: set[str] = set()
    unique = []
    for name, kind, comps in out:
        key = tuple(sorted(comps))
        if key in seen:
            log.info("cocktail %s is the same mixture as %s; kept once", name, seen[key])
            continue
        if name in names:
            raise UserError(f"sweep.cocktails: two different cocktails are named {name!r}")
        seen[key], names = name, names | {name}
        unique.append((name, kind, comps))
    return unique


def _generate(gen: str, tasks: list[str]) -> list[Cocktail]:
    one = lambda ts: tuple((t, 1.0) for t in sorted(ts))  # noqa: E731
    if gen == "singletons":
        return [(t, "singleton", one([t])) for t in tasks]
    if gen == "pairs":
        if len(tasks) < 2:
            raise UserError("sweep.cocktails: pairs needs at least 2 sweep.tasks")
        return [("+".join(p), "pair", one(p)) for p in itertools.combinations(sorted(tasks), 2)]
    if gen == "leave_one_out":
        if len(tasks) < 2:
            raise UserError("sweep.cocktails: leave_one_out needs at least 2 sweep.tasks")
        return [(f"loo-{t}", "leave_one_out", one(set(tasks) - {t})) for t in sorted(tasks)]
    return [("all", "all", one(tasks))]


def _explicit(item: str | dict[str, Any]) -> Cocktail:
    from raysys.data.cocktail import parse_spec
    from raysys.data.mixing import read_cocktail_file, resolve_spec

    where = item if isinstance(item, str) else "an inline cocktail"
    if isinstance(item, str):
        spec = resolve_spec(read_cocktail_file(Path(item), "sweep.cocktails"))
    else:
        spec = resolve_spec(parse_spec(item))
    if spec.general or spec.math:
        raise UserError(
            f"sweep.cocktails: {where} sets general/math; set the shares on the sweep's "
            "sweep.general / sweep.math axes instead"
        )
    comps = tuple(sorted((c.task, float(c.weight)) for c in spec.components if c.weight > 0))
    name = spec.name or "+".join(t for t, _ in comps)
    return (name, "explicit", comps)


def _check_cocktail(trial: Trial) -> None:
    from raysys.data.cocktail import parse_spec
    from raysys.data.mixing import check_against_registry

    check_against_registry(parse_spec(trial.spec()))


def _slug(name: str) -> str:
    # Trial ids name PEFT adapters, whose module names cannot hold "."
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name.replace("+", "_"))


def _num(x: float) -> str:
    return f"{x:g}".replace(".", "p")


# --------------------------------------------------------------------------- resources


@dataclass(frozen=True)
class Plan:
    concurrency: int
    per_trial: dict[str, float]  # resources one trial's training holds
    available: dict[str, float]
    why: str


def plan_resources(cfg: SweepConfig, n_trials: int, available: dict[str, float]) -> Plan:
    """How many trials run at once: explicit, or what the cluster's CPUs/GPUs hold."""
    t = cfg.train
    need = {"GPU": float(t.num_workers)} if t.use_gpu else {}
    need["CPU"] = float(t.num_workers * (0 if t.use_gpu else t.cpus_per_worker))
    if cfg.sweep.max_concurrent_trials:
        n = min(cfg.sweep.max_concurrent_trials, n_trials)
        return Plan(n, need, available, "sweep.max_concurrent_trials")
    key = "GPU" if t.use_gpu else "CPU"
    fit = math.floor(available.get(key, 0) / need[key] + 1e-9)
    if fit < 1:
        why = (
            f"the cluster has {available.get(key, 0):g} {key} now (an autoscaler may add more); "
            "running 1 at a time, set sweep.max_concurrent_trials to run more"
        )
        return Plan(1, need, available, why)
    return Plan(min(fit, n_trials), need, available, f"{key}s available / {key}s per trial")


def local_resources(cfg: SweepConfig) -> dict[str, float]:
    """What a new local Ray would offer (for --dry-run, which starts no Ray)."""
    return {"CPU": float(cfg.ray.num_cpus or os.cpu_count() or 1)}


def format_grid(trials: list[Trial], plan: Plan | None = None) -> str:
    """The trial table (and the resource plan) as plain text."""
    head = f"{'trial':<44} {'cocktail':<30} {'gen':>4} {'math':>4} {'frac':>5} {'seed':>4}"
    lines = [head, "-" * len(head)]
    for t in trials:
        lines.append(
            f"{t.trial_id[:44]:<44} {t.cocktail[:30]:<30} {t.general:>4g} {t.math:>4g} "
            f"{t.fraction:>5g} {t.seed:>4}"
        )
    lines.append(f"{len(trials)} trials")
    if plan is not None:
        per = ", ".join(f"{v:g} {k}" for k, v in plan.per_trial.items() if v)
        have = ", ".join(f"{v:g} {k}" for k, v in plan.available.items() if k in ("CPU", "GPU"))
        lines.append(
            f"each trial trains on {per}; cluster: {have}; "
            f"{plan.concurrency} trial(s) at a time ({plan.why})"
        )
    return "\n".join(lines)
