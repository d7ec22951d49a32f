"""What the subcommands share: config arguments, loading, naming outputs."""

from __future__ import annotations

import argparse
from typing import Any


def config_args(p: argparse.ArgumentParser, example: str) -> None:
    p.add_argument("config", nargs="?", help=f"YAML config (see {example})")
    p.add_argument("overrides", nargs="*", metavar="a.b=c", help="override config fields")


def load(kind: type, args: argparse.Namespace) -> Any:
    """The command's config: its YAML (optional) and overrides, checked (tasks included)."""
    from raysys.tasks.checks import load as load_checked

    config, overrides = args.config, list(args.overrides)
    if config is not None and "=" in config:  # only overrides were given
        config, overrides = None, [config, *overrides]
    return load_checked(kind, config, overrides)


def where(path: object) -> str:
    """A path as the user should see it: the object-store URI of a mirrored run."""
    from raysys.runs import shown

    return shown(str(path))
