"""`raysys` console script: one subcommand per job. Thin: parse, call the library, print."""

from __future__ import annotations

import argparse
import logging
import sys
import time

from raysys.errors import UserError


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    # `raysys sweep CFG --dry-run a.b=c`: overrides after a flag are overrides too
    if extra and hasattr(args, "overrides") and all("=" in a and a[0] != "-" for a in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)[:200]}")
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
    from raysys.errors import one_line
    from raysys.storage import install_log_redaction, redact

    install_log_redaction()  # a URI logged anywhere leaves without its credentials
    try:
        return args.func(args)
    except UserError as e:
        print(f"raysys: error: {one_line(redact(str(e)))}", file=sys.stderr)
        return e.exit_code
    except OSError as e:
        from raysys.storage import is_storage_error
        from raysys.storage import one_line as storage_line

        if not is_storage_error(e):
            raise
        # Storage trouble mid-run (full, read-only, permissions): every finished stage and
        # checkpoint was written atomically and stays; the run resumes once it is fixed.
        print(
            f"raysys: error: storage not writable: {storage_line(e)}; what finished is kept; fix "
            "the storage (space, permissions, mount) and run the same command again (--resume "
            "for sweeps and pipelines) to continue",
            file=sys.stderr,
        )
        return 1


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="raysys",
        description="Fine-tune LLMs for a domain on Ray: LoRA SFT on Ray Train, evaluation and "
        "generation on Ray Data, task mixtures. `raysys COMMAND --help` for each command.",
    )
    sub = p.add_subparsers(title="commands")

    q = sub.add_parser(
        "quickstart",
        help="a small complete study on the embedded model: sweep, DPO gate, synthesis, report",
        description="On local Ray (or the cluster of $RAY_ADDRESS): evaluate the base model; "
        "a small cocktail x fraction SFT sweep on Ray Tune + Ray Train; DPO if the SFT model's "
        "outputs run overlong or miss the answer format; label the test-only stance task by "
        "CoT voting and train on it; score every adapter in one engine pass; write report.html "
        "(pipeline table, transfer matrix, leaderboard, scaling points). --preset full runs the "
        "same study at the study's size and hyperparameters (needs a GPU cluster).",
    )
    q.add_argument(
        "--preset",
        choices=["embedded", "full"],
        default="embedded",
        help="embedded: ~7 min on 2 CPU cores (default); full: the study's size, GPUs",
    )
    q.add_argument("--config", help="a pipeline YAML instead of the preset")
    q.add_argument(
        "--resume", action="store_true", help="continue the latest quickstart run (or run.run_id)"
    )
    q.add_argument("overrides", nargs="*", metavar="a.b=c", help="override config fields")
    q.set_defaults(func=_cmd_quickstart)

    pl = sub.add_parser(
        "pipeline",
        help="the study's sequence: SFT, DPO (gated), N x (synthesis, SFT), eval after each",
        description="Evaluate the base model, LoRA-SFT on pipeline.tasks (or run a sweep as the "
        "SFT stage), run DPO when the SFT model's outputs on training inputs are overlong or "
        "miss the answer format more than the thresholds, then for pipeline.rounds rounds label "
        "pipeline.synth_tasks by CoT voting with the current model and SFT on gold + synthetic "
        "rows; evaluate after every stage; write pipeline.json and report.html under "
        "<run.storage_path>/<run.name>/<run_id>/. Stages are keyed by their config: --resume "
        "(or the same run.run_id) skips finished stages and resumes the interrupted one.",
    )
    _config_args(pl, "configs/pipeline.yaml")
    pl.add_argument(
        "--resume", action="store_true", help="continue run.run_id (default: the latest run)"
    )
    pl.set_defaults(func=_cmd_pipeline)

    tr = sub.add_parser(
        "train",
        help="LoRA SFT or DPO of any model on Ray Train (resumable)",
        description="Train a LoRA adapter with TRL inside a Ray Train TorchTrainer: SFT on chat "
        "rows or a cocktail, or DPO on prompt/chosen/rejected rows (after SFT: set "
        "train.init_adapter to the SFT adapter; the DPO reference is then the SFT model). "
        "Outputs go to <run.storage_path>/<run.name>/<run_id>/train/; re-run with "
        "run.run_id=<id> to resume from the latest checkpoint.",
    )
    _config_args(tr, "configs/train_sft.yaml")
    tr.set_defaults(func=_cmd_train)

    ev = sub.add_parser(
        "eval",
        help="evaluate the base model and any number of adapters on any tasks, in one pass",
        description="One Ray Data pass: each engine actor loads the base model once and every "
        "adapter by name (canary: each adapter must change the model's outputs). Writes the raw "
        "generations and a table with one row per (adapter, task) to "
        "<run.storage_path>/<run.name>/<run_id>/eval/.",
    )
    _config_args(ev, "configs/eval.yaml")
    ev.set_defaults(func=_cmd_eval)

    sy = sub.add_parser(
        "synth",
        help="label unlabeled inputs by chain-of-thought sampling and majority vote",
        description="Sample synth.samples step-by-step answers per input, extract each answer "
        "(strict regex, then flexible), keep the majority when at least synth.min_agreement of "
        "the samples agree; write SFT rows, DPO pairs and statistics to "
        "<run.storage_path>/<run.name>/<run_id>/synth/. Re-run with the same run.run_id to "
        "resume: inputs already labeled are skipped.",
    )
    _config_args(sy, "configs/synth.yaml")
    sy.set_defaults(func=_cmd_synth)

    sw = sub.add_parser(
        "sweep",
        help="a Ray Tune grid of LoRA SFT runs (cocktails x fractions x seeds) and its report",
        description="Expand the grid (cocktail generators or explicit cocktails, regulariser "
        "shares, data fractions, seeds, optional learning rates / LoRA ranks), run every trial "
        "on Ray Tune (data -> Ray Train SFT -> validation scores), score every adapter and the "
        "base model on the test splits in one pass, and write results and report.html under "
        "<run.storage_path>/<run.name>/<run_id>/. --resume continues an interrupted sweep "
        "(finished trials are not run again).",
    )
    _config_args(sw, "configs/sweep.yaml")
    sw.add_argument("--dry-run", action="store_true", help="print the trials and resources only")
    sw.add_argument(
        "--resume",
        action="store_true",
        help="continue the sweep of run.run_id (default: the latest one of run.name)",
    )
    sw.add_argument(
        "--retry-errored", action="store_true", help="with --resume: run errored trials again"
    )
    sw.set_defaults(func=_cmd_sweep)

    rp = sub.add_parser(
        "report",
        help="(re)write a sweep's or a pipeline's report (transfer, leaderboard, scaling, stages)",
        description="Read <SWEEP_DIR>/results.parquet and write report.md, report.html (plots "
        "embedded, readable offline), plots/*.png and the analysis CSVs next to it.",
    )
    rp.add_argument(
        "sweep_dir", help="a sweep directory (results.parquet) or a pipeline run (pipeline.json)"
    )
    rp.set_defaults(func=_cmd_report)

    t = sub.add_parser("tasks", help="list the tasks, or show one")
    tsub = t.add_subparsers(title="tasks commands")
    tl = tsub.add_parser("list", help="every registered task with its kind and splits")
    tl.set_defaults(func=_cmd_tasks_list)
    ts = tsub.add_parser("show", help="split sizes, labels and one rendered prompt of a task")
    ts.add_argument("name")
    ts.add_argument("--seed", type=int, default=0)
    ts.set_defaults(func=_cmd_tasks_show)

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
    dm.set_defaults(func=_cmd_data_mix)

    v = sub.add_parser("validate", help="check a config file without running it")
    v.add_argument("config", help="YAML config file")
    v.add_argument("overrides", nargs="*", metavar="a.b=c")
    v.add_argument("--kind", default="quickstart", help="config kind (default: quickstart)")
    v.set_defaults(func=_cmd_validate)
    return p


