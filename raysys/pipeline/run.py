"""`raysys pipeline CONFIG`: the study's sequence as one resumable job.

    eval_base -> sft -> eval_sft -> dpo_probe -> dpo (gated) -> eval_dpo
              -> N x (synth_rK -> sft_rK (gold + synthetic) -> eval_rK)

Every stage writes under `<run>/<name>-<key>/` and is done when its `stage.json`
exists. `key` hashes the config the stage depends on and the keys of the stages it
builds on, so a re-run skips what is finished, redoes only what a config change
touched (and everything downstream of it), and resumes the interrupted stage:
training from its latest Ray Train checkpoint, synthesis from its last written shard.

With a `sweep` section the SFT stage is a Ray Tune grid over `pipeline.tasks`
(cocktails x fractions x seeds); its test pass (base + every adapter, one engine
load) provides the base and SFT evaluations, and the trial that trained on all of
`pipeline.tasks` at the largest fraction (first seed) is the model DPO and the
synthesis rounds build on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from raysys.config import PipelineConfig, SweepConfig, SynthConfig, dump_config, resolve_run_id
from raysys.data.io import write_json, write_parquet, write_text
from raysys.errors import UserError
from raysys.tasks import scoped
from raysys.tasks.base import MISSING
from raysys.tasks.store import TASKS_DIR, Need, prepare

log = logging.getLogger(__name__)

Row = dict[str, Any]
SUMMARY = "pipeline.json"


@dataclass
class StageRecord:
    name: str
    title: str
    key: str
    dir: Path
    result: Any
    seconds: float
    skipped: bool  # finished by an earlier run


@dataclass
class PipelineOutcome:
    run_dir: Path
    summary: dict[str, Any]
    report: dict[str, str] = field(default_factory=dict)


class Stages:
    """Runs stages in order, each keyed by its config and its inputs' keys."""

    def __init__(self, run_dir: Path, total: int) -> None:
        self.run_dir = run_dir
        self.total = total
        self.records: dict[str, StageRecord] = {}

    def run(self, name: str, title: str, config: Any, after: tuple[str, ...], fn: Any) -> Any:
        from raysys.runs import stage

        upstream = [self.records[a].key for a in after if a in self.records]
        blob = json.dumps({"stage": name, "config": config, "after": upstream}, sort_keys=True)
        key = hashlib.sha256(blob.encode()).hexdigest()[:10]
        out = self.run_dir / f"{name}-{key}"
        skipped = (out / "stage.json").is_file()
        n = len(self.records) + 1
        result = stage(out, f"[{n}/{self.total}] {title}", fn)  # logs start, end, skip
        seconds = json.loads((out / "stage.json").read_text())["seconds"]
        self.records[name] = StageRecord(name, title, key, out, result, seconds, skipped)
        return result


def locate_run(cfg: PipelineConfig, resume: bool) -> PipelineConfig:
    """`cfg` with its run id fixed: given, new (a UTC timestamp), or with `resume` and
    no id the latest pipeline run of `run.name`."""
    from raysys.runs import latest_run_id
    from raysys.storage import local_root, shown

    storage = cfg.run.storage_path
    where = shown(local_root(storage))  # the path, or the bucket URI without its options
    run_id = cfg.run.run_id
    if resume and run_id is None:
        run_id = latest_run_id(storage, cfg.run.name, "config.yaml")
        if run_id is None:
            raise UserError(
                f"--resume: no pipeline run under {where}/{cfg.run.name}; run it without "
                "--resume first, or "
                "set run.storage_path / run.run_id to the run to resume"
            )
    run_id = run_id or resolve_run_id(cfg)
    return cfg.model_copy(update={"run": cfg.run.model_copy(update={"run_id": run_id})})


