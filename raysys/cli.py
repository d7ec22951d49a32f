"""`raysys` console script: one subcommand per job. Thin: parse, call the library, print."""

from __future__ import annotations

import argparse
import logging
import sys
import time

from raysys.errors import UserError


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.INFO,
        format="[raysys %(asctime)s] %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stdout,
    )
    for noisy in ("ray", "transformers", "datasets", "filelock", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return args.func(args)
    except UserError as e:
        print(f"raysys: error: {e}", file=sys.stderr)
        return e.exit_code


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="raysys", description=__doc__)
    sub = p.add_subparsers(title="commands")

    q = sub.add_parser(
        "quickstart",
        help="evaluate the embedded model, LoRA-SFT it on Ray Train, evaluate again",
        description="Start (or attach to) Ray, evaluate the base model on a built-in finance task, "
        "fine-tune it with LoRA SFT through Ray Train, evaluate the adapter on the same held-out "
        "split and print a before/after table. Outputs go to <run.storage_path>/<run.name>/"
        "<run_id>/; re-run with run.run_id=<id> to resume.",
    )
    q.add_argument(
        "--config", help="YAML config (default: built-in defaults, see configs/quickstart.yaml)"
    )
    q.add_argument("overrides", nargs="*", metavar="a.b=c", help="override config fields")
    q.set_defaults(func=_cmd_quickstart)

    v = sub.add_parser("validate", help="check a config file without running it")
    v.add_argument("config", help="YAML config file")
    v.add_argument("overrides", nargs="*", metavar="a.b=c")
    v.add_argument("--kind", default="quickstart", help="config kind (default: quickstart)")
    v.set_defaults(func=_cmd_validate)
    return p


def _cmd_quickstart(args: argparse.Namespace) -> int:
    from raysys.config import QuickstartConfig, load_config
    from raysys.quickstart import run_quickstart

    cfg = load_config(QuickstartConfig, args.config, args.overrides)
    start = time.perf_counter()
    res = run_quickstart(cfg)
    print()
    print(f"Task {cfg.task.name}, test split ({res.after['n']} rows), model {cfg.model.source}:")
    print(res.table())
    t = res.train
    print(
        f"\nTrain: {t.get('step', 0):.0f} steps, loss {t.get('train_loss', float('nan')):.3f}, "
        f"{t.get('train_runtime', 0):.0f}s; total {time.perf_counter() - start:.0f}s"
    )
    print(f"Outputs: {res.run_dir}")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from raysys.config import CONFIG_KINDS, dump_config, load_config

    if args.kind not in CONFIG_KINDS:
        raise UserError(
            f"--kind: unknown config kind {args.kind!r}; choose one of {', '.join(CONFIG_KINDS)}"
        )
    cfg = load_config(CONFIG_KINDS[args.kind], args.config, args.overrides)
    print(f"{args.config}: valid {args.kind} config")
    print(dump_config(cfg), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
