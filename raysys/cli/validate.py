"""`raysys validate CONFIG`: check a config (and the tasks it names) without running it."""

from __future__ import annotations

import argparse

from raysys.errors import UserError


def add(sub: argparse._SubParsersAction) -> None:
    v = sub.add_parser("validate", help="check a config file without running it")
    v.add_argument("config", help="YAML config file")
    v.add_argument("overrides", nargs="*", metavar="a.b=c")
    v.add_argument("--kind", default="quickstart", help="config kind (default: quickstart)")
    v.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from raysys.config import CONFIG_KINDS, dump_config
    from raysys.tasks.checks import load
    from raysys.uris import redact

    if args.kind not in CONFIG_KINDS:
        raise UserError(
            f"--kind: unknown config kind {args.kind!r}; choose one of {', '.join(CONFIG_KINDS)}"
        )
    cfg = load(CONFIG_KINDS[args.kind], args.config, args.overrides)
    print(f"{args.config}: valid {args.kind} config")
    print(redact(dump_config(cfg)), end="")
    return 0
