"""What a sweep prepares before Ray Tune runs: every task's rows (read, checked,
materialised in the sweep directory) and every distinct training dataset, built once and
checked as training would check it."""

from __future__ import annotations

import logging
from typing import Any

from raysys.config import SweepConfig
from raysys.sweep.grid import Trial
from raysys.tasks.store import Need, Prepared

log = logging.getLogger(__name__)


def task_needs(cfg: SweepConfig) -> list[Need]:
    """Every task's rows the sweep uses: train (trainable tasks and regularisers in use)
    and the held-out splits each task has."""
    from raysys.tasks import REGULARISERS, get_task

    sw = cfg.sweep
    hold = {"validation": sw.validation_size, "test": sw.test_size}
    shares = [list(sw.general), list(sw.math)]
    if cfg.search is not None:  # the shares a search ranges over
        shares = [
            s + (r or [0.0])
            for s, r in zip(shares, (cfg.search.general, cfg.search.math), strict=True)
        ]
    regs = [t for t, s in zip(REGULARISERS, shares, strict=True) if max(s) > 0]
    needs = []
    for ref in [*sw.tasks, *regs, *(sw.eval_tasks or [])]:
        splits = get_task(ref).splits
        sizes = {s: n for s, n in hold.items() if s in splits}
        if ref in sw.tasks or ref in regs:
            sizes["train"] = sw.train_size
        needs.append(Need(ref, sizes))
    return needs


def prepare_tasks(cfg: SweepConfig, resume: bool) -> Prepared:
    """Read and check every task's rows (a resumed sweep reuses the rows it started with,
    fetched from its object store first); `write()` puts them in the sweep directory."""
    from raysys.runs import RunDir
    from raysys.tasks.store import prepare

    run = cfg.run
    sweep = RunDir.of(run.storage_path, run.name, str(run.run_id), fetch=resume)
    return prepare(sweep.path, task_needs(cfg), run.seed)


def check_contamination(cfg: SweepConfig, tasks: Prepared) -> Any:
    """Every training row against every evaluation split (`raysys.data.contamination`);
    refused per `cfg.contamination`, nothing written. A resumed sweep whose rows did not
    change reuses the stored result."""
    from raysys.data import contamination as c
    from raysys.sweep.trial import eval_task_names

    train, evals = c.parts(tasks.rows(), eval_task_names(cfg))
    result = c.cached(tasks.run_dir, train, evals, c.Settings.of(cfg.contamination))
    log.info(
        "contamination check: %d of %d evaluation splits overlap the training rows",
        len(result.found()),
        len(result.splits),
    )
    return result


def prepare_data(
    cfg: SweepConfig, trials: list[Trial], model_path: str
) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """Build every distinct (cocktail, shares, fraction) once and check it as training
    would (columns, chat template, EOS after truncation). Returns each trial's data
    (path, rows per task), which trials only read, and the build counts."""
    from raysys.runs import storage_root
    from raysys.sweep.trial import trial_data
    from raysys.train.launch import preflight

    root = storage_root(cfg.run.storage_path)
    datasets: dict[tuple, dict[str, Any]] = {}
    by_trial = {}
    for t in trials:
        key = (t.components, t.general, t.math, t.fraction)
        if key not in datasets:
            datasets[key] = trial_data(cfg, t, root)
            preflight(datasets[key]["path"], model_path, cfg.train)
        by_trial[t.trial_id] = {k: v for k, v in datasets[key].items() if k != "built"}
    built = sum(d["built"] for d in datasets.values())
    log.info(
        "training data: %d datasets (%d built, %d cached)",
        len(datasets),
        built,
        len(datasets) - built,
    )
    stats = {"datasets": len(datasets), "data_built": built, "data_cached": len(datasets) - built}
    return by_trial, stats
