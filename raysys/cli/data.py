"""`raysys data mix SPEC`: a cocktail at a data fraction, as chat parquet."""

from __future__ import annotations

import argparse
from pathlib import Path


def add(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("data", help="build training data")
    dsub = d.add_subparsers(title="data commands")
    dm = dsub.add_parser(
        "mix",
        help="materialise a cocktail at a data fraction as chat parquet (reused if built before)",
        description="Mix the train splits of the cocktail's tasks (plus general/math "
        "regularisers) at a nested, machine-independent data fraction; write chat-format "
        "parquet under <storage>/cocktails/<content hash>/ and print rows per task.",
    )
    dm.add_argument(
        "spec", help="cocktail YAML: {name, components: [{task, weight}], general, math}"
    )
    dm.add_argument("--fraction", type=float, default=1.0, help="data fraction in (0, 1]")
    dm.add_argument("--seed", type=int, default=0)
    dm.add_argument(
        "--storage", default="./runs", help="storage root: a path, s3:// or gs:// (default ./runs)"
    )
    dm.add_argument("--train-size", type=int, default=400, help="train rows per generated task")
    dm.set_defaults(func=run_mix)


def run_mix(args: argparse.Namespace) -> int:
    from raysys.train.data import mix_file

    where, counts = mix_file(
        Path(args.spec), args.fraction, args.seed, args.storage, args.train_size
    )
    print(f"{'task':18s} rows")
    for task, n in counts.items():
        print(f"{task:18s} {n}")
    print(f"{'total':18s} {sum(counts.values())}\nOutputs: {where}/train.parquet")
    return 0