def _cmd_quickstart(args: argparse.Namespace) -> int:
    from raysys.config import PipelineConfig, load_config
    from raysys.pipeline.presets import preset_path

    cfg = load_config(PipelineConfig, args.config or preset_path(args.preset), args.overrides)
    return _run_pipeline(cfg, args.resume)


def _cmd_pipeline(args: argparse.Namespace) -> int:
    from raysys.config import PipelineConfig, load_config

    config, overrides = _config_and_overrides(args)
    cfg = load_config(PipelineConfig, config, overrides)
    return _run_pipeline(cfg, args.resume)


def _run_pipeline(cfg, resume: bool) -> int:
    from pathlib import Path

    from raysys.pipeline.report import headline
    from raysys.pipeline.run import run_pipeline

    start = time.perf_counter()
    out = run_pipeline(cfg, resume=resume)
    s = out.summary
    print()
    print(f"Test main metric per task and stage (model {cfg.model.source}):")
    print(headline(s, out.run_dir))
    if s.get("dpo"):
        print(f"\nDPO {'ran' if s['dpo']['run'] else 'skipped'}: {s['dpo']['why']}")
    for rnd in s.get("synthesis", []):
        for task, st in rnd["tasks"].items():
            acc = st.get("kept_label_accuracy")
            acc_s = f", kept-label accuracy {acc:.3f}" if acc is not None else ""
            print(
                f"Synthesis round {rnd['round']} ({task}): {st['kept']}/{st['inputs']} kept "
                f"(yield {st['yield']:.2f}){acc_s}"
            )
    if s.get("sweep_dir"):
        print()
        print(_headline(Path(s["sweep_dir"])))
    times = ", ".join(
        f"{st['stage']} {st['seconds']:.0f}s" for st in s["stages"] if not st["skipped"]
    )
    print(f"\nStages: {times or 'all done earlier'}; total {time.perf_counter() - start:.0f}s")
    print(f"Report: {_where(out.report['html'])}")
    return 0


