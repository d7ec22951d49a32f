"""The rows a training run reads: a parquet file, or a cocktail materialised at a data
fraction into the storage's cocktail cache (`raysys data mix` and `raysys train` alike)."""

from __future__ import annotations

import logging
from pathlib import Path

from raysys.config import TrainConfig
from raysys.errors import UserError

log = logging.getLogger(__name__)


def training_data(cfg: TrainConfig, storage: Path) -> str:
    """The parquet this config trains on: `data.path`, or its cocktail materialised."""
    if cfg.data.path is not None:
        from raysys.storage import localize

        # s3:// or gs://: fetched into the cache first
        path = Path(localize(cfg.data.path, "data.path")).expanduser()
        if not path.exists():
            raise UserError(f"data.path: {path} not found; point it at a training parquet")
        return str(path.resolve())
    from raysys.data.mixing import materialize_cocktail, read_cocktail_file

    spec = read_cocktail_file(Path(cfg.data.cocktail or ""), "data.cocktail")
    path, counts = materialize_cocktail(
        spec, cfg.data.fraction, cfg.run.seed, storage, cfg.data.train_size
    )
    log.info("cocktail rows: %s", counts)
    return str(path)


def mix_file(
    spec: Path, fraction: float, seed: int, storage: str, train_size: int
) -> tuple[str, dict[str, int]]:
    """`raysys data mix`: the cocktail file at `fraction` under `storage` (a path, s3:// or
    gs://, probed first); returns where it is (as the user names it) and rows per task."""
    from raysys.data.mixing import materialize_cocktail, read_cocktail_file
    from raysys.runs import check_job_storage, publish, storage_root

    if not 0 < fraction <= 1:
        raise UserError(f"--fraction must be in (0, 1], got {fraction}")
    if train_size < 1:
        raise UserError(f"--train-size must be >= 1, got {train_size}")
    cocktail = read_cocktail_file(spec, "cocktail file")
    check_job_storage(storage, field="--storage")  # an object store is probed first
    root = storage_root(storage, field="--storage")
    path, counts = materialize_cocktail(cocktail, fraction, seed, root, train_size)
    return publish(Path(path).parent), counts  # s3:// or gs://: sent to the store