@scoped  # this run's task rows are registered for the run only
def run_pipeline(cfg: PipelineConfig, resume: bool = False) -> PipelineOutcome:
    """Run (or continue) every enabled stage; write pipeline.json and the report."""
    from raysys.models import resolve_model
    from raysys.runs import check_job_storage, check_writable, publish, run_root
    from raysys.runtime import init_ray
    from raysys.storage import push, shown

    check_job_storage(cfg.run.storage_path)
    cfg = locate_run(cfg, resume)
    model_path = resolve_model(cfg.model.source)  # before any output: a bad source writes nothing
    _preflight(cfg)
    run_dir = run_root(cfg.run.storage_path, cfg.run.name, cfg.run.run_id)
    tasks = prepare(run_dir, task_needs(cfg), cfg.run.seed)  # bad rows or pools refused now
    check_writable(run_dir)
    write_text(run_dir / "config.yaml", dump_config(cfg))  # the config of the latest run
    push(run_dir / "config.yaml")
    tasks.write()  # <run>/tasks: every stage (and the sweep's trials) reads these rows
    push(run_dir / TASKS_DIR)
    log.info("pipeline run directory: %s", shown(run_dir))
    init_ray(cfg.ray.address, cfg.ray.num_cpus)
    start = time.perf_counter()
    runner = Stages(run_dir, _stage_count(cfg))
    p = Pipeline(cfg, model_path, run_dir, runner)
    p.run_all()
    summary = p.summary(time.perf_counter() - start)
    write_json(run_dir / SUMMARY, summary)
    from raysys.pipeline.report import write_pipeline_report

    paths = write_pipeline_report(run_dir, summary)
    publish(run_dir)  # object-store runs: the summary and report up to the store
    return PipelineOutcome(run_dir, summary, {"markdown": str(paths[0]), "html": str(paths[1])})


def task_needs(cfg: PipelineConfig) -> list[Need]:
    """Every task's rows the pipeline uses: gold train rows, held-out splits, the pools
    synthesis labels (and regulariser rows a sweep stage mixes in)."""
    from raysys.synth.cot import synth_need
    from raysys.tasks import REGULARISERS, get_task

    p = cfg.pipeline
    hold = {"validation": p.validation_size, "test": p.test_size}
    trained = list(p.tasks)
    if cfg.sweep is not None:
        shares = (cfg.sweep.general, cfg.sweep.math)
        trained += [t for t, s in zip(REGULARISERS, shares, strict=True) if max(s) > 0]
    needs = []
    for ref in dict.fromkeys([*trained, *cfg.eval_task_names()]):
        sizes = {s: n for s, n in hold.items() if s in get_task(ref).splits}
        needs.append(Need(ref, sizes | ({"train": p.train_size} if ref in trained else {})))
    if p.stages.synth and p.rounds:
        for ref in p.synth_task_refs():
            sc = p.synth.model_copy(update={"task": ref, "test_size": p.test_size})
            needs.append(synth_need(sc, p.pool_file(ref)))
    return needs


def _preflight(cfg: PipelineConfig) -> None:
    """What can be refused before anything is written or started."""
    from raysys.engines import check_fits
    from raysys.train.launch import check_checkpoint_storage, check_local_budget

    check_fits(cfg.generate, cfg.ray)
    check_checkpoint_storage(cfg.train)
    check_checkpoint_storage(cfg.pipeline.dpo)
    if cfg.pipeline.stages.sft or (cfg.pipeline.stages.synth and cfg.pipeline.rounds):
        check_local_budget(cfg.train, cfg.ray)
    if cfg.pipeline.stages.dpo:
        check_local_budget(cfg.pipeline.dpo, cfg.ray)
    if cfg.sweep is not None:
        from raysys.sweep.grid import expand_grid

        _all_tasks_trial(expand_grid(sweep_config(cfg, Path("."))), cfg)


def _stage_count(cfg: PipelineConfig) -> int:
    s, p = cfg.pipeline.stages, cfg.pipeline
    if cfg.sweep is not None:
        n = 1  # the sweep: SFT, base and SFT evaluations in one stage
    else:
        n = 1 + (1 if s.eval_base else 0) + (2 if s.sft else 0)  # data, evals, sft
    n += 3 if s.dpo else 0  # probe, dpo, eval (the last two may do nothing)
    n += 3 * p.rounds if s.synth else 0
    return n


# --------------------------------------------------------------------------- stages


