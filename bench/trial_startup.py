"""A training run's fixed cost (what a sweep trial pays around its steps), this tree vs another.

A sweep trial's training stage is `run_spec`: the data preflight, the runner's start-up
(one Ray actor for a one-worker run since `train.runner`; Ray Train's controller and worker
group in the baseline), the worker's imports, peak probe, model load and TRL set-up, the
steps, the final checkpoint and the adapter copy. On the tiny model the steps are < 1 s and
all the rest is fixed cost. This bench runs the same short LoRA SFT (tiny model, 4 steps)
through `raysys.train.launch.run_spec` in this tree and in a baseline git ref (a
temporary worktree), alternating the two in fresh processes, each process starting its
own local Ray and training `--runs` times, each in a fresh Ray worker process as Tune
gives each trial (the first run of a process pays Ray's cold start; the later ones are
what the 2nd..Nth trial of a sweep sees). Fixed cost = the training stage's wall time
in that process (imports included) minus the time its steps took. Prints medians and the ratio; the
phases (`metrics.json` "phases") say where this tree's fixed cost goes.

`--in-process` also times the next lever, not built: the same trainings by the TRL
trainer inside one Ray actor kept across runs (as a training actor reused between a
sweep's trials would be); first run = a fresh process, later runs = its imports loaded.

    python bench/trial_startup.py [--baseline REF] [--repeats 2] [--runs 3] [--in-process]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import baseline
import ray

ROOT = Path(__file__).resolve().parents[1]


def _setup(steps: int):
    """A local Ray, the tiny model, 64 news_sentiment rows and the spec every run trains."""
    from raysys.config import TrainConfig, load_config
    from raysys.io import write_parquet
    from raysys.models import resolve_model
    from raysys.runtime import init_ray
    from raysys.tasks import build_splits, get_task
    from raysys.train.spec import TrainSpec

    init_ray(address="local", num_cpus=2)
    model_path = resolve_model("tiny-random")
    cfg = load_config(
        TrainConfig,
        None,
        [
            "model.source=tiny-random",
            "model.dtype=float32",
            "data.path=unused.parquet",
            f"train.max_steps={steps}",
            f"train.save_steps={steps}",
            "train.batch_size=8",
            "train.per_device_batch_size=8",
            "train.lora.r=16",
        ],
    )
    task = get_task("news_sentiment")
    rows = build_splits(task.name, {"train": 64}, 0)["train"]
    tmp = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    train_path = tmp / "train.parquet"
    write_parquet(
        train_path,
        [
            {
                "id": r["id"],
                "messages": task.messages(r) + [{"role": "assistant", "content": task.target(r)}],
            }
            for r in rows
        ],
    )
    spec = TrainSpec.from_section(
        cfg.train, model_path=model_path, train_path=str(train_path), dtype="float32", seed=0
    )
    return spec, tmp


def child(out: str, runs: str, steps: str) -> None:
    """In a fresh process: `runs` short trainings on one local Ray; JSON to `out`."""
    spec, tmp = _setup(int(steps))
    results = [
        ray.get(_trial.remote(spec, str(tmp / f"run{i}"), f"run{i}")) for i in range(int(runs))
    ]
    Path(out).write_text(json.dumps(results))


def child_in_process(out: str, runs: str, steps: str) -> None:
    """The next lever (not what raysys does): the same trainings by the TRL trainer inside
    one Ray actor that is kept, so the first run pays the imports and the later ones find
    them loaded (a training actor reused across a sweep's trials)."""
    spec, tmp = _setup(int(steps))
    actor = _InProcess.remote()
    results = [ray.get(actor.train.remote(spec, str(tmp / f"ip{i}"))) for i in range(int(runs))]
    Path(out).write_text(json.dumps(results))


@ray.remote(num_cpus=0)
class _InProcess:
    def train(self, spec, out_dir: str) -> dict:
        """Imports, peak probe, TRL trainer with LoRA, the steps, the adapter saved: what
        `train_worker` does minus Ray Train's reports (checkpoints through Tune would add
        their own upload, as `finish` is for Ray Train's)."""
        t0 = time.perf_counter()
        import torch
        from transformers import TrainerCallback

        from raysys.train.perf import probe_peak_flops
        from raysys.train.trainer import build_trainer, check_tokenized

        # as the Train worker sizes itself: all the cores this process may use, and the
        # peak probe in the dtype the model trains in
        torch.set_num_threads(spec.torch_threads or len(os.sched_getaffinity(0)))
        probe_peak_flops(torch.device("cpu"), getattr(torch, spec.dtype))
        trainer = build_trainer(spec, out_dir)
        check_tokenized(trainer, spec.method)
        marks: dict[str, float] = {}

        class Steps(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                marks.setdefault("first", time.perf_counter())

            def on_step_end(self, args, state, control, **kw):
                marks["last"] = time.perf_counter()

        trainer.add_callback(Steps())
        trainer.train()
        trainer.save_model(str(Path(out_dir) / "adapter"))
        wall = time.perf_counter() - t0
        steps_s = marks["last"] - marks["first"]
        return {"wall": wall, "steps": steps_s, "fixed": wall - steps_s}


@ray.remote(num_cpus=0, max_calls=1)  # a fresh process per run, as Tune gives each trial
def _trial(spec, out_dir: str, name: str) -> dict:
    """What a sweep trial's training stage does, timed from inside its process: import the
    training driver, then `run_spec` (without repeating the driver's data check where the
    tree can)."""
    t0 = time.perf_counter()
    import inspect

    from raysys.train.launch import run_spec

    kwargs = {"checked": True} if "checked" in inspect.signature(run_spec).parameters else {}
    run_spec(spec, Path(out_dir), name=name, **kwargs)
    wall = time.perf_counter() - t0
    metrics = json.loads((Path(out_dir) / "metrics.json").read_text())["final"]
    steps_s = float(metrics.get("train_seconds") or 0.0)
    return {
        "wall": wall,
        "steps": steps_s,
        "fixed": wall - steps_s,
        "phases": metrics.get("phases"),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", default="8620033", help="git ref to compare with")
    ap.add_argument("--repeats", type=int, default=2, help="processes per arm (interleaved)")
    ap.add_argument("--runs", type=int, default=3, help="trainings per process")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument(
        "--in-process",
        action="store_true",
        help="also time the trainings inside one kept Ray actor, no worker group (the lever)",
    )
    args = ap.parse_args()
    trees = {"baseline": baseline.tree(args.baseline), "this tree": ROOT}
    got: dict[str, list[list[dict]]] = {k: [] for k in trees}
    load = os.getloadavg()[0]
    for _ in range(args.repeats):  # interleaved: drift hits both arms alike
        for name, tree in trees.items():
            got[name].append(
                baseline.run_child(tree, "trial_startup", "child", args.runs, args.steps)
            )
    in_process = (
        [
            baseline.run_child(ROOT, "trial_startup", "child_in_process", args.runs, args.steps)
            for _ in range(args.repeats)
        ]
        if args.in_process
        else []
    )
    summary = {}
    if in_process:
        summary["in process"] = {
            "fixed_first_s": statistics.median(p[0]["fixed"] for p in in_process),
            "fixed_later_s": statistics.median(r["fixed"] for p in in_process for r in p[1:]),
            "steps_s": statistics.median(r["steps"] for p in in_process for r in p),
            "phases_later_s": {},
        }
    for name, procs in got.items():
        first = [p[0]["fixed"] for p in procs]
        later = [r["fixed"] for p in procs for r in p[1:]]
        phases = [r["phases"] for p in procs for r in p[1:] if r.get("phases")]
        summary[name] = {
            "fixed_first_s": statistics.median(first),
            "fixed_later_s": statistics.median(later) if later else None,
            "steps_s": statistics.median(r["steps"] for p in procs for r in p),
            "phases_later_s": {
                k: round(statistics.median(ph[k] for ph in phases if k in ph), 2)
                for k in (phases[0] if phases else {})
            },
        }
    base, this = summary["baseline"], summary["this tree"]
    ratio_later = this["fixed_later_s"] / base["fixed_later_s"] if base["fixed_later_s"] else None
    ratio_first = this["fixed_first_s"] / base["fixed_first_s"]
    for name, s in summary.items():
        print(
            f"{name:10s} fixed cost: first run {s['fixed_first_s']:.1f} s, later runs "
            f"{s['fixed_later_s']:.1f} s (steps {s['steps_s']:.2f} s)"
        )
        if s["phases_later_s"]:
            print(
                "           phases:",
                ", ".join(f"{k} {v:.2f}" for k, v in s["phases_later_s"].items()),
            )
    print(f"this tree vs baseline: later runs {ratio_later:.2f}x, first run {ratio_first:.2f}x")
    extra = {}
    if in_process:
        ip = summary["in process"]
        extra = {
            "in_process_first_vs_baseline": ip["fixed_first_s"] / base["fixed_later_s"],
            "in_process_reused_vs_baseline": ip["fixed_later_s"] / base["fixed_later_s"],
        }
        print(
            "one kept actor (measured, not built) vs baseline's later runs: "
            f"fresh process {extra['in_process_first_vs_baseline']:.2f}x, "
            f"reused process {extra['in_process_reused_vs_baseline']:.2f}x"
        )
    baseline.record(
        "trial_startup",
        args,
        load,
        summary=summary,
        ratio_later=ratio_later,
        ratio_first=ratio_first,
        **extra,
        runs={**got, "in process": in_process},
    )


if __name__ == "__main__":
    main()