def _where(path: object) -> str:
    """A path as the user should see it: the object-store URI of a mirrored run."""
    from raysys.storage import shown

    return shown(str(path))


def _cmd_train(args: argparse.Namespace) -> int:
    from raysys.config import TrainConfig, load_config
    from raysys.train.job import run_train_job

    config, overrides = _config_and_overrides(args)
    cfg = load_config(TrainConfig, config, overrides)
    run_dir, s = run_train_job(cfg)
    print()
    print(
        f"{cfg.train.method.upper()} on {s.get('world_size', 1)} worker(s), "
        f"model {cfg.model.source}"
    )
    print(
        f"steps {s.get('step', 0):.0f}, final loss {s.get('loss', float('nan')):.4f}, "
        f"{s.get('seconds_per_step_mean') or 0:.2f} s/step, "
        f"{s.get('tokens_per_second') or 0:.0f} tokens/s, MFU {100 * (s.get('mfu') or 0):.2f}%, "
        f"peak memory {(s.get('peak_memory_bytes') or 0) / 2**30:.2f} GiB"
    )
    print(f"Adapter: {_where(run_dir / 'train' / 'adapter')}")
    print(f"Outputs: {_where(run_dir)}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from raysys.config import EvalConfig, load_config
    from raysys.evaluate.job import run_eval_job
    from raysys.evaluate.run import format_results

    config, overrides = _config_and_overrides(args)
    cfg = load_config(EvalConfig, config, overrides)
    run_dir, results = run_eval_job(cfg)
    print()
    print(format_results(results))
    print(f"Outputs: {_where(run_dir / 'eval')}")
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from raysys.config import SynthConfig, load_config
    from raysys.synth.job import run_synth_job

    config, overrides = _config_and_overrides(args)
    cfg = load_config(SynthConfig, config, overrides)
    run_dir, st = run_synth_job(cfg)
    print()
    print(
        f"{cfg.synth.task}: {st['inputs']} inputs x {cfg.synth.samples} samples, kept "
        f"{st['kept']} (yield {st['yield']:.2f}) at agreement >= {cfg.synth.min_agreement}; "
        f"{st['sft_rows']} SFT rows, {st.get('dpo', {}).get('pairs', 0)} DPO pairs"
    )
    if st.get("kept_label_accuracy") is not None:
        print(f"accuracy of kept labels vs held-back gold: {st['kept_label_accuracy']:.3f}")
    print(f"Outputs: {_where(run_dir / 'synth')}")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from raysys.config import SweepConfig, load_config
    from raysys.sweep.grid import format_grid

    config, overrides = _config_and_overrides(args)
    cfg = load_config(SweepConfig, config, overrides)
    if args.retry_errored and not args.resume:
        raise UserError("--retry-errored needs --resume (it retries a sweep's errored trials)")
    if args.dry_run:
        from raysys.sweep.run import dry_run

        trials, plan = dry_run(cfg)
        print(format_grid(trials, plan))
        return 0
    from raysys.sweep.run import run_sweep

    start = time.perf_counter()
    out = run_sweep(cfg, resume=args.resume, retry_errored=args.retry_errored)
    m = out.meta
    print()
    print(_headline(out.sweep_dir))
    print(
        f"\n{m['finished']} trials, {m['concurrency']} at a time: "
        f"Tune {m['tune_wall_seconds']:.0f}s (ideal {m['ideal_seconds']:.0f}s, "
        f"{m['wall_vs_ideal']:.2f}x); {m['datasets']} datasets ({m['data_built']} built, "
        f"{m['data_cached']} cached); total {time.perf_counter() - start:.0f}s"
    )
    retried = {t: c for t, c in m.get("failures", {}).items() if t not in m["errored"]}
    if retried:  # finished after Tune started them again (sweep.max_trial_failures)
        tid, causes = next(iter(retried.items()))
        print(
            f"{len(retried)} trial(s) finished after a retry ({tid}: {causes[-1]}); "
            "every failure is in sweep.json (failures)"
        )
    print(f"Report: {_where(out.sweep_dir / 'report.html')}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from raysys.storage import is_remote, local_root, pull, push
    from raysys.sweep.run import write_sweep_report

    if is_remote(args.sweep_dir):  # a run in an object store: fetched, rewritten, sent back
        sweep_dir = local_root(args.sweep_dir, field="SWEEP_DIR")
        pull(args.sweep_dir, sweep_dir, exclude=("tune/*",))
    else:
        sweep_dir = Path(args.sweep_dir)
    if (sweep_dir / "pipeline.json").is_file():
        from raysys.data.io import read_json
        from raysys.pipeline.report import headline, write_pipeline_report

        summary = read_json(sweep_dir / "pipeline.json", "SWEEP_DIR")
        if not isinstance(summary, dict) or "models" not in summary:
            raise UserError(
                f"{sweep_dir / 'pipeline.json'} is not a pipeline summary; rerun the pipeline "
                "with --resume to rewrite it"
            )
        _, html = write_pipeline_report(sweep_dir, summary)
        print(headline(summary, sweep_dir))
        push(sweep_dir)
        print(f"Report: {_where(html)}")
        return 0
    if not (sweep_dir / "results.parquet").is_file():
        raise UserError(
            f"{sweep_dir}: no results.parquet; point it at a finished sweep directory "
            "(<run.storage_path>/<run.name>/<run_id>)"
        )
    write_sweep_report(sweep_dir)
    print(_headline(sweep_dir))
    push(sweep_dir)
    print(f"Report: {_where(sweep_dir / 'report.html')}")
    return 0


def _headline(sweep_dir) -> str:
    from raysys.analysis.report import sweep_headline

    return sweep_headline(sweep_dir)


def _config_args(p: argparse.ArgumentParser, example: str) -> None:
    p.add_argument("config", nargs="?", help=f"YAML config (see {example})")
    p.add_argument("overrides", nargs="*", metavar="a.b=c", help="override config fields")


def _config_and_overrides(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    config, overrides = args.config, list(args.overrides)
    if config is not None and "=" in config:  # only overrides were given
        config, overrides = None, [config, *overrides]
    return config, overrides


def _cmd_tasks_list(args: argparse.Namespace) -> int:
    from raysys.tasks import REGULARISERS, get_task, task_names

    print(f"{'task':18s} {'kind':15s} {'splits':24s} labels / description")
    for name in task_names():
        t = get_task(name)
        what = ", ".join(t.labels) if t.labels else t.description
        role = " (regulariser)" if name in REGULARISERS else ""
        print(f"{name:18s} {t.kind:15s} {','.join(t.splits):24s} {what}{role}")
    return 0


def _cmd_tasks_show(args: argparse.Namespace) -> int:
    from raysys.config import SynthSection, TaskSection
    from raysys.tasks import build_splits, entry, sample_reports

    found = entry(args.name)
    task = found.task
    defaults = TaskSection()
    sizes = {s: getattr(defaults, f"{s}_size") for s in task.splits}
    if found.pool:
        sizes["pool"] = SynthSection().size
    reports = sample_reports(args.name, sizes, args.seed)
    row = build_splits(args.name, {task.splits[0]: 1}, args.seed)[task.splits[0]][0]
    print(f"{task.name}: {task.description}")
    print(f"kind: {task.kind}   main metric: {task.main_metric}")
    print(f"labels: {', '.join(task.labels) or '-'}")
    print(f"rows a run uses at the default sizes ({_sizes_text(sizes)}), seed {args.seed}:")
    for rep in reports:
        where = f"{rep.source_rows} rows in the source" if rep.source_rows else "generated"
        print(f"  {rep.split}: {where}, {rep.used_rows} used")
        if rep.source_rows and rep.source_labels:
            print(f"    source: {_label_text(rep.source_labels)}")
        if rep.used_labels:
            print(f"    used:   {_label_text(rep.used_labels)}")
    for note in getattr(found.source, "notes", []):
        print(f"  note: {note}")
    for warning in (w for rep in reports for w in rep.warnings):
        print(f"  warning: {warning}")
    print(f"\n--- prompt ({row['id']}) ---\n{task.messages(row)[0]['content']}")
    print(f"--- target ---\n{task.target(row)}")
    return 0


def _sizes_text(sizes: dict[str, int]) -> str:
    return ", ".join(f"{s} {n}" for s, n in sizes.items())


def _label_text(counts: dict[str, int]) -> str:
    total = sum(counts.values()) or 1
    return ", ".join(f"{lab} {n} ({n / total:.0%})" for lab, n in counts.items())


def _cmd_data_mix(args: argparse.Namespace) -> int:
    from pathlib import Path

    from raysys.data.mixing import materialize_cocktail, read_cocktail_file

    if not 0 < args.fraction <= 1:
        raise UserError(f"--fraction must be in (0, 1], got {args.fraction}")
    if args.train_size < 1:
        raise UserError(f"--train-size must be >= 1, got {args.train_size}")
    spec = read_cocktail_file(Path(args.spec), "cocktail file")
    from raysys.runs import check_job_storage, publish
    from raysys.storage import local_root

    check_job_storage(args.storage, field="--storage")  # an object store is probed first
    root = local_root(args.storage, field="--storage")
    path, counts = materialize_cocktail(spec, args.fraction, args.seed, root, args.train_size)
    where = publish(Path(path).parent)  # s3:// or gs://: sent to the store
    print(f"{'task':18s} rows")
    for task, n in counts.items():
        print(f"{task:18s} {n}")
    print(f"{'total':18s} {sum(counts.values())}\nOutputs: {where}/train.parquet")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from raysys.config import CONFIG_KINDS, dump_config, load_config

    if args.kind not in CONFIG_KINDS:
        raise UserError(
            f"--kind: unknown config kind {args.kind!r}; choose one of {', '.join(CONFIG_KINDS)}"
        )
    cfg = load_config(CONFIG_KINDS[args.kind], args.config, args.overrides)
    from raysys.storage import redact

    print(f"{args.config}: valid {args.kind} config")
    print(redact(dump_config(cfg)), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