class Pipeline:
    def __init__(self, cfg: PipelineConfig, model_path: str, run_dir: Path, runner: Stages):
        self.cfg = cfg
        self.model_path = model_path
        self.run_dir = run_dir
        self.st = runner
        self.models: list[dict[str, Any]] = []  # evaluated models, in order
        self.current: tuple[str, str | None] = ("base", None)  # (stage, adapter dir)
        self.gold_path: str | None = None
        self.dpo_decision: dict[str, Any] | None = None
        self.synth_rounds: list[dict[str, Any]] = []
        self._eval_rows: dict[str, tuple[Any, list[Row]]] | None = None

    # ------------------------------------------------------------------ sequence

    def run_all(self) -> None:
        cfg, p = self.cfg, self.cfg.pipeline
        if cfg.sweep is not None:
            self.sweep_sft()  # the sweep builds (and caches) its own training data
        else:
            self.data()
            if p.stages.eval_base:
                self.evaluate("eval_base", "base", None, ())
            if p.stages.sft:
                res = self.st.run(
                    "sft",
                    f"LoRA SFT on {', '.join(p.tasks)} (Ray Train)",
                    {"model": _j(cfg.model), "train": _j(cfg.train)},
                    ("data",),
                    lambda d: self._train(self.gold_path, cfg.train, d),
                )
                self.current = ("sft", str(self.st.records["sft"].dir / "adapter"))
                self.evaluate("eval_sft", "sft", self.current[1], ("sft",), train=res)
        if p.stages.dpo:
            self.dpo()
        if p.stages.synth:
            for r in range(1, p.rounds + 1):
                self.synth_round(r)

    def data(self) -> None:
        p = self.cfg.pipeline
        res = self.st.run(
            "data",
            "training data (gold rows of every task)",
            {"tasks": p.tasks, "sizes": _sizes(p), "seed": self.cfg.run.seed},
            (),
            lambda d: self._gold_data(d),
        )
        self.gold_path = res["path"]

    def _gold_data(self, d: Path) -> dict[str, Any]:
        from raysys.data.cocktail import parse_spec
        from raysys.data.mixing import materialize_cocktail

        p = self.cfg.pipeline
        spec = parse_spec(_all_tasks_spec(p.tasks))
        path, counts = materialize_cocktail(
            spec, 1.0, self.cfg.run.seed, d, p.train_size, holdout=_holdout(p)
        )
        return {"path": str(path), "counts": counts, "rows": sum(counts.values())}

    def evaluate(
        self,
        name: str,
        model: str,
        adapter: str | None,
        after: tuple[str, ...],
        train: dict[str, Any] | None = None,
    ) -> list[Row]:
        cfg = self.cfg
        if self._eval_rows is None:  # the same test rows for every evaluation stage
            self._eval_rows = eval_rows(cfg)
        tasks = self._eval_rows

        def run(d: Path) -> list[Row]:
            from raysys.evaluate.run import evaluate_tasks

            adapters = {model: adapter} if adapter else {}
            table = evaluate_tasks(
                tasks,
                self.model_path,
                adapters,
                cfg.generate,
                cfg.model.dtype,
                d,
                include_base=adapter is None,
            )
            return table.to_dict("records")

        rows = self.st.run(
            name,
            f"evaluate {model} on {', '.join(tasks)} (test)",
            {
                "model": _j(cfg.model),  # the base model, and (with seed) the test rows
                "seed": cfg.run.seed,
                "generate": _j(cfg.generate),
                "tasks": list(tasks),
                "sizes": _sizes(cfg.pipeline),
            },
            after if adapter else ("data",),
            run,
        )
        self.models.append({"stage": model, "eval": name, "results": rows, "train": train})
        return rows

    def sweep_sft(self) -> None:
        cfg, p = self.cfg, self.cfg.pipeline

        def run(d: Path) -> dict[str, Any]:
            from raysys.sweep.run import run_sweep

            scfg = sweep_config(cfg, d)
            sweep_dir = Path(scfg.run.storage_path) / scfg.run.name / scfg.run.run_id
            outcome = run_sweep(scfg, resume=(sweep_dir / "tune").is_dir())
            return sweep_summary(cfg, d, outcome.sweep_dir)

        res = self.st.run(
            "sft",
            f"SFT sweep over {', '.join(p.tasks)} (Ray Tune, {len(cfg.sweep.fractions)} fractions)",
            {
                "model": _j(cfg.model),
                "train": _j(cfg.train),
                "generate": _j(cfg.generate),
                "sweep": _j(cfg.sweep),
                "tasks": p.tasks,
                "eval": cfg.eval_task_names(),
                "sizes": _sizes(p),
            },
            ("data",),
            run,
        )
        # The sweep's one test pass scored the base model and every adapter.
        self.models.append({"stage": "base", "eval": "sft", "results": res["base"], "train": None})
        self.current = ("sft", res["adapter"])
        self.models.append(
            {"stage": "sft", "eval": "sft", "results": res["chosen"], "train": res["train"]}
        )
        self.gold_path = res["data_path"]  # the chosen trial's own rows

    def dpo(self) -> None:
        cfg, p = self.cfg, self.cfg.pipeline
        if self.current[1] is None:
            return
        probe = self.st.run(
            "dpo_probe",
            "DPO gate: the SFT model on training inputs",
            {"gate": _j(p.dpo_gate), "generate": _j(cfg.generate), "sizes": _sizes(p)},
            ("sft", "data"),
            lambda d: self._probe(d),
        )
        self.dpo_decision = probe["decision"]
        if not probe["decision"]["run"]:
            log.info("DPO not needed: %s", probe["decision"]["why"])
            return
        sft_adapter = self.current[1]
        res = self.st.run(
            "dpo",
            f"LoRA DPO on {probe['pairs']} pairs (reference: the SFT model)",
            {"dpo": _j(p.dpo), "model": _j(cfg.model)},
            ("dpo_probe",),
            lambda d: self._train(
                str(self.st.records["dpo_probe"].dir / "pairs.parquet"),
                p.dpo.model_copy(update={"init_adapter": sft_adapter}),
                d,
            ),
        )
        self.current = ("dpo", str(self.st.records["dpo"].dir / "adapter"))
        self.evaluate("eval_dpo", "dpo", self.current[1], ("dpo",), train=res)

    def _probe(self, d: Path) -> dict[str, Any]:
        """Greedy outputs of the SFT model on trained-on inputs, scored as any evaluation
        (predictions.parquet, results.csv): overlength and wrong-format rates decide
        whether DPO runs; the same generations become its pairs."""
        from raysys.evaluate.run import evaluate_tasks
        from raysys.synth.pairs import mine_pairs

        cfg, gate = self.cfg, self.cfg.pipeline.dpo_gate
        tasks = probe_rows(cfg, self.gold_path, gate.probe_size)
        gen = cfg.generate
        if gate.max_new_tokens:
            gen = gen.model_copy(update={"max_new_tokens": gate.max_new_tokens})
        table = evaluate_tasks(
            tasks, self.model_path, {"sft": self.current[1]}, gen, cfg.model.dtype, d, False
        )
        out = pd.read_parquet(d / "predictions.parquet")
        over = float(out["overlength"].mean())
        miss = float((out["pred"] == MISSING).mean())
        gens = out[["id", "generated_text", "overlong"]].to_dict("records")
        pairs, stats = [], {}
        for name, (task, rows) in tasks.items():
            task_pairs, stats[name] = mine_pairs(task, rows, gens)
            pairs += task_pairs
        write_parquet(d / "pairs.parquet", pairs)
        return {
            "overlength_ratio": over,
            "missing_rate": miss,
            "per_task": table.drop(columns=["adapter"]).to_dict("records"),
            "pairs": len(pairs),
            "pair_stats": stats,
            "decision": dpo_decision(over, miss, len(out), len(pairs), gate),
        }

    def synth_round(self, r: int) -> None:
        cfg, p = self.cfg, self.cfg.pipeline
        labeler_stage, labeler = self.current
        after = tuple(s for s in (f"sft_r{r - 1}", "dpo", "sft") if s in self.st.records)[:1]
        synth = self.st.run(
            f"synth_r{r}",
            f"round {r}: label {', '.join(_names(p.synth_task_refs()))} by CoT voting "
            f"({labeler_stage} model)",
            {
                "synth": _j(p.synth),
                "tasks": [_j(t) if not isinstance(t, str) else t for t in p.synth_tasks],
                "max_new_tokens": p.synth_max_new_tokens,
                "generate": _j(cfg.generate),
                "model": _j(cfg.model),
                "labeler": labeler_stage,
                "test_size": p.test_size,
            },
            (*after, "data"),
            lambda d: self._synth(d, labeler),
        )
        self.synth_rounds.append({"round": r, "labeler": labeler_stage, "tasks": synth["tasks"]})
        if synth["rows"] == 0 and (p.round_from == "current" or not self.gold_path):
            log.warning(
                "round %d: no synthetic row was kept (see %s); nothing new to train on, the "
                "%s model stays current; lower pipeline.synth.min_agreement or raise "
                "pipeline.synth.samples",
                r,
                self.st.records[f"synth_r{r}"].dir,
                labeler_stage,
            )
            return
        if p.round_from == "current" and labeler:
            what = f"{synth['rows']} synthetic rows, on top of the {labeler_stage} model"
            train_cfg = cfg.train.model_copy(update={"init_adapter": labeler})
            gold = False
        else:
            what = f"gold + {synth['rows']} synthetic rows"
            train_cfg, gold = cfg.train, True
        res = self.st.run(
            f"sft_r{r}",
            f"round {r}: LoRA SFT on {what}",
            {"model": _j(cfg.model), "train": _j(cfg.train), "from": p.round_from},
            (f"synth_r{r}", "data", "sft"),
            lambda d: self._train(self._round_data(d, synth["path"], gold), train_cfg, d),
        )
        self.current = (f"sft_r{r}", str(self.st.records[f"sft_r{r}"].dir / "adapter"))
        self.evaluate(f"eval_r{r}", f"sft_r{r}", self.current[1], (f"sft_r{r}",), train=res)

    def _synth(self, d: Path, labeler: str | None) -> dict[str, Any]:
        from raysys.runtime import faults_from_env
        from raysys.synth.cot import build_pool, run_synthesis
        from raysys.tasks import get_task

        cfg, p = self.cfg, self.cfg.pipeline
        faults = faults_from_env(("synth_crash_after_shards",))
        gen = cfg.generate.model_copy(update={"max_new_tokens": p.synth_max_new_tokens})
        adapters = {"synth": labeler} if labeler else {}
        out: dict[str, Any] = {}
        frames = []
        for name in p.synth_task_refs():
            task = get_task(name)
            scfg = SynthConfig(
                run=cfg.run,
                ray=cfg.ray,
                model=cfg.model,
                generate=gen,
                synth=p.synth.model_copy(update={"task": name, "test_size": p.test_size}),
            )
            pool, pool_stats = build_pool(task, scfg, cfg.run.seed)
            tdir = d / task.name
            stats = run_synthesis(task, pool, self.model_path, adapters, scfg, tdir, faults)
            out[task.name] = {**stats, **pool_stats}
            frames.append(pd.read_parquet(tdir / "sft.parquet"))
        rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        write_parquet(d / "synthetic.parquet", rows.to_dict("records"))
        return {"tasks": out, "rows": int(len(rows)), "path": str(d / "synthetic.parquet")}

    def _round_data(self, d: Path, synthetic: str, with_gold: bool = True) -> str:
        use_gold = with_gold and self.gold_path
        gold = pd.read_parquet(self.gold_path) if use_gold else pd.DataFrame()
        syn = pd.read_parquet(synthetic)
        cols = ["id", "task", "messages", "gold", "source"]
        parts = [f[cols] for f in (gold, syn) if len(f)]
        if not parts:
            raise UserError(
                "pipeline: no gold rows and no synthetic row was kept; lower "
                "pipeline.synth.min_agreement or add pipeline.tasks"
            )
        rows = pd.concat(parts, ignore_index=True)
        # gold first, then synthetic: interleave by a stable shuffle so batches mix both
        rows = rows.sample(frac=1.0, random_state=self.cfg.run.seed).reset_index(drop=True)
        path = d / "train.parquet"
        write_parquet(path, rows.to_dict("records"))
        return str(path)

    def _train(self, data_path: str | None, train_cfg: Any, d: Path) -> dict[str, Any]:
        from raysys.runtime import TRAIN_FAULTS, faults_from_env
        from raysys.train.launch import run_training, scoped_checkpoint_storage

        if data_path is None:
            raise UserError("pipeline: no training data (pipeline.tasks is empty)")
        return run_training(
            data_path,
            self.model_path,
            scoped_checkpoint_storage(train_cfg, self.cfg.run.name, self.run_dir.name, d.name),
            self.cfg.model.dtype,
            d,
            self.cfg.run.seed,
            faults_from_env(TRAIN_FAULTS),
            attn_implementation=self.cfg.model.attn_implementation,
        )

    # ------------------------------------------------------------------ summary

    def summary(self, seconds: float) -> dict[str, Any]:
        stages = [
            {
                "stage": r.name,
                "title": r.title,
                "dir": r.dir.name,
                "seconds": r.seconds,
                "skipped": r.skipped,
            }
            for r in self.st.records.values()
        ]
        out: dict[str, Any] = {
            "model": self.cfg.model.source,
            "tasks": self.cfg.pipeline.tasks,
            "synth_tasks": _names(self.cfg.pipeline.synth_task_refs()),
            "eval_tasks": self.cfg.eval_task_names(),
            "stages": stages,
            "models": self.models,
            "dpo": self.dpo_decision,
            "synthesis": self.synth_rounds,
            "final_model": {"stage": self.current[0], "adapter": self.current[1]},
            "wall_seconds": seconds,
        }
        if "sft" in self.st.records and self.cfg.sweep is not None:
            out["sweep_dir"] = self.st.records["sft"].result["sweep_dir"]
        return out


