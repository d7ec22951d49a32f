"""A synthesis round: the current model labels each synthesised task's pool by CoT
voting, then a LoRA learns the kept rows (with the gold rows, or on top of the current
model), and the new model is evaluated."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from raysys.config import SynthConfig
from raysys.errors import UserError
from raysys.pipeline.evaluation import evaluate
from raysys.pipeline.stages import Study, dumped
from raysys.pipeline.training import train

log = logging.getLogger(__name__)


def synth_round(study: Study, r: int) -> None:
    cfg, p = study.cfg, study.cfg.pipeline
    labeler_stage, labeler = study.current
    synth = label(study, r)
    if synth["rows"] == 0 and (p.round_from == "current" or not study.gold_path):
        log.warning(
            "round %d: no synthetic row was kept (see %s); nothing new to train on, the %s "
            "model stays current; lower pipeline.synth.min_agreement or raise "
            "pipeline.synth.samples",
            r,
            study.st.dir(f"synth_r{r}"),
            labeler_stage,
        )
        return
    if p.round_from == "current" and labeler:
        what = f"{synth['rows']} synthetic rows, on top of the {labeler_stage} model"
        train_cfg, gold = cfg.train.model_copy(update={"init_adapter": labeler}), False
    else:
        what = f"gold + {synth['rows']} synthetic rows"
        train_cfg, gold = cfg.train, True
    res = study.st.run(
        f"sft_r{r}",
        f"round {r}: LoRA SFT on {what}",
        {"model": dumped(cfg.model), "train": dumped(cfg.train), "from": p.round_from},
        (f"synth_r{r}", "data", "sft"),
        lambda d: train(study, round_data(study, d, synth["path"], gold), train_cfg, d),
    )
    study.current = (f"sft_r{r}", str(study.st.dir(f"sft_r{r}") / "adapter"))
    evaluate(study, f"eval_r{r}", f"sft_r{r}", study.current[1], (f"sft_r{r}",), train=res)


def label(study: Study, r: int) -> dict[str, Any]:
    """Stage `synth_r<r>`: every synthesised task's pool labeled by the current model."""
    from raysys.tasks import get_task

    cfg, p = study.cfg, study.cfg.pipeline
    labeler_stage, labeler = study.current
    after = tuple(s for s in (f"sft_r{r - 1}", "dpo", "sft") if s in study.st.records)[:1]
    names = ", ".join(get_task(t).name for t in p.synth_task_refs())
    synth = study.st.run(
        f"synth_r{r}",
        f"round {r}: label {names} by CoT voting ({labeler_stage} model)",
        {
            "synth": dumped(p.synth),
            "tasks": [dumped(t) if not isinstance(t, str) else t for t in p.synth_tasks],
            "max_new_tokens": p.synth_max_new_tokens,
            "generate": dumped(cfg.generate),
            "model": dumped(cfg.model),
            "labeler": labeler_stage,
            "test_size": p.test_size,
        },
        (*after, "data"),
        lambda d: _label_pools(study, d, labeler),
    )
    study.synth_rounds.append({"round": r, "labeler": labeler_stage, "tasks": synth["tasks"]})
    return synth


def _label_pools(study: Study, d: Path, labeler: str | None) -> dict[str, Any]:
    import pandas as pd

    from raysys.io import write_parquet
    from raysys.runs import RunDir
    from raysys.runtime import faults_from_env
    from raysys.synth.cot import build_pool, run_synthesis
    from raysys.tasks import get_task

    cfg, p = study.cfg, study.cfg.pipeline
    faults = faults_from_env(("synth_crash_after_shards",))
    gen = cfg.generate.model_copy(update={"max_new_tokens": p.synth_max_new_tokens})
    adapters = {"synth": labeler} if labeler else {}
    out: dict[str, Any] = {}
    frames = []
    for name in p.synth_task_refs():
        task = get_task(name)
        synth = p.synth.model_copy(update={"task": name, "test_size": p.test_size})
        scfg = SynthConfig(run=cfg.run, ray=cfg.ray, model=cfg.model, generate=gen, synth=synth)
        pool, pool_stats = build_pool(task, scfg, cfg.run.seed)
        tdir = d / task.name
        keep = RunDir.at(tdir).keep  # each shard reaches an object store as it is written
        stats = run_synthesis(task, pool, study.model_path, adapters, scfg, tdir, faults, keep)
        out[task.name] = {**stats, **pool_stats}
        frames.append(pd.read_parquet(tdir / "sft.parquet"))
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    write_parquet(d / "synthetic.parquet", rows.to_dict("records"))
    return {"tasks": out, "rows": int(len(rows)), "path": str(d / "synthetic.parquet")}


def round_data(study: Study, d: Path, synthetic: str, with_gold: bool = True) -> str:
    """The round's training rows: gold (when asked) and the kept synthetic rows, shuffled
    by a stable seed so batches mix both."""
    import pandas as pd

    from raysys.io import write_parquet

    use_gold = with_gold and study.gold_path
    gold = pd.read_parquet(study.gold_path) if use_gold else pd.DataFrame()
    syn = pd.read_parquet(synthetic)
    cols = ["id", "task", "messages", "gold", "source"]
    parts = [f[cols] for f in (gold, syn) if len(f)]
    if not parts:
        raise UserError(
            "pipeline: no gold rows and no synthetic row was kept; lower "
            "pipeline.synth.min_agreement or add pipeline.tasks"
        )
    rows = pd.concat(parts, ignore_index=True)
    rows = rows.sample(frac=1.0, random_state=study.cfg.run.seed).reset_index(drop=True)
    path = d / "train.parquet"
    write_parquet(path, rows.to_dict("records"))
    return str(path)
