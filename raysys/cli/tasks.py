"""`raysys tasks list|show`: the registered tasks; one task's splits, samples and prompt."""

from __future__ import annotations

import argparse


def add(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("tasks", help="list the tasks, or show one")
    tsub = t.add_subparsers(title="tasks commands")
    tl = tsub.add_parser("list", help="every registered task with its kind and splits")
    tl.set_defaults(func=run_list)
    ts = tsub.add_parser(
        "show", help="rows in the source vs rows a run uses, labels, one rendered prompt"
    )
    ts.add_argument("name", help="a task name or the path of a task YAML")
    ts.add_argument("--seed", type=int, default=0)
    ts.set_defaults(func=run_show)


def run_list(args: argparse.Namespace) -> int:
    from raysys.tasks import REGULARISERS, get_task, task_names

    print(f"{'task':18s} {'kind':15s} {'splits':24s} labels / description")
    for name in task_names():
        t = get_task(name)
        what = ", ".join(t.labels) if t.labels else t.description
        role = " (regulariser)" if name in REGULARISERS else ""
        print(f"{name:18s} {t.kind:15s} {','.join(t.splits):24s} {what}{role}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from raysys.tasks import build_splits
    from raysys.tasks.describe import default_sizes, describe

    sizes = default_sizes(args.name)
    found, reports = describe(args.name, sizes, args.seed)
    task = found.task
    row = build_splits(args.name, {task.splits[0]: 1}, args.seed)[task.splits[0]][0]
    print(f"{task.name}: {task.description}")
    print(f"kind: {task.kind}   main metric: {task.main_metric}")
    print(f"labels: {', '.join(task.labels) or '-'}")
    sized = ", ".join(f"{s} {n}" for s, n in sizes.items())
    print(f"rows a run uses at the default sizes ({sized}), seed {args.seed}:")
    for rep in reports:
        where = f"{rep.source_rows} rows in the source" if rep.source_rows else "generated"
        print(f"  {rep.split}: {where}, {rep.used_rows} used")
        if rep.source_rows and rep.source_labels:
            print(f"    source: {_labels(rep.source_labels)}")
        if rep.used_labels:
            print(f"    used:   {_labels(rep.used_labels)}")
    for note in getattr(found.source, "notes", []):
        print(f"  note: {note}")
    for warning in (w for rep in reports for w in rep.warnings):
        print(f"  warning: {warning}")
    print(f"\n--- prompt ({row['id']}) ---\n{task.messages(row)[0]['content']}")
    print(f"--- target ---\n{task.target(row)}")
    return 0


def _labels(counts: dict[str, int]) -> str:
    total = sum(counts.values()) or 1
    return ", ".join(f"{lab} {n} ({n / total:.0%})" for lab, n in counts.items())