# --------------------------------------------------------------------------- helpers


def dpo_decision(over: float, miss: float, n: int, pairs: int, gate: Any) -> dict[str, Any]:
    """Run DPO when the overlength ratio or the wrong-format rate is above its threshold
    (or `force`), and pairs exist to train on."""
    triggered = over > gate.overlength_threshold or miss > gate.missing_threshold
    why = (
        f"overlength {over:.2f} (threshold {gate.overlength_threshold:.2f}), wrong format "
        f"{miss:.2f} (threshold {gate.missing_threshold:.2f}) on {n} training inputs"
    )
    if gate.force and not triggered:
        why += "; forced by pipeline.dpo_gate.force"
    run = (triggered or gate.force) and pairs > 0
    if (triggered or gate.force) and not pairs:
        why += "; but no pair could be mined (no rejected candidate)"
    return {"run": run, "triggered": triggered, "forced": gate.force, "why": why}


def _names(refs: list[str]) -> list[str]:
    from raysys.tasks import get_task

    return [get_task(r).name for r in refs]


def _nan(v: Any) -> bool:
    return isinstance(v, float) and v != v


def _j(section: Any) -> Any:
    return section.model_dump(mode="json") if section is not None else None


def _sizes(p: Any) -> dict[str, int]:
    return {"train": p.train_size, "validation": p.validation_size, "test": p.test_size}


