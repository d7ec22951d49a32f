"""`raysys` console script: one module per subcommand, each a parser and a `run` that
parses, calls one library function and prints. Heavy imports wait inside `run`, so
`raysys --help` starts in a blink."""

from __future__ import annotations

import argparse
import sys

from raysys.cli import (
    data,
    evaluation,
    pipeline,
    quickstart,
    report,
    search,
    status,
    sweep,
    synth,
    tasks,
    train,
    validate,
)
from raysys.errors import UserError

COMMANDS = (
    quickstart,
    pipeline,
    train,
    evaluation,
    synth,
    sweep,
    search,
    report,
    status,
    tasks,
    data,
    validate,
)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in argv  # anywhere: `raysys sweep CFG --verbose` too
    args, extra = parser.parse_known_args([a for a in argv if a != "--verbose"])
    args.verbose = verbose
    # `raysys sweep CFG --dry-run a.b=c`: overrides after a flag are overrides too
    if extra and hasattr(args, "overrides") and all("=" in a and a[0] != "-" for a in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)[:200]}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    _logging(args.verbose)
    try:
        return args.func(args)
    except UserError as e:
        from raysys.errors import one_line
        from raysys.uris import redact

        print(f"raysys: error: {one_line(redact(str(e)))}", file=sys.stderr)
        return e.exit_code
    except OSError as e:
        return _storage_trouble(e)
    finally:
        from raysys import console

        console.restore()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="raysys",
        description="Fine-tune LLMs for a domain on Ray: LoRA SFT on Ray Train, evaluation and "
        "generation on Ray Data, task mixtures. `raysys COMMAND --help` for each command.",
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        help="show Ray's, Tune's, Train's and the libraries' own output on the console too "
        "(default: it goes to <run dir>/logs/driver.log and Ray's session logs)",
    )
    sub = p.add_subparsers(title="commands")
    for command in COMMANDS:
        command.add(sub)
    return p


def _logging(verbose: bool) -> None:
    from raysys import console
    from raysys.uris import install_log_redaction

    console.setup(verbose)
    install_log_redaction()  # a URI logged anywhere leaves without its credentials


def _storage_trouble(e: OSError) -> int:
    """Storage trouble mid-run (full, read-only, permissions): every finished stage and
    checkpoint was written atomically and stays; the run resumes once it is fixed."""
    from raysys.storage import is_storage_error, one_line

    if not is_storage_error(e):
        raise e
    print(
        f"raysys: error: storage not writable: {one_line(e)}; what finished is kept; fix "
        "the storage (space, permissions, mount) and run the same command again (--resume "
        "for sweeps and pipelines) to continue",
        file=sys.stderr,
    )
    return 1
