"""`raysys sweep --dry-run`: the grid and the resources it would use. Starts no Ray and
writes nothing; under `ray job submit` it attaches to the cluster to read what it has."""

from __future__ import annotations

import os

from raysys.config import SweepConfig
from raysys.sweep.grid import Plan, Trial, expand_grid, local_resources, plan_resources


def dry_run(cfg: SweepConfig) -> tuple[list[Trial], Plan]:
    """The grid and the resources it will use, without starting Ray or writing anything."""
    trials = expand_grid(cfg)
    if cfg.sweep.mlflow.tracking_uri:
        from raysys.sweep.tune import tune_callbacks

        tune_callbacks(cfg)  # a missing extra is refused here as in the real run
    available = local_resources(cfg)
    if cfg.ray.address or os.environ.get("RAY_ADDRESS"):
        # An existing cluster (e.g. under `ray job submit`): attach and read what it has
        # now; attaching starts nothing and writes nothing.
        import ray

        from raysys.runtime import init_ray

        init_ray(cfg.ray.address)
        available = {k: float(v) for k, v in ray.cluster_resources().items()}
    return trials, plan_resources(cfg, len(trials), available)