def _holdout(p: Any) -> dict[str, int]:
    return {"test": p.test_size, "validation": p.validation_size}


def _all_tasks_spec(tasks: list[str]) -> dict[str, Any]:
    return {"name": "gold", "components": [{"task": t, "weight": 1.0} for t in tasks]}


def eval_rows(cfg: PipelineConfig) -> dict[str, tuple[Any, list[Row]]]:
    """Test rows of every evaluation task; the same rows a sweep of these sizes uses."""
    from raysys.tasks import build_splits, get_task

    out = {}
    for name in cfg.eval_task_names():
        task = get_task(name)
        sizes = {s: n for s, n in _holdout(cfg.pipeline).items() if s in task.splits}
        if "test" not in sizes:
            raise UserError(f"pipeline.eval_tasks: {name} has no test split to evaluate on")
        out[task.name] = (task, build_splits(name, sizes, cfg.run.seed)["test"])
    return out


def probe_rows(
    cfg: PipelineConfig, gold_path: str | None, per_task: int
) -> dict[str, tuple[Any, list[Row]]]:
    """Up to `per_task` inputs of each task that SFT trained on (their prompts render as
    in training: `task.messages`), with gold, keyed for `evaluate_tasks`."""
    from raysys.data.cocktail import parse_spec
    from raysys.data.mixing import build_pools, resolve_spec
    from raysys.tasks import get_task

    p = cfg.pipeline
    trained = (
        set(pd.read_parquet(gold_path, columns=["id"])["id"].astype(str)) if gold_path else set()
    )
    pools = build_pools(
        resolve_spec(parse_spec(_all_tasks_spec(p.tasks))), p.train_size, cfg.run.seed, _holdout(p)
    )
    return {
        name: (get_task(name), [r for r in pool if str(r["id"]) in trained][:per_task])
        for name, pool in pools.items()
    }


