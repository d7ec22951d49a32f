"""What every `ray job submit` entrypoint in jobs/ shares: find raysys, accept
`--config PATH` as well as the CLI's positional config, run one `raysys` subcommand.

Under `ray job submit` Ray sets $RAY_ADDRESS and `raysys.runtime.init_ray` attaches to
that cluster; without it (`python jobs/X.py` on a laptop) raysys starts a private local
Ray. Each job prints where its outputs went (`Outputs:` / `Report:`).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def ensure_raysys() -> None:
    """Import raysys from the cluster's install, else from the checkout this file is in
    (the `--working-dir` upload, where raysys need not be pip-installed)."""
    try:
        import raysys  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(REPO))


def cli_args(job: str, argv: list[str]) -> list[str]:
    """`--config PATH a.b=c` -> `PATH a.b=c` (the CLI's form); other args pass through."""
    config, rest, i = None, [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--config" and i + 1 < len(argv):
            config, i = argv[i + 1], i + 2
            continue
        if arg.startswith("--config="):
            config = arg.split("=", 1)[1]
        elif arg == "--config":
            _usage_error(job, "--config needs a YAML path")
        else:
            rest.append(arg)
        i += 1
    if config is None:
        return rest
    positional = [a for a in rest if not a.startswith("-") and "=" not in a]
    if positional:
        _usage_error(job, f"--config {config} and a positional config {positional[0]}: give one")
    return [config, *rest]


def run(command: str, doc: str | None, argv: list[str] | None = None) -> int:
    """Run `raysys COMMAND` with this job's arguments; returns its exit code."""
    ensure_raysys()
    from raysys.cli import main

    argv = list(sys.argv[1:] if argv is None else argv)
    job = f"jobs/{command}.py"
    if "-h" in argv or "--help" in argv:
        print((doc or "").strip(), end="\n\n")
        if command != "report":
            print(f"usage: python {job} [--config PATH | PATH] [a.b=c ...] [options]")
            print("  --config PATH    the YAML config (the same as giving it positionally)\n")
        print(f"{job} takes the arguments of `raysys {command}`:", flush=True)
        return main([command, "--help"])  # argparse exits 0 after printing
    if command == "report":
        return main([command, *argv])
    return main([command, *cli_args(job, argv)])


def _usage_error(job: str, message: str) -> None:
    print(f"{job}: error: {message}", file=sys.stderr)
    raise SystemExit(2)
