"""The parser of one `raysys` subcommand, as the console script builds it."""

from __future__ import annotations

import argparse

from raysys.cli import build_parser


def subparser(name: str) -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]