def sweep_config(cfg: PipelineConfig, stage_dir: Path) -> SweepConfig:
    """The pipeline's SFT sweep as a sweep config living in the stage's directory."""
    p = cfg.pipeline
    sweep = cfg.sweep.model_copy(  # type: ignore[union-attr]
        update={
            "tasks": p.tasks,
            "eval_tasks": cfg.eval_task_names(),
            "train_size": p.train_size,
            "validation_size": p.validation_size,
            "test_size": p.test_size,
        }
    )
    run = cfg.run.model_copy(
        update={"name": "sweep", "storage_path": str(stage_dir.resolve()), "run_id": "grid"}
    )
    return SweepConfig(
        run=run, ray=cfg.ray, model=cfg.model, generate=cfg.generate, train=cfg.train, sweep=sweep
    )


def _all_tasks_trial(trials: list[Any], cfg: PipelineConfig) -> Any:
    """The sweep trial the later stages build on: all tasks, no regularisers, largest
    fraction, first seed (and the base learning rate / rank when those are swept)."""
    from raysys.tasks import get_task

    want = {get_task(t).name for t in cfg.pipeline.tasks}
    fits = [
        t for t in trials if {c for c, _ in t.components} == want and t.general == 0 and t.math == 0
    ]
    if not fits:
        raise UserError(
            "sweep.cocktails: no trial trains on all of pipeline.tasks without regularisers; "
            "add the 'all' generator (or 'pairs' for two tasks) and general/math 0"
        )
    top = max(t.fraction for t in fits)
    fits = [t for t in fits if t.fraction == top]
    lr, rank = cfg.train.learning_rate, cfg.train.lora.r
    return min(fits, key=lambda t: (t.learning_rate != lr, t.lora_r != rank, t.seed, t.trial_id))


def sweep_summary(cfg: PipelineConfig, stage_dir: Path, sweep_dir: Path) -> dict[str, Any]:
    """What the pipeline takes from a finished sweep: the chosen trial, its training
    rows and the test results of the base model and of that trial."""
    from raysys.sweep.grid import Trial
    from raysys.sweep.trial import trial_data

    grid = [Trial.from_params(p) for p in json.loads((sweep_dir / "grid.json").read_text())]
    chosen = _all_tasks_trial(grid, cfg)
    res = json.loads((sweep_dir / "trials" / chosen.trial_id / "result.json").read_text())
    scfg = sweep_config(cfg, stage_dir)
    table = pd.read_parquet(sweep_dir / "results.parquet")  # one row per (trial, task)

    def rows(trial_id: str) -> list[Row]:
        out = []
        for rec in table[table["trial_id"] == trial_id].to_dict("records"):
            m = {k[5:]: v for k, v in rec.items() if k.startswith("test_") and not _nan(v)}
            out.append({"task": rec["task"], **m})
        return out

    return {
        "sweep_dir": str(sweep_dir),
        "trial_id": chosen.trial_id,
        "trials": len(grid),
        "adapter": res["adapter"],
        # the sweep's shared cocktail cache: the exact rows the trial trained on
        "data_path": trial_data(scfg, chosen, Path(scfg.run.storage_path))["path"],
        "train": res["train"],
        "base": rows("base"),
        "chosen": rows(chosen.trial_id),
    }
